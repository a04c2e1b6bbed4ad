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

/** What the daemon knows at one moment, in the shape the status endpoint serves. */
export interface StatusInputs {
  readonly version: string;
  readonly startedAt: string;
  readonly now: number;
  readonly watch: string;
  readonly watcher: DaemonStatus['watcher'];
  readonly watchBackend: string | undefined;
  readonly watches: number;
  readonly unreadable: readonly string[];
  readonly maxUserWatches: number | null;
  readonly events: DaemonStatus['events'];
  readonly retryQueue: DaemonStatus['retryQueue'];
  /** The entries the retry queue holds per remote (a stored full sync counts as one). */
  readonly queued: (remoteId: string) => number;
  /** The crontab's next run, or undefined when it is off. */
  readonly crontabNextAt: number | null | undefined;
  readonly lanes: readonly LaneView[];
}

export function statusSnapshot(s: StatusInputs): DaemonStatus {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    version: s.version,
    pid: process.pid,
    startedAt: s.startedAt,
    now: new Date(s.now).toISOString(),
    watch: s.watch,
    watcher: s.watcher,
    watchBackend: s.watchBackend ?? s.watcher,
    watches: s.watches,
    unreadable: { count: s.unreadable.length, sample: s.unreadable.slice(0, 20).map(displayPath) },
    maxUserWatches: s.maxUserWatches,
    events: { ...s.events },
    retryQueue: s.retryQueue,
    crontab: { enabled: s.crontabNextAt !== undefined, nextAt: iso(s.crontabNextAt ?? null) },
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
        retryQueued: s.queued(lane.remote.id),
        nextRetryAt: iso(lane.nextAttemptAt),
      };
    }),
  };
}
