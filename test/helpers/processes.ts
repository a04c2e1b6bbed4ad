/**
 * Child processes started by tests, tracked so that none outlives the test process.
 *
 * Every child is started in its own process group (`detached: true`), so that stopping it also stops what it
 * forked: an rsync daemon's per-connection children, the ssh that an rsync client runs. When the test process
 * exits, normally or through a failed assertion, or is interrupted by SIGINT/SIGTERM/SIGHUP, every group still
 * alive is killed with SIGKILL. A process killed with SIGKILL itself cannot run this; nothing can.
 *
 * Long-running children (daemons) are unref'd, so a test that forgets to stop one still lets the test process end
 * instead of hanging the runner; the exit hook then kills it.
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** How a child ended. `error` is set when it could not be started at all (for example ENOENT). */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** A long-running child owned by the test, started with {@link spawnBackground}. */
export interface BackgroundProcess {
  readonly child: ChildProcess;
  /** Settles once the child has exited (or failed to start); never rejects. */
  readonly exited: Promise<ExitStatus>;
  /** Combined stdout and stderr so far (the last 64 KiB), for error messages. */
  output(): string;
  running(): boolean;
  /** Sends `signal` (default SIGTERM) to the child's group, escalating to SIGKILL after `timeoutMs` (default 5 s). */
  stop(opts?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<ExitStatus>;
}

/** The outcome of {@link runProcess}. */
export interface RunResult extends ExitStatus {
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const OUTPUT_LIMIT = 64 * 1024;
const live = new Set<ChildProcess>();
let hooksInstalled = false;

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already, or the child never became a group leader: signal the child alone.
    try {
      child.kill(signal);
    } catch {
      // Already dead.
    }
  }
}

function killAllTracked(): void {
  for (const child of live) signalGroup(child, 'SIGKILL');
  live.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllTracked);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllTracked();
      // Re-raise so the default action (termination) happens, unless someone else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

function track(child: ChildProcess): Promise<ExitStatus> {
  installHooks();
  live.add(child);
  return new Promise<ExitStatus>((resolve) => {
    child.once('error', (error) => {
      // 'error' without a pid means the spawn failed and no 'exit' will follow.
      if (child.pid === undefined) {
        live.delete(child);
        resolve({ code: null, signal: null, error });
      }
    });
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
}

function appendLimited(buf: { text: string }, chunk: Buffer): void {
  buf.text += chunk.toString('utf8');
  if (buf.text.length > OUTPUT_LIMIT) buf.text = buf.text.slice(-OUTPUT_LIMIT);
}

/**
 * Starts a long-running child (a daemon run in the foreground) that the test owns. Its output is collected for
 * error messages; it is killed when the test process exits if {@link BackgroundProcess.stop} was not called.
 */
export function spawnBackground(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): BackgroundProcess {
  const child = spawn(file, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const exited = track(child);
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const out = { text: '' };
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    stream.on('data', (chunk: Buffer) => appendLimited(out, chunk));
    // Unref'd pipes (and child) do not keep the test process alive; see the module comment.
    (stream as unknown as { unref?: () => void }).unref?.();
  }
  child.unref();

  return {
    child,
    exited,
    output: () => out.text,
    running: () => !done,
    async stop({ signal = 'SIGTERM', timeoutMs = 5000 } = {}) {
      if (done) return exited;
      signalGroup(child, signal);
      // A ref'd timer keeps the event loop alive until the unref'd child has reported its exit.
      let timer: NodeJS.Timeout | undefined;
      const escalated = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          signalGroup(child, 'SIGKILL');
          resolve();
        }, timeoutMs);
      });
      await Promise.race([exited, escalated]);
      if (!done) {
        // SIGKILL has been sent; wait for the exit, still holding the loop open.
        const keepAlive = setInterval(() => {}, 1000);
        await exited;
        clearInterval(keepAlive);
      }
      clearTimeout(timer);
      // Sweep what the child forked (e.g. rsync daemon connection handlers) so an outage is a real outage.
      signalGroup(child, 'SIGKILL');
      return exited;
    },
  };
}

/**
 * Runs a command to completion with an argv array (never a shell) and collects its output. The child is tracked
 * like every other one, and killed (with its group) after `timeoutMs` (default 60 s).
 */
export async function runProcess(
  file: string,
  args: readonly string[],
  opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const child = spawn(file, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    detached: true,
  });
  const exited = track(child);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => stdout.push(c));
  child.stderr?.on('data', (c: Buffer) => stderr.push(c));
  if (opts.input !== undefined && child.stdin) {
    // A child that dies early makes this write fail with EPIPE; its exit status tells the story instead.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(child, 'SIGKILL');
  }, opts.timeoutMs ?? 60_000);
  const status = await exited;
  clearTimeout(timer);
  // Wait for the pipes to drain so no output is lost.
  await Promise.all(
    [child.stdout, child.stderr].map(
      (s) => new Promise<void>((resolve) => (!s || s.readableEnded || s.destroyed ? resolve() : s.once('close', resolve))),
    ),
  );
  return {
    ...status,
    stdout: Buffer.concat(stdout).toString('utf8'),
    stderr: Buffer.concat(stderr).toString('utf8'),
    timedOut,
  };
}
