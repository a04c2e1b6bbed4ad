import type { Config } from '../config/model.ts';
import type { RelPath } from '../core/paths.ts';
import { ChokidarWatcher } from './chokidar-watcher.ts';
import { DirWatcher } from './dir-watcher.ts';
import type { Watcher } from './watcher.ts';

/** What the daemon wants to hear from a DirWatcher besides events. */
export interface WatcherHooks {
  readonly onUnreadable?: (path: RelPath, cause: unknown) => void;
  readonly onMountPoint?: (path: RelPath) => void;
}

/** `<tuning watcher>`: the one choice of watcher, for the daemon and `-m` alike. */
export function createWatcher(config: Config, hooks: WatcherHooks = {}): Watcher {
  return config.tuning.watcher === 'dirs' ? new DirWatcher(hooks) : new ChokidarWatcher();
}
