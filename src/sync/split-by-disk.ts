import type { PendingEntry } from '../aggregate/aggregator.ts';
import type { RelPath } from '../core/paths.ts';
import type { DiskProbe } from './disk-probe.ts';
import type { DeleteTarget } from './rsync-command.ts';
import { mapLimit } from './map-limit.ts';

export interface DiskSplit {
  /** Paths that exist: sent. */
  readonly updates: RelPath[];
  /** The directories among them: sent with everything below them. */
  readonly trees: RelPath[];
  readonly deletes: DeleteTarget[];
  /** Existing directories that get a delete run only (removalsOnly). */
  readonly pruned: RelPath[];
}

/** Looks at the disk now (one lstat per entry): what exists is sent, what is gone is deleted. */
export async function splitByDisk(disk: DiskProbe, root: string, entries: readonly PendingEntry[]): Promise<DiskSplit> {
  const updates: RelPath[] = [];
  const trees: RelPath[] = [];
  const deletes: DeleteTarget[] = [];
  const pruned: RelPath[] = [];
  const kinds = await mapLimit(entries, 64, (e) => disk.kind(`${root}/${e.path}`));
  entries.forEach((e, i) => {
    const kind = kinds[i];
    if (kind === 'gone') {
      // We cannot know what the remote holds there: delete it with anything below it.
      deletes.push({ path: e.path, tree: true });
      return;
    }
    if (kind === 'dir' && e.removalsOnly) {
      // Only removals pending in it (a tree being removed): nothing to send, its delete run does it all.
      deletes.push({ path: e.path, tree: true });
      pruned.push(e.path);
      return;
    }
    updates.push(e.path);
    if (kind === 'dir') trees.push(e.path);
    if (kind === 'dir' && e.deletes) deletes.push({ path: e.path, tree: true });
  });
  return { updates, trees, deletes, pruned };
}
