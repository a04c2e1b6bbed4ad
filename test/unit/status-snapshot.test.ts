import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type LaneView, statusSnapshot } from '../../src/observe/status-snapshot.ts';

const T0 = Date.UTC(2026, 0, 1);

function lane(id: string, over: Partial<LaneView> = {}): LaneView {
  return {
    remote: { id, kind: 'daemon' },
    stats: {
      batches: 3,
      fullSyncs: 1,
      runsByVerdict: { ok: 4, partial: 1, retry: 0, config: 0 },
      pathsSynced: 10,
      bytesSent: 2048,
      renames: 0,
      renameBytesSaved: 0,
      consecutiveFailures: 0,
      lastSuccessAt: T0 - 1000,
      lastError: null,
      degraded: false,
    },
    pendingPaths: 2,
    fullPending: false,
    oldestChange: null,
    busy: false,
    holding: false,
    holdReason: null,
    nextAttemptAt: null,
    ...over,
  };
}

test('the snapshot: a pending full sync counts as one path, the retry queue per remote, times as ISO and seconds', () => {
  const s = statusSnapshot({
    version: '1.2.3',
    startedAt: new Date(T0 - 60_000).toISOString(),
    now: T0,
    sites: [
      {
        config: { watch: '/w', tuning: { watcher: 'dirs' } },
        watcher: { backend: 'inotify', watchCount: () => 7, unreadablePaths: () => Array.from({ length: 25 }, (_, i) => `d${i}`) },
        watchingSince: T0 - 30_000,
        lanes: [lane('a', { fullPending: true, oldestChange: T0 - 1500, nextAttemptAt: T0 + 2000 }), lane('b')],
        crontab: { nextAt: T0 + 60_000 },
        queue: {
          file: '/q.json',
          size: 4,
          writeError: null,
          remotes: { a: { full: true, entries: [] }, b: { full: false, entries: { length: 3 } } },
        },
      },
    ],
    maxUserWatches: 8192,
    events: { seen: 5, ignored: 1, counted: 4, lost: 0 },
  });
  assert.equal(s.now, new Date(T0).toISOString());
  assert.equal(s.watchBackend, 'inotify');
  assert.equal(s.watches, 7);
  assert.deepEqual([s.unreadable.count, s.unreadable.sample.length], [25, 20]);
  assert.deepEqual(s.crontab, { enabled: true, nextAt: new Date(T0 + 60_000).toISOString() });
  const [a, b] = s.remotes;
  assert.ok(a && b);
  assert.deepEqual([a.pendingPaths, a.pendingFullSync, a.oldestPendingSeconds, a.retryQueued], [3, true, 1.5, 1]);
  assert.equal(a.nextRetryAt, new Date(T0 + 2000).toISOString());
  assert.deepEqual(
    [b.pendingPaths, b.oldestPendingSeconds, b.retryQueued, b.lastSuccessAt],
    [2, null, 3, new Date(T0 - 1000).toISOString()],
  );
});

test('the snapshot without a crontab, and with a watcher that names no backend, names the configured watcher', () => {
  const s = statusSnapshot({
    version: '1',
    startedAt: '',
    now: T0,
    sites: [
      {
        config: { watch: '/w', tuning: { watcher: 'chokidar' } },
        watcher: { watchCount: () => 0 },
        watchingSince: T0,
        lanes: [],
        crontab: null,
        queue: { file: '/q.json', size: 0, writeError: 'ENOSPC', remotes: {} },
      },
    ],
    maxUserWatches: null,
    events: { seen: 0, ignored: 0, counted: 0, lost: 0 },
  });
  assert.deepEqual(s.crontab, { enabled: false, nextAt: null });
  assert.equal(s.watchBackend, 'chokidar');
  assert.deepEqual(s.unreadable, { count: 0, sample: [] });
  assert.equal(s.retryQueue.writeError, 'ENOSPC');
});

test('several sites: the top level is the first site, with watches, queue entries and remotes over all; each site has its own section', () => {
  const site = (watch: string, id: string, watches: number, queued: number) => ({
    config: { watch, tuning: { watcher: 'dirs' as const } },
    watcher: { backend: 'inotify', watchCount: () => watches },
    watchingSince: T0 - 1000,
    lanes: [lane(id)],
    crontab: null,
    queue: { file: `${watch}.json`, size: queued, writeError: null, remotes: {} },
  });
  const s = statusSnapshot({
    version: '1',
    startedAt: '',
    now: T0,
    sites: [site('/a', 'ra', 3, 1), site('/b', 'rb', 4, 2)],
    maxUserWatches: null,
    events: { seen: 0, ignored: 0, counted: 0, lost: 0 },
  });
  assert.deepEqual([s.watch, s.watches, s.retryQueue.file, s.retryQueue.entries], ['/a', 7, '/a.json', 3]);
  assert.deepEqual(
    s.remotes.map((r) => r.id),
    ['ra', 'rb'],
  );
  assert.deepEqual(
    s.sites.map((x) => [x.watch, x.watches, x.watchingSince, x.remotes.map((r) => r.id)]),
    [
      ['/a', 3, new Date(T0 - 1000).toISOString(), ['ra']],
      ['/b', 4, new Date(T0 - 1000).toISOString(), ['rb']],
    ],
  );
});

test('no site running (every new site of a reload failed to start): the snapshot still answers, with no remotes', () => {
  const s = statusSnapshot({
    version: '1',
    startedAt: '',
    now: T0,
    sites: [],
    maxUserWatches: null,
    events: { seen: 0, ignored: 0, counted: 0, lost: 0 },
  });
  assert.deepEqual([s.watch, s.watches, s.remotes, s.sites], ['', 0, [], []]);
});
