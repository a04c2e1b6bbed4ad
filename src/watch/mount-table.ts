import { readFile, realpath } from 'node:fs/promises';
import { fromBytes, type RelPath, toBuffer } from '../core/paths.ts';

/**
 * The mount points of /proc/self/mountinfo (its fifth field) as byte strings. The kernel writes a blank, tab,
 * newline or backslash in a path as `\ooo`; every other byte as it is.
 */
export function parseMountPoints(mountinfo: string): string[] {
  const points: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (field !== undefined)
      points.push(field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8))));
  }
  return points;
}

/**
 * Mount points strictly below the watch root (a byte string), relative to it: the kernel tells no watch of a mount,
 * so a disk mounted inside the tree after the start is found here. The root is resolved first, as the table holds
 * real paths. Null where the table or the root cannot be read now (not Linux, no /proc, EMFILE).
 */
export async function mountPointsBelow(rootBytes: string, table = '/proc/self/mountinfo'): Promise<RelPath[] | null> {
  let text: string;
  let root: string;
  try {
    text = (await readFile(table)).toString('latin1');
    root = fromBytes(await realpath(toBuffer(rootBytes), { encoding: 'buffer' }));
  } catch {
    return null;
  }
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const below = parseMountPoints(text).filter((p) => p.startsWith(prefix) && p.length > prefix.length);
  return [...new Set(below.map((p) => p.slice(prefix.length)))];
}
