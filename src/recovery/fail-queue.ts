import { renameSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { findEarlierQueue } from './earlier-queue.ts';
import { PidFile } from './pid-file.ts';
import { type QueueFile, type StoredBatch, lockFileOf, queueFileFor, readQueueFile, writeQueueFile } from './queue-file.ts';
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

export interface FailQueueOptions {
  /** `<failLog path>`: its base name makes the file name readable. */
  readonly failLogPath: string;
  /** `<tuning stateDir>`, or null for the default (src/recovery/state-dir.ts). */
  readonly stateDir: string | null;
  /** The instance: the watch path and the remote ids. */
  readonly watch: string;
  readonly remoteIds: readonly string[];
  /** A queue file of this daemon's that is no earlier queue to take over (the one a reload re-keys from). */
  readonly ignoring?: string;
  readonly clock: Clock;
  readonly log: Pick<Logger, 'error' | 'warn' | 'info'>;
}

/** How long a failed write waits before it is tried again (any change tries it sooner). */
export const WRITE_RETRY_MS = 5000;

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
    const dir = stateDirFor(opts.stateDir);
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
    const data = readQueueFile(file);
    if (data === null) {
      const earlier = findEarlierQueue(opts, dirname(file), file);
      const queue = new FailQueue(file, earlier?.data ?? empty(false), lock, opts);
      if (earlier) queue.#takeOver(earlier.file);
      return queue;
    }
    if (data !== 'unreadable') return new FailQueue(file, data, lock, opts);
    // Unreadable content (a foreign file, a disk error): keep it for the operator and assume the worst, so the
    // start does a full sync instead of trusting nothing was pending.
    const aside = `${file}.unreadable-${Date.now()}`;
    try {
      renameSync(file, aside);
    } catch (err) {
      throw new SersyncError(
        'STATE_DIR',
        `the retry queue ${file} is unreadable and cannot be set aside: ${(err as Error).message}; move it away`,
        {
          exitCode: ExitCode.CantCreate,
          cause: err,
        },
      );
    }
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
      writeQueueFile(this.file, this.#data);
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
