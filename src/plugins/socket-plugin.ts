import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SocketPluginConfig } from '../config/model.ts';
import { displayPath, toBuffer } from '../core/paths.ts';
import type { Plugin, PluginDeps, PluginEvent, PluginLimits } from './plugin.ts';
import { DEFAULT_CLOSE_GRACE_MS, PluginQueue } from './plugin-queue.ts';

export const SOCKET_LIMITS: PluginLimits = { concurrency: 8, maxQueued: 10_000, timeoutMs: 15_000 };

export interface SocketRetry {
  readonly attempts: number;
  readonly connectTimeoutMs: number;
  readonly pauseMs: number;
}

/** Connection attempts per host and event (sersync2: 5 attempts of 100 ms each, IPv4 literals only). */
export const SOCKET_RETRY: SocketRetry = { attempts: 3, connectTimeoutMs: 2000, pauseMs: 250 };

/**
 * `<plugin name="socket">`: for each changed path and each `<deshost ip port>`, a new TCP connection that carries the
 * absolute path, raw bytes without a terminator, and is closed; nothing is read back, as in sersync2. `ip` may be an
 * IPv4 or IPv6 address (`::1` or `[::1]`) or a host name. A refused or slow connection is tried SOCKET_RETRY.attempts
 * times, then logged; the queue (PluginQueue) keeps this away from syncing.
 */
export function createSocketPlugin(cfg: SocketPluginConfig, deps: PluginDeps, retry: SocketRetry = SOCKET_RETRY): Plugin {
  const log = deps.log;
  const limits = { ...SOCKET_LIMITS, ...deps.limits };
  const queue = new PluginQueue('socket', limits, log, async (event: PluginEvent, signal: AbortSignal) => {
    const bytes = toBuffer(event.path);
    await Promise.all(
      cfg.hosts.map(async ({ ip, port }) => {
        const host = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
        const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        let lastError = '';
        for (let attempt = 1; attempt <= retry.attempts; attempt++) {
          if (signal.aborted) return;
          try {
            await sendOnce(host, port, bytes, retry.connectTimeoutMs, signal);
            log.debug({ plugin: 'socket', to: where, path: displayPath(event.path), attempt }, 'socket plugin: sent');
            return;
          } catch (err) {
            lastError = err instanceof Error ? err.message : String(err);
          }
          if (attempt < retry.attempts) await sleep(retry.pauseMs * attempt, undefined, { signal }).catch(() => {});
        }
        if (signal.aborted) return;
        log.warn(
          { plugin: 'socket', to: where, path: displayPath(event.path), attempts: retry.attempts, error: lastError },
          `socket plugin: could not send ${displayPath(event.path)} to ${where} after ${retry.attempts} attempts: ${lastError}`,
        );
      }),
    );
  });
  return {
    name: 'socket',
    notify: (events) => queue.push(events),
    close: (graceMs = DEFAULT_CLOSE_GRACE_MS) => queue.close(graceMs),
  };
}

/** One connection: connect, write, half-close; resolves when the bytes are handed to the kernel. */
function sendOnce(host: string, port: number, bytes: Buffer, connectTimeoutMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => finish(new Error('aborted'));
    const timer = setTimeout(() => finish(new Error(`no connection within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (err) => finish(err));
    socket.once('connect', () => {
      clearTimeout(timer);
      // Whatever the receiver says is read and thrown away, so closing never resets the connection under our data.
      socket.resume();
      socket.end(bytes, () => finish());
    });
  });
}
