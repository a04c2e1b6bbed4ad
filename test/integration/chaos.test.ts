/**
 * Nothing lost under chaos (issue 15): a seeded churn of the watched tree at full speed while the rsync daemon is
 * stopped and started, sersync-ts is SIGKILLed and started again without -r, reloaded with SIGHUP, and stopped with
 * SIGTERM and started again; then the mirror must become identical to the source (test/helpers/chaos-run.ts).
 *
 * CHAOS_SEED=N replays a run: the same operations and the same faults between the same operations. CHAOS_SECONDS
 * sets the churn's length (default 60, the "60 s of it in npm test"). Faults come twice as often as in bench/chaos.ts's rounds (its
 * `--fault-gap 300-1200` replays a run of this test), so a short run meets each kind.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ChaosChurn } from '../helpers/chaos-churn.ts';
import { FaultPlan } from '../helpers/chaos-faults.ts';
import { parseSeed, SeededRandom } from '../helpers/chaos-random.ts';
import { describeChaos, ok, runChaos } from '../helpers/chaos-run.ts';
import { runProcess } from '../helpers/processes.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';

/** Its plan, with faults every 300-1,200 operations, has every kind of fault in the first 3,108 operations. */
const DEFAULT_SEED = 20_268_738;
const FAULT_GAP_OPS: [number, number] = [300, 1200];
const seed = parseSeed(process.env.CHAOS_SEED ?? String(DEFAULT_SEED));
const churnSeconds = Number(process.env.CHAOS_SECONDS ?? 60);

after(() => removeTempDirs());

/** The churn's own trace of `ops` operations from `seed` in a fresh directory, and a listing of what it made. */
async function churnTrace(seedValue: number, ops: number): Promise<{ trace: string; listing: string }> {
  const dir = await makeTempDir('chaos-replay');
  const root = join(dir, 'src');
  const staging = join(dir, 'staging');
  await Promise.all([mkdir(root), mkdir(staging)]);
  const churn = new ChaosChurn(new SeededRandom(seedValue), { root, staging, targetEntries: 300 });
  await churn.prepare();
  while (churn.operations < ops) await churn.step();
  // Names, types, sizes and link targets (not times): what the operations made must be the same.
  const find = await runProcess('find', ['.', '-printf', '%P\\0%y\\0%s\\0%l\\0'], { cwd: root });
  assert.equal(find.code, 0, find.stderr);
  const entries = find.stdout.split('\0');
  const rows: string[] = [];
  for (let i = 0; i + 4 <= entries.length; i += 4) rows.push(entries.slice(i, i + 4).join(' '));
  return { trace: churn.recent().join('\n'), listing: rows.sort().join('\n') };
}

test('a seed replays the same operations, the same tree and the same fault plan', async () => {
  const [a, b] = [await churnTrace(seed, 1000), await churnTrace(seed, 1000)];
  assert.equal(a.trace, b.trace);
  assert.equal(a.listing, b.listing);
  const other = await churnTrace(seed + 1, 1000);
  assert.notEqual(other.trace, a.trace, 'another seed must give other operations');
  const plan = (s: number) => JSON.stringify(new FaultPlan(s).due(100_000));
  assert.equal(plan(seed), plan(seed));
  assert.notEqual(plan(seed), plan(seed + 1));
  // The trace names what the churn promises to cover.
  for (const op of ['cpBurst', 'oddName', 'hardlink', 'symlink', 'moveDir', 'removeDir', 'utimes', 'chmod'])
    assert.match(a.trace, new RegExp(` ${op} `), `no ${op} in 1000 operations`);
});

test(`chaos: churn for ${churnSeconds} s under faults, then the mirror equals the source (seed ${seed})`, async (t) => {
  const rsyncVersion = await runProcess('rsync', ['--version']).catch(() => null);
  if (rsyncVersion?.code !== 0) {
    t.skip('rsync is not installed');
    return;
  }
  t.diagnostic(`CHAOS_SEED=${seed}`);
  const result = await runChaos({
    seed,
    churnMs: churnSeconds * 1000,
    convergeMs: 120_000,
    faultGapOps: FAULT_GAP_OPS,
    log: (line) => t.diagnostic(line),
  });
  t.diagnostic(describeChaos(result).split('\n')[0] as string);
  assert.ok(result.faults.length > 0, 'no fault hit: the run proves nothing');
  assert.ok(ok(result), describeChaos(result));
});
