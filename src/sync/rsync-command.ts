import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Config, Remote, RsyncSettings } from '../config/model.ts';
import type { PathFilter } from '../watch/path-filter.ts';
import { toBuffer, type RelPath } from '../core/paths.ts';
import { stateDirFor } from '../recovery/state-dir.ts';

/**
 * Pure planning of rsync invocations: argv arrays and NUL-separated stdin, never a shell string. One batch becomes
 * at most two processes per remote: an update run (exactly the listed paths, directories recursively: `--files-from`,
 * or include rules when that is cheaper, see planUpdate) and, when something was removed, a delete-only run
 * (lsyncd-style include rules with `--delete --existing --ignore-existing`, which deletes and transfers nothing).
 * Neither needs `--delete-missing-args`, which misbehaves with -R on receivers before 3.2.3 and on 3.4.3
 * (rsync's own changelog and our measurements), so any receiver from 3.1 on is fine. (A rename's deletion through ssh
 * tries it first, without -R, and falls back to the delete run: planRenameDelete.)
 */

export interface RsyncInvocation {
  readonly kind: 'update' | 'delete' | 'full' | 'rename';
  readonly args: readonly string[];
  readonly input: Buffer | null;
}

export interface CommandContext {
  readonly watch: string;
  readonly remote: Remote;
  readonly rsync: RsyncSettings;
  /** Propagate removals (`<delete>` on): `--delete` in full syncs and delete runs at all. */
  readonly deletes: boolean;
  /** `--exclude=` arguments from the path filter (only excludes: include rules would reach past the listed paths). */
  readonly filters: readonly string[];
  /** The path filter's arguments for full syncs (no temporary-file globs); `filters` when absent. */
  readonly fullFilters?: readonly string[];
  /** I/O timeout when `<timeout>` is off: a transfer that moves no data this long is stuck. */
  readonly defaultTimeoutSeconds: number;
  /** Update runs compare mtimes to the nanosecond (default); false once a receiver older than 3.1.3 refused it. */
  readonly nanoseconds?: boolean;
  /** A rename's deletion may start early (planRenameDelete); false once the receiver refused that form. */
  readonly earlyDeletes?: boolean;
  /** A renamed directory may go in several runs side by side (splitRename); false once RemoteLane ended that. */
  readonly splitRenames?: boolean;
  /** How many renames in a row had a lead slow to answer (SLOW_START_MS). */
  readonly slowRenameStarts?: number;
  /** `<tuning maxDelete>`: rsync's --max-delete for runs that delete; null or absent: no cap. */
  readonly maxDelete?: number | null;
  /** ssh remotes: where this site's shared connection may put its socket (sshControlPathIn); null: nowhere. */
  readonly sshSocketBase?: string | null;
  /** ssh remotes: the socket of the open shared connection (SshMaster) that the runs join; absent: none. */
  readonly sshControlPath?: string | null;
}

/** One remote's context from the config: the one place the daemon and `--check` take it from. */
export function commandContextFor(config: Config, remote: Remote, filter: PathFilter, defaultTimeoutSeconds: number): CommandContext {
  return {
    watch: config.watch,
    remote,
    rsync: config.rsync,
    deletes: config.inotify.delete,
    filters: filter.rsyncFilters,
    fullFilters: filter.fullSyncFilters,
    defaultTimeoutSeconds,
    maxDelete: config.tuning.maxDelete,
    sshSocketBase:
      remote.kind === 'ssh'
        ? sshControlPathIn(stateDirFor(config.tuning.stateDir), [
            config.watch,
            remote.id,
            config.rsync.auth.users,
            config.rsync.port,
            config.rsync.ssh.options,
          ])
        : null,
  };
}

export function maxDelete(ctx: CommandContext): string[] {
  return ctx.maxDelete === undefined || ctx.maxDelete === null ? [] : [`--max-delete=${ctx.maxDelete}`];
}

/** A rule that keeps a path and everything below it out of a full sync or sweep: nothing deleted, nothing sent (held deletions). */
export function protectRule(path: RelPath): string | null {
  // An argument reaches rsync as UTF-8: a name that is not valid UTF-8 cannot be written in one (null: hold all).
  const bytes = toBuffer(path);
  if (!isUtf8(bytes)) return null;
  // An exclude, not a P rule: it keeps the receiver's copy from deletion and also sends nothing from the bare
  // directory that an unmounted disk left, whose stale files would otherwise overwrite the mirror's.
  return `--filter=- ${escapeAll(`/${bytes.toString('utf8')}`)}/***`;
}

/** rsync's `--stats` line "Total bytes sent: 1,234" (digits grouped by the locale) → bytes, or 0. */
export function bytesSentFromStats(stdout: string): number {
  const m = /Total bytes sent: ([\d,.' ]+)/.exec(stdout);
  return m ? Number((m[1] as string).replace(/\D/g, '')) : 0;
}

/**
 * Above this many include rules, a batch with directories goes as `--files-from` after all: rsync matches every file
 * it visits against every rule, and past a few hundred rules that costs more than the per-file walk it saves.
 */
export const MAX_TREE_RULES = 200;

/**
 * Paths that exist locally: sent as they are, directories (`trees`) with everything below them.
 *
 * Two forms of the same run. `--files-from` on stdin names exactly the listed paths. But rsync 3.5 opens every file
 * it sends for such a list through a component-by-component walk (its defence against planted symlinks in
 * operator-supplied paths, rsync(1) `--insecure-links`), also every file below a listed directory: for a new
 * 20k-file tree that doubled the sender's system time next to a plain `rsync -a` of the same tree. So a batch that
 * holds directories and few paths goes instead as include rules on stdin (lsyncd's form, and the delete run's):
 * rsync walks from the root as a plain `rsync -a` does, into the listed directories only. The path filter's
 * arguments are all excludes, so they cannot pull unrelated directories in.
 */
export function planUpdate(
  ctx: CommandContext,
  paths: readonly RelPath[],
  extraFilters: readonly string[] = [],
  trees: ReadonlySet<RelPath> = new Set(),
  /** A NUL-separated file of further exclude rules (exclude-file.ts), or null. */
  excludeFrom: string | null = null,
): RsyncInvocation {
  const head = [
    ...baseParams(ctx),
    ...(ctx.deletes ? ['--force'] : []),
    ...(ctx.nanoseconds === false ? [] : nanosecondQuickCheck(ctx.rsync.commonParams)),
    '--stats',
    // Before any *-from option: rsync reads such a file as it parses that option.
    '--from0',
  ];
  const filters = [...ctx.filters, ...extraFilters, ...excludeFromArgs(excludeFrom)];
  // At least one rule per path: a longer list never becomes rules, so its rules are not built either.
  const asRules = trees.size > 0 && paths.length <= MAX_TREE_RULES;
  const rules = asRules ? includeRules(paths.map((p) => ({ path: p, tree: trees.has(p) }))) : null;
  if (rules !== null && rules.size <= MAX_TREE_RULES) {
    const args = [...head, ...filters, '--include-from=-', '--exclude=*', ...endpoints(ctx)];
    return { kind: 'update', args, input: nulList(rules) };
  }
  const args = [...head, '--files-from=-', ...filters, ...endpoints(ctx)];
  return { kind: 'update', args, input: nulList(paths.map((p) => `/${p}`)) };
}

export interface DeleteTarget {
  readonly path: RelPath;
  /** Also delete what the remote holds below it that the source does not (a missing or collapsed directory). */
  readonly tree: boolean;
}

/**
 * Removes from the remote whatever of these paths no longer exists locally; transfers nothing. `protect`: rules that
 * keep the directories of lost mount points out (protectRule).
 */
export function planDelete(ctx: CommandContext, targets: readonly DeleteTarget[], protect: readonly string[] = []): RsyncInvocation {
  const args = [
    ...baseParams(ctx),
    '--delete',
    '--force',
    ...maxDelete(ctx),
    '--existing',
    '--ignore-existing',
    ...ctx.filters,
    // Before the include rules (the first match wins): a target that holds a lost mount point leaves it alone.
    ...protect,
    '--from0',
    '--include-from=-',
    '--exclude=*',
    ...endpoints(ctx),
  ];
  return { kind: 'delete', args, input: nulList(includeRules(targets)) };
}

/**
 * Include rules that reach exactly these paths (lsyncd's form): each ancestor directory, the path, and for a tree
 * everything below it. Anchored at the transfer root, wildcards escaped; meant to be followed by `--exclude=*`.
 */
function includeRules(targets: readonly DeleteTarget[]): Set<string> {
  const rules = new Set<string>();
  for (const { path, tree } of targets) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) rules.add(literalPattern(`/${parts.slice(0, i).join('/')}/`));
    rules.add(literalPattern(`/${path}`));
    if (tree) rules.add(`${escapeAll(`/${path}`)}/***`);
  }
  return rules;
}

export function nulList(items: Iterable<string>): Buffer {
  const parts: Buffer[] = [];
  for (const item of items) parts.push(toBuffer(item), NUL);
  return Buffer.concat(parts);
}

/**
 * The whole tree, with `--delete` when removals propagate (sersync2's `-r` and crontab sync). `--info=progress2`
 * (whole-transfer progress, read by the sender only) lets a long full sync report files, bytes, rate and ETA.
 * A `sweep` is a full sync's deletions alone (Batch.sweep): `--existing --ignore-existing` deletes what the source
 * lacks and sends nothing; the full sync's filters keep what it keeps out untouched.
 */
export function planFull(
  ctx: CommandContext,
  extraFilters: readonly string[] = [],
  excludeFrom: string | null = null,
  mode: 'full' | 'sweep' = 'full',
): RsyncInvocation {
  const sweep = mode === 'sweep';
  const args = [
    ...baseParams(ctx),
    ...(ctx.deletes || sweep ? ['--delete', '--force', ...maxDelete(ctx)] : []),
    ...(sweep ? ['--existing', '--ignore-existing'] : ['--stats', '--info=progress2']),
    ...(excludeFrom === null ? [] : ['--from0']),
    ...(ctx.fullFilters ?? ctx.filters),
    ...extraFilters,
    ...excludeFromArgs(excludeFrom),
    ...endpoints(ctx),
  ];
  return { kind: sweep ? 'delete' : 'full', args, input: null };
}

/** The file's rules go after the path filter's and the crontab's, as the single excludes did (first match wins). */
function excludeFromArgs(file: string | null): string[] {
  return file === null ? [] : [`--exclude-from=${file}`];
}

const NUL = Buffer.from([0]);

/**
 * `-u` (skip files that are newer on the receiver) cannot stay in a mirror that sends files while they are written:
 * a copy taken mid-write carries the copy time as mtime, `cp -a` then sets the older original mtime, and `-u` would
 * keep the incomplete remote copy forever. sersync2's default `-artuz` has it; sersync-ts drops it (and says so).
 */
export const UPDATE_FLAG_NOTE =
  'note: commonParams has -u (--update); sersync-ts drops it, since a file copied while still being written would keep its partial remote copy';

export function withoutUpdateFlag(params: readonly string[]): { params: string[]; dropped: boolean } {
  let dropped = false;
  const out: string[] = [];
  for (const p of params) {
    if (p === '--update') {
      dropped = true;
      continue;
    }
    if (/^-[A-Za-z0-9]+$/.test(p) && p.includes('u')) {
      dropped = true;
      const rest = p.replace(/u/g, '');
      if (rest !== '-') out.push(rest);
      continue;
    }
    out.push(p);
  }
  return { params: out, dropped };
}

/**
 * rsync's own connection to a daemon leaves Nagle's algorithm on: the client's small protocol writes (its arguments,
 * the end-of-run handshake) then wait for the daemon's delayed ACK, about 40 ms each on Linux, several times per run,
 * whatever the run carries. Client side only (rsync does not pass it to the daemon); commonParams may set their own.
 */
const DAEMON_SOCKOPTS = '--sockopts=TCP_NODELAY';

/** commonParams (without -u), plus `-r` where they lack it: with --files-from, even -a does not recurse. */
export function baseParams(ctx: CommandContext): string[] {
  const params = withoutUpdateFlag(ctx.rsync.commonParams).params;
  if (!params.some(isRecursiveFlag)) params.push('-r');
  const { port, timeout, ssh } = ctx.rsync;
  params.push(`--timeout=${timeout.enabled ? timeout.seconds : ctx.defaultTimeoutSeconds}`);
  if (ctx.remote.kind === 'daemon') {
    if (port.enabled) params.push(`--port=${port.port}`);
    params.push('--contimeout=30');
    if (!params.some((p) => p === '--sockopts' || p.startsWith('--sockopts='))) params.push(DAEMON_SOCKOPTS);
  }
  if (ctx.remote.kind === 'ssh') {
    const words = ['ssh', ...(port.enabled ? ['-p', String(port.port)] : []), ...ssh.options, ...sshMultiplexing(ctx)];
    params.push('-e', words.map(quoteForRsyncShell).join(' '));
  }
  return params;
}

/**
 * The socket of one site's connection to one remote, named by a hash of what chooses the connection (the watch
 * root, the remote, the user, the port, the ssh options with their keys): ssh's own %C leaves out the key, so two configs
 * with their own keys for one account (forced commands) would share a master, and one daemon's restart would cut
 * the other's transfers. SshMaster adds the daemon's pid and a nonce (up to 15 characters); ssh first binds under a
 * name 17 characters longer, and a Unix socket's path has at most 107 bytes; ssh expands % and ${} in it and splits
 * an option's value at blanks and quotes: such a state directory gets no shared connection.
 */
export function sshControlPathIn(dir: string, key: unknown): string | null {
  const path = join(dir, `ssh-${createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16)}`);
  return Buffer.byteLength(path) + 15 + 17 <= 107 && !/[%$\s"'\\]/.test(path) ? path : null;
}

/** Where a shared connection's socket goes, or null: not ssh, no usable path, or `<ssh options>` that set Control…. */
export function sshSocketBase(ctx: CommandContext): string | null {
  if (ctx.remote.kind !== 'ssh' || !ctx.sshSocketBase) return null;
  const options = ctx.rsync.ssh.options;
  return options.some((o) => /control(master|path|persist)/i.test(o)) || setsMasterFlag(options) ? null : ctx.sshSocketBase;
}

/** ssh's flags that take an argument (its getopt string), attached (`-p22`) or as the next word. */
const SSH_ARGUMENT_FLAGS = new Set('bceilmopBDEFIJLOPQRSwW');

/** Whether ssh words hold -M (ControlMaster) or -S (ControlPath), read as ssh's getopt reads them: `-qM`, `-Sctl`. */
function setsMasterFlag(words: readonly string[]): boolean {
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    if (!word.startsWith('-') || word.startsWith('--')) continue;
    for (let j = 1; j < word.length; j++) {
      const flag = word[j] as string;
      if (flag === 'M' || flag === 'S') return true;
      if (SSH_ARGUMENT_FLAGS.has(flag)) {
        if (j === word.length - 1) i++;
        break;
      }
    }
  }
  return false;
}

/**
 * The runs join the site's master (SshMaster) when it is open and connect on their own when it is not: never
 * ControlMaster=auto, whose run would become a master in the background that nobody stops.
 */
function sshMultiplexing(ctx: CommandContext): string[] {
  const path = ctx.sshControlPath;
  return path ? ['-o', 'ControlMaster=no', '-o', `ControlPath=${path}`, ...keepAlive(ctx)] : [];
}

/** A connection whose peer stopped answering would stall every run on it: keep-alives end it within 15 s. */
function keepAlive(ctx: CommandContext): string[] {
  return ctx.rsync.ssh.options.some((o) => /serveralive/i.test(o)) ? [] : ['-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3'];
}

/**
 * The argv of the master connection at `socket` (run as `ssh ARGS`): the runs' words (port, `<ssh options>`), no
 * command (-N), never a prompt (BatchMode, unless the options say otherwise: ssh takes an option's first value),
 * the target last.
 */
export function sshMasterArgs(ctx: CommandContext, socket: string): string[] {
  return [...sshSocketArgs(ctx, socket, 'yes'), ...keepAlive(ctx), '-N', sshTarget(ctx)];
}

/** A control command (`ssh -O exit`) to the master at `socket`: a client of it, so ControlMaster=no. */
export function sshControlArgs(ctx: CommandContext, socket: string, command: 'exit'): string[] {
  return [...sshSocketArgs(ctx, socket, 'no'), '-O', command, sshTarget(ctx)];
}

function sshSocketArgs(ctx: CommandContext, socket: string, master: 'yes' | 'no'): string[] {
  const { port, ssh } = ctx.rsync;
  return [
    ...(port.enabled ? ['-p', String(port.port)] : []),
    '-o',
    `ControlMaster=${master}`,
    '-o',
    'ControlPersist=no',
    '-o',
    `ControlPath=${socket}`,
    ...ssh.options,
    '-o',
    'BatchMode=yes',
  ];
}

function sshTarget(ctx: CommandContext): string {
  const { auth } = ctx.rsync;
  const user = auth.enabled && auth.users !== '' ? `${auth.users}@` : '';
  return `${user}${ctx.remote.ip.replace(/^(.*@)?\[(.*)\]$/, '$1$2')}`;
}

/**
 * rsync's quick check compares mtimes in whole seconds by default, so a file rewritten with the same size within the
 * second of its last sync (an editor's save, a CMS updating a counter) was skipped and the remote kept the old bytes.
 * A listed path is known to have changed, so its update run compares nanoseconds too. rsync passes it on as `-@-1`,
 * which receivers before 3.1.3 reject (exit 1, "unknown option"): the lane then drops it for that remote (see
 * RemoteLane). Left out when commonParams already decide how files are compared.
 * Full syncs keep whole seconds: on a receiver whose file system has no nanoseconds, every file would differ.
 */
export function nanosecondQuickCheck(params: readonly string[]): string[] {
  const decided = params.some(
    (p) => /^--(modify-window|checksum|ignore-times)(=|$)/.test(p) || /^-[A-Za-z0-9]*[cI]/.test(p) || /^-[A-Za-z0-9]*@/.test(p),
  );
  return decided ? [] : ['--modify-window=-1'];
}

function isRecursiveFlag(arg: string): boolean {
  return arg === '--recursive' || /^-[A-Za-z0-9]*r[A-Za-z0-9]*$/.test(arg);
}

/**
 * Source and destination: the watch root and the remote's root, or `from` below the one and `to` below the other
 * (both relative, '' for the root itself; a rename run sends one directory or file).
 */
export function endpoints(ctx: CommandContext, from = '', to = ''): string[] {
  const { remote, rsync } = ctx;
  const source = `${ctx.watch}/${from}`;
  if (remote.kind === 'local') return [source, `${remote.name}/${to}`];
  const user = rsync.auth.enabled && rsync.auth.users !== '' ? `${rsync.auth.users}@` : '';
  const host = bracketIpv6(remote.ip);
  const under = to === '' ? '' : `/${to}`;
  if (remote.kind === 'ssh') return [source, `${user}${host}:${remote.name}${under}`];
  const password = rsync.auth.enabled && rsync.auth.passwordFile !== '' ? [`--password-file=${rsync.auth.passwordFile}`] : [];
  return [...password, source, `${user}${host}::${remote.name}${under}`];
}

/**
 * A bare IPv6 literal goes in brackets, or rsync reads `fe80::1::m` as host `fe80`; a `user@` that tutorials put in
 * `ip` (ssh with auth off) stays in front of them.
 */
function bracketIpv6(ip: string): string {
  const at = ip.lastIndexOf('@') + 1;
  const host = ip.slice(at);
  return host.includes(':') && !host.startsWith('[') ? `${ip.slice(0, at)}[${host}]` : ip;
}

/**
 * rsync splits the -e value itself (whitespace, with single and double quotes), no shell involved; quote words
 * that hold whitespace or quotes so they stay one word.
 */
function quoteForRsyncShell(word: string): string {
  return /[\s'"\\]/.test(word) ? `'${word.replace(/'/g, `'"'"'`)}'` : word;
}

const WILDCARD = /[*?[]/;

/**
 * rsync treats `\` as an escape only in patterns that hold a wildcard (rsync(1), "PATTERN MATCHING RULES"): escape
 * every special character when the path has a wildcard, leave a lone backslash alone otherwise.
 */
export function literalPattern(pattern: string): string {
  return WILDCARD.test(pattern) ? escapeAll(pattern) : pattern;
}

function escapeAll(pattern: string): string {
  return pattern.replace(/[*?[\\]/g, '\\$&');
}
