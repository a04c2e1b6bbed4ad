import { accessSync, constants, type Stats, lstatSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ExitCode, SersyncError } from '../core/errors.ts';

/**
 * Where the daemon keeps its state (retry queue, instance lock): `<tuning stateDir>` when set; else systemd's
 * `$STATE_DIRECTORY` (the unit's `StateDirectory=`); else `/var/lib/sersync-ts` for root, and the XDG state
 * directory for anyone else. Never sersync2's `/tmp`, where another local user can create the path first.
 */
export function stateDirFor(configured: string | null, env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (configured !== null) return configured;
  const systemd = env.STATE_DIRECTORY?.split(':')[0];
  if (systemd && isAbsolute(systemd)) return systemd;
  if (uid === 0) return '/var/lib/sersync-ts';
  const xdg = env.XDG_STATE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.local', 'state'), 'sersync-ts');
}

/**
 * Creates `dir` (and missing parents, mode 0700) without following a link that someone else could have planted, and
 * checks that it is a real directory of ours that nobody else can write (in a world-writable parent such as /tmp:
 * mode 0700 exactly). Anything else is refused, exit 73: a path another user made first must not redirect or block
 * root's writes silently.
 */
export function ensureStateDir(dir: string): void {
  const uid = process.getuid?.() ?? 0;
  const parts = resolve(dir).split('/').filter(Boolean);
  let path = '/';
  let parentShared = false;
  let st: Stats = statSync('/');
  for (const [i, part] of parts.entries()) {
    const next = join(path, part);
    st = lstatOrCreate(next, dir);
    if (st.isSymbolicLink()) {
      // A link that only we or root could have made (/var/run -> /run) is followed; one in /tmp never is.
      if (parentShared) refuse(dir, `${next} is a symbolic link in the world-writable ${path}; it is not followed`);
      if (st.uid !== uid && st.uid !== 0) refuse(dir, `${next} is a symbolic link owned by uid ${st.uid}; it is not followed`);
      st = statSync(next);
    }
    if (!st.isDirectory()) refuse(dir, `${next} is not a directory`);
    if (i < parts.length - 1) parentShared = (st.mode & 0o002) !== 0;
    path = next;
  }
  if (st.uid !== uid) {
    refuse(dir, `it belongs to uid ${st.uid}, not to this daemon's uid ${uid} (another user may have created it first)`);
  }
  const mode = st.mode & 0o777;
  if ((mode & 0o022) !== 0 || (parentShared && (mode & 0o077) !== 0)) {
    refuse(dir, `its mode is ${mode.toString(8)}; it must be 700 (chmod 700 ${dir}, if you made it)`);
  }
}

/** ensureStateDir, and the directory can be written now (one on a read-only mount passes the other checks): --check. */
export function ensureWritableStateDir(dir: string): void {
  ensureStateDir(dir);
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    refuse(dir, `it cannot be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err);
  }
}

function lstatOrCreate(path: string, dir: string): Stats {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') refuse(dir, (err as Error).message, err);
  }
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (err) {
    // Someone made it in between: what it is gets checked below like anything found.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') refuse(dir, `cannot create ${path}: ${(err as Error).message}`, err);
  }
  return lstatSync(path);
}

function refuse(dir: string, why: string, cause?: unknown): never {
  throw new SersyncError(
    'STATE_DIR',
    `cannot use ${dir} as the state directory (retry queue, instance lock): ${why}; ` +
      'remove it, or set <tuning stateDir="..."> to a directory that only this user can write (root: /var/lib/sersync-ts)',
    { exitCode: ExitCode.CantCreate, cause },
  );
}
