import type { Logger } from 'pino';
import type { Config } from '../config/model.ts';
import type { Clock } from '../core/clock.ts';
import { FailQueue } from '../recovery/fail-queue.ts';
import { queueFileFor } from '../recovery/queue-file.ts';
import { stateDirFor } from '../recovery/state-dir.ts';
import { recordOwed } from '../recovery/retry-record.ts';
import { DeletionGuard } from '../sync/deletion-guard.ts';
import { type Site, type SiteDeps, startSite } from './site.ts';

/**
 * One `<localpath>` as the daemon runs it: the site (swapped on a change or a replaced root), and what outlives a
 * swap: its retry queue file with its lock, and its deletion guard. Keyed by the watch root.
 */
export interface Slot {
  site: Site;
  /** When the running site's watcher started. */
  watchingSince: number;
  /** Set when it starts to stop: a root follow or mount poll queued behind that must not bring it back. */
  closed: boolean;
  /** Its file and lock are keyed by the watch root and the remotes: a reload that changes the remotes re-keys it. */
  queue: FailQueue;
  readonly guard: DeletionGuard;
}

export interface SlotDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly siteDeps: (queue: FailQueue) => SiteDeps;
}

/**
 * Opens a site's retry queue (its lock keeps a second daemon of the same config out) and starts it, replaying
 * what the queue holds. The first site's queue file has the name a one-site daemon always used.
 */
export async function openSlot(siteConfig: Config, initialSync: boolean, deps: SlotDeps): Promise<Slot> {
  const { clock, log } = deps;
  const queue = openQueue(siteConfig, deps);
  const owed = claim(queue);
  try {
    // Its memory of mount points lives beside the retry queue: a site started while a disk is unmounted must not
    // take that as normal.
    const guard = await DeletionGuard.create(siteConfig.watch, { file: mountsFileOf(queue) });
    const site = await startSite(siteConfig, initialSync, guard, deps.siteDeps(queue));
    replay(site, owed, log);
    return { site, watchingSince: clock.now(), closed: false, queue, guard };
  } catch (err) {
    release(queue, owed);
    throw err;
  }
}

/** Gives up a claimed queue unused: a crash that the last run left stays marked, so the next start still syncs in full. */
export function release(queue: FailQueue, owed: Owed): void {
  queue.markRunning(owed.crashed);
  queue.close();
}

/** What a queue holds at its opening (read before anything new is written to it); from now on this run owns it. */
interface Owed {
  readonly stored: FailQueue['remotes'];
  readonly crashed: boolean;
}

function claim(queue: FailQueue): Owed {
  const owed = { stored: { ...queue.remotes }, crashed: queue.previousRunCrashed };
  queue.markRunning(true);
  return owed;
}

/** The retry queue of a site config; its lock keeps a second daemon of the same instance out. */
function openQueue(siteConfig: Config, deps: SlotDeps, ignoring?: string): FailQueue {
  const queue = FailQueue.open({
    failLogPath: siteConfig.failLog.path,
    stateDir: siteConfig.tuning.stateDir,
    watch: siteConfig.watch,
    remoteIds: siteConfig.remotes.map((r) => r.id),
    clock: deps.clock,
    log: deps.log,
    ...(ignoring === undefined ? {} : { ignoring }),
  });
  if (queue.setAside) deps.log.error({ file: queue.setAside }, 'the retry queue file was unreadable and was set aside; doing a full sync');
  deps.log.info(
    { failLog: siteConfig.failLog.path, queue: queue.file },
    'failed transfers are kept as data in the retry queue, never as a script',
  );
  return queue;
}

const mountsFileOf = (queue: FailQueue) => queue.file.replace(/(\.queue)?\.json$/, '.mounts.json');

/** What a queue held at its opening goes to the site's lanes; after a crash, a full sync of each. */
function replay(site: Site, { stored, crashed }: Owed, log: Logger): void {
  if (crashed) {
    log.warn(
      { watch: site.config.watch },
      'the previous run did not shut down cleanly: pending changes may have been lost; full sync of every remote',
    );
    for (const lane of site.lanes) lane.requestFull('restart after a crash', { immediate: true });
  }
  for (const lane of site.lanes) {
    const batch = stored[lane.remote.id];
    if (!batch) continue;
    log.info(
      { remote: lane.remote.id, paths: batch.full ? 'full' : batch.entries.length, attempts: batch.attempts },
      'replaying the retry queue',
    );
    lane.restore(batch);
  }
}

/** A queue of another instance key, opened for a reload, with what it held. */
export interface NextQueue {
  readonly queue: FailQueue;
  readonly owed: Owed;
}

/**
 * A reload changed the slot's remotes, so its instance key: the queue and lock of the new key, taken before the new
 * site starts, so that a daemon already running the new config refuses the change. Null when the key stays.
 */
export function queueForChange(slot: Slot, siteConfig: Config, deps: SlotDeps): NextQueue | null {
  const remoteIds = siteConfig.remotes.map((r) => r.id);
  const file = queueFileFor(siteConfig.failLog.path, stateDirFor(siteConfig.tuning.stateDir), siteConfig.watch, remoteIds);
  if (file === slot.queue.file) return null;
  const queue = openQueue(siteConfig, deps, slot.queue.file);
  return { queue, owed: claim(queue) };
}

/**
 * The slot's site now runs on the queue of the new key (queueForChange): what that queue held is replayed, the old
 * one is emptied and its lock given up (what the old lanes owed went to the new ones in memory).
 */
export function moveToQueue(slot: Slot, next: NextQueue, log: Logger): void {
  replay(slot.site, next.owed, log);
  slot.queue.clear();
  slot.queue.markRunning(false);
  slot.queue.close();
  slot.queue = next.queue;
  slot.guard.rememberIn(mountsFileOf(next.queue));
}
/** Stops a slot's site and keeps what it still owes in its queue, for the next start. Returns how many it owes. */
export async function closeSlot(slot: Slot, graceMs: number, why: string, clock: Clock): Promise<number> {
  slot.closed = true;
  let left = 0;
  for (const { id, rest } of await slot.site.retire(graceMs)) {
    if (!rest) {
      slot.queue.clear(id);
      continue;
    }
    left += rest.full ? 1 : rest.entries.length;
    recordOwed(slot.queue, id, rest, clock.now(), why);
  }
  slot.queue.markRunning(false);
  slot.queue.close();
  return left;
}
