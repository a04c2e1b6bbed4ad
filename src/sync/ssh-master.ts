import { randomBytes } from 'node:crypto';
import { readdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.ts';
import { lastLines, type ProcessRunner } from './process-runner.ts';
import { type CommandContext, sshControlArgs, sshMasterArgs, sshSocketBase } from './rsync-command.ts';

/** A master that stayed up this long was a working connection: its next failure starts the backoff anew. */
const STEADY_MS = 60_000;
const FIRST_RETRY_MS = 2_000;
const MAX_RETRY_MS = 300_000;

export interface SshMasterDeps {
  readonly runner: ProcessRunner;
  readonly clock: Clock;
  readonly log: Logger;
  readonly pid?: number;
  /** Whether a process runs (a leftover socket's daemon); default kill(pid, 0). */
  readonly alive?: (pid: number) => boolean;
}

/**
 * One ssh connection per site and ssh remote, opened when the site starts and kept while it runs; the lane's rsync
 * runs join it (ControlMaster=no: a run that finds no master connects on its own, as sersync2's did). A master made
 * by the runs themselves (ControlMaster=auto, ControlPersist) would close after a quiet minute, and the next
 * change would pay a key exchange and a login again.
 *
 * The socket's name carries the daemon's pid and a nonce: a reload's new site never shares (and so never
 * unlinks) the old site's socket, and a master left behind by a daemon that died is told to exit at the next start.
 */
export class SshMaster {
  readonly socket: string;
  readonly #ctx: CommandContext;
  readonly #deps: SshMasterDeps;
  readonly #remoteId: string;
  readonly #abort = new AbortController();
  #keeping: Promise<void> | null = null;
  #stopped = false;
  #retryMs = FIRST_RETRY_MS;
  #wake: (() => void) | null = null;
  #timer: unknown = null;

  /** Null where the runs of `ctx` share no connection (not ssh, `<ssh options>` set Control…, no usable socket path). */
  static for(ctx: CommandContext, deps: SshMasterDeps): SshMaster | null {
    const base = sshSocketBase(ctx);
    return base === null ? null : new SshMaster(ctx, base, deps);
  }

  private constructor(ctx: CommandContext, base: string, deps: SshMasterDeps) {
    this.#deps = deps;
    this.#remoteId = ctx.remote.id;
    this.socket = `${base}-${(deps.pid ?? process.pid).toString(36)}-${randomBytes(4).toString('hex')}`;
    this.#ctx = ctx;
  }

  /** The runs' context: joining this master. */
  contextFor(ctx: CommandContext): CommandContext {
    return { ...ctx, sshControlPath: this.socket };
  }

  start(): void {
    this.#keeping ??= this.#keep();
  }

  /** Closes the connection (after the lanes' last runs: a run still using it would be cut). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    if (this.#timer !== null) this.#deps.clock.clearTimeout(this.#timer);
    this.#wake?.();
    await this.#keeping;
  }

  async #keep(): Promise<void> {
    const { runner, clock, log } = this.#deps;
    await this.#closeLeftovers();
    while (!this.#stopped) {
      // A socket left by a master that was killed would make ssh give up multiplexing ("already exists").
      await unlink(this.socket).catch(() => {});
      const started = clock.now();
      log.debug({ remote: this.#remoteId, socket: this.socket }, `opening the shared ssh connection to ${this.#remoteId}`);
      const result = await runner.run('ssh', sshMasterArgs(this.#ctx, this.socket), { signal: this.#abort.signal });
      if (this.#stopped) break;
      const steady = clock.now() - started >= STEADY_MS;
      if (steady) this.#retryMs = FIRST_RETRY_MS;
      const why =
        result.spawnError ?? `exit ${result.exitCode ?? result.signal}${result.stderr.trim() ? `: ${lastLines(result.stderr, 2)}` : ''}`;
      const line = `the shared ssh connection to ${this.#remoteId} ended (${why}); rsync runs connect on their own until it is open again (next try in ${this.#retryMs / 1000} s)`;
      if (steady || this.#retryMs === FIRST_RETRY_MS) log.warn({ remote: this.#remoteId }, line);
      else log.debug({ remote: this.#remoteId }, line);
      await this.#sleep(this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
    }
    await unlink(this.socket).catch(() => {});
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = this.#deps.clock.setTimeout(() => {
        this.#timer = null;
        resolve();
      }, ms);
    });
  }

  /**
   * Masters of this site and remote whose daemon is gone (killed, out of memory: its ssh child lives on, connected,
   * with nobody to stop it): `ssh -O exit` through their sockets. Another running daemon's are left alone.
   */
  async #closeLeftovers(): Promise<void> {
    const { runner, log } = this.#deps;
    const alive = this.#deps.alive ?? processAlive;
    const prefix = `${basename(this.socket).replace(/-[^-]+-[^-]+$/, '')}-`;
    const names = await readdir(dirname(this.socket)).catch(() => [] as string[]);
    for (const name of names) {
      const pid = name.startsWith(prefix) ? Number.parseInt(name.slice(prefix.length).split('-')[0] ?? '', 36) : Number.NaN;
      if (!Number.isSafeInteger(pid) || pid <= 0 || pid === (this.#deps.pid ?? process.pid) || alive(pid)) continue;
      const socket = join(dirname(this.socket), name);
      const result = await runner.run('ssh', sshControlArgs(this.#ctx, socket, 'exit'), { signal: AbortSignal.timeout(5000) });
      await unlink(socket).catch(() => {});
      if (result.exitCode === 0)
        log.info({ remote: this.#remoteId, socket }, `closed a shared ssh connection to ${this.#remoteId} left by a daemon that is gone`);
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
