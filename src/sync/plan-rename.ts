import { parentOf, type RelPath } from '../core/paths.ts';
import { baseParams, type CommandContext, endpoints, nanosecondQuickCheck, type RsyncInvocation } from './rsync-command.ts';

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
 * module, a name that an argument
 * cannot carry exactly (not UTF-8, control characters), and path filters anchored at the transfer root (such a
 * run's root is the renamed directory). A remote that lacks the old name gets a plain transfer from the same run.
 */
export function planRename(ctx: CommandContext, target: RenameTarget): RsyncInvocation | null {
  const path = argumentText(target.path);
  const from = argumentText(target.from);
  if (path === null || from === null) return null;
  if (ctx.filters.some((f) => excludePattern(f)?.includes('/') !== false)) return null;
  const head = [...baseParams(ctx), ...(ctx.nanoseconds === false ? [] : nanosecondQuickCheck(ctx.rsync.commonParams)), '--stats'];
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
