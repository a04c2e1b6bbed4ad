import { opendir } from 'node:fs/promises';
import type { FilterRegex } from '../config/model.ts';
import { fromBytes, joinRel, toBuffer, type RelPath } from '../core/paths.ts';
import { sersyncSubject } from '../watch/path-filter.ts';

/**
 * A realtime filter regex that has no rsync pattern equivalent still must keep its paths off the remote during
 * directory and full syncs. Walk the subtrees about to be sent (readdir only, no stat) and return every matching
 * path, as a byte string like every name here (src/core/paths.ts): the regexes are compiled over byte strings too,
 * so a non-ASCII name matches as its UTF-8 (or any other) bytes. A path that appears between the walk and rsync's
 * own scan is only caught by the next event; that gap is as wide as the walk.
 */
export async function excludedByRegexes(
  /** The watch root as a byte string. */
  root: string,
  subtrees: readonly RelPath[],
  regexes: readonly FilterRegex[],
): Promise<RelPath[]> {
  if (regexes.length === 0) return [];
  const found: RelPath[] = [];
  const matches = (path: RelPath) => regexes.some((r) => r.regex.test(sersyncSubject(path)));
  const walk = async (dir: RelPath): Promise<void> => {
    let handle: Awaited<ReturnType<typeof opendir>>;
    try {
      handle = await opendir(toBuffer(dir === '' ? root : `${root}/${dir}`) as unknown as string, { encoding: 'buffer' as BufferEncoding });
    } catch {
      return; // gone or unreadable: rsync will say so in its own words
    }
    const subdirs: RelPath[] = [];
    for await (const entry of handle) {
      const path = joinRel(dir, fromBytes(entry.name as unknown as Buffer));
      if (matches(path)) found.push(path);
      else if (entry.isDirectory()) subdirs.push(path);
    }
    for (const sub of subdirs) await walk(sub);
  };
  for (const subtree of subtrees) await walk(subtree);
  return found;
}
