import type { RelPath } from '../core/paths.ts';
import type { DiskEntryKind, DiskProbe } from './disk-probe.ts';
import { mapLimit } from './map-limit.ts';

export interface LinkedAncestorsPlan {
  /** The paths to send: those below real directories only, plus each symlink found in place of a directory. */
  readonly paths: RelPath[];
  readonly trees: RelPath[];
  /** The symlinks that replaced a directory of the tree since the plan (sent as links). */
  readonly links: RelPath[];
  /** How many listed paths lay below one of them (not sent). */
  readonly dropped: number;
}

/**
 * rsync reads a `--files-from` entry through its ancestors as they are when it runs, following a symlink that
 * replaced a directory since the plan (`mv a a.d; ln -s /etc a`: `/etc/shadow` would be mirrored as `a/shadow`);
 * rsync 3.5 refuses only a link owned by another user. So right before an update run every ancestor of every listed
 * path is looked at without following links, top down (one lstat per ancestor and batch), and a path below a
 * symlink is replaced by the symlink itself, which rsync then sends as a link, as a mirror of the source should.
 * What the remote held below the old directory goes by the usual rules (`--force` replaces it with the link when
 * removals propagate). A swap between this look and rsync's own read is still possible; this closes the window
 * between the plan and the run, which is as wide as the batch's planning.
 */
export async function withoutLinkedAncestors(
  disk: DiskProbe,
  /** The watch root as a byte string (src/core/paths.ts); the root itself may be a link. */
  root: string,
  paths: readonly RelPath[],
  trees: readonly RelPath[],
): Promise<LinkedAncestorsPlan> {
  const kinds = new Map<RelPath, Promise<DiskEntryKind>>();
  const kind = (dir: RelPath) => {
    let k = kinds.get(dir);
    if (k === undefined) {
      k = disk.kind(`${root}/${dir}`);
      kinds.set(dir, k);
    }
    return k;
  };
  const linkAbove = async (path: RelPath): Promise<RelPath | null> => {
    for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
      const ancestor = path.slice(0, i);
      const k = await kind(ancestor);
      if (k === 'link') return ancestor;
      // Gone or no directory: rsync cannot read through it either, and says so (a vanished path).
      if (k !== 'dir') return null;
    }
    return null;
  };
  const found = await mapLimit(paths, 64, linkAbove);
  const links = [...new Set(found.filter((l): l is RelPath => l !== null))];
  if (links.length === 0) return { paths: [...paths], trees: [...trees], links, dropped: 0 };
  const kept = paths.filter((_, i) => found[i] === null);
  const listed = new Set(kept);
  const keptTrees = new Set(trees);
  return {
    paths: [...kept, ...links.filter((l) => !listed.has(l))],
    trees: kept.filter((p) => keptTrees.has(p)),
    links,
    dropped: paths.length - kept.length,
  };
}
