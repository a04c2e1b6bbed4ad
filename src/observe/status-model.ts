/**
 * What the daemon reports about itself: the one shape behind `/status` (JSON), `/metrics` (Prometheus), the HTML
 * page and `sersync-ts status`. Times are ISO strings or null; ages and durations in seconds.
 */
export interface RemoteStatus {
  readonly id: string;
  readonly kind: 'daemon' | 'ssh' | 'local';
  /** Paths waiting in this remote's aggregator (a pending full sync counts as one). */
  readonly pendingPaths: number;
  readonly pendingFullSync: boolean;
  /** Age of the oldest change not yet on this remote (pending or in flight), or null. */
  readonly oldestPendingSeconds: number | null;
  readonly rsyncRunning: boolean;
  readonly batches: number;
  readonly fullSyncs: number;
  /** rsync processes by verdict: ok, partial (23/24), retry, config. */
  readonly rsyncRuns: Readonly<Record<'ok' | 'partial' | 'retry' | 'config', number>>;
  readonly pathsSynced: number;
  readonly bytesSent: number;
  /** Renamed paths sent from the remote's copy of their old name, and the bytes that saved (tree size − bytes sent). */
  readonly renames: number;
  readonly renameBytesSaved: number;
  readonly consecutiveFailures: number;
  readonly lastSuccessAt: string | null;
  readonly lastError: string | null;
  readonly degraded: boolean;
  /** Deletions held because the watch root looks empty or unreadable. */
  readonly holdingDeletions: boolean;
  /** Why deletions are held (an unmounted disk, maxDelete reached), or null. */
  readonly holdReason: string | null;
  /** Paths of this remote in the durable retry queue (a stored full sync counts as one). */
  readonly retryQueued: number;
  readonly nextRetryAt: string | null;
}

/** One `<localpath>` and its remotes (sersync-ts serves several in one daemon; sersync2 read the first). */
export interface SiteStatus {
  readonly watch: string;
  readonly watcher: 'dirs' | 'chokidar';
  readonly watchBackend: string;
  /** When this site's watcher started; a reload that leaves the site alone leaves it alone. */
  readonly watchingSince: string;
  readonly watches: number;
  readonly unreadable: { readonly count: number; readonly sample: readonly string[] };
  readonly retryQueue: { readonly file: string; readonly entries: number; readonly writeError: string | null };
  readonly crontab: { readonly enabled: boolean; readonly nextAt: string | null };
  readonly remotes: readonly RemoteStatus[];
}

/**
 * The top-level watch, watcher, retry queue file and crontab are the first site's; watches, unreadable paths, queue
 * entries and remotes count over every site; `sites` has each.
 */
export interface DaemonStatus {
  readonly version: string;
  readonly pid: number;
  readonly startedAt: string;
  readonly now: string;
  readonly watch: string;
  readonly watcher: 'dirs' | 'chokidar';
  /** What delivers the events: 'inotify' (the native reader), 'fs.watch' (its fallback) or 'chokidar'. */
  readonly watchBackend: string;
  readonly watches: number;
  /** Paths that could not be read (EACCES, EIO …): neither watched nor synced until they can be; up to 20 named. */
  readonly unreadable: { readonly count: number; readonly sample: readonly string[] };
  readonly maxUserWatches: number | null;
  /**
   * inotify instances the daemon holds (fs.inotify.max_user_instances counts them): 1 for any number of sites. null
   * where /proc cannot be read; absent from daemons older than it.
   */
  readonly inotifyInstances?: number | null;
  /** Watcher events: all seen, dropped by the toggles, sent to the remotes' aggregators, "events may be lost". */
  readonly events: { readonly seen: number; readonly ignored: number; readonly counted: number; readonly lost: number };
  /** `writeError`: why the file is behind what is in memory (a full disk); the daemon is degraded while set. */
  readonly retryQueue: { readonly file: string; readonly entries: number; readonly writeError: string | null };
  readonly crontab: { readonly enabled: boolean; readonly nextAt: string | null };
  readonly remotes: readonly RemoteStatus[];
  readonly sites: readonly SiteStatus[];
  /** Sites of the config that the last reload could not start (another daemon holds their lock …), with why. */
  readonly sitesNotStarted: readonly { readonly watch: string; readonly error: string; readonly since: string }[];
}

export interface StatusSource {
  snapshot(): DaemonStatus;
}
