import type { Clock } from '../core/clock.ts';

/**
 * sersync2's `<crontab schedule>`: a full sync every `schedule` minutes, here on its own timer (sersync2 starved it
 * while retries arrived) and jittered to 3/4..5/4 of the interval (syncthing), so many publishers do not hit one
 * receiver in the same minute.
 */
export class Crontab {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #random: () => number;
  readonly #fire: () => void;
  #timer: unknown = null;
  #nextAt: number | null = null;

  constructor(intervalMs: number, clock: Clock, fire: () => void, random: () => number = Math.random) {
    this.#clock = clock;
    this.#intervalMs = intervalMs;
    this.#fire = fire;
    this.#random = random;
  }

  get nextAt(): number | null {
    return this.#nextAt;
  }

  start(): void {
    const delay = Math.round(this.#intervalMs * (0.75 + 0.5 * this.#random()));
    this.#nextAt = this.#clock.now() + delay;
    this.#arm();
  }

  /** Timers cannot wait longer than about 24.8 days; a longer schedule waits in steps. */
  #arm(): void {
    const left = (this.#nextAt ?? 0) - this.#clock.now();
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = null;
        if (this.#clock.now() < (this.#nextAt ?? 0)) return this.#arm();
        this.#fire();
        this.start();
      },
      Math.min(Math.max(0, left), 2 ** 31 - 1),
    );
  }

  stop(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#nextAt = null;
  }
}
