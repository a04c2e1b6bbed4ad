import assert from 'node:assert/strict';
import type { NativeInotify } from '../../../src/watch/dir-watch-backend.ts';

/**
 * A scripted native addon (native/inotify.c) for InotifyInstance: `wds` says which watch descriptor each path gets
 * (the kernel gives the same one for the same directory), `read` hands the instance one read of the kernel, `ev`
 * encodes one event, `end` is the reader's end marker after finish(). What the instance asked is in `calls`.
 */
export function scriptedAddon(wds: Record<string, number> = { '/w': 7 }) {
  let feed: ((chunk: Buffer | null, errno: number | null) => void) | undefined;
  const calls: string[] = [];
  const addon: NativeInotify = {
    open: (cb) => {
      feed = cb;
      return {};
    },
    addWatch: (_handle, path) => {
      const wd = wds[path.toString()];
      if (wd === undefined) throw Object.assign(new Error('No such file or directory'), { errno: 2 });
      calls.push(`add ${path.toString()} ${wd}`);
      return wd;
    },
    rmWatch: (_handle, wd) => void calls.push(`rm ${wd}`),
    finish: () => void calls.push('finish'),
    close: () => void calls.push('close'),
    listDirs: () => Buffer.alloc(0),
  };
  const ev = (mask: number, name: string, wd = 7) => {
    const n = Buffer.alloc(name === '' ? 0 : 16);
    n.write(name);
    const head = Buffer.alloc(16);
    head.writeInt32LE(wd, 0);
    head.writeUInt32LE(mask, 4);
    head.writeUInt32LE(n.length, 12);
    return Buffer.concat([head, n]);
  };
  const read = (...events: Buffer[]) => {
    assert.ok(feed, 'the instance did not open the reader');
    feed(Buffer.concat(events), null);
  };
  const end = () => {
    assert.ok(feed, 'the instance did not open the reader');
    feed(null, -1);
  };
  return { addon, calls, ev, read, end };
}
