import path from 'node:path';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { type ConfigNode, child, headNode, pluginBlock, where } from './config-node.ts';
import { configText } from './config-text.ts';
import type { Config, PluginName } from './model.ts';
import { ConfigProblems } from './problems.ts';
import { readCrontab } from './sections/crontab.ts';
import { readFailLog } from './sections/fail-log.ts';
import { readFilter } from './sections/filter.ts';
import { readHost } from './sections/head-elements.ts';
import { readInotify } from './sections/inotify.ts';
import { readRemotes, readSites, readWatch } from './sections/localpath.ts';
import { readPluginBlocks, readPluginChoice } from './sections/plugins.ts';
import { readRsync } from './sections/rsync.ts';
import { readTuning } from './sections/tuning.ts';
import { checkStructure } from './structure.ts';
import { type DiskCheck, ValueReader } from './value-reader.ts';
import { parseXmlTree } from './xml-tree.ts';

// The unit tests of the watch and sync stages import sersync2's toggles from here.
export { SHIPPED_TOGGLES } from './defaults.ts';

export interface ParseOptions {
  /** What relative paths in the file are resolved against; sersync2 used its working directory. */
  readonly cwd?: string;
  /**
   * `-m NAME`: the plugin runs alone, as in sersync2, which then reads no `<sersync>` section. Remotes become
   * optional and the watch directory is the plugin's own `<localpath watch>` when it has one.
   */
  readonly standalonePlugin?: PluginName;
}

/**
 * confxml.xml bytes → the typed, deeply frozen Config. Pure apart from resolving relative paths against
 * `options.cwd`. Throws one SersyncError CONFIG_INVALID listing every problem, each as `file:line: <path>: message`.
 */
export function parseConfig(bytes: Uint8Array, displayName: string, options: ParseOptions = {}): Config {
  const { config, problems } = analyzeConfig(bytes, displayName, options);
  problems.throwIfAny();
  return config;
}

/**
 * The steps of parseConfig without the final throw, for loadConfig, which adds the file-system checks to the same
 * list of problems. Throws only when there is no tree to read (binary data, not XML, no `<head>`).
 */
export function analyzeConfig(
  bytes: Uint8Array,
  displayName: string,
  options: ParseOptions = {},
): { config: Config; problems: ConfigProblems; diskChecks: readonly DiskCheck[] } {
  const invalid = (message: string): SersyncError => new SersyncError('CONFIG_INVALID', message, { exitCode: ExitCode.Config });
  const { text, encoding } = configText(bytes, displayName);
  const tree = parseXmlTree(text);
  if (!tree.ok) {
    const at = tree.line === null ? `${displayName}:` : `${displayName}:${tree.line}:`;
    throw invalid(`${at} not valid XML: ${tree.message}`);
  }
  const first = tree.elements[0];
  if (first === undefined) throw invalid(`${displayName}:1: no XML element found; expected <head>...</head>`);
  const head = tree.elements.find((e) => e.name === 'head') ?? first.children.find((e) => e.name === 'head');
  if (head === undefined) {
    throw invalid(
      `${displayName}:${first.line}: <${first.name}>: the root element must be <head> (or contain <head>), as in sersync2's confxml.xml`,
    );
  }

  const problems = new ConfigProblems(displayName);
  if (encoding === 'latin1') {
    problems.warn(
      1,
      null,
      'not valid UTF-8, read as ISO-8859-1; the paths in it are used as UTF-8 names, so a non-ASCII path written in another encoding (GBK, Latin-1) names a different directory: save the file as UTF-8',
    );
  }
  checkStructure(head, problems);
  const values = new ValueReader(problems, path.resolve(options.cwd ?? process.cwd()), encoding === 'utf8');
  const config = readSections(headNode(head), displayName, options.standalonePlugin ?? null, values);
  return { config: deepFreeze(config), problems, diskChecks: values.diskChecks };
}

/**
 * Runs the section readers. The order matters beyond the data they need: problems on one line are listed in the
 * order they are found.
 */
function readSections(head: ConfigNode, displayName: string, standalone: PluginName | null, values: ValueReader): Config {
  const p = values.problems;
  const sersync = child(head, 'sersync');

  const filter = readFilter(child(head, 'filter'), values);
  const inotify = readInotify(child(head, 'inotify'), values);
  const rsyncNode = child(sersync, 'rsync');
  const sshNode = child(rsyncNode, 'ssh');
  const sshEnabled = values.bool(sshNode, 'start', false);

  const plugin = readPluginChoice(child(sersync, 'plugin'), values);
  const active: PluginName | null = standalone ?? (plugin.enabled ? plugin.name : null);
  const blocks = readPluginBlocks(head, active, child(sersync, 'plugin'), values);

  const watch = readWatch(head, sersync, standalone, blocks, values) ?? '';
  const firstLocalpath = child(sersync, 'localpath');
  // -m runs the plugin alone: the command plugin on every localpath, the others on one directory (their own or the
  // first localpath), to which the other localpaths mean nothing.
  const sites =
    standalone === null || standalone === 'command'
      ? readSites(sersync, watch, sshEnabled, values, standalone === 'command')
      : [{ watch, remotes: readRemotes(firstLocalpath, watch, sshEnabled, true, values), line: firstLocalpath?.el.line ?? head.el.line }];
  const remotes = sites[0]?.remotes ?? [];
  const rsync = readRsync(
    rsyncNode,
    sshNode,
    sshEnabled,
    watch,
    sites.flatMap((s) => s.remotes),
    values,
  );
  const crontab = readCrontab(child(sersync, 'crontab'), values);

  const activeBlock = active === null ? null : blocks[active];
  if (standalone === null && activeBlock !== null && activeBlock !== undefined && 'watch' in activeBlock) {
    const pluginWatch = activeBlock.watch;
    if (pluginWatch !== null && watch !== '' && pluginWatch !== watch) {
      const block = pluginBlock(head, active ?? 'command');
      p.warn(
        block?.el.line ?? null,
        block === undefined ? null : where(block),
        `its <localpath watch="${pluginWatch}"> differs from <sersync><localpath watch="${watch}">; sersync2 silently watched the plugin's directory instead, sersync-ts watches and syncs ${watch}`,
      );
    }
  }

  return {
    file: path.resolve(values.cwd, displayName),
    host: readHost(child(head, 'host'), values),
    debug: values.bool(child(head, 'debug'), 'start', false),
    xfs: values.bool(child(head, 'fileSystem'), 'xfs', false),
    filter,
    inotify,
    watch,
    remotes,
    sites,
    rsync,
    failLog: readFailLog(child(sersync, 'failLog'), values),
    crontab,
    plugin,
    plugins: {
      command: blocks.command,
      socket: blocks.socket,
      refreshCDN: blocks.refreshCDN,
      http: blocks.http,
    },
    tuning: readTuning(child(head, 'tuning'), values),
    warnings: p.warnings(),
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
