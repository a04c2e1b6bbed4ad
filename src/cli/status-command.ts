/**
 * `sersync-ts status -o conf.xml`: asks the daemon of this config for its status, on the endpoint its `<host>`
 * names, and prints it for a person (or the raw JSON with --json). Only a running daemon can answer; when none
 * does, one line says so and the exit code is 69 (EX_UNAVAILABLE), which scripts can test.
 */
import type { Config } from '../config/model.ts';
import { ExitCode } from '../core/errors.ts';
import type { DaemonStatus, RemoteStatus, SiteStatus } from '../observe/status-model.ts';
import { formatAge, remoteState } from '../observe/status-page.ts';

/** How long to wait for the daemon's answer; it renders from memory, so a slow answer means something is wrong. */
const TIMEOUT_MS = 3000;

/** Prints the status of the daemon running with `config` and returns the exit code: 0, or 69 if no such daemon answers. */
export async function statusCommand(config: Config, opts: { json?: boolean }): Promise<number> {
  const base = endpointUrl(config.host);
  const url = `${base}/status`;
  let res: Response;
  let body: string;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'error' });
    body = await res.text();
  } catch (err) {
    console.error(`sersync-ts status: no daemon answers on ${base}: is it running with this config? (${why(err)})`);
    return ExitCode.Unavailable;
  }
  const status = res.ok ? parseStatus(body) : null;
  if (status === null) {
    console.error(
      `sersync-ts status: ${url} answered HTTP ${res.status} but not with a sersync-ts status: is another program on port ${config.host.port}? give this config its own <host port>`,
    );
    return ExitCode.Unavailable;
  }
  if (status.watch !== config.watch) {
    // Two instances with the same <host> (sersync2's default localhost:8008): the second has no endpoint, and
    // printing the first one's figures under this config's name would mislead.
    console.error(
      `sersync-ts status: the daemon on ${base} (pid ${status.pid}) watches ${printable(status.watch)}, not ${printable(config.watch)} of ${printable(config.file)}: another instance holds the port; give each config its own <host port>`,
    );
    return ExitCode.Unavailable;
  }
  console.log(opts.json ? body.trimEnd() : describeStatus(status, base));
  return ExitCode.Ok;
}

/** `http://ip:port` of the endpoint; IPv6 in brackets, and a wildcard address asked on loopback. */
function endpointUrl(host: Config['host']): string {
  let ip = host.ip.startsWith('[') && host.ip.endsWith(']') ? host.ip.slice(1, -1) : host.ip;
  if (ip === '0.0.0.0' || ip === '') ip = '127.0.0.1';
  if (ip === '::') ip = '::1';
  return `http://${ip.includes(':') ? `[${ip}]` : ip}:${host.port}`;
}

function why(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${TIMEOUT_MS / 1000} s`;
  const cause = err instanceof Error ? (err.cause as NodeJS.ErrnoException | undefined) : undefined;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused';
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
}

/** The body as a DaemonStatus if it looks like one; a different program on the port gives null. */
function parseStatus(body: string): DaemonStatus | null {
  try {
    const v = JSON.parse(body) as Partial<DaemonStatus> | null;
    const ok =
      v !== null &&
      typeof v === 'object' &&
      typeof v.pid === 'number' &&
      typeof v.watch === 'string' &&
      typeof v.now === 'string' &&
      typeof v.startedAt === 'string' &&
      typeof v.events === 'object' &&
      Array.isArray(v.remotes);
    return ok ? (v as DaemonStatus) : null;
  } catch {
    return null;
  }
}

/** A few aligned lines about the daemon, then a table with one line per remote. */
function describeStatus(st: DaemonStatus, base: string): string {
  const now = Date.parse(st.now);
  const ago = (iso: string) => `${formatAge((now - Date.parse(iso)) / 1000)} ago`;
  const within = (iso: string) => `in ${formatAge((Date.parse(iso) - now) / 1000)}`;
  const watches =
    st.maxUserWatches === null
      ? `${count(st.watches)} (limit unknown)`
      : `${count(st.watches)} of ${count(st.maxUserWatches)} (${st.maxUserWatches > 0 ? ((100 * st.watches) / st.maxUserWatches).toFixed(1) : '?'} %)`;
  const head: [string, string][] = [
    ['daemon', `pid ${st.pid}, sersync-ts ${printable(st.version)}, up ${ago(st.startedAt).replace(/ ago$/, '')}, ${base}`],
    ['watch', `${printable(st.watch)} (${printable(st.watcher)} watcher, ${printable(st.watchBackend)})`],
    ['watches', watches],
    ...(st.unreadable.count === 0
      ? []
      : [
          ['unread', `${count(st.unreadable.count)} paths not watched or synced: ${st.unreadable.sample.map(printable).join(', ')}`] as [
            string,
            string,
          ],
        ]),
    ...(st.sitesNotStarted ?? []).map((n): [string, string] => ['failed', `site ${printable(n.watch)} not started: ${printable(n.error)}`]),
    [
      'events',
      `${count(st.events.seen)} seen, ${count(st.events.ignored)} ignored, ${count(st.events.counted)} counted, ${count(st.events.lost)} lost`,
    ],
    [
      'retry',
      `${count(st.retryQueue.entries)} ${st.retryQueue.entries === 1 ? 'entry' : 'entries'} in ${printable(st.retryQueue.file)}` +
        (st.retryQueue.writeError === null ? '' : ` (DEGRADED: cannot write it: ${printable(st.retryQueue.writeError)})`),
    ],
    ['crontab', st.crontab.enabled ? (st.crontab.nextAt === null ? 'on' : `next full sync ${within(st.crontab.nextAt)}`) : 'off'],
  ];
  const lines = head.map(([k, v]) => `${k.padEnd(9)}${v}`);
  if (st.remotes.length === 0) return [...lines, '', 'no remotes'].join('\n');

  // With several <localpath> (`sites`, absent from older daemons), each remote's line names its site.
  const all: readonly SiteStatus[] = (st as Partial<DaemonStatus>).sites ?? [];
  const sites = all.length > 1 ? all : null;
  const siteOf = new Map(sites?.flatMap((site) => site.remotes.map((r): [RemoteStatus, string] => [r, site.watch])));
  const remotes = sites === null ? st.remotes : sites.flatMap((site) => site.remotes);
  const columns: { title: string; right?: boolean; cell: (r: RemoteStatus) => string }[] = [
    ...(sites === null ? [] : [{ title: 'SITE', cell: (r: RemoteStatus) => printable(siteOf.get(r) ?? '') }]),
    { title: 'REMOTE', cell: (r) => printable(r.id) },
    { title: 'STATE', cell: (r) => remoteState(r) },
    { title: 'PENDING', right: true, cell: (r) => `${count(r.pendingPaths)}${r.pendingFullSync ? ' +full' : ''}` },
    { title: 'OLDEST', cell: (r) => (r.oldestPendingSeconds === null ? '-' : formatAge(r.oldestPendingSeconds)) },
    { title: 'LAST SUCCESS', cell: (r) => (r.lastSuccessAt === null ? 'never' : ago(r.lastSuccessAt)) },
    { title: 'RETRY', right: true, cell: (r) => count(r.retryQueued) },
    { title: 'LAST ERROR', cell: (r) => (r.lastError === null ? '-' : shorten(printable(r.lastError), 160)) },
  ];
  const cells = remotes.map((r) => columns.map((c) => c.cell(r)));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => (row[i] ?? '').length)));
  const row = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : columns[i]?.right ? v.padStart(widths[i] ?? 0) : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [...lines, '', row(columns.map((c) => c.title)), ...cells.map(row)].join('\n');
}

/** Names that were not valid UTF-8 and control characters (escape sequences, line breaks) must not reach the terminal as such. */
const UNPRINTABLE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|[\u0000-\u0009\u000B-\u001F\u007F-\u009F]/g;

function printable(text: string): string {
  return text.replace(/\r?\n/g, ' ').replace(UNPRINTABLE, '\uFFFD');
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function count(n: number): string {
  return Number.isInteger(n) ? String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',') : String(n);
}
