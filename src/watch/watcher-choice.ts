import type { Config } from '../config/model.ts';
import type { RelPath } from '../core/paths.ts';
import { ChokidarWatcher } from './chokidar-watcher.ts';
import type { NativeInotify } from './dir-watch-backend.ts';
import { DirWatcher } from './dir-watcher.ts';
import type { InotifyInstance } from './inotify-instance.ts';
import type { Watcher } from './watcher.ts';

/** What the daemon wants to hear from a DirWatcher besides events. */
export interface WatcherHooks {
  readonly onUnreadable?: (path: RelPath, cause: unknown) => void;
  readonly onMountPoint?: (path: RelPath) => void;
  /** The daemon's one inotify instance, shared by its sites (see InotifyInstance); default one per watcher. */
  readonly inotify?: (addon: NativeInotify) => InotifyInstance;
}

/**
 * `<tuning watcher>`: the one choice of watcher, for the daemon and `-m` alike. chokidar (and DirWatcher on fs.watch,
 * where the native reader is not built) watch through libuv, which keeps one inotify instance per process itself.
 */
export function createWatcher(config: Config, hooks: WatcherHooks = {}): Watcher {
  return config.tuning.watcher === 'dirs' ? new DirWatcher(hooks) : new ChokidarWatcher();
}
