import type { BigIntStats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { errorCode } from '../core/errors.ts';
import { lstatFast } from '../core/lstat.ts';
import { parentOf, type RelPath, toBuffer } from '../core/paths.ts';
import { BoundedQueue } from './bounded-queue.ts';
import { type DirEntry, sameDir } from './dir-entry.ts';
import type { WatchedTree } from './watched-tree.ts';

/** A path to lstat because its directory's watcher named it. At most one per path is queued or running. */
interface PendingCheck {
  readonly path: RelPath;
  dir: RelPath;
  dirEntry: DirEntry;
  rename: boolean;
  self: boolean;
  running: boolean;
  again: boolean;
  againRename: boolean;
  againSelf: boolean;
}

const ROOT_LOST = 'watch root was removed or replaced';

/**
 * The paths a watcher named that need a look at the disk to say what happened (an entry that is or was a directory,
 * or any entry on fs.watch, which gives no type): one lstat each, at most `concurrency` at once, and what it means
 * reported (see the decisions on DirWatcher). An event for a path while it is being looked at makes it looked at once
 * more.
 */
export class PathChecks {
  readonly #tree: WatchedTree;
  readonly #addTree: (path: RelPath, st: BigIntStats, renamedFrom: RelPath | null, afterMove: boolean) => void;
  readonly #afterCheck: () => void;
  readonly #pending = new Map<RelPath, PendingCheck>();
  readonly #queue: BoundedQueue<PendingCheck>;
  /** Directories moved in from inside the tree, new path → old path, until their check and walk report them. */
  readonly #movedDirs = new Map<RelPath, RelPath>();
  /** Checks added during the current turn, started in a microtask (see add). */
  readonly #incoming: PendingCheck[] = [];
  /** moveEnded calls still looking at the disk (a stop's hand-over waits for them). */
  #ending = 0;
  #rootLost = false;

  /** `addTree` watches and walks a new directory (DirWalker); `afterCheck` is the watcher's idle check. */
  constructor(
    tree: WatchedTree,
    options: {
      readonly concurrency: number;
      readonly addTree: (path: RelPath, st: BigIntStats, renamedFrom: RelPath | null, afterMove: boolean) => void;
      readonly afterCheck: () => void;
    },
  ) {
    this.#tree = tree;
    this.#addTree = options.addTree;
    this.#afterCheck = options.afterCheck;
    this.#queue = new BoundedQueue({
      limit: options.concurrency,
      order: 'fifo',
      run: (c) => this.#check(c),
      settled: (c) => this.#settled(c),
    });
  }

  /** No check runs or waits. */
  get idle(): boolean {
    return this.#incoming.length === 0 && this.#ending === 0 && this.#queue.idle;
  }

  /** The path is waiting for or having its look. */
  has(path: RelPath): boolean {
    return this.#pending.has(path);
  }

  /** A directory moved here from `from` (a paired move): its walk reports it as a rename. */
  movedDir(path: RelPath, from: RelPath): void {
    // Two moves onto one name before its check (`mv a p; mv p q; mv b p`): the first one's old name is reported
    // here, or it would stay owed for ever.
    const earlier = this.#movedDirs.get(path);
    if (earlier !== undefined && earlier !== from) void this.moveEnded(earlier);
    this.#movedDirs.set(path, from);
    this.#tree.movesFrom.set(from, true);
  }

  /** Looks at a path as if its parent had reported it (a retry of an unreadable path, a possible mount or unmount). */
  recheck(path: RelPath): void {
    const dir = parentOf(path);
    const parent = this.#tree.dirs.get(dir);
    // Below another unwatched directory: that one is looked at, and its walk reaches this path.
    if (parent !== undefined) this.add(path, dir, parent, true, false);
  }

  add(path: RelPath, dir: RelPath, dirEntry: DirEntry, rename: boolean, self: boolean): void {
    const known = this.#pending.get(path);
    if (known !== undefined) {
      known.dir = dir;
      known.dirEntry = dirEntry;
      if (known.running) {
        known.again = true;
        known.againRename ||= rename;
        known.againSelf ||= self;
      } else {
        known.rename ||= rename;
        known.self ||= self;
      }
      return;
    }
    // Cheap early exit for paths ignored whatever their type (temporary files written in a burst).
    if (this.#tree.isIgnored(path, false) && this.#tree.isIgnored(path, true)) return;
    const check: PendingCheck = { path, dir, dirEntry, rename, self, running: false, again: false, againRename: false, againSelf: false };
    this.#pending.set(path, check);
    // Started once the events of this read are all interpreted: a move's IN_MOVED_TO, later in the same read, must
    // be known to the check of its old name (an lstat that fails throws synchronously, with no await in between).
    this.#incoming.push(check);
    if (this.#incoming.length === 1) queueMicrotask(() => this.#startIncoming());
  }

  #startIncoming(): void {
    for (const check of this.#incoming.splice(0)) if (this.#pending.get(check.path) === check) this.#queue.push(check);
  }

  /** Drops the checks that have not started (close). */
  dropWaiting(): void {
    for (const check of [...this.#incoming.splice(0), ...this.#queue.dropWaiting()]) this.#pending.delete(check.path);
  }

  #settled(check: PendingCheck): void {
    check.running = false;
    if (check.again && !this.#tree.closed) {
      // Something happened to the path while it was being looked at: look once more.
      check.rename = check.againRename;
      check.self = check.againSelf;
      check.again = check.againRename = check.againSelf = false;
      this.#queue.push(check);
    } else {
      this.#pending.delete(check.path);
    }
    this.#afterCheck();
  }

  /** One lstat for a path a watcher named, and what it means. */
  async #check(check: PendingCheck): Promise<void> {
    check.running = true;
    const { path } = check;
    const tree = this.#tree;
    let st: BigIntStats | null;
    try {
      st = await tree.lstat(path, check.dirEntry.dev);
    } catch (err) {
      const code = errorCode(err);
      // EACCES and the like: a directory that is listable but not searchable; rsync could not read the entry either.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        if (tree.dirs.get(check.dir) === check.dirEntry) tree.unreadable.add(path, err);
        const from = this.#movedDirs.get(path);
        if (from !== undefined) {
          this.#movedDirs.delete(path);
          await this.moveEnded(from);
        }
        return;
      }
      st = null;
    }
    // Read after the lstat: a move onto this name may have come while the check waited (the deploy swap).
    const renamedFrom = this.#movedDirs.get(path) ?? null;
    if (renamedFrom === null) {
      await this.#look(check, st, null);
      return;
    }
    this.#movedDirs.delete(path);
    // The walk of the new name reports the old one's removal with the rename; any other outcome reports it here.
    if (!(await this.#look(check, st, renamedFrom))) await this.moveEnded(renamedFrom);
  }

  /** What the lstat of a checked path means; true when a walk took over a move's old name (renamedFrom). */
  async #look(check: PendingCheck, st: BigIntStats | null, renamedFrom: RelPath | null): Promise<boolean> {
    const { path } = check;
    const tree = this.#tree;
    // The directory that reported it was removed or replaced meanwhile; that change covers this path.
    if (tree.dirs.get(check.dir) !== check.dirEntry) return false;
    const entry = tree.dirs.get(path);

    if (st === null) {
      // The old name of a move whose new name is being walked: its removal comes with the rename.
      const reportedLater = tree.movesFrom.has(path);
      if (entry !== undefined) {
        tree.unwatchTree(path);
        if (!reportedLater) tree.emit({ kind: 'dir', op: 'unlink', path });
        return false;
      }
      if (reportedLater) return false;
      tree.unreadable.delete(path);
      // A 'change' for a name that is gone: its removal comes as a 'rename' of its own.
      if (!check.rename) return false;
      if (check.self && (await this.#selfGone(check.dir))) return false;
      if (tree.dirs.get(check.dir) !== check.dirEntry) return false;
      if (tree.isIgnored(path, false) || tree.isIgnored(path, true)) return false;
      tree.emit({ kind: 'file', op: 'unlink', path });
      return false;
    }

    // The old name of a move, in use again (`mv logs logs.1; mkdir logs`, the deploy swap `mv site site.old; mv
    // site.new site`). While the walk of the new name (`site.old`) runs, a directory that took the old name waits for
    // it: the walk reports the removal with its rename, and this directory after them, so that no batch replaces the
    // remote's `site` before `site.old` was built from it. Anything else that took the name is reported now.
    // (An exchange `mv --exchange a b` has each wait for the other: DirWatcher settles the moves once idle.)
    const waits = st.isDirectory() && tree.movesFrom.get(path) === true && !(entry !== undefined && sameDir(entry, st));
    if (!waits && tree.movesFrom.delete(path)) {
      tree.emit({ kind: 'dir', op: 'unlink', path });
      tree.moveReported(path);
    }
    if (st.isDirectory()) {
      if (entry !== undefined) {
        if (sameDir(entry, st)) return false; // its own attributes: see DirWatcher
        tree.unwatchTree(path);
        if (!waits) tree.emit({ kind: 'dir', op: 'unlink', path });
      }
      if (tree.isIgnored(path, true)) return false;
      // A directory moved over a watched one (the deploy swap) is a rename too: the unlink of the old name makes its
      // entry delete what the remote's old copy has beyond it.
      this.#addTree(path, st, renamedFrom, waits);
      return renamedFrom !== null;
    }

    if (entry !== undefined) {
      tree.unwatchTree(path);
      tree.emit({ kind: 'dir', op: 'unlink', path });
    }
    tree.unreadable.delete(path);
    if (tree.isIgnored(path, false)) return false;
    // A file that replaced a watched directory is known to be new here. For a
    // 'rename' event the file may have replaced an existing one (mv over it): without per-file state this watcher
    // cannot claim "created", and the aggregator drops a created-then-removed path, so say 'change'.
    tree.emit({ kind: 'file', op: entry !== undefined ? 'add' : 'change', path });
    return false;
  }

  /** A directory move that no walk reports: its old name's removal, unless the name is there again. */
  async moveEnded(from: RelPath): Promise<void> {
    const tree = this.#tree;
    if (!tree.movesFrom.delete(from)) return;
    this.#ending++;
    try {
      const entry = tree.dirs.get(from);
      let st: BigIntStats | null = null;
      try {
        st = await tree.lstat(from, tree.dirs.get(parentOf(from))?.dev);
      } catch {
        st = null;
      }
      if (st !== null && entry !== undefined && sameDir(entry, st)) return;
      if (entry !== undefined && tree.dirs.get(from) === entry) tree.unwatchTree(from);
      tree.emit({ kind: 'dir', op: 'unlink', path: from });
    } finally {
      tree.moveReported(from);
      this.#ending--;
      this.#afterCheck();
    }
  }

  /**
   * After a 'rename' named like the watched directory itself: is it the directory that went away (then its parent
   * reports it, or for the root: `lost`) rather than a child of the same name?
   */
  async #selfGone(dir: RelPath): Promise<boolean> {
    const tree = this.#tree;
    if (dir === '') {
      let st: BigIntStats | null = null;
      try {
        st = await stat(toBuffer(tree.rootBytes), { bigint: true });
      } catch {
        st = null;
      }
      const root = tree.root;
      const gone = st === null || !st.isDirectory() || root === null || !sameDir(root, st);
      if (gone && !this.#rootLost && !tree.closed) {
        this.#rootLost = true;
        tree.emit({ kind: 'lost', reason: ROOT_LOST });
      }
      return gone;
    }
    const entry = tree.dirs.get(dir);
    try {
      const st = await lstatFast(tree.abs(dir), { bigint: true });
      return entry === undefined || !sameDir(entry, st);
    } catch {
      return true;
    }
  }
}
