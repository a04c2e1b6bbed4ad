import type { RelPath } from '../core/paths.ts';
import type { FileHow } from './dir-watch-backend.ts';

/**
 * What a watcher tells the daemon. Events are hints, not truth: the sync engine looks at the disk when a batch goes,
 * so an event only has to say which path may have changed. `lost` means events may have been missed (a watcher
 * error, a watch limit, a root that was replaced): the daemon answers it with a full sync.
 */
export type WatchEvent =
  | {
      readonly kind: 'file';
      readonly op: 'add' | 'change' | 'unlink';
      readonly path: RelPath;
      /**
       * Which inotify event it was, where the watcher knows (the native reader): see FileHow. `link`: created, but
       * no regular file being written (a symlink, a hard link, a FIFO), so no close-write will follow.
       */
      readonly how?: FileHow | 'link';
    }
  /**
   * `changed`: something below the directory changed that the watcher cannot name (a name it cannot decode, an
   * event without a name): sync the directory recursively, deletions included.
   */
  | { readonly kind: 'dir'; readonly op: 'add' | 'unlink' | 'changed'; readonly path: RelPath }
  /**
   * A move inside the tree that inotify paired (IN_MOVED_FROM and IN_MOVED_TO with one cookie): `path` is the new
   * name, `from` the old one. It stands for what the new name would have been reported as (`dir add` or a moved-in
   * `file change`); the old name's removal is reported before it, as always. Only with WatchOptions.pairMoves.
   */
  | { readonly kind: 'rename'; readonly op: 'move'; readonly path: RelPath; readonly from: RelPath; readonly isDir: boolean }
  | { readonly kind: 'lost'; readonly reason: string; readonly cause?: unknown };

export interface WatchOptions {
  /**
   * Paths the watcher must not report; an ignored directory is neither descended nor watched. `isDir` is known for
   * everything a directory listing returns. Must be cheap: it runs for every entry of every scanned directory.
   */
  readonly isIgnored: (path: RelPath, isDir: boolean) => boolean;
  /** Report paired moves as `rename` events (the native inotify reader only; other watchers never pair them). */
  readonly pairMoves?: boolean;
}

export interface Watcher {
  /** Resolves once the whole tree is watched; events that happen during the walk are reported, never lost. */
  start(root: string, sink: (event: WatchEvent) => void, options: WatchOptions): Promise<void>;
  /** Number of inotify watches held (directories), for the limit check and metrics. */
  watchCount(): number;
  /** What delivers the events, for the log ('inotify', 'fs.watch', 'chokidar'). */
  readonly backend?: string;
  /** Paths that could not be read and so are neither watched nor synced (tried again until they can be). */
  unreadablePaths?(): readonly RelPath[];
  /** Looks at a directory again, as if its parent reported it (a mount or unmount there). */
  recheck?(path: RelPath): void;
  /** Hands over what the watcher still holds (see DirWatcher.close), then stops. */
  close(): Promise<void>;
}
