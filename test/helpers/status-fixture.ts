import type { DaemonStatus, RemoteStatus } from '../../src/observe/status-model.ts';

/** A status with one remote in each state (ok, syncing, degraded, holding deletions), for the observe tests. */

export const IDLE: RemoteStatus = {
  id: '10.0.0.2::www',
  kind: 'daemon',
  pendingPaths: 0,
  pendingFullSync: false,
  oldestPendingSeconds: null,
  rsyncRunning: false,
  batches: 40,
  fullSyncs: 1,
  rsyncRuns: { ok: 40, partial: 1, retry: 0, config: 0 },
  pathsSynced: 900,
  bytesSent: 1048576,
  renames: 0,
  renameBytesSaved: 0,
  consecutiveFailures: 0,
  lastSuccessAt: '2026-11-25T12:05:18.000Z',
  lastError: null,
  degraded: false,
  holdingDeletions: false,
  holdReason: null,
  retryQueued: 0,
  nextRetryAt: null,
};

export function statusFixture(watch: string, degradedError = 'rsync exit 12: <connection> unexpectedly closed & "gone"'): DaemonStatus {
  const status = {
    version: '0.1.0',
    pid: 4242,
    startedAt: '2026-11-25T10:00:00.000Z',
    now: '2026-11-25T12:05:30.000Z',
    watch,
    watcher: 'dirs',
    watchBackend: 'inotify',
    watches: 1234,
    unreadable: { count: 0, sample: [] },
    maxUserWatches: 65536,
    events: { seen: 12345, ignored: 10, counted: 12000, lost: 0 },
    retryQueue: { file: '/var/lib/sersync-ts/retry-queue.json', entries: 3, writeError: null },
    crontab: { enabled: true, nextAt: '2026-11-25T12:17:30.000Z' },
    remotes: [
      IDLE,
      { ...IDLE, id: '10.0.0.3::www', pendingPaths: 17, oldestPendingSeconds: 42.5, rsyncRunning: true },
      {
        ...IDLE,
        id: 'mirror@10.0.0.4:/srv/www',
        kind: 'ssh',
        pendingPaths: 5,
        oldestPendingSeconds: 400,
        rsyncRuns: { ok: 37, partial: 0, retry: 3, config: 0 },
        consecutiveFailures: 3,
        lastSuccessAt: '2026-11-25T11:58:00.000Z',
        lastError: degradedError,
        degraded: true,
        retryQueued: 2,
        nextRetryAt: '2026-11-25T12:06:00.000Z',
      },
      { ...IDLE, id: '/mnt/backup', kind: 'local', lastSuccessAt: null, holdingDeletions: true },
    ],
    sitesNotStarted: [],
  } satisfies Omit<DaemonStatus, 'sites'>;
  const { watcher, watchBackend, watches, unreadable, retryQueue, crontab, remotes } = status;
  return {
    ...status,
    sites: [{ watch, watcher, watchBackend, watchingSince: status.startedAt, watches, unreadable, retryQueue, crontab, remotes }],
  };
}
