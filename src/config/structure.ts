import type { ConfigProblems } from './problems.ts';
import type { XmlElement } from './xml-tree.ts';

interface ElementSpec {
  /** As sersync2's shipped file spells it; used in messages. */
  readonly name: string;
  readonly attrs: readonly string[];
  readonly children: readonly ElementSpec[];
  /** Lists (`exclude`, `remote`, `deshost`, `include`); of anything else only the first element counts. */
  readonly many?: boolean;
}

function el(name: string, attrs: readonly string[], children: readonly ElementSpec[] = [], many = false): ElementSpec {
  return { name, attrs, children, many };
}

const TOGGLES = ['delete', 'createFolder', 'createFile', 'closeWrite', 'moveFrom', 'moveTo', 'attrib', 'modify'];

const PLUGIN_BLOCKS: Readonly<Record<string, ElementSpec>> = {
  command: el(
    'plugin',
    ['name'],
    [el('param', ['prefix', 'suffix', 'ignoreError']), el('filter', ['start'], [el('include', ['expression'], [], true)])],
  ),
  socket: el('plugin', ['name'], [el('localpath', ['watch'], [el('deshost', ['ip', 'port'], [], true)])]),
  refreshCDN: el(
    'plugin',
    ['name'],
    [
      el(
        'localpath',
        ['watch'],
        [el('cdninfo', ['domainname', 'port', 'username', 'passwd']), el('sendurl', ['base']), el('regexurl', ['regex', 'match'])],
      ),
    ],
  ),
  // The http plugin was never compiled into sersync2; this shape is sersync-ts's (see parse-config.ts).
  http: el('plugin', ['name'], [el('localpath', ['watch'], [el('deshost', ['url'])])]),
};

/** Every element sersync2 2.5.x reads, plus sersync-ts's extensions (`<tuning>`, `<ssh options>`). */
const HEAD = el(
  'head',
  ['version'],
  [
    el('host', ['hostip', 'port']),
    el('debug', ['start']),
    el('fileSystem', ['xfs']),
    el('filter', ['start'], [el('exclude', ['expression'], [], true)]),
    el(
      'inotify',
      [],
      TOGGLES.map((t) => el(t, ['start'])),
    ),
    el(
      'sersync',
      [],
      [
        el('localpath', ['watch'], [el('remote', ['ip', 'name'], [], true)]),
        el(
          'rsync',
          [],
          [
            el('commonParams', ['params']),
            el('auth', ['start', 'users', 'passwordfile']),
            el('userDefinedPort', ['start', 'port']),
            el('timeout', ['start', 'time']),
            el('ssh', ['start', 'options']),
          ],
        ),
        el('failLog', ['path', 'timeToExecute']),
        el('crontab', ['start', 'schedule'], [el('crontabfilter', ['start'], [el('exclude', ['expression'], [], true)])]),
        el('plugin', ['start', 'name']),
      ],
    ),
    el('plugin', ['name'], [], true),
    el('tuning', [
      'dotFiles',
      'tempGlobs',
      'quietMs',
      'maxWaitMs',
      'maxChildrenPerDir',
      'maxPendingPaths',
      'watcher',
      'stateDir',
      'progressMs',
      'maxDelete',
    ]),
  ],
);

/**
 * Warns about what sersync-ts will not read: unknown elements and attributes (typos, mostly), and repeated elements
 * of which only the first counts, as in sersync2. The reading itself is parse-config's job.
 */
export function checkStructure(head: XmlElement, problems: ConfigProblems): void {
  // Paths leave out `<head>` (`<sersync><rsync><timeout>`), except where nothing else would name the parent.
  walk(head, HEAD, '', problems);
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
    if (spec === HEAD && childSpec.name === 'plugin') {
      walkPluginBlock(child, path, seen, problems);
      continue;
    }
    const childPath = `${path}<${childSpec.name}>`;
    if (!childSpec.many) {
      if (seen.has(childSpec.name)) {
        const what =
          childSpec.name === 'localpath'
            ? 'only the first <localpath> is used (run one sersync-ts per directory)'
            : 'repeated element, only the first one is used';
        problems.warn(child.line, childPath, `${what}; this one is ignored`);
        continue;
      }
      seen.add(childSpec.name);
    }
    walk(child, childSpec, childPath, problems);
  }
}

function walkPluginBlock(block: XmlElement, path: string, seen: Set<string>, problems: ConfigProblems): void {
  const name = block.attrs.get('name') ?? '';
  const blockPath = `${path}<plugin name="${name}">`;
  const spec = PLUGIN_BLOCKS[name];
  if (spec === undefined || !Object.hasOwn(PLUGIN_BLOCKS, name)) {
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
