import { Aggregator, type AggregatorLimits, type Batch, type ChangeHint } from '../aggregate/aggregator.ts';
import type { Remote } from '../config/model.ts';
import type { RelPath } from '../core/paths.ts';
import type { DeletionVerdict } from './deletion-guard.ts';
import { realDisk } from './disk-probe.ts';
import { batchSucceeded, failedAttempt, type OutcomeContext, parkedPaths, partialFailure } from './lane-outcome.ts';
import { type AttemptReport, type BatchOutcome, type LaneSettings, type LaneStats, newLaneStats } from './lane-report.ts';
import { type Attempt, LaneSchedule, type Parked } from './lane-schedule.ts';
import { mergedByPath } from './merge-batches.ts';
import type { CommandContext } from './rsync-command.ts';
import { runBatch, SLOW_START_MS, type SplitReport } from './run-batch.ts';

export type { AttemptReport, BatchOutcome, LaneStats } from './lane-report.ts';

/**
 * One remote's lane: its own aggregator and at most one rsync at a time, so a slow remote never holds back the
 * others and batches reach each remote in order. The shared limiter bounds rsync processes over all lanes (-n).
 * A failed batch goes back into the aggregator (merged with what came since) and waits out an exponential backoff.
 *
 * Exit 23 is different (lane-outcome.ts): the batch is planned again, then parked and retried on its own while newer
 * changes go on.
 *
 * The timing (backoff, parking, holds) is LaneSchedule's, the plan plan-batch.ts's, every exit-code decision
 * rsync-exit.ts's; the lane wires them, runs the processes and logs.
 */

/** What a lane is given: seams, settings and whom to tell (see LaneSettings). */
export type LaneDeps = LaneSettings<RemoteLane>;

export class RemoteLane {
  readonly remote: Remote;
  readonly stats: LaneStats = newLaneStats();
  readonly #deps: LaneDeps;
  /** Not readonly: a receiver that refuses the nanosecond quick check gets a context without it (see #execute). */
  #ctx: CommandContext;
  readonly #aggregator: Aggregator;
  readonly #schedule: LaneSchedule;
  #running: Promise<void> | null = null;
  #inFlight: Batch | null = null;
  /** What the batch in flight is (a re-plan after exit 23, the parked batch): see LaneSchedule.begin. */
  #attempt: Attempt = { kind: 'fresh' };
  #stopped = false;
  #idleWaiters: (() => void)[] = [];
  #abort = new AbortController();

  constructor(remote: Remote, ctx: CommandContext, limits: AggregatorLimits, deps: LaneDeps) {
    this.remote = remote;
    this.#ctx = ctx;
    this.#deps = deps;
    this.#aggregator = new Aggregator(limits, deps.clock, () => this.#pump());
    this.#schedule = new LaneSchedule({
      clock: deps.clock,
      retry: deps.retry,
      maxPendingPaths: limits.maxPendingPaths,
      wake: () => this.#pump(),
      recheckHold: () => void this.#recheckHold(),
    });
  }

  get pendingPaths(): number {
    return this.#aggregator.pendingPaths + this.parkedPaths;
  }

  get oldestChange(): number | null {
    const times = [this.#aggregator.oldestChange, this.#inFlight?.since, this.#schedule.parked?.batch.since].filter(
      (t) => typeof t === 'number',
    );
    return times.length === 0 ? null : Math.min(...times);
  }

  get busy(): boolean {
    return this.#running !== null;
  }

  get fullPending(): boolean {
    return this.#aggregator.fullPending || this.#inFlight?.full === true || this.#schedule.parked?.batch.full === true;
  }

  /** Paths of the batch that keeps ending with exit 23 (a full sync counts as one), retried on its own. */
  get parkedPaths(): number {
    return parkedPaths(this.#schedule);
  }

  /** When the next attempt after a failure or a hold (or of the parked batch) may start, if that is in the future. */
  get nextAttemptAt(): number | null {
    return this.#schedule.nextAttemptAt(this.#deps.clock.now());
  }

  add(path: RelPath, hint: ChangeHint): void {
    this.#aggregator.add(path, hint);
  }

  requestFull(reason: string, opts: { immediate?: boolean } = {}): void {
    this.#aggregator.requestFull(reason, opts);
    if (opts.immediate) this.#pump();
  }

  /** Puts entries of an earlier failed or unfinished batch back (retry queue, restart). */
  restore(batch: Pick<Batch, 'full' | 'entries' | 'absorbed'> & { fullReason?: string; sweep?: boolean }): void {
    if (batch.full) this.#aggregator.requestFull(batch.fullReason || 'restored full sync', { absorbed: batch.absorbed });
    else if (batch.sweep) this.#aggregator.requestSweep();
    // `deletes`, not `removed`: a restored entry is no new removal, so a path created since (pending as new) must not
    // vanish with it as "created and removed within the window".
    for (const e of batch.entries) this.#aggregator.putBack(e.path, { tree: e.tree, removed: false, created: false, deletes: e.deletes });
  }

  /** Sends whatever is pending now, without waiting for the quiet period (shutdown). Resolves when idle. */
  async flush(): Promise<void> {
    for (;;) {
      // A batch's end may start the next one (a parked batch that is due): wait until none runs.
      while (this.#running) await this.#running;
      if (this.#aggregator.isEmpty || !this.#schedule.mayStart(this.#deps.clock.now()) || this.#stopped) return;
      this.#start(this.#aggregator.take());
    }
  }

  /** Stops starting batches; kills running rsyncs after the caller's grace period (see abortRunning). */
  stop(): void {
    this.#stopped = true;
    this.#aggregator.dispose();
    this.#schedule.stop();
  }

  abortRunning(): void {
    this.#abort.abort();
  }

  async whenIdle(): Promise<void> {
    if (!this.#running) return;
    await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** What is not yet on the remote: the in-flight batch and everything pending (for the durable queue). */
  unfinished(): Batch | null {
    const s = this.#schedule;
    const parts = [this.#inFlight, s.parked?.batch ?? null, s.held?.batch ?? null, this.#aggregator.take()].filter(
      (b): b is Batch => b !== null,
    );
    // By path: a batch cut off by a stop is restored beside the deletions it had already put on hold.
    return parts.length === 0 ? null : mergedByPath(parts, Number.POSITIVE_INFINITY);
  }

  /** Starts the parked batch once it is due, else the aggregator's batch once the aggregator says it is due. */
  #pump(): void {
    if (this.#stopped || this.#running) return;
    const now = this.#deps.clock.now();
    if (!this.#schedule.mayStart(now)) return;
    const parked = this.#schedule.takeDueParked(now);
    if (parked) this.#start(parked.batch, parked);
    else this.#start(this.#aggregator.takeDue());
  }

  /** Runs the batch, or the parked one (which a 23 parks again at once, one attempt more). */
  #start(batch: Batch | null, parked?: Parked): void {
    // One rsync at a time per lane, whoever asks.
    if (this.#running || !batch) return;
    this.#attempt = this.#schedule.begin(parked);
    this.#inFlight = batch;
    this.#running = this.#deps.limiter
      .add(async () => {
        // Whatever it reads from the disk may carry paths created meanwhile (see Aggregator.transferStarted).
        this.#aggregator.transferStarted();
        try {
          await this.#execute(batch);
        } finally {
          this.#aggregator.transferEnded();
        }
      })
      .catch((err: unknown) => {
        this.#deps.log.error({ err, remote: this.remote.id }, 'internal error while syncing a batch; it will be retried');
        failedAttempt(this.#outcome(), batch, 'retry', undefined, String(err));
      })
      .finally(() => {
        this.#running = null;
        this.#inFlight = null;
        for (const w of this.#idleWaiters.splice(0)) w();
        this.#pump();
      });
  }

  /** A refused part, or two slow leads in a row, and the renames to this remote go in one run each from now on. */
  #noteSplit(split: SplitReport | undefined): void {
    if (split === undefined) return;
    const before = this.#ctx.slowRenameStarts ?? 0;
    const slow = split.startMs === null ? before : split.startMs > SLOW_START_MS ? before + 1 : 0;
    const why =
      split.refused ??
      (slow >= 2
        ? `two renames in a row whose first rsync said it made the directory ${Math.round(split.startMs ?? 0)} ms after its start (a slow login shell, or a busy host)`
        : null);
    this.#ctx = { ...this.#ctx, slowRenameStarts: slow, ...(why !== null ? { splitRenames: false } : {}) };
    if (why !== null)
      this.#deps.log.info({ remote: this.remote.id }, `${why}: renames go to ${this.remote.id} in one run each from now on`);
  }

  async #execute(batch: Batch): Promise<void> {
    const started = this.#deps.clock.now();
    // The cap as it was when the batch started (a release during the guard's look counts from the next batch).
    const ctx = this.#schedule.uncapped ? { ...this.#ctx, maxDelete: null } : this.#ctx;
    // Asked also without deletions: a root that looks unmounted holds the updates too (rootSuspect).
    const verdict = await this.#deletionVerdict();
    const result = await runBatch(batch, {
      ...this.#deps,
      remoteId: this.remote.id,
      disk: this.#deps.disk ?? realDisk,
      signal: this.#abort.signal,
      stats: this.stats,
      ctx,
      verdict,
      renames: this.#attempt.kind === 'fresh',
      hold: (b, reason) => this.#hold(b, reason),
    });
    switch (result.kind) {
      case 'held':
        return;
      case 'aborted':
        return this.restore(batch);
      case 'old-receiver':
        // Whole seconds from now on (run-batch said so in the log).
        this.#ctx = { ...this.#ctx, nanoseconds: false };
        this.restore(batch);
        return this.#schedule.retryIn(0);
      case 'partial':
        return partialFailure(this.#outcome(), batch, result.run, result.error);
      case 'max-delete':
        this.#schedule.waitForOperator();
        return this.#hold(batch, `more than maxDelete=${this.#ctx.maxDelete} deletions in one run (${result.stderr})`);
      case 'failed':
        return failedAttempt(this.#outcome(), batch, result.verdict, result.exitCode, result.error);
      case 'synced': {
        if (result.summary.earlyRefused) this.#ctx = { ...this.#ctx, earlyDeletes: false };
        this.#noteSplit(result.summary.split);
        if (batch.full && this.#deps.fullSyncFilters.length > 0 && Array.isArray(batch.absorbed)) {
          // <crontabfilter> may have kept some of the changes it took in out of the full sync: they go again as
          // changes (and reach the plugin with that batch; run-batch told it nothing of them).
          this.restore({ full: false, entries: batch.absorbed.map((path) => ({ path, tree: false, deletes: true })) });
        }
        batchSucceeded(this.#outcome(), batch, result.summary, (this.#deps.clock.now() - started) / 1000);
        if (result.recheck) this.restore({ full: false, entries: batch.entries.filter((e) => !e.tree) });
      }
    }
  }

  async #deletionVerdict(): Promise<DeletionVerdict> {
    if (this.#schedule.hold.kind === 'operator')
      return { all: true, below: [], reason: `maxDelete=${this.#ctx.maxDelete} was reached; waiting for the operator` };
    return this.#deps.deletionGuard();
  }

  /**
   * Keeps deletions (or a full sync) aside without counting a failure and without holding back newer changes; they
   * go once the guard lets them, looked at every HOLD_RECHECK_MS, or when the operator releases the hold.
   */
  #hold(batch: Batch, reason: string): void {
    if (this.#schedule.held === null) {
      this.#deps.log.error(
        {
          remote: this.remote.id,
          held: batch.full ? 'full sync' : batch.sweep ? 'the deletions of a full sync' : batch.entries.length,
          reason,
        },
        `holding deletions for ${this.remote.id}: ${reason}; they go once that is over, or after SIGUSR1 (release the hold once)`,
      );
    }
    this.#schedule.holdBack(batch, reason);
  }

  async #recheckHold(): Promise<void> {
    const held = this.#schedule.held;
    if (held === null || this.#stopped) return;
    const verdict = await this.#deletionVerdict();
    if (this.#schedule.held !== held) return;
    const free = this.#schedule.settleHold(held, verdict);
    if (free !== null) {
      this.#deps.log.warn({ remote: this.remote.id }, `releasing held deletions for ${this.remote.id}`);
      this.restore(free);
      this.#pump();
    }
    this.#schedule.keepChecking();
  }

  /** Whether every deletion waits for the operator (maxDelete was reached); a reload's new lane takes it over. */
  get waitsForOperator(): boolean {
    return this.#schedule.hold.kind === 'operator';
  }

  holdForOperator(): void {
    this.#schedule.waitForOperator();
  }

  /** The operator's "yes, delete" (SIGUSR1): held deletions go now, once without the maxDelete cap. */
  releaseHold(): void {
    if (this.#schedule.release()) void this.#recheckHold();
  }

  get holding(): boolean {
    return this.#schedule.held !== null;
  }

  /** Why deletions are held, or null. */
  get holdReason(): string | null {
    return this.#schedule.held?.reason ?? null;
  }

  #outcome(): OutcomeContext {
    const { clock, log } = this.#deps;
    const report = (r: AttemptReport) => this.#deps.onAttempt?.(this, r);
    const restore = (b: Batch) => this.restore(b);
    const synced = (b: Batch, outcome: BatchOutcome) => this.#deps.onSynced?.(this, b, outcome);
    const { fullSyncFilters } = this.#deps;
    const { stats, remote } = this;
    return {
      remoteId: remote.id,
      clock,
      log,
      stats,
      schedule: this.#schedule,
      attempt: this.#attempt,
      restore,
      report,
      synced,
      fullSyncFilters,
    };
  }
}
