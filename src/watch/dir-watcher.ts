import type { BigIntStats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { errorCode, ExitCode, SersyncError } from '../core/errors.ts';
import { fromUtf8, type RelPath } from '../core/paths.ts';
import { DirEventInterpreter } from './dir-event-interpreter.ts';
import { DirWalker, limitAdvice } from './dir-walker.ts';
import { type DirWatchBackend, loadNativeInotify, type NativeInotify } from './dir-watch-backend.ts';
import { InotifyInstance } from './inotify-instance.ts';
import { PathChecks } from './path-checks.ts';
import { UnreadablePaths } from './unreadable-paths.ts';
import { WatchedTree } from './watched-tree.ts';
import type { WatchEvent, WatchOptions, Watcher } from './watcher.ts';

export interface DirWatcherOptions {
  /** Directory listings (and their watch + lstat) in flight during a walk. Default 32; changeable for tests. */
  readonly walkConcurrency?: number;
  /**
   * Called once for a path that cannot be watched, listed or looked at (EACCES, EPERM, EIO …). It is skipped, not
   * reported as `lost`: rsync could not read it either, and a full sync would not help. It is tried again every 30 s
   * and when its parent reports an event for it (a chmod does), and forgotten when it is removed.
   */
  readonly onUnreadable?: (path: RelPath, cause: unknown) => void;
  /** Called for each directory on another device than its parent (a disk mounted inside the tree). */
  readonly onMountPoint?: (path: RelPath) => void;
  /**
   * 'auto' (default): the native inotify reader when it was built, else fs.watch; SERSYNC_TS_NATIVE_INOTIFY=0 in the
   * environment chooses fs.watch too (to try the fallback). Changeable for tests.
   */
  readonly backend?: 'auto' | 'fs.watch';
  /**
   * The inotify instance to watch in when the native reader is used: a daemon's one, shared by all its sites.
   * Without it the watcher opens one of its own, closed with it.
   */
  readonly inotify?: (addon: NativeInotify) => InotifyInstance;
}

/** lstat calls in flight for paths that events named. */
const CHECK_CONCURRENCY = 32;
/** How long close() may take to hand over what the watcher still holds. */
const CLOSE_DRAIN_MS = 3000;

/**
 * A directory-only watcher: one inotify watch per directory (through the native reader, or fs.watch where it was not
 * built: dir-watch-backend.ts), none per file, and no per-file stat at start
 * (readdir with d_type; Node lstats only entries whose type the file system does not report). State is O(directories).
 *
 * Each directory is watched before it is listed, and a new tree is reported once all of it is watched (DirWalker).
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
 *   through `onUnreadable`, and tried again every 30 s until it can be read or is gone.
 * - ENOSPC/EMFILE while walking the tree at start: start() fails (WATCH_LIMIT). Later, or an `error` from a
 *   watcher: one `lost` per new tree; that directory stays unwatched and is not descended (a parent event for it
 *   later tries again).
 * - The root removed, moved or replaced (its inode changes): one `lost`. The watcher then keeps what it has; the
 *   daemon decides whether to stop or restart it.
 * - Queue overflow (IN_Q_OVERFLOW): one `lost`, with the native reader only; libuv drops it, so on
 *   fs.watch an overflow goes unnoticed.
 *
 * Parts: DirWalker watches and lists new trees; DirEventInterpreter turns each directory's events into WatchEvents,
 * handing what needs a look at the disk to PathChecks; WatchedTree holds the watched directories (DirEntry, with
 * their identity) and UnreadablePaths what could not be read.
 */
export class DirWatcher implements Watcher {
  readonly #backendChoice: 'auto' | 'fs.watch';
  readonly #inotify: ((addon: NativeInotify) => InotifyInstance) | undefined;
  readonly #tree: WatchedTree;
  readonly #walker: DirWalker;
  readonly #checks: PathChecks;
  /** The first walk is done: a close() from then on drains what is pending. */
  #started = false;
  #closing = false;
  #idleWaiters: (() => void)[] = [];
  /** #maybeIdle is settling owed moves. */
  #settling = false;

  constructor(options: DirWatcherOptions = {}) {
    this.#backendChoice = options.backend ?? (process.env.SERSYNC_TS_NATIVE_INOTIFY === '0' ? 'fs.watch' : 'auto');
    this.#inotify = options.inotify;
    // The parts call one another (a check walks a new directory, a walk watches directories whose events are
    // interpreted, an unreadable path is checked again): the arrows bind them once all exist.
    const afterTask = () => this.#maybeIdle();
    const tree = new WatchedTree(new UnreadablePaths(options.onUnreadable, (path) => checks.recheck(path)));
    const checks = new PathChecks(tree, {
      concurrency: CHECK_CONCURRENCY,
      addTree: (path, st, renamedFrom, afterMove) => walker.addTree(path, st, renamedFrom, afterMove),
      afterCheck: afterTask,
    });
    const walker = new DirWalker(tree, new DirEventInterpreter(tree, checks), {
      concurrency: options.walkConcurrency ?? 32,
      onMountPoint: options.onMountPoint,
      afterTask,
    });
    this.#tree = tree;
    this.#checks = checks;
    this.#walker = walker;
  }

  /** 'inotify' (the native reader) or 'fs.watch'. */
  get backend(): DirWatchBackend['name'] {
    return this.#tree.backend.name;
  }

  async start(root: string, sink: (event: WatchEvent) => void, options: WatchOptions): Promise<void> {
    const tree = this.#tree;
    if (tree.isOpen || tree.closed) throw new Error('DirWatcher.start() may be called once');
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
    tree.open(fromUtf8(rootPath), sink, options);
    const addon = this.#backendChoice === 'auto' ? loadNativeInotify() : null;
    // close() may have come during the stat above: then nothing may be opened that nobody closes.
    if (addon !== null && !tree.closed) {
      const instance = this.#inotify?.(addon) ?? new InotifyInstance(addon, { closeWithLastWatcher: true });
      tree.backend = instance.backend(
        () => tree.emit({ kind: 'lost', reason: 'the inotify event queue overflowed (raise fs.inotify.max_queued_events)' }),
        (err) => tree.emit({ kind: 'lost', reason: `reading inotify events failed: ${messageOf(err)}`, cause: err }),
      );
    }

    await this.#walker.walkRoot(rootStats);
    if (tree.closed) return;
    const limit = this.#walker.rootWalkLimit;
    if (tree.dirs.has('') && limit === null) {
      this.#started = true;
      return;
    }
    if (limit !== null) {
      const watched = tree.dirs.size;
      await this.close();
      throw new SersyncError(
        'WATCH_LIMIT',
        `cannot watch all of ${rootPath}: ${limitAdvice(errorCode(limit) ?? '')} (it was reached after ${watched} directories; examples/sysctl has the settings)`,
        { exitCode: ExitCode.TempFail, cause: limit },
      );
    }
    const cause = this.#walker.rootError;
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
    return this.#tree.dirs.size;
  }

  /**
   * Looks at a directory again as if its parent had reported it (a mount or unmount there, which inotify does not
   * report to the parent): a different directory now is watched anew and reported (`dir unlink`, `dir add`).
   */
  recheck(path: RelPath): void {
    if (!this.#closing && !this.#tree.closed) this.#checks.recheck(path);
  }

  /** Paths skipped because they could not be read (see DirWatcherOptions.onUnreadable). */
  unreadablePaths(): RelPath[] {
    return this.#tree.unreadable.list();
  }

  /**
   * Stops watching. First, everything the watcher already knows of reaches the sink: the events the kernel has
   * queued, the paths still to be looked at, the walks of new directories; so a stop or a reload loses none of them.
   * What is not done within `drainMs` is reported as one `lost` (a full sync).
   */
  async close(drainMs = CLOSE_DRAIN_MS): Promise<void> {
    const tree = this.#tree;
    if (tree.closed) return;
    if (this.#started && !this.#closing) {
      this.#closing = true;
      const deadline = Date.now() + drainMs;
      const finished = await tree.backend.finish(drainMs);
      const idle = await this.#idleBefore(deadline);
      if (!finished || !idle) tree.emit({ kind: 'lost', reason: 'the watcher was stopped before it had looked at every change' });
    }
    tree.close();
    // Waiting checks are dropped; waiting walks still run, see that the watcher is closed and finish their group.
    this.#checks.dropWaiting();
    if (this.#isIdle()) return;
    await new Promise<void>((done) => this.#idleWaiters.push(done));
  }

  #isIdle(): boolean {
    return this.#walker.idle && this.#checks.idle;
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
    if (!this.#isIdle()) return;
    // Nothing in flight can report a move any more: one still owed, that a directory's report waits for (see
    // WalkGroup.after), is settled now rather than never. moveEnded keeps the checks busy until it has.
    // Not again from within: a moveEnded that ends at once calls back here, and the rest are in hand already.
    const tree = this.#tree;
    if (!tree.closed && !this.#settling) {
      this.#settling = true;
      try {
        for (const name of tree.awaitedMoves()) if (tree.movesFrom.has(name)) void this.#checks.moveEnded(name);
      } finally {
        this.#settling = false;
      }
    }
    if (this.#idleWaiters.length === 0 || !this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const done of waiters) done();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
