import type { Batch } from '../aggregate/aggregator.ts';
import type { StoredBatch } from './queue-file.ts';

/** A failed attempt, as the lane reports it. */
export interface FailedAttempt {
  readonly exitCode: number | null;
  readonly error: string;
  /** Clock time of the next try, or null when none is planned. */
  readonly nextAttemptAt: number | null;
}

/**
 * The retry queue's record of what a remote still owes: `batch`, with the history of earlier failures (`prev`)
 * kept. With `failed`, one more failed attempt is counted; without it (a stop, a crash) the record only says that
 * the batch is owed, `why`, and that no try is planned.
 */
export function retryRecord(
  prev: StoredBatch | undefined,
  batch: Batch,
  now: number,
  outcome: { readonly failed: FailedAttempt } | { readonly why: string },
): StoredBatch {
  const at = new Date(now).toISOString();
  const common = {
    full: batch.full,
    fullReason: batch.fullReason,
    entries: batch.full ? [] : batch.entries,
    firstFailedAt: prev?.firstFailedAt ?? at,
  };
  if ('failed' in outcome) {
    const { failed } = outcome;
    return {
      ...common,
      attempts: (prev?.attempts ?? 0) + 1,
      lastExitCode: failed.exitCode,
      lastError: failed.error,
      lastAttemptAt: at,
      nextAttemptAt: failed.nextAttemptAt === null ? null : new Date(failed.nextAttemptAt).toISOString(),
    };
  }
  return {
    ...common,
    attempts: prev?.attempts ?? 0,
    lastExitCode: prev?.lastExitCode ?? null,
    lastError: prev?.lastError ?? outcome.why,
    lastAttemptAt: prev?.lastAttemptAt ?? at,
    nextAttemptAt: null,
  };
}
