import path from 'node:path';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { fromUtf8 } from '../core/paths.ts';
import type {
  CommandPluginConfig,
  Config,
  FilterRegex,
  HttpPluginConfig,
  InotifyToggles,
  PluginName,
  RefreshCdnPluginConfig,
  Remote,
  SocketPluginConfig,
  Tuning,
} from './model.ts';
import { ConfigProblems } from './problems.ts';
import { SHIPPED, TUNING_DEFAULTS } from './defaults.ts';

// The unit tests of the watch and sync stages import sersync2's toggles from here.
export { SHIPPED_TOGGLES } from './defaults.ts';

import { tempGlobProblem } from '../watch/path-filter.ts';
import { splitShellWords } from './shell-words.ts';
import { checkStructure } from './structure.ts';
import { parseXmlTree, type XmlElement } from './xml-tree.ts';
import { configText } from './config-text.ts';

export interface ParseOptions {
  /** What relative paths in the file are resolved against; sersync2 used its working directory. */
  readonly cwd?: string;
  /**
   * `-m NAME`: the plugin runs alone, as in sersync2, which then reads no `<sersync>` section. Remotes become
   * optional and the watch directory is the plugin's own `<localpath watch>` when it has one.
   */
  readonly standalonePlugin?: PluginName;
}

/** Something only the file system can confirm; loadConfig checks it and blames the element named here. */
interface DiskCheck {
  readonly kind: 'watchDirectory' | 'directory' | 'passwordFile';
  readonly path: string;
  readonly line: number;
  readonly where: string;
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
    problems.warn(1, null, 'not valid UTF-8, read as ISO-8859-1; non-ASCII characters in paths may not match the disk');
  }
  checkStructure(head, problems);
  const reader = new Reader(problems, path.resolve(options.cwd ?? process.cwd()), encoding === 'utf8');
  const config = reader.read(head, displayName, options.standalonePlugin ?? null);
  return { config: deepFreeze(config), problems, diskChecks: reader.diskChecks };
}

const PLUGIN_NAMES: readonly PluginName[] = ['command', 'socket', 'refreshCDN', 'http'];

const PORT = { min: 1, max: 65535, expect: 'expected a port number 1-65535' };
const SECONDS = { min: 1, max: 2147483647, expect: 'expected whole seconds > 0' };
// A year; the timers that use these must cope with more than setTimeout's 24.8 days.
const MINUTES = { min: 1, max: 525600, expect: 'expected whole minutes > 0 (at most 525600, a year)' };
const DAY_MS = 86_400_000;

/** An element found in the tree, with the path that names it in messages. */
interface Node {
  readonly el: XmlElement;
  /** As sersync2's file spells it, e.g. `userDefinedPort`. */
  readonly tag: string;
  /** The path of the parent, e.g. `<sersync><rsync>`; '' below `<head>`. */
  readonly parent: string;
  /** Attributes shown in the element's own segment, e.g. ` name="socket"` for a plugin block. */
  readonly extra: string;
}

const ROOT_TAG = 'head';

class Reader {
  readonly diskChecks: DiskCheck[] = [];
  readonly #p: ConfigProblems;
  readonly #cwd: string;
  readonly #utf8: boolean;

  constructor(problems: ConfigProblems, cwd: string, utf8: boolean) {
    this.#p = problems;
    this.#cwd = cwd;
    this.#utf8 = utf8;
  }

  read(headEl: XmlElement, displayName: string, standalone: PluginName | null): Config {
    const head: Node = { el: headEl, tag: ROOT_TAG, parent: '', extra: '' };
    const sersync = child(head, 'sersync');

    const filter = this.#filter(child(head, 'filter'));
    const inotify = this.#inotify(child(head, 'inotify'));
    const rsyncNode = child(sersync, 'rsync');
    const sshNode = child(rsyncNode, 'ssh');
    const sshEnabled = this.#bool(sshNode, 'start', false);

    const plugin = this.#pluginChoice(child(sersync, 'plugin'));
    const active: PluginName | null = standalone ?? (plugin.enabled ? plugin.name : null);
    const blocks = this.#pluginBlocks(head, active, sersync !== undefined ? child(sersync, 'plugin') : undefined);

    const watchSite = this.#watch(head, sersync, standalone, blocks);
    const watch = watchSite?.path ?? '';
    const remotes = this.#remotes(child(sersync, 'localpath'), watch, sshEnabled, standalone !== null);
    const rsync = this.#rsync(rsyncNode, sshNode, sshEnabled, watch, remotes);
    const crontab = this.#crontab(child(sersync, 'crontab'));

    if (filter.enabled && filter.excludes.length > 0 && crontab.enabled && crontab.filter.excludes.length === 0) {
      const node = child(sersync, 'crontab');
      this.#p.warn(
        node?.el.line ?? null,
        node === undefined ? null : where(node),
        'the realtime <filter> is on but <crontabfilter> has no <exclude>: the full sync would copy the filtered files; sersync2 turned crontab off here, add rsync patterns matching the filter',
      );
    }
    const activeBlock = active === null ? null : blocks[active];
    if (standalone === null && activeBlock !== null && activeBlock !== undefined && 'watch' in activeBlock) {
      const pluginWatch = activeBlock.watch;
      if (pluginWatch !== null && watch !== '' && pluginWatch !== watch) {
        const block = pluginBlock(head, active ?? 'command');
        this.#p.warn(
          block?.el.line ?? null,
          block === undefined ? null : where(block),
          `its <localpath watch="${pluginWatch}"> differs from <sersync><localpath watch="${watch}">; sersync2 silently watched the plugin's directory instead, sersync-ts watches and syncs ${watch}`,
        );
      }
    }

    return {
      file: path.resolve(this.#cwd, displayName),
      host: this.#host(child(head, 'host')),
      debug: this.#bool(child(head, 'debug'), 'start', false),
      xfs: this.#bool(child(head, 'fileSystem'), 'xfs', false),
      filter,
      inotify,
      watch,
      remotes,
      rsync,
      failLog: this.#failLog(child(sersync, 'failLog')),
      crontab,
      plugin,
      plugins: {
        command: blocks.command,
        socket: blocks.socket,
        refreshCDN: blocks.refreshCDN,
        http: blocks.http,
      },
      tuning: this.#tuning(child(head, 'tuning')),
      warnings: this.#p.warnings(),
    };
  }

  #host(node: Node | undefined): Config['host'] {
    const ip = attr(node, 'hostip') ?? SHIPPED.host.ip;
    const port = this.#number(node, 'port', SHIPPED.host.port, PORT, (n, key, msg) =>
      this.#p.warn(n.el.line, where(n, key), `${msg}; the status endpoint uses ${SHIPPED.host.port}`),
    );
    return { ip, port };
  }

  #filter(node: Node | undefined): Config['filter'] {
    const enabled = this.#bool(node, 'start', false);
    // Like sersync2, the expressions of a disabled filter are not read at all.
    const excludes = enabled ? this.#regexList(node, 'exclude', true) : [];
    return { enabled, excludes };
  }

  #inotify(node: Node | undefined): InotifyToggles {
    const t = {} as Record<keyof InotifyToggles, boolean>;
    for (const key of Object.keys(SHIPPED.inotify) as (keyof InotifyToggles)[]) {
      t[key] = this.#bool(child(node, key), 'start', SHIPPED.inotify[key]);
    }
    if (Object.values(t).every((on) => !on) && node !== undefined) {
      this.#p.warn(node.el.line, where(node), 'every event is off, so nothing is synced in real time (only -r and crontab)');
    }
    return t;
  }

  #watch(head: Node, sersync: Node | undefined, standalone: PluginName | null, blocks: PluginBlocks): { path: string } | null {
    if (standalone !== null && standalone !== 'command') {
      const own = blocks[standalone];
      if (own !== null && own.watch !== null) {
        const block = pluginBlock(head, standalone);
        const lp = child(block, 'localpath');
        if (lp !== undefined) this.#diskDir(own.watch, lp, 'watch', 'watchDirectory');
        return { path: own.watch };
      }
    }
    if (sersync === undefined) {
      this.#p.error(
        head.el.line,
        '<head>',
        'no <sersync> element; add <sersync><localpath watch="/dir"><remote ip="host" name="module"/></localpath></sersync>',
      );
      return null;
    }
    const lp = child(sersync, 'localpath');
    if (lp === undefined) {
      this.#p.error(sersync.el.line, where(sersync), 'no <localpath watch="/dir"> element, so there is nothing to watch');
      return null;
    }
    const raw = attr(lp, 'watch');
    if (raw === undefined || raw === '') {
      this.#p.error(lp.el.line, where(lp, 'watch'), 'the watch directory is missing; write watch="/absolute/dir"');
      return null;
    }
    const resolved = this.#absolute(lp, 'watch', raw);
    if (resolved === '/') {
      this.#p.error(lp.el.line, where(lp, 'watch'), 'watching / is not supported (sersync2 refused it too); name a directory');
      return null;
    }
    this.#diskDir(resolved, lp, 'watch', 'watchDirectory');
    return { path: resolved };
  }

  #remotes(lp: Node | undefined, watch: string, ssh: boolean, optional: boolean): Remote[] {
    const remotes: Remote[] = [];
    if (lp === undefined) return remotes;
    const nodes = children(lp, 'remote');
    for (const node of nodes) {
      const ip = (attr(node, 'ip') ?? '').trim();
      const name = (attr(node, 'name') ?? '').trim();
      const line = node.el.line;
      const at = where(node);
      if (name === '') {
        this.#p.error(
          line,
          at,
          'empty name; write the rsync module (the remote path with ssh), or an absolute directory without ip for a local mirror',
        );
        continue;
      }
      let remote: Remote;
      if (ip === '') {
        if (!path.isAbsolute(name)) {
          this.#p.error(
            line,
            where(node, 'name'),
            'no ip, and the name is not an absolute directory; write ip="host" for an rsync daemon, or name="/abs/dir" for a local mirror',
          );
          continue;
        }
        const dest = path.resolve(name);
        if (dest === '/') {
          this.#p.error(line, where(node, 'name'), 'mirroring into / is refused');
          continue;
        }
        if (watch !== '' && (isInside(dest, watch) || isInside(watch, dest))) {
          this.#p.error(
            line,
            where(node, 'name'),
            `the mirror and the watch directory ${watch} contain one another; the mirror would sync into itself or delete the source`,
          );
          continue;
        }
        this.#diskDir(dest, node, 'name');
        remote = { kind: 'local', ip: '', name: dest, id: dest, line };
      } else {
        let bad = false;
        for (const [key, value] of [
          ['ip', ip],
          ['name', name],
        ] as const) {
          if (value.startsWith('-')) {
            this.#p.error(line, where(node, key), 'starts with "-", so rsync would read it as an option');
            bad = true;
          }
        }
        if (ip.includes(':') && !/^(?:[^@]*@)?\[[^\]]*\]$/.test(ip)) {
          // sersync2 wrote `2001:db8::1::module`, which rsync cannot parse; brackets are the nearest thing that works.
          if (/^[0-9A-Fa-f:.]+$/.test(ip)) {
            this.#p.warn(line, where(node, 'ip'), `an IPv6 address without brackets; sersync-ts connects to [${ip}]`);
          } else {
            this.#p.error(line, where(node, 'ip'), 'an IPv6 address must be written in brackets, e.g. ip="[2001:db8::1]"');
            bad = true;
          }
        }
        if (bad) continue;
        remote = ssh ? { kind: 'ssh', ip, name, id: `${ip}:${name}`, line } : { kind: 'daemon', ip, name, id: `${ip}::${name}`, line };
      }
      if (remotes.some((r) => r.id === remote.id)) {
        this.#p.warn(line, at, `the same destination as an earlier <remote> (${remote.id}), ignored`);
        continue;
      }
      remotes.push(remote);
    }
    if (nodes.length === 0 && !optional) {
      this.#p.error(lp.el.line, where(lp), 'no <remote>; add <remote ip="host" name="module"/> inside <localpath>');
    }
    return remotes;
  }

  #rsync(
    node: Node | undefined,
    sshNode: Node | undefined,
    sshEnabled: boolean,
    watch: string,
    remotes: readonly Remote[],
  ): Config['rsync'] {
    const paramsNode = child(node, 'commonParams');
    const rawParams = attr(paramsNode, 'params') ?? SHIPPED.commonParams;
    const commonParams = this.#words(paramsNode, 'params', rawParams, true) ?? [];
    if (paramsNode !== undefined && commonParams.length === 0 && attr(paramsNode, 'params') !== undefined) {
      this.#p.warn(
        paramsNode.el.line,
        where(paramsNode, 'params'),
        'empty: rsync then gets no -a or -r, so a new directory is sent without its contents (sersync2 did the same); the usual value is -artuz',
      );
    }

    const authNode = child(node, 'auth');
    const authEnabled = this.#bool(authNode, 'start', false);
    const users = (attr(authNode, 'users') ?? SHIPPED.auth.users).trim();
    let passwordFile = attr(authNode, 'passwordfile') ?? SHIPPED.auth.passwordFile;
    if (authEnabled && authNode !== undefined) {
      if (users.startsWith('-')) {
        this.#p.error(authNode.el.line, where(authNode, 'users'), 'starts with "-", so rsync would read the destination as an option');
      }
      if (passwordFile !== '' && !path.isAbsolute(passwordFile) && watch !== '') {
        // sersync2 ran every rsync as `cd <watch> && rsync ...`, so a relative password file was found there.
        passwordFile = path.resolve(watch, passwordFile);
      }
      if (passwordFile !== '' && sshEnabled) {
        this.#p.warn(
          authNode.el.line,
          where(authNode, 'passwordfile'),
          'ignored with <ssh start="true">: rsync rejects --password-file over ssh (sersync2 passed it and every sync failed), so sersync-ts drops it',
        );
      } else if (passwordFile !== '' && remotes.some((r) => r.kind === 'daemon')) {
        this.diskChecks.push({ kind: 'passwordFile', path: passwordFile, line: authNode.el.line, where: where(authNode, 'passwordfile') });
      }
    }

    const portNode = child(node, 'userDefinedPort');
    const portEnabled = this.#bool(portNode, 'start', false);
    const port = this.#number(portNode, 'port', SHIPPED.port, PORT, this.#reportIf(portEnabled));

    const timeoutNode = child(node, 'timeout');
    const timeoutEnabled = this.#bool(timeoutNode, 'start', false);
    let timeoutOn = timeoutEnabled;
    const seconds = this.#number(timeoutNode, 'time', SHIPPED.timeoutSeconds, SECONDS, (n, key, message) => {
      if (!timeoutEnabled) {
        this.#p.report(false, n.el.line, where(n, key), message);
        return;
      }
      // sersync2 passed the text to rsync: 0 turns rsync's I/O timeout off, anything else but seconds failed every sync.
      timeoutOn = false;
      this.#p.warn(
        n.el.line,
        where(n, key),
        /^\s*0+\s*$/.test(attr(n, key) ?? '')
          ? '0 turns rsync\'s I/O timeout off; sersync-ts keeps its own default I/O timeout instead, as with start="false"'
          : 'expected whole seconds > 0 (rsync would refuse this and every sync fail); using the default I/O timeout, as with start="false"',
      );
    });

    const rawOptions = attr(sshNode, 'options');
    const sshOptions = rawOptions === undefined ? [] : (this.#words(sshNode, 'options', rawOptions, sshEnabled) ?? []);

    return {
      commonParams,
      auth: { enabled: authEnabled, users, passwordFile },
      port: { enabled: portEnabled, port },
      timeout: { enabled: timeoutOn, seconds },
      ssh: { enabled: sshEnabled, options: sshOptions },
    };
  }

  #failLog(node: Node | undefined): Config['failLog'] {
    let file = attr(node, 'path') ?? SHIPPED.failLog.path;
    if (file === '' && node !== undefined) {
      this.#p.warn(node.el.line, where(node, 'path'), `empty (sersync2 then ran /bin/sh on its terminal); using ${SHIPPED.failLog.path}`);
      file = SHIPPED.failLog.path;
    }
    if (node !== undefined) file = this.#absolute(node, 'path', file);
    const raw = attr(node, 'timeToExecute');
    let retryCapMinutes: number = SHIPPED.failLog.minutes;
    if (raw !== undefined && node !== undefined) {
      if (raw.trim() === '') retryCapMinutes = SHIPPED.failLog.minutesWhenEmpty;
      else {
        // sersync2: atoi(value) minutes; at 0 or less it replayed its failLog at every idle minute.
        retryCapMinutes = this.#minutes(node, 'timeToExecute', raw, {
          atMostZero: 1,
          meaning: 'sersync2 replayed its failLog every idle minute',
        });
      }
    }
    return { path: file, retryCapMinutes };
  }

  #crontab(node: Node | undefined): Config['crontab'] {
    const enabled = this.#bool(node, 'start', false);
    const rawSchedule = attr(node, 'schedule');
    // sersync2: atoi(value) minutes, and 0 or less (a word too) meant 600.
    const scheduleMinutes =
      rawSchedule === undefined || node === undefined
        ? SHIPPED.crontabMinutes
        : this.#minutes(node, 'schedule', rawSchedule, { atMostZero: SHIPPED.crontabMinutes, meaning: 'as sersync2 did' });
    const filterNode = child(node, 'crontabfilter');
    const filterEnabled = this.#bool(filterNode, 'start', false);
    const excludes: string[] = [];
    if (filterEnabled && filterNode !== undefined) {
      // rsync patterns, not regexes: handed to rsync as --exclude=PATTERN, never compiled here.
      for (const ex of children(filterNode, 'exclude')) {
        const expr = attr(ex, 'expression') ?? '';
        if (expr.trim() === '') this.#p.warn(ex.el.line, where(ex, 'expression'), 'empty pattern, ignored');
        else excludes.push(expr);
      }
    }
    return { enabled, scheduleMinutes, filter: { enabled: filterEnabled, excludes } };
  }

  #pluginChoice(node: Node | undefined): Config['plugin'] {
    const enabled = this.#bool(node, 'start', false);
    const name = attr(node, 'name') ?? 'command';
    if (isPluginName(name)) return { enabled, name };
    if (node !== undefined) {
      this.#p.report(
        enabled,
        node.el.line,
        where(node, 'name'),
        'unknown plugin; expected command, socket, refreshCDN or http (exact case)',
      );
    }
    // Already reported; `enabled: false` keeps a second complaint about a missing command block away.
    return { enabled: false, name: 'command' };
  }

  #pluginBlocks(head: Node, active: PluginName | null, choice: Node | undefined): PluginBlocks {
    const blocks: PluginBlocks = { command: null, socket: null, refreshCDN: null, http: null };
    for (const name of PLUGIN_NAMES) {
      const block = pluginBlock(head, name);
      const enabled = active === name;
      if (block === undefined) {
        if (enabled) {
          const at = choice ?? head;
          this.#p.error(at.el.line, where(at), `no <plugin name="${name}"> block under <head>; the plugin needs one`);
        }
        continue;
      }
      if (name === 'command') blocks.command = this.#commandPlugin(block, enabled);
      else if (name === 'socket') blocks.socket = this.#socketPlugin(block, enabled);
      else if (name === 'refreshCDN') blocks.refreshCDN = this.#cdnPlugin(block, enabled);
      else blocks.http = this.#httpPlugin(block, enabled);
    }
    return blocks;
  }

  #commandPlugin(block: Node, enabled: boolean): CommandPluginConfig {
    const param = child(block, 'param');
    const words = (key: 'prefix' | 'suffix'): string[] => this.#words(param, key, attr(param, key) ?? SHIPPED.command[key], enabled) ?? [];
    const prefix = words('prefix');
    const suffix = words('suffix');
    const ignoreError = this.#bool(param, 'ignoreError', SHIPPED.command.ignoreError);
    const filterNode = child(block, 'filter');
    const filterEnabled = this.#bool(filterNode, 'start', false);
    const includes = filterEnabled ? this.#regexList(filterNode, 'include', enabled) : [];
    if (enabled && filterEnabled && includes.length === 0 && filterNode !== undefined) {
      this.#p.warn(filterNode.el.line, where(filterNode), 'on, but without any <include expression>: the command never runs');
    }
    return { prefix, suffix, ignoreError, filter: { enabled: filterEnabled, includes } };
  }

  #socketPlugin(block: Node, enabled: boolean): SocketPluginConfig {
    const lp = child(block, 'localpath');
    const watch = this.#pluginWatch(lp, enabled);
    const hosts: { ip: string; port: number }[] = [];
    for (const node of children(lp, 'deshost')) {
      const ip = (attr(node, 'ip') ?? '').trim();
      if (ip === '') {
        this.#p.report(enabled, node.el.line, where(node, 'ip'), 'missing host address');
        continue;
      }
      let ok = true;
      const port = this.#number(node, 'port', 0, PORT, (n, key, msg) => {
        ok = false;
        this.#p.report(enabled, n.el.line, where(n, key), msg);
      });
      if (attr(node, 'port') === undefined) {
        ok = false;
        this.#p.report(enabled, node.el.line, where(node), 'missing port');
      }
      if (ok) hosts.push({ ip, port });
    }
    if (enabled && hosts.length === 0) {
      const at = lp ?? block;
      this.#p.error(at.el.line, where(at), 'no usable <deshost ip="..." port="..."/>; the socket plugin has nowhere to send');
    }
    return { watch, hosts };
  }

  #cdnPlugin(block: Node, enabled: boolean): RefreshCdnPluginConfig {
    const lp = child(block, 'localpath');
    const watch = this.#pluginWatch(lp, enabled);
    const info = child(lp, 'cdninfo');
    const sendurl = child(lp, 'sendurl');
    const regexurl = child(lp, 'regexurl');
    // sersync2 refuses the plugin when any of these is missing or empty (SPEC §2.8).
    const required = (node: Node | undefined, tag: string, key: string): string => {
      const value = attr(node, key) ?? '';
      if (value === '') {
        const at = node === undefined ? (lp ?? block) : node;
        this.#p.report(
          enabled,
          at.el.line,
          node === undefined ? where(at) : where(node, key),
          node === undefined ? `no <${tag} ${key}="...">` : `missing ${key}`,
        );
      }
      return value;
    };
    const domainName = required(info, 'cdninfo', 'domainname');
    const portRaw = required(info, 'cdninfo', 'port');
    const port = portRaw === '' ? SHIPPED.cdnPort : this.#number(info, 'port', SHIPPED.cdnPort, PORT, this.#reportIf(enabled));
    const username = required(info, 'cdninfo', 'username');
    const password = required(info, 'cdninfo', 'passwd');
    const sendUrlBase = required(sendurl, 'sendurl', 'base');
    const regexEnabled = this.#bool(regexurl, 'regex', false);
    const match = regexEnabled ? required(regexurl, 'regexurl', 'match') : (attr(regexurl, 'match') ?? '');
    if (regexEnabled && match !== '' && regexurl !== undefined) {
      // Used with regex_search (unanchored) on the absolute path; only checked here, the plugin compiles it.
      const problem = regexProblem(this.#utf8 ? fromUtf8(match) : match);
      if (problem !== null) this.#p.report(enabled, regexurl.el.line, where(regexurl, 'match'), `invalid regular expression: ${problem}`);
    }
    return { watch, domainName, port, username, password, sendUrlBase, regex: { enabled: regexEnabled, match } };
  }

  /**
   * The http plugin was never compiled into sersync2 2.5.x, so its XML is sersync-ts's own, shaped like the socket
   * plugin's: `<plugin name="http"><localpath watch="/dir"><deshost url="http://host:port/path"/></localpath></plugin>`.
   */
  #httpPlugin(block: Node, enabled: boolean): HttpPluginConfig {
    const lp = child(block, 'localpath');
    const watch = this.#pluginWatch(lp, enabled);
    const host = child(lp, 'deshost');
    const url = (attr(host, 'url') ?? '').trim();
    if (url === '') {
      const at = host ?? lp ?? block;
      this.#p.report(
        enabled,
        at.el.line,
        host === undefined ? where(at) : where(host, 'url'),
        host === undefined ? 'no <deshost url="http://host:port/path"/>' : 'missing url',
      );
    } else if (host !== undefined && !/^https?:$/.test(URL.parse(url)?.protocol ?? '')) {
      this.#p.report(enabled, host.el.line, where(host, 'url'), 'expected an http:// or https:// URL');
    }
    return { watch, url };
  }

  #pluginWatch(lp: Node | undefined, enabled: boolean): string | null {
    const raw = attr(lp, 'watch');
    if (lp === undefined || raw === undefined || raw === '') {
      if (lp !== undefined) this.#p.report(enabled, lp.el.line, where(lp, 'watch'), 'missing watch directory');
      return null;
    }
    return this.#absolute(lp, 'watch', raw);
  }

  #tuning(node: Node | undefined): Tuning {
    if (node === undefined) return TUNING_DEFAULTS;
    const d = TUNING_DEFAULTS;
    const bad = this.#reportIf(true);
    const quietMs = this.#number(node, 'quietMs', d.quietMs, { min: 0, max: DAY_MS, expect: 'expected whole milliseconds >= 0' }, bad);
    const maxWaitMs = this.#number(node, 'maxWaitMs', d.maxWaitMs, { min: 1, max: DAY_MS, expect: 'expected whole milliseconds > 0' }, bad);
    if (maxWaitMs < quietMs) this.#p.error(node.el.line, where(node, 'maxWaitMs'), `must not be less than quietMs (${quietMs})`);
    const counts = { min: 1, max: 1_000_000_000, expect: 'expected a whole number > 0' };
    const watcherRaw = attr(node, 'watcher') ?? d.watcher;
    let watcher = d.watcher;
    if (watcherRaw === 'chokidar' || watcherRaw === 'dirs') watcher = watcherRaw;
    else this.#p.error(node.el.line, where(node, 'watcher'), 'expected "chokidar" or "dirs"');
    const stateRaw = attr(node, 'stateDir') ?? '';
    let stateDir: string | null = null;
    if (stateRaw !== '') {
      if (path.isAbsolute(stateRaw)) stateDir = path.resolve(stateRaw);
      else this.#p.error(node.el.line, where(node, 'stateDir'), 'expected an absolute directory');
    }
    return {
      dotFiles: this.#bool(node, 'dotFiles', d.dotFiles),
      tempGlobs: this.#tempGlobs(node),
      quietMs,
      maxWaitMs,
      maxChildrenPerDir: this.#number(node, 'maxChildrenPerDir', d.maxChildrenPerDir, counts, bad),
      maxPendingPaths: this.#number(node, 'maxPendingPaths', d.maxPendingPaths, counts, bad),
      watcher,
      stateDir,
      progressMs: this.#number(
        node,
        'progressMs',
        d.progressMs,
        { min: 100, max: DAY_MS, expect: 'expected whole milliseconds >= 100' },
        bad,
      ),
      maxDelete: attr(node, 'maxDelete') === undefined ? null : this.#number(node, 'maxDelete', 0, counts, bad),
    };
  }

  /** `tempGlobs="*.part *.crdownload"`: the extra temporary-file globs, separated by blanks; "" clears them. */
  #tempGlobs(node: Node): readonly string[] {
    const raw = attr(node, 'tempGlobs');
    if (raw === undefined) return TUNING_DEFAULTS.tempGlobs;
    const globs: string[] = [];
    for (const glob of raw.split(/\s+/).filter(Boolean)) {
      const problem = tempGlobProblem(glob);
      if (problem === null) globs.push(glob);
      else this.#p.warn(node.el.line, where(node, 'tempGlobs'), `"${glob}" ${problem}; ignored`);
    }
    return globs;
  }

  /** A regex list (`exclude`, `include`), anchored like boost::regex_match and compiled over byte strings. */
  #regexList(node: Node | undefined, tag: string, enabled: boolean): FilterRegex[] {
    const list: FilterRegex[] = [];
    for (const item of children(node, tag)) {
      const source = attr(item, 'expression') ?? '';
      const line = item.el.line;
      if (source === '') {
        this.#p.warn(line, where(item, 'expression'), 'empty expression, ignored');
        continue;
      }
      const bytes = this.#utf8 ? fromUtf8(source) : source;
      // Checked alone first: `a)|(b` is invalid, but would compile once wrapped in ^(?:...)$ and match wrongly.
      const problem = regexProblem(bytes);
      if (problem !== null) {
        // sersync2 printed "regular expression error" and went on without the pattern; so does sersync-ts.
        const skipped = enabled ? 'skipped as sersync2 skipped it, so it excludes nothing' : 'not used while this part is off';
        const glob = /^\*[^*()|+{}\\]*$/.test(source) ? `; a file pattern ${source} is the regex ${globAsRegex(source)}` : '';
        this.#p.warn(line, where(item, 'expression'), `invalid regular expression: ${problem}; ${skipped}${glob}`);
        continue;
      }
      if (/\\[AZz<>`']/.test(source)) {
        this.#p.warn(
          line,
          where(item, 'expression'),
          "uses a boost-only escape (\\A \\Z \\z \\< \\> \\` \\'), which means something else in JavaScript",
        );
      }
      // `<filter>`'s `/name` (a literal, one component): a top-level entry's subject has no slash, a deeper one two.
      // (The command plugin's includes see absolute paths.)
      const name = source.replace(/^\^?\//, '').replace(/\/\*\$?$|\$$/, '');
      if (tag === 'exclude' && /^\^?\/(?:[^/\\.*+?()[\]{}|^$]|\\[^A-Za-z0-9/])+(?:\/\*)?\$?$/.test(source)) {
        this.#p.warn(
          line,
          where(item, 'expression'),
          `matches nothing in sersync2, which tests a top-level entry as "name", without a leading slash (deeper ones as "/dir/name"); ` +
            `sersync-ts excludes the top-level "${name}" (rsync exclude /${name} in every run), as "^${name}" would`,
        );
      }
      const part = String.raw`(?:[^/\\.*+?()[\]{}|^$]|\\[^A-Za-z0-9/])+`;
      if (tag === 'exclude' && new RegExp(`^\\^?${part}(?:/${part})+\\$?$`).test(source)) {
        const dir = source.replace(/^\^/, '').replace(/\$$/, '');
        this.#p.warn(
          line,
          where(item, 'expression'),
          `matches nothing in sersync2 (an event below the top level is tested as "/${dir}", a directory at start-up as "${dir}/"), so it excludes nothing; ` +
            `"^${dir}/*" keeps the directory ${dir} out`,
        );
      }
      list.push({ source, regex: new RegExp(`^(?:${bytes})$`), line });
    }
    return list;
  }

  /** Only the exact value `true` is true, as in sersync2; anything but `true`/`false` earns a warning. */
  #bool(node: Node | undefined, key: string, fallback: boolean): boolean {
    const value = attr(node, key);
    if (value === undefined || node === undefined) return fallback;
    if (value !== 'true' && value !== 'false') {
      this.#p.warn(node.el.line, where(node, key), 'only the exact value "true" turns this on; read as false');
    }
    return value === 'true';
  }

  #number(
    node: Node | undefined,
    key: string,
    fallback: number,
    range: { min: number; max: number; expect: string },
    onBad: (node: Node, key: string, message: string) => void,
  ): number {
    const raw = attr(node, key);
    if (raw === undefined || node === undefined) return fallback;
    const text = raw.trim();
    const value = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
    if (Number.isInteger(value) && value >= range.min && value <= range.max) return value;
    onBad(node, key, range.expect);
    return fallback;
  }

  /**
   * A count of minutes read as sersync2 read it, with C's atoi: leading digits count, the rest is ignored, and no
   * digits at all is 0. Anything atoi had to bend earns a warning saying what the value became.
   */
  #minutes(node: Node, key: string, raw: string, zero: { atMostZero: number; meaning: string }): number {
    const value = atoi(raw);
    const at = where(node, key);
    if (value <= 0) {
      this.#p.warn(node.el.line, at, `not a number of minutes > 0, read as ${zero.atMostZero} (${zero.meaning})`);
      return zero.atMostZero;
    }
    if (value > MINUTES.max) {
      this.#p.warn(node.el.line, at, `more than a year, read as ${MINUTES.max} minutes`);
      return MINUTES.max;
    }
    if (!/^\s*\+?\d+\s*$/.test(raw)) this.#p.warn(node.el.line, at, `not a whole number, read as ${value} as sersync2 did (atoi)`);
    return value;
  }

  /** The onBad callback of #number for an element whose `start` decides between error and warning. */
  #reportIf(enabled: boolean): (node: Node, key: string, message: string) => void {
    return (node, key, message) => this.#p.report(enabled, node.el.line, where(node, key), message);
  }

  #words(node: Node | undefined, key: string, raw: string, enabled: boolean): string[] | null {
    const split = splitShellWords(raw);
    if (!split.ok) {
      if (node !== undefined)
        this.#p.report(enabled, node.el.line, where(node, key), `${split.reason}; the value is split into words like sh does`);
      return null;
    }
    if (enabled && split.shellSyntax !== '' && node !== undefined) {
      this.#p.warn(
        node.el.line,
        where(node, key),
        `shell syntax (${[...split.shellSyntax].join(' ')}) is passed literally: sersync-ts runs commands without a shell`,
      );
    }
    return split.words;
  }

  /** A path from the file, absolute and without trailing slashes; a relative one is resolved against the cwd. */
  #absolute(node: Node, key: string, raw: string): string {
    if (path.isAbsolute(raw)) return path.resolve(raw);
    const resolved = path.resolve(this.#cwd, raw);
    this.#p.warn(node.el.line, where(node, key), `relative path, resolved against the current directory: ${resolved}`);
    return resolved;
  }

  #diskDir(dir: string, node: Node, key: string, kind: 'watchDirectory' | 'directory' = 'directory'): void {
    this.diskChecks.push({ kind, path: dir, line: node.el.line, where: where(node, key) });
  }
}

type PluginBlocks = {
  command: CommandPluginConfig | null;
  socket: SocketPluginConfig | null;
  refreshCDN: RefreshCdnPluginConfig | null;
  http: HttpPluginConfig | null;
};

function isPluginName(name: string): name is PluginName {
  return (PLUGIN_NAMES as readonly string[]).includes(name);
}

/** `*.gz` → `.*\.gz`: the regex a shell-style pattern means, for a hint. */
function globAsRegex(glob: string): string {
  return glob.replace(/[.^$]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
}

/** C's atoi: optional blanks and sign, then digits; whatever follows is ignored, and no digits at all is 0. */
export function atoi(text: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)/.exec(text);
  if (m === null) return 0;
  const digits = Number((m[2] as string).slice(0, 16));
  return m[1] === '-' ? -digits : digits;
}

function regexProblem(source: string): string | null {
  try {
    new RegExp(source);
    return null;
  } catch (err) {
    // V8 says `Invalid regular expression: /(.*\.gz/: Unterminated group`; the expression is already in the message.
    return err instanceof Error ? err.message.replace(/^Invalid regular expression: \/[\s\S]*\/[a-z]*: /, '') : String(err);
  }
}

function isInside(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith('/') ? outer : `${outer}/`);
}

function segment(node: Node): string {
  return node.tag === ROOT_TAG && node.parent === '' ? '' : `<${node.tag}${node.extra}>`;
}

function child(node: Node | undefined, tag: string): Node | undefined {
  return children(node, tag)[0];
}

function children(node: Node | undefined, tag: string): Node[] {
  if (node === undefined) return [];
  const lower = tag.toLowerCase();
  const parent = node.parent + segment(node);
  return node.el.children.filter((e) => e.name === lower).map((el) => ({ el, tag, parent, extra: '' }));
}

/** The first top-level `<plugin name="NAME">`; plugin names are attribute values, so they are case-sensitive. */
function pluginBlock(head: Node, name: PluginName): Node | undefined {
  const el = head.el.children.find((e) => e.name === 'plugin' && e.attrs.get('name') === name);
  return el === undefined ? undefined : { el, tag: 'plugin', parent: '', extra: ` name="${name}"` };
}

function attr(node: Node | undefined, key: string): string | undefined {
  return node?.el.attrs.get(key.toLowerCase());
}

/** `<sersync><rsync><timeout>`, or with an attribute `<sersync><rsync><timeout time="abc">`. */
function where(node: Node, key?: string): string {
  if (node.tag === ROOT_TAG && node.parent === '') return '<head>';
  if (key === undefined) return node.parent + segment(node);
  const value = attr(node, key);
  const shown = value === undefined ? '' : ` ${key}="${value.replace(/[\n\r\t]/g, ' ')}"`;
  return `${node.parent}<${node.tag}${node.extra}${shown}>`;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
