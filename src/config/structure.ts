import { type ElementSpec, el } from './element-spec.ts';
import type { PluginName } from './model.ts';
import type { ConfigProblems } from './problems.ts';
import { CRONTAB_SPEC } from './sections/crontab.ts';
import { FAIL_LOG_SPEC } from './sections/fail-log.ts';
import { FILTER_SPEC } from './sections/filter.ts';
import { DEBUG_SPEC, FILE_SYSTEM_SPEC, HOST_SPEC } from './sections/head-elements.ts';
import { INOTIFY_SPEC } from './sections/inotify.ts';
import { LOCALPATH_SPEC } from './sections/localpath.ts';
import { PLUGIN_BLOCK_SPECS, PLUGIN_CHOICE_SPEC } from './sections/plugins.ts';
import { RSYNC_SPEC } from './sections/rsync.ts';
import { TUNING_SPEC } from './sections/tuning.ts';
import type { XmlElement } from './xml-tree.ts';

/**
 * Every element sersync2 2.5.x reads, plus sersync-ts's extensions (`<tuning>`, `<ssh options>`, the http plugin),
 * put together from the specs that sit beside each section's reader. The `<plugin>` blocks under `<head>` are
 * checked against PLUGIN_BLOCK_SPECS, by name.
 */
export const HEAD_SPEC = el(
  'head',
  ['version'],
  [
    HOST_SPEC,
    DEBUG_SPEC,
    FILE_SYSTEM_SPEC,
    FILTER_SPEC,
    INOTIFY_SPEC,
    el('sersync', [], [LOCALPATH_SPEC, RSYNC_SPEC, FAIL_LOG_SPEC, CRONTAB_SPEC, PLUGIN_CHOICE_SPEC]),
    el('plugin', ['name'], [], true),
    TUNING_SPEC,
  ],
);

/**
 * Warns about what sersync-ts will not read: unknown elements and attributes (typos, mostly), and repeated elements
 * of which only the first counts, as in sersync2. The reading itself is the section readers' job.
 */
export function checkStructure(head: XmlElement, problems: ConfigProblems): void {
  // Paths leave out `<head>` (`<sersync><rsync><timeout>`), except where nothing else would name the parent.
  walk(head, HEAD_SPEC, '', problems);
}

function walk(node: XmlElement, spec: ElementSpec, path: string, problems: ConfigProblems): void {
  for (const attr of node.attrs.keys()) {
    if (!spec.attrs.some((a) => a.toLowerCase() === attr)) {
      problems.warn(node.line, path || '<head>', `unknown attribute "${attr}", ignored`);
    }
  }
  const seen = new Set<string>();
  for (const child of node.children) {
    const childSpec = spec.children.find((c) => c.name.toLowerCase() === child.name);
    if (childSpec === undefined) {
      problems.warn(child.line, `${path || '<head>'}<${child.name}>`, 'unknown element, ignored');
      continue;
    }
    if (spec === HEAD_SPEC && childSpec.name === 'plugin') {
      walkPluginBlock(child, path, seen, problems);
      continue;
    }
    const childPath = `${path}<${childSpec.name}>`;
    if (!childSpec.many) {
      if (seen.has(childSpec.name)) {
        problems.warn(child.line, childPath, 'repeated element, only the first one is used; this one is ignored');
        continue;
      }
      seen.add(childSpec.name);
    }
    if (child.afterHash) {
      problems.warn(
        child.line,
        childPath,
        'a "#" before it on its line does not comment it out (XML has no # comments): this element is read and used; to disable it, wrap it in <!-- -->',
      );
    }
    walk(child, childSpec, childPath, problems);
  }
}

function walkPluginBlock(block: XmlElement, path: string, seen: Set<string>, problems: ConfigProblems): void {
  const name = block.attrs.get('name') ?? '';
  const blockPath = `${path}<plugin name="${name}">`;
  const spec = Object.hasOwn(PLUGIN_BLOCK_SPECS, name) ? PLUGIN_BLOCK_SPECS[name as PluginName] : undefined;
  if (spec === undefined) {
    problems.warn(block.line, blockPath, 'unknown plugin (known: command, socket, refreshCDN, http), ignored');
    return;
  }
  if (seen.has(`plugin:${name}`)) {
    problems.warn(block.line, blockPath, 'repeated plugin block, only the first one is used; this one is ignored');
    return;
  }
  seen.add(`plugin:${name}`);
  walk(block, spec, blockPath, problems);
}
