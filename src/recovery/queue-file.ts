import { createHash } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { PendingEntry } from '../aggregate/aggregator.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';

/**
 * The retry queue on disk: its name (one per instance: the watch path and the remotes), its JSON format, and reading
 * and writing it without following a link: written atomically (temp file created O_EXCL, fsync, rename, fsync of the
 * directory), mode 0600.
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

export interface QueueFile {
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

/** `<stateDir>/<failLog base>-<instance key>.queue.json`; the lock is the same name with `.lock`. */
export function queueFileFor(failLogPath: string, stateDir: string, watch: string, remoteIds: readonly string[]): string {
  const base = failLogBase(failLogPath);
  const key = createHash('sha256')
    .update(JSON.stringify([watch, [...remoteIds].sort()]))
    .digest('hex')
    .slice(0, 12);
  return join(stateDir, `${base}-${key}.queue.json`);
}

export const lockFileOf = (queueFile: string): string => queueFile.replace(/\.queue\.json$/, '.lock');

/** The name part that the failLog path gives: `/tmp/rsync_fail_log.sh` → `rsync_fail_log`. */
export const failLogBase = (failLogPath: string): string => basename(failLogPath).replace(/\.sh$/, '') || 'rsync_fail_log';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_WRONLY } = constants;

/**
 * The queue in `file`: null when there is none, 'unreadable' when its content is no queue; a symbolic link is
 * refused (exit 73), never followed.
 */
export function readQueueFile(file: string): QueueFile | 'unreadable' | null {
  const text = readPrivate(file);
  if (text === null) return null;
  return parseQueue(text) ?? 'unreadable';
}

export function writeQueueFile(file: string, data: QueueFile): void {
  writeAtomically(file, `${JSON.stringify(data, null, 1)}\n`);
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
