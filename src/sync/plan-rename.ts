import { baseName, parentOf, type RelPath } from '../core/paths.ts';
import {
  baseParams,
  type CommandContext,
  type DeleteTarget,
  endpoints,
  maxDelete,
  nanosecondQuickCheck,
  nulList,
  MAX_TREE_RULES,
  type RsyncInvocation,
} from './rsync-command.ts';

/** A path moved here from `from` inside the tree, whose old name the remote still holds (see PendingEntry.renamedFrom). */
export interface RenameTarget {
  readonly path: RelPath;
  readonly from: RelPath;
  readonly isDir: boolean;
}

/**
 * One rsync run that sends a renamed path with the remote's copy of its old name as the local basis, so that the
 * data does not cross the wire again; no remote shell, the same for daemon, ssh and local remotes.
 *
 * - A directory: `--link-dest` at the old name, relative to the new destination directory. The receiver
 *   hard-links each file whose size, mtime (to the nanosecond, as update runs compare), mode and owner match its
 *   old copy, and transfers the others. A later change of such a file replaces it (rsync writes a temporary file and
 *   renames it), which leaves the other link alone; with `--inplace` or `--append` in commonParams rsync would write
 *   into the shared inode, so those get `--copy-dest` (a local copy on the receiver) instead.
 * - A file renamed within its directory: `--fuzzy`, which takes a file of the same size and mtime in the
 *   destination directory (the old name, deleted only after this run) as the basis of a delta transfer. Moved to
 *   another directory: `-yy` (fuzzy also in alternate directories) with the old directory as `--link-dest`; not to
 *   an rsync daemon, where 3.5.0 looks for the fuzzy basis below a wrong path (the destination directory prefixed).
 *
 * Null where the run could differ from a plain one, or cannot help: a file moved to another directory of a daemon
 * module, a name that an argument cannot carry exactly (not UTF-8, control characters; glob characters `*?[\` or
 * `--old-args` towards a remote, see destinationText), and path filters anchored at the transfer root (such a run's
 * root is the renamed directory). A remote that lacks the old name gets a plain transfer from the same run.
 */
export function planRename(ctx: CommandContext, target: RenameTarget, withoutLinks = false): RsyncInvocation | null {
  const path = argumentText(target.path);
  const from = argumentText(target.from);
  // The destination argument: the directory itself, or a file's directory.
  if (path === null || from === null || destinationText(ctx, target.isDir ? target.path : parentOf(target.path)) === null) return null;
  if (ctx.filters.some((f) => excludePattern(f)?.includes('/') !== false)) return null;
  const head = [
    ...baseParams(ctx),
    ...(ctx.nanoseconds === false ? [] : nanosecondQuickCheck(ctx.rsync.commonParams)),
    '--stats',
    ...(withoutLinks ? ['--no-links'] : []),
  ];
  const option = ctx.rsync.commonParams.some(writesInPlace) ? '--copy-dest' : '--link-dest';
  if (target.isDir) {
    return {
      kind: 'rename',
      args: [...head, ...ctx.filters, `${option}=${relativeTo(path, from)}`, ...endpoints(ctx, `${path}/`, `${path}/`)],
      input: null,
    };
  }
  const dir = parentOf(path);
  const fromDir = parentOf(from);
  const basis =
    fromDir === dir ? ['--fuzzy'] : ctx.remote.kind === 'daemon' ? null : ['--fuzzy', '--fuzzy', `${option}=${relativeTo(dir, fromDir)}`];
  if (basis === null) return null;
  return { kind: 'rename', args: [...head, ...ctx.filters, ...basis, ...endpoints(ctx, path, dir === '' ? '' : `${dir}/`)], input: null };
}

/** An entry directly below a renamed directory, as readdir gives it. */
export interface TopEntry {
  readonly name: string;
  readonly dir: boolean;
}

/**
 * A directory's rename run as up to `ways` runs side by side, each with a share of the directory's top entries: the
 * receiver's linking, one core's work per run, is most of a large rename's time. The first run (the lead) is the
 * original less the others' entries (`--exclude=/name`), and it alone creates the directory: two runs that create one
 * destination directory at once fail ("mkdir ... File exists"). The others connect at once but wait for their
 * `--files-from=-` (".", recursive, their entries by `--include=/name` and `--exclude=/*`), which run-batch writes
 * when the lead itemizes the directory (`-ii`, codes only: LEAD_MADE_DIRECTORY), once it exists.
 *
 * Only entries the path filter passes, with names an exact pattern can carry, go to other runs (at most
 * MAX_TREE_RULES of them, directories first); the rest stay with the lead. Null where that leaves the lead alone, and
 * with commonParams the parts would get wrong (splitsWith).
 */
export function splitRename(
  run: RsyncInvocation,
  entries: readonly TopEntry[],
  ways: number,
  commonParams: readonly string[],
): readonly [RsyncInvocation, ...RsyncInvocation[]] | null {
  if (ways < 2 || !splitsWith(commonParams)) return null;
  const movable = [...entries.filter((e) => e.dir), ...entries.filter((e) => !e.dir)]
    .map((e) => argumentText(e.name))
    .filter((name): name is string => name !== null && !/[*?[\\]|^\s|\s$/.test(name))
    .slice(0, MAX_TREE_RULES);
  const count = Math.min(ways, movable.length);
  if (count < 2) return null;
  const shares = Array.from({ length: count }, (_, k) => movable.filter((_, i) => i % count === k));
  const head = run.args.slice(0, -2);
  const ends = run.args.slice(-2);
  const others = shares.slice(1);
  const lead: RsyncInvocation = {
    ...run,
    args: [...others.flat().map((name) => `--exclude=/${name}`), ...head, '-ii', '--out-format=%i', ...ends],
  };
  const rest = others.map(
    (share): RsyncInvocation => ({
      kind: 'rename',
      args: [...share.map((name) => `--include=/${name}`), '--exclude=/*', ...head, '--recursive', '--from0', '--files-from=-', ...ends],
      input: nulList(['.']),
    }),
  );
  return [lead, ...rest];
}

/**
 * A whole line of the lead's that says the directory exists: "created directory" (after its mkdir), or the itemized
 * `./` (the generator's first item, 11 characters: `.d` and 9 blanks where a directory that was there already is
 * unchanged). Not "sending incremental file list" (`-v`), nor `-vv`'s lines, printed before the receiver made
 * anything.
 */
export const LEAD_MADE_DIRECTORY = /^(?:created directory .*|[.c]d.{9})\r?$/;

/**
 * commonParams under which parts would differ from the one run: filter options (the parts' own rules come first, so a
 * user's `-C` or `--exclude` would not reach their entries), `-q`, `--stderr`, `--msgs2stderr` (no itemized line on
 * stdout to release the parts), deletions, `--delay-updates` or `--partial-dir` (a run's pass over the directory
 * would remove or move what the others write in it), `-H` (rsync links a hard-link group within one run only),
 * `--chmod` (it may take u+w from the shared directory), `--bwlimit` (a rate per run) and batch files.
 */
function splitsWith(commonParams: readonly string[]): boolean {
  return !commonParams.some((p) => /^-[A-Za-z0-9]*[CFfqH]/.test(p) || SPLIT_BREAKERS.test(p));
}

const SPLIT_BREAKERS =
  /^--(?:exclude|include|filter|cvs-exclude|files-from|quiet|stderr|msgs2stderr|del|remove|partial-dir|hard-links|chmod|bwlimit|write-batch|only-write-batch)/;

/**
 * Whether a directory's rename run must leave its symbolic links to the update run. A run rooted at the renamed
 * directory makes the receiver judge a relative link against that root: an rsync daemon without chroot trims
 * `../../top.txt` to what stays inside it (`top.txt`), and `--safe-links`, `--copy-unsafe-links` and
 * `--munge-links` treat a link that leaves it as unsafe. The update run, rooted at the watch root like every other
 * run, sends them as they are; they hold no data to save.
 */
export function renameLeavesLinks(ctx: CommandContext): boolean {
  return ctx.remote.kind === 'daemon' || ctx.rsync.commonParams.some((p) => LINK_JUDGING.has(p));
}

const LINK_JUDGING = new Set(['--safe-links', '--copy-unsafe-links', '--munge-links']);

/**
 * The delete run of a batch with renames through ssh, in a form that can start together with the rename runs and
 * wait: rsync connects and starts its remote side before it reads `--files-from=-`, so the remote command (the
 * receiving account's shell, rsync's start) overlaps the rename runs, and stdin, written once they and the update run
 * are done, releases the deletion. `--delete-missing-args` deletes each listed name that is missing here (directories
 * whole, with `--force`); `--delete` also clears what the remote holds below a name that exists again. The names go
 * without `-R`, from their one directory, so the receivers that mishandle missing args with `-R` (before 3.2.3) are
 * not involved; one that refuses the run (older than 3.1, or 3.4.3) costs a plain delete run after it.
 *
 * Null for other remotes (a daemon connection costs little, and a module's `max connections` could refuse the rename
 * run itself), once the receiver refused this form (ctx.earlyDeletes), for deletions in more than one directory or of
 * non-tree targets, a directory name the destination argument cannot carry exactly, and path filters anchored at
 * the transfer root (this run's root is that directory).
 */
export function planRenameDelete(ctx: CommandContext, targets: readonly DeleteTarget[]): RsyncInvocation | null {
  const first = targets[0];
  if (ctx.remote.kind !== 'ssh' || ctx.earlyDeletes === false || first === undefined) return null;
  const dir = parentOf(first.path);
  const dirText = destinationText(ctx, dir);
  // A name that exists again: the plain run clears only what a tree target reaches (splitByDisk's are all trees).
  if (dirText === null || targets.some((t) => parentOf(t.path) !== dir || !t.tree)) return null;
  if (ctx.filters.some((f) => excludePattern(f)?.includes('/') !== false)) return null;
  const root = dirText === '' ? '' : `${dirText}/`;
  const args = [
    ...baseParams(ctx),
    '--delete',
    '--delete-missing-args',
    '--force',
    ...maxDelete(ctx),
    '--existing',
    '--ignore-existing',
    ...ctx.filters,
    '--no-relative',
    '--from0',
    '--files-from=-',
    ...endpoints(ctx, root, root),
  ];
  // A leading slash, which rsync strips, keeps a name that starts with `#` or `;` from being read as a comment.
  return { kind: 'delete', args, input: nulList(targets.map((t) => `/${baseName(t.path)}`)) };
}

/** `target` as seen from the directory `dir` (both relative to the root; '' is the root). */
function relativeTo(dir: RelPath, target: RelPath): string {
  if (dir === '') return target;
  const up = dir.split('/').map(() => '..');
  return [...up, ...(target === '' ? [] : [target])].join('/');
}

/** rsync's `--stats` line "Total file size: 1,234 bytes" → bytes, or 0. */
export function totalFileSizeFromStats(stdout: string): number {
  const m = /Total file size: ([\d,.' ]+)/.exec(stdout);
  return m ? Number((m[1] as string).replace(/\D/g, '')) : 0;
}

/**
 * A path below the remote's root as the destination argument carries it: rsync escapes blanks and shell characters
 * in it but leaves glob characters to the remote side (the remote shell, the daemon, or rsync itself with
 * `--secluded-args`), where `w[1]` would name `w1`; and with `--old-args` it escapes nothing. Null in those cases.
 */
function destinationText(ctx: CommandContext, path: RelPath): string | null {
  const text = argumentText(path);
  if (text === null || ctx.remote.kind === 'local') return text;
  if (/[*?[\\]/.test(text) || oldArgs(ctx)) return null;
  return text;
}

function oldArgs(ctx: CommandContext): boolean {
  const env = process.env.RSYNC_OLD_ARGS;
  return ctx.rsync.commonParams.includes('--old-args') || (env !== undefined && env !== '' && env !== '0');
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Arguments are UTF-8 strings: a byte-string name (core/paths.ts) goes through unchanged only if it is valid UTF-8. */
function argumentText(path: RelPath): string | null {
  if (/[\x00-\x1f\x7f]/.test(path)) return null;
  try {
    return UTF8.decode(Buffer.from(path, 'latin1'));
  } catch {
    return null;
  }
}

function writesInPlace(param: string): boolean {
  return param === '--inplace' || param === '--append' || param === '--append-verify';
}

/** The pattern of an exclude argument (`--exclude=P`, `--filter=- P`, `--filter=-p P`), or null for anything else. */
function excludePattern(arg: string): string | null {
  const m = /^(?:--exclude=|--filter=-p? )(.*)$/s.exec(arg);
  return m ? (m[1] as string) : null;
}
