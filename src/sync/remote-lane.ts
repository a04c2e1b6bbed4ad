import type PQueue from 'p-queue';
import type { Logger } from 'pino';
import { Aggregator, type AggregatorLimits, type Batch, type ChangeHint, type PendingEntry } from '../aggregate/aggregator.ts';
import type { FilterRegex, Remote } from '../config/model.ts';
import type { Clock } from '../core/clock.ts';
import { displayPath, type RelPath } from '../core/paths.ts';
import type { ProgressSink } from '../observe/progress.ts';
import { type DeletionVerdict, isHeld, NOTHING_HELD } from './deletion-guard.ts';
import { type DiskProbe, realDisk } from './disk-probe.ts';
import { writeExcludeFile } from './exclude-file.ts';
import { excludedByRegexes } from './excluded-walk.ts';
import { withoutLinkedAncestors } from './linked-ancestors.ts';
import { planRename, type RenameTarget, totalFileSizeFromStats } from './plan-rename.ts';
import { splitByDisk } from './split-by-disk.ts';
import { lastLines, type ProcessRunner } from './process-runner.ts';
import {
  bytesSentFromStats,
  type CommandContext,
  MAX_TREE_RULES,
  type RsyncInvocation,
  planDelete,
  planFull,
  planUpdate,
  protectRule,
} from './rsync-command.ts';
import { classifyRsyncExit, type RsyncVerdict, spawnFailure } from './rsync-exit.ts';

/**
 * One remote's lane: its own aggregator and at most one rsync at a time, so a slow remote never holds back the
 * others and batches reach each remote in order. The shared limiter bounds rsync processes over all lanes (-n).
 * A failed batch goes back into the aggregator (merged with what came since) and waits out an exponential backoff.
 *
 * Exit 23 is different: the remote works, some paths did not go. A path that vanished between the plan and rsync's
 * read gives 23 too (`link_stat ... failed`), so the batch is first planned again from the disk after its quiet
 * period (no backoff), where the vanished path is a deletion. A second 23 in a row (or a full sync's first) means
 * paths that keep failing (a receiver that refuses them, a file the daemon cannot read): that batch is parked and
 * retried on its own with backoff, while newer changes go on without waiting for it; a later batch that fails the
 * same way joins it, one entry per path. Only a success, of the parked batch or of a full sync without a
 * crontabfilter, lets go of it; parked three times in a row, the remote counts as degraded.
 */

export interface LaneDeps {
  readonly clock: Clock;
  readonly runner: ProcessRunner;
  readonly limiter: PQueue;
  readonly log: Logger;
  readonly rsyncPath: string;
  /** The watch root as a byte string. */
  readonly rootBytes: string;
  /** Realtime filter regexes without an rsync equivalent (need a walk before tree and full syncs). */
  readonly untranslated: readonly FilterRegex[];
  /** Extra excludes for full syncs only (crontabfilter). */
  readonly fullSyncFilters: readonly string[];
  readonly retry: { readonly baseMs: number; readonly capMs: number; readonly random: () => number };
  /** Told after a batch reached the remote (plugins, metrics), and after each attempt (durable retry queue). */
  readonly onSynced?: (lane: RemoteLane, batch: Batch, outcome: BatchOutcome) => void;
  readonly onAttempt?: (lane: RemoteLane, report: AttemptReport) => void;
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
  /** The disk the batches are planned from; the real one when unset (unit tests script it). */
  readonly disk?: DiskProbe;
}

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

const DEGRADED_AFTER = 3;
/** How often a held batch looks at the watch root again. */
const HOLD_RECHECK_MS = 5000;

export class RemoteLane {
  readonly remote: Remote;
  readonly stats: LaneStats = {
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
  readonly #deps: LaneDeps;
  /** Not readonly: a receiver that refuses the nanosecond quick check gets a context without it (see #execute). */
  #ctx: CommandContext;
  readonly #aggregator: Aggregator;
  readonly #maxPendingPaths: number;
  #running: Promise<void> | null = null;
  #inFlight: Batch | null = null;
  #backoffUntil = 0;
  #backoffTimer: unknown = null;
  #stopped = false;
  /** Deletions (or a full sync with --delete) waiting for the guard or the operator, and why. */
  #held: { batch: Batch; reason: string } | null = null;
  #heldTimer: unknown = null;
  /** An rsync stopped at <tuning maxDelete> (exit 25): every deletion waits for the operator (releaseHold). */
  #capReached = false;
  /** The operator released the hold: the next runs that delete do so without the maxDelete cap. */
  #uncapped = false;
  /** A 23 of the batch in flight parks it: it is a re-plan after a 23, or the parked batch itself. */
  #parkOn23 = false;
  /** The batch that keeps ending with exit 23, retried on its own at `due` (see the class comment). */
  #parked: { batch: Batch; attempts: number; due: number } | null = null;
  #parkedTimer: unknown = null;
  /** How often the batch in flight has been parked before (0: not the parked batch). */
  #parkedAttempts = 0;
  /** The next batch taken holds the re-plan of a batch that ended with exit 23. */
  #replanNext = false;
  #idleWaiters: (() => void)[] = [];
  #abort = new AbortController();

  constructor(remote: Remote, ctx: CommandContext, limits: AggregatorLimits, deps: LaneDeps) {
    this.remote = remote;
    this.#ctx = ctx;
    this.#deps = deps;
    this.#aggregator = new Aggregator(limits, deps.clock, () => this.#pump());
    this.#maxPendingPaths = limits.maxPendingPaths;
  }

  get pendingPaths(): number {
    return this.#aggregator.pendingPaths + this.parkedPaths;
  }

  get oldestChange(): number | null {
    const times = [this.#aggregator.oldestChange, this.#inFlight?.since, this.#parked?.batch.since].filter((t) => typeof t === 'number');
    return times.length === 0 ? null : Math.min(...times);
  }

  get busy(): boolean {
    return this.#running !== null;
  }

  get fullPending(): boolean {
    return this.#aggregator.fullPending || this.#inFlight?.full === true || this.#parked?.batch.full === true;
  }

  /** Paths of the batch that keeps ending with exit 23 (a full sync counts as one), retried on its own. */
  get parkedPaths(): number {
    const b = this.#parked?.batch;
    return b ? (b.full ? 1 : b.entries.length) : 0;
  }

  /** When the next attempt after a failure or a hold (or of the parked batch) may start, if that is in the future. */
  get nextAttemptAt(): number | null {
    const now = this.#deps.clock.now();
    if (this.#backoffUntil > now) return this.#backoffUntil;
    const due = this.#parked?.due ?? 0;
    return due > now ? due : null;
  }

  add(path: RelPath, hint: ChangeHint): void {
    this.#aggregator.add(path, hint);
  }

  requestFull(reason: string, opts: { immediate?: boolean } = {}): void {
    this.#aggregator.requestFull(reason, opts);
    if (opts.immediate) this.#pump();
  }

  /** Puts entries of an earlier failed or unfinished batch back (retry queue, restart). */
  restore(batch: { full: boolean; fullReason?: string; entries: readonly PendingEntry[] }): void {
    if (batch.full) this.#aggregator.requestFull(batch.fullReason || 'restored full sync');
    // `deletes`, not `removed`: a restored entry is no new removal, so a path created since (pending as new) must not
    // vanish with it as "created and removed within the window".
    for (const e of batch.entries) this.#aggregator.putBack(e.path, { tree: e.tree, removed: false, created: false, deletes: e.deletes });
  }

  /** Sends whatever is pending now, without waiting for the quiet period (shutdown). Resolves when idle. */
  async flush(): Promise<void> {
    for (;;) {
      // A batch's end may start the next one (a parked batch that is due): wait until none runs.
      while (this.#running) await this.#running;
      if (this.#aggregator.isEmpty || this.#deps.clock.now() < this.#backoffUntil || this.#stopped) return;
      this.#start();
    }
  }

  /** Stops starting batches; kills running rsyncs after the caller's grace period (see abortRunning). */
  stop(): void {
    this.#stopped = true;
    this.#aggregator.dispose();
    if (this.#backoffTimer !== null) this.#deps.clock.clearTimeout(this.#backoffTimer);
    if (this.#parkedTimer !== null) this.#deps.clock.clearTimeout(this.#parkedTimer);
    if (this.#heldTimer !== null) this.#deps.clock.clearTimeout(this.#heldTimer);
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
    const parts = [this.#inFlight, this.#parked?.batch ?? null, this.#held?.batch ?? null, this.#aggregator.take()].filter(
      (b): b is Batch => b !== null,
    );
    return parts.length === 0 ? null : merged(parts);
  }

  #pump(): void {
    if (this.#stopped || this.#running) return;
    const now = this.#deps.clock.now();
    if (now < this.#backoffUntil) return;
    const parked = this.#parked;
    if (parked && now >= parked.due) {
      this.#parked = null;
      this.#start(parked);
      return;
    }
    if (!this.#aggregator.isDue(now)) return;
    this.#start();
  }

  /** Runs the aggregator's next batch, or the parked one (which a 23 parks again at once, one attempt more). */
  #start(parked?: { batch: Batch; attempts: number }): void {
    // One rsync at a time per lane, whoever asks.
    if (this.#running) return;
    const batch = parked?.batch ?? this.#aggregator.take();
    if (!batch) return;
    this.#parkOn23 = parked !== undefined || this.#replanNext;
    this.#replanNext = false;
    this.#parkedAttempts = parked?.attempts ?? 0;
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
        this.#failed(batch, 'retry', undefined, String(err));
      })
      .finally(() => {
        this.#running = null;
        this.#inFlight = null;
        for (const w of this.#idleWaiters.splice(0)) w();
        this.#pump();
      });
  }

  async #execute(batch: Batch): Promise<void> {
    const started = this.#deps.clock.now();
    const log = this.#deps.log;
    const disk = this.#deps.disk ?? realDisk;
    let runs: RsyncInvocation[];
    /** The update run is planned last, after the ancestor check right before it runs. */
    let update: { paths: RelPath[]; trees: RelPath[]; pruned: RelPath[] } | null = null;
    /** Paths the untranslated filter regexes keep out of the update or full run. */
    let excluded: RelPath[] = [];
    let updated: RelPath[] = [];
    let deleted: RelPath[] = [];
    let held = false;
    let bytes = 0;
    const ctx = this.#uncapped ? { ...this.#ctx, maxDelete: null } : this.#ctx;
    const verdict = this.#ctx.deletes ? await this.#deletionVerdict() : NOTHING_HELD;
    const protect = verdict.below.map(protectRule);
    if (batch.full && (verdict.all || protect.includes(null))) {
      this.#hold(batch, verdict.reason);
      return;
    }
    if (batch.full) {
      excluded = await excludedByRegexes(disk, this.#deps.rootBytes, [''], this.#deps.untranslated);
      runs = [];
    } else {
      const split = await splitByDisk(disk, this.#deps.rootBytes, batch.entries);
      // A directory that only lost entries still exists: reported as updated too, so no plugin hears "deleted".
      updated = [...split.updates, ...split.pruned];
      deleted = split.deletes.map((d) => d.path);
      runs = [];
      if (split.updates.length > 0) {
        excluded = await excludedByRegexes(disk, this.#deps.rootBytes, split.trees, this.#deps.untranslated);
        update = { paths: split.updates, trees: split.trees, pruned: split.pruned };
      }
      if (split.deletes.length > 0 && this.#ctx.deletes) {
        const go = split.deletes.filter((d) => !isHeld(verdict, d.path));
        if (go.length > 0) runs.push(planDelete(ctx, go));
        if (go.length < split.deletes.length) {
          const wait = new Set(split.deletes.filter((d) => isHeld(verdict, d.path)).map((d) => d.path));
          this.#hold({ ...batch, entries: batch.entries.filter((e) => wait.has(e.path)) }, verdict.reason);
          held = true;
          deleted = deleted.filter((p) => !wait.has(p));
        }
      }
    }
    // Only held deletions: nothing ran, so nothing succeeded, and the hold's recheck delay must stand.
    if (held && runs.length === 0 && update === null) return;
    await this.#deps.afterPlan?.(batch);
    if (update !== null) {
      const checked = await withoutLinkedAncestors(disk, this.#deps.rootBytes, update.paths, update.trees);
      if (checked.links.length > 0) {
        log.warn(
          { remote: this.remote.id, links: checked.links.map(displayPath), dropped: checked.dropped },
          `a directory of the tree became a symlink since the batch was planned: sending the link itself to ${this.remote.id}, nothing below it`,
        );
        updated = [...checked.paths, ...update.pruned];
      }
      update = { ...update, paths: checked.paths, trees: checked.trees };
    }
    const renamed = { paths: 0, saved: 0, sent: 0, runs: 0 };
    if (update !== null && this.#deps.untranslated.length === 0) {
      const done = await this.#sendRenames(ctx, batch, update.paths, update.trees, renamed);
      bytes += renamed.sent;
      if (done.size > 0) {
        const paths = update.paths.filter((p) => !done.has(p));
        update = paths.length === 0 ? null : { ...update, paths, trees: update.trees.filter((p) => !done.has(p)) };
      }
    }
    // Removed right after the run that reads it (the first), and after the loop in case that run never started.
    const excludeFile = await writeExcludeFile(excluded);
    const excludeFrom = excludeFile?.path ?? null;
    if (batch.full) {
      // Below a mount point that is none now, the full sync sends but deletes nothing; those deletions wait.
      runs = [planFull(ctx, [...(protect as string[]), ...this.#deps.fullSyncFilters], excludeFrom)];
      if (verdict.below.length > 0) {
        const owed = verdict.below.map((path) => ({ path, tree: true, deletes: true }));
        this.#hold({ full: false, fullReason: '', entries: owed, since: batch.since }, verdict.reason);
      }
    }
    if (update !== null) runs.unshift(planUpdate(ctx, update.paths, [], new Set(update.trees), excludeFrom));
    this.stats.batches++;
    let recheck = false;
    for (const run of runs) {
      if (this.#abort.signal.aborted) {
        // A stop's grace period ended before this run started: nothing says the batch went, so it is owed whole (the
        // stop persists it); runs that did go are repeated harmlessly.
        await excludeFile?.remove();
        this.restore(batch);
        return;
      }
      this.stats.rsyncRuns++;
      const progress = run.kind === 'full' ? this.#deps.progress?.(this.remote.id) : undefined;
      const result = await this.#deps.runner
        .run(this.#deps.rsyncPath, run.args, { input: run.input, signal: this.#abort.signal, onStdout: progress?.update })
        .finally(async () => {
          progress?.done();
          await excludeFile?.remove();
        });
      const { verdict, meaning } = result.spawnError
        ? { verdict: 'config' as const, meaning: spawnFailure(this.#deps.rsyncPath, result.spawnError) }
        : classifyRsyncExit(result);
      this.stats.runsByVerdict[verdict]++;
      const sent = bytesSentFromStats(result.stdout);
      this.stats.bytesSent += sent;
      bytes += sent;
      const stderr = lastLines(result.stderr, 3);
      if (verdict === 'partial' && result.exitCode === 24) {
        // Files vanished between the plan and the transfer (a tree being removed, caches, temporaries): everything
        // that still existed went, and a vanished path's removal is an event of its own. Not a failure, or a full
        // sync of a live tree would never succeed. The explicitly listed paths are looked at once more.
        log.info({ remote: this.remote.id, run: run.kind, exitCode: 24, stderr }, `rsync ${run.kind} to ${this.remote.id}: ${meaning}`);
        recheck ||= run.kind === 'update';
        continue;
      }
      if (
        verdict !== 'ok' &&
        result.exitCode !== 23 &&
        run.kind === 'update' &&
        this.#ctx.nanoseconds !== false &&
        run.args.includes('--modify-window=-1') &&
        /unknown option|-@/i.test(result.stderr)
      ) {
        this.#ctx = { ...this.#ctx, nanoseconds: false };
        log.warn(
          { remote: this.remote.id, stderr },
          `${this.remote.id} refuses --modify-window=-1 (rsync older than 3.1.3): comparing whole seconds from now on, so a ` +
            'same-size rewrite within the second of its last sync waits for the next full sync; upgrade rsync on the remote',
        );
        this.restore(batch);
        this.#scheduleRetry(0);
        return;
      }
      if (result.exitCode === 23) {
        this.#partial(batch, run.kind, `${meaning}${stderr ? `: ${stderr}` : ''}`);
        return;
      }
      if (result.exitCode === 25) {
        // The run reached <tuning maxDelete>: rsync deleted that many and skipped the rest. Never retried on its own
        // (each retry would delete as many again): every deletion of this remote waits for the operator.
        this.#capReached = true;
        this.#hold(batch, `more than maxDelete=${this.#ctx.maxDelete} deletions in one run (${stderr})`);
        return;
      }
      if (verdict !== 'ok') {
        log.warn(
          { remote: this.remote.id, run: run.kind, exitCode: result.exitCode, signal: result.signal, verdict, stderr },
          `rsync ${run.kind} to ${this.remote.id} failed: ${meaning}`,
        );
        this.#failed(batch, verdict, result.exitCode, `${meaning}${stderr ? `: ${stderr}` : ''}`);
        return;
      }
    }
    await excludeFile?.remove();
    const seconds = (this.#deps.clock.now() - started) / 1000;
    const wasFailing = this.stats.consecutiveFailures > 0;
    this.stats.consecutiveFailures = 0;
    this.stats.lastSuccessAt = this.#deps.clock.now();
    this.stats.degraded = (this.#parked?.attempts ?? 0) >= DEGRADED_AFTER;
    this.stats.pathsSynced += updated.length + deleted.length;
    if (batch.full) this.stats.fullSyncs++;
    this.#backoffUntil = 0;
    if (this.#uncapped && runs.some((r) => r.kind !== 'update')) this.#uncapped = false;
    // Unless a crontabfilter kept some paths out of it.
    if (this.#parked && batch.full && this.#deps.fullSyncFilters.length === 0) this.#unpark('a full sync went through');
    if (this.#parkedAttempts > 0) log.info({ remote: this.remote.id }, `the paths that kept failing reached ${this.remote.id} now`);
    this.#parkedAttempts = 0;
    const sample = [...updated, ...deleted].slice(0, 5).map(displayPath);
    log.info(
      {
        remote: this.remote.id,
        full: batch.full,
        updated: updated.length,
        deleted: deleted.length,
        rsyncRuns: runs.length + renamed.runs,
        exitCode: 0,
        bytes,
        ...(renamed.paths > 0 ? { renamed: renamed.paths, renameBytesSaved: renamed.saved } : {}),
        seconds,
        lagSeconds: (this.#deps.clock.now() - batch.since) / 1000,
        sample,
      },
      batch.full ? `full sync to ${this.remote.id} done` : `synced ${updated.length + deleted.length} paths to ${this.remote.id}`,
    );
    // The whole list only at debug: a 20k-file burst would otherwise be a 20k-path log line.
    if (log.isLevelEnabled('debug') && updated.length + deleted.length > sample.length) {
      log.debug({ remote: this.remote.id, updated: updated.map(displayPath), deleted: deleted.map(displayPath) }, 'batch paths');
    }
    if (wasFailing) log.info({ remote: this.remote.id }, `remote ${this.remote.id} recovered`);
    this.#deps.onAttempt?.(this, {
      ok: true,
      batch,
      verdict: 'ok',
      exitCode: 0,
      error: '',
      consecutiveFailures: 0,
      nextAttemptAt: null,
    });
    this.#deps.onSynced?.(this, batch, { updated, deleted, seconds });
    if (recheck) this.restore({ full: false, entries: batch.entries.filter((e) => !e.tree) });
  }

  /**
   * The batch's renamed paths, each in its own run before the update and delete runs (the old name is deleted only
   * after the new one is complete). Returns the paths that went; any other outcome leaves a path to the update run,
   * which sends it as before.
   */
  async #sendRenames(
    ctx: CommandContext,
    batch: Batch,
    paths: readonly RelPath[],
    trees: readonly RelPath[],
    tally: { paths: number; saved: number; sent: number; runs: number },
  ): Promise<Set<RelPath>> {
    const done = new Set<RelPath>();
    // A batch retried after exit 23 may meet a remote that its first attempt changed: plain updates only.
    if (this.#parkOn23) return done;
    const sending = new Set(paths);
    const isDir = new Set(trees);
    const targets: RenameTarget[] = batch.entries.flatMap((e) =>
      e.renamedFrom !== undefined && sending.has(e.path) ? [{ path: e.path, from: e.renamedFrom, isDir: isDir.has(e.path) }] : [],
    );
    for (const target of targets) {
      const run = planRename(ctx, target);
      if (run === null || this.#abort.signal.aborted) continue;
      this.stats.rsyncRuns++;
      tally.runs++;
      const result = await this.#deps.runner.run(this.#deps.rsyncPath, run.args, { input: null, signal: this.#abort.signal });
      const { verdict, meaning } = result.spawnError
        ? { verdict: 'config' as const, meaning: spawnFailure(this.#deps.rsyncPath, result.spawnError) }
        : classifyRsyncExit(result);
      this.stats.runsByVerdict[verdict]++;
      const sent = bytesSentFromStats(result.stdout);
      this.stats.bytesSent += sent;
      tally.sent += sent;
      if (verdict !== 'ok') {
        this.#deps.log.info(
          { remote: this.remote.id, path: displayPath(target.path), exitCode: result.exitCode, stderr: lastLines(result.stderr, 3) },
          `rsync rename to ${this.remote.id}: ${meaning}; sending ${displayPath(target.path)} as a plain update`,
        );
        continue;
      }
      const saved = Math.max(0, totalFileSizeFromStats(result.stdout) - sent);
      done.add(target.path);
      tally.paths++;
      tally.saved += saved;
      this.stats.renames++;
      this.stats.renameBytesSaved += saved;
    }
    return done;
  }

  async #deletionVerdict(): Promise<DeletionVerdict> {
    if (this.#capReached) return { all: true, below: [], reason: `maxDelete=${this.#ctx.maxDelete} was reached; waiting for the operator` };
    return this.#deps.deletionGuard();
  }

  /**
   * Keeps deletions (or a full sync) aside without counting a failure and without holding back newer changes; they
   * go once the guard lets them, looked at every HOLD_RECHECK_MS, or when the operator releases the hold.
   */
  #hold(batch: Batch, reason: string): void {
    if (this.#held === null) {
      this.#deps.log.error(
        { remote: this.remote.id, held: batch.full ? 'full sync' : batch.entries.length, reason },
        `holding deletions for ${this.remote.id}: ${reason}; they go once that is over, or after SIGUSR1 (release the hold once)`,
      );
    }
    this.#held = { batch: this.#held ? mergedByPath([this.#held.batch, batch], this.#maxPendingPaths) : batch, reason };
    this.#scheduleHoldCheck(HOLD_RECHECK_MS);
  }

  #scheduleHoldCheck(delay: number): void {
    if (this.#stopped || this.#heldTimer !== null) return;
    this.#heldTimer = this.#deps.clock.setTimeout(() => {
      this.#heldTimer = null;
      void this.#recheckHold();
    }, delay);
  }

  async #recheckHold(): Promise<void> {
    const held = this.#held;
    if (held === null || this.#stopped) return;
    const verdict = await this.#deletionVerdict();
    if (this.#held !== held) return;
    const free = held.batch.full ? (verdict.all ? [] : null) : held.batch.entries.filter((e) => !isHeld(verdict, e.path));
    const still = held.batch.full ? [] : held.batch.entries.filter((e) => isHeld(verdict, e.path));
    if (free === null || free.length > 0) {
      this.#deps.log.warn({ remote: this.remote.id }, `releasing held deletions for ${this.remote.id}`);
      this.#held = still.length > 0 ? { batch: { ...held.batch, entries: still }, reason: verdict.reason } : null;
      this.restore(free === null ? held.batch : { ...held.batch, entries: free });
      this.#pump();
    }
    if (this.#held !== null) this.#scheduleHoldCheck(HOLD_RECHECK_MS);
  }

  /** Whether every deletion waits for the operator (maxDelete was reached); a reload's new lane takes it over. */
  get waitsForOperator(): boolean {
    return this.#capReached;
  }

  holdForOperator(): void {
    this.#capReached = true;
  }

  /** The operator's "yes, delete" (SIGUSR1): held deletions go now, once without the maxDelete cap. */
  releaseHold(): void {
    this.#capReached = false;
    if (this.#held === null) return;
    this.#uncapped = true;
    if (this.#heldTimer !== null) this.#deps.clock.clearTimeout(this.#heldTimer);
    this.#heldTimer = null;
    void this.#recheckHold();
  }

  get holding(): boolean {
    return this.#held !== null;
  }

  /** Why deletions are held, or null. */
  get holdReason(): string | null {
    return this.#held?.reason ?? null;
  }

  /** One timer that pumps again; never sooner than a backoff or hold already set (it would find the lane shut). */
  #scheduleRetry(delay: number): void {
    if (this.#stopped) return;
    if (this.#backoffTimer !== null) this.#deps.clock.clearTimeout(this.#backoffTimer);
    const wait = Math.max(delay, this.#backoffUntil - this.#deps.clock.now());
    this.#backoffTimer = this.#deps.clock.setTimeout(() => {
      this.#backoffTimer = null;
      this.#pump();
    }, wait);
  }

  /** Exponential backoff with jitter: the delay before attempt n + 1 after n failures; config errors at the cap. */
  #backoff(failures: number, verdict: RsyncVerdict): number {
    const { baseMs, capMs, random } = this.#deps.retry;
    const exp = verdict === 'config' ? capMs : Math.min(capMs, baseMs * 2 ** (failures - 1));
    return Math.round(exp * (0.75 + 0.5 * random()));
  }

  /** Exit 23: plan the batch again after its quiet period; the second time in a row, park it (see the class comment). */
  #partial(batch: Batch, kind: RsyncInvocation['kind'], error: string): void {
    const log = this.#deps.log;
    // A full sync lists no paths that could have vanished since a plan: its 23 is a path that keeps failing.
    if (!this.#parkOn23 && !batch.full) {
      log.info(
        { remote: this.remote.id, run: kind, exitCode: 23, error },
        `rsync ${kind} to ${this.remote.id}: some paths did not go (exit 23); planning the batch again from the disk after its quiet period`,
      );
      // Back into the aggregator, which calls #pump once it is due.
      this.restore(batch);
      this.#replanNext = true;
      return;
    }
    const s = this.stats;
    s.failures++;
    s.lastError = error;
    const attempts = this.#parkedAttempts + 1;
    const prev = this.#parked;
    const now = this.#deps.clock.now();
    this.#parked = prev
      ? { batch: mergedByPath([prev.batch, batch], this.#maxPendingPaths), attempts: Math.max(prev.attempts, attempts), due: prev.due }
      : { batch, attempts, due: now + this.#backoff(attempts, 'partial') };
    const parked = this.#parked;
    if (!s.degraded && parked.attempts >= DEGRADED_AFTER) {
      s.degraded = true;
      log.error(
        { remote: this.remote.id, attempts: parked.attempts, paths: this.parkedPaths, error },
        `remote ${this.remote.id} is degraded: ${this.parkedPaths} path(s) failed ${parked.attempts} times in a row (exit 23): ${error}`,
      );
    }
    log.warn(
      { remote: this.remote.id, run: kind, exitCode: 23, attempts, paths: this.parkedPaths, error },
      `rsync ${kind} to ${this.remote.id}: some paths keep failing (exit 23, ${attempts}x); they are retried on their own in ` +
        `${((parked.due - now) / 1000).toFixed(1)} s, newer changes go on meanwhile`,
    );
    this.#deps.onAttempt?.(this, {
      ok: false,
      batch: parked.batch,
      verdict: 'partial',
      exitCode: 23,
      error,
      consecutiveFailures: attempts,
      nextAttemptAt: parked.due,
    });
    if (this.#parkedTimer !== null) this.#deps.clock.clearTimeout(this.#parkedTimer);
    if (this.#stopped) return;
    this.#parkedTimer = this.#deps.clock.setTimeout(
      () => {
        this.#parkedTimer = null;
        this.#pump();
      },
      Math.max(0, parked.due - now),
    );
    // No lane backoff: once this rsync is done, newer changes go as usual.
  }

  #unpark(why: string): void {
    this.#deps.log.info({ remote: this.remote.id, paths: this.parkedPaths }, `no longer retrying the parked paths on their own: ${why}`);
    this.#parked = null;
    if (this.#parkedTimer !== null) this.#deps.clock.clearTimeout(this.#parkedTimer);
    this.#parkedTimer = null;
  }

  #failed(batch: Batch, verdict: RsyncVerdict, exitCode: number | undefined, error: string): void {
    const s = this.stats;
    s.failures++;
    s.consecutiveFailures++;
    s.lastError = error;
    const delay = this.#backoff(s.consecutiveFailures, verdict);
    this.#backoffUntil = this.#deps.clock.now() + delay;
    if (!s.degraded && (verdict === 'config' || s.consecutiveFailures >= DEGRADED_AFTER)) {
      s.degraded = true;
      this.#deps.log.error(
        { remote: this.remote.id, consecutiveFailures: s.consecutiveFailures, error },
        `remote ${this.remote.id} is degraded: ${error}; retrying with backoff, other remotes go on`,
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
    this.restore(again);
    this.#deps.onAttempt?.(this, {
      ok: false,
      // The durable queue keeps one batch per remote: the parked one must not drop out of it.
      batch: this.#parked ? merged([again, this.#parked.batch]) : again,
      verdict,
      exitCode,
      error,
      consecutiveFailures: s.consecutiveFailures,
      nextAttemptAt: this.#backoffUntil,
    });
    this.#scheduleRetry(delay);
  }
}

/**
 * A parked batch and the next one that failed the same way, as one: one entry per path (flags or-ed, removalsOnly
 * only if both say so), and a full sync once it holds more than maxPendingPaths, as in the aggregator.
 */
function mergedByPath(parts: readonly Batch[], maxPendingPaths: number): Batch {
  const all = merged(parts);
  if (all.full) return all;
  const byPath = new Map<RelPath, PendingEntry>();
  for (const e of all.entries) {
    const was = byPath.get(e.path);
    if (!was) byPath.set(e.path, e);
    else {
      const removalsOnly = was.removalsOnly === true && e.removalsOnly === true;
      byPath.set(e.path, {
        path: e.path,
        tree: was.tree || e.tree,
        deletes: was.deletes || e.deletes,
        ...(removalsOnly ? { removalsOnly } : {}),
      });
    }
  }
  if (byPath.size > maxPendingPaths)
    return { full: true, fullReason: 'more parked paths than maxPendingPaths', entries: [], since: all.since };
  return { ...all, entries: [...byPath.values()] };
}

/** Batches as one: a full sync swallows the rest; the oldest change counts. */
function merged(parts: readonly Batch[]): Batch {
  const full = parts.some((b) => b.full);
  return {
    full,
    fullReason: parts.find((b) => b.fullReason)?.fullReason ?? '',
    entries: full ? [] : parts.flatMap((b) => b.entries),
    since: Math.min(...parts.map((b) => b.since)),
  };
}
