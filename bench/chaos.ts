/**
 * Chaos rounds for as long as asked (issue 15): each round is one run of test/helpers/chaos-run.ts with its own seed
 * (a churn of the watched tree at full speed while the rsync daemon and sersync-ts are stopped, killed, reloaded and
 * restarted), then a wait for identical trees. Prints ops, faults, time to converge and the seed of any failure;
 * writes everything to bench/results/chaos-<date>.json.
 *
 *   ./node_modules/.bin/node bench/chaos.ts [--minutes 30] [--rounds N] [--churn-seconds 50] [--converge-seconds 120]
 *                                           [--seed S] [--ops N] [--entries 3000] [--fault-gap 600-2400]
 *
 * `--seed S` makes S the first round's seed (later rounds draw new ones); with `--ops N` that round stops after
 * exactly N operations (without a time limit unless --churn-seconds is given), which replays a failed round up to the
 * same operation. `--trace --seed S --ops N` runs only
 * the churn of that seed with its fault plan (no daemons, a scratch directory) and prints every operation and where
 * each fault hit, to follow a differing path back through its renames. Exit code 1 when any round failed.
 */
import { randomInt } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseSeed } from '../test/helpers/chaos-random.ts';
import { type ChaosResult, describeChaos, ok, runChaos, traceChaos } from '../test/helpers/chaos-run.ts';
import { removeTempDirs } from '../test/helpers/tmp.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    rounds: { type: 'string' },
    'churn-seconds': { type: 'string' },
    'converge-seconds': { type: 'string', default: '120' },
    seed: { type: 'string' },
    ops: { type: 'string' },
    entries: { type: 'string', default: '3000' },
    'fault-gap': { type: 'string', default: '600-2400' },
    trace: { type: 'boolean', default: false },
  },
});

function positive(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`bench/chaos.ts: --${name} ${JSON.stringify(text)}: expected a number > 0`);
    process.exit(64);
  }
  return n;
}

const minutes = positive('minutes', values.minutes);
const rounds = positive('rounds', values.rounds) ?? (minutes === undefined ? 1 : Number.POSITIVE_INFINITY);
const churnMs = (positive('churn-seconds', values['churn-seconds']) ?? 50) * 1000;
/** How long a replay (`--ops`) may churn to reach its operation. */
const REPLAY_CHURN_MS = 3_600_000;
const convergeMs = (positive('converge-seconds', values['converge-seconds']) as number) * 1000;
const maxOps = positive('ops', values.ops);
const targetEntries = positive('entries', values.entries);
const gapMatch = /^(\d+)-(\d+)$/.exec(values['fault-gap'] ?? '');
if (gapMatch === null || Number(gapMatch[1]) < 1 || Number(gapMatch[1]) > Number(gapMatch[2])) {
  console.error(`bench/chaos.ts: --fault-gap ${JSON.stringify(values['fault-gap'])}: expected MIN-MAX operations, 1 <= MIN <= MAX`);
  process.exit(64);
}
const faultGapOps: [number, number] = [Number(gapMatch[1]), Number(gapMatch[2])];
let firstSeed: number | undefined;
try {
  firstSeed = values.seed === undefined ? undefined : parseSeed(values.seed);
} catch (err) {
  console.error(`bench/chaos.ts: --seed: ${(err as Error).message}`);
  process.exit(64);
}

const log = (line: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`);

interface RoundRecord extends Omit<ChaosResult, 'recentOps' | 'differences'> {
  round: number;
  ok: boolean;
  differences: string[];
  /** The last 2,000 operations before the churn stopped, kept for failed rounds only. */
  recentOps?: readonly string[];
}

/** Every operation of a seed's run, with its faults, on a scratch tree without daemons, one per line on stdout. */
async function trace(seed: number, ops: number): Promise<number> {
  for (const line of await traceChaos(seed, ops, { targetEntries, faultGapOps })) console.log(line);
  return 0;
}

async function main(): Promise<number> {
  if (values.trace) {
    if (firstSeed === undefined || maxOps === undefined) {
      console.error('bench/chaos.ts: --trace needs --seed and --ops');
      return 64;
    }
    return trace(firstSeed, maxOps);
  }
  const startedAt = new Date();
  const deadline = minutes === undefined ? Number.POSITIVE_INFINITY : startedAt.getTime() + minutes * 60_000;
  const records: RoundRecord[] = [];
  const file = join(import.meta.dirname, 'results', `chaos-${startedAt.toISOString().slice(0, 16).replace(':', '-')}.json`);
  const save = async () => {
    await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
    const summary = {
      startedAt: startedAt.toISOString(),
      options: {
        minutes,
        rounds: Number.isFinite(rounds) ? rounds : null,
        churnMs,
        convergeMs,
        maxOps,
        targetEntries,
        faultGapOps,
        firstSeed,
      },
      rounds: records.length,
      failed: records.filter((r) => !r.ok).map((r) => r.seed),
      operations: records.reduce((n, r) => n + r.operations, 0),
      faults: records.reduce((n, r) => n + r.faults.length, 0),
      records,
    };
    await writeFile(file, `${JSON.stringify(summary, null, 2)}\n`);
  };

  console.log('| round | seed | ops | ops/s | entries | faults | full syncs | converged in | result |');
  console.log('| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |');
  for (let round = 1; round <= rounds && Date.now() < deadline; round++) {
    const seed = round === 1 && firstSeed !== undefined ? firstSeed : randomInt(0, 2 ** 32 - 1);
    log(`round ${round}: seed ${seed}`);
    const result = await runChaos({
      seed,
      // A replay (--ops) runs to its operation however slow the machine is now; a round by time, within the deadline.
      churnMs:
        round === 1 && maxOps !== undefined && values['churn-seconds'] === undefined
          ? REPLAY_CHURN_MS
          : Math.min(churnMs, Math.max(10_000, deadline - Date.now())),
      convergeMs,
      maxOps: round === 1 ? maxOps : undefined,
      targetEntries,
      faultGapOps,
      log,
    });
    await removeTempDirs();
    const passed = ok(result);
    const { recentOps, differences, ...rest } = result;
    records.push({
      round,
      ...rest,
      ok: passed,
      differences: differences.slice(0, 200),
      recentOps: passed ? undefined : recentOps,
    });
    await save();
    const faults = Object.entries(result.faultCounts)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    console.log(
      `| ${round} | ${seed} | ${result.operations} | ${Math.round(result.operations / (result.churnMs / 1000))} | ${result.entries} | ${faults || 'none'} | ` +
        `${result.daemonLog.fullSyncs} | ${result.convergeMs === null ? '—' : `${(result.convergeMs / 1000).toFixed(1)} s`} | ` +
        `${passed ? 'identical' : `**FAILED** (${differences.length} differences, ${result.problems.length} problems)`} |`,
    );
    if (!passed) log(describeChaos(result));
  }
  const failed = records.filter((r) => !r.ok);
  console.log(
    `\n${records.length} rounds, ${records.reduce((n, r) => n + r.operations, 0)} operations, ` +
      `${records.reduce((n, r) => n + r.faults.length, 0)} faults; failed seeds: ${failed.map((r) => r.seed).join(', ') || 'none'}`,
  );
  log(`results in ${file}`);
  return failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
