import type { BigIntStats, Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { errorCode } from '../core/errors.ts';
import { displayPath, fromBytes, joinRel, parentOf, type RelPath } from '../core/paths.ts';
import { BoundedQueue } from './bounded-queue.ts';
import { DirEntry, type DirEventSink } from './dir-entry.ts';
import type { WatchedTree } from './watched-tree.ts';

/** The walk of one new tree (the root at start, or a directory that appeared later). */
interface WalkGroup {
  readonly top: RelPath;
  readonly reportAdd: boolean;
  pending: number;
  topEntry: DirEntry | null;
  /** The top directory exists but could not be watched (watch limit): still worth one recursive sync. */
  topUnwatchable: boolean;
  /** Error codes already reported as `lost` for this group, so a watch limit gives one event, not thousands. */
  readonly reported: Set<string>;
  readonly done: () => void;
  /** The tree was moved here from this path inside the tree: reported as a `rename` instead of a `dir add`. */
  readonly renamedFrom: RelPath | null;
  /**
   * The top took the name of a directory moved away whose new name is still being walked: reported after that move
   * (WatchedTree.afterMoveReported), with the old directory's removal first.
   */
  after: RelPath | null;
}

interface WalkTask {
  readonly path: RelPath;
  /** The watched parent when the task was queued; the task is dropped if the parent went away meanwhile. */
  readonly parent: DirEntry | null;
  readonly group: WalkGroup;
  readonly stats: BigIntStats | null;
}

/**
 * Watches a tree and every directory below it, each before it is listed, so an entry created during the walk is
 * either in the listing or reported by the new watch. No per-file stat: readdir with d_type (Node lstats only entries
 * whose type the file system does not report). A directory that appears later is walked the same way and reported as
 * one `dir add` for its top once its whole subtree is watched: a recursive sync of it started after that sees every
 * file created before the watches existed, and later files have their own events.
 *
 * ENOSPC/EMFILE in the walk at start: kept as `rootWalkLimit`, the start fails. Later, or an `error` from a watcher:
 * one `lost` per new tree; that directory stays unwatched and is not descended (a parent event for it later tries
 * again). EACCES, EIO …: the path is unreadable (UnreadablePaths).
 */
export class DirWalker {
  readonly #tree: WatchedTree;
  readonly #sink: DirEventSink;
  readonly #onMountPoint: ((path: RelPath) => void) | undefined;
  readonly #afterTask: () => void;
  readonly #queue: BoundedQueue<WalkTask>;
  #rootError: unknown = null;
  #rootWalkLimit: unknown = null;

  /** `afterTask` is called each time a directory is done (the watcher's idle check). */
  constructor(
    tree: WatchedTree,
    sink: DirEventSink,
    options: { readonly concurrency: number; readonly onMountPoint?: (path: RelPath) => void; readonly afterTask: () => void },
  ) {
    this.#tree = tree;
    this.#sink = sink;
    this.#onMountPoint = options.onMountPoint;
    this.#afterTask = options.afterTask;
    this.#queue = new BoundedQueue({
      limit: options.concurrency,
      order: 'lifo',
      run: (task) => this.#walk(task),
      settled: (task) => {
        if (--task.group.pending === 0) this.#finishGroup(task.group);
        this.#afterTask();
      },
    });
  }

  /** No walk runs or waits. */
  get idle(): boolean {
    return this.#queue.idle;
  }

  /** Why the root could not be watched, when it could not. */
  get rootError(): unknown {
    return this.#rootError;
  }

  /**
   * A watch limit met while walking the tree at start, when one was: the start then fails, rather than run with part
   * of the tree unwatched (which sersync2 did in silence).
   */
  get rootWalkLimit(): unknown {
    return this.#rootWalkLimit;
  }

  /** Resolves once the root and everything below it is watched (or could not be). */
  walkRoot(st: BigIntStats): Promise<void> {
    return new Promise((done) => this.#push({ path: '', parent: null, group: newGroup('', false, done, null), stats: st }));
  }

  /**
   * A new (or replaced) directory: watch and walk it, then report it once as `dir add` (or as moved from
   * `renamedFrom`); `afterMove`: not before the move out of its name is reported (see WalkGroup.after).
   */
  addTree(path: RelPath, st: BigIntStats, renamedFrom: RelPath | null, afterMove = false): void {
    const parent = this.#tree.dirs.get(parentOf(path));
    if (parent === undefined) return;
    const group = newGroup(path, true, () => {}, renamedFrom);
    group.after = afterMove ? path : null;
    this.#push({ path, parent, group, stats: st });
  }

  #push(task: WalkTask): void {
    task.group.pending++;
    this.#queue.push(task);
  }

  #finishGroup(group: WalkGroup): void {
    const tree = this.#tree;
    const after = group.after;
    if (after !== null) {
      group.after = null;
      // The deploy swap: `site.old`'s rename is built from the remote's `site`, which this tree's report replaces.
      const resume = () => {
        if (group.reportAdd && !tree.closed) tree.emit({ kind: 'dir', op: 'unlink', path: after });
        this.#finishGroup(group);
      };
      // An exchange (`mv --exchange a b`) has each wait for the other: DirWatcher settles the moves once idle.
      tree.afterMoveReported(after, resume);
      return;
    }
    const from = group.renamedFrom;
    // The old name's removal was kept back until now (WatchedTree.movesFrom): it goes in the same turn as the rename,
    // unless a check found the name in use again and reported it already.
    const owed = from !== null && tree.movesFrom.has(from);
    if (group.reportAdd && !tree.closed) {
      const current = group.topEntry !== null && tree.dirs.get(group.top) === group.topEntry;
      if (owed) tree.emit({ kind: 'dir', op: 'unlink', path: from });
      if (current || group.topUnwatchable) {
        tree.emit(
          from === null ? { kind: 'dir', op: 'add', path: group.top } : { kind: 'rename', op: 'move', path: group.top, from, isDir: true },
        );
      }
    }
    if (owed) {
      tree.movesFrom.delete(from);
      tree.moveReported(from);
    }
    group.done();
  }

  /** Watch one directory, then list it and queue its subdirectories. */
  async #walk(task: WalkTask): Promise<void> {
    const { path, group } = task;
    const tree = this.#tree;
    if (!this.#stillWanted(task)) return;
    let st = task.stats;
    if (st === null) {
      try {
        st = await tree.lstat(path, task.parent?.dev);
      } catch (err) {
        this.#failed(path, group, err);
        return;
      }
      if (!this.#stillWanted(task)) return;
    }
    // A directory replaced by something else since it was listed: its parent's watcher reports that.
    if (!st.isDirectory()) return;
    const entry = this.#watchDir(task, st);
    if (entry === null) return;
    let listing: Buffer[];
    try {
      // The native listing, on the root's own device: subdirectory names only (see DirWatchBackend.listDirs).
      const native = tree.backend.listDirs !== undefined && st.dev === tree.root?.dev ? tree.backend.listDirs : null;
      listing = native !== null ? native(tree.abs(path)) : await listSubdirs(tree.abs(path));
    } catch (err) {
      if (tree.dirs.get(path) !== entry) return;
      const code = errorCode(err);
      // Vanished: the parent's watcher reports the removal and unwatches it.
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      tree.unwatchTree(path);
      this.#failed(path, group, err);
      return;
    }
    if (tree.dirs.get(path) !== entry) return;
    for (const name of listing) {
      const child = joinRel(path, fromBytes(name));
      if (tree.isIgnored(child, true)) continue;
      this.#push({ path: child, parent: entry, group, stats: null });
    }
  }

  #stillWanted(task: WalkTask): boolean {
    if (this.#tree.closed || this.#tree.dirs.has(task.path)) return false;
    return task.parent === null || this.#tree.dirs.get(parentOf(task.path)) === task.parent;
  }

  #watchDir(task: WalkTask, st: BigIntStats): DirEntry | null {
    const { path, group } = task;
    const entry = new DirEntry(this.#sink, path, st);
    try {
      entry.token = this.#tree.backend.watch(this.#tree.abs(path), entry);
    } catch (err) {
      const code = errorCode(err);
      if (path === group.top && isLimit(code)) group.topUnwatchable = true;
      this.#failed(path, group, err);
      return null;
    }
    const parent = this.#tree.add(entry);
    if (parent !== undefined && parent.dev !== st.dev) this.#onMountPoint?.(path);
    if (path === group.top) group.topEntry = entry;
    return entry;
  }

  #failed(path: RelPath, group: WalkGroup, err: unknown): void {
    if (path === '') {
      this.#rootError = err;
      return;
    }
    const code = errorCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    if (!isLimit(code)) {
      this.#tree.unreadable.add(path, err);
      return;
    }
    if (group.top === '') {
      this.#rootWalkLimit ??= err;
      return;
    }
    if (group.reported.has(code)) return;
    group.reported.add(code);
    this.#tree.emit({
      kind: 'lost',
      reason: `${limitAdvice(code)}; ${displayPath(path)} and what is below it are not watched`,
      cause: err,
    });
  }
}

function newGroup(top: RelPath, reportAdd: boolean, done: () => void, renamedFrom: RelPath | null): WalkGroup {
  return {
    top,
    reportAdd,
    pending: 0,
    topEntry: null,
    topUnwatchable: false,
    reported: new Set(),
    done,
    renamedFrom,
    after: null,
  };
}

function isLimit(code: string | undefined): code is 'ENOSPC' | 'EMFILE' | 'ENFILE' {
  return code === 'ENOSPC' || code === 'EMFILE' || code === 'ENFILE';
}

/** What to do about a watch limit (ENOSPC, EMFILE, ENFILE). */
export function limitAdvice(code: string): string {
  return code === 'ENOSPC'
    ? 'inotify watch limit reached (fs.inotify.max_user_watches): raise it with sysctl'
    : 'inotify instance or open-file limit reached (fs.inotify.max_user_instances, ulimit -n): the daemon needs one instance for all its sites, ' +
        'the others are held by other programs of the same user; raise it';
}

/** Subdirectory names through Node's readdir (d_type; Node lstats where the file system does not say). */
async function listSubdirs(abs: Buffer): Promise<Buffer[]> {
  const entries: Dirent<Buffer>[] = await readdir(abs, { withFileTypes: true, encoding: 'buffer' });
  return entries.filter((d) => d.isDirectory()).map((d) => d.name);
}
