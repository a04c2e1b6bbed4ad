import type { FilterRegex } from '../config/model.ts';
import { joinRel, type RelPath } from '../core/paths.ts';
import { sersyncSubject } from '../watch/path-filter.ts';
import type { DiskProbe } from './disk-probe.ts';

/**
 * A realtime filter regex that has no rsync pattern equivalent still must keep its paths off the remote during
 * directory and full syncs. Walk the subtrees about to be sent (readdir only, no stat) and return every matching
 * path, as a byte string like every name here (src/core/paths.ts): the regexes are compiled over byte strings too,
 * so a non-ASCII name matches as its UTF-8 (or any other) bytes. A path that appears between the walk and rsync's
 * own scan is only caught by the next event; that gap is as wide as the walk. A directory that is gone or
 * unreadable is skipped: rsync will say so in its own words.
 */
export async function excludedByRegexes(
  disk: DiskProbe,
  /** The watch root as a byte string. */
  root: string,
  subtrees: readonly RelPath[],
  regexes: readonly FilterRegex[],
): Promise<RelPath[]> {
  if (regexes.length === 0) return [];
  const found: RelPath[] = [];
  // A directory in both of sersync2's forms, as the path filter tests it (its start-up walk saw `dir/sub/`).
  const matches = (path: RelPath, dir: boolean) =>
    regexes.some((r) => r.regex.test(sersyncSubject(path)) || (dir && r.regex.test(`${path}/`)));
  const walk = async (dir: RelPath): Promise<void> => {
    const subdirs: RelPath[] = [];
    for await (const entry of disk.entries(dir === '' ? root : `${root}/${dir}`)) {
      const path = joinRel(dir, entry.name);
      if (matches(path, entry.dir)) found.push(path);
      else if (entry.dir) subdirs.push(path);
    }
    for (const sub of subdirs) await walk(sub);
  };
  for (const subtree of subtrees) await walk(subtree);
  return found;
}
