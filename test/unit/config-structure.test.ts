import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ElementSpec } from '../../src/config/element-spec.ts';
import { analyzeConfig } from '../../src/config/parse-config.ts';
import { PLUGIN_BLOCK_SPECS } from '../../src/config/sections/plugins.ts';
import { HEAD_SPEC } from '../../src/config/structure.ts';

/**
 * The allowed elements and attributes are written once, beside each section's reader. This checks that they agree:
 * a reader that reads an attribute its spec lacks would read a value while --check calls it "unknown, ignored".
 */

/** Every element and attribute of the spec, each element tagged with `_at="its path"`; switches on, so all is read. */
function fullConfig(spec: ElementSpec, path: string, extra = ''): string {
  const attrs = spec.attrs.map((a) => ` ${a}="${/^(start|regex|xfs|dotfiles|ignoreerror)$/i.test(a) ? 'true' : '1'}"`).join('');
  const children = spec.children
    .filter((c) => !(spec === HEAD_SPEC && c.name === 'plugin'))
    .map((c) => fullConfig(c, `${path}<${c.name}>`))
    .join('');
  const blocks =
    spec === HEAD_SPEC
      ? Object.entries(PLUGIN_BLOCK_SPECS)
          .map(([name, block]) => fullConfig({ ...block, attrs: [] }, `<plugin name="${name}">`, ` name="${name}"`))
          .join('')
      : '';
  const tag = path.replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
  return `<${spec.name} _at="${tag}"${extra}${attrs}>${children}${blocks}</${spec.name}>\n`;
}

function specAt(path: string): ElementSpec {
  const plugin = /^<plugin name="(\w+)">/.exec(path);
  let spec: ElementSpec | undefined = plugin === null ? HEAD_SPEC : PLUGIN_BLOCK_SPECS[plugin[1] as keyof typeof PLUGIN_BLOCK_SPECS];
  for (const name of (plugin === null ? path : path.slice(plugin[0].length)).match(/(?<=<)\w+(?=>)/g) ?? []) {
    spec = spec?.children.find((c) => c.name === name);
  }
  assert.ok(spec !== undefined, path);
  return spec;
}

test('the structure check allows exactly the attributes the section readers read (all but <head version>)', () => {
  const xml = fullConfig(HEAD_SPEC, '');
  const read = new Map<string, Set<string>>();
  const get = Map.prototype.get;
  const has = Map.prototype.has;
  // Records which attribute maps (tagged with _at) the readers look into, and for what.
  Map.prototype.get = function (this: Map<unknown, unknown>, key: unknown) {
    if (typeof key === 'string' && key !== '_at' && has.call(this, '_at')) {
      const at = get.call(this, '_at') as string;
      read.set(at, (read.get(at) ?? new Set()).add(key));
    }
    return get.call(this, key);
  };
  try {
    analyzeConfig(Buffer.from(xml), 'conf.xml', { cwd: '/tmp' });
  } finally {
    Map.prototype.get = get;
  }
  // The readers really ran over the tree: the timeout's seconds and a plugin block's own elements were read.
  assert.ok(read.get('<sersync><rsync><timeout>')?.has('time'), [...read.keys()].join('\n'));
  assert.ok(read.get('<plugin name="refreshCDN"><localpath><cdninfo>')?.has('passwd'), [...read.keys()].join('\n'));
  const strays: string[] = [];
  for (const [at, keys] of read) {
    const allowed = [...specAt(at).attrs, ...(at.startsWith('<plugin name=') && !at.includes('><') ? ['name'] : [])];
    for (const key of keys) if (!allowed.some((a) => a.toLowerCase() === key)) strays.push(`${at || '<head>'} ${key}`);
  }
  assert.deepEqual(strays, []);
  // And the other way: every attribute the spec allows is read (only <head version> is sersync2's and unused).
  const unread: string[] = [];
  const walk = (spec: ElementSpec, at: string): void => {
    for (const a of spec.attrs) if (!read.get(at)?.has(a.toLowerCase())) unread.push(`${at || '<head>'} ${a}`);
    for (const c of spec.children) if (!(spec === HEAD_SPEC && c.name === 'plugin')) walk(c, `${at}<${c.name}>`);
  };
  walk(HEAD_SPEC, '');
  for (const [name, block] of Object.entries(PLUGIN_BLOCK_SPECS)) walk(block, `<plugin name="${name}">`);
  assert.deepEqual(unread, ['<head> version']);
});
