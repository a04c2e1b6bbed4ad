import type { Logger } from 'pino';
import type { Config, PluginName } from '../config/model.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import type { ProcessRunner } from '../sync/process-runner.ts';
import { createCdnPlugin } from './cdn-plugin.ts';
import { createCommandPlugin } from './command-plugin.ts';
import { createHttpPlugin } from './http-plugin.ts';
import type { PluginLimits } from './plugin-queue.ts';
import { createSocketPlugin } from './socket-plugin.ts';

/**
 * sersync2's plugins (SPEC §2.8), run after a change has reached every remote (or alone with -m). Each plugin keeps
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

export interface PluginDeps {
  readonly log: Logger;
  /** Runs the command plugin's program; default execaRunner. */
  readonly runner?: ProcessRunner;
  /** Changeable for tests: concurrency, queue cap and per-event timeout of the plugin. */
  readonly limits?: Partial<PluginLimits>;
}

/**
 * The plugin `name` configured in `config.plugins[name]`. Throws when that block is missing; parseConfig already
 * refuses such a config when the plugin is enabled or chosen with -m.
 */
export function createPlugin(name: PluginName, config: Config, deps: PluginDeps): Plugin {
  switch (name) {
    case 'command':
      return createCommandPlugin(required(config.plugins.command, name), deps);
    case 'socket':
      return createSocketPlugin(required(config.plugins.socket, name), deps);
    case 'refreshCDN':
      return createCdnPlugin(required(config.plugins.refreshCDN, name), config.watch, deps);
    case 'http':
      return createHttpPlugin(required(config.plugins.http, name), config.watch, deps);
  }
}

function required<T>(block: T | null, name: PluginName): T {
  if (block === null) {
    throw new SersyncError('CONFIG_INVALID', `no <plugin name="${name}"> block under <head>; the plugin needs one`, {
      exitCode: ExitCode.Config,
    });
  }
  return block;
}
