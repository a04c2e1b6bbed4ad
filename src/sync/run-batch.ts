import type PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Batch } from '../aggregate/aggregator.ts';
import type { FilterRegex } from '../config/model.ts';
import type { Clock } from '../core/clock.ts';
import { displayPath, joinRel, type RelPath } from '../core/paths.ts';
import type { ProgressSink } from '../observe/progress.ts';
import type { DeletionVerdict } from './deletion-guard.ts';
import type { DiskProbe } from './disk-probe.ts';
import { writeExcludeFile } from './exclude-file.ts';
import type { LaneStats } from './lane-report.ts';
import { withoutLinkedAncestors } from './linked-ancestors.ts';
import { planBatch, planRuns, renameTargets, type UpdatePlan } from './plan-batch.ts';
import { linksBelow } from './links-below.ts';
import {
  planRename,
  planRenameDelete,
  type RenameTarget,
  LEAD_MADE_DIRECTORY,
  renameLeavesLinks,
  splitRename,
  type TopEntry,
  totalFileSizeFromStats,
} from './plan-rename.ts';
import { mapLimit } from './map-limit.ts';
import { lastLines, type ProcessResult, type ProcessRunner } from './process-runner.ts';
import { startEarly } from './early-delete.ts';
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
  readonly isExcluded?: ((path: RelPath, isDir: boolean) => boolean) | undefined;
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
  readonly clock: Clock;
  /** Renamed paths may go with the old name as basis (not in a batch retried after exit 23). */
  readonly renames: boolean;
  /** How many runs may send one renamed directory side by side (LaneSettings.renameWays). */
  readonly renameWays?: number | undefined;
  /** The shared -n limiter: parts of a rename take free slots of it. */
  readonly limiter?: PQueue | undefined;
  /** Keeps deletions aside (RemoteLane's hold). */
  readonly hold: (batch: Batch, reason: string) => void;
}

export interface SyncSummary {
  readonly updated: readonly RelPath[];
  readonly deleted: readonly RelPath[];
  readonly runs: readonly RsyncInvocation[];
  readonly bytes: number;
  readonly renamed: { readonly paths: number; readonly saved: number; readonly runs: number };
  /** The directories among `updated`, where the batch's entries do not say (a full sync's absorbed paths). */
  readonly dirs?: readonly RelPath[] | undefined;
  /** A full sync covered the whole tree (no excludes of its own, no held deletions). */
  readonly whole?: boolean;
  /** The receiver refused a rename's early delete run (exit 1 or 2: too old, or 3.4.3): the plain form from now on. */
  readonly earlyRefused?: boolean;
  /** What the renames in parts said about the remote; absent: no rename went in parts. */
  readonly split?: SplitReport | undefined;
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
  const renames = update !== null && env.untranslated.length === 0 && env.renames ? await plannedRenames(env, batch, update) : [];
  const early =
    renames.length > 0 && plan.deletes.length > 0 && plan.protect.length === 0 && !env.signal.aborted
      ? startEarly(env, planRenameDelete(env.ctx, plan.deletes))
      : null;
  let recheck = false;
  let earlyRefused = false;
  let split: SplitReport | undefined;
  try {
    if (update !== null && renames.length > 0) {
      const sentRenames = await sendRenames(env, renames, renamed);
      const done = sentRenames.done;
      split = sentRenames.split;
      if (done.size > 0) {
        const links = renames.flatMap((r) => (done.has(r.target.path) ? r.links : []));
        const paths = [...update.paths.filter((p) => !done.has(p)), ...links];
        update = paths.length === 0 ? null : { ...update, paths, trees: update.trees.filter((p) => !done.has(p)) };
      }
    }
    let bytes = renamed.sent;
    // Read by the update run, the full sync or the sweep; removed once the last run is done.
    const excludeFile = await writeExcludeFile(plan.excluded);
    const runs = planRuns(ctx, { ...plan, update }, env.fullSyncFilters, excludeFile?.path ?? null);
    // planRuns puts the deletions' run before the sweep (the other run of that kind).
    const deleteRun = plan.deletes.length > 0 ? runs.find((r) => r.kind === 'delete') : undefined;
    const ran: RsyncInvocation[] = [];
    stats.batches++;
    try {
      for (const run of runs) {
        if (env.signal.aborted) {
          // A stop's grace period ended before this run started: nothing says the batch went, so it stays owed whole
          // (the stop persists it); runs that did go are repeated harmlessly.
          return { kind: 'aborted' };
        }
        if (run === deleteRun && early !== null) {
          const { step, error, stderr, refused } = await early.release();
          if (step === 'ok' || step === 'vanished') {
            ran.push(early.run);
            continue;
          }
          // What the plain run would answer too: a second run would delete as many again, or fail on the same paths.
          if (step === 'max-delete') return { kind: 'max-delete', stderr };
          if (step === 'partial') return { kind: 'partial', run: 'delete', error };
          earlyRefused = refused;
          if (env.signal.aborted) return { kind: 'aborted' };
        }
        ran.push(run);
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
    // A full sync's paths are those it took in (Batch.absorbed): the plugin hears of them as a batch's.
    // A full sync that excluded paths (<crontabfilter>, a lost mount point) or held its deletions covered the tree
    // only in part: the plugin hears of those paths with the batches that do carry them.
    const whole = plan.full === 'sync' && plan.protect.length === 0 && env.fullSyncFilters.length === 0;
    const told = batch.full
      ? whole
        ? await absorbedOnDisk(disk, rootBytes, batch.absorbed)
        : { updated: [], deleted: [], dirs: [] }
      : { updated, deleted: plan.deleted, dirs: undefined };
    return { kind: 'synced', summary: { ...told, runs: ran, bytes, renamed, earlyRefused, split, whole }, recheck };
  } finally {
    await early?.cancel();
  }
}

/** The absorbed paths of a full sync that went, as the disk has them now; the root for 'all'. */
async function absorbedOnDisk(
  disk: DiskProbe,
  rootBytes: string,
  absorbed: Batch['absorbed'],
): Promise<{ updated: RelPath[]; deleted: RelPath[]; dirs: RelPath[] | undefined }> {
  if (absorbed === 'all') return { updated: [''], deleted: [], dirs: [''] };
  const paths = absorbed ?? [];
  const kinds = await mapLimit(paths, 64, (p) => disk.kind(`${rootBytes}/${p}`));
  const at = (kind: string) => paths.filter((_, i) => kinds[i] === kind);
  return { updated: paths.filter((_, i) => kinds[i] !== 'gone'), deleted: at('gone'), dirs: at('dir') };
}

/** The batch's renamed paths that a rename run can send, each with that run (a renamed link holds no data). */
async function plannedRenames(env: BatchEnv, batch: Batch, update: UpdatePlan): Promise<PlannedRename[]> {
  const { ctx, disk, rootBytes } = env;
  const planned: PlannedRename[] = [];
  for (const target of renameTargets(batch, update.paths, update.trees)) {
    if (!target.isDir && (await disk.kind(`${rootBytes}/${target.path}`)) === 'link') continue;
    const links = target.isDir && renameLeavesLinks(ctx) ? await linksBelow(disk, rootBytes, target.path, env.isExcluded) : [];
    // --copy-unsafe-links would send an unsafe link's target in the rename run, whatever --no-links says.
    if (links.length > 0 && ctx.rsync.commonParams.includes('--copy-unsafe-links')) continue;
    const run = planRename(ctx, target, links.length > 0);
    if (run === null) continue;
    planned.push({ target, run, links, entries: (await splittable(env, target)) ? await topEntries(env, target.path) : [] });
  }
  return planned;
}

/**
 * Whether a renamed directory may go in parts: not to an rsync daemon (a module's `max connections` could refuse the
 * runs beyond the first), nor where the directory lacks u+w (a receiver that is not root gives each run write access
 * to it in turn, and one run's reset would fail the others).
 */
async function splittable(env: BatchEnv, target: RenameTarget): Promise<boolean> {
  const { ctx } = env;
  if (!target.isDir || ctx.remote.kind === 'daemon' || ctx.splitRenames === false || (env.renameWays ?? 1) < 2) return false;
  return (await env.disk.ownerWritable?.(`${env.rootBytes}/${target.path}`)) !== false;
}

/** The entries directly below a renamed directory that the path filter passes, links left out (they hold no data). */
async function topEntries(env: BatchEnv, dir: RelPath): Promise<TopEntry[]> {
  const entries: TopEntry[] = [];
  for await (const e of env.disk.entries(`${env.rootBytes}/${dir}`)) {
    if (e.link !== true && env.isExcluded?.(joinRel(dir, e.name), e.dir) !== true) entries.push({ name: e.name, dir: e.dir });
  }
  return entries;
}

interface PlannedRename {
  readonly target: RenameTarget;
  readonly run: RsyncInvocation;
  /** Symbolic links below the renamed directory that its run leaves out: the update run sends them. */
  readonly links: readonly RelPath[];
  /** The directory's top entries that parts may take (splitRename); none: one run. */
  readonly entries: readonly TopEntry[];
}

/** What a batch's renames in parts said about the remote (RemoteLane keeps one run per rename on either). */
export interface SplitReport {
  /** A part beside a lead that went could not start (an ssh or a wrapper that allows one session). */
  readonly refused: string | null;
  /** When the latest lead said it made the directory, in ms after its start (mostly its remote side starting). */
  readonly startMs: number | null;
}

/**
 * Leads whose first line comes later than this, twice in a row, end the parts for the remote: there each run's own
 * start (a login shell that runs pyenv, conda or rvm init) costs more than a second run saves, and the shells
 * starting together delay the lead.
 */
export const SLOW_START_MS = 150;

/**
 * The batch's renamed paths, each in its own runs before the update and delete runs (the old name is deleted only
 * after the new one is complete). Returns the paths that went; any other outcome leaves a path to the update run,
 * which sends it as before.
 */
async function sendRenames(
  env: BatchEnv,
  renames: readonly PlannedRename[],
  tally: { paths: number; saved: number; sent: number; runs: number },
): Promise<{ done: Set<RelPath>; split?: SplitReport }> {
  const { stats } = env;
  const done = new Set<RelPath>();
  let refused: string | null = null;
  let startMs: number | null = null;
  let measured = false;
  for (const { target, run, entries } of renames) {
    if (env.signal.aborted) continue;
    // Parts take free -n slots only, never wait for one: the batch holding its own slot would wait on them.
    const free = env.limiter ? env.limiter.concurrency - env.limiter.pending : 0;
    const ways = Math.min(env.renameWays ?? 1, 1 + free);
    const runs = (entries.length > 0 && splitRename(run, entries, ways, env.ctx.rsync.commonParams)) || [run];
    stats.rsyncRuns += runs.length;
    tally.runs += runs.length;
    const { results, firstLineMs } = await runTogether(env, runs);
    let ok = true;
    let total = 0;
    let sent = 0;
    for (const [i, result] of results.entries()) {
      const { verdict, meaning } = classifyRun(runs[i] as RsyncInvocation, result, env.rsyncPath, false);
      stats.runsByVerdict[verdict]++;
      const bytes = bytesSentFromStats(result.stdout);
      stats.bytesSent += bytes;
      tally.sent += bytes;
      sent += bytes;
      total += totalFileSizeFromStats(result.stdout);
      if (verdict !== 'ok' && ok) {
        ok = false;
        env.log.info(
          { remote: env.remoteId, path: displayPath(target.path), exitCode: result.exitCode, stderr: lastLines(result.stderr, 3) },
          `rsync rename to ${env.remoteId}: ${meaning}; sending ${displayPath(target.path)} as a plain update`,
        );
      }
    }
    const [lead, ...rest] = results;
    if (lead?.exitCode === 0 && rest.some((r) => r.spawnError !== undefined || NOT_STARTED.has(r.exitCode ?? -1))) {
      refused ??= 'a rename run beside the first could not start (see the line before)';
    }
    if (lead?.exitCode === 0 && rest.length > 0 && firstLineMs === null) {
      refused ??= 'the first rename run printed no line saying it made the directory, so the others were stopped';
    }
    if (rest.length > 0) {
      measured = true;
      if (firstLineMs !== null) startMs = firstLineMs;
    }
    if (!ok) continue;
    const saved = Math.max(0, total - sent);
    done.add(target.path);
    tally.paths++;
    tally.saved += saved;
    stats.renames++;
    stats.renameBytesSaved += saved;
  }
  return { done, ...(measured ? { split: { refused, startMs } } : {}) };
}

/** Exit codes of a run that did not get to transfer: syntax, protocol, daemon start, stream, ssh. */
const NOT_STARTED = new Set([1, 2, 5, 12, 255]);

/**
 * A rename's runs: the lead at once; the parts (each in a free -n slot) connected at once and given their list when
 * the lead's output shows the directory exists. A lead that ends without it stops them unreleased.
 */
async function runTogether(
  env: BatchEnv,
  [lead, ...rest]: readonly [RsyncInvocation, ...RsyncInvocation[]],
): Promise<{ results: ProcessResult[]; firstLineMs: number | null }> {
  const started = env.clock.now();
  let firstLineMs: number | null = null;
  let partial = '';
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const stop = new AbortController();
  const onStdout = (chunk: string) => {
    if (firstLineMs !== null) return;
    const lines = (partial + chunk).split('\n');
    partial = (lines.pop() ?? '').slice(-4096);
    if (!lines.some((line) => LEAD_MADE_DIRECTORY.test(line))) return;
    firstLineMs = env.clock.now() - started;
    release();
  };
  const settled = (run: Promise<ProcessResult>) =>
    run.catch((err: unknown): ProcessResult => ({ stdout: '', stderr: '', durationMs: 0, spawnError: String(err) }));
  const first = settled(
    env.runner.run(env.rsyncPath, lead.args, { input: null, signal: env.signal, ...(rest.length > 0 ? { onStdout } : {}) }),
  );
  const signal = AbortSignal.any([env.signal, stop.signal]);
  const others = rest.map((run) => {
    const part = () => settled(env.runner.run(env.rsyncPath, run.args, { input: released.then(() => run.input as Buffer), signal }));
    return env.limiter ? (env.limiter.add(part) as Promise<ProcessResult>) : part();
  });
  void first.then(() => {
    if (firstLineMs === null) stop.abort();
  });
  return { results: await Promise.all([first, ...others]), firstLineMs };
}
