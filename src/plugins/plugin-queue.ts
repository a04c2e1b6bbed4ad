import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { displayPath } from '../core/paths.ts';
import type { PluginEvent, PluginLimits } from './plugin.ts';

/** How long a plugin's close() waits for its queued events by default. */
export const DEFAULT_CLOSE_GRACE_MS = 5000;

/** How much work a plugin may have at once; every plugin has defaults, tests shrink them. */
/** Handles one event; must honour `signal` (the queue also stops waiting for it when the signal fires). */
export type PluginHandler = (event: PluginEvent, signal: AbortSignal) => Promise<void>;

/**
 * The work queue behind every plugin: notify() returns at once, events start in the order they came, at most
 * `concurrency` run at a time, and two events of the same path never overlap (the second waits for the first), so a
 * hook sees a path's changes in order. Each event gets `timeoutMs`; a handler that ignores its signal is abandoned,
 * not awaited, so a hanging hook costs a slot for at most that long and never reaches the sync engine.
 */
export class PluginQueue {
  readonly #name: string;
  readonly #limits: PluginLimits;
  readonly #log: Logger;
  readonly #handle: PluginHandler;
  readonly #queue: PQueue;
  /** The last promise per path, so the next event of that path starts after it. */
  readonly #tails = new Map<string, Promise<void>>();
  /** Aborts running and waiting work when close() gives up. */
  readonly #abort = new AbortController();
  #pending = 0;
  #dropped = 0;
  #closed = false;
  #idleWaiters: (() => void)[] = [];

  constructor(name: string, limits: PluginLimits, log: Logger, handle: PluginHandler) {
    this.#name = name;
    this.#limits = limits;
    this.#log = log;
    this.#handle = handle;
    this.#queue = new PQueue({ concurrency: Math.max(1, limits.concurrency) });
  }

  /** Events accepted and not yet finished. */
  get pending(): number {
    return this.#pending;
  }

  push(events: readonly PluginEvent[]): void {
    for (const event of events) {
      if (this.#closed) {
        this.#log.debug({ plugin: this.#name, path: displayPath(event.path) }, `plugin ${this.#name} is closed; event dropped`);
        continue;
      }
      if (this.#pending >= this.#limits.maxQueued) {
        if (this.#dropped === 0) {
          this.#log.warn(
            { plugin: this.#name, queued: this.#pending },
            `plugin ${this.#name}: ${this.#pending} events waiting, the limit; dropping new events until it catches up (the receiver is slow or down)`,
          );
        }
        this.#dropped++;
        continue;
      }
      if (this.#dropped > 0) {
        this.#log.warn(
          { plugin: this.#name, dropped: this.#dropped },
          `plugin ${this.#name}: dropped ${this.#dropped} events while its queue was full`,
        );
        this.#dropped = 0;
      }
      this.#enqueue(event);
    }
  }

  /**
   * Stops accepting events and waits up to `graceMs` for the queued ones; then aborts what runs, skips the rest and
   * says how many were left.
   */
  async close(graceMs: number): Promise<void> {
    this.#closed = true;
    if (this.#dropped > 0) {
      this.#log.warn(
        { plugin: this.#name, dropped: this.#dropped },
        `plugin ${this.#name}: dropped ${this.#dropped} events while its queue was full`,
      );
      this.#dropped = 0;
    }
    if (this.#pending === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.#idleWaiters.push(() => resolve(true)));
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    const finished = await Promise.race([idle, late]);
    clearTimeout(timer);
    if (finished) return;
    this.#log.warn(
      { plugin: this.#name, left: this.#pending, graceMs },
      `plugin ${this.#name}: ${this.#pending} events not handled within ${graceMs} ms of shutdown; abandoned`,
    );
    this.#abort.abort(new Error('shutting down'));
    this.#queue.clear();
    // Running handlers settle at once (they race the aborted signal); cleared ones never run.
    await this.#queue.onPendingZero();
  }

  #enqueue(event: PluginEvent): void {
    this.#pending++;
    const before = this.#tails.get(event.path);
    const run = async () => {
      // Always yield first: notify() never starts a process or a connection inside the caller's stack.
      await before;
      if (this.#abort.signal.aborted) return;
      await this.#queue.add(() => this.#runOne(event), { signal: this.#abort.signal }).catch(() => {});
    };
    const tail: Promise<void> = run().finally(() => {
      if (this.#tails.get(event.path) === tail) this.#tails.delete(event.path);
      this.#pending--;
      if (this.#pending === 0) for (const w of this.#idleWaiters.splice(0)) w();
    });
    this.#tails.set(event.path, tail);
  }

  async #runOne(event: PluginEvent): Promise<void> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.#limits.timeoutMs), this.#abort.signal]);
    let stop: (() => void) | undefined;
    const aborted = new Promise<'aborted'>((resolve) => {
      stop = () => resolve('aborted');
      signal.addEventListener('abort', stop, { once: true });
    });
    try {
      const outcome = await Promise.race([this.#handle(event, signal).then(() => 'done' as const), aborted]);
      if (outcome === 'aborted' && !this.#abort.signal.aborted) {
        this.#log.warn(
          { plugin: this.#name, path: displayPath(event.path), timeoutMs: this.#limits.timeoutMs },
          `plugin ${this.#name}: gave up on ${displayPath(event.path)} after ${this.#limits.timeoutMs} ms`,
        );
      }
    } catch (err) {
      this.#log.warn(
        { plugin: this.#name, path: displayPath(event.path), err },
        `plugin ${this.#name} failed for ${displayPath(event.path)}: ${err instanceof Error ? err.message : String(err)}`,
      );
    } finally {
      if (stop) signal.removeEventListener('abort', stop);
    }
  }
}
