import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Config } from '../config/model.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import type { StatusSource } from '../observe/status-model.ts';
import { statusSnapshot } from '../observe/status-snapshot.ts';
import { StatusEndpoint } from '../observe/status-endpoint.ts';
import { FailQueue } from '../recovery/fail-queue.ts';
import { raiseInotifyLimits } from '../recovery/inotify-limits.ts';
import { recordAttempt, recordOwed } from '../recovery/retry-record.ts';
import { DeletionGuard } from '../sync/deletion-guard.ts';
import { type ProcessRunner, execaRunner } from '../sync/process-runner.ts';
import type { AttemptReport, RemoteLane } from '../sync/remote-lane.ts';
import type { Watcher } from '../watch/watcher.ts';
import { rootIdentity, type Site, startSite } from './site.ts';

/**
 * The composition root: the one place that wires the real clock, processes, watcher and queue file into the pure
 * core. It starts the site (src/daemon/site.ts), swaps it on a reload or a replaced root, and stops it.
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
  readonly lanes: readonly RemoteLane[];
  readonly queue: FailQueue;
  watchCount(): number;
  /** Swaps in a new config: the new watcher starts before the old one stops, so nothing falls in between. */
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

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { log } = opts;
  const clock = opts.clock ?? systemClock;
  const runner = opts.runner ?? execaRunner;
  const rsyncPath = opts.rsyncPath ?? 'rsync';
  await checkRsync(runner, rsyncPath);
  const limits = await raiseInotifyLimits();
  for (const m of limits.messages) log[m.level](m.text);

  const queue = FailQueue.open({
    failLogPath: opts.config.failLog.path,
    stateDir: opts.config.tuning.stateDir,
    watch: opts.config.watch,
    remoteIds: opts.config.remotes.map((r) => r.id),
    clock,
    log,
  });
  if (queue.setAside) log.error({ file: queue.setAside }, 'the retry queue file was unreadable and was set aside; doing a full sync');
  log.info(
    { failLog: opts.config.failLog.path, queue: queue.file },
    'failed transfers are kept as data in the retry queue, never as a script',
  );
  const crashed = queue.previousRunCrashed;
  const stored = { ...queue.remotes };
  queue.markRunning(true);
  // One guard per watch root, kept across reloads: a site started while a disk is unmounted must not take that as
  // normal. Its memory of mount points lives beside the retry queue (one instance, one file).
  const guardFile = (root: string) => (root === opts.config.watch ? queue.file.replace(/(\.queue)?\.json$/, '.mounts.json') : null);
  let guard = { root: opts.config.watch, guard: await DeletionGuard.create(opts.config.watch, { file: guardFile(opts.config.watch) }) };
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

  // Assigned once the first site runs; before that, followRoot (reached through onLost) finds it unset and leaves a
  // replaced root to the next mount poll.
  let current: Site;
  const follow = (site: Site, reason: string) => {
    followRoot(site, reason).catch((err: unknown) => log.error({ err }, 'following the watch root failed'));
  };
  const siteDeps = {
    clock,
    runner,
    limiter: new PQueue({ concurrency: opts.workers }),
    log,
    rsyncPath,
    maxUserWatches: limits.maxUserWatches,
    events,
    createWatcher: opts.createWatcher,
    onAttempt: (lane: RemoteLane, r: AttemptReport) => recordAttempt(queue, lane.remote.id, r, clock.now(), lane.parkedPaths > 0),
    onLost: (site: Site, reason: string) => follow(site, reason),
  };
  /** A reload to another watch root gets its own guard, taken over once its site runs. */
  const begin = async (config: Config, initialSync: boolean): Promise<Site> => {
    const root = config.watch;
    const next = root === guard.root ? guard : { root, guard: await DeletionGuard.create(root, { file: guardFile(root) }) };
    const site = await startSite(config, initialSync, next.guard, siteDeps);
    guard = next;
    return site;
  };
  current = await begin(opts.config, opts.initialSync);

  /** A root that was removed or replaced: watch the new one when it is there (deletions stay held while empty). */
  async function followRoot(site: Site, reason: string): Promise<void> {
    if (site.following || stopping) return;
    site.following = true;
    try {
      for (;;) {
        if (stopping || current !== site) return;
        const id = await rootIdentity(site.config.watch);
        if (id !== null && id === site.rootId) return;
        if (id !== null) {
          log.warn({ reason }, `watch root ${site.config.watch} was replaced: watching the new one`);
          try {
            await serially(async () => {
              if (stopping || current !== site) return;
              await swap(site.config);
              for (const lane of current.lanes) lane.requestFull('watch root replaced');
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
      const site = current;
      site
        .pollMounts()
        .then((replaced) => {
          if (replaced) follow(site, 'the watch root changed (mounted or unmounted)');
        })
        .catch((err: unknown) => log.error({ err }, 'looking at the mount points failed'))
        .finally(mountTimer);
    }, MOUNT_POLL_MS);
  };
  mountTimer();

  if (crashed) {
    log.warn('the previous run did not shut down cleanly: pending changes may have been lost; full sync of every remote');
    for (const lane of current.lanes) lane.requestFull('restart after a crash', { immediate: true });
  }
  for (const lane of current.lanes) {
    const batch = stored[lane.remote.id];
    if (!batch) continue;
    log.info(
      { remote: lane.remote.id, paths: batch.full ? 'full' : batch.entries.length, attempts: batch.attempts },
      'replaying the retry queue',
    );
    lane.restore(batch);
  }

  const swap = async (config: Config) => {
    const old = current;
    const next = await begin(config, false);
    current = next;
    // A remote that the old config did not have holds nothing yet: it gets a full sync.
    const known = new Set(old.lanes.map((l) => l.remote.id));
    for (const lane of next.lanes) if (!known.has(lane.remote.id)) lane.requestFull('remote added by a reload', { immediate: true });
    const leftovers = await old.retire(10_000);
    for (const { id, rest } of leftovers) {
      const lane = next.lanes.find((l) => l.remote.id === id);
      // A remote that reached maxDelete goes on waiting for the operator.
      if (lane && old.lanes.find((l) => l.remote.id === id)?.waitsForOperator) lane.holdForOperator();
      if (!rest) continue;
      if (lane) lane.restore(rest);
      else log.warn({ remote: id }, 'remote removed from the config; its pending changes are dropped');
    }
    for (const id of Object.keys(queue.remotes)) if (!next.lanes.some((l) => l.remote.id === id)) queue.clear(id);
  };

  const daemon: RunningDaemon = {
    get config() {
      return current.config;
    },
    get statusUrl() {
      return endpoint?.url ?? null;
    },
    get lanes() {
      return current.lanes;
    },
    queue,
    watchCount: () => current.watcher.watchCount(),
    snapshot: () =>
      statusSnapshot({
        config: current.config,
        watcher: current.watcher,
        lanes: current.lanes,
        crontab: current.crontab,
        version: opts.version ?? '0.0.0',
        startedAt,
        now: clock.now(),
        queue,
        maxUserWatches: limits.maxUserWatches,
        events,
      }),
    reload: (config) =>
      serially(async () => {
        if (stopping) {
          log.warn('stopping: the new config is not applied');
          return;
        }
        log.info({ file: config.file }, 'reloading the config');
        await swap(config);
        await endpoint?.serve(config.host);
        log.info('config reloaded');
      }),
    releaseHold: () => {
      log.warn('hold released by the operator: held deletions go now, and the present mounts are taken as normal');
      guard.guard.release().then(
        () => {
          for (const lane of current.lanes) lane.releaseHold();
        },
        (err: unknown) => log.error({ err }, 'releasing the hold failed'),
      );
    },
    persistForCrash: () => {
      // The queue stays marked running, so the next start also does a full sync.
      for (const lane of current.lanes) {
        const rest = lane.unfinished();
        if (rest) recordOwed(queue, lane.remote.id, rest, clock.now(), 'pending at a crash');
      }
    },
    stop: (reason, graceMs = 10_000) => {
      // After a reload or root follow in progress, never beside it.
      stopping ??= serially(async () => {
        log.info({ reason }, 'stopping: sending what is pending');
        let left = 0;
        for (const { id, rest } of await current.retire(graceMs)) {
          if (!rest) {
            queue.clear(id);
            continue;
          }
          left += rest.full ? 1 : rest.entries.length;
          recordOwed(queue, id, rest, clock.now(), 'pending at shutdown');
        }
        queue.markRunning(false);
        queue.close();
        await endpoint?.close();
        if (left > 0) log.warn({ left, queue: queue.file }, 'stopped with changes not yet on every remote; they are in the retry queue');
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

async function checkRsync(runner: ProcessRunner, rsyncPath: string): Promise<void> {
  const result = await runner.run(rsyncPath, ['--version']);
  if (result.spawnError || result.exitCode !== 0) {
    throw new SersyncError(
      'RSYNC_MISSING',
      `cannot run '${rsyncPath} --version' (${result.spawnError ?? `exit ${result.exitCode}`}): install rsync (apt-get install rsync) or put it on PATH`,
      { exitCode: ExitCode.Unavailable },
    );
  }
}
