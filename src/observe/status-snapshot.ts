import { displayPath } from '../core/paths.ts';
import type { DaemonStatus, RemoteStatus } from './status-model.ts';

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

/** What the daemon knows at one moment; the status endpoint serves it in the shape of DaemonStatus. */
export interface StatusInputs {
  readonly version: string;
  readonly startedAt: string;
  readonly now: number;
  readonly config: { readonly watch: string; readonly tuning: { readonly watcher: DaemonStatus['watcher'] } };
  readonly watcher: { readonly backend?: string; watchCount(): number; unreadablePaths?(): readonly string[] };
  readonly lanes: readonly LaneView[];
  /** null when the crontab is off. */
  readonly crontab: { readonly nextAt: number | null } | null;
  readonly queue: {
    readonly file: string;
    readonly size: number;
    readonly writeError: string | null;
    readonly remotes: Readonly<Record<string, { readonly full: boolean; readonly entries: { readonly length: number } }>>;
  };
  readonly maxUserWatches: number | null;
  readonly events: DaemonStatus['events'];
}

export function statusSnapshot(s: StatusInputs): DaemonStatus {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  const unreadable = s.watcher.unreadablePaths?.() ?? [];
  return {
    version: s.version,
    pid: process.pid,
    startedAt: s.startedAt,
    now: new Date(s.now).toISOString(),
    watch: s.config.watch,
    watcher: s.config.tuning.watcher,
    watchBackend: s.watcher.backend ?? s.config.tuning.watcher,
    watches: s.watcher.watchCount(),
    unreadable: { count: unreadable.length, sample: unreadable.slice(0, 20).map(displayPath) },
    maxUserWatches: s.maxUserWatches,
    events: { ...s.events },
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
        oldestPendingSeconds: oldest === null ? null : (s.now - oldest) / 1000,
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

/** A stored full sync counts as one. */
function queued(stored: { readonly full: boolean; readonly entries: { readonly length: number } } | undefined): number {
  return stored ? (stored.full ? 1 : stored.entries.length) : 0;
}
