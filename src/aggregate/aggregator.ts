import type { Clock } from '../core/clock.ts';
import type { RelPath } from '../core/paths.ts';
import type { AggregatorLimits, Batch, ChangeHint, PendingEntry } from './batch.ts';

export type { AggregatorLimits, Batch, ChangeHint, PendingEntry } from './batch.ts';

/**
 * The burst collapser of one remote (syncthing's watch aggregator is the model). It keeps only what is pending, as a
 * tree of changed paths: the latest state per path; a path created and removed within the window vanishes (unless a
 * transfer of this remote ran since it was created, which may have carried it: then it is a deletion); a
 * recursive entry (a new directory) swallows its children; a directory with too many changed children becomes the
 * directory; too many paths overall becomes a full sync. A batch is due once its changes have been quiet for
 * `quietMs` (MOVES_QUIET_MS when they are completed moves only), and never later than `maxWaitMs` after its first
 * change. Time comes only from the Clock.
 *
 * While a burst goes on without a pause (a long `cp -a`: at least BURST_EVENTS changes in the window), each batch
 * that the cap cut off triples the cap of the next one, up to MAX_STRETCH times maxWaitMs (2, 6, 18 s); a batch that
 * goes on quiet, or a cut-off window with fewer changes (a log file appended to all day), resets it. And a window
 * that holds BATCH_EVENTS changes is due at once, whatever its cap (unless it is a full sync, which lists everything
 * anyway), and leaves the stretch as it was. Paths put back (a failed batch) wait like changes but count as none.
 * A slow burst of T seconds then costs about log3(T / maxWaitMs) + 1 rsync runs while it is short and T / 18 s when
 * it is long, instead of T / maxWaitMs; a fast one one run per BATCH_EVENTS changes; and the last batch, which
 * waits for the quiet rule and decides the latency after the last write, holds at most one window.
 */

/** Each batch that a burst's cap cut off multiplies the next cap by this. */
export const STRETCH_GROWTH = 3;
/** The cap of a batch in a burst that goes on grows to at most this many times maxWaitMs. */
export const MAX_STRETCH = 9;
/** Changes in a cut-off window that make it a burst worth stretching the next cap for. */
export const BURST_EVENTS = 1000;
/**
 * A window with this many changes is due without waiting for its cap: about a third of a 20k-file copy, so that it
 * goes in 3-4 rsync runs. Each run costs little by itself (a connection and a file list), but it lists every
 * collapsed directory again.
 */
export const BATCH_EVENTS = 8000;
/**
 * A window that holds nothing but completed moves (each new name with the removal of its old one) is due after this
 * much quiet instead of quietMs: a rename is one event pair, whole once both halves are in, and the moves of one
 * script (the deploy swap) arrive within a few milliseconds of each other. Anything else in the window waits as usual.
 */
export const MOVES_QUIET_MS = 25;
/** Above this many pending entries a window is not looked at for being moves only (each change would walk it). */
const MOVES_ONLY_MAX_ENTRIES = 64;

interface EntryState {
  tree: boolean;
  deletes: boolean;
  /** The transfer epoch in which the path was created, or null when it may have existed before (see #isNew). */
  createdIn: number | null;
  removalsOnly: boolean;
  renamedFrom: RelPath | null;
  /** Order of the moves, so that a batch lists its renames as they happened. */
  renameSeq: number;
  /**
   * A non-directory (a symlink, a file) was removed here in this window: the remote may still hold it, and a rename
   * run would go through a symlink to a directory there and fill its target. A move onto it goes plain.
   */
  overNonDir?: boolean;
}

interface Node {
  children: Map<string, Node>;
  entry: EntryState | null;
  /** Entries in this subtree, this node's own included. */
  count: number;
}

const newNode = (): Node => ({ children: new Map(), entry: null, count: 0 });

export class Aggregator {
  readonly #limits: AggregatorLimits;
  readonly #clock: Clock;
  readonly #onDue: () => void;
  #root: Node = newNode();
  #full = false;
  #fullReason = '';
  #absorbed: Set<RelPath> | 'all' = new Set();
  /** A sweep is owed (Batch.sweep). */
  #sweep = false;
  #disposed = false;
  #firstAt = 0;
  #lastAt = 0;
  #timer: unknown = null;
  /** Set by an immediate full-sync request: due without waiting for quiet. */
  #dueNow = false;
  /** The cap of this window is maxWaitMs times this (1, 3, 9 = MAX_STRETCH): see the class comment. */
  #stretch = 1;
  /** Changes added in this window. */
  #changes = 0;
  /** Counts the transfers of this remote that started; see transferStarted(). */
  #epoch = 0;
  #transferring = false;
  #renameSeq = 0;
  /** Everything pending is a completed move (see MOVES_QUIET_MS); looked at after each change. */
  #movesOnly = false;

  /** `onDue` runs (from a clock timer) when a batch becomes due; the owner calls take() when it is ready for it. */
  constructor(limits: AggregatorLimits, clock: Clock, onDue: () => void) {
    this.#limits = limits;
    this.#clock = clock;
    this.#onDue = onDue;
  }

  get pendingPaths(): number {
    return this.#root.count;
  }

  get fullPending(): boolean {
    return this.#full;
  }

  get isEmpty(): boolean {
    return !this.#full && !this.#sweep && this.#root.count === 0;
  }

  /** Clock time of the oldest pending change, or null. */
  get oldestChange(): number | null {
    return this.isEmpty ? null : this.#firstAt;
  }

  add(path: RelPath, hint: ChangeHint): void {
    this.#add(path, hint, true);
  }

  /**
   * Puts a path of an earlier batch back (a failure, a re-plan, a restart). It waits like a change (the window's quiet
   * period starts again) but does not count as one: a batch of 8,000 paths put back is no burst, and does not make
   * the window due at once.
   */
  putBack(path: RelPath, hint: ChangeHint): void {
    this.#add(path, hint, false);
  }

  #add(path: RelPath, hint: ChangeHint, counted: boolean): void {
    this.#touch();
    if (counted) this.#changes++;
    if (this.#full) {
      if (path !== '') this.#absorb([path]);
      return;
    }
    if (path === '') {
      // The root itself changed (or appeared): only a full sync says "everything below".
      if (hint.tree || hint.removed) this.requestFull('the watch root changed');
      return;
    }
    this.#insert(path, hint);
    this.#movesOnly = this.#root.count <= MOVES_ONLY_MAX_ENTRIES && onlyCompletedMoves(this.#root);
    if (this.#root.count > this.#limits.maxPendingPaths) {
      this.requestFull(`more than ${this.#limits.maxPendingPaths} pending paths`);
    } else if (this.#changes === BATCH_EVENTS || this.#movesOnly) {
      this.#rearm();
    }
  }

  /** Everything pending becomes one full sync. Due on the same timing rules, so a storm of losses collapses. */
  requestFull(reason: string, opts: { immediate?: boolean; absorbed?: Batch['absorbed'] } = {}): void {
    this.#touch();
    if (!this.#full) this.#fullReason = reason;
    this.#full = true;
    if (opts.absorbed === 'all') this.#absorbed = 'all';
    else if (opts.absorbed !== undefined) this.#absorb(opts.absorbed);
    if (this.#root.count > 0) {
      const entries: PendingEntry[] = [];
      const renames: { seq: number; entry: PendingEntry }[] = [];
      collect(this.#root, '', entries, renames);
      this.#absorb([...entries, ...renames.map((r) => r.entry)].map((e) => e.path));
    }
    this.#root = newNode();
    this.#movesOnly = false;
    if (opts.immediate) {
      this.#dueNow = true;
      this.#rearm();
    }
  }

  /** The held deletions of a full sync (Batch.sweep) go with the next batch, on the same timing rules. */
  requestSweep(): void {
    this.#touch();
    this.#sweep = true;
  }

  isDue(now = this.#clock.now()): boolean {
    if (this.isEmpty) return false;
    return now >= this.#dueAt();
  }

  /**
   * Hands out everything pending once it is due, else null. The aggregator alone decides when pending changes are
   * due: `onDue` says so from its timer, and its owner (the lane) takes them with this, without asking again.
   */
  takeDue(): Batch | null {
    return this.isDue() ? this.take() : null;
  }

  /** Hands out everything pending and starts a new window (due or not: a flush at shutdown). */
  take(): Batch | null {
    if (this.isEmpty) return null;
    const entries: PendingEntry[] = [];
    const renames: { seq: number; entry: PendingEntry }[] = [];
    collect(this.#root, '', entries, renames);
    entries.push(...inMoveOrder(renames));
    const sweep = this.#sweep && !this.#full ? { sweep: true } : {};
    const absorbed = this.#full && (this.#absorbed === 'all' || this.#absorbed.size > 0) ? { absorbed: this.#absorbedList() } : {};
    const batch: Batch = { full: this.#full, fullReason: this.#fullReason, entries, ...sweep, ...absorbed, since: this.#firstAt };
    const now = this.#clock.now();
    const quiet = now >= this.#lastAt + this.#quietMs();
    // A window that the count ended before its cap leaves the stretch as it was: only a cap stretches the next one.
    const byCount = this.#countReached() && now < this.#capAt();
    if (this.#dueNow || quiet || (!byCount && this.#changes < BURST_EVENTS)) this.#stretch = 1;
    else if (!byCount) this.#stretch = Math.min(this.#stretch * STRETCH_GROWTH, MAX_STRETCH);
    this.#root = newNode();
    this.#movesOnly = false;
    this.#full = false;
    this.#fullReason = '';
    this.#absorbed = new Set();
    this.#sweep = false;
    this.#dueNow = false;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    return batch;
  }

  /**
   * The owner started an rsync that reads the disk (a recursive run of an ancestor, a full sync, a retried batch) and
   * may carry paths created since. A pending path created before or during it can no longer vanish when it is
   * removed: the remote may hold it now, so its removal must reach the remote. transferEnded() when it is done.
   */
  transferStarted(): void {
    this.#epoch++;
    this.#transferring = true;
  }

  transferEnded(): void {
    this.#transferring = false;
  }

  /** Paths a pending full sync takes in, up to maxPendingPaths; beyond that 'all'. */
  #absorb(paths: readonly RelPath[]): void {
    if (this.#absorbed === 'all') return;
    for (const path of paths) this.#absorbed.add(path);
    if (this.#absorbed.size > this.#limits.maxPendingPaths) this.#absorbed = 'all';
  }

  #absorbedList(): readonly RelPath[] | 'all' {
    return this.#absorbed === 'all' ? 'all' : [...this.#absorbed];
  }

  /** Created in this window, and no transfer ran since that may have carried it to the remote. */
  #isNew(entry: EntryState): boolean {
    return entry.createdIn === this.#epoch;
  }

  /** Stops the timer (shutdown); pending changes stay readable through take(). */
  dispose(): void {
    this.#disposed = true;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  #dueAt(): number {
    if (this.#dueNow || this.#countReached()) return this.#clock.now();
    return Math.min(this.#lastAt + this.#quietMs(), this.#capAt());
  }

  #quietMs(): number {
    return this.#movesOnly ? Math.min(this.#limits.quietMs, MOVES_QUIET_MS) : this.#limits.quietMs;
  }

  /** The window holds BATCH_EVENTS changes, which makes it due (a full sync waits for its timing rules instead). */
  #countReached(): boolean {
    return !this.#full && this.#changes >= BATCH_EVENTS;
  }

  #capAt(): number {
    return this.#firstAt + this.#limits.maxWaitMs * this.#stretch;
  }

  #touch(): void {
    const now = this.#clock.now();
    if (this.isEmpty) {
      // A new window (after a take, or after everything pending vanished).
      this.#firstAt = now;
      this.#changes = 0;
    }
    this.#lastAt = now;
    this.#arm();
  }

  /** The due time moved earlier: the armed timer would fire too late. */
  #rearm(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#arm();
  }

  /** One timer at a time: when it fires early (more changes came), it re-arms for the new due time. */
  #arm(): void {
    // After dispose (a stopped lane), what is restored waits for take(), not for a timer.
    if (this.#timer !== null || this.#disposed) return;
    const delay = Math.max(0, this.#dueAt() - this.#clock.now());
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      if (this.isEmpty) return;
      if (this.isDue()) this.#onDue();
      else this.#arm();
    }, delay);
  }

  /** The path has a pending entry of its own that says it was removed (not one swallowed by a directory above). */
  #removalPending(path: RelPath): boolean {
    let node: Node | undefined = this.#root;
    for (const name of path.split('/')) {
      if (node.entry?.tree) return false;
      node = node.children.get(name);
      if (node === undefined) return false;
    }
    return node.entry?.deletes === true;
  }

  #insert(path: RelPath, hint: ChangeHint): void {
    // A move whose old name is not pending as a removal (it went in an earlier batch, or it was new in this window:
    // a chain a→b→c) is sent as a plain new path.
    const renamedFrom =
      hint.renamedFrom !== undefined && hint.renamedFrom !== path && this.#removalPending(hint.renamedFrom) ? hint.renamedFrom : null;
    const renameSeq = renamedFrom === null ? 0 : ++this.#renameSeq;
    const parts = path.split('/');
    const trail: Node[] = [this.#root];
    let node = this.#root;
    for (let i = 0; i < parts.length; i++) {
      if (node.entry?.tree) {
        // A pending recursive entry above already covers this path.
        if (hint.removed || hint.deletes) node.entry.deletes = true;
        node.entry.removalsOnly &&= hint.removed;
        return;
      }
      const name = parts[i] as string;
      let child = node.children.get(name);
      if (child === undefined) {
        child = newNode();
        node.children.set(name, child);
      }
      node = child;
      trail.push(node);
    }
    const existing = node.entry;
    // Created while a transfer runs: that transfer may carry it, so it is never "new" to the remote.
    const createdIn = hint.created && !this.#transferring ? this.#epoch : null;
    if (existing === null) {
      if (hint.removed && createdIn !== null) {
        // Removed as it was created: nothing to tell the remote. Clean up the nodes we just made.
        prune(trail, parts);
        return;
      }
      node.entry = {
        tree: hint.tree,
        deletes: hint.removed || hint.deletes === true,
        createdIn,
        removalsOnly: hint.removed,
        renamedFrom,
        renameSeq,
        ...(hint.removed && !hint.tree ? { overNonDir: true } : {}),
      };
      for (const n of trail) n.count++;
    } else if (hint.removed && this.#isNew(existing)) {
      // Created and removed within this window: it vanishes, with everything that was pending below it.
      const gone = node.count;
      node.entry = null;
      node.children.clear();
      for (const n of trail) n.count -= gone;
      prune(trail, parts);
      return;
    } else {
      existing.tree ||= hint.tree;
      existing.deletes ||= hint.removed || hint.deletes === true;
      existing.removalsOnly &&= hint.removed;
      if (hint.removed && !hint.tree) existing.overNonDir = true;
      // The latest move here counts; a removal ends what an earlier one said.
      if (renamedFrom !== null && existing.overNonDir !== true) Object.assign(existing, { renamedFrom, renameSeq });
      else if (hint.removed) existing.renamedFrom = null;
    }
    if (node.entry?.tree && node.children.size > 0) this.#collapse(node, trail);
    const parent = trail[trail.length - 2];
    if (parent && parent !== this.#root && parent.children.size > this.#limits.maxChildrenPerDir) {
      this.#collapse(parent, trail.slice(0, -1));
    }
  }

  /** Makes `node` one recursive entry that stands for its whole pending subtree. */
  #collapse(node: Node, trail: readonly Node[]): void {
    const before = node.count;
    const below = removalsBelow(node);
    const deletes = node.entry?.deletes === true || below.any;
    const createdIn = node.entry?.createdIn ?? null;
    const removalsOnly = (node.entry === null || node.entry.removalsOnly) && below.only;
    node.children = new Map();
    node.entry = { tree: true, deletes, createdIn, removalsOnly, renamedFrom: null, renameSeq: 0 };
    node.count = 1;
    const delta = before - 1;
    for (const n of trail) if (n !== node) n.count -= delta;
  }
}

/** One walk of the entries below `node`: whether any says something was removed, and whether all of them do only that. */
function removalsBelow(node: Node, acc = { any: false, only: true }): { any: boolean; only: boolean } {
  for (const child of node.children.values()) {
    if (child.entry !== null) {
      acc.any ||= child.entry.deletes;
      acc.only &&= child.entry.removalsOnly;
    }
    removalsBelow(child, acc);
  }
  return acc;
}

/**
 * Every pending entry is either a move's new name (renamedFrom) or the removal alone of a name that one of them moved
 * from: nothing else changed, and no move still waits for its other half.
 */
function onlyCompletedMoves(root: Node): boolean {
  const entries: PendingEntry[] = [];
  const renames: { seq: number; entry: PendingEntry }[] = [];
  collect(root, '', entries, renames);
  if (renames.length === 0) return false;
  const oldNames = new Set(renames.map((r) => r.entry.renamedFrom));
  return entries.every((e) => e.removalsOnly === true && oldNames.has(e.path));
}

/**
 * The renames in the order of the moves, except that one whose old name another rename takes goes before it: in the
 * deploy swap (`mv site site.old; mv site.new site`) the watcher may report `site` first, but the remote's `site` must
 * serve as the basis of `site.old` before it becomes the new one.
 */
function inMoveOrder(renames: { seq: number; entry: PendingEntry }[]): PendingEntry[] {
  const sorted = renames.sort((a, b) => a.seq - b.seq);
  const movingAway = new Map(sorted.map((r) => [r.entry.renamedFrom, r]));
  const out: PendingEntry[] = [];
  const done = new Set<(typeof sorted)[number]>();
  const visit = (r: (typeof sorted)[number], depth: number): void => {
    const first = movingAway.get(r.entry.path);
    if (first !== undefined && first !== r && !done.has(first) && depth < sorted.length) visit(first, depth + 1);
    if (done.has(r)) return;
    done.add(r);
    out.push(r.entry);
  };
  for (const r of sorted) visit(r, 0);
  return out;
}

/** Removes empty nodes at the end of the trail. */
function prune(trail: readonly Node[], parts: readonly string[]): void {
  for (let i = trail.length - 1; i > 0; i--) {
    const node = trail[i] as Node;
    if (node.entry !== null || node.children.size > 0) return;
    (trail[i - 1] as Node).children.delete(parts[i - 1] as string);
  }
}

function collect(node: Node, prefix: string, out: PendingEntry[], renames: { seq: number; entry: PendingEntry }[]): void {
  for (const [name, child] of node.children) {
    const path = prefix === '' ? name : `${prefix}/${name}`;
    if (child.entry) {
      const { tree, deletes, removalsOnly, renamedFrom, renameSeq } = child.entry;
      if (renamedFrom !== null) renames.push({ seq: renameSeq, entry: { path, tree, deletes, renamedFrom } });
      else out.push(removalsOnly ? { path, tree, deletes, removalsOnly } : { path, tree, deletes });
    }
    if (!child.entry?.tree) collect(child, path, out, renames);
  }
}
