import type { Batch } from '../aggregate/aggregator.ts';
import type { FailQueue } from './fail-queue.ts';
import type { StoredBatch } from './queue-file.ts';

/** An attempt of a remote's lane, as it reports it (recovery/ sits below sync/, so only what is read is named). */
export interface Attempt {
  readonly ok: boolean;
  readonly batch: Batch;
  readonly exitCode: number | undefined;
  readonly error: string;
  /** Clock time of the next try, or null when none is planned. */
  readonly nextAttemptAt: number | null;
}

/**
 * Keeps the retry queue in step with a lane: a failure is recorded with its history, a success clears what the
 * remote owed, unless the lane still owes some of it (a batch parked after exit 23: the queue entry holds it).
 */
export function recordAttempt(queue: FailQueue, remoteId: string, attempt: Attempt, now: number, stillOwed: boolean): void {
  if (!attempt.ok) queue.put(remoteId, retryRecord(queue.remotes[remoteId], attempt.batch, now, { failed: attempt }));
  else if (!stillOwed) queue.clear(remoteId);
}

/** Stores what a lane still owes at a stop or a crash (`why`), keeping the record of earlier failures. */
export function recordOwed(queue: FailQueue, remoteId: string, rest: Batch, now: number, why: string): void {
  queue.put(remoteId, retryRecord(queue.remotes[remoteId], rest, now, { why }));
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
  outcome: { readonly failed: Omit<Attempt, 'ok' | 'batch'> } | { readonly why: string },
): StoredBatch {
  const at = new Date(now).toISOString();
  // A sweep (a full sync's held deletions) is kept as the full sync it came from: the guard looks again then.
  const full = batch.full || batch.sweep === true;
  const common = {
    full,
    fullReason: batch.full ? batch.fullReason : full ? 'the held deletions of a full sync' : batch.fullReason,
    entries: full ? [] : batch.entries,
    firstFailedAt: prev?.firstFailedAt ?? at,
  };
  if ('failed' in outcome) {
    const { failed } = outcome;
    return {
      ...common,
      attempts: (prev?.attempts ?? 0) + 1,
      lastExitCode: failed.exitCode ?? null,
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
