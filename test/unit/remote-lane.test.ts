import assert from 'node:assert/strict';
import { test } from 'node:test';
import PQueue from 'p-queue';
import pino from 'pino';
import { BATCH_EVENTS } from '../../src/aggregate/aggregator.ts';
import { type DeletionVerdict, NOTHING_HELD } from '../../src/sync/deletion-guard.ts';
import type { DiskEntryKind, DiskProbe } from '../../src/sync/disk-probe.ts';
import type { ProcessResult, ProcessRunner } from '../../src/sync/process-runner.ts';
import { type AttemptReport, RemoteLane } from '../../src/sync/remote-lane.ts';
import { FakeClock } from './support/fake-clock.ts';
import { DAEMON_REMOTE, PLAIN_RSYNC } from './support/rsync-fixtures.ts';

/**
 * The lane's retry timing with a fake clock, a scripted runner (no rsync) and a scripted disk (no directory): no
 * real sleeps, so the timing is exact however loaded the machine is. Exponential backoff with jitter up to the cap,
 * configuration errors at the cap at once, degraded after three failures, exit 24, an old receiver. The engine and
 * recovery integration tests prove the same against a real rsync daemon.
 */

const root = '/w';
/** The tree the batches are planned from: a.txt, b.txt, site/, and p/, q/, r/ with 70 files each. */
const disk: DiskProbe = {
  async kind(path: string): Promise<DiskEntryKind> {
    const rel = path.slice(root.length + 1);
    if (['site', 'p', 'q', 'r'].includes(rel)) return 'dir';
    if (['a.txt', 'b.txt'].includes(rel) || /^[pqr]\/f\d+$/.test(rel)) return 'other';
    return 'gone';
  },
  async *entries() {},
};

const rsync = PLAIN_RSYNC;
const remote = DAEMON_REMOTE;
/** Lets the lane's promises run (the scripted disk and runner answer at once): no time passes. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

class ScriptedRunner implements ProcessRunner {
  readonly starts: number[] = [];
  /** Each run's stdin items (paths or rules), NUL-separated in the real thing. */
  readonly inputs: string[][] = [];
  readonly args: (readonly string[])[] = [];
  readonly clock: FakeClock;
  readonly codes: number[];
  constructor(clock: FakeClock, codes: number[]) {
    this.clock = clock;
    this.codes = codes;
  }
  /** While true, each run waits for release(): rsyncs that overlap in time. */
  gated = false;
  active = 0;
  maxActive = 0;
  readonly #waiting: (() => void)[] = [];
  run(_file: string, args: readonly string[], opts?: { input?: Buffer | null }): Promise<ProcessResult> {
    this.starts.push(this.clock.now() - 1_000_000);
    this.args.push(args);
    this.inputs.push(opts?.input ? opts.input.toString('latin1').split('\0').slice(0, -1) : []);
    const exitCode = this.codes.shift() ?? 0;
    const result = { exitCode, stdout: '', stderr: exitCode === 0 ? '' : `exit ${exitCode}`, durationMs: 1 };
    if (!this.gated) return Promise.resolve(result);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    return new Promise((resolve) =>
      this.#waiting.push(() => {
        this.active--;
        resolve(result);
      }),
    );
  }
  /** Lets the oldest waiting run end. */
  release(): boolean {
    const next = this.#waiting.shift();
    next?.();
    return next !== undefined;
  }
}

/** A lane over a scripted runner; `concurrency` is -n, the shared limiter's bound. */
function lane(
  codes: number[],
  concurrency = 1,
  maxDelete: number | null = null,
  seams: { disk?: DiskProbe; deletionGuard?: () => Promise<DeletionVerdict>; fullSyncFilters?: string[] } = {},
) {
  const clock = new FakeClock();
  const runner = new ScriptedRunner(clock, codes);
  const reports: AttemptReport[] = [];
  const synced: { updated: readonly string[]; deleted: readonly string[] }[] = [];
  const l = new RemoteLane(
    remote,
    { watch: root, remote, rsync, deletes: true, filters: [], defaultTimeoutSeconds: 300, maxDelete },
    { quietMs: 100, maxWaitMs: 2000, maxChildrenPerDir: 100, maxPendingPaths: 1000 },
    {
      clock,
      runner,
      limiter: new PQueue({ concurrency }),
      log: pino({ level: 'silent' }),
      rsyncPath: 'rsync',
      rootBytes: root,
      disk: seams.disk ?? disk,
      untranslated: [],
      fullSyncFilters: seams.fullSyncFilters ?? [],
      retry: { baseMs: 1000, capMs: 60_000, random: () => 0.5 },
      onAttempt: (_lane, r) => void reports.push(r),
      onSynced: (_lane, _batch, r) => void synced.push({ updated: r.updated, deleted: r.deleted }),
      deletionGuard: seams.deletionGuard ?? (async () => NOTHING_HELD),
    },
  );
  return { clock, runner, reports, synced, lane: l };
}

/** Advances the fake clock in steps, letting the lane's promises (lstat, the queue) run in between. */
async function run(clock: FakeClock, ms: number, step = 100) {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await settle();
  }
}

test('failures back off 1 s, 2 s, 4 s … (jitter ×0.75–1.25, here ×1); degraded after 3; success resets', async () => {
  const { clock, runner, reports, lane: l } = lane([10, 10, 10, 10, 0]);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 20_000);
  // The quiet period, then retries 1, 2, 4 and 8 s after each failure (each retry waits its own quiet period too).
  assert.deepEqual(runner.starts, [100, 1100, 3100, 7100, 15100]);
  assert.deepEqual(
    reports.map((r) => [r.ok, r.consecutiveFailures]),
    [
      [false, 1],
      [false, 2],
      [false, 3],
      [false, 4],
      [true, 0],
    ],
  );
  assert.equal(l.stats.degraded, false, 'healed by the success');
  assert.equal(l.stats.failures, 4);
});

test('a configuration error (exit 5: auth) waits the full cap at once and marks the remote degraded', async () => {
  const { clock, runner, lane: l } = lane([5, 0]);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 1000);
  assert.equal(l.stats.degraded, true);
  await run(clock, 59_000, 1000);
  assert.deepEqual(runner.starts, [100]);
  await run(clock, 1000);
  assert.deepEqual(runner.starts, [100, 60_100]);
  assert.equal(l.stats.degraded, false);
});

test('a batch cut off mid-transfer is retried with a delete run for its directories (rsync temp files left behind)', async () => {
  const { clock, runner, lane: l } = lane([12, 0, 0]);
  l.add('site', { tree: true, removed: false, created: true });
  await run(clock, 1000);
  assert.equal(runner.starts.length, 1, 'one update run, failed (exit 12: the connection broke)');
  await run(clock, 2000);
  assert.equal(runner.starts.length, 3, 'the retry: an update run and a delete run');
  assert.deepEqual(runner.inputs[1], ['/site', '/site/***']);
  assert.deepEqual(runner.inputs[2], ['/site', '/site/***'], 'the delete run removes what the source does not hold in site/');
});

test('a failed batch of more than 200 paths is retried without that cleanup (its rules would be matched per file)', async () => {
  const { clock, runner, lane: l } = lane([12, 0, 0]);
  l.add('site', { tree: true, removed: false, created: true });
  for (const d of ['p', 'q', 'r']) for (let i = 0; i < 70; i++) l.add(`${d}/f${i}`, { tree: false, removed: false, created: false });
  await run(clock, 1000);
  await run(clock, 2000);
  assert.equal(runner.starts.length, 2, 'the failed update run, then its retry alone: no delete run');
});

test('a directory with only removals pending gets its delete run and no update run; a write below it brings the update back', async () => {
  const { clock, runner, synced, lane: l } = lane([0, 0, 0]);
  // p still exists (an rm -rf under way): more removed children than maxChildrenPerDir collapse it.
  for (let i = 0; i < 101; i++) l.add(`p/gone${i}`, { tree: false, removed: true, created: false });
  await run(clock, 1000);
  assert.equal(runner.starts.length, 1, 'one run');
  assert.ok(runner.args[0]?.includes('--delete') && runner.args[0].includes('--existing'), 'the delete run');
  assert.deepEqual(runner.inputs[0], ['/p', '/p/***']);
  assert.deepEqual(synced[0], { updated: ['p'], deleted: ['p'] }, 'p still exists: reported as updated too, so plugins hear no "deleted"');
  for (let i = 0; i < 100; i++) l.add(`p/gone${i}`, { tree: false, removed: true, created: false });
  l.add('p/f1', { tree: false, removed: false, created: false });
  await run(clock, 1000);
  assert.equal(runner.starts.length, 3, 'an update run and a delete run');
  assert.ok(!runner.args[1]?.includes('--existing'), 'the update run first');
});

test('a restored batch never makes a path created since vanish as "created and removed"', async () => {
  const { clock, runner, lane: l } = lane([0]);
  l.add('b.txt', { tree: false, removed: false, created: true });
  // A batch from the queue in which b.txt had been deleted: b.txt exists again, so it must still be sent.
  l.restore({ full: false, entries: [{ path: 'b.txt', tree: false, deletes: true }] });
  await run(clock, 1000);
  assert.deepEqual(runner.inputs, [['/b.txt']]);
});

test('exit 24 (files vanished) is no failure: the batch counts as synced and its listed paths are looked at once more', async () => {
  const { clock, runner, reports, lane: l } = lane([24, 0]);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 1000);
  assert.deepEqual(runner.starts, [100, 200], 'a.txt checked again after the quiet period, no backoff');
  assert.equal(l.stats.failures, 0);
  assert.deepEqual(
    reports.map((r) => r.ok),
    [true, true],
  );
});

test('exit 24 of a full sync (a live tree) is a finished full sync, not a loop', async () => {
  const { clock, runner, reports, lane: l } = lane([24, 24, 24]);
  l.requestFull('test', { immediate: true });
  await run(clock, 5000);
  assert.deepEqual(runner.starts, [100], 'one run, not again and again');
  assert.equal(l.stats.fullSyncs, 1);
  assert.deepEqual(
    reports.map((r) => r.ok),
    [true],
  );
});

test('a receiver that refuses --modify-window=-1 (before 3.1.3) is retried at once without it, and stays without it', async () => {
  const { clock, runner, lane: l } = lane([]);
  const args: string[][] = [];
  runner.run = (_file: string, a: readonly string[]) => {
    args.push([...a]);
    runner.starts.push(clock.now() - 1_000_000);
    const old = a.includes('--modify-window=-1');
    return Promise.resolve({
      exitCode: old ? 1 : 0,
      stdout: '',
      stderr: old ? 'rsync: on remote machine: -@-1: unknown option' : '',
      durationMs: 1,
    });
  };
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 1000);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 1000);
  assert.deepEqual(
    args.map((a) => a.includes('--modify-window=-1')),
    [true, false, false],
  );
  assert.deepEqual(runner.starts, [100, 200, 1100]);
  assert.equal(l.stats.failures, 0);
});

test('exit 23 once (a listed path vanished before rsync read it): the batch is planned again after its quiet period, no backoff, no failure', async () => {
  const { clock, runner, reports, lane: l } = lane([23, 0]);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 2000);
  // The re-plan waits only its quiet period, no backoff.
  assert.deepEqual(runner.starts, [100, 200]);
  assert.equal(l.stats.failures, 0);
  assert.deepEqual(
    reports.map((r) => r.ok),
    [true],
  );
});

test('a batch put back after exit 23 waits its quiet period, also when the window then holds BATCH_EVENTS changes', async () => {
  const { clock, runner, lane: l } = lane([23, 0]);
  runner.gated = true;
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 100);
  assert.deepEqual(runner.starts, [100]);
  // While it runs, one short of a full window of changes to another file.
  for (let i = 0; i < BATCH_EVENTS - 1; i++) l.add('b.txt', { tree: false, removed: false, created: false });
  runner.release();
  await settle();
  // a.txt comes back into that window; putting it back is no change, so the window is not due at once.
  assert.deepEqual(runner.starts, [100], 'the re-plan does not start with writes still going on');
  await run(clock, 100);
  assert.deepEqual(runner.starts, [100, 200], 'it starts after the quiet period');
  runner.release();
  await settle();
});

test('exit 23 twice in a row: that batch is parked and retried on its own with backoff; newer changes do not wait', async () => {
  const { clock, runner, reports, synced, lane: l } = lane([23, 23, 0, 23, 0]);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 300);
  assert.deepEqual(runner.starts, [100, 200], 'the first try and its re-plan');
  assert.equal(l.parkedPaths, 1);
  assert.equal(l.stats.failures, 1);
  assert.deepEqual(
    reports.map((r) => [r.ok, r.verdict, r.nextAttemptAt]),
    [[false, 'partial', 1_001_200]],
  );
  assert.equal(l.nextAttemptAt, 1_001_200);
  // A newer change goes after its quiet period, alone: the lane has no backoff.
  l.add('b.txt', { tree: false, removed: false, created: false });
  await run(clock, 200);
  assert.deepEqual(runner.starts, [100, 200, 400]);
  assert.deepEqual(runner.inputs[2], ['/b.txt']);
  assert.deepEqual(synced, [{ updated: ['b.txt'], deleted: [] }]);
  assert.equal(l.parkedPaths, 1, 'a success of another batch does not let go of the parked one');
  // The parked batch is tried again 1 s after it was parked (jitter ×1 here), alone; 23 again parks it for 2 s.
  await run(clock, 1000);
  assert.deepEqual(runner.starts, [100, 200, 400, 1200]);
  assert.deepEqual(runner.inputs[3], ['/a.txt']);
  assert.equal(l.parkedPaths, 1);
  await run(clock, 2000);
  assert.deepEqual(runner.starts, [100, 200, 400, 1200, 3200]);
  assert.equal(l.parkedPaths, 0, 'it went through');
  assert.deepEqual(synced.at(-1), { updated: ['a.txt'], deleted: [] });
  assert.deepEqual(
    reports.map((r) => [r.ok, r.consecutiveFailures]),
    [
      [false, 1],
      [true, 0],
      [false, 2],
      [true, 0],
    ],
  );
  assert.equal(l.stats.consecutiveFailures, 0, 'the remote itself never failed');
});

test('a stop while a batch runs and a parked one is due: one rsync at a time, the parked one and what is pending go', async () => {
  // -n 10: only the lane itself keeps its rsyncs one at a time.
  const { clock, runner, lane: l } = lane([23, 23, 0, 0, 0], 10);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 300);
  assert.equal(l.parkedPaths, 1, 'parked, due at 1200');
  runner.gated = true;
  l.add('b.txt', { tree: false, removed: false, created: false });
  await run(clock, 200);
  assert.equal(runner.active, 1, "b.txt's rsync runs");
  await run(clock, 1000); // the parked batch is due now, behind the running one
  l.add('p/f0', { tree: false, removed: false, created: false });
  const flushed = l.flush();
  for (let i = 0; i < 20 && (runner.release() || runner.active > 0 || i < 3); i++) await settle();
  await flushed;
  assert.equal(runner.maxActive, 1);
  assert.deepEqual(runner.inputs.slice(2), [['/b.txt'], ['/a.txt'], ['/p/f0']]);
  assert.equal(l.parkedPaths, 0);
});

test('a batch parked three times in a row marks the remote degraded; the same path parked twice is one entry', async () => {
  const { clock, runner, lane: l } = lane([23, 23, 23, 23, 23, 23]);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 300);
  // A newer batch with the same path fails the same way and joins the parked one.
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 300);
  assert.equal(runner.starts.length, 4);
  assert.equal(l.parkedPaths, 1);
  assert.equal(l.stats.degraded, false);
  await run(clock, 2000);
  assert.equal(runner.starts.length, 5, 'the parked batch tried again after 1 s: parked twice now');
  assert.equal(l.stats.degraded, false);
  await run(clock, 2000);
  assert.equal(runner.starts.length, 6, 'and after 2 s more: three times');
  assert.equal(l.stats.degraded, true);
  assert.equal(l.stats.consecutiveFailures, 0, 'the remote itself answers');
});

test('a parked batch stays in what the lane owes (the durable queue at a stop) and a full sync lets go of it', async () => {
  const { clock, runner, lane: l } = lane([23, 23, 0]);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 300);
  assert.deepEqual(
    l.unfinished()?.entries.map((e) => e.path),
    ['a.txt'],
  );
  l.requestFull('crontab', { immediate: true });
  await run(clock, 200);
  assert.equal(runner.starts.length, 3);
  assert.ok(runner.args[2]?.includes('--info=progress2'), 'the third run is the full sync');
  assert.equal(l.parkedPaths, 0);
  await run(clock, 3000);
  assert.equal(runner.starts.length, 3, 'nothing is retried after the full sync');
});

test('exit 25 (maxDelete reached) holds every deletion for the operator; the release deletes once without the cap', async () => {
  const { clock, runner, reports, lane: l } = lane([0, 25], 1, 2);
  const removed = { tree: false, removed: true, created: false };
  l.add('gone1', removed);
  await run(clock, 300);
  assert.equal(l.holding, false);
  l.add('gone2', removed);
  await run(clock, 300);
  assert.equal(l.waitsForOperator, true);
  assert.match(l.holdReason ?? '', /more than maxDelete=2 deletions in one run/);
  l.add('gone3', removed);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 12_000);
  assert.deepEqual(
    runner.args.slice(2).map((a) => a.includes('--delete')),
    [false],
    'updates go on, deletions wait (also the new one), no retry of the capped run',
  );
  assert.equal(l.stats.failures, 0);
  l.releaseHold();
  await run(clock, 300);
  assert.equal(l.holding, false);
  const released = runner.args.slice(3);
  assert.deepEqual(
    released.map((a) => [a.includes('--delete'), a.some((x) => x.startsWith('--max-delete'))]),
    [[true, false]],
    'one delete run, without the cap',
  );
  assert.deepEqual(runner.inputs.at(-1), ['/gone2', '/gone2/***', '/gone3', '/gone3/***']);
  l.add('gone4', removed);
  await run(clock, 300);
  assert.deepEqual(
    runner.args.at(-1)?.filter((x) => x.startsWith('--max-delete')),
    ['--max-delete=2'],
    'capped again',
  );
  assert.equal(reports.at(-1)?.ok, true);
  l.stop();
});

test('a full sync held by an empty root sends nothing; once the root has content its deletions go as a sweep after the updates', async () => {
  let rootHasContent = false;
  const rootDisk: DiskProbe = {
    ...disk,
    async *entries(dir) {
      if (dir === root && rootHasContent) yield { name: 'a.txt', dir: false };
    },
  };
  let verdict: DeletionVerdict = { all: true, below: [], reason: 'watch root /w is empty' };
  const { clock, runner, lane: l } = lane([], 1, null, { disk: rootDisk, deletionGuard: async () => verdict });
  l.requestFull('-r', { immediate: true });
  await run(clock, 300);
  assert.deepEqual([runner.args.length, l.holding], [0, true], 'nothing to send, nothing deleted');
  rootHasContent = true;
  verdict = NOTHING_HELD;
  l.add('a.txt', { tree: false, removed: false, created: true });
  await run(clock, 300);
  assert.deepEqual(runner.inputs, [['/a.txt']], 'the update went at once, not behind the hold');
  await run(clock, 6000);
  assert.equal(l.holding, false);
  assert.equal(runner.args.length, 2);
  const sweep = runner.args[1] ?? [];
  for (const arg of ['--delete', '--existing', '--ignore-existing', `${root}/`]) assert.ok(sweep.includes(arg), arg);
  assert.deepEqual(runner.inputs[1], [], 'the whole tree, no list');
  assert.ok(!sweep.includes('--info=progress2'), 'no full transfer');
  l.stop();
});

test('a stop whose grace period ends during a batch: the runs it did not start leave the batch owed, not done', async () => {
  // A rename run (the renamed file first, with its old name as the basis) is cut off by the stop; the update and
  // delete runs of the same batch never start. The batch must stay in what the lane owes (the stop persists it).
  const { clock, runner, synced, lane: l } = lane([20]);
  runner.gated = true;
  l.add('old.txt', { tree: false, removed: true, created: false });
  l.add('a.txt', { tree: false, removed: false, created: false, renamedFrom: 'old.txt' });
  l.add('b.txt', { tree: false, removed: false, created: false });
  await run(clock, 300);
  assert.equal(runner.active, 1, 'the rename run is running');
  assert.ok(runner.args[0]?.includes('--fuzzy'), 'the first run is the rename run');
  l.stop();
  l.abortRunning();
  runner.release();
  await settle();
  await l.whenIdle();
  assert.equal(runner.starts.length, 1, 'no run starts after the abort');
  assert.deepEqual(synced, [], 'nothing is reported as synced');
  assert.deepEqual(
    l
      .unfinished()
      ?.entries.map((e) => e.path)
      .sort(),
    ['a.txt', 'b.txt', 'old.txt'],
  );
});

test('a full sync with <crontabfilter> excludes sends the changes it took in again as changes, which the plugin hears of then', async () => {
  const { clock, runner, synced, lane: l } = lane([], 1, null, { fullSyncFilters: ['--exclude=*.txt'] });
  l.add('a.txt', { tree: false, removed: false, created: false });
  l.add('gone.txt', { tree: false, removed: true, created: false });
  l.requestFull('crontab', { immediate: true });
  await run(clock, 1000);
  assert.ok(runner.args[0]?.includes('--exclude=*.txt'), 'the full sync keeps *.txt out');
  assert.deepEqual(runner.inputs.slice(1), [['/a.txt'], ['/gone.txt', '/gone.txt/***']], 'then the update and the delete run');
  assert.deepEqual(synced, [
    { updated: [], deleted: [] },
    { updated: ['a.txt'], deleted: ['gone.txt'] },
  ]);
  // Without excludes the full sync is enough, and its own report names them.
  const plain = lane([]);
  plain.lane.add('a.txt', { tree: false, removed: false, created: false });
  plain.lane.requestFull('crontab', { immediate: true });
  await run(plain.clock, 1000);
  assert.equal(plain.runner.args.length, 1);
  assert.deepEqual(plain.synced, [{ updated: ['a.txt'], deleted: [] }]);
});
