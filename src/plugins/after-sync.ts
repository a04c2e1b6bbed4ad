import type { Batch } from '../aggregate/aggregator.ts';
import type { Config } from '../config/model.ts';
import { fromUtf8 } from '../core/paths.ts';
import type { BatchOutcome } from '../sync/remote-lane.ts';
import { CompletionTracker } from './completion-tracker.ts';
import { createPlugin } from './create-plugin.ts';
import type { Plugin, PluginDeps } from './plugin.ts';
import { DEFAULT_CLOSE_GRACE_MS } from './plugin-queue.ts';

/** `<sersync><plugin start="true" name>` in sync mode: the bridge from the remote lanes to the plugin. */
export interface AfterSync {
  readonly plugin: Plugin;
  /** LaneDeps.onSynced: a batch reached one remote. Returns at once. */
  synced(remoteId: string, batch: Batch, outcome: BatchOutcome): void;
  /** Waits up to `graceMs` for the plugin's queued work (call after the lanes have stopped). */
  close(graceMs?: number): Promise<void>;
}

export interface AfterSyncDeps extends PluginDeps {
  /** Paths waiting for some remote, at most; default twice <tuning maxPendingPaths>. Changeable for tests. */
  readonly maxTracked?: number;
}

/**
 * Null when no plugin is enabled. Otherwise every path of every batch goes through a CompletionTracker over the
 * config's remotes, and the plugin gets each path (absolute, deletions included) once it has reached them all.
 */
export function createAfterSync(config: Config, deps: AfterSyncDeps): AfterSync | null {
  if (!config.plugin.enabled) return null;
  const { log } = deps;
  const plugin = createPlugin(config.plugin.name, config, deps);
  const tracker = new CompletionTracker(
    config.remotes.map((r) => r.id),
    { maxPaths: deps.maxTracked ?? 2 * config.tuning.maxPendingPaths },
  );
  const root = fromUtf8(config.watch);
  log.info({ plugin: plugin.name }, `after each batch has reached every remote, run the plugin ${plugin.name}`);
  return {
    plugin,
    synced(remoteId, batch, outcome) {
      const dirs = new Set([...batch.entries.filter((e) => e.tree).map((e) => e.path), ...(outcome.dirs ?? [])]);
      // A full sync's own paths (those it took in) first: then it counts for every other tracked path too.
      const done = tracker.report(remoteId, outcome.updated, outcome.deleted, dirs);
      if (batch.full && outcome.whole !== false) done.push(...tracker.reportFull(remoteId));
      const dropped = tracker.takeDropped();
      if (dropped > 0) {
        log.warn(
          { plugin: plugin.name, dropped, waiting: tracker.size },
          `plugin ${plugin.name}: ${dropped} changed paths waited too long for a remote and will not be passed to the plugin`,
        );
      }
      if (done.length === 0) return;
      if (done.some((d) => d.path === ''))
        log.warn(
          { plugin: plugin.name, watch: root },
          `a full sync took in more changes than maxPendingPaths: the plugin is told ${root} instead`,
        );
      plugin.notify(done.map((d) => ({ path: d.path === '' ? root : `${root}/${d.path}`, isDir: d.isDir, deleted: d.deleted })));
    },
    close: (graceMs = DEFAULT_CLOSE_GRACE_MS) => plugin.close(graceMs),
  };
}
