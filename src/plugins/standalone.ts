import type { Config, PluginName } from '../config/model.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { displayPath, fromUtf8 } from '../core/paths.ts';
import { changeHintFor } from '../watch/change-hint.ts';
import { DirWatcher } from '../watch/dir-watcher.ts';
import { createPathFilter, filterRulesOf } from '../watch/path-filter.ts';
import type { Watcher } from '../watch/watcher.ts';
import { createPlugin, type PluginDeps, type PluginEvent } from './plugin.ts';

export interface StandaloneDeps extends PluginDeps {
  /** Default: a DirWatcher. */
  readonly createWatcher?: () => Watcher;
  /** Changeable for tests. */
  readonly clock?: Clock;
}

export interface StandalonePlugin {
  /** The directory watched: the plugin's own `<localpath watch>`, or `<sersync><localpath watch>`. */
  readonly root: string;
  /** Stops watching, then waits up to `graceMs` (default 5 s) for the plugin's queued work. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * sersync2's `-m NAME`: the plugin alone on a watched directory, no rsync, no retry queue, no crontab. The watched
 * directory is the plugin block's own `<localpath watch>` (socket, refreshCDN, http), else `<sersync><localpath
 * watch>` (always for command, as in sersync2). The realtime filter, the built-in temporary-file rules and the
 * inotify toggles apply as in sync mode; each counted event goes to the plugin without rsync.
 *
 * One difference: a Node watcher reports every write of a file, where sersync2's close_write fired once per close,
 * so a file written in 20 chunks would run a command 20 times. Events of the same path are therefore merged for
 * `<tuning quietMs>` (default 100 ms, never longer than maxWaitMs): the plugin gets each path once per burst, in
 * first-seen order, in its latest state.
 */
export async function startStandalone(config: Config, name: PluginName, deps: StandaloneDeps): Promise<StandalonePlugin> {
  const { log } = deps;
  const own = name === 'command' ? null : (config.plugins[name]?.watch ?? null);
  const root = own ?? config.watch;
  const rootBytes = fromUtf8(root);
  const plugin = createPlugin(name, config, deps);
  const filter = createPathFilter(filterRulesOf(config));
  const watcher = deps.createWatcher?.() ?? new DirWatcher();
  const burst = new Burst(deps.clock ?? systemClock, config.tuning, (events) => plugin.notify(events));
  try {
    await watcher.start(
      root,
      (event) => {
        if (event.kind === 'lost') {
          log.warn({ reason: event.reason }, `events may have been lost (${event.reason}); the plugin cannot be told about them`);
          return;
        }
        const change = changeHintFor(event, config.inotify);
        if (log.isLevelEnabled('debug')) {
          log.debug({ event: event.kind, op: event.op, path: displayPath(event.path), counted: change !== null }, 'watch event');
        }
        if (change === null) return;
        const pluginEvent: PluginEvent = {
          path: event.path === '' ? rootBytes : `${rootBytes}/${event.path}`,
          isDir: event.kind === 'dir',
          deleted: event.op === 'unlink',
        };
        burst.add(pluginEvent);
      },
      { isIgnored: (path, isDir) => filter.isExcluded(path, isDir) },
    );
  } catch (err) {
    burst.dispose();
    await plugin.close(0);
    throw err;
  }
  log.info({ plugin: name, watch: root }, `plugin ${name} running alone on ${root} (-m ${name}): no rsync`);
  return {
    root,
    async stop(graceMs) {
      await watcher.close();
      burst.flush();
      burst.dispose();
      await plugin.close(graceMs);
    },
  };
}

/** Merges events of the same path until they have been quiet for quietMs, or maxWaitMs after the first. */
class Burst {
  readonly #clock: Clock;
  readonly #limits: { readonly quietMs: number; readonly maxWaitMs: number; readonly maxPendingPaths: number };
  readonly #emit: (events: readonly PluginEvent[]) => void;
  /** Insertion order is first-seen order; set() on a known path keeps its place and takes the new state. */
  readonly #pending = new Map<string, PluginEvent>();
  #firstAt = 0;
  #lastAt = 0;
  #timer: unknown = null;

  constructor(
    clock: Clock,
    limits: { readonly quietMs: number; readonly maxWaitMs: number; readonly maxPendingPaths: number },
    emit: (events: readonly PluginEvent[]) => void,
  ) {
    this.#clock = clock;
    this.#limits = limits;
    this.#emit = emit;
  }

  add(event: PluginEvent): void {
    const now = this.#clock.now();
    if (this.#pending.size === 0) this.#firstAt = now;
    this.#lastAt = now;
    this.#pending.set(event.path, event);
    if (this.#pending.size >= this.#limits.maxPendingPaths) this.flush();
    else this.#arm();
  }

  flush(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#pending.size === 0) return;
    const events = [...this.#pending.values()];
    this.#pending.clear();
    this.#emit(events);
  }

  dispose(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  #dueAt(): number {
    return Math.min(this.#lastAt + this.#limits.quietMs, this.#firstAt + this.#limits.maxWaitMs);
  }

  #arm(): void {
    if (this.#timer !== null) return;
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = null;
        if (this.#clock.now() >= this.#dueAt()) this.flush();
        else this.#arm();
      },
      Math.max(0, this.#dueAt() - this.#clock.now()),
    );
  }
}
