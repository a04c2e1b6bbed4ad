import type { Logger } from 'pino';
import type { StatusSource } from './status-model.ts';
import { type StatusServer, startStatusServer } from './status-server.ts';

/**
 * The daemon's status endpoint over its life: served on `<host hostip port>`, moved when a reload changes that, and
 * never in the way of syncing (an address that cannot be used is a warning, not an error).
 */
export class StatusEndpoint {
  readonly #source: StatusSource;
  readonly #log: Logger;
  #server: StatusServer | null = null;
  #host: { readonly ip: string; readonly port: number } | null = null;

  constructor(source: StatusSource, log: Logger) {
    this.#source = source;
    this.#log = log;
  }

  /** `http://host:port`, or null when it could not listen (or is closed). */
  get url(): string | null {
    return this.#server?.url ?? null;
  }

  /** Serves on `host`; a running server on another address is closed first, one on the same address is kept. */
  async serve(host: { readonly ip: string; readonly port: number }): Promise<void> {
    if (this.#host !== null && this.#host.ip === host.ip && this.#host.port === host.port) return;
    await this.close();
    this.#host = host;
    try {
      this.#server = await startStatusServer({ host: host.ip, port: host.port, source: this.#source, log: this.#log });
    } catch (err) {
      // Several sersync instances on one machine share sersync2's default localhost:8008: syncing matters more.
      this.#log.warn(
        { host: host.ip, port: host.port },
        `no status endpoint: ${err instanceof Error ? err.message : String(err)}; syncing goes on`,
      );
    }
  }

  async close(): Promise<void> {
    await this.#server?.close();
    this.#server = null;
    this.#host = null;
  }
}
