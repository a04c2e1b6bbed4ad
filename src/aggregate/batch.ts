import type { RelPath } from '../core/paths.ts';

// What goes into the aggregator (a change hint) and what comes out of it (a batch of pending entries).

export interface AggregatorLimits {
  readonly quietMs: number;
  readonly maxWaitMs: number;
  readonly maxChildrenPerDir: number;
  readonly maxPendingPaths: number;
}

/**
 * What the watcher said about a path. `removed`: it went away (or may have); `created`: it is new in this window;
 * `deletes`: something below it may have gone, without the path itself being removed.
 */
export interface ChangeHint {
  readonly tree: boolean;
  readonly removed: boolean;
  readonly created: boolean;
  readonly deletes?: boolean;
  /** The path was moved here from this one inside the tree (a paired move): see PendingEntry.renamedFrom. */
  readonly renamedFrom?: RelPath;
}

export interface PendingEntry {
  readonly path: RelPath;
  /** Sync everything below the path (a new or collapsed directory), not just the entry itself. */
  readonly tree: boolean;
  /** Something at or below the path was removed, so the remote may hold files to delete. */
  readonly deletes: boolean;
  /**
   * Every change pending at and below the path was a removal (an `rm -rf` under way): a directory that still
   * exists then needs its delete run only, nothing in it is new. Absent means false.
   */
  readonly removalsOnly?: boolean;
  /**
   * The path was moved here from this one in this window, and the old name's removal is pending in the same batch:
   * the remote's copy of the old name can serve as the basis of the new one (sync/plan-rename.ts). Such entries come
   * last in a batch, in the order of the moves. Absent: a plain entry (a put-back entry is always plain).
   */
  readonly renamedFrom?: RelPath;
}

export interface Batch {
  readonly full: boolean;
  /** Why a full sync was asked for (first reason), when `full`. */
  readonly fullReason: string;
  readonly entries: readonly PendingEntry[];
  /**
   * The remote may hold files anywhere in the tree that are gone here: the deletions of a full sync, held while the
   * root looked unmounted or empty, and sent later as one pass over the tree that deletes and sends nothing. Absent
   * means false; a full sync includes it.
   */
  readonly sweep?: boolean;
  /** Clock time of the oldest change in the batch. */
  readonly since: number;
  /**
   * A full sync's changed paths that it took in (changes while it was pending, entries it replaced), for the plugin
   * to hear of once it went; 'all' when they were more than maxPendingPaths (the plugin hears of the root). Absent:
   * none known.
   */
  readonly absorbed?: readonly RelPath[] | 'all';
}
