import { execFileSync, spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';

/**
 * `-d`: run in the background like a good citizen, not like sersync2 (whose parent always exited 0 after a second,
 * kept stdio and wrote no pid file). The process re-spawns itself detached (new session, output to the log file, to
 * a file or socket it was given (keptOutput) or /dev/null, cwd / once the config is read) and the parent exits only when the child says it is watching (0), or
 * with the child's own error and exit code. Under systemd (INVOCATION_ID set) the unit's type decides: a
 * `Type=forking` unit waits for the parent to exit (sersync2's hand-written units, and `/etc/rc.local` through
 * rc-local.service), as does `oneshot`; `simple`, `exec`, `notify` and the like supervise this very process, which
 * must then stay. SERSYNC_TS_FOREGROUND=1,
 * which our own unit sets, says so without asking systemctl; an unknown type detaches, as sersync2 did.
 */
export const CHILD_ENV = 'SERSYNC_TS_DETACHED_CHILD';
export const FOREGROUND_ENV = 'SERSYNC_TS_FOREGROUND';

export function shouldDetach(daemonFlag: boolean, env: NodeJS.ProcessEnv = process.env, unitType = systemdUnitType): boolean {
  if (!daemonFlag || env[FOREGROUND_ENV] === '1' || env[CHILD_ENV]) return false;
  if (!env.INVOCATION_ID) return true;
  // Only these types watch the process they started; any other (forking, oneshot, unknown) waits for it to exit.
  return !SUPERVISING.has(unitType() ?? 'forking');
}

const SUPERVISING = new Set(['simple', 'exec', 'notify', 'notify-reload', 'idle', 'dbus']);

/** The `Type=` of the systemd service this process runs in, or null when that cannot be told. */
function systemdUnitType(): string | null {
  try {
    const unit = /\/([^/\n]+\.service)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
    if (unit === undefined) return null;
    const type = execFileSync('systemctl', ['show', '--property=Type', '--value', unit], { encoding: 'utf8', timeout: 5000 });
    return type.trim() || null;
  } catch {
    return null;
  }
}

export type ChildMessage = { kind: 'ready'; pid: number } | { kind: 'error'; message: string; exitCode: number };

/** Parent side: starts the child and resolves with the exit code the parent should exit with. */
export function detach(argv: readonly string[], logFile: string | null): Promise<number> {
  const out = logFile ? openSync(logFile, 'a', 0o640) : keptOutput(1);
  const err = logFile ? out : keptOutput(2);
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1] as string, ...argv], {
    detached: true,
    stdio: ['ignore', out, err, 'ipc'],
    env: { ...process.env, [CHILD_ENV]: '1' },
  });
  if (logFile && typeof out === 'number') closeSync(out);
  return new Promise((resolve) => {
    child.on('message', (m: ChildMessage) => {
      if (m.kind === 'ready') {
        console.log(`sersync-ts: running in the background, pid ${m.pid}${logFile ? `, logging to ${logFile}` : ''}`);
        child.disconnect();
        child.unref();
        resolve(0);
      } else {
        console.error(
          m.message
            .split('\n')
            .map((l) => `sersync-ts: ${l}`)
            .join('\n'),
        );
        resolve(m.exitCode);
      }
    });
    child.on('exit', (code, signal) => {
      resolve(code ?? (signal ? 1 : 0));
    });
    child.on('error', (err) => {
      console.error(`sersync-ts: cannot start the background process: ${err.message}`);
      resolve(1);
    });
  });
}

/**
 * Without --log-file the logs go where sersync2's went, to the caller's stdout and stderr, when those are a file
 * (`>> sersync.log 2>&1` in rc.local) or the journal (a forking unit; systemd names its socket in JOURNAL_STREAM);
 * a terminal, which goes away with the session, and a pipe or socket, whose reader may wait for its end
 * (`$(sersync-ts -d …)`), get /dev/null.
 */
export function keptOutput(fd: number, journal = process.env.JOURNAL_STREAM): number | 'ignore' {
  try {
    const st = fstatSync(fd);
    if (st.isFile()) return fd;
    return st.isSocket() && journal === `${st.dev}:${st.ino}` ? fd : 'ignore';
  } catch {
    return 'ignore';
  }
}

/** Child side: an output that goes away (a restarted journal) must not end the daemon; the logs are lost, not the sync. */
export function surviveLostOutput(): void {
  if (!process.env[CHILD_ENV]) return;
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
}

/** Child side: tell the waiting parent. No-op when not started by detach(). */
export function tellParent(message: ChildMessage): void {
  if (!process.env[CHILD_ENV] || !process.send) return;
  process.send(message);
  if (message.kind === 'ready') process.disconnect?.();
}
