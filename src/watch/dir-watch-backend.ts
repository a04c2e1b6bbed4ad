import { existsSync, mkdtempSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRawAsset, isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';

/**
 * How DirWatcher subscribes to one directory. Two backends: Node's fs.watch, and a small native inotify reader
 * (native/inotify.c, built by `npm test`/`npm run demo` when a C compiler and Node's headers are there; one
 * instance of it serves all the watchers of a daemon: inotify-instance.ts). The native
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

/** The native addon (native/inotify.c); InotifyInstance (inotify-instance.ts) is what uses it. */
export interface NativeInotify {
  open(cb: (chunk: Buffer | null, errno: number | null) => void): unknown;
  addWatch(handle: unknown, path: Buffer, mask: number): number;
  rmWatch(handle: unknown, wd: number): void;
  finish(handle: unknown): void;
  close(handle: unknown): void;
  listDirs(path: Buffer): Buffer;
}

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
