import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Aggregator, BATCH_EVENTS, type Batch } from '../../src/aggregate/aggregator.ts';
import { merged } from '../../src/sync/merge-batches.ts';
import { FakeClock } from './support/fake-clock.ts';

const limits = { quietMs: 300, maxWaitMs: 2000, maxChildrenPerDir: 8, maxPendingPaths: 50 };
const file = { tree: false, removed: false, created: false };
const created = { tree: false, removed: false, created: true };
const removed = { tree: false, removed: true, created: false };
const newDir = { tree: true, removed: false, created: true };

function setup() {
  const clock = new FakeClock();
  const batches: Batch[] = [];
  let agg: Aggregator;
  agg = new Aggregator(limits, clock, () => {
    const b = agg.take();
    if (b) batches.push(b);
  });
  return { clock, batches, agg };
}

const paths = (b: Batch | undefined) => b?.entries.map((e) => `${e.path}${e.tree ? '/**' : ''}${e.deletes ? ' (deletes)' : ''}`);

test('a batch goes once changes have been quiet for quietMs', () => {
  const { clock, batches, agg } = setup();
  agg.add('a.txt', file);
  clock.advance(299);
  assert.equal(batches.length, 0);
  clock.advance(1);
  assert.deepEqual(paths(batches[0]), ['a.txt']);
});

test('continuous writes do not postpone a batch past maxWaitMs', () => {
  const { clock, batches, agg } = setup();
  for (let t = 0; t < 1990; t += 100) {
    agg.add(`f${t}.txt`, file);
    clock.advance(100);
  }
  assert.equal(batches.length, 1, 'the cap fired while writes went on');
  assert.equal(batches[0]?.since, 1_000_000);
});

test('a burst that goes on triples the cap batch after batch, up to MAX_STRETCH; a pause resets it', () => {
  const { clock, batches, agg } = setup();
  const sentAt: number[] = [];
  // A fast start (1,000 changes at once), then 200 a second: every window is a burst, none reaches BATCH_EVENTS.
  const write = (ms: number, perTick = 20) => {
    for (let t = 0; t < ms; t += 100) {
      for (let i = 0; i < (t === 0 ? 1000 : perTick); i++) agg.add(`f${i % 5}.txt`, file);
      const before = batches.length;
      clock.advance(100);
      if (batches.length > before) sentAt.push(clock.now() - 1_000_000);
    }
  };
  write(60_000);
  // Caps of 2, 6, 18, 18 … s: batches at 2, 8, 26, 44 s.
  assert.deepEqual(sentAt, [2000, 8000, 26000, 44000]);
  clock.advance(300); // the burst ends: quiet
  assert.equal(batches.length, 5);
  sentAt.length = 0;
  const t0 = clock.now() - 1_000_000;
  write(3000);
  assert.deepEqual(
    sentAt.map((t) => t - t0),
    [2000],
    'after a quiet batch the cap is maxWaitMs again',
  );
});

test('a window that holds BATCH_EVENTS changes goes at once, before its cap', () => {
  const { clock, batches, agg } = setup();
  const perTick = BATCH_EVENTS / 4;
  for (let t = 0; t < 3000; t += 100) {
    for (let i = 0; i < perTick; i++) agg.add(`d/f${i % 7}.txt`, file);
    clock.advance(100);
  }
  // 8,000 changes every 400 ms: the count, not the 2 s cap (or its stretch), cuts the windows.
  assert.deepEqual(
    batches.map((b) => b.since - 1_000_000),
    [0, 400, 800, 1200, 1600, 2000, 2400],
  );
  assert.equal(agg.oldestChange, 1_002_800, 'the window of the last two ticks waits for more, or quiet');
  clock.advance(limits.quietMs);
  assert.equal(batches.length, 8);
});

test('windows that the count ended do not stretch the cap: a trickle after a fast burst goes every maxWaitMs', () => {
  const { clock, batches, agg } = setup();
  for (let t = 0; t < 10_000; t += 100) {
    // 16,000 changes in the first 0.4 s, then 60 a second.
    const n = t < 400 ? 4000 : 6;
    for (let i = 0; i < n; i++) agg.add(`f${i % 5}.txt`, file);
    clock.advance(100);
  }
  assert.deepEqual(
    batches.map((b) => b.since - 1_000_000),
    [0, 200, 400, 2400, 4400, 6400],
  );
});

test('a path put back (a failed batch) waits for quiet and does not count as a change', () => {
  const { clock, batches, agg } = setup();
  for (let i = 0; i < BATCH_EVENTS; i++) agg.putBack('a.txt', file);
  assert.equal(agg.isDue(), false);
  clock.advance(limits.quietMs);
  assert.deepEqual(paths(batches[0]), ['a.txt']);
});

test('the change count starts with each window, also after everything pending vanished', () => {
  const { clock, batches, agg } = setup();
  for (let i = 0; i < BATCH_EVENTS / 2; i++) {
    agg.add('tmp.swp', created);
    agg.add('tmp.swp', removed);
  }
  assert.equal(agg.isEmpty, true);
  agg.add('keep.txt', file);
  assert.equal(agg.isDue(), false, 'one change, not 8,001');
  clock.advance(limits.quietMs);
  assert.deepEqual(paths(batches[0]), ['keep.txt']);
});

test('a full sync waits for quiet or its cap, however many changes come', () => {
  const { clock, batches, agg } = setup();
  agg.requestFull('an overflow');
  for (let t = 0; t < 1900; t += 100) {
    for (let i = 0; i < BATCH_EVENTS; i++) agg.add(`f${i % 7}.txt`, file);
    clock.advance(100);
  }
  assert.equal(batches.length, 0);
  clock.advance(100);
  assert.deepEqual(
    batches.map((b) => b.full),
    [true],
  );
});

test('a trickle that never pauses (a log file appended to) keeps the cap at maxWaitMs', () => {
  const { clock, batches, agg } = setup();
  for (let t = 0; t < 10_000; t += 100) {
    agg.add('app.log', file);
    clock.advance(100);
  }
  assert.deepEqual(
    batches.map((b) => b.since - 1_000_000),
    [0, 2000, 4000, 6000, 8000],
  );
});

test('the latest state per path: repeated changes are one entry', () => {
  const { clock, batches, agg } = setup();
  for (let i = 0; i < 5; i++) agg.add('a/b.txt', file);
  clock.advance(300);
  assert.deepEqual(paths(batches[0]), ['a/b.txt']);
});

test('a path created and removed within the window vanishes', () => {
  const { clock, batches, agg } = setup();
  agg.add('tmp/x.txt', created);
  agg.add('tmp/x.txt', removed);
  agg.add('keep.txt', file);
  clock.advance(300);
  assert.deepEqual(paths(batches[0]), ['keep.txt']);
});

test('a path created while a transfer ran, or before one started, is a removal when it goes: the remote may hold it', () => {
  const { clock, batches, agg } = setup();
  // Created before a transfer (a retried batch of its parent, a full sync) started: that transfer may carry it.
  agg.add('A/Y', newDir);
  agg.transferStarted();
  agg.transferEnded();
  agg.add('A/Y', { tree: true, removed: true, created: false });
  // Created while a transfer runs.
  agg.transferStarted();
  agg.add('B/Z', newDir);
  agg.transferEnded();
  agg.add('B/Z', { tree: true, removed: true, created: false });
  // Created after the transfer ended, removed before the next one: the remote never saw it.
  agg.add('C/tmp', newDir);
  agg.add('C/tmp', { tree: true, removed: true, created: false });
  clock.advance(300);
  assert.deepEqual(paths(batches[0]), ['A/Y/** (deletes)', 'B/Z/** (deletes)']);
});

test('a path that existed before and is removed stays, as a removal', () => {
  const { clock, batches, agg } = setup();
  agg.add('old.txt', file);
  agg.add('old.txt', removed);
  clock.advance(300);
  assert.deepEqual(paths(batches[0]), ['old.txt (deletes)']);
});

test('a new directory becomes one recursive entry that swallows its children', () => {
  const { clock, batches, agg } = setup();
  agg.add('site/a/deep.txt', file);
  agg.add('site', newDir);
  agg.add('site/b/c.txt', created);
  agg.add('site/b', newDir);
  clock.advance(300);
  assert.deepEqual(paths(batches[0]), ['site/**']);
  assert.equal(agg.pendingPaths, 0);
});

test('a directory with too many changed children is sent as the directory', () => {
  const { clock, batches, agg } = setup();
  for (let i = 0; i < 9; i++) agg.add(`site/img/${i}.jpg`, file);
  agg.add('other.txt', file);
  clock.advance(300);
  assert.deepEqual(paths(batches[0]), ['site/img/**', 'other.txt']);
});

test('a collapsed directory remembers that something below it was removed', () => {
  const { clock, batches, agg } = setup();
  agg.add('img/0.jpg', removed);
  for (let i = 1; i < 9; i++) agg.add(`img/${i}.jpg`, file);
  clock.advance(300);
  assert.deepEqual(paths(batches[0]), ['img/** (deletes)']);
});

test('a directory whose pending changes are all removals says so (an rm -rf under way); any other change below clears it', () => {
  const { clock, batches, agg } = setup();
  for (let i = 0; i < 9; i++) agg.add(`old/${i}.html`, removed);
  agg.add('old/sub', { tree: true, removed: true, created: false });
  for (let i = 0; i < 9; i++) agg.add(`mixed/${i}.html`, removed);
  agg.add('mixed/new.html', created);
  agg.add('gone.txt', removed);
  clock.advance(300);
  const byPath = new Map(batches[0]?.entries.map((e) => [e.path, e]));
  assert.deepEqual(byPath.get('old'), { path: 'old', tree: true, deletes: true, removalsOnly: true });
  assert.deepEqual(byPath.get('mixed'), { path: 'mixed', tree: true, deletes: true });
  assert.equal(byPath.get('gone.txt')?.removalsOnly, true);
  // Below a recursive entry that only removals made so far, a write clears the mark.
  for (let i = 0; i < 9; i++) agg.add(`old/${i}.html`, removed);
  agg.add('old/back.html', created);
  clock.advance(300);
  assert.deepEqual(batches[1]?.entries, [{ path: 'old', tree: true, deletes: true }]);
});

test('a directory removed and made again in one window, or made over removed children, is no longer removals only', () => {
  const { clock, batches, agg } = setup();
  agg.add('a', { tree: true, removed: true, created: false }); // rm -rf a
  agg.add('a', newDir); // mkdir a
  agg.add('b/x', removed);
  agg.add('b/y', removed);
  agg.add('b', newDir); // b removed with its files, then made again: the new b swallows them
  clock.advance(300);
  assert.deepEqual(batches[0]?.entries, [
    { path: 'a', tree: true, deletes: true },
    { path: 'b', tree: true, deletes: true },
  ]);
});

test('too many paths overall becomes a full sync', () => {
  const { clock, batches, agg } = setup();
  for (let i = 0; i < 51; i++) agg.add(`d${i}/f.txt`, file);
  clock.advance(300);
  assert.equal(batches[0]?.full, true);
  assert.deepEqual(batches[0]?.entries, []);
});

test('a removal under a pending new directory marks it for deletes', () => {
  const { clock, batches, agg } = setup();
  agg.add('d', newDir);
  agg.add('d/x', removed);
  clock.advance(300);
  assert.deepEqual(paths(batches[0]), ['d/** (deletes)']);
});

test('changes after take() go into the next batch; nothing is due while empty', () => {
  const { clock, batches, agg } = setup();
  agg.add('a', file);
  clock.advance(300);
  agg.add('b', file);
  assert.equal(agg.isDue(), false);
  clock.advance(300);
  assert.deepEqual(batches.map(paths), [['a'], ['b']]);
  clock.advance(10_000);
  assert.equal(batches.length, 2);
});

test('requestFull({immediate}) is due at once and subsumes pending paths', () => {
  const { batches, agg, clock } = setup();
  agg.add('a', file);
  agg.requestFull('test', { immediate: true });
  clock.advance(0);
  assert.equal(batches[0]?.full, true);
  assert.equal(batches[0]?.fullReason, 'test');
});

test('takeDue hands out the window only once the aggregator says it is due (the lane asks nothing else)', () => {
  const clock = new FakeClock();
  const agg = new Aggregator(limits, clock, () => {});
  agg.add('a.txt', file);
  assert.equal(agg.takeDue(), null, 'not quiet yet');
  assert.equal(agg.pendingPaths, 1, 'and still pending');
  clock.advance(limits.quietMs);
  assert.deepEqual(paths(agg.takeDue() ?? undefined), ['a.txt']);
  assert.equal(agg.takeDue(), null, 'nothing pending');
});

test('a sweep goes with the next batch on the same timing rules; a full sync includes it', () => {
  const { clock, batches, agg } = setup();
  agg.requestSweep();
  agg.add('a.txt', file);
  clock.advance(300);
  assert.deepEqual([batches[0]?.sweep, batches[0]?.full, paths(batches[0])], [true, false, ['a.txt']]);
  agg.requestSweep();
  clock.advance(300);
  assert.deepEqual([batches[1]?.sweep, paths(batches[1])], [true, []], 'a sweep alone is due too');
  agg.requestSweep();
  agg.requestFull('lost events');
  clock.advance(300);
  assert.deepEqual([batches[2]?.full, batches[2]?.sweep], [true, undefined]);
  clock.advance(300);
  assert.equal(batches.length, 3);
  const one = (b: Partial<Batch>): Batch => ({ full: false, fullReason: '', entries: [], since: 0, ...b });
  assert.equal(merged([one({ sweep: true }), one({ entries: [{ path: 'x', tree: false, deletes: false }] })]).sweep, true);
  assert.equal(merged([one({ sweep: true }), one({ full: true })]).sweep, undefined);
});

test('a full sync takes in the paths it replaces and those changed while it is pending (Batch.absorbed), for the plugin', () => {
  const { agg } = setup();
  agg.add('a.txt', created);
  agg.add('d/b.txt', removed);
  agg.requestFull('initial sync (-r)');
  agg.add('c.txt', created);
  agg.add('a.txt', file);
  const batch = agg.take();
  assert.equal(batch?.full, true);
  assert.deepEqual([...((batch?.absorbed as string[]) ?? [])].sort(), ['a.txt', 'c.txt', 'd/b.txt']);
  // A failed full sync put back keeps them, and a new one starts with none.
  agg.requestFull('restored full sync', { absorbed: batch?.absorbed });
  agg.add('e.txt', created);
  assert.deepEqual([...((agg.take()?.absorbed as string[]) ?? [])].sort(), ['a.txt', 'c.txt', 'd/b.txt', 'e.txt']);
  agg.requestFull('crontab');
  assert.equal(agg.take()?.absorbed, undefined);
});

test('more paths taken in than maxPendingPaths: absorbed is all (the plugin hears of the root); merged full syncs keep them', () => {
  const { agg } = setup();
  for (let i = 0; i <= limits.maxPendingPaths; i++) agg.add(`f${i}`, created);
  const overflow = agg.take();
  assert.equal(overflow?.full, true);
  assert.equal(overflow?.absorbed, 'all');
  const a: Batch = { full: true, fullReason: 'x', entries: [], absorbed: ['p'], since: 1 };
  const b: Batch = { full: false, fullReason: '', entries: [{ path: 'q', tree: false, deletes: false }], since: 2 };
  assert.deepEqual(merged([a, b]).absorbed, ['p', 'q']);
  assert.equal(merged([a, { ...b, full: true, absorbed: 'all' }]).absorbed, 'all');
  assert.equal(merged([b, b]).absorbed, undefined, 'no full sync, nothing absorbed');
});
