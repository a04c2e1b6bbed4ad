import type { Batch, PendingEntry } from '../aggregate/aggregator.ts';
import type { RelPath } from '../core/paths.ts';

/** Batches as one: a full sync swallows the rest (a sweep too); the oldest change counts. */
export function merged(parts: readonly Batch[]): Batch {
  const full = parts.some((b) => b.full);
  const sweep = !full && parts.some((b) => b.sweep === true);
  return {
    full,
    fullReason: parts.find((b) => b.fullReason)?.fullReason ?? '',
    entries: full ? [] : parts.flatMap((b) => b.entries),
    ...(sweep ? { sweep } : {}),
    ...(full ? absorbedBy(parts) : {}),
    since: Math.min(...parts.map((b) => b.since)),
  };
}

/** What a full sync made of these parts takes in: their absorbed paths and the entries it replaces (Batch.absorbed). */
function absorbedBy(parts: readonly Batch[]): { absorbed?: readonly RelPath[] | 'all' } {
  if (parts.some((b) => b.absorbed === 'all')) return { absorbed: 'all' };
  const paths = new Set(parts.flatMap((b) => [...((b.absorbed as readonly RelPath[] | undefined) ?? []), ...b.entries.map((e) => e.path)]));
  return paths.size > 0 ? { absorbed: [...paths] } : {};
}

/**
 * A parked (or held) batch and the next one that failed the same way, as one: one entry per path (flags or-ed,
 * removalsOnly only if both say so), and a full sync once it holds more than maxPendingPaths, as in the aggregator.
 */
export function mergedByPath(parts: readonly Batch[], maxPendingPaths: number): Batch {
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
    return { full: true, fullReason: 'more parked paths than maxPendingPaths', entries: [], absorbed: 'all', since: all.since };
  return { ...all, entries: [...byPath.values()] };
}
