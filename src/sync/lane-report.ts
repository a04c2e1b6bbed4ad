import type { Batch } from '../aggregate/aggregator.ts';
import type { RelPath } from '../core/paths.ts';
import type { RsyncVerdict } from './rsync-exit.ts';

/** What a lane tells its owner: a batch's outcome, each attempt (durable retry queue), and its counters (/status). */

export interface BatchOutcome {
  readonly updated: readonly RelPath[];
  readonly deleted: readonly RelPath[];
  readonly seconds: number;
}

export interface AttemptReport {
  readonly ok: boolean;
  readonly batch: Batch;
  readonly verdict: RsyncVerdict;
  readonly exitCode: number | undefined;
  readonly error: string;
  readonly consecutiveFailures: number;
  readonly nextAttemptAt: number | null;
}

export interface LaneStats {
  batches: number;
  fullSyncs: number;
  rsyncRuns: number;
  runsByVerdict: Record<RsyncVerdict, number>;
  pathsSynced: number;
  bytesSent: number;
  /** Renamed paths sent with the remote's copy of the old name as basis, and the bytes that saved (estimated). */
  renames: number;
  renameBytesSaved: number;
  failures: number;
  consecutiveFailures: number;
  lastSuccessAt: number | null;
  lastError: string | null;
  degraded: boolean;
}

export function newLaneStats(): LaneStats {
  return {
    batches: 0,
    fullSyncs: 0,
    rsyncRuns: 0,
    runsByVerdict: { ok: 0, partial: 0, retry: 0, config: 0 },
    pathsSynced: 0,
    bytesSent: 0,
    renames: 0,
    renameBytesSaved: 0,
    failures: 0,
    consecutiveFailures: 0,
    lastSuccessAt: null,
    lastError: null,
    degraded: false,
  };
}
