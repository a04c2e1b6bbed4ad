import { execa } from 'execa';

/** Running a program as a seam: the sync engine only knows this interface; tests may pass a fake. */
export interface ProcessResult {
  readonly exitCode?: number | undefined;
  readonly signal?: string | undefined;
  /** The last part of stderr (bounded), for logs and the retry queue. */
  readonly stderr: string;
  readonly durationMs: number;
  /** Set when the program could not be started at all (ENOENT, EACCES). */
  readonly spawnError?: string | undefined;
}

export interface RunOptions {
  readonly input?: Buffer | null;
  readonly cwd?: string;
  readonly signal?: AbortSignal;
  readonly env?: Readonly<Record<string, string>>;
}

export interface ProcessRunner {
  run(file: string, args: readonly string[], opts?: RunOptions): Promise<ProcessResult>;
}

const STDERR_LIMIT = 64 * 1024;

/**
 * The real runner: execa with an argv array (no shell), the input written to stdin (an EPIPE from a child that died
 * early becomes part of the result, not a crash), stdout discarded, stderr kept.
 */
export const execaRunner: ProcessRunner = {
  async run(file, args, opts = {}) {
    const started = performance.now();
    const result = await execa(file, args, {
      input: opts.input ?? undefined,
      stdin: opts.input ? undefined : 'ignore',
      stdout: 'ignore',
      stderr: 'pipe',
      reject: false,
      cwd: opts.cwd,
      cancelSignal: opts.signal,
      forceKillAfterDelay: 5000,
      env: opts.env,
      maxBuffer: { stderr: 4 * 1024 * 1024 },
      stripFinalNewline: true,
    });
    const durationMs = performance.now() - started;
    const stderr = typeof result.stderr === 'string' ? result.stderr.slice(-STDERR_LIMIT) : '';
    const spawnError =
      result.failed && result.exitCode === undefined && !result.signal ? (result.cause as Error | undefined)?.message ?? result.message : undefined;
    return { exitCode: result.exitCode, signal: result.signal, stderr, durationMs, spawnError };
  },
};
