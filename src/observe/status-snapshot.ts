import { displayPath } from '../core/paths.ts';
import type { DaemonStatus, RemoteStatus, SiteStatus } from './status-model.ts';

/** What the snapshot reads of one remote's lane (observe/ sits below sync/, so it names only what it reads). */
export interface LaneView {
  readonly remote: { readonly id: string; readonly kind: RemoteStatus['kind'] };
  readonly stats: {
    readonly batches: number;
    readonly fullSyncs: number;
    readonly runsByVerdict: RemoteStatus['rsyncRuns'];
    readonly pathsSynced: number;
    readonly bytesSent: number;
    readonly renames: number;
    readonly renameBytesSaved: number;
    readonly consecutiveFailures: number;
    readonly lastSuccessAt: number | null;
    readonly lastError: string | null;
    readonly degraded: boolean;
  };
  readonly pendingPaths: number;
  readonly fullPending: boolean;
  readonly oldestChange: number | null;
  readonly busy: boolean;
  readonly holding: boolean;
  readonly holdReason: string | null;
  readonly nextAttemptAt: number | null;
}

/** What the daemon knows of one site (one `<localpath>`) at one moment. */
export interface SiteInputs {
  readonly config: { readonly watch: string; readonly tuning: { readonly watcher: DaemonStatus['watcher'] } };
  readonly watcher: { readonly backend?: string; watchCount(): number; unreadablePaths?(): readonly string[] };
  /** When this site's watcher started: a reload that leaves the site alone leaves this alone. */
  readonly watchingSince: number;
  readonly lanes: readonly LaneView[];
  /** null when the crontab is off. */
  readonly crontab: { readonly nextAt: number | null } | null;
  readonly queue: {
    readonly file: string;
    readonly size: number;
    readonly writeError: string | null;
    readonly remotes: Readonly<Record<string, { readonly full: boolean; readonly entries: { readonly length: number } }>>;
  };
}

/** What the daemon knows at one moment; the status endpoint serves it in the shape of DaemonStatus. */
export interface StatusInputs {
  readonly version: string;
  readonly startedAt: string;
  readonly now: number;
  /** In config order; at least one. */
  readonly sites: readonly SiteInputs[];
  readonly maxUserWatches: number | null;
  /** See DaemonStatus.inotifyInstances. */
  readonly inotifyInstances?: number | null;
  readonly events: DaemonStatus['events'];
  readonly sitesNotStarted?: DaemonStatus['sitesNotStarted'];
}

/**
 * The fields of one site describe the first site at the top level, as before there were several; figures that add
 * up (watches, unreadable paths, queue entries) and the remotes are over all sites. `sites` has each one.
 */
export function statusSnapshot(s: StatusInputs): DaemonStatus {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  const sites = s.sites.map((site) => siteStatus(site, s.now, iso));
  const first = sites[0] ?? NO_SITE;
  const sum = (f: (x: SiteStatus) => number) => sites.reduce((n, x) => n + f(x), 0);
  const unreadable = sites.flatMap((x) => x.unreadable.sample);
  return {
    version: s.version,
    pid: process.pid,
    startedAt: s.startedAt,
    now: new Date(s.now).toISOString(),
    watch: first.watch,
    watcher: first.watcher,
    watchBackend: first.watchBackend,
    watches: sum((x) => x.watches),
    unreadable: { count: sum((x) => x.unreadable.count), sample: unreadable.slice(0, 20) },
    maxUserWatches: s.maxUserWatches,
    inotifyInstances: s.inotifyInstances ?? null,
    events: { ...s.events },
    retryQueue: {
      file: first.retryQueue.file,
      entries: sum((x) => x.retryQueue.entries),
      writeError: sites.find((x) => x.retryQueue.writeError !== null)?.retryQueue.writeError ?? null,
    },
    crontab: first.crontab,
    remotes: sites.flatMap((x) => x.remotes),
    sites,
    sitesNotStarted: s.sitesNotStarted ?? [],
  };
}

function siteStatus(s: SiteInputs, now: number, iso: (t: number | null) => string | null): SiteStatus {
  const unreadable = s.watcher.unreadablePaths?.() ?? [];
  return {
    watch: s.config.watch,
    watcher: s.config.tuning.watcher,
    watchBackend: s.watcher.backend ?? s.config.tuning.watcher,
    watchingSince: iso(s.watchingSince) ?? '',
    watches: s.watcher.watchCount(),
    unreadable: { count: unreadable.length, sample: unreadable.slice(0, 20).map(displayPath) },
    retryQueue: { file: s.queue.file, entries: s.queue.size, writeError: s.queue.writeError },
    crontab: { enabled: s.crontab !== null, nextAt: iso(s.crontab?.nextAt ?? null) },
    remotes: s.lanes.map((lane): RemoteStatus => {
      const st = lane.stats;
      const oldest = lane.oldestChange;
      return {
        id: lane.remote.id,
        kind: lane.remote.kind,
        pendingPaths: lane.pendingPaths + (lane.fullPending ? 1 : 0),
        pendingFullSync: lane.fullPending,
        oldestPendingSeconds: oldest === null ? null : (now - oldest) / 1000,
        rsyncRunning: lane.busy,
        batches: st.batches,
        fullSyncs: st.fullSyncs,
        rsyncRuns: { ...st.runsByVerdict },
        pathsSynced: st.pathsSynced,
        bytesSent: st.bytesSent,
        renames: st.renames,
        renameBytesSaved: st.renameBytesSaved,
        consecutiveFailures: st.consecutiveFailures,
        lastSuccessAt: iso(st.lastSuccessAt),
        lastError: st.lastError,
        degraded: st.degraded,
        holdingDeletions: lane.holding,
        holdReason: lane.holdReason,
        retryQueued: queued(s.queue.remotes[lane.remote.id]),
        nextRetryAt: iso(lane.nextAttemptAt),
      };
    }),
  };
}

/** What the top level shows when no site runs (a reload whose every new site failed to start). */
const NO_SITE: SiteStatus = {
  watch: '',
  watcher: 'dirs',
  watchBackend: 'none',
  watchingSince: '',
  watches: 0,
  unreadable: { count: 0, sample: [] },
  retryQueue: { file: '', entries: 0, writeError: null },
  crontab: { enabled: false, nextAt: null },
  remotes: [],
};

/** A stored full sync counts as one. */
function queued(stored: { readonly full: boolean; readonly entries: { readonly length: number } } | undefined): number {
  return stored ? (stored.full ? 1 : stored.entries.length) : 0;
}
