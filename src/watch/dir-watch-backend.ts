import { existsSync, mkdtempSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRawAsset, isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';
import { fromBytes } from '../core/paths.ts';

/**
 * How DirWatcher subscribes to one directory. Two backends: Node's fs.watch, and a small native inotify reader
 * (native/inotify.c, built by `npm test`/`npm run demo` when a C compiler and Node's headers are there). The native
 * one holds no JavaScript object per directory (fs.watch handles cost about 2 kB each), says whether an
 * entry is a directory (so created files need no lstat), and reports inotify queue overflow, which libuv drops.
 */

/**
 * What the native backend knows of an event: the entry's type, whether it went away, and whether the event is about
 * the watched directory itself (then `name` is null). fs.watch gives no hint (null), and names the directory itself.
 */
export interface DirEventHint {
  readonly isDir: boolean;
  readonly gone: boolean;
  readonly self: boolean;
  /** Which inotify event it was (see FileHow); null for removals and the directory's own events. */
  readonly how: FileHow | null;
  /**
   * The cookie that pairs an IN_MOVED_FROM (`gone`) with its IN_MOVED_TO (`how` 'moveTo'); absent for every other
   * event and from fs.watch.
   */
  readonly cookie?: number;
}

/**
 * What happened to an entry that exists, as inotify tells it: created (IN_CREATE), written to (IN_MODIFY), closed
 * after writing (IN_CLOSE_WRITE), moved in (IN_MOVED_TO), its attributes changed (IN_ATTRIB). sersync2's toggles
 * are about these; fs.watch and chokidar cannot tell them apart.
 */
export type FileHow = 'create' | 'write' | 'closeWrite' | 'moveTo' | 'attrib';

export interface DirWatchListener {
  event(type: 'rename' | 'change', name: Buffer | null, hint: DirEventHint | null): void;
  error(err: unknown): void;
}

/** A watch: an inotify watch descriptor (native: no object per directory), or an fs.FSWatcher. */
export type DirWatchToken = number | { close(): void };

export interface DirWatchBackend {
  readonly name: 'inotify' | 'fs.watch';
  /** Throws like fs.watch (an Error with `code`: ENOENT, ENOSPC, EACCES …). */
  watch(abs: Buffer, listener: DirWatchListener): DirWatchToken;
  unwatch(token: DirWatchToken, listener: DirWatchListener): void;
  /**
   * The names of a directory's subdirectories, synchronously, without a Dirent, Buffer or string per file (native
   * only). Throws an Error with `code` like readdir.
   */
  readonly listDirs?: (abs: Buffer) => Buffer[];
  /**
   * Hands every event that happened before the call to the listeners, then resolves (before close(), so a stop or
   * reload loses nothing the kernel already queued). At most `timeoutMs`; false when that ran out.
   */
  finish(timeoutMs: number): Promise<boolean>;
  close(): void;
}

export const fsWatchBackend: DirWatchBackend = {
  name: 'fs.watch',
  watch(abs, listener) {
    const w = watch(abs, { encoding: 'buffer', persistent: true }, (type, name) =>
      listener.event(type === 'rename' ? 'rename' : 'change', name, null),
    );
    w.on('error', (err: unknown) => listener.error(err));
    return w;
  },
  unwatch(token) {
    if (typeof token !== 'number') token.close();
  },
  // libuv reads the inotify queue in its poll phase: a short wait lets it deliver what the kernel holds. An
  // approximation (libuv offers no way to ask), one of the costs of running without the native reader.
  finish: () => new Promise((resolve) => setTimeout(() => resolve(true), 25)),
  close() {},
};

interface NativeInotify {
  open(cb: (chunk: Buffer | null, errno: number | null) => void): unknown;
  addWatch(handle: unknown, path: Buffer, mask: number): number;
  rmWatch(handle: unknown, wd: number): void;
  finish(handle: unknown): void;
  close(handle: unknown): void;
  listDirs(path: Buffer): Buffer;
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

let native: NativeInotify | null | undefined;

/**
 * The compiled addon, or null when it is not there (then DirWatcher uses fs.watch, and a warning says what that
 * costs). The single executable (npm run release) carries it as an asset; the npm package builds it at install.
 */
export function loadNativeInotify(): NativeInotify | null {
  if (native !== undefined) return native;
  native = null;
  if (process.platform !== 'linux') return native;
  try {
    if (isSea()) {
      native = dlopenAsset('inotify.node');
    } else {
      const built = fileURLToPath(new URL('../../native/build/Release/inotify.node', import.meta.url));
      if (!existsSync(built)) throw new Error(`${built} was not built: install make, g++ and python3, then npm rebuild sersync-ts`);
      native = dlopen(built);
    }
  } catch (err) {
    // Said on stderr when the reader is first wanted (the daemon's start, --version), as there is no logger yet.
    console.error(
      `sersync-ts: the native inotify reader is not available: ${err instanceof Error ? err.message : String(err)}.\n` +
        'sersync-ts: watching with fs.watch instead: about 2 KB more memory per directory, and an inotify queue overflow goes unnoticed (no full sync after it)',
    );
  }
  return native;
}

function dlopen(file: string): NativeInotify {
  const addon = { exports: {} };
  process.dlopen(addon, file);
  return addon.exports as NativeInotify;
}

/** dlopen loads only files: the asset goes to a private directory, removed at once (the loaded mapping stays). */
function dlopenAsset(key: string): NativeInotify {
  const dir = mkdtempSync(join(tmpdir(), 'sersync-ts-'));
  try {
    const file = join(dir, key);
    writeFileSync(file, new Uint8Array(getRawAsset(key)), { mode: 0o500 });
    return dlopen(file);
  } catch (err) {
    throw new Error(`loading it from ${dir} failed (${err instanceof Error ? err.message : String(err)}; a noexec TMPDIR?)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One inotify descriptor for one DirWatcher. Watching the same directory twice (it was renamed, and the new name is
 * watched before the old one is dropped) gives the same watch descriptor, so subscribers are counted per descriptor
 * as libuv does; the watch is removed with the last one.
 */
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

export function createInotifyBackend(addon: NativeInotify, onOverflow: () => void, onError: (err: unknown) => void): DirWatchBackend {
  // One listener per descriptor, an array in the rare case of two (a directory watched under a new name before its
  // old one was dropped). No Set or closure per directory: this map is most of the watcher's memory on 1M files.
  const subscribers = new Map<number, DirWatchListener | DirWatchListener[]>();
  let finished: (() => void) | null = null;
  // A file's IN_CREATE, held back while the events right after it are about the same file: `cp -a` and uploads give
  // IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE (and IN_ATTRIB) one after the other, and the close-write alone says it all
  // (created, and complete). A creation that nothing follows (a link, a FIFO, a file still being written) goes on as
  // it is before the next event, or HELD_CREATE_MS after its chunk when no chunk follows. It is kept across chunks:
  // a copy is mostly between a file's creation and its close, so most reads end there, and flushed at each chunk's
  // end, one file per read cost an lstat (DirWatcher tells a link from a file) and a second event.
  let heldWd = -1;
  let heldName: Buffer | null = null;
  let heldSubs: DirWatchListener | DirWatchListener[] | null = null;
  let heldTimer: ReturnType<typeof setTimeout> | null = null;
  const dispatch = (subs: DirWatchListener | DirWatchListener[], type: 'rename' | 'change', name: Buffer | null, hint: DirEventHint) => {
    // `name` is a view into its chunk (a fresh copy per read), so it needs no copy of its own.
    for (const s of Array.isArray(subs) ? [...subs] : [subs]) s.event(type, name, hint);
  };
  const flushHeld = () => {
    if (heldTimer !== null) clearTimeout(heldTimer);
    heldTimer = null;
    if (heldName === null || heldSubs === null) return;
    const name = heldName;
    heldName = null;
    dispatch(heldSubs, 'rename', name, HINTS[0]?.get('create') as DirEventHint);
  };
  const handle = addon.open((chunk, errno) => {
    // A held creation waits for this chunk, which may fold it; an end or an error hands it on first.
    if (chunk === null) flushHeld();
    else if (heldTimer !== null) {
      clearTimeout(heldTimer);
      heldTimer = null;
    }
    if (chunk === null && errno === END_OF_EVENTS) {
      finished?.();
      return;
    }
    if (chunk === null) {
      onError(Object.assign(new Error(`reading inotify events failed (errno ${errno})`), { code: ERRNO_CODES[errno ?? 0] ?? 'EIO' }));
      return;
    }
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
        flushHeld();
        onOverflow();
        continue;
      }
      const subs = subscribers.get(wd);
      if (subs === undefined) continue;
      if (mask & IN_IGNORED) {
        subscribers.delete(wd);
        continue;
      }
      const type = mask & (IN_ATTRIB | IN_MODIFY | IN_CLOSE_WRITE) ? 'change' : 'rename';
      const self = name === null || (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) !== 0;
      const gone = (mask & (IN_DELETE | IN_MOVED_FROM)) !== 0;
      const isDir = (mask & IN_ISDIR) !== 0;
      if (heldName !== null && wd === heldWd && !self && name?.equals(heldName) === true) {
        if (mask & (IN_ATTRIB | IN_MODIFY)) continue;
        if (mask & IN_CLOSE_WRITE) heldName = null;
      }
      flushHeld();
      if (!isDir && !self && !gone && (mask & IN_CREATE) !== 0) {
        heldWd = wd;
        heldName = name;
        heldSubs = subs;
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
      dispatch(subs, type, self ? null : name, hint);
    }
    if (heldName !== null) heldTimer = setTimeout(flushHeld, HELD_CREATE_MS);
  });
  return {
    name: 'inotify',
    watch(abs, listener) {
      let wd: number;
      try {
        wd = addon.addWatch(handle, abs, MASK);
      } catch (err) {
        const errno = (err as { errno?: number }).errno ?? 0;
        throw Object.assign(new Error(`watch ${fromBytes(abs)}: ${(err as Error).message}`), {
          code: ERRNO_CODES[errno] ?? 'EIO',
          cause: err,
        });
      }
      const subs = subscribers.get(wd);
      if (subs === undefined) subscribers.set(wd, listener);
      else if (Array.isArray(subs)) subs.push(listener);
      else subscribers.set(wd, [subs, listener]);
      return wd;
    },
    unwatch(token, listener) {
      if (typeof token !== 'number') return;
      const subs = subscribers.get(token);
      if (subs === undefined) return;
      if (Array.isArray(subs)) {
        const rest = subs.filter((s) => s !== listener);
        if (rest.length === subs.length) return;
        if (rest.length > 0) {
          subscribers.set(token, rest.length === 1 ? (rest[0] as DirWatchListener) : rest);
          return;
        }
      } else if (subs !== listener) return;
      subscribers.delete(token);
      addon.rmWatch(handle, token);
    },
    listDirs(abs) {
      let names: Buffer;
      try {
        names = addon.listDirs(abs);
      } catch (err) {
        const errno = (err as { errno?: number }).errno ?? 0;
        throw Object.assign(new Error(`list ${fromBytes(abs)}: ${(err as Error).message}`), {
          code: ERRNO_CODES[errno] ?? 'EIO',
          cause: err,
        });
      }
      const out: Buffer[] = [];
      for (let start = 0; start < names.length; ) {
        const end = names.indexOf(0, start);
        out.push(names.subarray(start, end));
        start = end + 1;
      }
      return out;
    },
    finish(timeoutMs) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        finished = () => {
          clearTimeout(timer);
          resolve(true);
        };
        addon.finish(handle);
      });
    },
    close() {
      if (heldTimer !== null) clearTimeout(heldTimer);
      heldName = null;
      subscribers.clear();
      addon.close(handle);
    },
  };
}
