/**
 * The status as a small self-contained HTML page for `GET /`: one row per remote and the watcher's figures, readable
 * at a glance. No external assets and no script: inline CSS, and a meta refresh every 5 s. Pure, like renderMetrics.
 *
 * Every string from the status is escaped; paths and rsync errors can hold `<`, `&`, quotes and names that are not
 * valid UTF-8 (lone surrogates become U+FFFD, as do control characters other than tab and line feed).
 */
import type { DaemonStatus, RemoteStatus } from './status-model.ts';

export type RemoteState = 'ok' | 'syncing' | 'degraded' | 'holding deletions';

/** What a person should know first about a remote; the worst condition wins. */
export function remoteState(r: RemoteStatus): RemoteState {
  if (r.holdingDeletions) return 'holding deletions';
  if (r.degraded) return 'degraded';
  if (r.rsyncRunning || r.pendingPaths > 0 || r.pendingFullSync) return 'syncing';
  return 'ok';
}

/** A duration for people: `0.4 s`, `12 s`, `4 min 12 s`, `2 h 5 min`, `3 d 4 h`. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, seconds);
  if (s < 10) return `${(Math.floor(s * 10) / 10).toFixed(1).replace(/\.0$/, '')} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const whole = Math.floor(s);
  if (whole < 3600) return pair(Math.floor(whole / 60), 'min', whole % 60, 's');
  if (whole < 86400) return pair(Math.floor(whole / 3600), 'h', Math.floor((whole % 3600) / 60), 'min');
  return pair(Math.floor(whole / 86400), 'd', Math.floor((whole % 86400) / 3600), 'h');
}

function pair(a: number, unitA: string, b: number, unitB: string): string {
  return b === 0 ? `${a} ${unitA}` : `${a} ${unitA} ${b} ${unitB}`;
}

/** The whole page, `<!doctype html>` to `</html>`. */
export function renderStatusPage(st: DaemonStatus): string {
  const now = Date.parse(st.now);
  const since = (iso: string | null) => (iso === null ? null : (now - Date.parse(iso)) / 1000);
  const watches =
    st.maxUserWatches === null
      ? `${count(st.watches)} <span class="dim">(limit unknown)</span>`
      : `${count(st.watches)} of ${count(st.maxUserWatches)} <span class="dim">(${percent(st.watches, st.maxUserWatches)})</span>`;
  const nearLimit = st.maxUserWatches !== null && st.watches >= 0.9 * st.maxUserWatches;
  const crontab = !st.crontab.enabled
    ? 'off'
    : st.crontab.nextAt === null
      ? 'on'
      : `next full sync in ${escapeHtml(formatAge(-(since(st.crontab.nextAt) ?? 0)))}`;

  const facts: [string, string, string, boolean][] = [
    ['watch', 'Watch', `<code>${escapeHtml(st.watch)}</code>`, false],
    [
      'watcher',
      'Watcher',
      `${escapeHtml(st.watcher)} <span class="dim">(${escapeHtml(st.watchBackend)})</span>`,
      st.watchBackend === 'fs.watch',
    ],
    ['watches', 'Watches', watches, nearLimit],
    [
      'unreadable',
      'Unreadable',
      st.unreadable.count === 0
        ? 'none'
        : `${count(st.unreadable.count)} not watched or synced: ${st.unreadable.sample.map((p) => `<code>${escapeHtml(p)}</code>`).join(' ')}`,
      st.unreadable.count > 0,
    ],
    ...st.sitesNotStarted.map((n): [string, string, string, boolean] => [
      'not-started',
      'Not started',
      `<code>${escapeHtml(n.watch)}</code>: ${escapeHtml(n.error)}`,
      true,
    ]),
    [
      'events',
      'Events',
      `<span data-field="events-seen">${count(st.events.seen)}</span> seen · ` +
        `<span data-field="events-ignored">${count(st.events.ignored)}</span> ignored · ` +
        `<span data-field="events-counted">${count(st.events.counted)}</span> counted · ` +
        `<span data-field="events-lost">${count(st.events.lost)}</span> lost`,
      st.events.lost > 0,
    ],
    [
      'retry-queue',
      'Retry queue',
      `${count(st.retryQueue.entries)} ${plural(st.retryQueue.entries, 'entry', 'entries')} <span class="dim">in <code>${escapeHtml(st.retryQueue.file)}</code></span>` +
        (st.retryQueue.writeError === null
          ? ''
          : ` · <span data-field="retry-queue-error">cannot write: ${escapeHtml(st.retryQueue.writeError)}</span>`),
      st.retryQueue.writeError !== null,
    ],
    ['crontab', 'Crontab', crontab, false],
  ];

  // With several `<localpath>`, each site's remotes follow a row naming the site.
  const rows =
    st.sites.length > 1
      ? st.sites
          .flatMap((site) => [
            `<tr data-site="${escapeHtml(site.watch)}"><th colspan="8">Site <code>${escapeHtml(site.watch)}</code> <span class="dim">· ${count(site.watches)} watches · watching since ${escapeHtml(site.watchingSince)}</span></th></tr>`,
            ...site.remotes.map((r) => remoteRow(r, since)),
          ])
          .join('\n')
      : st.remotes.map((r) => remoteRow(r, since)).join('\n');
  const title = `sersync-ts: ${st.watch}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>sersync-ts <code data-field="watch">${escapeHtml(st.watch)}</code></h1>
<p class="dim">version ${escapeHtml(st.version)} · pid <span data-field="pid">${st.pid}</span> · up <span data-field="uptime">${escapeHtml(formatAge(since(st.startedAt) ?? 0))}</span> · as of ${escapeHtml(st.now)} · refreshes every 5 s</p>
</header>
<dl>
${facts.map(([field, name, html, warn]) => `<div${warn ? ' class="warn"' : ''}><dt>${name}</dt><dd data-field="${field}">${html}</dd></div>`).join('\n')}
</dl>
<table>
<thead><tr><th>Remote</th><th>State</th><th class="num">Pending</th><th>Oldest pending</th><th>Last success</th><th class="num">Retry queue</th><th>rsync runs</th><th>Last error</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="8" class="dim">no remotes</td></tr>'}
</tbody>
</table>
</body>
</html>
`;
}

function remoteRow(r: RemoteStatus, since: (iso: string | null) => number | null): string {
  const state = remoteState(r);
  const pending = `${count(r.pendingPaths)}${r.pendingFullSync ? ' <span class="dim">(full sync)</span>' : ''}${r.rsyncRunning ? '<br><span class="dim">rsync running</span>' : ''}`;
  const oldest = r.oldestPendingSeconds === null ? '–' : escapeHtml(formatAge(r.oldestPendingSeconds));
  const lastSuccess = r.lastSuccessAt === null ? 'never' : `${escapeHtml(formatAge(since(r.lastSuccessAt) ?? 0))} ago`;
  const nextRetry =
    r.nextRetryAt === null ? '' : `<br><span class="dim">next in ${escapeHtml(formatAge(-(since(r.nextRetryAt) ?? 0)))}</span>`;
  const failures = r.consecutiveFailures > 0 ? `<br><span class="dim">${count(r.consecutiveFailures)} failed in a row</span>` : '';
  // Only the verdicts that happened, one a line, so the column stays narrow.
  const verdicts = (['ok', 'partial', 'retry', 'config'] as const).filter((v) => r.rsyncRuns[v] > 0);
  const runs = verdicts.length === 0 ? 'none yet' : verdicts.map((v) => `${count(r.rsyncRuns[v])} ${v}`).join('<br>');
  const totals = `${escapeHtml(r.kind)} · ${count(r.batches)} ${plural(r.batches, 'batch', 'batches')} · ${count(r.fullSyncs)} full · ${count(r.pathsSynced)} paths · ${escapeHtml(formatBytes(r.bytesSent))}`;
  return (
    `<tr data-remote="${escapeHtml(r.id)}" class="${state.replace(' ', '-')}">` +
    `<td><code data-field="remote">${escapeHtml(r.id)}</code><br><span class="dim">${totals}</span></td>` +
    `<td><span class="badge" data-field="state">${state}</span></td>` +
    `<td class="num" data-field="pending">${pending}</td>` +
    `<td class="time" data-field="oldest-pending">${oldest}</td>` +
    `<td class="time" data-field="last-success"${r.lastSuccessAt === null ? '' : ` title="${escapeHtml(r.lastSuccessAt)}"`}>${lastSuccess}</td>` +
    `<td class="num" data-field="retry-queued">${count(r.retryQueued)}${nextRetry}</td>` +
    `<td class="time" data-field="rsync-runs">${runs}${failures}</td>` +
    `<td class="error" data-field="last-error">${r.lastError === null ? '<span class="dim">–</span>' : escapeHtml(r.lastError)}</td>` +
    '</tr>'
  );
}

const CSS = `
:root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 15px; color: #1d2330; background: #f6f7f9; }
body { margin: 1.5rem 2rem; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; font-weight: 600; }
h1 code { font-size: 1.25rem; background: none; padding: 0; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .92em; background: #eceef2; padding: 0 .25em; border-radius: 3px; overflow-wrap: anywhere; }
.dim { color: #5d6675; font-size: .9em; }
header p { margin: 0 0 1rem; }
dl { display: grid; grid-template-columns: repeat(auto-fill, minmax(20rem, 1fr)); gap: .5rem 1.5rem; margin: 0 0 1.25rem; }
dl div { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: .45rem .7rem; }
dl div.warn { border-color: #d97706; background: #fff7e6; }
dt { font-size: .8em; text-transform: uppercase; letter-spacing: .04em; color: #5d6675; }
dd { margin: .1rem 0 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #dde1e7; }
th, td { text-align: left; vertical-align: top; padding: .45rem .5rem; border-bottom: 1px solid #e6e9ee; }
th { font-size: .8em; text-transform: uppercase; letter-spacing: .04em; color: #5d6675; background: #f0f2f5; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.time { white-space: nowrap; }
td:first-child { min-width: 11rem; }
td.error { white-space: pre-wrap; overflow-wrap: anywhere; min-width: 11rem; max-width: 28rem; color: #9b1c1c; }
.badge { display: inline-block; padding: .1rem .55rem; border-radius: 999px; font-weight: 600; font-size: .85em; white-space: nowrap; }
tr.ok .badge { background: #dcfce7; color: #14532d; }
tr.syncing .badge { background: #dbeafe; color: #1e3a8a; }
tr.degraded .badge { background: #fde68a; color: #78350f; }
tr.holding-deletions .badge { background: #fecaca; color: #7f1d1d; }
tr.degraded, tr.holding-deletions { background: #fffbeb; }
`;

/** Lone surrogates (names that were not valid UTF-8) and control characters other than tab and line feed. */
const UNPRINTABLE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;

function escapeHtml(text: string): string {
  return text.replace(UNPRINTABLE, '\uFFFD').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function count(n: number): string {
  return Number.isInteger(n) ? String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',') : String(n);
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : '–';
}

function plural(n: number, one: string, many: string): string {
  return n === 1 ? one : many;
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}
