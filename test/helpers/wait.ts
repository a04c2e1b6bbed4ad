/**
 * Polling waits for integration tests, which observe real processes and cannot use a fake clock.
 *
 * Both functions fail with a message that says what was awaited and what was last seen, so a timeout in CI
 * explains itself.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type CompareTreesOptions, compareTrees } from './trees.ts';

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between probes (default 50 ms). */
  intervalMs?: number;
  /** What is awaited, for the timeout message: "the rsync daemon on port 873". */
  what: string;
}

/**
 * Calls `probe` until it returns something other than undefined or false, and returns that. A probe that throws
 * counts as "not yet"; its last error is quoted in the timeout message and kept as the cause.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | false>, opts: WaitOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const started = Date.now();
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    const left = started + timeoutMs - Date.now();
    if (left <= 0) {
      const detail = lastError === undefined ? '' : `; last probe error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}${detail}`, { cause: lastError });
    }
    await sleep(Math.min(intervalMs, left));
  }
}

/**
 * Waits until {@link compareTrees}(a, b, opts) reports no difference. On timeout it throws listing the first 20
 * differences of the last comparison and how many there were.
 */
export async function waitForIdenticalTrees(
  a: string,
  b: string,
  opts: CompareTreesOptions & { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let last: string[] | undefined;
  try {
    await waitFor(
      async () => {
        last = undefined;
        last = await compareTrees(a, b, opts);
        return last.length === 0;
      },
      { timeoutMs, intervalMs: opts.intervalMs ?? 100, what: `${b} to match ${a}` },
    );
  } catch (err) {
    if (last === undefined) {
      throw new Error(`could not compare ${a} with ${b} within ${timeoutMs} ms: ${(err as Error).message}`, { cause: err });
    }
    const shown = last.slice(0, 20).map((d) => `  ${d}`);
    if (last.length > 20) shown.push(`  ... and ${last.length - 20} more`);
    throw new Error(
      `trees still differ after ${timeoutMs} ms (a = ${a}, b = ${b}); ${last.length} difference(s):\n${shown.join('\n')}`,
      { cause: err },
    );
  }
}
