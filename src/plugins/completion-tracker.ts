import type { RelPath } from '../core/paths.ts';

/** A path whose latest change has reached every remote. */
export interface CompletedPath {
  readonly path: RelPath;
  /** The state the last report gave it: removed, or present (created or changed). */
  readonly deleted: boolean;
  readonly isDir: boolean;
}

interface Entry {
  deleted: boolean;
  isDir: boolean;
  /** Remotes that have not reported the path since it was first seen. */
  readonly waiting: Set<string>;
}

/**
 * Decides when a changed path has reached every remote, so that a plugin runs once per change and only after the
 * data is everywhere (sersync2 ran the plugin after all rsyncs of an event). Pure: no clock, no I/O.
 *
 * Each remote has its own lane and batches, so the remotes see the same change in different batches, merged
 * differently. Rules:
 * - A path is tracked from the first report that names it (in first-seen order) until every remote named at
 *   construction has reported it since; then it is returned, once, and forgotten.
 * - A report of a directory (or any path) also counts for tracked paths below it: the remote synced or deleted that
 *   whole subtree (a lane collapses many changes in one directory into the directory). A full sync counts for every
 *   tracked path.
 * - The state returned is the last one reported: updated, or deleted (a deletion of an ancestor deletes it too).
 *   Within one report a path that is both updated and deleted (a directory synced with deletions below it) is
 *   updated: it exists.
 * - Paths completed by the same report are returned in first-seen order; a path still waiting for a slow remote
 *   never holds back others.
 * - At most `maxPaths` are tracked; beyond that the oldest are dropped and counted (takeDropped), e.g. while one
 *   remote is down for long. Its later sync still happens; only the plugin call for those paths is lost.
 */
export class CompletionTracker {
  readonly #remotes: readonly string[];
  readonly #maxPaths: number;
  /** Insertion order is first-seen order. */
  readonly #entries = new Map<RelPath, Entry>();
  #dropped = 0;

  constructor(remoteIds: readonly string[], opts: { readonly maxPaths: number }) {
    this.#remotes = [...new Set(remoteIds)];
    this.#maxPaths = Math.max(1, opts.maxPaths);
  }

  /** Paths reported by some remotes and waiting for others. */
  get size(): number {
    return this.#entries.size;
  }

  /** How many paths were dropped at the cap since the last call. */
  takeDropped(): number {
    const n = this.#dropped;
    this.#dropped = 0;
    return n;
  }

  /**
   * A batch reached `remoteId`: `updated` exist there now, `deleted` are gone there. `dirs` says which of these
   * paths are directories (the rest are files). Returns the paths now on every remote. Unknown remotes are ignored.
   */
  report(remoteId: string, updated: readonly RelPath[], deleted: readonly RelPath[], dirs?: ReadonlySet<RelPath>): CompletedPath[] {
    if (!this.#remotes.includes(remoteId)) return [];
    const reported = new Map<RelPath, boolean>();
    for (const p of updated) reported.set(p, false);
    for (const p of deleted) if (!reported.has(p)) reported.set(p, true);
    if (reported.size === 0) return [];

    let below = false;
    for (const entry of this.#entries.values()) {
      if (entry.waiting.has(remoteId)) {
        below = true;
        break;
      }
    }
    if (below) {
      for (const [path, entry] of this.#entries) {
        if (!entry.waiting.has(remoteId) || reported.has(path)) continue;
        const ancestorDeleted = nearestAncestor(path, reported);
        if (ancestorDeleted === undefined) continue;
        entry.waiting.delete(remoteId);
        if (ancestorDeleted) entry.deleted = true;
      }
    }
    for (const [path, isDeleted] of reported) {
      const isDir = dirs?.has(path) ?? false;
      const entry = this.#entries.get(path);
      if (entry === undefined) {
        this.#entries.set(path, { deleted: isDeleted, isDir, waiting: new Set(this.#remotes.filter((r) => r !== remoteId)) });
      } else {
        entry.waiting.delete(remoteId);
        entry.deleted = isDeleted;
        entry.isDir = isDir;
      }
    }
    return this.#collect();
  }

  /** A full sync reached `remoteId`: every tracked path is there (or gone there) now. */
  reportFull(remoteId: string): CompletedPath[] {
    if (!this.#remotes.includes(remoteId)) return [];
    for (const entry of this.#entries.values()) entry.waiting.delete(remoteId);
    return this.#collect();
  }

  #collect(): CompletedPath[] {
    const done: CompletedPath[] = [];
    for (const [path, entry] of this.#entries) {
      if (entry.waiting.size > 0) continue;
      this.#entries.delete(path);
      done.push({ path, deleted: entry.deleted, isDir: entry.isDir });
    }
    while (this.#entries.size > this.#maxPaths) {
      const oldest = this.#entries.keys().next().value as RelPath;
      this.#entries.delete(oldest);
      this.#dropped++;
    }
    return done;
  }
}

/** Whether the nearest reported ancestor of `path` was deleted; undefined when no ancestor was reported. */
function nearestAncestor(path: RelPath, reported: ReadonlyMap<RelPath, boolean>): boolean | undefined {
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const state = reported.get(path.slice(0, i));
    if (state !== undefined) return state;
  }
  return undefined;
}
