import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpTarget {
  readonly https: boolean;
  /** Where to connect (an IPv6 address without brackets). */
  readonly host: string;
  readonly port: number;
  readonly method: string;
  /** The request target as sent, already percent-encoded. */
  readonly path: string;
  readonly headers: OutgoingHttpHeaders;
  readonly body?: Buffer;
}

export interface HttpReply {
  readonly status: number;
  readonly statusText: string;
  /** The start of the reply body, for logs. */
  readonly body: string;
}

const BODY_LIMIT = 512;

/**
 * One HTTP request with node:http rather than fetch: fetch cannot set the Host header (a purge names the site while
 * connecting to the cache) and follows redirects. No redirects, no retries; `signal` bounds the whole exchange.
 */
export function httpSend(target: HttpTarget, signal: AbortSignal): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const send = target.https ? httpsRequest : httpRequest;
    const headers: OutgoingHttpHeaders = { connection: 'close', ...target.headers };
    if (target.body !== undefined) headers['content-length'] = target.body.length;
    const req = send(
      { host: target.host, port: target.port, method: target.method, path: target.path, headers, signal, agent: false },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < BODY_LIMIT) chunks.push(chunk);
          size += chunk.length;
        });
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).subarray(0, BODY_LIMIT).toString('utf8').replace(/\s+/g, ' ').trim();
          resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', body });
        });
      },
    );
    req.on('error', reject);
    req.end(target.body);
  });
}

/** RFC 7617 Basic credentials; the value must never be logged. */
export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

/**
 * Percent-encodes a byte string (one char per byte) for a URL path: unreserved characters, `/` and the
 * sub-delimiters stay, everything else (space, `%`, `?`, `#`, non-ASCII bytes) becomes %XX of its byte.
 */
export function encodePathBytes(bytes: string): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes.charCodeAt(i);
    const ch = bytes[i] as string;
    if (/[A-Za-z0-9\-._~/!$&'()*+,;=:@]/.test(ch)) out += ch;
    else out += `%${c.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** application/x-www-form-urlencoded of a byte string: the bytes themselves are encoded, whatever their charset. */
export function formEncodeBytes(bytes: string): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes.charCodeAt(i);
    const ch = bytes[i] as string;
    if (/[A-Za-z0-9*\-._]/.test(ch)) out += ch;
    else if (ch === ' ') out += '+';
    else out += `%${c.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
