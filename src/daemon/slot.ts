import type { Logger } from 'pino';
import type { Config } from '../config/model.ts';
import type { Clock } from '../core/clock.ts';
import { FailQueue } from '../recovery/fail-queue.ts';
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
  readonly queue: FailQueue;
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
  const queue = FailQueue.open({
    failLogPath: siteConfig.failLog.path,
    stateDir: siteConfig.tuning.stateDir,
    watch: siteConfig.watch,
    remoteIds: siteConfig.remotes.map((r) => r.id),
    clock,
    log,
  });
  try {
    if (queue.setAside) log.error({ file: queue.setAside }, 'the retry queue file was unreadable and was set aside; doing a full sync');
    log.info(
      { failLog: siteConfig.failLog.path, queue: queue.file },
      'failed transfers are kept as data in the retry queue, never as a script',
    );
    const crashed = queue.previousRunCrashed;
    const stored = { ...queue.remotes };
    queue.markRunning(true);
    // Its memory of mount points lives beside the retry queue: a site started while a disk is unmounted must not
    // take that as normal.
    const guard = await DeletionGuard.create(siteConfig.watch, { file: queue.file.replace(/(\.queue)?\.json$/, '.mounts.json') });
    const site = await startSite(siteConfig, initialSync, guard, deps.siteDeps(queue));
    if (crashed) {
      log.warn(
        { watch: siteConfig.watch },
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
    return { site, watchingSince: clock.now(), closed: false, queue, guard };
  } catch (err) {
    queue.markRunning(false);
    queue.close();
    throw err;
  }
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
