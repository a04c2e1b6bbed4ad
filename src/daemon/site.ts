import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Batch, PendingEntry } from '../aggregate/aggregator.ts';
import type { Config } from '../config/model.ts';
import type { Clock } from '../core/clock.ts';
import { errorCode } from '../core/errors.ts';
import { displayPath, fromUtf8, type RelPath } from '../core/paths.ts';
import { FullSyncProgress } from '../observe/progress.ts';
import { createAfterSync } from '../plugins/after-sync.ts';
import { Crontab } from '../recovery/crontab.ts';
import type { DeletionGuard } from '../sync/deletion-guard.ts';
import type { ProcessRunner } from '../sync/process-runner.ts';
import { type AttemptReport, type LaneDeps, RemoteLane } from '../sync/remote-lane.ts';
import { UPDATE_FLAG_NOTE, withoutUpdateFlag } from '../sync/rsync-command.ts';
import { CRONTAB_KEPT_NOTE, crontabKeptDespiteFilter, planSite } from '../sync/site-plan.ts';
import { SshMaster } from '../sync/ssh-master.ts';
import { mountPointsBelow } from '../watch/mount-table.ts';
import type { PathFilter } from '../watch/path-filter.ts';
import { CloseWriteFilter, stillOpenMessage } from '../watch/close-write.ts';
import { createWatcher, type WatcherHooks } from '../watch/watcher-choice.ts';
import type { Watcher } from '../watch/watcher.ts';

/** setTimeout's longest delay (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** At most this many runs send one renamed directory (each also costs an ssh session and a receiver). */
const RENAME_WAYS = 4;

/** What every site of a daemon shares, and what it tells the daemon. */
export interface SiteDeps {
  readonly clock: Clock;
  readonly runner: ProcessRunner;
  /** sersync2's -n over all remotes of all sites. */
  readonly limiter: PQueue;
  readonly log: Logger;
  readonly rsyncPath: string;
  readonly maxUserWatches: number | null;
  /** Watcher events, counted over the daemon's life. */
  readonly events: { seen: number; ignored: number; counted: number; lost: number };
  readonly onAttempt: (lane: RemoteLane, report: AttemptReport) => void;
  /** The watcher said events may be lost (a replaced root among the reasons). */
  readonly onLost: (site: Site, reason: string) => void;
  /** Changeable for tests; default the `<tuning watcher>` choice. */
  readonly createWatcher?: (config: Config) => Watcher;
  /** The daemon's one inotify instance, which every site's watcher watches in. */
  readonly inotify?: WatcherHooks['inotify'];
}

/** What a site still owes each of its remotes after a stop. */
export interface Leftover {
  readonly id: string;
  readonly rest: Batch | null;
}

/**
 * One running watch root (a `<localpath>`): its watcher, its lanes (one per remote, from the SitePlan), close-write
 * filter, crontab and plugin. The daemon starts, follows and retires sites, one per `<localpath>`.
 */
export interface Site {
  readonly config: Config;
  readonly lanes: readonly RemoteLane[];
  readonly watcher: Watcher;
  readonly crontab: Crontab | null;
  /** The root directory's identity when the site started (see rootIdentity). */
  readonly rootId: string | null;
  /** A follow of a replaced root is under way. */
  following: boolean;
  /**
   * Looks at the tree's mount points again (inotify tells nobody of a mount) and has the watcher look again where one
   * was mounted or unmounted. Resolves true when the root itself is another directory now (to be followed).
   */
  pollMounts(): Promise<boolean>;
  /** Stops watching, then the lanes get `graceMs` to send what is pending. */
  retire(graceMs: number): Promise<Leftover[]>;
}

/**
 * Starts a site: watch first, then the `-r` full sync, so nothing changed during a long initial sync is lost
 * (sersync2 did it the other way round).
 */
export async function startSite(config: Config, initialSync: boolean, guard: DeletionGuard, deps: SiteDeps): Promise<Site> {
  const { clock, log, events } = deps;
  const plan = planSite(config);
  const { root, filter } = plan;
  const rootId = await rootIdentity(root);
  if (withoutUpdateFlag(config.rsync.commonParams).dropped) log.info(UPDATE_FLAG_NOTE.replace(/^note: /, ''));
  if (filter.untranslated.length > 0) {
    log.info(
      { regexes: filter.untranslated.map((r) => r.source) },
      'these filter regexes have no rsync pattern; directory and full syncs list the matching paths as excludes',
    );
  }
  const afterSync = createAfterSync(config, { log });
  const progress = new FullSyncProgress({
    clock,
    log,
    intervalMs: config.tuning.progressMs,
    tty: process.stderr.isTTY ? process.stderr : null,
  });
  const laneDeps: LaneDeps = {
    clock,
    runner: deps.runner,
    limiter: deps.limiter,
    log,
    rsyncPath: deps.rsyncPath,
    rootBytes: fromUtf8(root),
    untranslated: filter.untranslated,
    isExcluded: (path, isDir) => filter.isExcluded(path, isDir),
    fullSyncFilters: plan.fullSyncFilters,
    progress: (id) => progress.start(id),
    onSynced: afterSync ? (lane, batch, outcome) => afterSync.synced(lane.remote.id, batch, outcome) : undefined,
    retry: { baseMs: 1000, capMs: Math.min(config.failLog.retryCapMinutes * 60_000, MAX_TIMER_MS), random: Math.random },
    onAttempt: deps.onAttempt,
    deletionGuard: () => guard.check(),
    // A renamed directory's linking is one core's work per run (sendRenames also takes free -n slots only).
    renameWays: Math.min(RENAME_WAYS, availableParallelism()),
  };
  const masters: SshMaster[] = [];
  const lanes = plan.remotes.map(({ remote, context }) => {
    const master = SshMaster.for(context, { runner: deps.runner, clock, log });
    if (master === null) return new RemoteLane(remote, context, config.tuning, laneDeps);
    masters.push(master);
    return new RemoteLane(remote, master.contextFor(context), config.tuning, laneDeps);
  });
  /** Whether each mount point of the tree was mounted at the last poll. */
  const mounts = new Map<string, boolean>();
  /** The mount table's entries below the root at the last poll: the start's walk sees those there before it. */
  const mountTableNow = async () => (await mountPointsBelow(fromUtf8(root)))?.filter((path) => !excludedOrBelow(filter, path)) ?? null;
  let mountTable = new Set((await mountTableNow()) ?? []);
  const watcher =
    deps.createWatcher?.(config) ??
    createWatcher(config, {
      inotify: deps.inotify,
      onUnreadable: (path, cause) =>
        log.warn(
          { path: displayPath(path), code: errorCode(cause) },
          `cannot read ${displayPath(path)}: not watched or synced until it can be (looked at again every 30 s)`,
        ),
      onMountPoint: (path) => {
        guard.noteMountPoint(path);
        mounts.set(path, true);
        log.info({ path: displayPath(path) }, `${displayPath(path)} is a mount point: deletions below it are held while it is unmounted`);
      },
    });
  const closeWrites = new CloseWriteFilter(config.inotify, {
    clock,
    onDue: (path, hint) => {
      for (const lane of lanes) lane.add(path, hint);
    },
    onStillOpen: (path, seconds) => log.info({ path: displayPath(path), seconds }, stillOpenMessage(path, seconds)),
    seesCloseWrite: () => watcher.backend === 'inotify',
  });
  let crontab: Crontab | null = null;
  /** Stops the site: its watcher first, then its lanes get `graceMs` to send what is pending. */
  async function retire(graceMs: number): Promise<Leftover[]> {
    crontab?.stop();
    await watcher.close();
    closeWrites.dispose();
    const late = await timedOut(Promise.all(lanes.map((l) => l.flush())), graceMs, clock);
    for (const lane of lanes) lane.stop();
    if (late) {
      log.warn({ graceMs }, 'grace period over: stopping running rsync processes');
      for (const lane of lanes) lane.abortRunning();
    }
    await Promise.all(lanes.map((l) => l.whenIdle()));
    await Promise.all(masters.map((m) => m.stop()));
    await afterSync?.close();
    // Files still open for writing were not sent; they are owed all the same (a stop keeps them in the queue).
    const open = closeWrites.openPaths().map((path) => ({ path, tree: false, deletes: false }));
    return lanes.map((l) => ({ id: l.remote.id, rest: withEntries(l.unfinished(), open, clock.now()) }));
  }
  async function pollMounts(): Promise<boolean> {
    const id = await rootIdentity(root);
    // A mount below an excluded directory is nothing the mirror holds: no watch, no hold when it goes. A table that
    // cannot be read now changes nothing.
    const table = (await mountTableNow()) ?? [...mountTable];
    const known = new Set(guard.mountPoints);
    for (const path of table) {
      // A known mount point mounted again is the guard's loop's below.
      if (mountTable.has(path) || known.has(path)) continue;
      const guarded = await guard.noteIfMounted(path);
      if (guarded) mounts.set(path, true);
      log.warn(
        { path: displayPath(path) },
        `${displayPath(path)} was mounted inside the tree: watching and syncing it` +
          (guarded ? '; deletions below it are held while it is unmounted' : ' (on the same device: its deletions are not guarded)'),
      );
      watcher.recheck?.(path);
    }
    // A bind mount that went (the guard's loop below sees only those on their own device).
    for (const path of mountTable) if (!table.includes(path) && !mounts.has(path)) watcher.recheck?.(path);
    mountTable = new Set(table);
    for (const [path, mounted] of await guard.mountStates()) {
      const was = mounts.get(path) ?? true;
      mounts.set(path, mounted);
      if (was !== mounted) {
        log.warn(
          { path: displayPath(path), mounted },
          `${displayPath(path)} was ${mounted ? 'mounted' : 'unmounted'}: looking at it again`,
        );
        watcher.recheck?.(path);
      }
    }
    return id !== null && id !== rootId;
  }
  const site: Site = {
    config,
    lanes,
    watcher,
    get crontab() {
      return crontab;
    },
    rootId,
    following: false,
    pollMounts,
    retire,
  };

  const started = clock.now();
  await watcher.start(
    root,
    (event) => {
      events.seen++;
      if (event.kind === 'lost') {
        events.lost++;
        log.warn({ reason: event.reason }, `events may have been lost (${event.reason}); scheduling a full sync`);
        for (const lane of lanes) lane.requestFull(event.reason);
        closeWrites.reset();
        deps.onLost(site, event.reason);
        return;
      }
      const change = closeWrites.change(event);
      if (log.isLevelEnabled('debug')) {
        const how = event.kind === 'file' ? event.how : undefined;
        log.debug({ event: event.kind, op: event.op, how, path: displayPath(event.path), counted: change !== null }, 'watch event');
      }
      if (change === null) {
        events.ignored++;
        return;
      }
      events.counted++;
      for (const lane of lanes) lane.add(change.path, change.hint);
    },
    { isIgnored: (path, isDir) => filter.isExcluded(path, isDir), pairMoves: true },
  );
  logWatching(site, started, deps);
  // Opened once watching (a start that fails leaves no connection behind); the first runs may connect on their own.
  for (const master of masters) master.start();
  if (initialSync) {
    if (config.filter.enabled && config.filter.excludes.length > 0) {
      log.info('-r with a realtime filter: sersync2 skipped -r; sersync-ts runs it with the filter as rsync excludes');
    }
    for (const lane of lanes) lane.requestFull('initial sync (-r)', { immediate: true });
  }
  if (config.crontab.enabled) {
    if (crontabKeptDespiteFilter(config)) log.info(CRONTAB_KEPT_NOTE);
    crontab = new Crontab(config.crontab.scheduleMinutes * 60_000, clock, () => {
      log.info('crontab: full sync of every remote');
      for (const lane of lanes) lane.requestFull('crontab', { immediate: true });
    });
    crontab.start();
  }
  return site;
}

function logWatching(site: Site, started: number, { clock, log, maxUserWatches }: SiteDeps): void {
  const { config, watcher } = site;
  const watches = watcher.watchCount();
  log.info(
    {
      watch: config.watch,
      watcher: config.tuning.watcher,
      backend: watcher.backend,
      directories: watches,
      seconds: (clock.now() - started) / 1000,
      remotes: site.lanes.map((l) => l.remote.id),
    },
    `watching ${config.watch}`,
  );
  if (watcher.backend === 'fs.watch') {
    log.warn(
      'watching with fs.watch: the native inotify reader is not built or cannot load (npm run build; it needs make, g++ and python3). ' +
        'Costs: an inotify queue overflow goes unnoticed (no full sync follows it), a stop or reload hands over pending events ' +
        'by waiting briefly instead of exactly, a file is taken as complete once it has had no event for 1 s (there is no close-write), ' +
        'and about twice the memory on large trees',
    );
  }
  if (maxUserWatches !== null && watches > maxUserWatches * 0.8) {
    log.warn(`${watches} directories watched of fs.inotify.max_user_watches=${maxUserWatches}: raise it (see examples/sysctl)`);
  }
}

/** A directory's identity (device and inode), or null when it is missing or no directory. */
export async function rootIdentity(path: string): Promise<string | null> {
  try {
    const st = await stat(path);
    return st.isDirectory() ? `${st.dev}:${st.ino}` : null;
  } catch {
    return null;
  }
}

/** Whether `ms` passed on the clock before `work` settled. */
async function timedOut(work: Promise<unknown>, ms: number, clock: Clock): Promise<boolean> {
  let timer: unknown = null;
  const late = new Promise<boolean>((resolve) => {
    timer = clock.setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([work.then(() => false), late]);
  } finally {
    clock.clearTimeout(timer);
  }
}

/** A lane's unfinished batch with more entries (a full sync covers them). */
function withEntries(batch: Batch | null, entries: readonly PendingEntry[], now: number): Batch | null {
  if (entries.length === 0) return batch;
  if (batch === null) return { full: false, fullReason: '', entries, since: now };
  return batch.full ? batch : { ...batch, entries: [...batch.entries, ...entries] };
}

function excludedOrBelow(filter: PathFilter, path: RelPath): boolean {
  const parts = path.split('/');
  return parts.some((_, i) => filter.isExcluded(parts.slice(0, i + 1).join('/'), true));
}
