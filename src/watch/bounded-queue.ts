/**
 * Runs asynchronous tasks with at most `limit` in flight; the others wait, first in first out, or last in first out
 * (depth first: a walk of a wide tree then keeps few directories waiting). When a task settles, `settled` is called
 * before the next waiting task starts, so what it reports comes before anything the next task does.
 *
 * Hand-written rather than p-queue: p-queue has no last-in-first-out order (its priority queue splices an array on
 * each insert) and settles each task through promises and events of its own, work on every event of a burst that
 * would also move the next task's start to a later tick.
 */
export class BoundedQueue<T> {
  readonly #limit: number;
  readonly #lastInFirstOut: boolean;
  readonly #run: (item: T) => Promise<void>;
  readonly #settled: (item: T) => void;
  #waiting: T[] = [];
  /** First in first out: the index of the next waiting item (shifting the array would copy it each time). */
  #head = 0;
  #active = 0;

  constructor(options: {
    readonly limit: number;
    readonly order: 'fifo' | 'lifo';
    readonly run: (item: T) => Promise<void>;
    readonly settled: (item: T) => void;
  }) {
    this.#limit = Math.max(1, options.limit);
    this.#lastInFirstOut = options.order === 'lifo';
    this.#run = options.run;
    this.#settled = options.settled;
  }

  push(item: T): void {
    this.#waiting.push(item);
    this.#pump();
  }

  /** Nothing runs and nothing waits. */
  get idle(): boolean {
    return this.#active === 0 && this.#head === this.#waiting.length;
  }

  /** Drops the waiting tasks (those running go on) and returns them. */
  dropWaiting(): T[] {
    const dropped = this.#waiting.slice(this.#head);
    this.#waiting = [];
    this.#head = 0;
    return dropped;
  }

  #pump(): void {
    while (this.#active < this.#limit) {
      const item = this.#lastInFirstOut ? this.#waiting.pop() : this.#shift();
      if (item === undefined) break;
      this.#active++;
      void this.#run(item).finally(() => {
        this.#active--;
        this.#settled(item);
        this.#pump();
      });
    }
  }

  #shift(): T | undefined {
    if (this.#head === this.#waiting.length) return undefined;
    const item = this.#waiting[this.#head++];
    if (this.#head === this.#waiting.length) {
      this.#waiting = [];
      this.#head = 0;
    }
    return item;
  }
}
