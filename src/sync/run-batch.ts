import type { Logger } from 'pino';
import type { Batch } from '../aggregate/aggregator.ts';
import type { FilterRegex } from '../config/model.ts';
import { displayPath, type RelPath } from '../core/paths.ts';
import type { ProgressSink } from '../observe/progress.ts';
import type { DeletionVerdict } from './deletion-guard.ts';
import type { DiskProbe } from './disk-probe.ts';
import { writeExcludeFile } from './exclude-file.ts';
import type { LaneStats } from './lane-report.ts';
import { withoutLinkedAncestors } from './linked-ancestors.ts';
import { planBatch, planRuns, renameTargets, type UpdatePlan } from './plan-batch.ts';
import { planRename, planRenameDelete, type RenameTarget, totalFileSizeFromStats } from './plan-rename.ts';
import { lastLines, type ProcessRunner } from './process-runner.ts';
import { bytesSentFromStats, type CommandContext, type RsyncInvocation } from './rsync-command.ts';
import { classifyRun, type RsyncVerdict } from './rsync-exit.ts';

/** What one attempt at a batch needs: the lane's seams and settings, and this attempt's context. */
export interface BatchEnv {
  readonly remoteId: string;
  readonly runner: ProcessRunner;
  readonly rsyncPath: string;
  readonly rootBytes: string;
  readonly disk: DiskProbe;
  readonly untranslated: readonly FilterRegex[];
  readonly fullSyncFilters: readonly string[];
  readonly log: Logger;
  readonly progress?: ((remoteId: string) => ProgressSink) | undefined;
  readonly afterPlan?: ((batch: Batch) => Promise<void>) | undefined;
  readonly signal: AbortSignal;
  readonly stats: LaneStats;
  /** The context of this attempt (without the maxDelete cap once the operator released a hold). */
  readonly ctx: CommandContext;
  /** Which deletions must wait now. */
  readonly verdict: DeletionVerdict;
  /** Renamed paths may go with the old name as basis (not in a batch retried after exit 23). */
  readonly renames: boolean;
  /** Keeps deletions aside (RemoteLane's hold). */
  readonly hold: (batch: Batch, reason: string) => void;
}

export interface SyncSummary {
  readonly updated: readonly RelPath[];
  readonly deleted: readonly RelPath[];
  readonly runs: readonly RsyncInvocation[];
  readonly bytes: number;
  readonly renamed: { readonly paths: number; readonly saved: number; readonly runs: number };
}

/** How an attempt ended; the lane decides what follows. */
export type BatchResult =
  | { readonly kind: 'held' }
  | { readonly kind: 'aborted' }
  | { readonly kind: 'synced'; readonly summary: SyncSummary; readonly recheck: boolean }
  | { readonly kind: 'old-receiver' }
  | { readonly kind: 'partial'; readonly run: RsyncInvocation['kind']; readonly error: string }
  | { readonly kind: 'max-delete'; readonly stderr: string }
  | { readonly kind: 'failed'; readonly verdict: RsyncVerdict; readonly exitCode: number | undefined; readonly error: string };

/** One attempt at a batch: planned from the disk, its rsync runs one after another, each run classified. */
export async function runBatch(batch: Batch, env: BatchEnv): Promise<BatchResult> {
  const { log, rootBytes, disk, verdict, ctx, stats } = env;
  const plan = await planBatch(batch, { disk, rootBytes, untranslated: env.untranslated, deletes: ctx.deletes, verdict });
  let { update, updated } = plan;
  if (plan.held !== null) {
    env.hold(plan.held, verdict.reason);
    // Only held deletions: nothing ran, so nothing succeeded, and the hold's recheck delay must stand.
    if (plan.full === null && update === null && plan.deletes.length === 0 && !plan.sweep) return { kind: 'held' };
  }
  await env.afterPlan?.(batch);
  if (update !== null) {
    const checked = await withoutLinkedAncestors(disk, rootBytes, update.paths, update.trees);
    if (checked.links.length > 0) {
      log.warn(
        { remote: env.remoteId, links: checked.links.map(displayPath), dropped: checked.dropped },
        `a directory of the tree became a symlink since the batch was planned: sending the link itself to ${env.remoteId}, nothing below it`,
      );
      updated = [...checked.paths, ...update.pruned];
    }
    update = { ...update, paths: checked.paths, trees: checked.trees };
  }
  const renamed = { paths: 0, saved: 0, sent: 0, runs: 0 };
  const renames = update !== null && env.untranslated.length === 0 && env.renames ? plannedRenames(env.ctx, batch, update) : [];
  const early = renames.length > 0 && plan.deletes.length > 0 ? startEarly(env, planRenameDelete(env.ctx, plan.deletes)) : null;
  let recheck = false;
  try {
    if (update !== null && renames.length > 0) {
      const done = await sendRenames(env, renames, renamed);
      if (done.size > 0) {
        const paths = update.paths.filter((p) => !done.has(p));
        update = paths.length === 0 ? null : { ...update, paths, trees: update.trees.filter((p) => !done.has(p)) };
      }
    }
    let bytes = renamed.sent;
    // Read by the update run, the full sync or the sweep; removed once the last run is done.
    const excludeFile = await writeExcludeFile(plan.excluded);
    const runs = planRuns(ctx, { ...plan, update }, env.fullSyncFilters, excludeFile?.path ?? null);
    // planRuns puts the deletions' run before the sweep (the other run of that kind).
    const deleteRun = plan.deletes.length > 0 ? runs.find((r) => r.kind === 'delete') : undefined;
    stats.batches++;
    try {
      for (const run of runs) {
        if (env.signal.aborted) {
          // A stop's grace period ended before this run started: nothing says the batch went, so it stays owed whole
          // (the stop persists it); runs that did go are repeated harmlessly.
          return { kind: 'aborted' };
        }
        if (run === deleteRun && early !== null && (await early.release(env))) continue;
        stats.rsyncRuns++;
        const progress = run.kind === 'full' ? env.progress?.(env.remoteId) : undefined;
        const result = await env.runner
          .run(env.rsyncPath, run.args, { input: run.input, signal: env.signal, onStdout: progress?.update })
          .finally(() => progress?.done());
        const { verdict, meaning, step } = classifyRun(run, result, env.rsyncPath, ctx.nanoseconds !== false);
        stats.runsByVerdict[verdict]++;
        const sent = bytesSentFromStats(result.stdout);
        stats.bytesSent += sent;
        bytes += sent;
        const stderr = lastLines(result.stderr, 3);
        const error = `${meaning}${stderr ? `: ${stderr}` : ''}`;
        if (step === 'vanished') {
          log.info({ remote: env.remoteId, run: run.kind, exitCode: 24, stderr }, `rsync ${run.kind} to ${env.remoteId}: ${meaning}`);
          recheck ||= run.kind === 'update';
          continue;
        }
        if (step === 'old-receiver') {
          log.warn(
            { remote: env.remoteId, stderr },
            `${env.remoteId} refuses --modify-window=-1 (rsync older than 3.1.3): comparing whole seconds from now on, so a ` +
              'same-size rewrite within the second of its last sync waits for the next full sync; upgrade rsync on the remote',
          );
          return { kind: 'old-receiver' };
        }
        if (step === 'partial') return { kind: 'partial', run: run.kind, error };
        if (step === 'max-delete') return { kind: 'max-delete', stderr };
        if (step === 'failed') {
          log.warn(
            { remote: env.remoteId, run: run.kind, exitCode: result.exitCode, signal: result.signal, verdict, stderr },
            `rsync ${run.kind} to ${env.remoteId} failed: ${meaning}`,
          );
          return { kind: 'failed', verdict, exitCode: result.exitCode, error };
        }
      }
    } finally {
      await excludeFile?.remove();
    }
    return { kind: 'synced', summary: { updated, deleted: plan.deleted, runs, bytes, renamed }, recheck };
  } finally {
    await early?.cancel();
  }
}

/** The batch's renamed paths that a rename run can send, each with that run. */
function plannedRenames(ctx: CommandContext, batch: Batch, update: UpdatePlan): PlannedRename[] {
  return renameTargets(batch, update.paths, update.trees).flatMap((target) => {
    const run = planRename(ctx, target);
    return run === null ? [] : [{ target, run }];
  });
}

interface PlannedRename {
  readonly target: RenameTarget;
  readonly run: RsyncInvocation;
}

/** A delete run started before its turn, its list held back (planRenameDelete). */
interface EarlyDelete {
  /** Writes the list and waits for the run: true if it deleted what it had to, false if the plain delete run must go. */
  release(env: BatchEnv): Promise<boolean>;
  /** Stops the run if it was never released (nothing reached its stdin, so it deleted nothing). */
  cancel(): Promise<void>;
}

function startEarly(env: BatchEnv, run: RsyncInvocation | null): EarlyDelete | null {
  if (run === null || run.input === null) return null;
  let write: (list: Buffer) => void = () => {};
  const list = new Promise<Buffer>((resolve) => {
    write = resolve;
  });
  const stop = new AbortController();
  const result = env.runner.run(env.rsyncPath, run.args, { input: list, signal: AbortSignal.any([env.signal, stop.signal]) });
  let released = false;
  return {
    async release({ stats, log, remoteId }) {
      released = true;
      write(run.input as Buffer);
      const outcome = await result;
      stats.rsyncRuns++;
      const { verdict, meaning, step } = classifyRun(run, outcome, env.rsyncPath, false);
      stats.runsByVerdict[verdict]++;
      if (step === 'ok' || step === 'vanished') return true;
      log.info(
        { remote: remoteId, exitCode: outcome.exitCode, stderr: lastLines(outcome.stderr, 3) },
        `rsync delete to ${remoteId}, started with the renames: ${meaning}; deleting with a plain delete run`,
      );
      return false;
    },
    async cancel() {
      if (!released) stop.abort();
      await result;
    },
  };
}

/**
 * The batch's renamed paths, each in its own run before the update and delete runs (the old name is deleted only
 * after the new one is complete). Returns the paths that went; any other outcome leaves a path to the update run,
 * which sends it as before.
 */
async function sendRenames(
  env: BatchEnv,
  renames: readonly PlannedRename[],
  tally: { paths: number; saved: number; sent: number; runs: number },
): Promise<Set<RelPath>> {
  const { stats } = env;
  const done = new Set<RelPath>();
  for (const { target, run } of renames) {
    if (env.signal.aborted) continue;
    stats.rsyncRuns++;
    tally.runs++;
    const result = await env.runner.run(env.rsyncPath, run.args, { input: null, signal: env.signal });
    const { verdict, meaning } = classifyRun(run, result, env.rsyncPath, false);
    stats.runsByVerdict[verdict]++;
    const sent = bytesSentFromStats(result.stdout);
    stats.bytesSent += sent;
    tally.sent += sent;
    if (verdict !== 'ok') {
      env.log.info(
        { remote: env.remoteId, path: displayPath(target.path), exitCode: result.exitCode, stderr: lastLines(result.stderr, 3) },
        `rsync rename to ${env.remoteId}: ${meaning}; sending ${displayPath(target.path)} as a plain update`,
      );
      continue;
    }
    const saved = Math.max(0, totalFileSizeFromStats(result.stdout) - sent);
    done.add(target.path);
    tally.paths++;
    tally.saved += saved;
    stats.renames++;
    stats.renameBytesSaved += saved;
  }
  return done;
}
