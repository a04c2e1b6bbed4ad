import type { Logger } from 'pino';
import type { LaneStats } from './lane-report.ts';
import { lastLines, type ProcessResult, type ProcessRunner } from './process-runner.ts';
import type { RsyncInvocation } from './rsync-command.ts';
import { classifyRun, type RunStep } from './rsync-exit.ts';

/** What an early delete run needs of the batch's attempt (BatchEnv). */
interface EarlyEnv {
  readonly remoteId: string;
  readonly runner: ProcessRunner;
  readonly rsyncPath: string;
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly stats: LaneStats;
}

/** A delete run started before its turn, its list held back (planRenameDelete). */
export interface EarlyDelete {
  readonly run: RsyncInvocation;
  /** Writes the list and waits for the run. */
  release(): Promise<EarlyOutcome>;
  /** Stops the run if it was never released (nothing reached its stdin, so it deleted nothing). */
  cancel(): Promise<void>;
}

interface EarlyOutcome {
  readonly step: RunStep;
  readonly error: string;
  readonly stderr: string;
  /** The receiver does not take this form (syntax or protocol error). */
  readonly refused: boolean;
}

/** Starts `run` now, its stdin held back until release(); null when there is no such run. */
export function startEarly(env: EarlyEnv, run: RsyncInvocation | null): EarlyDelete | null {
  if (run === null || run.input === null) return null;
  let write: (list: Buffer) => void = () => {};
  const list = new Promise<Buffer>((resolve) => {
    write = resolve;
  });
  const stop = new AbortController();
  env.stats.rsyncRuns++;
  // Nothing awaits it until its turn: a rejection must not go unhandled meanwhile.
  const result = env.runner
    .run(env.rsyncPath, run.args, { input: list, signal: AbortSignal.any([env.signal, stop.signal]) })
    .catch((err: unknown): ProcessResult => ({ stdout: '', stderr: '', durationMs: 0, spawnError: String(err) }));
  let released = false;
  return {
    run,
    async release() {
      const { stats, log, remoteId } = env;
      released = true;
      write(run.input as Buffer);
      const outcome = await result;
      const { verdict, meaning, step } = classifyRun(run, outcome, env.rsyncPath, false);
      stats.runsByVerdict[verdict]++;
      const stderr = lastLines(outcome.stderr, 3);
      const refused = outcome.exitCode === 1 || outcome.exitCode === 2;
      if (step !== 'ok' && step !== 'vanished' && step !== 'max-delete' && step !== 'partial') {
        log.info(
          { remote: remoteId, exitCode: outcome.exitCode, stderr },
          `rsync delete to ${remoteId}, started with the renames: ${meaning}; deleting with a plain delete run` +
            (refused ? ' (and from now on)' : ''),
        );
      }
      return { step, error: `${meaning}${stderr ? `: ${stderr}` : ''}`, stderr, refused };
    },
    async cancel() {
      if (!released) stop.abort();
      await result;
    },
  };
}
