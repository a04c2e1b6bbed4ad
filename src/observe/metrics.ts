/**
 * The daemon's status in the Prometheus text exposition format 0.0.4, for `GET /metrics`. Pure: the same
 * DaemonStatus always gives the same text, so a test can compare whole lines.
 *
 * Conventions: counters end in `_total`; times are seconds; "never" and "nothing pending" are 0, so an alert such as
 * `time() - sersync_last_success_timestamp_seconds > 3600` also fires for a remote that never succeeded. Per-remote
 * series carry the label `remote` (the config's remote id, `ip::name`, `ip:name` or the local path), and with several
 * `<localpath>` also `site` (the watch directory).
 */
import type { DaemonStatus, RemoteStatus } from './status-model.ts';

/** The Content-Type of {@link renderMetrics}'s text. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Readonly<Record<string, string>>;
interface Sample {
  readonly labels?: Labels;
  readonly value: number;
}
interface Family {
  readonly name: string;
  readonly type: 'counter' | 'gauge';
  readonly help: string;
  readonly samples: readonly Sample[];
}

/** Half of a UTF-16 surrogate pair without its other half: not encodable as UTF-8. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const RSYNC_RESULTS = ['ok', 'partial', 'retry', 'config'] as const;

/** Renders every metric family, HELP and TYPE first, one sample per line, ending with a newline. */
export function renderMetrics(status: DaemonStatus): string {
  const lines: string[] = [];
  for (const family of families(status)) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    for (const s of family.samples) lines.push(`${family.name}${renderLabels(s.labels)} ${formatValue(s.value)}`);
  }
  return `${lines.join('\n')}\n`;
}

function families(st: DaemonStatus): Family[] {
  const started = seconds(st.startedAt);
  // With several sites, a remote's series also name its site: two sites may send to the same host and module name.
  const remotes: { r: RemoteStatus; site: Labels }[] =
    st.sites.length > 1
      ? st.sites.flatMap((site) => site.remotes.map((r) => ({ r, site: { site: site.watch } })))
      : st.remotes.map((r) => ({ r, site: {} }));
  const perRemote = (value: (r: RemoteStatus) => number, labels: (r: RemoteStatus) => Labels = () => ({})): Sample[] =>
    remotes.map(({ r, site }) => ({ labels: { remote: r.id, ...labels(r), ...site }, value: value(r) }));
  const flag = (b: boolean) => (b ? 1 : 0);
  const gauge = (name: string, help: string, samples: Sample[]): Family => ({ name: `sersync_${name}`, type: 'gauge', help, samples });
  const counter = (name: string, help: string, samples: Sample[]): Family => ({ name: `sersync_${name}`, type: 'counter', help, samples });
  const one = (value: number): Sample[] => [{ value }];

  return [
    gauge('info', 'Always 1; the labels say which sersync-ts runs and how it watches.', [
      { labels: { version: st.version, watch: st.watch, watcher: st.watcher, backend: st.watchBackend }, value: 1 },
    ]),
    gauge(
      'unwatched_paths',
      'Paths that could not be read (EACCES, EIO …): neither watched nor synced until they can be.',
      one(st.unreadable.count),
    ),
    gauge(
      'sites_not_started',
      'Sites (<localpath>) of the config that the last reload could not start; /status says why.',
      one(st.sitesNotStarted.length),
    ),
    gauge('start_time_seconds', 'When the daemon started, in seconds since the Unix epoch.', one(started)),
    gauge('uptime_seconds', 'Seconds since the daemon started.', one(Math.max(0, seconds(st.now) - started))),
    gauge('watches', 'Directories (dirs watcher) or paths (chokidar) being watched.', one(st.watches)),
    gauge(
      'max_user_watches',
      'The kernel limit fs.inotify.max_user_watches; no sample when it could not be read.',
      st.maxUserWatches === null ? [] : one(st.maxUserWatches),
    ),
    counter('events_seen_total', 'Watcher events seen.', one(st.events.seen)),
    counter('events_ignored_total', 'Watcher events dropped by the <inotify> toggles or the filters.', one(st.events.ignored)),
    counter('events_counted_total', "Watcher events passed on to the remotes' aggregators.", one(st.events.counted)),
    counter(
      'events_lost_total',
      'Times the watcher reported that events may have been lost (each schedules a full sync).',
      one(st.events.lost),
    ),
    gauge('retry_queue_entries', 'Entries in the durable retry queue file, all remotes together.', one(st.retryQueue.entries)),
    gauge(
      'retry_queue_write_failing',
      '1 while the retry queue cannot be written (full disk, I/O error): it is kept in memory and written again.',
      one(flag(st.retryQueue.writeError !== null)),
    ),
    gauge('crontab_enabled', '1 if the periodic full sync (<crontab>) is on.', one(flag(st.crontab.enabled))),
    gauge(
      'crontab_next_timestamp_seconds',
      'When the next periodic full sync is due, in seconds since the Unix epoch; 0 when none is scheduled.',
      one(st.crontab.nextAt === null ? 0 : seconds(st.crontab.nextAt)),
    ),
    gauge(
      'remote_info',
      'Always 1 per remote; the kind label says how it is reached (daemon, ssh, local).',
      perRemote(
        () => 1,
        (r) => ({ kind: r.kind }),
      ),
    ),
    counter(
      'batches_total',
      'Batches of changed paths sent to the remote.',
      perRemote((r) => r.batches),
    ),
    counter(
      'full_syncs_total',
      'Full syncs of the whole watch directory to the remote.',
      perRemote((r) => r.fullSyncs),
    ),
    counter(
      'rsync_runs_total',
      'rsync processes that ended, by result: ok, partial (exit 23/24), retry (will be retried), config (needs a config change).',
      remotes.flatMap(({ r, site }) =>
        RSYNC_RESULTS.map((result) => ({ labels: { remote: r.id, result, ...site }, value: r.rsyncRuns[result] })),
      ),
    ),
    counter(
      'paths_synced_total',
      'Paths sent to the remote by successful batches.',
      perRemote((r) => r.pathsSynced),
    ),
    counter(
      'bytes_sent_total',
      'Bytes rsync reported as sent to the remote.',
      perRemote((r) => r.bytesSent),
    ),
    counter(
      'renames_total',
      'Renamed paths sent with the remote copy of their old name as the basis, instead of their data.',
      perRemote((r) => r.renames),
    ),
    counter(
      'rename_bytes_saved_total',
      "Bytes renames did not send again: the renamed trees' size minus the bytes rsync sent for them (an estimate).",
      perRemote((r) => r.renameBytesSaved),
    ),
    gauge(
      'pending_paths',
      'Paths waiting to be sent to the remote (a pending full sync counts as one).',
      perRemote((r) => r.pendingPaths),
    ),
    gauge(
      'pending_full_sync',
      '1 if a full sync of the remote is pending.',
      perRemote((r) => flag(r.pendingFullSync)),
    ),
    gauge(
      'oldest_pending_age_seconds',
      'Age of the oldest change not yet on the remote (pending or in flight); 0 when the remote is up to date.',
      perRemote((r) => r.oldestPendingSeconds ?? 0),
    ),
    gauge(
      'rsync_running',
      '1 while an rsync process for the remote runs.',
      perRemote((r) => flag(r.rsyncRunning)),
    ),
    gauge(
      'consecutive_failures',
      'rsync runs for the remote that failed in a row since its last success.',
      perRemote((r) => r.consecutiveFailures),
    ),
    gauge(
      'retry_queue_paths',
      'Paths of the remote in the durable retry queue (a stored full sync counts as one).',
      perRemote((r) => r.retryQueued),
    ),
    gauge(
      'next_retry_timestamp_seconds',
      'When the retry queue is next replayed for the remote, in seconds since the Unix epoch; 0 when nothing waits.',
      perRemote((r) => (r.nextRetryAt === null ? 0 : seconds(r.nextRetryAt))),
    ),
    gauge(
      'last_success_timestamp_seconds',
      'When rsync last succeeded for the remote, in seconds since the Unix epoch; 0 if never.',
      perRemote((r) => (r.lastSuccessAt === null ? 0 : seconds(r.lastSuccessAt))),
    ),
    gauge(
      'degraded',
      '1 while the remote is failing and its changes go to the retry queue.',
      perRemote((r) => flag(r.degraded)),
    ),
    gauge(
      'holding_deletions',
      '1 while deletions for the remote are held because the watch root looks empty or unreadable.',
      perRemote((r) => flag(r.holdingDeletions)),
    ),
  ];
}

function seconds(iso: string): number {
  return Date.parse(iso) / 1000;
}

function renderLabels(labels: Labels | undefined): string {
  if (labels === undefined) return '';
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Label values: backslash, double quote and line feed are escaped; text must be valid UTF-8, so lone surrogates become U+FFFD. */
function escapeLabelValue(value: string): string {
  return value.replace(LONE_SURROGATE, '\uFFFD').replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** HELP text: backslash and line feed are escaped. */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Number.POSITIVE_INFINITY) return '+Inf';
  if (n === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(n);
}
