import type { Batch } from '../aggregate/aggregator.ts';
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
  /** A full sync whose deletions the guard holds as a whole: the batch waits. */
  readonly holdAll: boolean;
  readonly update: UpdatePlan | null;
  /** Deletions that go (the delete run). */
  readonly deletes: readonly DeleteTarget[];
  /** Entries whose deletions wait for the guard, as a batch; or the deletions a full sync owes below mount points. */
  readonly held: Batch | null;
  /** Paths the untranslated filter regexes keep out of the update or full run. */
  readonly excluded: RelPath[];
  readonly updated: RelPath[];
  readonly deleted: RelPath[];
  /** P rules that keep a full sync's --delete off the directories the guard holds. */
  readonly protect: string[];
}

/** Looks at the disk now: what exists is sent, what is gone is deleted, unless the guard holds that deletion. */
export async function planBatch(batch: Batch, input: PlanInput): Promise<BatchPlan> {
  const { disk, rootBytes, untranslated, verdict } = input;
  const protect = verdict.below.map(protectRule);
  const none = { holdAll: false, update: null, deletes: [], held: null, excluded: [], updated: [], deleted: [], protect: [] };
  if (batch.full) {
    if (verdict.all || protect.includes(null)) return { ...none, holdAll: true };
    const owed = verdict.below.map((path) => ({ path, tree: true, deletes: true }));
    return {
      ...none,
      excluded: await excludedByRegexes(disk, rootBytes, [''], untranslated),
      held: owed.length > 0 ? { full: false, fullReason: '', entries: owed, since: batch.since } : null,
      protect: protect as string[],
    };
  }
  const split = await splitByDisk(disk, rootBytes, batch.entries);
  // A directory that only lost entries still exists: reported as updated too, so no plugin hears "deleted".
  const updated = [...split.updates, ...split.pruned];
  let deleted = split.deletes.map((d) => d.path);
  let excluded: RelPath[] = [];
  let update: UpdatePlan | null = null;
  if (split.updates.length > 0) {
    excluded = await excludedByRegexes(disk, rootBytes, split.trees, untranslated);
    update = { paths: split.updates, trees: split.trees, pruned: split.pruned };
  }
  let deletes: DeleteTarget[] = [];
  let held: Batch | null = null;
  if (split.deletes.length > 0 && input.deletes) {
    deletes = split.deletes.filter((d) => !isHeld(verdict, d.path));
    if (deletes.length < split.deletes.length) {
      const wait = new Set(split.deletes.filter((d) => isHeld(verdict, d.path)).map((d) => d.path));
      held = { ...batch, entries: batch.entries.filter((e) => wait.has(e.path)) };
      deleted = deleted.filter((p) => !wait.has(p));
    }
  }
  return { holdAll: false, update, deletes, held, excluded, updated, deleted, protect: [] };
}

/** The renamed paths among those about to be sent, each with the name it was moved from. */
export function renameTargets(batch: Batch, paths: readonly RelPath[], trees: readonly RelPath[]): RenameTarget[] {
  const sending = new Set(paths);
  const isDir = new Set(trees);
  return batch.entries.flatMap((e) =>
    e.renamedFrom !== undefined && sending.has(e.path) ? [{ path: e.path, from: e.renamedFrom, isDir: isDir.has(e.path) }] : [],
  );
}

/** The batch's rsync runs in order: the update run first, then the delete run; or the one full sync. */
export function planRuns(
  ctx: CommandContext,
  batch: Batch,
  plan: { readonly update: UpdatePlan | null; readonly deletes: readonly DeleteTarget[]; readonly protect: readonly string[] },
  fullSyncFilters: readonly string[],
  excludeFrom: string | null,
): RsyncInvocation[] {
  const runs: RsyncInvocation[] = [];
  if (plan.update !== null) runs.push(planUpdate(ctx, plan.update.paths, [], new Set(plan.update.trees), excludeFrom));
  // Below a mount point that is none now, the full sync sends but deletes nothing; those deletions wait.
  if (batch.full) runs.push(planFull(ctx, [...plan.protect, ...fullSyncFilters], excludeFrom));
  else if (plan.deletes.length > 0) runs.push(planDelete(ctx, plan.deletes));
  return runs;
}
