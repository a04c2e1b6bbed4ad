import type { Batch } from '../aggregate/aggregator.ts';
import type { Clock } from '../core/clock.ts';
import { type DeletionVerdict, isHeld } from './deletion-guard.ts';
import { holdsTree } from './plan-batch.ts';
import { mergedByPath } from './merge-batches.ts';
import type { RsyncVerdict } from './rsync-exit.ts';

/** How often held deletions look at the guard again. */
export const HOLD_RECHECK_MS = 5000;

export interface Held {
  readonly batch: Batch;
  readonly reason: string;
}

/**
 * Where the lane's deletions stand, as one value:
 * - open: deletions go; `uncapped` once the operator released a hold (the next runs that delete do so without the
 *   maxDelete cap, until one went);
 * - guard: the deletion guard holds `held` (a root or a mount point looks unmounted); rechecked every HOLD_RECHECK_MS;
 * - operator: a run reached <tuning maxDelete> (exit 25): every deletion waits for the operator (release()).
 */
export type HoldState =
  | { readonly kind: 'open'; readonly uncapped: boolean }
  | { readonly kind: 'guard'; readonly held: Held; readonly uncapped: boolean }
  | { readonly kind: 'operator'; readonly held: Held | null };

/** What the batch in flight is: a new one, the re-plan of a batch that ended with exit 23, or the parked batch. */
export type Attempt = { readonly kind: 'fresh' } | { readonly kind: 'replan' } | { readonly kind: 'parked'; readonly attempts: number };

/** The batch that keeps ending with exit 23, retried on its own at `due`; parked `attempts` times in a row. */
export interface Parked {
  readonly batch: Batch;
  readonly attempts: number;
  readonly due: number;
}

export interface ScheduleOptions {
  readonly clock: Clock;
  readonly retry: { readonly baseMs: number; readonly capMs: number; readonly random: () => number };
  readonly maxPendingPaths: number;
  /** A backoff ended or the parked batch is due: the lane looks whether it can start a batch. */
  readonly wake: () => void;
  /** Held deletions should ask the guard again. */
  readonly recheckHold: () => void;
}

/**
 * A lane's timing, on the Clock and nothing else: when it may start (backoff), the parked batch and when it is due,
 * the held deletions and their recheck, and what the next batch taken is. When pending changes are due is the
 * aggregator's decision alone (Aggregator.takeDue).
 */
export class LaneSchedule {
  readonly #o: ScheduleOptions;
  #backoffUntil = 0;
  #backoffTimer: unknown = null;
  #parked: Parked | null = null;
  #parkedTimer: unknown = null;
  #hold: HoldState = { kind: 'open', uncapped: false };
  #holdTimer: unknown = null;
  /** The next batch taken is the re-plan after an exit 23. */
  #replanNext = false;
  #stopped = false;

  constructor(options: ScheduleOptions) {
    this.#o = options;
  }

  /** The backoff after a failure is over. */
  mayStart(now: number): boolean {
    return now >= this.#backoffUntil;
  }

  /** When the next attempt after a failure (or of the parked batch) may start, if that is in the future. */
  nextAttemptAt(now: number): number | null {
    if (this.#backoffUntil > now) return this.#backoffUntil;
    const due = this.#parked?.due ?? 0;
    return due > now ? due : null;
  }

  /** The parked batch, taken out, when it is due. */
  takeDueParked(now: number): Parked | null {
    const parked = this.#parked;
    if (parked === null || now < parked.due) return null;
    this.#parked = null;
    return parked;
  }

  /** What a batch that starts now is: the parked one (given), or the re-plan after an exit 23, or a new one. */
  begin(parked?: Parked): Attempt {
    const replan = this.#replanNext;
    this.#replanNext = false;
    if (parked) return { kind: 'parked', attempts: parked.attempts };
    return replan ? { kind: 'replan' } : { kind: 'fresh' };
  }

  /** Exponential backoff with jitter: the delay before attempt n + 1 after n failures; config errors at the cap. */
  delay(failures: number, verdict: RsyncVerdict): number {
    const { baseMs, capMs, random } = this.#o.retry;
    const exp = verdict === 'config' ? capMs : Math.min(capMs, baseMs * 2 ** (failures - 1));
    return Math.round(exp * (0.75 + 0.5 * random()));
  }

  /** A failed batch: nothing starts before the returned time; retryIn(delay) arms the wake-up. */
  backOff(failures: number, verdict: RsyncVerdict): { delay: number; until: number } {
    const delay = this.delay(failures, verdict);
    this.#backoffUntil = this.#o.clock.now() + delay;
    return { delay, until: this.#backoffUntil };
  }

  succeeded(): void {
    this.#backoffUntil = 0;
  }

  /** One timer that wakes the lane; never sooner than a backoff already set (it would find the lane shut). */
  retryIn(delay: number): void {
    if (this.#stopped) return;
    const clock = this.#o.clock;
    if (this.#backoffTimer !== null) clock.clearTimeout(this.#backoffTimer);
    const wait = Math.max(delay, this.#backoffUntil - clock.now());
    this.#backoffTimer = clock.setTimeout(() => {
      this.#backoffTimer = null;
      this.#o.wake();
    }, wait);
  }

  get parked(): Parked | null {
    return this.#parked;
  }

  /** The first exit 23 of a batch: it goes back to the aggregator, and the next batch taken is its re-plan. */
  replanNext(): void {
    this.#replanNext = true;
  }

  /** Parks the batch after `attempt` ended with exit 23, joined with one parked already (which keeps its due time). */
  park(batch: Batch, attempt: Attempt): { parked: Parked; attempts: number } {
    const clock = this.#o.clock;
    const attempts = (attempt.kind === 'parked' ? attempt.attempts : 0) + 1;
    const prev = this.#parked;
    const now = clock.now();
    const parked = prev
      ? { batch: mergedByPath([prev.batch, batch], this.#o.maxPendingPaths), attempts: Math.max(prev.attempts, attempts), due: prev.due }
      : { batch, attempts, due: now + this.delay(attempts, 'partial') };
    this.#parked = parked;
    if (this.#parkedTimer !== null) clock.clearTimeout(this.#parkedTimer);
    if (!this.#stopped) {
      this.#parkedTimer = clock.setTimeout(
        () => {
          this.#parkedTimer = null;
          this.#o.wake();
        },
        Math.max(0, parked.due - now),
      );
    }
    return { parked, attempts };
  }

  unpark(): void {
    this.#parked = null;
    if (this.#parkedTimer !== null) this.#o.clock.clearTimeout(this.#parkedTimer);
    this.#parkedTimer = null;
  }

  get hold(): HoldState {
    return this.#hold;
  }

  get held(): Held | null {
    return this.#hold.kind === 'open' ? null : this.#hold.held;
  }

  /** The runs that delete go without the maxDelete cap (the operator released a hold). */
  get uncapped(): boolean {
    return this.#hold.kind !== 'operator' && this.#hold.uncapped;
  }

  /** Keeps deletions aside (joined with those held already); true when nothing was held before. */
  holdBack(batch: Batch, reason: string): boolean {
    const was = this.held;
    const held = { batch: was ? mergedByPath([was.batch, batch], this.#o.maxPendingPaths) : batch, reason };
    this.#hold = this.#hold.kind === 'operator' ? { kind: 'operator', held } : { kind: 'guard', held, uncapped: this.#hold.uncapped };
    this.#recheckIn(HOLD_RECHECK_MS);
    return was === null;
  }

  /** maxDelete was reached (or a reload's lane takes that over): every deletion waits for the operator. */
  waitForOperator(): void {
    this.#hold = { kind: 'operator', held: this.held };
  }

  /** A deletion went: the operator's release (no cap) is used up. */
  capAgain(): void {
    if (this.#hold.kind !== 'operator') this.#hold = { ...this.#hold, uncapped: false };
  }

  /** The operator's "yes, delete": true when deletions were held (they are looked at again now, without the cap). */
  release(): boolean {
    const held = this.held;
    if (held === null) {
      this.#hold = { kind: 'open', uncapped: this.uncapped };
      return false;
    }
    this.#hold = { kind: 'guard', held, uncapped: true };
    if (this.#holdTimer !== null) this.#o.clock.clearTimeout(this.#holdTimer);
    this.#holdTimer = null;
    return true;
  }

  /**
   * The guard's answer for the held deletions: returns what may go now (null: nothing), keeps the rest held, and
   * looks again in HOLD_RECHECK_MS while something is held.
   */
  settleHold(held: Held, verdict: DeletionVerdict): Batch | null {
    const { batch } = held;
    const free = batch.full ? (verdict.all ? [] : null) : batch.entries.filter((e) => !isHeld(verdict, e.path));
    const still = batch.full ? [] : batch.entries.filter((e) => isHeld(verdict, e.path));
    // A sweep may go unless the whole tree is held (below lost mount points it goes with exclude rules).
    const sweep = batch.sweep === true && !holdsTree(verdict);
    let go: Batch | null = null;
    if (free === null || free.length > 0 || sweep) {
      const { sweep: _, ...plain } = batch;
      const rest = still.length > 0 ? { batch: { ...plain, entries: still }, reason: verdict.reason } : null;
      const h = this.#hold;
      if (h.kind === 'operator') this.#hold = { kind: 'operator', held: rest };
      else this.#hold = rest ? { kind: 'guard', held: rest, uncapped: h.uncapped } : { kind: 'open', uncapped: h.uncapped };
      go = free === null ? batch : { ...plain, entries: free, ...(sweep ? { sweep } : {}) };
    }
    return go;
  }

  /** Looks at held deletions again later, while something is held. */
  keepChecking(): void {
    if (this.held !== null) this.#recheckIn(HOLD_RECHECK_MS);
  }

  #recheckIn(delay: number): void {
    if (this.#stopped || this.#holdTimer !== null) return;
    this.#holdTimer = this.#o.clock.setTimeout(() => {
      this.#holdTimer = null;
      this.#o.recheckHold();
    }, delay);
  }

  stop(): void {
    this.#stopped = true;
    const clock = this.#o.clock;
    if (this.#backoffTimer !== null) clock.clearTimeout(this.#backoffTimer);
    if (this.#parkedTimer !== null) clock.clearTimeout(this.#parkedTimer);
    if (this.#holdTimer !== null) clock.clearTimeout(this.#holdTimer);
  }
}
