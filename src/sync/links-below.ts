import { joinRel, type RelPath } from '../core/paths.ts';
import type { DiskProbe } from './disk-probe.ts';

/**
 * The symbolic links below the directory `subtree` (readdir's types only, no stat), outside what the path filter
 * excludes (an update run's list would create an excluded link's directories on the remote); none where it cannot
 * be read.
 */
export async function linksBelow(
  disk: DiskProbe,
  root: string,
  subtree: RelPath,
  isExcluded: (path: RelPath, isDir: boolean) => boolean = () => false,
): Promise<RelPath[]> {
  const links: RelPath[] = [];
  const walk = async (dir: RelPath): Promise<void> => {
    const subdirs: RelPath[] = [];
    for await (const entry of disk.entries(`${root}/${dir}`)) {
      const path = joinRel(dir, entry.name);
      if (isExcluded(path, entry.dir)) continue;
      if (entry.link === true) links.push(path);
      else if (entry.dir) subdirs.push(path);
    }
    for (const sub of subdirs) await walk(sub);
  };
  await walk(subtree);
  return links;
}
