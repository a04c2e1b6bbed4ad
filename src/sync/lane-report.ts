import type PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Batch } from '../aggregate/aggregator.ts';
import type { FilterRegex } from '../config/model.ts';
import type { Clock } from '../core/clock.ts';
import type { RelPath } from '../core/paths.ts';
import type { ProgressSink } from '../observe/progress.ts';
import type { DeletionVerdict } from './deletion-guard.ts';
import type { DiskProbe } from './disk-probe.ts';
import type { ProcessRunner } from './process-runner.ts';
import type { RsyncVerdict } from './rsync-exit.ts';

/** What a lane is given, and what it tells its owner: a batch's outcome, each attempt, its counters (/status). */

/** A lane's seams and settings; `Lane` is RemoteLane (a parameter, so that this file does not import it). */
export interface LaneSettings<Lane> {
  readonly clock: Clock;
  readonly runner: ProcessRunner;
  readonly limiter: PQueue;
  readonly log: Logger;
  readonly rsyncPath: string;
  /** The watch root as a byte string. */
  readonly rootBytes: string;
  /** Realtime filter regexes without an rsync equivalent (need a walk before tree and full syncs). */
  readonly untranslated: readonly FilterRegex[];
  /** The realtime path filter (a walk below a renamed directory skips what it excludes); none when absent. */
  readonly isExcluded?: (path: RelPath, isDir: boolean) => boolean;
  /** Extra excludes for full syncs only (crontabfilter). */
  readonly fullSyncFilters: readonly string[];
  readonly retry: { readonly baseMs: number; readonly capMs: number; readonly random: () => number };
  /** Told after a batch reached the remote (plugins, metrics), and after each attempt (durable retry queue). */
  readonly onSynced?: (lane: Lane, batch: Batch, outcome: BatchOutcome) => void;
  readonly onAttempt?: (lane: Lane, report: AttemptReport) => void;
  /** Told what a full sync's rsync prints as it runs (progress); started per full sync. */
  readonly progress?: (remoteId: string) => ProgressSink;
  /**
   * Mass-delete safety (see DeletionGuard): which deletions must wait now (the watch root or a mount point of the
   * tree looks unmounted). Held deletions wait on their own, rechecked every HOLD_RECHECK_MS; updates go on.
   */
  readonly deletionGuard: () => Promise<DeletionVerdict>;
  /**
   * Changeable for tests: runs after a batch was planned from the disk and before its rsyncs start, so a test can
   * change the disk in that window (a directory swapped for a symlink). Unset in the daemon.
   */
  readonly afterPlan?: (batch: Batch) => Promise<void>;
  /** How many runs may send one renamed directory side by side (splitRename); one when unset. */
  readonly renameWays?: number;
  /** The disk the batches are planned from; the real one when unset (unit tests script it). */
  readonly disk?: DiskProbe;
}

export interface BatchOutcome {
  readonly updated: readonly RelPath[];
  readonly deleted: readonly RelPath[];
  /** The directories among `updated` where the batch's entries do not say (a full sync's absorbed paths). */
  readonly dirs?: readonly RelPath[] | undefined;
  /** A full sync covered the whole tree: it counts for every path still waiting for this remote. */
  readonly whole?: boolean | undefined;
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
