import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { holderOf, isSersyncProcess } from './pid-file.ts';
import { type QueueFile, failLogBase, lockFileOf, readQueueFile } from './queue-file.ts';

/**
 * Earlier versions kept the queue as `<failLog base>.queue.json` in `<tuning stateDir>`, or beside the failLog
 * (in `sersync-ts-<uid>` when that directory was shared, as /tmp is). Such a file, if it holds pending entries or a
 * crash, is taken over once when it lies in a private directory of ours, holds only this instance's remotes and no
 * daemon still uses it; else it is named in the log and left alone. So is the file of this watch path under another
 * instance key in the state directory: the one a stop left after a reload changed the remotes.
 */
export function findEarlierQueue(
  opts: {
    failLogPath: string;
    stateDir: string | null;
    watch: string;
    remoteIds: readonly string[];
    ignoring?: string;
    log: Pick<Logger, 'warn'>;
  },
  stateDir: string,
  own: string,
): { file: string; data: QueueFile } | null {
  const base = failLogBase(opts.failLogPath);
  const name = `${base}.queue.json`;
  const dir = dirname(opts.failLogPath);
  const legacy = opts.stateDir ? [join(opts.stateDir, name)] : [join(dir, name), join(dir, `sersync-ts-${process.getuid?.() ?? 0}`, name)];
  const isSibling = (f: string) =>
    f.startsWith(`${base}-`) && f.endsWith('.queue.json') && /^[0-9a-f]{12}$/.test(f.slice(base.length + 1, -'.queue.json'.length));
  const siblings = readdirSync(stateDir)
    .filter(isSibling)
    .map((f) => join(stateDir, f))
    .filter((f) => f !== own && f !== opts.ignoring);
  for (const file of [...legacy, ...siblings]) {
    const sibling = !legacy.includes(file);
    if (!isPrivateDir(dirname(file))) continue;
    let data: QueueFile | 'unreadable' | null;
    try {
      data = readQueueFile(file);
    } catch {
      continue;
    }
    if (data === null || data === 'unreadable' || (sibling && data.watch !== opts.watch)) continue;
    const crashed = data.running || (sibling && existsSync(lockFileOf(file)));
    // Nothing owed and a clean stop: nothing to carry over, and nothing to take from a daemon that may come back.
    if (!crashed && Object.keys(data.remotes).length === 0) continue;
    const foreign = Object.keys(data.remotes).filter((id) => !opts.remoteIds.includes(id));
    const holder = sibling ? holderOf(lockFileOf(file)) : null;
    const inUse = holder !== null || (data.running && isSersyncProcess(data.pid));
    if (foreign.length === 0 && !inUse) return { file, data: { ...data, running: crashed } };
    opts.log.warn(
      { file, foreignRemotes: foreign, inUseBy: inUse ? (holder ?? data.pid) : null },
      'an earlier retry queue is not taken over: it holds other remotes, or a running daemon uses it',
    );
  }
  return null;
}

function isPrivateDir(dir: string): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === (process.getuid?.() ?? 0) && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}
