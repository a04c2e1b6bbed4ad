/**
 * A small seeded random source for the chaos run (mulberry32): the same seed gives the same sequence on every
 * machine and Node version, which Math.random cannot promise. Not for anything that needs real randomness.
 */

/** A seed as the chaos run prints and accepts it: a 32-bit unsigned integer. */
export function parseSeed(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new Error(`seed ${JSON.stringify(text)}: expected an integer 0..4294967295`);
  return n;
}

export class SeededRandom {
  #state: number;

  /** `stream` tells independent sequences from one seed apart (the operations and the fault plan, say). */
  constructor(seed: number, stream = 0) {
    this.#state = (seed ^ Math.imul(stream + 1, 0x9e37_79b9)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b_79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick: no items');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** One key of `weights`, with probability proportional to its weight (weights of 0 are never picked). */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    if (total <= 0) throw new Error('weighted: every weight is 0');
    let x = this.next() * total;
    for (const [key, w] of entries) {
      if (x < w) return key;
      x -= w;
    }
    return (entries.findLast(([, w]) => w > 0) as [K, number])[0];
  }

  /** `size` bytes from this sequence. */
  bytes(size: number): Buffer {
    const buf = Buffer.alloc(size);
    let i = 0;
    for (; i + 4 <= size; i += 4) buf.writeUInt32LE(Math.floor(this.next() * 4_294_967_296), i);
    for (; i < size; i++) buf[i] = Math.floor(this.next() * 256);
    return buf;
  }
}
