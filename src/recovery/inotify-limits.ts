import { readFile, writeFile } from 'node:fs/promises';

/**
 * inotify limits: sersync2 raised them unconditionally at every start. As root we raise them to the same
 * values when they are lower, and say so; otherwise we say which sysctl lines to run. No Node watcher reports
 * queue overflow, so a generous max_queued_events matters.
 */
const WANTED = { max_user_watches: 50_000_000, max_queued_events: 327_679 } as const;
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
          messages.push({ level: 'info', text: `raised fs.inotify.${name} from ${value} to ${WANTED[name]} (as sersync2 did)` });
          value = WANTED[name];
        } catch (err) {
          messages.push({
            level: 'warn',
            text: `fs.inotify.${name} is ${value} and cannot be raised here (${(err as Error).message}); run: sysctl -w fs.inotify.${name}=${WANTED[name]} (see examples/sysctl)`,
          });
        }
      } else {
        messages.push({
          level: 'warn',
          text: `fs.inotify.${name} is ${value}; as root run: sysctl -w fs.inotify.${name}=${WANTED[name]} (see examples/sysctl)`,
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
