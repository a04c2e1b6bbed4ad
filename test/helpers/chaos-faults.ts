/**
 * The fault plan of a chaos run: which fault hits after which operation of the churn. It comes from the seed alone
 * (its own stream of it), counted in operations rather than seconds, so a seed replays the same faults between the
 * same operations however fast the machine is.
 */
import { SeededRandom } from './chaos-random.ts';

/**
 * - `rsyncdStop` / `rsyncdStart`: the receiving rsync daemon goes away (its connections too) and comes back.
 * - `kill` / `start`: sersync-ts is SIGKILLed (with its rsync children) and later started again without `-r`.
 * - `hup`: SIGHUP, a reload of the same config, sent right after a flurry of writes, with another flurry 20 ms later.
 * - `termRestart`: SIGTERM to sersync-ts alone (as systemd's KillMode=mixed sends it) right after a flurry of
 *   writes, then a start without `-r`; the churn waits meanwhile, since what changes while no daemon runs
 *   is seen by nobody.
 */
export const FAULT_KINDS = ['rsyncdStop', 'rsyncdStart', 'kill', 'start', 'hup', 'termRestart'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Fault {
  /** The fault hits once this many operations are done. */
  readonly atOp: number;
  readonly kind: FaultKind;
}

export const DEFAULT_FAULT_GAP_OPS: readonly [number, number] = [600, 2400];

export interface FaultPlanOptions {
  /** Operations between two faults: uniform in [min, max]. Default 600..2400. */
  readonly gapOps?: readonly [number, number];
}

export class FaultPlan {
  readonly #rng: SeededRandom;
  readonly #gap: readonly [number, number];
  #rsyncdUp = true;
  #daemonUp = true;
  #next: Fault;

  constructor(seed: number, opts: FaultPlanOptions = {}) {
    this.#rng = new SeededRandom(seed, 1);
    this.#gap = opts.gapOps ?? DEFAULT_FAULT_GAP_OPS;
    this.#next = this.#draw(0);
  }

  /** The faults due once `operations` are done, in order; each is returned once. */
  due(operations: number): Fault[] {
    const out: Fault[] = [];
    while (this.#next.atOp <= operations) {
      out.push(this.#next);
      this.#next = this.#draw(this.#next.atOp);
    }
    return out;
  }

  #draw(after: number): Fault {
    const rsyncd = this.#rsyncdUp;
    const daemon = this.#daemonUp;
    const kind = this.#rng.weighted<FaultKind>({
      rsyncdStop: rsyncd ? 2 : 0,
      rsyncdStart: rsyncd ? 0 : 4,
      kill: daemon ? 2 : 0,
      start: daemon ? 0 : 8,
      hup: daemon ? 3 : 0,
      termRestart: daemon ? 3 : 0,
    });
    if (kind === 'rsyncdStop' || kind === 'rsyncdStart') this.#rsyncdUp = kind === 'rsyncdStart';
    if (kind === 'kill' || kind === 'start') this.#daemonUp = kind === 'start';
    return { atOp: after + this.#rng.int(this.#gap[0], this.#gap[1]), kind };
  }
}
