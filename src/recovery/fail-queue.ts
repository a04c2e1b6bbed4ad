import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { PendingEntry } from '../aggregate/aggregator.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';

/**
 * The durable retry queue: what has not reached a remote yet, stored as data (never as a script, unlike sersync2's
 * world-writable rsync_fail_log.sh), one JSON file written atomically (temp file, fsync, rename, fsync of the
 * directory), mode 0600, in a directory only the daemon's user can write. It also remembers whether the last run
 * ended cleanly: a start after a crash must assume that pending events were lost.
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
  pid: number;
  updatedAt: string;
  remotes: Record<string, StoredBatch>;
}

export class FailQueue {
  readonly file: string;
  /** Where an unreadable queue file was moved at open, if it was. */
  setAside: string | null = null;
  #data: QueueFile;

  private constructor(file: string, data: QueueFile) {
    this.file = file;
    this.#data = data;
  }

  /**
   * Opens (or creates) the queue for a failLog path: `x.sh` keeps its data in `x.queue.json` in `stateDir`, or
   * beside the failLog when that directory is private, else in a private directory for this user.
   */
  static open(failLogPath: string, stateDir: string | null): FailQueue {
    const file = queueFileFor(failLogPath, stateDir);
    const empty = (running: boolean): QueueFile => ({ format: 'sersync-ts retry queue', version: 1, running, pid: 0, updatedAt: '', remotes: {} });
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return new FailQueue(file, empty(false));
    }
    const data = parseQueue(text);
    if (data?.running && data.pid !== process.pid && isSersyncProcess(data.pid)) {
      throw new SersyncError(
        'ALREADY_RUNNING',
        `another sersync-ts (pid ${data.pid}) is running with the retry queue ${file}: stop it first, or give this config its own <failLog path> or <tuning stateDir>`,
        { exitCode: ExitCode.TempFail },
      );
    }
    if (data) return new FailQueue(file, data);
    // Unreadable content (a foreign file, a disk error): keep it for the operator and assume the worst, so the
    // start does a full sync instead of trusting nothing was pending.
    const aside = `${file}.unreadable-${Date.now()}`;
    renameSync(file, aside);
    const queue = new FailQueue(file, empty(true));
    queue.setAside = aside;
    return queue;
  }

  /** Whether the previous daemon on this queue stopped without a clean shutdown. */
  get previousRunCrashed(): boolean {
    return this.#data.running;
  }

  get remotes(): Readonly<Record<string, StoredBatch>> {
    return this.#data.remotes;
  }

  get size(): number {
    return Object.values(this.#data.remotes).reduce((n, b) => n + (b.full ? 1 : b.entries.length), 0);
  }

  markRunning(running: boolean): void {
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

  #save(): void {
    this.#data.updatedAt = new Date().toISOString();
    writeAtomically(this.file, `${JSON.stringify(this.#data, null, 1)}\n`);
  }
}

export function queueFileFor(failLogPath: string, stateDir: string | null): string {
  const name = `${basename(failLogPath).replace(/\.sh$/, '') || 'rsync_fail_log'}.queue.json`;
  const dir = stateDir ?? privateDirFor(dirname(failLogPath));
  ensurePrivateDir(dir);
  return join(dir, name);
}

/** The failLog's directory when only we can write it; /tmp (sersync2's default) is not, so use a subdirectory. */
function privateDirFor(dir: string): string {
  try {
    const st = statSync(dir);
    if (st.isDirectory() && (st.mode & 0o022) === 0 && st.uid === process.getuid?.()) return dir;
  } catch {
    // Missing: it will be created private.
    return dir;
  }
  return join(dir, `sersync-ts-${process.getuid?.() ?? 'user'}`);
}

function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    if (!st.isDirectory()) throw new Error('not a directory');
    if (st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) {
      throw new Error(`owned by uid ${st.uid} with mode ${(st.mode & 0o777).toString(8)}; it must belong to us and not be group- or world-writable`);
    }
  } catch (err) {
    throw new SersyncError('STATE_DIR', `cannot use ${dir} for the retry queue: ${(err as Error).message}; set <tuning stateDir="..."> or fix the directory`, {
      exitCode: ExitCode.CantCreate,
      cause: err,
    });
  }
}

/** A live process that is a sersync-ts (not a recycled pid). */
function isSersyncProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sersync-ts');
  } catch {
    return false;
  }
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dirFd = openSync(dirname(file), 'r');
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
