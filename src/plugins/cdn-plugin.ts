import type { RefreshCdnPluginConfig } from '../config/model.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { displayPath, fromUtf8 } from '../core/paths.ts';
import { basicAuth, encodePathBytes, type HttpReply, httpSend } from './http-send.ts';
import type { Plugin, PluginDeps, PluginEvent, PluginLimits } from './plugin.ts';
import { DEFAULT_CLOSE_GRACE_MS, PluginQueue } from './plugin-queue.ts';

export const CDN_LIMITS: PluginLimits = { concurrency: 4, maxQueued: 10_000, timeoutMs: 10_000 };

/** The URL rules of `<plugin name="refreshCDN">`, compiled once. */
export interface CdnUrlRules {
  /** `<sendurl base>` as written. */
  readonly base: string;
  /** `<regexurl regex="true" match>` compiled over byte strings (unanchored, like boost::regex_search), or null. */
  readonly match: RegExp | null;
  /** Watch roots (byte strings) to cut off the path when regex is off: the plugin's own first, then the sync root. */
  readonly roots: readonly string[];
}

export function cdnUrlRules(cfg: RefreshCdnPluginConfig, syncWatch: string): CdnUrlRules {
  let match: RegExp | null = null;
  if (cfg.regex.enabled) {
    try {
      match = new RegExp(fromUtf8(cfg.regex.match));
    } catch (err) {
      throw new SersyncError('CONFIG_INVALID', `<plugin name="refreshCDN"><regexurl match>: invalid regular expression: ${String(err)}`, {
        exitCode: ExitCode.Config,
        cause: err,
      });
    }
  }
  const roots = [cfg.watch, syncWatch].filter((r): r is string => r !== null && r !== '').map(fromUtf8);
  return { base: cfg.sendUrlBase, match, roots };
}

/**
 * The URL sersync2 would have purged for a changed path, percent-encoded, or null when it skipped it:
 * - regex on: `base + group 1 + the rest of the path after the match` of the first match anywhere in the absolute
 *   path; no match, no URL;
 * - regex off: `base + the path without the watch directory`;
 * - a directory gets a trailing `/` (sersync2's `dirs=` instead of `urls=`).
 * `path` is absolute, a byte string; bytes that URLs cannot hold raw (space, `%`, `#`, `?`, non-ASCII) are encoded.
 */
export function cdnPurgeUrl(path: string, isDir: boolean, rules: CdnUrlRules): string | null {
  let rest: string;
  if (rules.match !== null) {
    const m = rules.match.exec(path);
    if (m === null) return null;
    rest = (m[1] ?? '') + path.slice(m.index + m[0].length);
  } else {
    const root = rules.roots.find((r) => path === r || path.startsWith(`${r}/`));
    if (root === undefined) return null;
    rest = path.slice(root.length);
  }
  let url = encodeBase(rules.base) + encodePathBytes(rest);
  if (isDir && !url.endsWith('/')) url += '/';
  return url;
}

/**
 * `<plugin name="refreshCDN">`. ChinaCache's API (HEAD /index.jsp?user=..&pswd=..&urls=..) is gone, so each URL is
 * sent as an HTTP purge, the convention of Varnish, Squid, nginx proxy_cache_purge and Fastly:
 *
 *   PURGE <path of the URL> HTTP/1.1
 *   Host: <host of the URL>
 *   Authorization: Basic base64(username:passwd)
 *   X-Purge-Type: url | dir
 *
 * to `<cdninfo domainname port>` (https when the port is 443). The credentials are in the header only, never in the
 * URL or a log. 2xx is a purge, 404 "was not cached", anything else is logged as a failure; no retries.
 */
export function createCdnPlugin(cfg: RefreshCdnPluginConfig, syncWatch: string, deps: PluginDeps): Plugin {
  const log = deps.log;
  const limits = { ...CDN_LIMITS, ...deps.limits };
  const rules = cdnUrlRules(cfg, syncWatch);
  const authorization = basicAuth(cfg.username, cfg.password);
  const host = cfg.domainName.startsWith('[') && cfg.domainName.endsWith(']') ? cfg.domainName.slice(1, -1) : cfg.domainName;
  const to = `${host.includes(':') ? `[${host}]` : host}:${cfg.port}`;
  const queue = new PluginQueue('refreshCDN', limits, log, async (event: PluginEvent, signal: AbortSignal) => {
    const url = cdnPurgeUrl(event.path, event.isDir, rules);
    if (url === null) {
      log.debug({ plugin: 'refreshCDN', path: displayPath(event.path) }, 'refreshCDN: no URL for this path; skipped');
      return;
    }
    const parsed = URL.parse(url) ?? URL.parse(`http://${url}`);
    if (parsed === null || parsed.host === '') {
      log.warn({ plugin: 'refreshCDN', url }, `refreshCDN: ${url} is not a URL (check <sendurl base>); skipped`);
      return;
    }
    let reply: HttpReply;
    try {
      reply = await httpSend(
        {
          https: cfg.port === 443,
          host,
          port: cfg.port,
          method: 'PURGE',
          path: `${parsed.pathname}${parsed.search}`,
          headers: { host: parsed.host, authorization, 'x-purge-type': event.isDir ? 'dir' : 'url' },
        },
        signal,
      );
    } catch (err) {
      // A timeout or shutdown is reported by the queue.
      if (signal.aborted) return;
      const error = err instanceof Error ? err.message : String(err);
      log.warn({ plugin: 'refreshCDN', url, to, error }, `refreshCDN: purge of ${url} at ${to} failed: ${error}`);
      return;
    }
    const fields = { plugin: 'refreshCDN', url, to, status: reply.status, deleted: event.deleted };
    if (reply.status >= 200 && reply.status < 300) log.info(fields, `refreshCDN: purged ${url}`);
    else if (reply.status === 404) log.info(fields, `refreshCDN: ${url} was not cached`);
    else log.warn({ ...fields, reply: reply.body }, `refreshCDN: purge of ${url} at ${to} failed: ${reply.status} ${reply.statusText}`);
  });
  return {
    name: 'refreshCDN',
    notify: (events) => queue.push(events),
    close: (graceMs = DEFAULT_CLOSE_GRACE_MS) => queue.close(graceMs),
  };
}

/** The configured base as ASCII: what is already valid stays (including %XX), other characters are encoded. */
function encodeBase(base: string): string {
  return encodeURI(base).replace(/%25([0-9A-Fa-f]{2})/g, '%$1');
}
