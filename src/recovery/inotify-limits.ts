import { readdirSync, readlinkSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';

/**
 * inotify limits: sersync2 raised them unconditionally at every start. As root we raise them to the same
 * values when they are lower, and say so; otherwise we say which sysctl lines to run. An overflow costs every site a
 * full sync (and goes unnoticed on fs.watch), so a generous max_queued_events matters: the daemon has one inotify
 * instance, so one queue, for all its sites.
 */
const WANTED = { max_user_watches: 50_000_000, max_queued_events: 327_679 } as const;
/** What each limit is to this daemon, said with it. */
const ROLE: Record<keyof typeof WANTED, string> = {
  max_user_watches: 'one watch per directory of every site',
  max_queued_events: 'the one event queue of all sites',
};
type Limit = keyof typeof WANTED;

export interface InotifyLimits {
  readonly maxUserWatches: number | null;
  readonly maxQueuedEvents: number | null;
  readonly messages: readonly { level: 'info' | 'warn'; text: string }[];
}

export async function raiseInotifyLimits(opts: { procDir?: string; isRoot?: boolean } = {}): Promise<InotifyLimits> {
  const dir = opts.procDir ?? '/proc/sys/fs/inotify';
  const isRoot = opts.isRoot ?? process.getuid?.() === 0;
  const messages: { level: 'info' | 'warn'; text: string }[] = [];
  const values: Partial<Record<Limit, number | null>> = {};
  for (const name of Object.keys(WANTED) as Limit[]) {
    const file = `${dir}/${name}`;
    let value = await readNumber(file);
    if (value !== null && value < WANTED[name]) {
      if (isRoot) {
        try {
          await writeFile(file, `${WANTED[name]}\n`);
          messages.push({
            level: 'info',
            text: `raised fs.inotify.${name} (${ROLE[name]}) from ${value} to ${WANTED[name]} (as sersync2 did)`,
          });
          value = WANTED[name];
        } catch (err) {
          messages.push({
            level: 'warn',
            text: `fs.inotify.${name} (${ROLE[name]}) is ${value} and cannot be raised here (${(err as Error).message}); run: sysctl -w fs.inotify.${name}=${WANTED[name]} (see examples/sysctl)`,
          });
        }
      } else {
        messages.push({
          level: 'warn',
          text: `fs.inotify.${name} (${ROLE[name]}) is ${value}; as root run: sysctl -w fs.inotify.${name}=${WANTED[name]} (see examples/sysctl)`,
        });
      }
    }
    values[name] = value;
  }
  return { maxUserWatches: values.max_user_watches ?? null, maxQueuedEvents: values.max_queued_events ?? null, messages };
}

async function readNumber(file: string): Promise<number | null> {
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/**
 * The inotify instances this process holds (its `anon_inode:inotify` descriptors): 1 for a daemon of any number of
 * sites. null where /proc cannot be read.
 */
export function inotifyInstancesHeld(fdDir = '/proc/self/fd'): number | null {
  let fds: string[];
  try {
    fds = readdirSync(fdDir);
  } catch {
    return null;
  }
  let n = 0;
  for (const fd of fds) {
    try {
      if (readlinkSync(`${fdDir}/${fd}`) === 'anon_inode:inotify') n++;
    } catch {
      // Closed since the listing (the listing's own descriptor among them).
    }
  }
  return n;
}
