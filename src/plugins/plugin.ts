import type { Logger } from 'pino';
import type { PluginName } from '../config/model.ts';
import type { ProcessRunner } from '../sync/process-runner.ts';

/**
 * sersync2's plugins, run after a change has reached every remote (or alone with -m). Each plugin keeps
 * sersync2's config and its "one call per changed path" contract, without its unsafe parts: no shell, bounded
 * queues, timeouts, and no credentials in URLs or logs.
 */

/** One changed path, as sersync2 handed it to `plugin->Execute(event)`. */
export interface PluginEvent {
  /** Absolute, a byte string (src/core/paths.ts). */
  readonly path: string;
  readonly isDir: boolean;
  /** Removed (or moved away); otherwise created or changed. */
  readonly deleted: boolean;
}

export interface Plugin {
  readonly name: PluginName;
  /** Returns at once: the work is queued (bounded, drops counted and logged) and starts in the order given. */
  notify(events: readonly PluginEvent[]): void;
  /** Stops accepting events and waits up to `graceMs` (default 5 s) for the queued ones, then abandons the rest. */
  close(graceMs?: number): Promise<void>;
}

export interface PluginLimits {
  /** Hooks running at once (sersync2 ran one per worker thread, up to -n). */
  readonly concurrency: number;
  /** Events accepted but not finished; more are dropped and counted, so a dead receiver cannot eat memory. */
  readonly maxQueued: number;
  /** One event's whole handling (a command, all connection attempts, one HTTP request). */
  readonly timeoutMs: number;
}

export interface PluginDeps {
  readonly log: Logger;
  /** Runs the command plugin's program; default execaRunner. */
  readonly runner?: ProcessRunner;
  /** Changeable for tests: concurrency, queue cap and per-event timeout of the plugin. */
  readonly limits?: Partial<PluginLimits>;
}
