import { type BigIntStats, type Dirent, lstatSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { errorCode, ExitCode, SersyncError } from '../core/errors.ts';
import { lstatFast } from '../core/lstat.ts';
import { baseName, displayPath, fromBytes, fromUtf8, joinRel, parentOf, toBuffer, type RelPath } from '../core/paths.ts';
import {
  createInotifyBackend,
  type DirEventHint,
  type DirWatchBackend,
  type DirWatchListener,
  type DirWatchToken,
  fsWatchBackend,
  loadNativeInotify,
} from './dir-watch-backend.ts';
import { MovePairs } from './move-pairs.ts';
import type { WatchEvent, WatchOptions, Watcher } from './watcher.ts';

export interface DirWatcherOptions {
  /** Directory listings (and their watch + lstat) in flight during a walk. Default 32. */
  readonly walkConcurrency?: number;
  /** lstat calls in flight for events. Default 32. */
  readonly eventConcurrency?: number;
  /**
   * Called once for a path that cannot be watched, listed or looked at (EACCES, EPERM, EIO …). It is skipped, not
   * reported as `lost`: rsync could not read it either, and a full sync would not help. It is tried again every
   * UNREADABLE_RETRY_MS and when its parent reports an event for it (a chmod does), and forgotten when it is removed.
   */
  readonly onUnreadable?: (path: RelPath, cause: unknown) => void;
  /** Called for each directory on another device than its parent (a disk mounted inside the tree). */
  readonly onMountPoint?: (path: RelPath) => void;
  /**
   * 'auto' (default): the native inotify reader when it was built, else fs.watch; SERSYNC_TS_NATIVE_INOTIFY=0 in the
   * environment chooses fs.watch too (to try the fallback). Changeable for tests.
   */
  readonly backend?: 'auto' | 'fs.watch';
}

interface DirEventSink {
  event(entry: DirEntry, type: string, name: Buffer | null, hint: DirEventHint | null): void;
  error(entry: DirEntry, err: unknown): void;
}

/**
 * One watched directory, and the listener its backend calls. Only directories have state; files never do. A class,
 * so that its listener methods live on the prototype: on a 1M-file tree a closure or two per directory was tens of MB.
 */
class DirEntry implements DirWatchListener {
  readonly sink: DirEventSink;
  readonly path: RelPath;
  /** Identity of the directory when it was watched, to notice a directory replaced under the same name. */
  readonly ino: bigint;
  readonly dev: bigint;
  /** Inode numbers are reused at once on ext4 (rmdir a; mkdir a gives the same one); birth time tells them apart. */
  readonly birth: bigint;
  token: DirWatchToken = -1;
  /** Names of watched subdirectories, so that removing a subtree does not scan the whole map. */
  children: Set<string> | null = null;

  constructor(sink: DirEventSink, path: RelPath, st: BigIntStats) {
    this.sink = sink;
    this.path = path;
    this.ino = st.ino;
    this.dev = st.dev;
    this.birth = st.birthtimeNs;
  }

  event(type: 'rename' | 'change', name: Buffer | null, hint: DirEventHint | null): void {
    this.sink.event(this, type, name, hint);
  }

  error(err: unknown): void {
    this.sink.error(this, err);
  }
}

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
  renamedFrom: RelPath | null;
}

interface WalkTask {
  readonly path: RelPath;
  /** The watched parent when the task was queued; the task is dropped if the parent went away meanwhile. */
  readonly parent: DirEntry | null;
  readonly group: WalkGroup;
  readonly stats: BigIntStats | null;
}

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
/** How often paths that could not be read are looked at again. */
const UNREADABLE_RETRY_MS = 30_000;
/** How long close() may take to hand over what the watcher still holds. */
const CLOSE_DRAIN_MS = 3000;

/**
 * A directory-only watcher: one inotify watch per directory (through the native reader, or fs.watch where it was not
 * built: dir-watch-backend.ts), none per file, and no per-file stat at start
 * (readdir with d_type; Node lstats only entries whose type the file system does not report). State is O(directories).
 *
 * Each directory is watched before it is listed, so an entry created during the walk is either in the listing or
 * reported by the new watch. A directory that appears later is watched and walked the same way, and reported as one
 * `dir add` for its top after its whole subtree is watched: a recursive sync of it started after that sees every file
 * created before the watches existed, and later files have their own events.
 *
 * Decisions:
 * - Each directory is lstat'ed once before it is watched (not files) to keep its inode, so a directory removed and
 *   re-created under the same name (`rm -rf a; mkdir a`) is noticed and watched again (`dir unlink` + `dir add`).
 * - A change of a directory's own attributes (chmod, chown, utimes) is not reported: the only way to say it would be
 *   a `dir add`, a recursive sync of the whole subtree. The periodic full sync carries directory attributes.
 *   libuv names such an event on the directory's own watch after the directory itself, as a 'rename', exactly like a
 *   change of a child with the same name (`a/a`); so it gives a `file unlink` of `D/<name of D>` when that child does
 *   not exist. That is a deletion of an absent path, correct for a mirror and cheap; dropping it instead would miss
 *   the real deletion of such a child.
 * - A deletion of a path whose type is unknown is not reported if `isIgnored` ignores it as a file or as a
 *   directory, so a remote copy of an ignored path is never deleted because of a local event.
 * - A callback without a file name (not seen on Linux) reports `dir add` for that directory, so the engine syncs it
 *   recursively, and checks its listing against the known subdirectories to watch new ones and drop vanished ones.
 * - EACCES, EPERM, EIO … on a subdirectory or an entry: skipped, remembered (`unreadablePaths()`), reported once
 *   through `onUnreadable`, and tried again every UNREADABLE_RETRY_MS until it can be read or is gone.
 * - ENOSPC/EMFILE from fs.watch, or an `error` from a watcher: one `lost` per new tree; that directory stays
 *   unwatched and is not descended (a parent event for it later tries again).
 * - The root removed, moved or replaced (its inode changes): one `lost`. The watcher then keeps what it has; the
 *   daemon decides whether to stop or restart it.
 * - Queue overflow (IN_Q_OVERFLOW): one `lost`, with the native reader only; libuv drops it, so on
 *   fs.watch an overflow goes unnoticed.
 */
export class DirWatcher implements Watcher {
  readonly #walkLimit: number;
  readonly #eventLimit: number;
  readonly #onUnreadable: ((path: RelPath, cause: unknown) => void) | undefined;
  readonly #onMountPoint: ((path: RelPath) => void) | undefined;
  readonly #backendChoice: 'auto' | 'fs.watch';
  #backend: DirWatchBackend = fsWatchBackend;
  readonly #entrySink: DirEventSink = {
    event: (entry, type, name, hint) => this.#onFsEvent(entry.path, entry, type, name, hint),
    error: (entry, err) => this.#onWatcherError(entry.path, entry, err),
  };

  #sink: ((event: WatchEvent) => void) | null = null;
  #isIgnored: (path: RelPath, isDir: boolean) => boolean = () => false;
  #pairMoves = false;
  readonly #moves = new MovePairs();
  /** Directories moved in from inside the tree, new path → old path, until their check and walk report them. */
  readonly #movedDirs = new Map<RelPath, RelPath>();
  #rootBytes = '';
  #rootPrefix = '';
  #rootName = '';
  #rootIdentity: DirEntry | null = null;
  #rootError: unknown = null;
  #rootLost = false;
  /** The first walk is done: a close() from then on drains what is pending. */
  #started = false;
  #closing = false;
  #closed = false;

  readonly #dirs = new Map<RelPath, DirEntry>();
  readonly #unreadable = new Set<RelPath>();
  #retryTimer: ReturnType<typeof setInterval> | null = null;

  readonly #walkStack: WalkTask[] = [];
  #walkActive = 0;
  readonly #checks = new Map<RelPath, PendingCheck>();
  #checkQueue: PendingCheck[] = [];
  #checkHead = 0;
  #checkActive = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(options: DirWatcherOptions = {}) {
    this.#walkLimit = Math.max(1, options.walkConcurrency ?? 32);
    this.#eventLimit = Math.max(1, options.eventConcurrency ?? 32);
    this.#onUnreadable = options.onUnreadable;
    this.#onMountPoint = options.onMountPoint;
    this.#backendChoice = options.backend ?? (process.env.SERSYNC_TS_NATIVE_INOTIFY === '0' ? 'fs.watch' : 'auto');
  }

  /** 'inotify' (the native reader) or 'fs.watch'. */
  get backend(): DirWatchBackend['name'] {
    return this.#backend.name;
  }

  async start(root: string, sink: (event: WatchEvent) => void, options: WatchOptions): Promise<void> {
    if (this.#sink !== null || this.#closed) throw new Error('DirWatcher.start() may be called once');
    const rootPath = resolve(root);
    let rootStats: BigIntStats;
    try {
      rootStats = await stat(rootPath, { bigint: true });
    } catch (err) {
      const code = errorCode(err);
      const what = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`;
      throw new SersyncError('CONFIG_INVALID', `watch directory ${rootPath} ${what}`, { exitCode: ExitCode.Config, cause: err });
    }
    if (!rootStats.isDirectory()) {
      throw new SersyncError('CONFIG_INVALID', `watch directory ${rootPath} is not a directory`, { exitCode: ExitCode.Config });
    }
    this.#sink = sink;
    this.#isIgnored = options.isIgnored;
    this.#pairMoves = options.pairMoves === true;
    this.#rootBytes = fromUtf8(rootPath);
    this.#rootPrefix = this.#rootBytes.endsWith('/') ? this.#rootBytes : `${this.#rootBytes}/`;
    this.#rootName = baseName(this.#rootBytes);
    const addon = this.#backendChoice === 'auto' ? loadNativeInotify() : null;
    // close() may have come during the stat above: then nothing may be opened that nobody closes.
    if (addon !== null && !this.#closed) {
      this.#backend = createInotifyBackend(
        addon,
        () => this.#emit({ kind: 'lost', reason: 'the inotify event queue overflowed (raise fs.inotify.max_queued_events)' }),
        (err) => this.#emit({ kind: 'lost', reason: `reading inotify events failed: ${messageOf(err)}`, cause: err }),
      );
    }

    await new Promise<void>((done) => {
      const group = newGroup('', false, done);
      this.#pushWalk({ path: '', parent: null, group, stats: rootStats });
    });
    if (this.#closed) return;
    if (this.#dirs.has('')) {
      this.#started = true;
      return;
    }
    const cause = this.#rootError;
    await this.close();
    const code = errorCode(cause);
    if (code === 'ENOSPC' || code === 'EMFILE' || code === 'ENFILE') {
      throw new SersyncError('WATCH_LIMIT', `cannot watch ${rootPath}: ${limitAdvice(code)}`, { exitCode: ExitCode.TempFail, cause });
    }
    throw new SersyncError('CONFIG_INVALID', `cannot watch directory ${rootPath}: ${messageOf(cause)}`, {
      exitCode: ExitCode.Config,
      cause,
    });
  }

  watchCount(): number {
    return this.#dirs.size;
  }

  /**
   * Looks at a directory again as if its parent had reported it (a mount or unmount there, which inotify does not
   * report to the parent): a different directory now is watched anew and reported (`dir unlink`, `dir add`).
   */
  recheck(path: RelPath): void {
    const dir = parentOf(path);
    const parent = this.#dirs.get(dir);
    if (parent !== undefined && !this.#closing && !this.#closed) this.#queueCheck(path, dir, parent, true, false);
  }

  /** Paths skipped because they could not be read (see DirWatcherOptions.onUnreadable). */
  unreadablePaths(): RelPath[] {
    return [...this.#unreadable];
  }

  /**
   * Stops watching. First, everything the watcher already knows of reaches the sink: the events the kernel has
   * queued, the paths still to be looked at, the walks of new directories; so a stop or a reload loses none of them.
   * What is not done within `drainMs` is reported as one `lost` (a full sync).
   */
  async close(drainMs = CLOSE_DRAIN_MS): Promise<void> {
    if (this.#closed) return;
    if (this.#started && !this.#closing) {
      this.#closing = true;
      const deadline = Date.now() + drainMs;
      const finished = await this.#backend.finish(drainMs);
      const idle = await this.#idleBefore(deadline);
      if (!finished || !idle) this.#emit({ kind: 'lost', reason: 'the watcher was stopped before it had looked at every change' });
    }
    this.#closed = true;
    if (this.#retryTimer !== null) clearInterval(this.#retryTimer);
    // The backend first: closing the native reader's descriptor drops every watch at once in the kernel, instead of
    // one inotify_rm_watch per directory (and the IN_IGNORED event each of those queues).
    this.#backend.close();
    for (const entry of this.#dirs.values()) this.#backend.unwatch(entry.token, entry);
    this.#dirs.clear();
    // Queued checks are dropped; queued walk tasks still run, see that the watcher is closed and finish their group.
    for (let i = this.#checkHead; i < this.#checkQueue.length; i++) {
      const check = this.#checkQueue[i];
      if (check !== undefined) this.#checks.delete(check.path);
    }
    this.#checkQueue = [];
    this.#checkHead = 0;
    this.#pumpWalks();
    if (this.#isIdle()) return;
    await new Promise<void>((done) => this.#idleWaiters.push(done));
  }

  // ---- walking -------------------------------------------------------------------------------------------------

  #pushWalk(task: WalkTask): void {
    task.group.pending++;
    this.#walkStack.push(task);
    this.#pumpWalks();
  }

  #pumpWalks(): void {
    // A stack, not a queue: depth first keeps the list of waiting directories short on wide trees.
    while (this.#walkActive < this.#walkLimit) {
      const task = this.#walkStack.pop();
      if (task === undefined) break;
      this.#walkActive++;
      void this.#walk(task).finally(() => {
        this.#walkActive--;
        if (--task.group.pending === 0) this.#finishGroup(task.group);
        this.#pumpWalks();
        this.#maybeIdle();
      });
    }
  }

  #finishGroup(group: WalkGroup): void {
    if (group.reportAdd && !this.#closed) {
      const current = group.topEntry !== null && this.#dirs.get(group.top) === group.topEntry;
      const from = group.renamedFrom;
      if (current || group.topUnwatchable) {
        this.#emit(
          from === null ? { kind: 'dir', op: 'add', path: group.top } : { kind: 'rename', op: 'move', path: group.top, from, isDir: true },
        );
      }
    }
    group.done();
  }

  /** Watch one directory, then list it and queue its subdirectories. */
  async #walk(task: WalkTask): Promise<void> {
    const { path, group } = task;
    if (!this.#walkStillWanted(task)) return;
    let st = task.stats;
    if (st === null) {
      try {
        st = await this.#lstat(path, task.parent?.dev);
      } catch (err) {
        this.#walkFailed(path, group, err);
        return;
      }
      if (!this.#walkStillWanted(task)) return;
    }
    // A directory replaced by something else since it was listed: its parent's watcher reports that.
    if (!st.isDirectory()) return;
    const entry = this.#watchDir(task, st);
    if (entry === null) return;
    let listing: Buffer[];
    try {
      // The native listing, on the root's own device: subdirectory names only (see DirWatchBackend.listDirs).
      const native = this.#backend.listDirs !== undefined && st.dev === this.#rootIdentity?.dev ? this.#backend.listDirs : null;
      listing = native !== null ? native(this.#abs(path)) : await listSubdirs(this.#abs(path));
    } catch (err) {
      if (this.#dirs.get(path) !== entry) return;
      const code = errorCode(err);
      // Vanished: the parent's watcher reports the removal and unwatches it.
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      this.#unwatchTree(path);
      this.#walkFailed(path, group, err);
      return;
    }
    if (this.#dirs.get(path) !== entry) return;
    for (const name of listing) {
      const child = joinRel(path, fromBytes(name));
      if (this.#isIgnored(child, true)) continue;
      this.#pushWalk({ path: child, parent: entry, group, stats: null });
    }
  }

  #walkStillWanted(task: WalkTask): boolean {
    if (this.#closed || this.#dirs.has(task.path)) return false;
    return task.parent === null || this.#dirs.get(parentOf(task.path)) === task.parent;
  }

  #watchDir(task: WalkTask, st: BigIntStats): DirEntry | null {
    const { path, group } = task;
    const entry = new DirEntry(this.#entrySink, path, st);
    try {
      entry.token = this.#backend.watch(this.#abs(path), entry);
    } catch (err) {
      const code = errorCode(err);
      if (path === group.top && (code === 'ENOSPC' || code === 'EMFILE' || code === 'ENFILE')) group.topUnwatchable = true;
      this.#walkFailed(path, group, err);
      return null;
    }
    this.#dirs.set(path, entry);
    if (path !== '') {
      const parent = this.#dirs.get(parentOf(path));
      if (parent !== undefined) (parent.children ??= new Set()).add(baseName(path));
      if (parent !== undefined && parent.dev !== st.dev) this.#onMountPoint?.(path);
    }
    if (path === group.top) group.topEntry = entry;
    if (path === '') this.#rootIdentity = entry;
    if (this.#unreadable.size > 0) this.#unreadable.delete(path);
    return entry;
  }

  #walkFailed(path: RelPath, group: WalkGroup, err: unknown): void {
    if (path === '') {
      this.#rootError = err;
      return;
    }
    const code = errorCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    if (code !== 'ENOSPC' && code !== 'EMFILE' && code !== 'ENFILE') {
      this.#markUnreadable(path, err);
      return;
    }
    const key = code;
    if (group.reported.has(key)) return;
    group.reported.add(key);
    this.#emit({ kind: 'lost', reason: `${limitAdvice(code)}; ${displayPath(path)} and what is below it are not watched`, cause: err });
  }

  /** A path that cannot be read: said once, looked at again every UNREADABLE_RETRY_MS until it can be or is gone. */
  #markUnreadable(path: RelPath, err: unknown): void {
    if (this.#unreadable.has(path)) return;
    this.#unreadable.add(path);
    this.#onUnreadable?.(path, err);
    this.#retryTimer ??= setInterval(() => this.#retryUnreadable(), UNREADABLE_RETRY_MS);
    this.#retryTimer.unref();
  }

  #retryUnreadable(): void {
    if (this.#unreadable.size === 0 && this.#retryTimer !== null) {
      clearInterval(this.#retryTimer);
      this.#retryTimer = null;
      return;
    }
    for (const path of this.#unreadable) {
      const dir = parentOf(path);
      const parent = this.#dirs.get(dir);
      // Below another unreadable directory: that one is retried, and its walk reaches this path.
      if (parent === undefined) continue;
      this.#queueCheck(path, dir, parent, true, false);
    }
  }

  /** Close the watchers of a directory and of everything below it. */
  #unwatchTree(path: RelPath): void {
    if (!this.#dirs.has(path)) return;
    if (path !== '') this.#dirs.get(parentOf(path))?.children?.delete(baseName(path));
    const stack = [path];
    for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
      const entry = this.#dirs.get(p);
      if (entry === undefined) continue;
      this.#backend.unwatch(entry.token, entry);
      this.#dirs.delete(p);
      if (entry.children !== null) for (const name of entry.children) stack.push(joinRel(p, name));
    }
    if (this.#unreadable.size > 0) {
      const prefix = `${path}/`;
      for (const p of this.#unreadable) if (p === path || p.startsWith(prefix)) this.#unreadable.delete(p);
    }
  }

  /** A new (or replaced) directory: watch and walk it, then report it once as `dir add`. */
  #addTree(path: RelPath, st: BigIntStats, renamedFrom: RelPath | null = null): void {
    const parent = this.#dirs.get(parentOf(path));
    if (parent === undefined) return;
    const group = newGroup(path, true, () => {});
    group.renamedFrom = renamedFrom;
    this.#pushWalk({ path, parent, group, stats: st });
  }

  // ---- events --------------------------------------------------------------------------------------------------

  #onFsEvent(dir: RelPath, entry: DirEntry, type: string, name: Buffer | null, hint: DirEventHint | null): void {
    if (this.#dirs.get(dir) !== entry) return; // a closed or replaced watcher
    const ownName = dir === '' ? this.#rootName : baseName(dir);
    if (name === null && hint?.self !== true) {
      void this.#rescan(dir, entry);
      return;
    }
    const bytes = name === null ? ownName : fromBytes(name);
    // libuv names a watch's own events (IN_DELETE_SELF, IN_MOVE_SELF, IN_ATTRIB on itself) after the directory, and
    // reports them as 'rename' (IN_ISDIR is set). Such an event cannot be told from one about a child of the same name.
    // The native reader says which it is (hint.self) and is treated the same way, so both backends behave alike.
    const self = hint !== null ? hint.self || bytes === ownName : bytes === ownName;
    const path = joinRel(dir, bytes);
    // A 'change' (IN_MODIFY, IN_ATTRIB) names an entry that exists and was not just created, renamed or removed:
    // those come as 'rename'. If it is no watched directory it is a file (or a directory whose own 'rename' is
    // being looked at), and the lane lstats every path when the batch goes anyway, so it needs no lstat here. (An
    // unreadable directory is looked at: a chmod may have made it watchable.)
    // This saves three of the four lstat calls a copied file cost (create, modify, chmod, utimes).
    // (With the native reader's hint, a directory that is not watched, say after ENOSPC, is looked at: it may be
    // watchable now.)
    const movedFrom = this.#pairMoves && hint?.cookie !== undefined && !self ? this.#pairMove(path, hint) : null;
    const unwatchedDir = hint?.isDir === true && !this.#dirs.has(path);
    if (type !== 'rename' && !self && !unwatchedDir && !this.#checks.has(path) && !this.#unreadable.has(path)) {
      if (this.#dirs.has(path) || this.#isIgnored(path, false)) return;
      this.#emit(hint?.how ? { kind: 'file', op: 'change', path, how: hint.how } : { kind: 'file', op: 'change', path });
      return;
    }
    // The native backend says what a 'rename' was: a non-directory created, moved in, removed or moved away needs
    // no lstat either (the batch looks at the disk), unless the name was a watched directory a moment ago.
    if (hint !== null && !hint.isDir && !self && !this.#checks.has(path) && !this.#dirs.has(path) && !this.#unreadable.has(path)) {
      if (this.#isIgnored(path, false)) return;
      if (hint.gone) this.#emit({ kind: 'file', op: 'unlink', path });
      else if (movedFrom !== null) this.#emit({ kind: 'rename', op: 'move', path, from: movedFrom, isDir: false });
      else this.#emit({ kind: 'file', op: 'change', path, how: hint.how === 'create' ? this.#createdHow(path, entry) : (hint.how ?? 'create') });
      return;
    }
    this.#queueCheck(path, dir, entry, type === 'rename', self);
  }

  /**
   * One half of a move (see MovePairs). The old name is kept unless it is ignored (no removal is reported for it
   * then, so the new name is no rename). For the new name: the old one, or null; a directory's is kept until its walk
   * reports it.
   */
  #pairMove(path: RelPath, hint: DirEventHint): RelPath | null {
    const cookie = hint.cookie as number;
    if (hint.gone) {
      if (!this.#isIgnored(path, hint.isDir)) this.#moves.movedFrom(cookie, path, hint.isDir);
      return null;
    }
    const from = this.#moves.movedTo(cookie, hint.isDir);
    if (from !== null && hint.isDir && !this.#isIgnored(path, true)) this.#movedDirs.set(path, from);
    return from;
  }

  /**
   * A non-directory was created: a regular file being written ('create': a close-write follows), or something that
   * gets none ('link': a symlink, a hard link to an existing file, a FIFO or device). One lstat, synchronous on the
   * root's own device.
   */
  #createdHow(path: RelPath, dir: DirEntry): 'create' | 'link' {
    // Below another mount point an lstat could block on a hung file system: sent at once, as before.
    if (dir.dev !== this.#rootIdentity?.dev) return 'link';
    try {
      const st = lstatSync(this.#abs(path), { bigint: true });
      return st.isFile() && st.nlink === 1n ? 'create' : 'link';
    } catch {
      return 'create';
    }
  }

  #onWatcherError(path: RelPath, entry: DirEntry, err: unknown): void {
    if (this.#dirs.get(path) !== entry) return;
    this.#unwatchTree(path);
    this.#emit({ kind: 'lost', reason: `watching ${displayPath(path) || '.'} failed: ${messageOf(err)}`, cause: err });
  }

  #queueCheck(path: RelPath, dir: RelPath, dirEntry: DirEntry, rename: boolean, self: boolean): void {
    const known = this.#checks.get(path);
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
    if (this.#isIgnored(path, false) && this.#isIgnored(path, true)) return;
    const check: PendingCheck = { path, dir, dirEntry, rename, self, running: false, again: false, againRename: false, againSelf: false };
    this.#checks.set(path, check);
    this.#checkQueue.push(check);
    this.#pumpChecks();
  }

  #pumpChecks(): void {
    while (this.#checkActive < this.#eventLimit && this.#checkHead < this.#checkQueue.length) {
      const check = this.#checkQueue[this.#checkHead++];
      if (this.#checkHead === this.#checkQueue.length) {
        this.#checkQueue = [];
        this.#checkHead = 0;
      }
      if (check === undefined) continue;
      check.running = true;
      this.#checkActive++;
      void this.#check(check).finally(() => {
        this.#checkActive--;
        check.running = false;
        if (check.again && !this.#closed) {
          // Something happened to the path while it was being looked at: look once more.
          check.rename = check.againRename;
          check.self = check.againSelf;
          check.again = check.againRename = check.againSelf = false;
          this.#checkQueue.push(check);
        } else {
          this.#checks.delete(check.path);
        }
        this.#pumpChecks();
        this.#maybeIdle();
      });
    }
  }

  /** One lstat for a path a watcher named, and what it means. */
  async #check(check: PendingCheck): Promise<void> {
    const { path } = check;
    const renamedFrom = this.#movedDirs.get(path) ?? null;
    if (renamedFrom !== null) this.#movedDirs.delete(path);
    let st: BigIntStats | null;
    try {
      st = await this.#lstat(path, check.dirEntry.dev);
    } catch (err) {
      const code = errorCode(err);
      // EACCES and the like: a directory that is listable but not searchable; rsync could not read the entry either.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        if (this.#dirs.get(check.dir) === check.dirEntry) this.#markUnreadable(path, err);
        return;
      }
      st = null;
    }
    // The directory that reported it was removed or replaced meanwhile; that change covers this path.
    if (this.#dirs.get(check.dir) !== check.dirEntry) return;
    const entry = this.#dirs.get(path);

    if (st === null) {
      if (entry !== undefined) {
        this.#unwatchTree(path);
        this.#emit({ kind: 'dir', op: 'unlink', path });
        return;
      }
      if (this.#unreadable.size > 0) this.#unreadable.delete(path);
      // A 'change' for a name that is gone: its removal comes as a 'rename' of its own.
      if (!check.rename) return;
      if (check.self && (await this.#selfGone(check.dir))) return;
      if (this.#dirs.get(check.dir) !== check.dirEntry) return;
      if (this.#isIgnored(path, false) || this.#isIgnored(path, true)) return;
      this.#emit({ kind: 'file', op: 'unlink', path });
      return;
    }

    if (st.isDirectory()) {
      if (entry !== undefined) {
        if (sameDir(entry, st)) return; // its own attributes: see the class comment
        this.#unwatchTree(path);
        this.#emit({ kind: 'dir', op: 'unlink', path });
      }
      if (this.#isIgnored(path, true)) return;
      this.#addTree(path, st, entry === undefined ? renamedFrom : null);
      return;
    }

    if (entry !== undefined) {
      this.#unwatchTree(path);
      this.#emit({ kind: 'dir', op: 'unlink', path });
    }
    if (this.#unreadable.size > 0) this.#unreadable.delete(path);
    if (this.#isIgnored(path, false)) return;
    // A file that replaced a watched directory is known to be new here. For a
    // 'rename' event the file may have replaced an existing one (mv over it): without per-file state this watcher
    // cannot claim "created", and the aggregator drops a created-then-removed path, so say 'change'.
    this.#emit({ kind: 'file', op: entry !== undefined ? 'add' : 'change', path });
  }

  /**
   * After a 'rename' named like the watched directory itself: is it the directory that went away (then its parent
   * reports it, or for the root: `lost`) rather than a child of the same name?
   */
  async #selfGone(dir: RelPath): Promise<boolean> {
    if (dir === '') {
      let st: BigIntStats | null = null;
      try {
        st = await stat(toBuffer(this.#rootBytes), { bigint: true });
      } catch {
        st = null;
      }
      const root = this.#rootIdentity;
      const gone = st === null || !st.isDirectory() || root === null || !sameDir(root, st);
      if (gone && !this.#rootLost && !this.#closed) {
        this.#rootLost = true;
        this.#emit({ kind: 'lost', reason: ROOT_LOST });
      }
      return gone;
    }
    const entry = this.#dirs.get(dir);
    try {
      const st = await lstatFast(this.#abs(dir), { bigint: true });
      return entry === undefined || !sameDir(entry, st);
    } catch {
      return true;
    }
  }

  /** A watcher event without a name: report the directory for a recursive sync and reconcile its subdirectories. */
  async #rescan(dir: RelPath, entry: DirEntry): Promise<void> {
    let listing: Dirent<Buffer>[] | null;
    try {
      listing = await readdir(this.#abs(dir), { withFileTypes: true, encoding: 'buffer' });
    } catch {
      listing = null; // gone: its parent reports that
    }
    if (this.#dirs.get(dir) !== entry) return;
    if (listing !== null) {
      const present = new Set<string>();
      for (const dirent of listing) {
        if (!dirent.isDirectory()) continue;
        const name = fromBytes(dirent.name);
        present.add(name);
        if (entry.children?.has(name) !== true) this.#queueCheck(joinRel(dir, name), dir, entry, true, false);
      }
      for (const name of entry.children ?? []) {
        if (!present.has(name)) this.#queueCheck(joinRel(dir, name), dir, entry, true, false);
      }
    }
    this.#emit({ kind: 'dir', op: 'add', path: dir });
  }

  // ---- plumbing ------------------------------------------------------------------------------------------------

  /**
   * lstat of an entry of a directory on device `dev`. Synchronous on the root's own file system: an asynchronous
   * lstat is a round trip through libuv's thread pool, and in a burst (one per created file) those hand-offs cost
   * many times the CPU of the lstat itself. Asynchronous below another mount point, where a hung network file system
   * must block one pool thread, not the daemon.
   */
  #lstat(path: RelPath, dev: bigint | undefined): Promise<BigIntStats> | BigIntStats {
    const abs = this.#abs(path);
    if (dev !== undefined && dev === this.#rootIdentity?.dev) return lstatSync(abs, { bigint: true });
    return lstatFast(abs, { bigint: true });
  }

  #emit(event: WatchEvent): void {
    if (this.#closed || this.#sink === null) return;
    this.#sink(event);
  }

  #abs(path: RelPath): Buffer {
    return toBuffer(path === '' ? this.#rootBytes : this.#rootPrefix + path);
  }

  #isIdle(): boolean {
    return this.#walkActive === 0 && this.#walkStack.length === 0 && this.#checkActive === 0;
  }

  /** Resolves true once no walk or check runs or waits, false if that is not so by `deadline` (a Date.now() time). */
  #idleBefore(deadline: number): Promise<boolean> {
    if (this.#isIdle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
      this.#idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  #maybeIdle(): void {
    if (this.#idleWaiters.length === 0 || !this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const done of waiters) done();
  }
}

/** The same directory, not another one that got its inode number. */
function sameDir(entry: DirEntry, st: BigIntStats): boolean {
  return entry.ino === st.ino && entry.dev === st.dev && entry.birth === st.birthtimeNs;
}

function newGroup(top: RelPath, reportAdd: boolean, done: () => void): WalkGroup {
  return { top, reportAdd, pending: 0, topEntry: null, topUnwatchable: false, reported: new Set(), done, renamedFrom: null };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function limitAdvice(code: string): string {
  return code === 'ENOSPC'
    ? 'inotify watch limit reached (fs.inotify.max_user_watches): raise it with sysctl'
    : 'inotify instance or open-file limit reached (fs.inotify.max_user_instances, ulimit -n): raise it';
}

/** Subdirectory names through Node's readdir (d_type; Node lstats where the file system does not say). */
async function listSubdirs(abs: Buffer): Promise<Buffer[]> {
  const entries: Dirent<Buffer>[] = await readdir(abs, { withFileTypes: true, encoding: 'buffer' });
  return entries.filter((d) => d.isDirectory()).map((d) => d.name);
}
