import type { HttpPluginConfig } from '../config/model.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { displayPath, fromUtf8 } from '../core/paths.ts';
import { basicAuth, formEncodeBytes, type HttpReply, httpSend } from './http-send.ts';
import type { Plugin, PluginDeps, PluginEvent, PluginLimits } from './plugin.ts';
import { DEFAULT_CLOSE_GRACE_MS, PluginQueue } from './plugin-queue.ts';

export const HTTP_LIMITS: PluginLimits = { concurrency: 4, maxQueued: 10_000, timeoutMs: 10_000 };

const IN_CLOSE_WRITE = 0x8;
const IN_CREATE = 0x100;
const IN_DELETE = 0x200;
const IN_ISDIR = 0x40000000;

/**
 * The inotify mask sersync2 would have reported for the event (its http plugin sent the raw mask): a changed file
 * is IN_CLOSE_WRITE (8), a new or changed directory IN_CREATE|IN_ISDIR (1073742080), a removed file IN_DELETE (512),
 * a removed directory IN_DELETE|IN_ISDIR (1073742336). Moves arrive as a delete plus a create, as sersync2 saw them
 * with moveFrom/moveTo on.
 */
export function inotifyMask(event: PluginEvent): number {
  if (event.deleted) return event.isDir ? (IN_DELETE | IN_ISDIR) >>> 0 : IN_DELETE;
  return event.isDir ? (IN_CREATE | IN_ISDIR) >>> 0 : IN_CLOSE_WRITE;
}

/**
 * The POST body of sersync2's (never compiled) HttpInterface: `watchroot=…&isdir=0|1&inotifyPath=…&mask=…`, with
 * `inotifyPath` the absolute path. sersync2 would have sent the values raw; here they are form-encoded byte by byte,
 * so a name with `&` or bytes that are not UTF-8 arrive intact (decode as UTF-8, or as bytes).
 */
export function httpPluginBody(event: PluginEvent, watchRoot: string): string {
  return (
    `watchroot=${formEncodeBytes(watchRoot)}&isdir=${event.isDir ? 1 : 0}` +
    `&inotifyPath=${formEncodeBytes(event.path)}&mask=${inotifyMask(event)}`
  );
}

/**
 * `<plugin name="http"><localpath watch><deshost url/></localpath></plugin>`: one POST per changed path,
 * application/x-www-form-urlencoded (httpPluginBody). User and password in the URL go in an Authorization header,
 * and the logs show the URL without them or its query. No redirects, no retries; a reply that is not 2xx is logged.
 */
export function createHttpPlugin(cfg: HttpPluginConfig, syncWatch: string, deps: PluginDeps): Plugin {
  const log = deps.log;
  const limits = { ...HTTP_LIMITS, ...deps.limits };
  const url = URL.parse(cfg.url);
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new SersyncError('CONFIG_INVALID', '<plugin name="http"><localpath><deshost url>: expected an http:// or https:// URL', {
      exitCode: ExitCode.Config,
    });
  }
  const watchRoot = fromUtf8(cfg.watch ?? syncWatch);
  const shownUrl = `${url.origin}${url.pathname}`;
  const https = url.protocol === 'https:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (https ? 443 : 80) : Number(url.port);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (url.username !== '' || url.password !== '') {
    headers.authorization = basicAuth(safeDecode(url.username), safeDecode(url.password));
  }
  const queue = new PluginQueue('http', limits, log, async (event: PluginEvent, signal: AbortSignal) => {
    const body = Buffer.from(httpPluginBody(event, watchRoot), 'latin1');
    const fields = { plugin: 'http', url: shownUrl, path: displayPath(event.path), mask: inotifyMask(event) };
    let reply: HttpReply;
    try {
      reply = await httpSend({ https, host, port, method: 'POST', path: `${url.pathname}${url.search}`, headers, body }, signal);
    } catch (err) {
      // A timeout or shutdown is reported by the queue.
      if (signal.aborted) return;
      const error = err instanceof Error ? err.message : String(err);
      log.warn({ ...fields, error }, `http plugin: POST to ${shownUrl} failed: ${error}`);
      return;
    }
    if (reply.status >= 200 && reply.status < 300) log.debug({ ...fields, status: reply.status }, 'http plugin: sent');
    else
      log.warn(
        { ...fields, status: reply.status, reply: reply.body },
        `http plugin: POST to ${shownUrl} answered ${reply.status} ${reply.statusText}`,
      );
  });
  return {
    name: 'http',
    notify: (events) => queue.push(events),
    close: (graceMs = DEFAULT_CLOSE_GRACE_MS) => queue.close(graceMs),
  };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
