import type { Readable } from 'node:stream';
import { execa } from 'execa';

/** Running a program as a seam: the sync engine only knows this interface; tests may pass a fake. */
export interface ProcessResult {
  readonly exitCode?: number | undefined;
  readonly signal?: string | undefined;
  /** The last part of stdout and stderr (bounded), for logs, statistics and the retry queue. */
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  /** Set when the program could not be started at all (ENOENT, EACCES). */
  readonly spawnError?: string | undefined;
}

export interface RunOptions {
  /** Written to stdin; a promise is written when it settles (a list known only after the process started). */
  readonly input?: Buffer | Promise<Buffer> | null;
  readonly cwd?: string;
  readonly signal?: AbortSignal;
  readonly env?: Readonly<Record<string, string>>;
  /** Sees stdout as it arrives (progress of a long full sync). */
  readonly onStdout?: (chunk: string) => void;
}

export interface ProcessRunner {
  run(file: string, args: readonly string[], opts?: RunOptions): Promise<ProcessResult>;
}

const TAIL_LIMIT = 64 * 1024;

/** The last `n` non-empty lines of a program's output, joined with ' | ' (for one log line). */
export function lastLines(text: string, n: number): string {
  return text.split('\n').filter(Boolean).slice(-n).join(' | ');
}

/**
 * The real runner: execa with an argv array (no shell), the input written to stdin (an EPIPE from a child that died
 * early becomes part of the result, not a crash). Output is not buffered whole: a verbose rsync over a million files
 * must not hit a buffer limit (which would kill it); only the tails are kept.
 */
export const execaRunner: ProcessRunner = {
  async run(file, args, opts = {}) {
    const started = performance.now();
    const later = opts.input instanceof Promise ? opts.input : null;
    const input = opts.input instanceof Promise ? null : opts.input;
    const child = execa(file, args, {
      input: input ?? undefined,
      stdin: later !== null ? 'pipe' : input ? undefined : 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cwd: opts.cwd,
      cancelSignal: opts.signal,
      forceKillAfterDelay: 5000,
      env: opts.env,
    });
    if (later !== null) {
      child.stdin?.on('error', () => {});
      later.then(
        (bytes) => child.stdin?.end(bytes),
        () => child.stdin?.end(),
      );
    }
    const [stdout, stderr, result] = await Promise.all([tail(child.stdout, opts.onStdout), tail(child.stderr), child]);
    const durationMs = performance.now() - started;
    const spawnError =
      result.failed && result.exitCode === undefined && !result.signal
        ? ((result.cause as Error | undefined)?.message ?? result.message)
        : undefined;
    return { exitCode: result.exitCode, signal: result.signal, stdout, stderr, durationMs, spawnError };
  },
};

async function tail(stream: Readable | null, onChunk?: (chunk: string) => void): Promise<string> {
  if (!stream) return '';
  let text = '';
  try {
    for await (const chunk of stream) {
      const s = (chunk as Buffer).toString('utf8');
      onChunk?.(s);
      text += s;
      if (text.length > 2 * TAIL_LIMIT) text = text.slice(-TAIL_LIMIT);
    }
  } catch {
    // The stream ends with the process; an error here says nothing the exit status does not.
  }
  return text.slice(-TAIL_LIMIT).replace(/\n$/, '');
}
