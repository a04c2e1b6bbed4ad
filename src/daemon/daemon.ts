import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Config } from '../config/model.ts';
import { sameSiteConfig, siteConfigOf } from '../config/site-config.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ExitCode } from '../core/errors.ts';
import type { DaemonStatus, StatusSource } from '../observe/status-model.ts';
import { statusSnapshot } from '../observe/status-snapshot.ts';
import { StatusEndpoint } from '../observe/status-endpoint.ts';
import type { FailQueue } from '../recovery/fail-queue.ts';
import { inotifyInstancesHeld, raiseInotifyLimits } from '../recovery/inotify-limits.ts';
import { recordAttempt, recordOwed } from '../recovery/retry-record.ts';
import { type ProcessRunner, execaRunner } from '../sync/process-runner.ts';
import { requireRsync } from '../sync/rsync-available.ts';
import type { AttemptReport, RemoteLane } from '../sync/remote-lane.ts';
import type { NativeInotify } from '../watch/dir-watch-backend.ts';
import { InotifyInstance } from '../watch/inotify-instance.ts';
import type { Watcher } from '../watch/watcher.ts';
import { rootIdentity, type Site, type SiteDeps, startSite } from './site.ts';
import { closeSlot, moveToQueue, openSlot, queueForChange, release, type Slot, type SlotDeps } from './slot.ts';

/**
 * The composition root: the one place that wires the real clock, processes, watcher and queue file into the pure
 * core. It starts one site (src/daemon/site.ts) per `<localpath>`, swaps one on a reload or a replaced root, and
 * stops them; the sites share the rsync process limit (-n), the event counts, the status endpoint and one inotify
 * instance (src/watch/inotify-instance.ts).
 */

export interface DaemonOptions {
  readonly config: Config;
  readonly log: Logger;
  /** sersync2's -r. */
  readonly initialSync: boolean;
  /** sersync2's -n: rsync processes at once over all remotes. */
  readonly workers: number;
  readonly rsyncPath?: string;
  readonly clock?: Clock;
  readonly runner?: ProcessRunner;
  readonly createWatcher?: (config: Config) => Watcher;
  readonly version?: string;
  /** Serve `/status`, `/metrics` and `/` on `<host hostip port>`; default true. Changeable for tests. */
  readonly statusEndpoint?: boolean;
}

export interface RunningDaemon extends StatusSource {
  readonly config: Config;
  /** `http://host:port` of the status endpoint, or null when it is off or could not listen. */
  readonly statusUrl: string | null;
  /**
   * Swaps in a new config, site by site: a site whose config did not change runs on untouched; a changed one gets a
   * new watcher, started before the old one stops, so nothing falls in between; a dropped one stops; a new one starts.
   */
  reload(config: Config): Promise<void>;
  /** Lets held deletions go once, even though the watch root looks empty (SIGUSR1). */
  releaseHold(): void;
  /** After a fatal error: stores what every lane still owes, synchronously, as far as the disk lets it. */
  persistForCrash(): void;
  /** Stops watching, sends what is pending within `graceMs`, persists the rest. Resolves with the exit code. */
  stop(reason: string, graceMs?: number): Promise<number>;
}

/** How often the root's identity and the tree's mount points are looked at (inotify does not report mounts). */
const MOUNT_POLL_MS = 5000;
/** How often a replaced root that cannot be watched yet is tried again. */
const FOLLOW_RETRY_MS = 2000;
/** How long a site that a reload replaces or drops gets to send what it has pending. */
const RELOAD_GRACE_MS = 10_000;

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { log } = opts;
  const clock = opts.clock ?? systemClock;
  const runner = opts.runner ?? execaRunner;
  const rsyncPath = opts.rsyncPath ?? 'rsync';
  await requireRsync(runner, rsyncPath);
  const limits = await raiseInotifyLimits();
  for (const m of limits.messages) log[m.level](m.text);

  let config = opts.config;
  /** The running sites in config order. */
  let slots = new Map<string, Slot>();
  /** The sites the last reload could not start, and why (for /status). */
  let sitesNotStarted: DaemonStatus['sitesNotStarted'] = [];
  let stopping: Promise<number> | null = null;
  // Reloads, root follows and the stop run one at a time, in order: two at once could retire a site twice, or
  // restore one site's leftovers into lanes that the other had already stopped and saved.
  let lifecycle: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lifecycle.then(fn, fn);
    lifecycle = run.catch(() => {});
    return run;
  };
  const startedAt = new Date(clock.now()).toISOString();
  const events = { seen: 0, ignored: 0, counted: 0, lost: 0 };
  // One inotify instance for every site, as lsyncd has: opened when the first watcher asks, closed after the stop.
  const inotify: { instance: InotifyInstance | null } = { instance: null };
  const sharedInotify = (addon: NativeInotify) => {
    inotify.instance ??= new InotifyInstance(addon);
    return inotify.instance;
  };
  const slotOf = (site: Site) => [...slots.values()].find((s) => s.site === site);

  const follow = (site: Site, reason: string) => {
    followRoot(site, reason).catch((err: unknown) => log.error({ err }, 'following the watch root failed'));
  };
  const siteDeps = (queue: FailQueue): SiteDeps => ({
    clock,
    runner,
    limiter,
    log,
    rsyncPath,
    maxUserWatches: limits.maxUserWatches,
    events,
    createWatcher: opts.createWatcher,
    inotify: sharedInotify,
    onAttempt: (lane: RemoteLane, r: AttemptReport) => recordAttempt(queue, lane.remote.id, r, clock.now(), lane.parkedPaths > 0),
    // A site not running yet is not followed; the next mount poll finds a replaced root.
    onLost: (site: Site, reason: string) => follow(site, reason),
  });
  const limiter = new PQueue({ concurrency: opts.workers });
  const slotDeps: SlotDeps = { clock, log, siteDeps };

  for (const site of config.sites) {
    const siteConfig = siteConfigOf(config, site);
    try {
      slots.set(site.watch, await openSlot(siteConfig, opts.initialSync, slotDeps));
    } catch (err) {
      // The sites already running stop cleanly before the error ends the start.
      for (const slot of slots.values()) await closeSlot(slot, 0, 'pending at a failed start', clock);
      inotify.instance?.close();
      throw err;
    }
  }
  if (slots.size > 1 && inotify.instance !== null) {
    log.info({ sites: slots.size, inotifyInstances: inotifyInstancesHeld() }, `the ${slots.size} sites share one inotify instance`);
  }

  /** A root that was removed or replaced: watch the new one when it is there (deletions stay held while empty). */
  async function followRoot(site: Site, reason: string): Promise<void> {
    if (site.following || stopping) return;
    site.following = true;
    try {
      for (;;) {
        const slot = slotOf(site);
        if (stopping || slot === undefined || slot.closed) return;
        const id = await rootIdentity(site.config.watch);
        if (id !== null && id === site.rootId) return;
        if (id !== null) {
          log.warn({ reason }, `watch root ${site.config.watch} was replaced: watching the new one`);
          try {
            await serially(async () => {
              if (stopping || slot.closed || slot.site !== site) return;
              await swap(slot, site.config);
              for (const lane of slot.site.lanes) lane.requestFull('watch root replaced');
            });
            return;
          } catch (err) {
            log.error({ err }, `cannot watch the new ${site.config.watch} yet; trying again in 2 s`);
          }
        }
        await new Promise<void>((resolve) => clock.setTimeout(resolve, FOLLOW_RETRY_MS));
      }
    } finally {
      site.following = false;
    }
  }

  /** inotify tells nobody of a mount: a disk mounted again (or swapped) is watched anew and synced. */
  const mountTimer = () => {
    clock.setTimeout(() => {
      if (stopping) return;
      const polls = [...slots.values()].map(({ site }) =>
        site
          .pollMounts()
          .then((replaced) => {
            if (replaced) follow(site, 'the watch root changed (mounted or unmounted)');
          })
          .catch((err: unknown) => log.error({ err }, 'looking at the mount points failed')),
      );
      void Promise.all(polls).finally(mountTimer);
    }, MOUNT_POLL_MS);
  };
  mountTimer();

  /** Runs a slot on a new site of the same root: the new watcher starts before the old one stops. */
  const swap = async (slot: Slot, siteConfig: Config) => {
    const old = slot.site;
    const rekeyed = queueForChange(slot, siteConfig, slotDeps);
    let next: Site;
    try {
      next = await startSite(siteConfig, false, slot.guard, siteDeps(rekeyed?.queue ?? slot.queue));
    } catch (err) {
      if (rekeyed) release(rekeyed.queue, rekeyed.owed);
      throw err;
    }
    slot.site = next;
    slot.watchingSince = clock.now();
    // A remote that the old config did not have holds nothing yet: it gets a full sync.
    const known = new Set(old.lanes.map((l) => l.remote.id));
    for (const lane of next.lanes) if (!known.has(lane.remote.id)) lane.requestFull('remote added by a reload', { immediate: true });
    const leftovers = await old.retire(RELOAD_GRACE_MS);
    for (const { id, rest } of leftovers) {
      const lane = next.lanes.find((l) => l.remote.id === id);
      // A remote that reached maxDelete goes on waiting for the operator.
      if (lane && old.lanes.find((l) => l.remote.id === id)?.waitsForOperator) lane.holdForOperator();
      if (!rest) continue;
      if (lane) lane.restore(rest);
      else log.warn({ remote: id }, 'remote removed from the config; its pending changes are dropped');
    }
    if (rekeyed) moveToQueue(slot, rekeyed, log);
    else for (const id of Object.keys(slot.queue.remotes)) if (!next.lanes.some((l) => l.remote.id === id)) slot.queue.clear(id);
  };

  /** The new config's sites, each started, kept, swapped or stopped as its own config says. */
  const applySites = async (next: Config) => {
    const kept = new Map<string, Slot>();
    const failed: DaemonStatus['sitesNotStarted'][number][] = [];
    const wanted = new Set(next.sites.map((s) => s.watch));
    const dropped = [...slots].filter(([watch]) => !wanted.has(watch));
    // New and changed sites start before dropped ones stop, so a reload whose new root cannot start is no outage.
    for (const site of next.sites) {
      const siteConfig = siteConfigOf(next, site);
      const slot = slots.get(site.watch);
      try {
        if (slot === undefined) {
          kept.set(site.watch, await openSlot(siteConfig, opts.initialSync, slotDeps));
          log.info({ watch: site.watch }, `site ${site.watch} added by the reload`);
        } else if (sameSiteConfig(slot.site.config, siteConfig)) {
          kept.set(site.watch, slot);
          log.info({ watch: site.watch }, `site ${site.watch} unchanged: its watcher and lanes run on`);
        } else {
          await swap(slot, siteConfig);
          kept.set(site.watch, slot);
        }
      } catch (err) {
        log.error({ err, watch: site.watch }, `site ${site.watch} cannot start; the other sites run on`);
        const running = slot === undefined ? '' : ' (it runs on with the config it had)';
        failed.push({
          watch: site.watch,
          error: `${(err as Error).message ?? String(err)}${running}`,
          since: new Date(clock.now()).toISOString(),
        });
        if (slot !== undefined) kept.set(site.watch, slot);
      }
    }
    sitesNotStarted = failed;
    if (kept.size === 0) {
      log.error('no site of the new config could start: the sites of the old config run on as they were');
      return;
    }
    for (const [watch, slot] of dropped) {
      const left = await closeSlot(slot, RELOAD_GRACE_MS, 'pending when its site was removed', clock);
      log.info({ watch, left, queue: slot.queue.file }, `site ${watch} removed from the config: its watcher and lanes stopped`);
    }
    slots = kept;
    config = next;
  };

  const daemon: RunningDaemon = {
    get config() {
      return config;
    },
    get statusUrl() {
      return endpoint?.url ?? null;
    },
    snapshot: () =>
      statusSnapshot({
        sites: [...slots.values()].map(({ site, watchingSince, queue }) => ({
          config: site.config,
          watcher: site.watcher,
          watchingSince,
          lanes: site.lanes,
          crontab: site.crontab,
          queue,
        })),
        version: opts.version ?? '0.0.0',
        startedAt,
        now: clock.now(),
        maxUserWatches: limits.maxUserWatches,
        inotifyInstances: inotifyInstancesHeld(),
        events,
        sitesNotStarted,
      }),
    reload: (next) =>
      serially(async () => {
        if (stopping) {
          log.warn('stopping: the new config is not applied');
          return;
        }
        log.info({ file: next.file }, 'reloading the config');
        await applySites(next);
        await endpoint?.serve(next.host);
        log.info('config reloaded');
      }),
    releaseHold: () => {
      log.warn('hold released by the operator: held deletions go now, and the present mounts are taken as normal');
      for (const slot of slots.values()) {
        slot.guard.release().then(
          () => {
            for (const lane of slot.site.lanes) lane.releaseHold();
          },
          (err: unknown) => log.error({ err }, 'releasing the hold failed'),
        );
      }
    },
    persistForCrash: () => {
      // The queue stays marked running, so the next start also does a full sync.
      for (const { site, queue } of slots.values()) {
        for (const lane of site.lanes) {
          const rest = lane.unfinished();
          if (rest) recordOwed(queue, lane.remote.id, rest, clock.now(), 'pending at a crash');
        }
      }
    },
    stop: (reason, graceMs = 10_000) => {
      // After a reload or root follow in progress, never beside it.
      stopping ??= serially(async () => {
        log.info({ reason }, 'stopping: sending what is pending');
        const all = [...slots.values()];
        const left = await Promise.all(all.map((slot) => closeSlot(slot, graceMs, 'pending at shutdown', clock)));
        inotify.instance?.close();
        await endpoint?.close();
        const total = left.reduce((n, x) => n + x, 0);
        if (total > 0) {
          const queues = all.filter((_, i) => (left[i] ?? 0) > 0).map((s) => s.queue.file);
          log.warn(
            { left: total, queue: queues.length === 1 ? queues[0] : queues },
            'stopped with changes not yet on every remote; they are in the retry queue',
          );
        }
        log.info('stopped');
        return ExitCode.Ok;
      });
      return stopping;
    },
  };
  // Served only after the daemon is complete: each request reads its snapshot().
  const endpoint = opts.statusEndpoint === false ? null : new StatusEndpoint(daemon, log);
  await endpoint?.serve(opts.config.host);
  return daemon;
}
