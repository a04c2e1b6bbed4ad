import { Aggregator, type Batch } from '../aggregate/aggregator.ts';
import type { Config, PluginName } from '../config/model.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { lstatFast } from '../core/lstat.ts';
import { displayPath, fromUtf8, toBuffer } from '../core/paths.ts';
import { planSite } from '../sync/site-plan.ts';
import { changeHintFor } from '../watch/change-hint.ts';
import { createWatcher } from '../watch/watcher-choice.ts';
import type { Watcher } from '../watch/watcher.ts';
import { createPlugin } from './create-plugin.ts';
import type { PluginDeps, PluginEvent } from './plugin.ts';

export interface StandaloneDeps extends PluginDeps {
  /** Default: the `<tuning watcher>` choice, as in sync mode. */
  readonly createWatcher?: () => Watcher;
  /** Changeable for tests. */
  readonly clock?: Clock;
}

export interface StandalonePlugin {
  /** The directories watched: the plugin's own `<localpath watch>`, or every `<sersync><localpath watch>`. */
  readonly roots: readonly string[];
  /** Stops watching, then waits up to `graceMs` (default 5 s) for the plugin's queued work. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * sersync2's `-m NAME`: the plugin alone on a watched directory, no rsync, no retry queue, no crontab. The watched
 * directory is the plugin block's own `<localpath watch>` (socket, refreshCDN, http), else `<sersync><localpath
 * watch>`: for command every one of them (an extension: sersync2 watched the first). The realtime filter, the
 * built-in temporary-file rules and the inotify toggles apply as in sync mode; each counted event goes to the plugin
 * without rsync.
 *
 * One difference: a Node watcher reports every write of a file, where sersync2's close_write fired once per close,
 * so a file written in 20 chunks would run a command 20 times. Events therefore go through the aggregator that sync
 * mode uses (same quietMs, maxWaitMs, maxChildrenPerDir, maxPendingPaths): the plugin gets each path once per
 * burst, in its latest state; a directory with too many changed children is passed as the directory, and a path
 * created and removed within one burst is not passed at all.
 */
export async function startStandalone(config: Config, name: PluginName, deps: StandaloneDeps): Promise<StandalonePlugin> {
  const { log } = deps;
  const roots = standaloneRoots(config, name);
  const plugin = createPlugin(name, config, deps);
  const { filter } = planSite(config);
  // Batches go to the plugin in order, each once its entries' state is known.
  let told: Promise<void> = Promise.resolve();
  const watched: { watcher: Watcher; tell: () => void; pending: Aggregator }[] = [];
  try {
    for (const root of roots) {
      const rootBytes = fromUtf8(root);
      const watcher = deps.createWatcher?.() ?? createWatcher(config);
      const tell = () => {
        const batch = pending.take();
        if (batch === null) return;
        if (batch.full) {
          log.warn({ plugin: name, reason: batch.fullReason, watch: root }, `${batch.fullReason}: the plugin is told ${root} instead`);
        }
        told = told
          .then(() => pluginEventsOf(batch, rootBytes))
          .then(
            (events) => plugin.notify(events),
            (err: unknown) => log.error({ err, plugin: name }, 'cannot pass a batch to the plugin'),
          );
      };
      const pending = new Aggregator(config.tuning, deps.clock ?? systemClock, tell);
      watched.push({ watcher, tell, pending });
      await watcher.start(
        root,
        (event) => {
          if (event.kind === 'lost') {
            log.warn(
              { reason: event.reason, watch: root },
              `events may have been lost (${event.reason}); the plugin cannot be told about them`,
            );
            return;
          }
          const change = changeHintFor(event, config.inotify);
          if (log.isLevelEnabled('debug')) {
            log.debug({ event: event.kind, op: event.op, path: displayPath(event.path), counted: change !== null }, 'watch event');
          }
          if (change !== null) pending.add(change.path, change.hint);
        },
        { isIgnored: (path, isDir) => filter.isExcluded(path, isDir) },
      );
      log.info(
        { plugin: name, watch: root, watcher: config.tuning.watcher, backend: watcher.backend ?? config.tuning.watcher },
        `plugin ${name} running alone on ${root} (-m ${name}): no rsync`,
      );
    }
  } catch (err) {
    for (const w of watched) {
      w.pending.dispose();
      await w.watcher.close();
    }
    await plugin.close(0);
    throw err;
  }
  return {
    roots,
    async stop(graceMs) {
      await Promise.all(
        watched.map(async (w) => {
          await w.watcher.close();
          w.tell();
          w.pending.dispose();
        }),
      );
      await told;
      await plugin.close(graceMs);
    },
  };
}

/**
 * The directories `-m name` watches: the plugin block's own `<localpath watch>`, else the sync ones (always, for
 * command: every `<localpath>`).
 */
export function standaloneRoots(config: Config, name: PluginName): string[] {
  const own = name === 'command' ? null : (config.plugins[name]?.watch ?? null);
  if (own !== null) return [own];
  return name === 'command' ? config.sites.map((s) => s.watch) : [config.watch];
}

/**
 * A batch as plugin events. Where something was removed, the disk says whether the path itself is gone (a directory
 * that only lost children is still there: a change). A full batch is the root itself.
 */
async function pluginEventsOf(batch: Batch, rootBytes: string): Promise<PluginEvent[]> {
  if (batch.full) return [{ path: rootBytes, isDir: true, deleted: false }];
  return Promise.all(
    batch.entries.map(async (e) => {
      const path = `${rootBytes}/${e.path}`;
      return { path, isDir: e.tree, deleted: e.deletes && !(await exists(path)) };
    }),
  );
}

function exists(path: string): Promise<boolean> {
  return lstatFast(toBuffer(path)).then(
    () => true,
    () => false,
  );
}
