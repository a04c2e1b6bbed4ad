import type { Batch, PendingEntry } from '../aggregate/aggregator.ts';
import type { FilterRegex } from '../config/model.ts';
import type { RelPath } from '../core/paths.ts';
import { type DeletionVerdict, isHeld } from './deletion-guard.ts';
import type { DiskProbe } from './disk-probe.ts';
import { excludedByRegexes } from './excluded-walk.ts';
import type { RenameTarget } from './plan-rename.ts';
import {
  type CommandContext,
  type DeleteTarget,
  planDelete,
  planFull,
  planUpdate,
  protectRule,
  type RsyncInvocation,
} from './rsync-command.ts';
import { splitByDisk } from './split-by-disk.ts';

export interface PlanInput {
  readonly disk: DiskProbe;
  /** The watch root as a byte string. */
  readonly rootBytes: string;
  /** Realtime filter regexes without an rsync equivalent (a walk before tree and full syncs). */
  readonly untranslated: readonly FilterRegex[];
  /** The remote gets deletions (ctx.deletes). */
  readonly deletes: boolean;
  /** Which deletions must wait now (DeletionGuard). */
  readonly verdict: DeletionVerdict;
}

export interface UpdatePlan {
  readonly paths: RelPath[];
  /** The directories among them: sent with everything below them. */
  readonly trees: RelPath[];
  /** Existing directories that get a delete run only. */
  readonly pruned: RelPath[];
}

/** A batch looked at on the disk: what is sent, deleted and held. No process runs here. */
export interface BatchPlan {
  /** A full sync's run: `sync` with its deletions, `send` without them (they are held as a sweep), or none. */
  readonly full: 'sync' | 'send' | null;
  readonly update: UpdatePlan | null;
  /** Deletions that go (the delete run). */
  readonly deletes: readonly DeleteTarget[];
  /** The whole tree's deletions go too, after the update and delete runs (Batch.sweep). */
  readonly sweep: boolean;
  /** Deletions that wait for the guard, as a batch (entries, or a sweep); or those a full sync owes below mount points. */
  readonly held: Batch | null;
  /** Paths the untranslated filter regexes keep out of the update, full or sweep run. */
  readonly excluded: RelPath[];
  readonly updated: RelPath[];
  readonly deleted: RelPath[];
  /** Exclude rules that keep a full sync or sweep off the directories the guard holds (protectRule). */
  readonly protect: string[];
}

/**
 * Looks at the disk now: what exists is sent, what is gone is deleted, unless the guard holds that deletion. Only
 * deletions wait: a full sync whose deletions are held as a whole still sends (without --delete), and owes them as a
 * sweep.
 */
export async function planBatch(batch: Batch, input: PlanInput): Promise<BatchPlan> {
  const { disk, rootBytes, untranslated, verdict } = input;
  const treeHeld = input.deletes && holdsTree(verdict);
  const protect = treeHeld ? [] : (verdict.below.map(protectRule) as string[]);
  const owedBelow = treeHeld ? [] : verdict.below.map((path) => ({ path, tree: true, deletes: true }));
  const none = { full: null, update: null, deletes: [], sweep: false, held: null, excluded: [], updated: [], deleted: [], protect: [] };
  const wholeTree = () => excludedByRegexes(disk, rootBytes, [''], untranslated);
  // What lies where an unmounted disk was may be stale (the directory under it): nothing is sent from it either.
  if (verdict.rootSuspect) return { ...none, held: batch };
  if (batch.full) {
    if (treeHeld) {
      const held = heldBatch(batch.since, [], true);
      // An empty, unreadable or vanished root has nothing to send.
      if (!(await hasEntries(disk, rootBytes))) return { ...none, held };
      return { ...none, full: 'send', excluded: await wholeTree(), held };
    }
    const held = owedBelow.length > 0 ? heldBatch(batch.since, owedBelow, false) : null;
    return { ...none, full: 'sync', excluded: await wholeTree(), held, protect };
  }
  // At and below a mount point that is none now, the bare directory may hold stale copies: its changes wait whole.
  const lost = verdict.below.length > 0 ? batch.entries.filter((e) => isHeld({ ...verdict, all: false }, e.path)) : [];
  const lostSet = new Set(lost);
  const split = await splitByDisk(disk, rootBytes, lost.length > 0 ? batch.entries.filter((e) => !lostSet.has(e)) : batch.entries);
  // A directory that only lost entries still exists: reported as updated too, so no plugin hears "deleted".
  const updated = [...split.updates, ...split.pruned];
  const sweep = batch.sweep === true && input.deletes && !treeHeld;
  let deleted = split.deletes.map((d) => d.path);
  const excluded = sweep
    ? await wholeTree()
    : split.updates.length > 0
      ? await excludedByRegexes(disk, rootBytes, split.trees, untranslated)
      : [];
  const update = split.updates.length > 0 ? { paths: split.updates, trees: split.trees, pruned: split.pruned } : null;
  let deletes: DeleteTarget[] = [];
  let waiting: PendingEntry[] = [...(sweep ? owedBelow : []), ...lost];
  if (split.deletes.length > 0 && input.deletes) {
    deletes = split.deletes.filter((d) => !isHeld(verdict, d.path));
    if (deletes.length < split.deletes.length) {
      const wait = new Set(split.deletes.filter((d) => isHeld(verdict, d.path)).map((d) => d.path));
      waiting = [...waiting, ...batch.entries.filter((e) => wait.has(e.path))];
      deleted = deleted.filter((p) => !wait.has(p));
    }
  }
  const sweepHeld = batch.sweep === true && input.deletes && treeHeld;
  const held = waiting.length > 0 || sweepHeld ? heldBatch(batch.since, waiting, sweepHeld) : null;
  // The same rules keep a directory sent whole (an ancestor of the lost mount point) off the bare directory.
  return { full: null, update, deletes, sweep, held, excluded, updated, deleted, protect };
}

/** Every deletion of the tree waits: the root looks unmounted or empty, maxDelete waits for the operator, or a lost mount point's name has no exclude rule. */
export function holdsTree(verdict: DeletionVerdict): boolean {
  return verdict.all || verdict.below.some((path) => protectRule(path) === null);
}

function heldBatch(since: number, entries: readonly PendingEntry[], sweep: boolean): Batch {
  return { full: false, fullReason: '', entries, ...(sweep ? { sweep } : {}), since };
}

async function hasEntries(disk: DiskProbe, dir: string): Promise<boolean> {
  for await (const _ of disk.entries(dir)) return true;
  return false;
}

/** The renamed paths among those about to be sent, each with the name it was moved from. */
export function renameTargets(batch: Batch, paths: readonly RelPath[], trees: readonly RelPath[]): RenameTarget[] {
  const sending = new Set(paths);
  const isDir = new Set(trees);
  return batch.entries.flatMap((e) =>
    e.renamedFrom !== undefined && sending.has(e.path) ? [{ path: e.path, from: e.renamedFrom, isDir: isDir.has(e.path) }] : [],
  );
}

/** The batch's rsync runs in order: the update run, then the delete run and the sweep; or the one full sync. */
export function planRuns(
  ctx: CommandContext,
  plan: Pick<BatchPlan, 'full' | 'update' | 'deletes' | 'sweep' | 'protect'>,
  fullSyncFilters: readonly string[],
  excludeFrom: string | null,
): RsyncInvocation[] {
  const runs: RsyncInvocation[] = [];
  if (plan.update !== null) runs.push(planUpdate(ctx, plan.update.paths, plan.protect, new Set(plan.update.trees), excludeFrom));
  // Below a mount point that is none now, a full sync or sweep neither deletes nor sends (protectRule); those deletions wait.
  const filters = [...plan.protect, ...fullSyncFilters];
  if (plan.full !== null) runs.push(planFull(plan.full === 'send' ? { ...ctx, deletes: false } : ctx, filters, excludeFrom));
  if (plan.deletes.length > 0) runs.push(planDelete(ctx, plan.deletes, plan.protect));
  if (plan.sweep) runs.push(planFull(ctx, filters, excludeFrom, 'sweep'));
  return runs;
}
