import { type BigIntStats, lstatSync } from 'node:fs';
import { lstatFast } from '../core/lstat.ts';
import { baseName, joinRel, parentOf, type RelPath, toBuffer } from '../core/paths.ts';
import type { DirEntry } from './dir-entry.ts';
import { type DirWatchBackend, fsWatchBackend } from './dir-watch-backend.ts';
import type { UnreadablePaths } from './unreadable-paths.ts';
import type { WatchEvent, WatchOptions } from './watcher.ts';

/**
 * What the parts of a DirWatcher share: the root, the backend, the watched directories by path (state is
 * O(directories)), the paths that could not be read, and the sink. Nothing is reported once it is closed.
 */
export class WatchedTree {
  readonly dirs = new Map<RelPath, DirEntry>();
  /**
   * Old names of directory moves whose removal is owed: reported with the rename once the walk of the new name ends
   * (true: a walk will), not before it, so that no batch deletes the remote's copy before it could serve as the new
   * name's basis. Whoever takes a name out of here reports its removal: the walk, the check of the new name when no
   * walk follows, a check that finds the old name in use again, or the first half's own turn when no walk claimed it.
   */
  readonly movesFrom = new Map<RelPath, boolean>();
  /** What waits for the report of a move out of a name (see afterMoveReported). */
  readonly #afterMoves = new Map<RelPath, (() => void)[]>();
  readonly unreadable: UnreadablePaths;
  #backend: DirWatchBackend = fsWatchBackend;
  #root: DirEntry | null = null;
  #rootBytes = '';
  #rootPrefix = '';
  #rootName = '';
  #sink: ((event: WatchEvent) => void) | null = null;
  #isIgnored: (path: RelPath, isDir: boolean) => boolean = () => false;
  #pairMoves = false;
  #closed = false;

  constructor(unreadable: UnreadablePaths) {
    this.unreadable = unreadable;
  }

  /** Runs `fn` once the move out of `from` has been reported (at once when none is owed). */
  afterMoveReported(from: RelPath, fn: () => void): void {
    if (!this.movesFrom.has(from)) {
      fn();
      return;
    }
    const waiting = this.#afterMoves.get(from);
    if (waiting) waiting.push(fn);
    else this.#afterMoves.set(from, [fn]);
  }

  /** Old names whose move's report something waits for. */
  awaitedMoves(): RelPath[] {
    return [...this.#afterMoves.keys()];
  }

  /** The move out of `from` was reported (its removal emitted, or found not to be one): what waited goes on. */
  moveReported(from: RelPath): void {
    const waiting = this.#afterMoves.get(from);
    if (waiting === undefined) return;
    this.#afterMoves.delete(from);
    for (const fn of waiting) fn();
  }

  /** `rootBytes`: the absolute root, in bytes (see core/paths.ts). */
  open(rootBytes: string, sink: (event: WatchEvent) => void, options: WatchOptions): void {
    this.#sink = sink;
    this.#isIgnored = options.isIgnored;
    this.#pairMoves = options.pairMoves === true;
    this.#rootBytes = rootBytes;
    this.#rootPrefix = rootBytes.endsWith('/') ? rootBytes : `${rootBytes}/`;
    this.#rootName = baseName(rootBytes);
  }

  get isOpen(): boolean {
    return this.#sink !== null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get backend(): DirWatchBackend {
    return this.#backend;
  }

  set backend(backend: DirWatchBackend) {
    this.#backend = backend;
  }

  /** The root's entry once it is watched: its device tells the root's own file system from mounts below it. */
  get root(): DirEntry | null {
    return this.#root;
  }

  get rootBytes(): string {
    return this.#rootBytes;
  }

  get rootName(): string {
    return this.#rootName;
  }

  get pairMoves(): boolean {
    return this.#pairMoves;
  }

  isIgnored(path: RelPath, isDir: boolean): boolean {
    return this.#isIgnored(path, isDir);
  }

  emit(event: WatchEvent): void {
    if (this.#closed || this.#sink === null) return;
    this.#sink(event);
  }

  abs(path: RelPath): Buffer {
    return toBuffer(path === '' ? this.#rootBytes : this.#rootPrefix + path);
  }

  /**
   * lstat of an entry of a directory on device `dev`. Synchronous on the root's own file system: an asynchronous
   * lstat is a round trip through libuv's thread pool, and in a burst (one per created file) those hand-offs cost
   * many times the CPU of the lstat itself. Asynchronous below another mount point, where a hung network file system
   * must block one pool thread, not the daemon.
   */
  lstat(path: RelPath, dev: bigint | undefined): Promise<BigIntStats> | BigIntStats {
    const abs = this.abs(path);
    if (dev !== undefined && dev === this.#root?.dev) return lstatSync(abs, { bigint: true });
    return lstatFast(abs, { bigint: true });
  }

  /** A directory now watched (its entry has its token): known by its path and to its parent, which is returned. */
  add(entry: DirEntry): DirEntry | undefined {
    const { path } = entry;
    this.dirs.set(path, entry);
    let parent: DirEntry | undefined;
    if (path === '') this.#root = entry;
    else {
      parent = this.dirs.get(parentOf(path));
      if (parent !== undefined) (parent.children ??= new Set()).add(baseName(path));
    }
    this.unreadable.delete(path);
    return parent;
  }

  /** Close the watchers of a directory and of everything below it. */
  unwatchTree(path: RelPath): void {
    if (!this.dirs.has(path)) return;
    if (path !== '') this.dirs.get(parentOf(path))?.children?.delete(baseName(path));
    const stack = [path];
    for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
      const entry = this.dirs.get(p);
      if (entry === undefined) continue;
      this.#backend.unwatch(entry.token, entry);
      this.dirs.delete(p);
      if (entry.children !== null) for (const name of entry.children) stack.push(joinRel(p, name));
    }
    this.unreadable.deleteTree(path);
  }

  /** Nothing is reported or watched any more. */
  close(): void {
    this.#closed = true;
    this.unreadable.stop();
    // The backend first: where the watcher had an inotify instance of its own, closing it drops every watch at once
    // in the kernel, instead of one inotify_rm_watch per directory (and the IN_IGNORED event each queues). In a
    // daemon's shared instance only this tree's watches go, through the unwatch calls below.
    this.#backend.close();
    for (const entry of this.dirs.values()) this.#backend.unwatch(entry.token, entry);
    this.dirs.clear();
  }
}
