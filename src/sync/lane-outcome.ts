import type { Logger } from 'pino';
import type { Batch } from '../aggregate/aggregator.ts';
import type { Clock } from '../core/clock.ts';
import { displayPath } from '../core/paths.ts';
import type { AttemptReport, BatchOutcome, LaneStats } from './lane-report.ts';
import type { Attempt, LaneSchedule } from './lane-schedule.ts';
import { merged } from './merge-batches.ts';
import { MAX_TREE_RULES, type RsyncInvocation } from './rsync-command.ts';
import type { RsyncVerdict } from './rsync-exit.ts';
import type { SyncSummary } from './run-batch.ts';

/** Failed attempts in a row (or times parked in a row) after which a remote counts as degraded. */
export const DEGRADED_AFTER = 3;

/** What the end of an attempt changes in its lane. */
export interface OutcomeContext {
  readonly remoteId: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly stats: LaneStats;
  readonly schedule: LaneSchedule;
  /** What the batch was (a re-plan after exit 23, the parked batch). */
  readonly attempt: Attempt;
  /** Puts the batch back into the aggregator. */
  readonly restore: (batch: Batch) => void;
  readonly report: (report: AttemptReport) => void;
  /** Tells the owner that a batch reached the remote (plugins, metrics). */
  readonly synced: (batch: Batch, outcome: BatchOutcome) => void;
  /** Extra excludes of full syncs (crontabfilter): such a full sync does not let go of the parked batch. */
  readonly fullSyncFilters: readonly string[];
}

/** Paths of the parked batch (a full sync counts as one). */
export function parkedPaths(schedule: LaneSchedule): number {
  const b = schedule.parked?.batch;
  return b ? (b.full ? 1 : b.entries.length) : 0;
}

/**
 * Exit 23: the remote works, some paths did not go. A path that vanished between the plan and rsync's read gives 23
 * too (`link_stat ... failed`), so the batch is first planned again from the disk after its quiet period (no backoff),
 * where the vanished path is a deletion. A second 23 in a row (or a full sync's first) means paths that keep failing
 * (a receiver that refuses them, a file the daemon cannot read): that batch is parked and retried on its own with
 * backoff, while newer changes go on without waiting for it; a later batch that fails the same way joins it, one
 * entry per path. Only a success, of the parked batch or of a full sync without a crontabfilter, lets go of it;
 * parked three times in a row, the remote counts as degraded.
 */
export function partialFailure(c: OutcomeContext, batch: Batch, kind: RsyncInvocation['kind'], error: string): void {
  const { log, remoteId, stats: s } = c;
  // A full sync lists no paths that could have vanished since a plan: its 23 is a path that keeps failing.
  if (c.attempt.kind === 'fresh' && !batch.full) {
    log.info(
      { remote: remoteId, run: kind, exitCode: 23, error },
      `rsync ${kind} to ${remoteId}: some paths did not go (exit 23); planning the batch again from the disk after its quiet period`,
    );
    // Back into the aggregator, which says when it is due.
    c.restore(batch);
    c.schedule.replanNext();
    return;
  }
  s.failures++;
  s.lastError = error;
  const now = c.clock.now();
  const { parked, attempts } = c.schedule.park(batch, c.attempt);
  const paths = parkedPaths(c.schedule);
  if (!s.degraded && parked.attempts >= DEGRADED_AFTER) {
    s.degraded = true;
    log.error(
      { remote: remoteId, attempts: parked.attempts, paths, error },
      `remote ${remoteId} is degraded: ${paths} path(s) failed ${parked.attempts} times in a row (exit 23): ${error}`,
    );
  }
  log.warn(
    { remote: remoteId, run: kind, exitCode: 23, attempts, paths, error },
    `rsync ${kind} to ${remoteId}: some paths keep failing (exit 23, ${attempts}x); they are retried on their own in ` +
      `${((parked.due - now) / 1000).toFixed(1)} s, newer changes go on meanwhile`,
  );
  c.report({
    ok: false,
    batch: parked.batch,
    verdict: 'partial',
    exitCode: 23,
    error,
    consecutiveFailures: attempts,
    nextAttemptAt: parked.due,
  });
  // No lane backoff: once this rsync is done, newer changes go as usual.
}

/** Any other failure: the batch goes back into the aggregator and the lane waits out an exponential backoff. */
export function failedAttempt(c: OutcomeContext, batch: Batch, verdict: RsyncVerdict, exitCode: number | undefined, error: string): void {
  const s = c.stats;
  s.failures++;
  s.consecutiveFailures++;
  s.lastError = error;
  const { delay, until } = c.schedule.backOff(s.consecutiveFailures, verdict);
  if (!s.degraded && (verdict === 'config' || s.consecutiveFailures >= DEGRADED_AFTER)) {
    s.degraded = true;
    c.log.error(
      { remote: c.remoteId, consecutiveFailures: s.consecutiveFailures, error },
      `remote ${c.remoteId} is degraded: ${error}; retrying with backoff, other remotes go on`,
    );
  }
  // An rsync cut off mid-transfer (the remote restarted, the link dropped) can leave its temporary file
  // (`.name.XXXXXX`) on the remote, which no update run ever removes. So a failed batch is retried with its
  // deletions too: for each directory in it the delete run then removes whatever the remote holds there that the
  // source does not (a file that exists is sent as before). Not after a configuration error (nothing was sent),
  // and not for a batch of more than MAX_TREE_RULES paths: the delete run's rules are matched against every file
  // it visits; a full sync (-r, crontab) removes such a leftover.
  const cleanup = verdict !== 'config' && batch.entries.length <= MAX_TREE_RULES;
  const again: Batch = cleanup ? { ...batch, entries: batch.entries.map((e) => (e.deletes ? e : { ...e, deletes: true })) } : batch;
  c.restore(again);
  const parked = c.schedule.parked;
  c.report({
    ok: false,
    // The durable queue keeps one batch per remote: the parked one must not drop out of it.
    batch: parked ? merged([again, parked.batch]) : again,
    verdict,
    exitCode,
    error,
    consecutiveFailures: s.consecutiveFailures,
    nextAttemptAt: until,
  });
  c.schedule.retryIn(delay);
}

/** The batch reached the remote: counters, the backoff and the parked batch as a success leaves them, the log. */
export function batchSucceeded(c: OutcomeContext, batch: Batch, summary: SyncSummary, seconds: number): void {
  const { log, remoteId, stats: s, schedule } = c;
  const { updated, deleted } = summary;
  const wasFailing = s.consecutiveFailures > 0;
  s.consecutiveFailures = 0;
  s.lastSuccessAt = c.clock.now();
  s.degraded = (schedule.parked?.attempts ?? 0) >= DEGRADED_AFTER;
  s.pathsSynced += updated.length + deleted.length;
  if (batch.full) s.fullSyncs++;
  schedule.succeeded();
  if (summary.runs.some((r) => r.args.includes('--delete'))) schedule.capAgain();
  // Unless a crontabfilter kept some paths out of it.
  if (schedule.parked && batch.full && c.fullSyncFilters.length === 0) {
    log.info(
      { remote: remoteId, paths: parkedPaths(schedule) },
      'no longer retrying the parked paths on their own: a full sync went through',
    );
    schedule.unpark();
  }
  if (c.attempt.kind === 'parked') log.info({ remote: remoteId }, `the paths that kept failing reached ${remoteId} now`);
  logSynced(log, remoteId, batch, summary, seconds, c.clock.now());
  if (wasFailing) log.info({ remote: remoteId }, `remote ${remoteId} recovered`);
  c.report({ ok: true, batch, verdict: 'ok', exitCode: 0, error: '', consecutiveFailures: 0, nextAttemptAt: null });
  c.synced(batch, { updated, deleted, dirs: summary.dirs, whole: summary.whole, seconds });
}

/** The log line of a batch that reached the remote (the whole list of paths only at debug). */
function logSynced(log: Logger, remoteId: string, batch: Batch, s: SyncSummary, seconds: number, now: number): void {
  const { updated, deleted } = s;
  const sample = [...updated, ...deleted].slice(0, 5).map(displayPath);
  log.info(
    {
      remote: remoteId,
      full: batch.full,
      ...(batch.sweep ? { sweep: true } : {}),
      updated: updated.length,
      deleted: deleted.length,
      rsyncRuns: s.runs.length + s.renamed.runs,
      exitCode: 0,
      bytes: s.bytes,
      ...(s.renamed.paths > 0 ? { renamed: s.renamed.paths, renameBytesSaved: s.renamed.saved } : {}),
      seconds,
      lagSeconds: (now - batch.since) / 1000,
      sample,
    },
    batch.full ? `full sync to ${remoteId} done` : `synced ${updated.length + deleted.length} paths to ${remoteId}`,
  );
  // A 20k-file burst would otherwise be a 20k-path log line.
  if (log.isLevelEnabled('debug') && updated.length + deleted.length > sample.length) {
    log.debug({ remote: remoteId, updated: updated.map(displayPath), deleted: deleted.map(displayPath) }, 'batch paths');
  }
}
