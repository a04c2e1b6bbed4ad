import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/**
 * `-d`: run in the background like a good citizen, not like sersync2 (whose parent always exited 0 after a second,
 * kept stdio and wrote no pid file). The process re-spawns itself detached (new session, stdio to the log file or
 * /dev/null, cwd / once the config is read) and the parent exits only when the child says it is watching (0), or
 * with the child's own error and exit code. That is also what sersync2's setups under systemd need: `/etc/rc.local`
 * (rc-local.service, which waits for the script to finish) and hand-written `Type=forking` units both wait for the
 * parent to exit, so INVOCATION_ID alone must not keep `-d` in the foreground. Only an explicit
 * SERSYNC_TS_FOREGROUND=1, which our own unit (Type=exec) sets, does.
 */
export const CHILD_ENV = 'SERSYNC_TS_DETACHED_CHILD';
export const FOREGROUND_ENV = 'SERSYNC_TS_FOREGROUND';

export function shouldDetach(daemonFlag: boolean): boolean {
  return daemonFlag && process.env[FOREGROUND_ENV] !== '1' && !process.env[CHILD_ENV];
}

export type ChildMessage = { kind: 'ready'; pid: number } | { kind: 'error'; message: string; exitCode: number };

/** Parent side: starts the child and resolves with the exit code the parent should exit with. */
export function detach(argv: readonly string[], logFile: string | null): Promise<number> {
  const out = logFile ? openSync(logFile, 'a', 0o640) : 'ignore';
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1] as string, ...argv], {
    detached: true,
    stdio: ['ignore', out, out, 'ipc'],
    env: { ...process.env, [CHILD_ENV]: '1' },
  });
  if (typeof out === 'number') closeSync(out);
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

/** Child side: tell the waiting parent. No-op when not started by detach(). */
export function tellParent(message: ChildMessage): void {
  if (!process.env[CHILD_ENV] || !process.send) return;
  process.send(message);
  if (message.kind === 'ready') process.disconnect?.();
}
