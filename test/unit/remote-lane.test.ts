import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import PQueue from 'p-queue';
import pino from 'pino';
import type { Remote, RsyncSettings } from '../../src/config/model.ts';
import type { ProcessResult, ProcessRunner } from '../../src/sync/process-runner.ts';
import { type AttemptReport, RemoteLane } from '../../src/sync/remote-lane.ts';
import { FakeClock } from './support/fake-clock.ts';

/**
 * The lane's retry timing with a fake clock and a scripted runner (no rsync): exponential backoff with jitter up to
 * the cap, configuration errors at the cap at once, degraded after three failures, and exit 24 planned again at once.
 * The engine and recovery integration tests prove the same against a real rsync daemon.
 */

const root = mkdtempSync(join(tmpdir(), 'sersync-lane-'));
writeFileSync(join(root, 'a.txt'), 'a');
after(() => rmSync(root, { recursive: true, force: true }));

const rsync: RsyncSettings = {
  commonParams: ['-artz'],
  auth: { enabled: false, users: '', passwordFile: '' },
  port: { enabled: false, port: 874 },
  timeout: { enabled: false, seconds: 100 },
  ssh: { enabled: false, options: [] },
};
const remote: Remote = { kind: 'daemon', ip: '10.0.0.2', name: 'www', id: '10.0.0.2::www', line: 1 };
const settle = () => new Promise((r) => setTimeout(r, 30));

class ScriptedRunner implements ProcessRunner {
  readonly starts: number[] = [];
  readonly clock: FakeClock;
  readonly codes: number[];
  constructor(clock: FakeClock, codes: number[]) {
    this.clock = clock;
    this.codes = codes;
  }
  run(): Promise<ProcessResult> {
    this.starts.push(this.clock.now() - 1_000_000);
    const exitCode = this.codes.shift() ?? 0;
    return Promise.resolve({ exitCode, stdout: '', stderr: exitCode === 0 ? '' : `exit ${exitCode}`, durationMs: 1 });
  }
}

function lane(codes: number[]) {
  const clock = new FakeClock();
  const runner = new ScriptedRunner(clock, codes);
  const reports: AttemptReport[] = [];
  const l = new RemoteLane(
    remote,
    { watch: root, remote, rsync, deletes: true, filters: [], defaultTimeoutSeconds: 300 },
    { quietMs: 100, maxWaitMs: 2000, maxChildrenPerDir: 100, maxPendingPaths: 1000 },
    {
      clock,
      runner,
      limiter: new PQueue({ concurrency: 1 }),
      log: pino({ level: 'silent' }),
      rsyncPath: 'rsync',
      rootBytes: root,
      untranslated: [],
      fullSyncFilters: [],
      retry: { baseMs: 1000, capMs: 60_000, random: () => 0.5 },
      onAttempt: (_lane, r) => void reports.push(r),
      deletionsAllowed: async () => true,
    },
  );
  return { clock, runner, reports, lane: l };
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
  assert.deepEqual(reports.map((r) => [r.ok, r.consecutiveFailures]), [[false, 1], [false, 2], [false, 3], [false, 4], [true, 0]]);
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

test('exit 24 (files vanished) is planned again at once: no backoff, no failure counted', async () => {
  const { clock, runner, reports, lane: l } = lane([24, 0]);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 1000);
  assert.deepEqual(runner.starts, [100, 200]);
  assert.equal(l.stats.failures, 0);
  assert.equal(l.stats.consecutiveFailures, 0);
  assert.deepEqual(reports.map((r) => r.ok), [false, true], 'the retry queue still saw the attempt');
});

test('exit 23 (a file could not be read) backs off like any failure', async () => {
  const { clock, runner, lane: l } = lane([23, 0]);
  l.add('a.txt', { tree: false, removed: false, created: false });
  await run(clock, 2000);
  assert.deepEqual(runner.starts, [100, 1100]);
  assert.equal(l.stats.failures, 1);
});
