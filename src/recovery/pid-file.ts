import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { ExitCode, SersyncError } from '../core/errors.ts';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_WRONLY } = constants;

/**
 * A file that holds our pid while we run: `--pid-file`, and the lock that keeps a second daemon off one instance's
 * retry queue. Created with O_EXCL and O_NOFOLLOW, so it never follows a link and two starts cannot both own it. A
 * file left by a process that is gone (or that is no sersync-ts: a recycled pid), or an empty one, is stale and
 * replaced; it is only removed again while it is still the file we made and holds our pid.
 */
export class PidFile {
  readonly path: string;
  /** The pid in a stale file replaced at start (0 when it held none): the run that left it did not stop cleanly. */
  readonly stalePid: number | null;
  #identity: string;

  private constructor(path: string, identity: string, stalePid: number | null) {
    this.path = path;
    this.#identity = identity;
    this.stalePid = stalePid;
  }

  /** `what` names the file in errors: "--pid-file", "the instance lock". */
  static acquire(path: string, what: string): PidFile {
    let stalePid: number | null = null;
    for (let attempt = 0; ; attempt++) {
      let fd: number;
      try {
        fd = openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw cannot(what, path, err);
        stalePid = replaceStale(path, what) ?? stalePid;
        continue;
      }
      try {
        const st = fstatSync(fd);
        // On a full disk the file stays empty: it still marks the run (a later start takes it for a crashed one).
        try {
          writeFileSync(fd, `${process.pid}\n`);
        } catch {}
        return new PidFile(path, `${st.dev}:${st.ino}`, stalePid);
      } finally {
        closeSync(fd);
      }
    }
  }

  /** Removes the file if it is still the one we made and holds our pid (or nothing). Never throws. */
  release(): void {
    try {
      const st = lstatSync(this.path);
      if (`${st.dev}:${st.ino}` !== this.#identity) return;
      const pid = readPid(this.path);
      if (pid === null || pid === process.pid) unlinkSync(this.path);
    } catch {}
  }
}

/** The pid of the live sersync-ts that holds the file at `path`, or null. */
export function holderOf(path: string): number | null {
  const pid = readPid(path);
  return pid !== null && isSersyncProcess(pid) ? pid : null;
}

/** A live process that is a sersync-ts (not a recycled pid). */
export function isSersyncProcess(pid: number): boolean {
  if (pid === process.pid || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('sersync-ts');
  } catch {
    return false;
  }
}

/** Removes a file that no live sersync-ts holds; refuses one that is held, or that is not a plain file. */
function replaceStale(path: string, what: string): number | null {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (err) {
    // Gone in between: try again.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw cannot(what, path, err);
  }
  if (!st.isFile()) throw cannot(what, path, new Error(st.isSymbolicLink() ? 'it is a symbolic link, never followed' : 'not a plain file'));
  const pid = readPid(path);
  if (pid !== null && isSersyncProcess(pid)) {
    throw new SersyncError('ALREADY_RUNNING', `another sersync-ts (pid ${pid}) holds ${what} (${path}): stop it first`, {
      exitCode: ExitCode.TempFail,
    });
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw cannot(what, path, err);
  }
  return pid ?? 0;
}

function readPid(path: string): number | null {
  let text: string;
  try {
    const fd = openSync(path, O_RDONLY | O_NOFOLLOW);
    try {
      text = readFileSync(fd, 'latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

function cannot(what: string, path: string, err: unknown): SersyncError {
  return new SersyncError('STATE_DIR', `cannot create ${what} ${path}: ${(err as Error).message}; remove it or choose another path`, {
    exitCode: ExitCode.CantCreate,
    cause: err,
  });
}
