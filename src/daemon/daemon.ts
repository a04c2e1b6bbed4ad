import { stat } from 'node:fs/promises';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Batch, PendingEntry } from '../aggregate/aggregator.ts';
import type { Config } from '../config/model.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { errorCode, ExitCode, SersyncError } from '../core/errors.ts';
import { displayPath, fromUtf8 } from '../core/paths.ts';
import { Crontab } from '../recovery/crontab.ts';
import { FailQueue } from '../recovery/fail-queue.ts';
import { raiseInotifyLimits } from '../recovery/inotify-limits.ts';
import { type ProcessRunner, execaRunner } from '../sync/process-runner.ts';
import { type AttemptReport, RemoteLane, type LaneDeps } from '../sync/remote-lane.ts';
import { commandContextFor, UPDATE_FLAG_NOTE, withoutUpdateFlag } from '../sync/rsync-command.ts';
import { CloseWriteFilter, stillOpenMessage } from '../watch/close-write.ts';
import { ChokidarWatcher } from '../watch/chokidar-watcher.ts';
import { DirWatcher } from '../watch/dir-watcher.ts';
import { DeletionGuard } from '../sync/deletion-guard.ts';
import { createPathFilter, filterRulesOf } from '../watch/path-filter.ts';
import type { Watcher } from '../watch/watcher.ts';
import type { DaemonStatus, RemoteStatus, StatusSource } from '../observe/status-model.ts';
import { FullSyncProgress } from '../observe/progress.ts';
import { type StatusServer, startStatusServer } from '../observe/status-server.ts';
import { type AfterSync, createAfterSync } from '../plugins/after-sync.ts';

/**
 * The composition root: the one place that wires the real clock, processes, watcher and queue file into the pure
 * core. Order matters for completeness: watch first, then the `-r` full sync, so nothing changed during a long
 * initial sync is lost (sersync2 did it the other way round, SPEC §1.2).
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

/** When `<timeout>` is off, rsync still gets an I/O timeout: a transfer that moves no data this long is stuck. */
export const DEFAULT_IO_TIMEOUT_SECONDS = 300;
/** How often the root's identity and the tree's mount points are looked at (inotify does not report mounts). */
const MOUNT_POLL_MS = 5000;
/** setTimeout's longest delay (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

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
  const limiter = new PQueue({ concurrency: opts.workers });
  // One guard per watch root, kept across reloads: a core built while a disk is unmounted must not take that as normal.
  // Its memory of mount points lives beside the retry queue (one instance, one file).
  const guardFile = (root: string) => (root === opts.config.watch ? queue.file.replace(/(\.queue)?\.json$/, '.mounts.json') : null);
  let guard = await DeletionGuard.create(opts.config.watch, { file: guardFile(opts.config.watch) });
  let stopping: Promise<number> | null = null;
  // Reloads, root follows and the stop run one at a time, in order: two at once could retire a core twice, or
  // restore one core's leftovers into lanes that the other had already stopped and saved.
  let lifecycle: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lifecycle.then(fn, fn);
    lifecycle = run.catch(() => {});
    return run;
  };
  const startedAt = new Date(clock.now()).toISOString();
  const events = { seen: 0, ignored: 0, counted: 0, lost: 0 };
  // Assigned once the first core is built; followRoot (the only early reader) checks it.
  let current = undefined as unknown as Core;

  const onAttempt = (lane: RemoteLane, r: AttemptReport) => {
    if (r.ok) {
      // A batch parked after exit 23 is still owed to this remote (its entry in the queue holds it).
      if (lane.parkedPaths === 0) queue.clear(lane.remote.id);
      return;
    }
    const now = new Date(clock.now()).toISOString();
    const prev = queue.remotes[lane.remote.id];
    queue.put(lane.remote.id, {
      full: r.batch.full,
      fullReason: r.batch.fullReason,
      entries: r.batch.full ? [] : r.batch.entries,
      attempts: (prev?.attempts ?? 0) + 1,
      lastExitCode: r.exitCode ?? null,
      lastError: r.error,
      firstFailedAt: prev?.firstFailedAt ?? now,
      lastAttemptAt: now,
      nextAttemptAt: r.nextAttemptAt === null ? null : new Date(r.nextAttemptAt).toISOString(),
    });
  };

  const buildCore = async (config: Config, initialSync: boolean): Promise<Core> => {
    const root = config.watch;
    const rootId = await identity(root);
    // A reload to another watch root gets its own guard, taken over once this core runs (below).
    const deletionGuard = current !== undefined && root !== current.config.watch ? await DeletionGuard.create(root, { file: guardFile(root) }) : guard;
    if (withoutUpdateFlag(config.rsync.commonParams).dropped) log.info(UPDATE_FLAG_NOTE.replace(/^note: /, ''));
    const filter = createPathFilter(filterRulesOf(config));
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
    const crontabFilters =
      config.crontab.enabled && config.crontab.filter.enabled ? config.crontab.filter.excludes.map((e) => `--exclude=${e}`) : [];
    const deps: LaneDeps = {
      clock,
      runner,
      limiter,
      log,
      rsyncPath,
      rootBytes: fromUtf8(root),
      untranslated: filter.untranslated,
      fullSyncFilters: crontabFilters,
      progress: (id) => progress.start(id),
      onSynced: afterSync ? (lane, batch, outcome) => afterSync.synced(lane.remote.id, batch, outcome) : undefined,
      retry: { baseMs: 1000, capMs: Math.min(config.failLog.retryCapMinutes * 60_000, MAX_TIMER_MS), random: Math.random },
      onAttempt,
      deletionGuard: () => deletionGuard.check(),
    };
    const lanes = config.remotes.map(
      (remote) => new RemoteLane(remote, commandContextFor(config, remote, filter, DEFAULT_IO_TIMEOUT_SECONDS), config.tuning, deps),
    );
    const onUnreadable = (path: string, cause: unknown) =>
      log.warn(
        { path: displayPath(path), code: errorCode(cause) },
        `cannot read ${displayPath(path)}: not watched or synced until it can be (looked at again every 30 s)`,
      );
    const mounts = new Map<string, boolean>();
    const onMountPoint = (path: string) => {
      deletionGuard.noteMountPoint(path);
      mounts.set(path, true);
      log.info({ path: displayPath(path) }, `${displayPath(path)} is a mount point: deletions below it are held while it is unmounted`);
    };
    const watcher =
      opts.createWatcher?.(config) ??
      (config.tuning.watcher === 'dirs' ? new DirWatcher({ onUnreadable, onMountPoint }) : new ChokidarWatcher());
    const core: Core = { config, lanes, watcher, crontab: null, rootId, afterSync, mounts };
    const fullSync = (reason: string) => {
      for (const lane of lanes) lane.requestFull(reason);
    };
    const started = clock.now();
    const closeWrites = new CloseWriteFilter(config.inotify, {
      clock,
      onDue: (path, hint) => {
        for (const lane of lanes) lane.add(path, hint);
      },
      onStillOpen: (path, seconds) => log.info({ path: displayPath(path), seconds }, stillOpenMessage(path, seconds)),
      seesCloseWrite: () => core.watcher.backend === 'inotify',
    });
    core.closeWrites = closeWrites;
    await core.watcher.start(
      root,
      (event) => {
        events.seen++;
        if (event.kind === 'lost') {
          events.lost++;
          log.warn({ reason: event.reason }, `events may have been lost (${event.reason}); scheduling a full sync`);
          fullSync(event.reason);
          closeWrites.reset();
          followRoot(core, event.reason).catch((err: unknown) => log.error({ err }, 'following the watch root failed'));
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
    guard = deletionGuard;
    const watches = core.watcher.watchCount();
    log.info(
      {
        watch: root,
        watcher: config.tuning.watcher,
        backend: core.watcher.backend,
        directories: watches,
        seconds: (clock.now() - started) / 1000,
        remotes: lanes.map((l) => l.remote.id),
      },
      `watching ${root}`,
    );
    if (core.watcher.backend === 'fs.watch') {
      log.warn(
        'watching with fs.watch: the native inotify reader is not built or cannot load (npm run build; it needs make, g++ and python3). ' +
          'Costs: an inotify queue overflow goes unnoticed (no full sync follows it), a stop or reload hands over pending events ' +
          'by waiting briefly instead of exactly, a file is taken as complete once it has had no event for 1 s (there is no close-write), ' +
          'and about twice the memory on large trees',
      );
    }
    if (limits.maxUserWatches !== null && watches > limits.maxUserWatches * 0.8) {
      log.warn(`${watches} directories watched of fs.inotify.max_user_watches=${limits.maxUserWatches}: raise it (see examples/sysctl)`);
    }
    if (initialSync) {
      if (config.filter.enabled && config.filter.excludes.length > 0) {
        log.info('-r with a realtime filter: sersync2 skipped -r; sersync-ts runs it with the filter as rsync excludes');
      }
      for (const lane of lanes) lane.requestFull('initial sync (-r)', { immediate: true });
    }
    if (config.crontab.enabled) {
      if (config.filter.enabled && config.filter.excludes.length > 0 && !config.crontab.filter.enabled) {
        log.info(
          'crontab with a realtime filter and no crontabfilter: sersync2 turned crontab off; sersync-ts keeps it, with the filter as rsync excludes',
        );
      }
      core.crontab = new Crontab(config.crontab.scheduleMinutes * 60_000, clock, () => {
        log.info('crontab: full sync of every remote');
        for (const lane of lanes) lane.requestFull('crontab', { immediate: true });
      });
      core.crontab.start();
    }
    return core;
  };

  /** A root that was removed or replaced: watch the new one when it is there (deletions stay held while empty). */
  const followRoot = async (core: Core, reason: string) => {
    if (core.following || stopping) return;
    core.following = true;
    try {
      for (;;) {
        if (stopping || current !== core) return;
        const id = await identity(core.config.watch);
        if (id !== null && id === core.rootId) return;
        if (id !== null) {
          log.warn({ reason }, `watch root ${core.config.watch} was replaced: watching the new one`);
          try {
            await serially(async () => {
              if (stopping || current !== core) return;
              await swapCore(core.config, false);
              for (const lane of current.lanes) lane.requestFull('watch root replaced');
            });
            return;
          } catch (err) {
            log.error({ err }, `cannot watch the new ${core.config.watch} yet; trying again in 2 s`);
          }
        }
        await new Promise<void>((r) => clock.setTimeout(r, 2000));
      }
    } finally {
      core.following = false;
    }
  };

  /**
   * inotify tells nobody of a mount: every MOUNT_POLL_MS the root's identity and the tree's mount points are looked
   * at, so a disk mounted again (or swapped) is watched anew and synced.
   */
  const pollMounts = async () => {
    const core = current;
    if (stopping) return;
    const id = await identity(core.config.watch);
    if (id !== null && id !== core.rootId) void followRoot(core, 'the watch root changed (mounted or unmounted)');
    for (const [path, mounted] of await guard.mountStates()) {
      const was = core.mounts.get(path) ?? true;
      core.mounts.set(path, mounted);
      if (was !== mounted) {
        log.warn({ path: displayPath(path), mounted }, `${displayPath(path)} was ${mounted ? 'mounted' : 'unmounted'}: looking at it again`);
        core.watcher.recheck?.(path);
      }
    }
  };
  const mountTimer = () => {
    clock.setTimeout(() => {
      if (stopping) return;
      pollMounts()
        .catch((err: unknown) => log.error({ err }, 'looking at the mount points failed'))
        .finally(mountTimer);
    }, MOUNT_POLL_MS);
  };

  current = await buildCore(opts.config, opts.initialSync);
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

  /** Stops one core: its watcher first, then its lanes get `graceMs` to send what is pending. */
  const retire = async (core: Core, graceMs: number) => {
    core.crontab?.stop();
    await core.watcher.close();
    core.closeWrites?.dispose();
    const flushed = Promise.all(core.lanes.map((l) => l.flush()));
    const timedOut = await Promise.race([flushed.then(() => false), sleep(graceMs).then(() => true)]);
    for (const lane of core.lanes) lane.stop();
    if (timedOut) {
      log.warn({ graceMs }, 'grace period over: stopping running rsync processes');
      for (const lane of core.lanes) lane.abortRunning();
    }
    await Promise.all(core.lanes.map((l) => l.whenIdle()));
    await core.afterSync?.close();
    // Files still open for writing were not sent; they are owed all the same (a stop keeps them in the queue).
    const open = (core.closeWrites?.openPaths() ?? []).map((path) => ({ path, tree: false, deletes: false }));
    return core.lanes.map((l) => ({ id: l.remote.id, rest: withEntries(l.unfinished(), open, clock.now()) }));
  };

  const swapCore = async (config: Config, initialSync: boolean) => {
    const old = current;
    const next = await buildCore(config, initialSync);
    current = next;
    // A remote that the old config did not have holds nothing yet: it gets a full sync.
    const known = new Set(old.lanes.map((l) => l.remote.id));
    for (const lane of next.lanes) if (!known.has(lane.remote.id)) lane.requestFull('remote added by a reload', { immediate: true });
    const leftovers = await retire(old, 10_000);
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

  let endpoint: StatusServer | null = null;
  const serveStatus = async (host: Config['host']) => {
    if (opts.statusEndpoint === false) return;
    try {
      endpoint = await startStatusServer({ host: host.ip, port: host.port, source: daemon, log });
    } catch (err) {
      // Several sersync instances on one machine share sersync2's default localhost:8008: syncing matters more.
      log.warn(
        { host: host.ip, port: host.port },
        `no status endpoint: ${err instanceof Error ? err.message : String(err)}; syncing goes on (give each config its own <host port>)`,
      );
    }
  };

  /** Stores what a lane still owes a remote, keeping the record of earlier failures. */
  const keep = (id: string, rest: Batch, why: string) => {
    const prev = queue.remotes[id];
    const now = new Date(clock.now()).toISOString();
    queue.put(id, {
      full: rest.full,
      fullReason: rest.fullReason,
      entries: rest.full ? [] : rest.entries,
      attempts: prev?.attempts ?? 0,
      lastExitCode: prev?.lastExitCode ?? null,
      lastError: prev?.lastError ?? why,
      firstFailedAt: prev?.firstFailedAt ?? now,
      lastAttemptAt: prev?.lastAttemptAt ?? now,
      nextAttemptAt: null,
    });
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
    snapshot: (): DaemonStatus => {
      const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
      const now = clock.now();
      return {
        version: opts.version ?? '0.0.0',
        pid: process.pid,
        startedAt,
        now: iso(now) as string,
        watch: current.config.watch,
        watcher: current.config.tuning.watcher,
        watchBackend: current.watcher.backend ?? current.config.tuning.watcher,
        watches: current.watcher.watchCount(),
        unreadable: unreadableSummary(current.watcher.unreadablePaths?.() ?? []),
        maxUserWatches: limits.maxUserWatches,
        events: { ...events },
        retryQueue: { file: queue.file, entries: queue.size, writeError: queue.writeError },
        crontab: { enabled: current.crontab !== null, nextAt: iso(current.crontab?.nextAt ?? null) },
        remotes: current.lanes.map((lane): RemoteStatus => {
          const s = lane.stats;
          const stored = queue.remotes[lane.remote.id];
          const oldest = lane.oldestChange;
          return {
            id: lane.remote.id,
            kind: lane.remote.kind,
            pendingPaths: lane.pendingPaths + (lane.fullPending ? 1 : 0),
            pendingFullSync: lane.fullPending,
            oldestPendingSeconds: oldest === null ? null : (now - oldest) / 1000,
            rsyncRunning: lane.busy,
            batches: s.batches,
            fullSyncs: s.fullSyncs,
            rsyncRuns: { ...s.runsByVerdict },
            pathsSynced: s.pathsSynced,
            bytesSent: s.bytesSent,
            renames: s.renames,
            renameBytesSaved: s.renameBytesSaved,
            consecutiveFailures: s.consecutiveFailures,
            lastSuccessAt: iso(s.lastSuccessAt),
            lastError: s.lastError,
            degraded: s.degraded,
            holdingDeletions: lane.holding,
            holdReason: lane.holdReason,
            retryQueued: stored ? (stored.full ? 1 : stored.entries.length) : 0,
            nextRetryAt: iso(lane.nextAttemptAt),
          };
        }),
      };
    },
    reload: (config) =>
      serially(async () => {
        if (stopping) {
          log.warn('stopping: the new config is not applied');
          return;
        }
        log.info({ file: config.file }, 'reloading the config');
        const before = current.config.host;
        await swapCore(config, false);
        if (before.ip !== config.host.ip || before.port !== config.host.port) {
          await endpoint?.close();
          endpoint = null;
          await serveStatus(config.host);
        }
        log.info('config reloaded');
      }),
    releaseHold: () => {
      log.warn('hold released by the operator: held deletions go now, and the present mounts are taken as normal');
      guard.release().then(
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
        if (rest) keep(lane.remote.id, rest, 'pending at a crash');
      }
    },
    stop: (reason, graceMs = 10_000) => {
      // After a reload or root follow in progress, never beside it.
      stopping ??= serially(async () => {
        log.info({ reason }, 'stopping: sending what is pending');
        const leftovers = await retire(current, graceMs);
        let left = 0;
        for (const { id, rest } of leftovers) {
          if (!rest) {
            queue.clear(id);
            continue;
          }
          left += rest.full ? 1 : rest.entries.length;
          keep(id, rest, 'pending at shutdown');
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
  await serveStatus(opts.config.host);
  return daemon;
}

interface Core {
  readonly config: Config;
  readonly lanes: readonly RemoteLane[];
  readonly watcher: Watcher;
  crontab: Crontab | null;
  readonly rootId: string | null;
  readonly afterSync: AfterSync | null;
  following?: boolean;
  closeWrites?: CloseWriteFilter;
  /** Whether each mount point of the tree was mounted at the last poll. */
  readonly mounts: Map<string, boolean>;
}

/** A lane's unfinished batch with more entries (a full sync covers them). */
function withEntries(batch: Batch | null, entries: readonly PendingEntry[], now: number): Batch | null {
  if (entries.length === 0) return batch;
  if (batch === null) return { full: false, fullReason: '', entries, since: now };
  return batch.full ? batch : { ...batch, entries: [...batch.entries, ...entries] };
}

function unreadableSummary(paths: readonly string[]): DaemonStatus['unreadable'] {
  return { count: paths.length, sample: paths.slice(0, 20).map(displayPath) };
}

async function identity(path: string): Promise<string | null> {
  try {
    const st = await stat(path);
    return st.isDirectory() ? `${st.dev}:${st.ino}` : null;
  } catch {
    return null;
  }
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
