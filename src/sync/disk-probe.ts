import { opendir } from 'node:fs/promises';
import { lstatFast } from '../core/lstat.ts';
import { fromBytes, toBuffer } from '../core/paths.ts';

/** What an lstat says a path is; `gone` also when it cannot be looked at. */
export type DiskEntryKind = 'dir' | 'link' | 'other' | 'gone';

/**
 * The disk as the lane's planning sees it: the real one in the daemon, a scripted one in unit tests. Paths and
 * names are byte strings (src/core/paths.ts).
 */
export interface DiskProbe {
  /** lstat: a link at the end of the path is not followed (links above it are, as always with a path). */
  kind(path: string): Promise<DiskEntryKind>;
  /** A directory's entries with their type from readdir (d_type, no stat); none when it is gone or unreadable. */
  entries(dir: string): AsyncIterable<{ readonly name: string; readonly dir: boolean; readonly link?: boolean }>;
  /** Whether the owner may write it (mode u+w); null when it cannot be looked at. Absent: not known. */
  ownerWritable?(path: string): Promise<boolean | null>;
}

export const realDisk: DiskProbe = {
  async kind(path) {
    try {
      const st = await lstatFast(toBuffer(path));
      return st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : 'other';
    } catch {
      return 'gone';
    }
  },
  async ownerWritable(path) {
    try {
      return ((await lstatFast(toBuffer(path))).mode & 0o200) !== 0;
    } catch {
      return null;
    }
  },
  async *entries(dir) {
    let handle: Awaited<ReturnType<typeof opendir>>;
    try {
      handle = await opendir(toBuffer(dir) as unknown as string, { encoding: 'buffer' as BufferEncoding });
    } catch {
      return;
    }
    for await (const entry of handle)
      yield { name: fromBytes(entry.name as unknown as Buffer), dir: entry.isDirectory(), link: entry.isSymbolicLink() };
  },
};
