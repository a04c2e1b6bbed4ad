import { ExitCode, SersyncError } from '../core/errors.ts';
import { fromBytes } from '../core/paths.ts';
import type { DirEventHint, DirWatchBackend, DirWatchListener, FileHow, NativeInotify } from './dir-watch-backend.ts';
import { limitAdvice } from './dir-walker.ts';

/**
 * One inotify instance (one descriptor and the native reader's thread, native/inotify.c), shared by every DirWatcher
 * of a daemon as lsyncd shares one for all its sync{} blocks: instances are a scarce per-user resource
 * (fs.inotify.max_user_instances, 128 by default, for every program of the user), so ten sites take one, not ten.
 *
 * Each watcher gets a backend of its own (backend()): its watches live in this instance, and events go to the
 * listener (a DirEntry of that watcher's tree) that holds the watch descriptor. What concerns the instance as a whole,
 * a queue overflow or a failed read, goes to every watcher, each answering it with its own full sync.
 *
 * Decisions:
 * - The same directory watched twice gives the same descriptor: a directory watched under its new name before the
 *   old one is dropped, a site swapped new-first by a reload (both watchers watch the same tree for a moment), a
 *   symlinked root that points into another site's tree. Listeners are counted per descriptor, as libuv does; each
 *   hears the events under its own path, and the kernel watch goes with the last one.
 * - A watch let go of stops its events at once; the kernel's watch is removed a slice at a time between turns of the
 *   event loop, so a site with a million directories leaving does not flood the shared queue with IN_IGNORED and
 *   overflow it for the sites that stay. A directory watched again before then keeps its watch.
 * - finish() (a watcher's hand-over) reads what the kernel queued and goes on reading: the other watchers' events
 *   keep flowing. Hand-overs that ask while one is under way are answered by the next one.
 */
export class InotifyInstance {
  readonly #addon: NativeInotify;
  readonly #handle: unknown;
  readonly #closeWithLastWatcher: boolean;
  /**
   * One listener per descriptor, an array in the rare case of several. No Set or closure per directory: this map is
   * most of the watcher's memory on 1M files.
   */
  readonly #subscribers = new Map<number, DirWatchListener | DirWatchListener[]>();
  readonly #watchers = new Set<{ readonly onOverflow: () => void; readonly onError: (err: unknown) => void }>();
  /** Descriptors let go of, whose kernel watch is still to be removed. */
  readonly #toRemove = new Set<number>();
  #removing: ReturnType<typeof setImmediate> | null = null;
  /** The hand-overs the reader's next end marker answers, and those that asked after it was requested. */
  #round: (() => void)[] | null = null;
  #nextRound: (() => void)[] = [];
  // A file's IN_CREATE, held back while the events right after it are about the same file: `cp -a` and uploads give
  // IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE (and IN_ATTRIB) one after the other, and the close-write alone says it all
  // (created, and complete). A creation that nothing follows (a link, a FIFO, a file still being written) goes on as
  // it is before the next event, or HELD_CREATE_MS after its chunk when no chunk follows. It is kept across chunks:
  // a copy is mostly between a file's creation and its close, so most reads end there, and flushed at each chunk's
  // end, one file per read cost an lstat (DirWatcher tells a link from a file) and a second event.
  #heldWd = -1;
  #heldName: Buffer | null = null;
  #heldTimer: ReturnType<typeof setTimeout> | null = null;
  /**
   * An IN_MOVED_FROM, kept until the next event (its IN_MOVED_TO, which the kernel queues right after it but may
   * leave to the next read) or HELD_CREATE_MS: both halves then reach the watchers in one turn, before any check
   * of the old name could report it gone alone.
   */
  #heldMove: (() => void) | null = null;
  #closed = false;

  /**
   * `closeWithLastWatcher`: the instance of a lone watcher (`-m`, tests), closed with it. A daemon's shared one is
   * closed by the daemon.
   */
  constructor(addon: NativeInotify, options: { closeWithLastWatcher?: boolean } = {}) {
    this.#addon = addon;
    this.#closeWithLastWatcher = options.closeWithLastWatcher === true;
    try {
      this.#handle = addon.open((chunk, errno) => this.#read(chunk, errno));
    } catch (err) {
      const code = ERRNO_CODES[(err as { errno?: number }).errno ?? 0];
      const why = code === 'EMFILE' || code === 'ENFILE' ? limitAdvice(code) : (err as Error).message;
      throw new SersyncError('WATCH_LIMIT', `cannot open an inotify instance: ${why}`, { exitCode: ExitCode.TempFail, cause: err });
    }
  }

  /** Watchers using the instance. */
  get watchers(): number {
    return this.#watchers.size;
  }

  /**
   * A backend for one DirWatcher. `onOverflow` and `onError` are about the whole instance: every watcher hears them.
   * Its close() lets go of the instance; the watcher unwatches its own directories.
   */
  backend(onOverflow: () => void, onError: (err: unknown) => void): DirWatchBackend {
    const watcher = { onOverflow, onError };
    this.#watchers.add(watcher);
    return {
      name: 'inotify',
      watch: (abs, listener) => this.#watch(abs, listener),
      unwatch: (token, listener) => {
        if (typeof token === 'number') this.#unwatch(token, listener);
      },
      listDirs: (abs) => this.#listDirs(abs),
      finish: (timeoutMs) => this.#finish(timeoutMs),
      close: () => {
        if (this.#watchers.delete(watcher) && this.#closeWithLastWatcher && this.#watchers.size === 0) this.close();
      },
    };
  }

  /** Stops the reader and closes the descriptor, which drops every watch at once in the kernel. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heldTimer !== null) clearTimeout(this.#heldTimer);
    if (this.#removing !== null) clearImmediate(this.#removing);
    this.#heldName = null;
    this.#heldMove = null;
    this.#subscribers.clear();
    this.#toRemove.clear();
    this.#addon.close(this.#handle);
  }

  #watch(abs: Buffer, listener: DirWatchListener): number {
    let wd: number;
    try {
      wd = this.#addon.addWatch(this.#handle, abs, MASK);
    } catch (err) {
      throw errnoError(`watch ${fromBytes(abs)}`, err);
    }
    this.#toRemove.delete(wd);
    const subs = this.#subscribers.get(wd);
    if (subs === undefined) this.#subscribers.set(wd, listener);
    else if (Array.isArray(subs)) subs.push(listener);
    else this.#subscribers.set(wd, [subs, listener]);
    return wd;
  }

  #unwatch(wd: number, listener: DirWatchListener): void {
    const subs = this.#subscribers.get(wd);
    if (subs === undefined) return;
    if (Array.isArray(subs)) {
      const rest = subs.filter((s) => s !== listener);
      if (rest.length === subs.length) return;
      if (rest.length > 0) {
        this.#subscribers.set(wd, rest.length === 1 ? (rest[0] as DirWatchListener) : rest);
        return;
      }
    } else if (subs !== listener) return;
    this.#subscribers.delete(wd);
    this.#toRemove.add(wd);
    this.#removing ??= setImmediate(() => this.#removeSome());
  }

  #removeSome(): void {
    this.#removing = null;
    let n = 0;
    for (const wd of this.#toRemove) {
      if (n++ === REMOVE_SLICE) {
        this.#removing = setImmediate(() => this.#removeSome());
        return;
      }
      this.#toRemove.delete(wd);
      this.#addon.rmWatch(this.#handle, wd);
    }
  }

  #listDirs(abs: Buffer): Buffer[] {
    let names: Buffer;
    try {
      names = this.#addon.listDirs(abs);
    } catch (err) {
      throw errnoError(`list ${fromBytes(abs)}`, err);
    }
    const out: Buffer[] = [];
    for (let start = 0; start < names.length; ) {
      const end = names.indexOf(0, start);
      out.push(names.subarray(start, end));
      start = end + 1;
    }
    return out;
  }

  #finish(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      // The marker of a hand-over already requested may have been read before this call: only the next one counts.
      if (this.#round !== null) this.#nextRound.push(done);
      else {
        this.#round = [done];
        this.#addon.finish(this.#handle);
      }
    });
  }

  #endOfEvents(): void {
    const round = this.#round ?? [];
    this.#round = null;
    if (this.#nextRound.length > 0 && !this.#closed) {
      this.#round = this.#nextRound;
      this.#nextRound = [];
      this.#addon.finish(this.#handle);
    }
    for (const done of round) done();
  }

  #flushHeld(): void {
    if (this.#heldTimer !== null) clearTimeout(this.#heldTimer);
    this.#heldTimer = null;
    const name = this.#heldName;
    this.#heldName = null;
    const subs = name === null ? undefined : this.#subscribers.get(this.#heldWd);
    if (subs !== undefined) dispatch(subs, 'rename', name, HINTS[0]?.get('create') as DirEventHint);
    const move = this.#heldMove;
    this.#heldMove = null;
    move?.();
  }

  #read(chunk: Buffer | null, errno: number | null): void {
    // A held creation waits for this chunk, which may fold it; an end or an error hands it on first.
    if (chunk === null) this.#flushHeld();
    else if (this.#heldTimer !== null) {
      clearTimeout(this.#heldTimer);
      this.#heldTimer = null;
    }
    if (chunk === null && errno === END_OF_EVENTS) {
      this.#endOfEvents();
      return;
    }
    if (chunk === null) {
      const err = Object.assign(new Error(`reading inotify events failed (errno ${errno})`), { code: ERRNO_CODES[errno ?? 0] ?? 'EIO' });
      for (const w of [...this.#watchers]) w.onError(err);
      return;
    }
    const subscribers = this.#subscribers;
    let off = 0;
    // The previous event's descriptor and name, when it told of an entry that exists (not a removal).
    let lastWd = -1;
    let lastName: Buffer | null = null;
    while (off + 16 <= chunk.length) {
      const wd = chunk.readInt32LE(off);
      const mask = chunk.readUInt32LE(off + 4);
      const cookie = chunk.readUInt32LE(off + 8);
      const len = chunk.readUInt32LE(off + 12);
      const nameEnd = chunk.indexOf(0, off + 16);
      const name = len === 0 ? null : chunk.subarray(off + 16, nameEnd === -1 || nameEnd > off + 16 + len ? off + 16 + len : nameEnd);
      off += 16 + len;
      if (mask & IN_Q_OVERFLOW) {
        this.#flushHeld();
        for (const w of [...this.#watchers]) w.onOverflow();
        continue;
      }
      if (mask & IN_IGNORED) {
        // The kernel dropped the watch (its directory is gone): for every listener of it.
        subscribers.delete(wd);
        this.#toRemove.delete(wd);
        continue;
      }
      const subs = subscribers.get(wd);
      if (subs === undefined) continue;
      const type = mask & (IN_ATTRIB | IN_MODIFY | IN_CLOSE_WRITE) ? 'change' : 'rename';
      const self = name === null || (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) !== 0;
      const gone = (mask & (IN_DELETE | IN_MOVED_FROM)) !== 0;
      const isDir = (mask & IN_ISDIR) !== 0;
      if (this.#heldName !== null && wd === this.#heldWd && !self && name?.equals(this.#heldName) === true) {
        if (mask & (IN_ATTRIB | IN_MODIFY)) continue;
        if (mask & IN_CLOSE_WRITE) this.#heldName = null;
      }
      this.#flushHeld();
      if (!isDir && !self && !gone && (mask & IN_CREATE) !== 0) {
        this.#heldWd = wd;
        this.#heldName = name;
        lastWd = wd;
        lastName = name;
        continue;
      }
      // A write or attribute change right after an event for the same existing entry adds nothing (see above).
      // IN_CLOSE_WRITE is never skipped: it says the file is complete.
      if (mask & (IN_ATTRIB | IN_MODIFY) && !self && wd === lastWd && lastName !== null && name?.equals(lastName) === true) continue;
      lastWd = wd;
      lastName = self || gone ? null : name;
      const shared = self
        ? SELF_HINT
        : gone
          ? (GONE_HINTS[isDir ? 1 : 0] as DirEventHint)
          : (HINTS[isDir ? 1 : 0]?.get(howOf(mask)) as DirEventHint);
      // Moves are rare next to writes: only they get a hint object of their own, to carry the cookie.
      const hint = !self && cookie !== 0 && mask & (IN_MOVED_FROM | IN_MOVED_TO) ? { ...shared, cookie } : shared;
      if (hint !== shared && mask & IN_MOVED_FROM) this.#heldMove = () => dispatch(subs, type, name, hint);
      else dispatch(subs, type, self ? null : name, hint);
    }
    if (this.#heldName !== null || this.#heldMove !== null) this.#heldTimer = setTimeout(() => this.#flushHeld(), HELD_CREATE_MS);
  }
}

function dispatch(subs: DirWatchListener | DirWatchListener[], type: 'rename' | 'change', name: Buffer | null, hint: DirEventHint): void {
  // `name` is a view into its chunk (a fresh copy per read), so it needs no copy of its own.
  if (!Array.isArray(subs)) subs.event(type, name, hint);
  else for (const s of [...subs]) s.event(type, name, hint);
}

function errnoError(what: string, err: unknown): Error {
  const errno = (err as { errno?: number }).errno ?? 0;
  return Object.assign(new Error(`${what}: ${(err as Error).message}`), { code: ERRNO_CODES[errno] ?? 'EIO', cause: err });
}

const IN_MODIFY = 0x2;
const IN_ATTRIB = 0x4;
const IN_CLOSE_WRITE = 0x8;
const IN_MOVED_FROM = 0x40;
const IN_MOVED_TO = 0x80;
const IN_CREATE = 0x100;
const IN_DELETE = 0x200;
const IN_DELETE_SELF = 0x400;
const IN_MOVE_SELF = 0x800;
const IN_UNMOUNT = 0x2000;
const IN_Q_OVERFLOW = 0x4000;
const IN_IGNORED = 0x8000;
const IN_ONLYDIR = 0x1000000;
const IN_ISDIR = 0x40000000;
/**
 * libuv's mask for fs.watch, so both backends see the same events, and IN_CLOSE_WRITE, which libuv leaves out: a
 * file is sent once it is closed after writing, not while it is written. IN_ONLYDIR refuses a file swapped in.
 */
const MASK =
  IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_MODIFY | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR;

/**
 * How long a file's IN_CREATE at the end of a chunk waits for the next chunk (which may fold it into its close-write)
 * before it goes on alone. The reader posts a chunk every 20 ms while events flow.
 */
const HELD_CREATE_MS = 50;

/** What the native reader passes as errno after finish(): everything queued before it was handed over. */
const END_OF_EVENTS = -1;

/** Kernel watches removed per turn of the event loop: their IN_IGNORED events fill one 64 KiB read. */
const REMOVE_SLICE = 4096;

const ERRNO_CODES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  13: 'EACCES',
  20: 'ENOTDIR',
  23: 'ENFILE',
  24: 'EMFILE',
  28: 'ENOSPC',
  40: 'ELOOP',
};

/** The hints there are, shared, so that an event allocates none: [isDir][how], and the removals. */
const HOWS: readonly FileHow[] = ['create', 'write', 'closeWrite', 'moveTo', 'attrib'];
const HINTS = [false, true].map((isDir) => new Map(HOWS.map((how) => [how, { isDir, gone: false, self: false, how } as DirEventHint])));
const GONE_HINTS: readonly DirEventHint[] = [false, true].map((isDir) => ({ isDir, gone: true, self: false, how: null }));
const SELF_HINT: DirEventHint = { isDir: true, gone: false, self: true, how: null };

function howOf(mask: number): FileHow {
  if (mask & IN_CLOSE_WRITE) return 'closeWrite';
  if (mask & IN_MODIFY) return 'write';
  if (mask & IN_ATTRIB) return 'attrib';
  if (mask & IN_MOVED_TO) return 'moveTo';
  return 'create';
}
