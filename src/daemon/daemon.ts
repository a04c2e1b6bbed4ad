import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Config } from '../config/model.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { displayPath, fromUtf8 } from '../core/paths.ts';
import { Crontab } from '../recovery/crontab.ts';
import { type ProcessRunner, execaRunner } from '../sync/process-runner.ts';
import { RemoteLane, type LaneDeps } from '../sync/remote-lane.ts';
import type { CommandContext } from '../sync/rsync-command.ts';
import { changeHintFor } from '../watch/change-hint.ts';
import { ChokidarWatcher } from '../watch/chokidar-watcher.ts';
import { createPathFilter } from '../watch/path-filter.ts';
import type { Watcher } from '../watch/watcher.ts';

/**
 * The composition root: the one place that wires real clock, processes and watcher into the pure core.
 * Order matters for completeness: watch first, then the `-r` full sync, so nothing changed during a long initial
 * sync is lost (sersync2 did it the other way round, SPEC §1.2).
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
  readonly watcher?: Watcher;
}

export interface RunningDaemon {
  readonly lanes: readonly RemoteLane[];
  readonly watcher: Watcher;
  /** Stops watching, sends what is pending within `graceMs`, then stops rsync. Resolves with the exit code. */
  stop(reason: string, graceMs?: number): Promise<number>;
}

/** When `<timeout>` is off, rsync still gets an I/O timeout: a transfer that moves no data this long is stuck. */
const DEFAULT_IO_TIMEOUT_SECONDS = 300;

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { config, log } = opts;
  const clock = opts.clock ?? systemClock;
  const runner = opts.runner ?? execaRunner;
  const rsyncPath = opts.rsyncPath ?? 'rsync';
  await checkRsync(runner, rsyncPath);

  const filter = createPathFilter({ dotFiles: config.tuning.dotFiles, regexes: config.filter.enabled ? config.filter.excludes : [] });
  if (filter.untranslated.length > 0) {
    log.info(
      { regexes: filter.untranslated.map((r) => r.source) },
      'these filter regexes have no rsync pattern; directory and full syncs list the matching paths as excludes',
    );
  }
  const limiter = new PQueue({ concurrency: opts.workers });
  const crontabFilters =
    config.crontab.enabled && config.crontab.filter.enabled ? config.crontab.filter.excludes.map((e) => `--exclude=${e}`) : [];
  const deps: LaneDeps = {
    clock,
    runner,
    limiter,
    log,
    rsyncPath,
    rootBytes: fromUtf8(config.watch),
    untranslated: filter.untranslated,
    fullSyncFilters: crontabFilters,
    retry: { baseMs: 1000, capMs: config.failLog.retryCapMinutes * 60_000, random: Math.random },
  };
  const lanes = config.remotes.map((remote) => {
    const ctx: CommandContext = {
      watch: config.watch,
      remote,
      rsync: config.rsync,
      deletes: config.inotify.delete,
      filters: filter.rsyncFilters,
      defaultTimeoutSeconds: DEFAULT_IO_TIMEOUT_SECONDS,
    };
    return new RemoteLane(remote, ctx, config.tuning, deps);
  });

  const watcher = opts.watcher ?? new ChokidarWatcher();
  const started = clock.now();
  await watcher.start(
    config.watch,
    (event) => {
      if (event.kind === 'lost') {
        log.warn({ reason: event.reason }, `events may have been lost (${event.reason}); scheduling a full sync`);
        for (const lane of lanes) lane.requestFull(event.reason);
        return;
      }
      const change = changeHintFor(event, config.inotify);
      if (log.isLevelEnabled('debug')) log.debug({ event: event.kind, op: event.op, path: displayPath(event.path), counted: change !== null }, 'watch event');
      if (change === null) return;
      for (const lane of lanes) lane.add(change.path, change.hint);
    },
    { isIgnored: (path, isDir) => filter.isExcluded(path, isDir) },
  );
  log.info(
    { watch: config.watch, directories: watcher.watchCount(), seconds: (clock.now() - started) / 1000, remotes: lanes.map((l) => l.remote.id) },
    `watching ${config.watch}`,
  );

  if (opts.initialSync) {
    for (const lane of lanes) lane.requestFull('initial sync (-r)', { immediate: true });
  }
  const crontab = config.crontab.enabled
    ? new Crontab(config.crontab.scheduleMinutes * 60_000, clock, () => {
        log.info('crontab: full sync of every remote');
        for (const lane of lanes) lane.requestFull('crontab', { immediate: true });
      })
    : null;
  crontab?.start();

  let stopping: Promise<number> | null = null;
  const stop = (reason: string, graceMs = 10_000): Promise<number> => {
    stopping ??= (async () => {
      log.info({ reason }, 'stopping: sending what is pending');
      crontab?.stop();
      await watcher.close();
      const flushed = Promise.all(lanes.map((l) => l.flush()));
      const timedOut = await Promise.race([flushed.then(() => false), delay(graceMs).then(() => true)]);
      for (const lane of lanes) lane.stop();
      if (timedOut) {
        log.warn({ graceMs }, 'grace period over: stopping running rsync processes');
        for (const lane of lanes) lane.abortRunning();
      }
      await Promise.all(lanes.map((l) => l.whenIdle()));
      let left = 0;
      for (const lane of lanes) {
        const rest = lane.unfinished();
        if (rest) left += rest.full ? 1 : rest.entries.length;
      }
      if (left > 0) log.warn({ left }, 'stopped with changes not yet on every remote');
      log.info('stopped');
      return ExitCode.Ok;
    })();
    return stopping;
  };
  return { lanes, watcher, stop };
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

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
