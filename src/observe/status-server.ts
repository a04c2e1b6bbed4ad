/**
 * The status endpoint: sersync2's `<host hostip port>` (default localhost:8008), which sersync2 only printed, serves
 * the daemon's status over plain HTTP (node:http, no framework):
 *
 *   GET /         a small HTML page for people (status-page.ts)
 *   GET /status   the DaemonStatus as JSON (what `sersync-ts status` reads)
 *   GET /metrics  Prometheus text format 0.0.4 (metrics.ts)
 *
 * It binds exactly to the configured host. A name is resolved and every address it has on this machine is bound,
 * so the default "localhost" answers on 127.0.0.1 and on ::1 (when the machine has IPv6), whichever a client tries
 * first. There is no authentication: anything that can reach the address can read paths and rsync errors, so a
 * non-loopback host is logged as a warning.
 *
 * Each request takes one synchronous snapshot() and renders it; nothing here waits on the daemon.
 */
import { lookup } from 'node:dns/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.ts';
import type { StatusSource } from './status-model.ts';
import { renderStatusPage } from './status-page.ts';

export interface StatusServerOptions {
  /** `<host hostip>`: an IP address (IPv6 with or without brackets) or a name such as "localhost". */
  readonly host: string;
  /** `<host port>`; 0 picks a free port (tests), read it back from `url`. */
  readonly port: number;
  readonly source: StatusSource;
  readonly log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
}

export interface StatusServer {
  /** `http://host:port` as configured (IPv6 in brackets), with the port actually bound. */
  readonly url: string;
  /** The addresses listened on, `127.0.0.1:8008` or `[::1]:8008`. */
  readonly addresses: readonly string[];
  /** Stops listening and drops open connections (keep-alive clients included). */
  close(): Promise<void>;
}

/**
 * Starts serving. Rejects, having bound nothing, with an Error whose message says which address could not be used and
 * what to do (port in use, host not an address of this machine, port needing root, name not resolvable); the original
 * error is its `cause`.
 */
export async function startStatusServer(opts: StatusServerOptions): Promise<StatusServer> {
  const host = stripBrackets(opts.host);
  const addresses = await resolve(host, opts.port);
  const servers: Server[] = [];
  let port = opts.port;
  try {
    for (const [i, address] of addresses.entries()) {
      const server = createServer((req, res) => handle(req, res, opts));
      // Slow or idle clients must not pile up: the answers are small and rendered at once.
      server.headersTimeout = 10_000;
      server.requestTimeout = 10_000;
      server.keepAliveTimeout = 5_000;
      try {
        port = await listen(server, address, port);
      } catch (err) {
        // A name with an address this machine lacks (::1 with IPv6 off) is fine as long as another one binds.
        const code = (err as NodeJS.ErrnoException).code;
        if (addresses.length > 1 && code === 'EADDRNOTAVAIL' && (servers.length > 0 || i < addresses.length - 1)) {
          opts.log.debug({ address: hostPort(address, port) }, 'status endpoint: address not available here; skipped');
          continue;
        }
        throw new Error(bindMessage(err, opts.host, address, port), { cause: err });
      }
      // The daemon's other work keeps the process alive; a forgotten close() must not.
      server.unref();
      servers.push(server);
    }
  } catch (err) {
    await Promise.all(servers.map(closeServer));
    throw err;
  }
  const bound = servers.map((s) => {
    const a = s.address();
    return a !== null && typeof a === 'object' ? hostPort(a.address, a.port) : String(a);
  });
  const url = `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  if (!addresses.every(isLoopback)) {
    opts.log.warn(
      { url },
      'status endpoint is reachable from other machines and has no authentication; use <host hostip="127.0.0.1"> to keep it local',
    );
  }
  opts.log.info({ url, addresses: bound }, 'status endpoint: / (page), /status (JSON), /metrics (Prometheus)');
  return {
    url,
    addresses: bound,
    close: () => Promise.all(servers.map(closeServer)).then(() => undefined),
  };
}

type Route = (opts: StatusServerOptions) => { type: string; body: string };

const ROUTES: Readonly<Record<string, Route>> = {
  '/': (o) => ({ type: 'text/html; charset=utf-8', body: renderStatusPage(o.source.snapshot()) }),
  '/status': (o) => ({ type: 'application/json; charset=utf-8', body: `${JSON.stringify(o.source.snapshot(), null, 2)}\n` }),
  '/metrics': (o) => ({ type: METRICS_CONTENT_TYPE, body: renderMetrics(o.source.snapshot()) }),
};

/** What the HTML page may use: its own inline style, nothing else (no script, no remote assets, no framing). */
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function handle(req: IncomingMessage, res: ServerResponse, opts: StatusServerOptions): void {
  // A request body means nothing here; read it away so the connection stays usable.
  req.resume();
  const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
  const route = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
  if (route === undefined) {
    send(res, 404, 'text/plain; charset=utf-8', 'not found; try / (page), /status (JSON) or /metrics (Prometheus)\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', `method ${req.method ?? '?'} not allowed; use GET\n`);
    return;
  }
  let answer: { type: string; body: string };
  try {
    answer = route(opts);
  } catch (err) {
    opts.log.error({ err, path }, 'status endpoint: could not render the status');
    send(res, 500, 'text/plain; charset=utf-8', 'internal error while rendering the status; see the daemon log\n');
    return;
  }
  if (path === '/') res.setHeader('Content-Security-Policy', PAGE_CSP);
  send(res, 200, answer.type, answer.body);
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  // Buffer.from encodes lone surrogates as U+FFFD, so the body is always valid UTF-8.
  const bytes = Buffer.from(body, 'utf8');
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': bytes.length,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(bytes);
}

function listen(server: Server, address: string, port: number): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ host: address, port }, () => {
      server.off('error', onError);
      const a = server.address();
      resolvePort(a !== null && typeof a === 'object' ? a.port : port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolveClose) => {
    server.close(() => resolveClose());
    server.closeAllConnections();
  });
}

async function resolve(host: string, port: number): Promise<string[]> {
  if (isIP(host) !== 0) return [host];
  try {
    const found = await lookup(host, { all: true, order: 'ipv4first' });
    return [...new Set(found.map((a) => a.address))];
  } catch (err) {
    throw new Error(
      `status endpoint: <host hostip="${host}" port="${port}">: cannot resolve "${host}" (${(err as NodeJS.ErrnoException).code ?? String(err)}); write an IP address of this machine, e.g. 127.0.0.1`,
      { cause: err },
    );
  }
}

function bindMessage(err: unknown, configured: string, address: string, port: number): string {
  const where = hostPort(address, port);
  const element = `<host hostip="${configured}" port="${port}">`;
  switch ((err as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return `status endpoint: ${where} is already in use (another sersync-ts or sersync2 with the same ${element}?); give each config its own <host port>, or stop the program holding it (ss -ltnp 'sport = :${port}')`;
    case 'EADDRNOTAVAIL':
      return `status endpoint: ${element}: ${address} is not an address of this machine; use 127.0.0.1 or one of this machine's addresses`;
    case 'EACCES':
      return `status endpoint: ${element}: not allowed to listen on ${where} (ports below 1024 need root); use a port above 1023`;
    default:
      return `status endpoint: cannot listen on ${where}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
