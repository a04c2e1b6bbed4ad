import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderMetrics } from '../../src/observe/metrics.ts';
import type { DaemonStatus, RemoteStatus } from '../../src/observe/status-model.ts';

const REMOTE: RemoteStatus = {
  id: '10.0.0.2::www',
  kind: 'daemon',
  pendingPaths: 17,
  pendingFullSync: false,
  oldestPendingSeconds: 42.5,
  rsyncRunning: true,
  batches: 40,
  fullSyncs: 1,
  rsyncRuns: { ok: 37, partial: 1, retry: 2, config: 0 },
  pathsSynced: 900,
  bytesSent: 1048576,
  renames: 2,
  renameBytesSaved: 33554432,
  consecutiveFailures: 2,
  lastSuccessAt: '2026-11-25T12:05:18.250Z',
  lastError: 'rsync exit 10: error in socket IO',
  degraded: true,
  holdingDeletions: false,
  holdReason: null,
  retryQueued: 2,
  nextRetryAt: '2026-11-25T12:06:00.000Z',
};

const STATUS: DaemonStatus = {
  sitesNotStarted: [],
  version: '0.1.0',
  pid: 4242,
  startedAt: '2026-11-25T10:00:00.000Z',
  now: '2026-11-25T12:05:30.500Z',
  watch: '/data/www',
  watcher: 'dirs',
  watchBackend: 'fs.watch',
  watches: 1234,
  unreadable: { count: 2, sample: ['private', 'bad/disk'] },
  maxUserWatches: 65536,
  events: { seen: 12345, ignored: 10, counted: 12000, lost: 1 },
  retryQueue: { file: '/var/lib/sersync-ts/retry-queue.json', entries: 3, writeError: null },
  crontab: { enabled: true, nextAt: '2026-11-25T12:17:30.000Z' },
  remotes: [REMOTE],
  // One site: the per-remote series come from `remotes`, without a site label.
  sites: [],
};

/** The samples only (no HELP/TYPE), for a readable comparison of the figures. */
function samples(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

test('renderMetrics: every figure of the status, exactly', () => {
  const text = renderMetrics(STATUS);
  assert.ok(
    text.includes(
      '# HELP sersync_rsync_runs_total rsync processes that ended, by result: ok, partial (exit 23/24), retry (will be retried), config (needs a config change).\n' +
        '# TYPE sersync_rsync_runs_total counter\n' +
        'sersync_rsync_runs_total{remote="10.0.0.2::www",result="ok"} 37\n',
    ),
  );
  assert.deepEqual(samples(text), [
    'sersync_info{version="0.1.0",watch="/data/www",watcher="dirs",backend="fs.watch"} 1',
    'sersync_unwatched_paths 2',
    'sersync_sites_not_started 0',
    'sersync_start_time_seconds 1795600800',
    'sersync_uptime_seconds 7530.5',
    'sersync_watches 1234',
    'sersync_max_user_watches 65536',
    'sersync_events_seen_total 12345',
    'sersync_events_ignored_total 10',
    'sersync_events_counted_total 12000',
    'sersync_events_lost_total 1',
    'sersync_retry_queue_entries 3',
    'sersync_retry_queue_write_failing 0',
    'sersync_crontab_enabled 1',
    'sersync_crontab_next_timestamp_seconds 1795609050',
    'sersync_remote_info{remote="10.0.0.2::www",kind="daemon"} 1',
    'sersync_batches_total{remote="10.0.0.2::www"} 40',
    'sersync_full_syncs_total{remote="10.0.0.2::www"} 1',
    'sersync_rsync_runs_total{remote="10.0.0.2::www",result="ok"} 37',
    'sersync_rsync_runs_total{remote="10.0.0.2::www",result="partial"} 1',
    'sersync_rsync_runs_total{remote="10.0.0.2::www",result="retry"} 2',
    'sersync_rsync_runs_total{remote="10.0.0.2::www",result="config"} 0',
    'sersync_paths_synced_total{remote="10.0.0.2::www"} 900',
    'sersync_bytes_sent_total{remote="10.0.0.2::www"} 1048576',
    'sersync_renames_total{remote="10.0.0.2::www"} 2',
    'sersync_rename_bytes_saved_total{remote="10.0.0.2::www"} 33554432',
    'sersync_pending_paths{remote="10.0.0.2::www"} 17',
    'sersync_pending_full_sync{remote="10.0.0.2::www"} 0',
    'sersync_oldest_pending_age_seconds{remote="10.0.0.2::www"} 42.5',
    'sersync_rsync_running{remote="10.0.0.2::www"} 1',
    'sersync_consecutive_failures{remote="10.0.0.2::www"} 2',
    'sersync_retry_queue_paths{remote="10.0.0.2::www"} 2',
    'sersync_next_retry_timestamp_seconds{remote="10.0.0.2::www"} 1795608360',
    'sersync_last_success_timestamp_seconds{remote="10.0.0.2::www"} 1795608318.25',
    'sersync_degraded{remote="10.0.0.2::www"} 1',
    'sersync_holding_deletions{remote="10.0.0.2::www"} 0',
  ]);
});

test('renderMetrics: each family has HELP then TYPE, then its samples; counters end in _total; the text ends with a newline', () => {
  const text = renderMetrics({ ...STATUS, remotes: [REMOTE, { ...REMOTE, id: 'mirror@10.0.0.3:/srv/www', kind: 'ssh' }] });
  assert.ok(text.endsWith('\n') && !text.endsWith('\n\n'));
  const lines = text.slice(0, -1).split('\n');
  const seen = new Set<string>();
  let family = '';
  let type = '';
  for (const [i, line] of lines.entries()) {
    const help = /^# HELP (sersync_[a-z_]+) \S.*$/.exec(line);
    if (help) {
      family = help[1] as string;
      assert.ok(!seen.has(family), `${family} appears once`);
      seen.add(family);
      const t = new RegExp(`^# TYPE ${family} (counter|gauge)$`).exec(lines[i + 1] ?? '');
      assert.ok(t, `TYPE follows HELP for ${family}: ${lines[i + 1]}`);
      type = t[1] as string;
      assert.equal(family.endsWith('_total'), type === 'counter', `${family} is a ${type}`);
      continue;
    }
    if (line.startsWith('# TYPE ')) continue;
    const sample =
      /^([a-z_]+)(\{[a-z_]+="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-z_]+="(?:[^"\\\n]|\\[\\"n])*")*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(sample, `a well-formed sample line: ${line}`);
    assert.equal(sample[1], family, `${line} belongs to ${family}`);
  }
  // Both remotes appear in every per-remote family.
  assert.equal(lines.filter((l) => l.startsWith('sersync_pending_paths{')).length, 2);
  assert.equal(lines.filter((l) => l.startsWith('sersync_rsync_runs_total{')).length, 8);
});

test('renderMetrics: label values escape backslash, double quote and line feed; invalid UTF-16 becomes U+FFFD', () => {
  const id = 'we"ird\\name\nnext\uD800end';
  const text = renderMetrics({ ...STATUS, watch: '/srv/a"b', remotes: [{ ...REMOTE, id }] });
  assert.ok(text.includes('sersync_info{version="0.1.0",watch="/srv/a\\"b",watcher="dirs",backend="fs.watch"} 1'));
  assert.ok(text.includes('sersync_pending_paths{remote="we\\"ird\\\\name\\nnext\uFFFDend"} 17'), text);
  assert.ok(!/[\uD800-\uDFFF]/.test(text), 'no lone surrogate left');
  // The raw line feed never splits a sample line.
  for (const line of text.split('\n')) assert.ok(line === '' || line.startsWith('#') || line.startsWith('sersync_'), line);
});

test('renderMetrics: "never" and "nothing pending" are 0; an unknown watch limit has no sample', () => {
  const idle: RemoteStatus = {
    ...REMOTE,
    pendingPaths: 0,
    oldestPendingSeconds: null,
    rsyncRunning: false,
    lastSuccessAt: null,
    nextRetryAt: null,
    degraded: false,
    holdingDeletions: true,
  };
  const text = renderMetrics({ ...STATUS, maxUserWatches: null, crontab: { enabled: false, nextAt: null }, remotes: [idle] });
  const lines = samples(text);
  for (const expected of [
    'sersync_oldest_pending_age_seconds{remote="10.0.0.2::www"} 0',
    'sersync_last_success_timestamp_seconds{remote="10.0.0.2::www"} 0',
    'sersync_next_retry_timestamp_seconds{remote="10.0.0.2::www"} 0',
    'sersync_holding_deletions{remote="10.0.0.2::www"} 1',
    'sersync_crontab_enabled 0',
    'sersync_crontab_next_timestamp_seconds 0',
  ]) {
    assert.ok(lines.includes(expected), `has ${expected}`);
  }
  assert.ok(text.includes('# TYPE sersync_max_user_watches gauge\n# HELP'), 'HELP/TYPE kept, sample left out');
  assert.ok(!lines.some((l) => l.startsWith('sersync_max_user_watches')));
});

test('renderMetrics: no remotes gives the daemon figures and empty per-remote families', () => {
  const lines = samples(renderMetrics({ ...STATUS, remotes: [] }));
  assert.ok(lines.includes('sersync_events_seen_total 12345'));
  assert.ok(!lines.some((l) => l.includes('remote=')));
});

test('renderMetrics: with several sites, each remote series also names its site', () => {
  const site = (watch: string, id: string) => ({ ...STATUS, watch, watchingSince: STATUS.startedAt, remotes: [{ ...REMOTE, id }] });
  const lines = samples(renderMetrics({ ...STATUS, sites: [site('/a', 'h::m'), site('/b', 'h::m')] }));
  assert.deepEqual(
    lines.filter((l) => l.startsWith('sersync_remote_info')),
    ['sersync_remote_info{remote="h::m",kind="daemon",site="/a"} 1', 'sersync_remote_info{remote="h::m",kind="daemon",site="/b"} 1'],
  );
  assert.ok(lines.includes('sersync_rsync_runs_total{remote="h::m",result="ok",site="/b"} 37'), lines.join('\n'));
});
