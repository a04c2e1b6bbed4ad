import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { PendingEntry } from '../aggregate/aggregator.ts';
import type { Clock } from '../core/clock.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { PidFile, holderOf, isSersyncProcess } from './pid-file.ts';
import { ensureStateDir, stateDirFor } from './state-dir.ts';

/**
 * The durable retry queue: what has not reached a remote yet, stored as data (never as a script, unlike sersync2's
 * world-writable rsync_fail_log.sh), one JSON file written atomically (temp file, fsync, rename, fsync of the
 * directory), mode 0600, in the private state directory. It belongs to one instance (the watch path and the
 * remotes), so copies of one config with the same failLog run side by side; a lock file keeps a second daemon of the
 * same instance out. It also remembers whether the last run ended cleanly: a start after a crash must assume that
 * pending events were lost. A write that fails (full disk, EIO, read-only) never stops the daemon: the queue stays
 * in memory, the failure is reported, and the write is tried again.
 */

export interface StoredBatch {
  readonly full: boolean;
  readonly fullReason: string;
  /** Byte-string paths (src/core/paths.ts); JSON keeps them exactly. */
  readonly entries: readonly PendingEntry[];
  readonly attempts: number;
  readonly lastExitCode: number | null;
  readonly lastError: string;
  readonly firstFailedAt: string;
  readonly lastAttemptAt: string;
  readonly nextAttemptAt: string | null;
}

interface QueueFile {
  readonly format: 'sersync-ts retry queue';
  readonly version: 1;
  /** True while a daemon runs; a start that finds it true knows the last run crashed. */
  running: boolean;
  /** The instance's watch path (absent in files of earlier versions). */
  watch?: string;
  pid: number;
  updatedAt: string;
  remotes: Record<string, StoredBatch>;
}

export interface FailQueueOptions {
  /** `<failLog path>`: its base name makes the file name readable. */
  readonly failLogPath: string;
  /** `<tuning stateDir>`, or null for the default (src/recovery/state-dir.ts). */
  readonly stateDir: string | null;
  /** The instance: the watch path and the remote ids. */
  readonly watch: string;
  readonly remoteIds: readonly string[];
  readonly clock: Clock;
  readonly log: Pick<Logger, 'error' | 'warn' | 'info'>;
  /** Changeable for tests. */
  readonly env?: NodeJS.ProcessEnv;
}

/** How long a failed write waits before it is tried again (any change tries it sooner). */
export const WRITE_RETRY_MS = 5000;
const { O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_WRONLY } = constants;

export class FailQueue {
  readonly file: string;
  /** Where an unreadable queue file was moved at open, if it was. */
  setAside: string | null = null;
  #data: QueueFile;
  #crashed: boolean;
  #lock: PidFile;
  #opts: FailQueueOptions;
  #writeError: { message: string; since: number; failures: number } | null = null;
  #retryTimer: unknown = null;

  private constructor(file: string, data: QueueFile, lock: PidFile, opts: FailQueueOptions) {
    this.file = file;
    this.#data = data;
    this.#lock = lock;
    this.#opts = opts;
    this.#crashed = data.running || lock.stalePid !== null;
  }

  /** Opens (or creates) this instance's queue, and takes its lock (exit 75 when another daemon holds it). */
  static open(opts: FailQueueOptions): FailQueue {
    const dir = stateDirFor(opts.stateDir, opts.env);
    ensureStateDir(dir);
    const file = queueFileFor(opts.failLogPath, dir, opts.watch, opts.remoteIds);
    const lock = PidFile.acquire(lockFileOf(file), `the lock of this instance (watch ${opts.watch}, the same remotes)`);
    try {
      return FailQueue.#read(file, lock, opts);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  static #read(file: string, lock: PidFile, opts: FailQueueOptions): FailQueue {
    const empty = (running: boolean): QueueFile => ({
      format: 'sersync-ts retry queue',
      version: 1,
      running,
      pid: 0,
      updatedAt: '',
      remotes: {},
    });
    const text = readPrivate(file);
    if (text === null) {
      const earlier = earlierQueue(opts, dirname(file), file);
      const queue = new FailQueue(file, earlier?.data ?? empty(false), lock, opts);
      if (earlier) queue.#takeOver(earlier.file);
      return queue;
    }
    const data = parseQueue(text);
    if (data) return new FailQueue(file, data, lock, opts);
    // Unreadable content (a foreign file, a disk error): keep it for the operator and assume the worst, so the
    // start does a full sync instead of trusting nothing was pending.
    const aside = `${file}.unreadable-${Date.now()}`;
    renameSync(file, aside);
    const queue = new FailQueue(file, empty(true), lock, opts);
    queue.setAside = aside;
    return queue;
  }

  /** Whether the previous daemon of this instance stopped without a clean shutdown. */
  get previousRunCrashed(): boolean {
    return this.#crashed;
  }

  get remotes(): Readonly<Record<string, StoredBatch>> {
    return this.#data.remotes;
  }

  get size(): number {
    return Object.values(this.#data.remotes).reduce((n, b) => n + (b.full ? 1 : b.entries.length), 0);
  }

  /** Why the file does not hold what is in memory right now (a full disk...), or null when it does. */
  get writeError(): string | null {
    return this.#writeError?.message ?? null;
  }

  markRunning(running: boolean): void {
    this.#data.watch = this.#opts.watch;
    this.#data.running = running;
    this.#data.pid = process.pid;
    this.#save();
  }

  put(remoteId: string, batch: StoredBatch): void {
    this.#data.remotes[remoteId] = batch;
    this.#save();
  }

  clear(remoteId?: string): void {
    if (remoteId === undefined) this.#data.remotes = {};
    else if (!(remoteId in this.#data.remotes)) return;
    else delete this.#data.remotes[remoteId];
    this.#save();
  }

  /**
   * Stops retrying and gives up the lock, except while the file is behind: then the lock stays, so the next start
   * takes this run for a crashed one and does a full sync instead of trusting a file that missed changes.
   */
  close(): void {
    if (this.#retryTimer !== null) this.#opts.clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    if (this.#writeError) {
      this.#opts.log.error(
        { queue: this.file, error: this.#writeError.message },
        'the retry queue could not be written; the next start will do a full sync of every remote',
      );
      return;
    }
    this.#lock.release();
  }

  #save(): void {
    this.#data.updatedAt = new Date(this.#opts.clock.now()).toISOString();
    try {
      writeAtomically(this.file, `${JSON.stringify(this.#data, null, 1)}\n`);
    } catch (err) {
      this.#writeFailed(err);
      return;
    }
    if (this.#writeError) {
      const { since, failures } = this.#writeError;
      this.#writeError = null;
      this.#opts.log.info(
        { queue: this.file, failedWrites: failures, seconds: (this.#opts.clock.now() - since) / 1000 },
        'the retry queue is written again',
      );
    }
  }

  /** Logged once per episode, not per write; the data stays in memory and the write is tried again. */
  #writeFailed(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (this.#writeError) {
      this.#writeError.failures++;
      this.#writeError.message = message;
    } else {
      this.#writeError = { message, since: this.#opts.clock.now(), failures: 1 };
      this.#opts.log.error(
        { queue: this.file, error: message, retryMs: WRITE_RETRY_MS },
        'cannot write the retry queue; syncing goes on and it is kept in memory, written again every few seconds and at the next change',
      );
    }
    if (this.#retryTimer === null) {
      this.#retryTimer = this.#opts.clock.setTimeout(() => {
        this.#retryTimer = null;
        this.#save();
      }, WRITE_RETRY_MS);
    }
  }

  /** Moves an earlier queue file into this instance's one: written first, then the old file and its lock go. */
  #takeOver(earlier: string): void {
    this.#data.watch = this.#opts.watch;
    this.#save();
    if (this.#writeError) return;
    for (const f of [earlier, lockFileOf(earlier)]) {
      try {
        unlinkSync(f);
      } catch {}
    }
    this.#opts.log.warn(
      { from: earlier, queue: this.file, remotes: Object.keys(this.#data.remotes) },
      'took over an earlier retry queue of this watch path (an earlier version, or a config whose remotes changed); it is replayed now',
    );
  }
}

/** `<stateDir>/<failLog base>-<instance key>.queue.json`; the lock is the same name with `.lock`. */
export function queueFileFor(failLogPath: string, stateDir: string, watch: string, remoteIds: readonly string[]): string {
  const base = basename(failLogPath).replace(/\.sh$/, '') || 'rsync_fail_log';
  const key = createHash('sha256')
    .update(JSON.stringify([watch, [...remoteIds].sort()]))
    .digest('hex')
    .slice(0, 12);
  return join(stateDir, `${base}-${key}.queue.json`);
}

const lockFileOf = (queueFile: string) => queueFile.replace(/\.queue\.json$/, '.lock');

/**
 * Earlier versions kept the queue as `<failLog base>.queue.json` in `<tuning stateDir>`, or beside the failLog
 * (in `sersync-ts-<uid>` when that directory was shared, as /tmp is). Such a file, if it holds pending entries or a
 * crash, is taken over once when it lies in a private directory of ours, holds only this instance's remotes and no
 * daemon still uses it; else it is named in the log and left alone. So is the file of this watch path under another
 * instance key in the state directory: the one a stop left after a reload changed the remotes.
 */
function earlierQueue(opts: FailQueueOptions, stateDir: string, own: string): { file: string; data: QueueFile } | null {
  const base = basename(opts.failLogPath).replace(/\.sh$/, '') || 'rsync_fail_log';
  const name = `${base}.queue.json`;
  const dir = dirname(opts.failLogPath);
  const legacy = opts.stateDir ? [join(opts.stateDir, name)] : [join(dir, name), join(dir, `sersync-ts-${process.getuid?.() ?? 0}`, name)];
  const isSibling = (f: string) =>
    f.startsWith(`${base}-`) && f.endsWith('.queue.json') && /^[0-9a-f]{12}$/.test(f.slice(base.length + 1, -'.queue.json'.length));
  const siblings = readdirSync(stateDir)
    .filter(isSibling)
    .map((f) => join(stateDir, f))
    .filter((f) => f !== own);
  for (const file of [...legacy, ...siblings]) {
    const sibling = !legacy.includes(file);
    if (!isPrivateDir(dirname(file))) continue;
    let text: string | null;
    try {
      text = readPrivate(file);
    } catch {
      continue;
    }
    const data = text === null ? null : parseQueue(text);
    // Nothing owed and a clean stop: nothing to carry over, and nothing to take from a daemon that may come back.
    if (!data || (sibling && data.watch !== opts.watch)) continue;
    const crashed = data.running || (sibling && existsSync(lockFileOf(file)));
    if (!crashed && Object.keys(data.remotes).length === 0) continue;
    const foreign = Object.keys(data.remotes).filter((id) => !opts.remoteIds.includes(id));
    const holder = sibling ? holderOf(lockFileOf(file)) : null;
    const inUse = holder !== null || (data.running && isSersyncProcess(data.pid));
    if (foreign.length === 0 && !inUse) return { file, data: { ...data, running: crashed } };
    opts.log.warn(
      { file, foreignRemotes: foreign, inUseBy: inUse ? (holder ?? data.pid) : null },
      'an earlier retry queue is not taken over: it holds other remotes, or a running daemon uses it',
    );
  }
  return null;
}

function isPrivateDir(dir: string): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === (process.getuid?.() ?? 0) && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** The file's text, or null when it does not exist; a symbolic link is refused (exit 73), never followed. */
function readPrivate(file: string): string | null {
  let fd: number;
  try {
    fd = openSync(file, O_RDONLY | O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new SersyncError(
      'STATE_DIR',
      `cannot read the retry queue ${file}: ${code === 'ELOOP' ? 'it is a symbolic link, never followed' : (err as Error).message}; remove it`,
      { exitCode: ExitCode.CantCreate, cause: err },
    );
  }
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  let fd: number;
  try {
    fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  } catch (err) {
    // Left by a write that failed half-way: ours (same pid), in our private directory.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    unlinkSync(tmp);
    fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  }
  try {
    try {
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    // A half-written temp file on a full disk only takes the space the next try needs.
    try {
      unlinkSync(tmp);
    } catch {}
    throw err;
  }
  const dirFd = openSync(dirname(file), O_RDONLY);
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

function parseQueue(text: string): QueueFile | null {
  try {
    const data = JSON.parse(text) as Partial<QueueFile>;
    const ok = data.format === 'sersync-ts retry queue' && data.version === 1 && typeof data.remotes === 'object' && data.remotes !== null;
    return ok ? (data as QueueFile) : null;
  } catch {
    return null;
  }
}
