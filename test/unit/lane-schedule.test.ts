import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Batch } from '../../src/aggregate/aggregator.ts';
import { HOLD_RECHECK_MS, LaneSchedule } from '../../src/sync/lane-schedule.ts';
import { FakeClock } from './support/fake-clock.ts';

/** The lane's timing on its own: a fake clock, no lane, no processes, no disk. */

const batch = (...paths: string[]): Batch => ({
  full: false,
  fullReason: '',
  entries: paths.map((path) => ({ path, tree: false, deletes: true })),
  since: 1_000_000,
});

function schedule(maxPendingPaths = 1000) {
  const clock = new FakeClock();
  const wakes: number[] = [];
  const rechecks: number[] = [];
  const s = new LaneSchedule({
    clock,
    retry: { baseMs: 1000, capMs: 60_000, random: () => 0.5 },
    maxPendingPaths,
    wake: () => void wakes.push(clock.now() - 1_000_000),
    recheckHold: () => void rechecks.push(clock.now() - 1_000_000),
  });
  return { clock, s, wakes, rechecks };
}

test('backoff: doubles per failure up to the cap, a configuration error at the cap at once; the lane is shut until then', () => {
  const { clock, s, wakes } = schedule();
  assert.deepEqual(
    [1, 2, 3, 7, 8].map((n) => s.delay(n, 'retry')),
    [1000, 2000, 4000, 60_000, 60_000],
  );
  assert.equal(s.delay(1, 'config'), 60_000);
  const { delay, until } = s.backOff(2, 'retry');
  assert.equal(delay, 2000);
  assert.equal(s.mayStart(clock.now()), false);
  assert.equal(s.nextAttemptAt(clock.now()), until);
  // A wake-up asked sooner than the backoff waits for it.
  s.retryIn(0);
  clock.advance(1999);
  assert.deepEqual(wakes, []);
  clock.advance(1);
  assert.deepEqual(wakes, [2000]);
  assert.equal(s.mayStart(clock.now()), true);
  s.backOff(1, 'retry');
  s.succeeded();
  assert.equal(s.mayStart(clock.now()), true);
});

test('begin: the re-plan after an exit 23 is the next batch taken, once; the parked batch counts its attempts', () => {
  const { s } = schedule();
  assert.deepEqual(s.begin(), { kind: 'fresh' });
  s.replanNext();
  assert.deepEqual(s.begin(), { kind: 'replan' });
  assert.deepEqual(s.begin(), { kind: 'fresh' });
  s.replanNext();
  assert.deepEqual(s.begin({ batch: batch('a'), attempts: 2, due: 0 }), { kind: 'parked', attempts: 2 });
  assert.deepEqual(s.begin(), { kind: 'fresh' }, 'the parked batch used up the re-plan mark');
});

test('parking: due after its backoff, a later batch joins it path by path and keeps the due time; taken once due', () => {
  const { clock, s, wakes } = schedule();
  const first = s.park(batch('a', 'b'), { kind: 'replan' });
  assert.equal(first.attempts, 1);
  assert.equal(first.parked.due, clock.now() + 1000);
  assert.equal(s.mayStart(clock.now()), true, 'parking shuts no lane');
  clock.advance(500);
  const joined = s.park(batch('b', 'c'), { kind: 'fresh' });
  assert.deepEqual(
    joined.parked.batch.entries.map((e) => e.path),
    ['a', 'b', 'c'],
  );
  assert.equal(joined.parked.due, first.parked.due);
  assert.equal(s.takeDueParked(clock.now()), null);
  clock.advance(500);
  assert.deepEqual(wakes, [1000]);
  assert.equal(s.takeDueParked(clock.now())?.batch.entries.length, 3);
  assert.equal(s.parked, null);
  const again = s.park(batch('a'), { kind: 'parked', attempts: 1 });
  assert.equal(again.attempts, 2);
  assert.equal(again.parked.due, clock.now() + 2000);
  s.unpark();
  clock.advance(5000);
  assert.deepEqual(wakes, [1000], 'no wake-up for a batch let go of');
});

test('parking more paths than maxPendingPaths becomes a full sync', () => {
  const { s } = schedule(2);
  s.park(batch('a', 'b'), { kind: 'replan' });
  assert.equal(s.park(batch('c'), { kind: 'replan' }).parked.batch.full, true);
});

test('holds: one state value from open to guard to operator and back, the cap lifted once after a release', () => {
  const { clock, s, rechecks } = schedule();
  // A function, so that an assertion on one state does not narrow the next read.
  const state = () => s.hold;
  assert.deepEqual(state(), { kind: 'open', uncapped: false });
  assert.equal(s.holdBack(batch('x'), 'root gone'), true, 'the first hold');
  assert.equal(s.holdBack(batch('y'), 'root still gone'), false);
  assert.equal(state().kind, 'guard');
  assert.deepEqual(
    s.held?.batch.entries.map((e) => e.path),
    ['x', 'y'],
  );
  assert.equal(s.held?.reason, 'root still gone');
  clock.advance(HOLD_RECHECK_MS);
  assert.deepEqual(rechecks, [HOLD_RECHECK_MS]);
  s.waitForOperator();
  assert.equal(state().kind, 'operator');
  assert.equal(s.held?.batch.entries.length, 2, 'the held deletions stay');
  assert.equal(s.release(), true);
  assert.deepEqual(state().kind, 'guard');
  assert.equal(s.uncapped, true);
  const free = s.settleHold(s.held as NonNullable<typeof s.held>, { all: false, below: ['y'], reason: 'y unmounted' });
  assert.deepEqual(
    free?.entries.map((e) => e.path),
    ['x'],
  );
  assert.equal(s.held?.reason, 'y unmounted');
  const rest = s.settleHold(s.held as NonNullable<typeof s.held>, { all: false, below: [], reason: '' });
  assert.deepEqual(
    rest?.entries.map((e) => e.path),
    ['y'],
  );
  assert.deepEqual(state(), { kind: 'open', uncapped: true });
  s.capAgain();
  assert.deepEqual(state(), { kind: 'open', uncapped: false });
});

test('holds: a guard that still holds everything releases nothing; a release with nothing held lifts no cap', () => {
  const { s } = schedule();
  const state = () => s.hold;
  s.holdBack({ full: true, fullReason: 'r', entries: [], since: 0 }, 'root gone');
  const held = s.held as NonNullable<typeof s.held>;
  assert.equal(s.settleHold(held, { all: true, below: [], reason: 'root gone' }), null);
  assert.equal(s.settleHold(held, { all: false, below: [], reason: '' })?.full, true);
  assert.deepEqual(state(), { kind: 'open', uncapped: false });
  s.waitForOperator();
  assert.equal(s.release(), false);
  assert.deepEqual(state(), { kind: 'open', uncapped: false });
});

test('stop: no timer fires afterwards', () => {
  const { clock, s, wakes, rechecks } = schedule();
  s.backOff(1, 'retry');
  s.retryIn(0);
  s.park(batch('a'), { kind: 'replan' });
  s.holdBack(batch('b'), 'r');
  s.stop();
  assert.equal(clock.pendingTimers, 0);
  clock.advance(60_000);
  assert.deepEqual([wakes, rechecks], [[], []]);
});
