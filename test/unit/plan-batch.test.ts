import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Batch, PendingEntry } from '../../src/aggregate/aggregator.ts';
import { type DeletionVerdict, NOTHING_HELD } from '../../src/sync/deletion-guard.ts';
import type { DiskEntryKind, DiskProbe } from '../../src/sync/disk-probe.ts';
import { planBatch, planRuns, renameTargets } from '../../src/sync/plan-batch.ts';
import type { CommandContext } from '../../src/sync/rsync-command.ts';
import { classifyRun } from '../../src/sync/rsync-exit.ts';
import { DAEMON_REMOTE, PLAIN_RSYNC } from './support/rsync-fixtures.ts';

/** The planner on a scripted disk and the run classifier on scripted results: no directory, no rsync, no clock. */

const kinds: Record<string, DiskEntryKind> = { '/w/f': 'other', '/w/d': 'dir', '/w/m': 'dir' };
const disk: DiskProbe = {
  async kind(path) {
    return kinds[path] ?? 'gone';
  },
  async *entries() {},
};
const rsync = PLAIN_RSYNC;
const remote = DAEMON_REMOTE;
const ctx: CommandContext = { watch: '/w', remote, rsync, deletes: true, filters: [], defaultTimeoutSeconds: 300 };
const entry = (path: string, extra: Partial<PendingEntry> = {}): PendingEntry => ({ path, tree: false, deletes: false, ...extra });
const batchOf = (...entries: PendingEntry[]): Batch => ({ full: false, fullReason: '', entries, since: 5 });
const FULL: Batch = { full: true, fullReason: 'r', entries: [], since: 5 };
const plan = (batch: Batch, verdict: DeletionVerdict = NOTHING_HELD, deletes = true) =>
  planBatch(batch, { disk, rootBytes: '/w', untranslated: [], deletes, verdict });

test('planBatch: what exists is sent (a directory as a tree), what is gone is deleted, a pruned directory is both', async () => {
  const p = await plan(batchOf(entry('f'), entry('d'), entry('gone', { deletes: true }), entry('m', { removalsOnly: true })));
  assert.deepEqual(p.update, { paths: ['f', 'd'], trees: ['d'], pruned: ['m'] });
  assert.deepEqual(p.deletes, [
    { path: 'gone', tree: true },
    { path: 'm', tree: true },
  ]);
  assert.deepEqual([p.updated, p.deleted, p.held], [['f', 'd', 'm'], ['gone', 'm'], null]);
  assert.deepEqual(
    planRuns(ctx, p, [], null).map((r) => r.kind),
    ['update', 'delete'],
  );
});

test('planBatch: deletions the guard holds wait as a batch of their own; a remote without --delete gets none', async () => {
  const p = await plan(batchOf(entry('f'), entry('m/x', { deletes: true }), entry('gone')), { all: false, below: ['m'], reason: 'm' });
  assert.deepEqual(p.deletes, [{ path: 'gone', tree: true }]);
  assert.deepEqual(
    p.held?.entries.map((e) => e.path),
    ['m/x'],
  );
  assert.deepEqual(p.deleted, ['gone']);
  const none = await plan(batchOf(entry('gone')), NOTHING_HELD, false);
  assert.deepEqual([none.deletes, none.held, none.deleted], [[], null, ['gone']]);
});

test('planBatch: a full sync held as a whole by the guard sends without --delete and owes its deletions as a sweep', async () => {
  const held = { all: true, below: [], reason: 'root empty' };
  // The scripted root lists nothing (an empty, unreadable or vanished root): nothing runs, the sweep waits.
  const empty = await plan(FULL, held);
  assert.deepEqual([empty.full, empty.held], [null, { full: false, fullReason: '', entries: [], sweep: true, since: 5 }]);
  assert.deepEqual(planRuns(ctx, empty, [], null), []);
  const withContent: DiskProbe = {
    ...disk,
    async *entries(dir) {
      if (dir === '/w') yield { name: 'f', dir: false };
    },
  };
  const p = await planBatch(FULL, { disk: withContent, rootBytes: '/w', untranslated: [], deletes: true, verdict: held });
  assert.deepEqual([p.full, p.held?.sweep], ['send', true]);
  const runs = planRuns(ctx, p, ['--exclude=/cache'], null);
  assert.deepEqual(
    runs.map((r) => r.kind),
    ['full'],
  );
  assert.ok(!runs[0]?.args.includes('--delete'));
  assert.ok(runs[0]?.args.includes('--exclude=/cache'));
  // A root that is no longer the disk it was may hold a stale copy (the directory under an unmounted disk): nothing
  // is sent from it either, the full sync waits whole.
  const stale = await planBatch(FULL, {
    disk: withContent,
    rootBytes: '/w',
    untranslated: [],
    deletes: true,
    verdict: { ...held, rootSuspect: true },
  });
  assert.deepEqual([stale.full, stale.held], [null, FULL]);
  // Updates too (a replayed queue), and on a remote without deletions.
  const updates = batchOf(entry('f'));
  for (const deletes of [true, false]) {
    const p = await planBatch(updates, {
      disk: withContent,
      rootBytes: '/w',
      untranslated: [],
      deletes,
      verdict: { ...held, rootSuspect: true },
    });
    assert.deepEqual([p.update, p.held], [null, updates]);
  }
});

test('planBatch: below a lost mount point a full sync protects and owes', async () => {
  const p = await plan(FULL, { all: false, below: ['m'], reason: 'm' });
  assert.equal(p.full, 'sync');
  assert.deepEqual(p.held?.entries, [{ path: 'm', tree: true, deletes: true }]);
  const runs = planRuns(ctx, p, ['--exclude=/cache'], null);
  assert.deepEqual(
    runs.map((r) => r.kind),
    ['full'],
  );
  assert.ok(runs[0]?.args.includes('--delete'));
  assert.ok(runs[0]?.args.includes('--filter=- /m/***'));
  assert.ok(runs[0]?.args.includes('--exclude=/cache'));
});

test("planBatch: a sweep goes after the batch's own runs, deleting over the whole tree and sending nothing", async () => {
  const b: Batch = { ...batchOf(entry('f'), entry('gone', { deletes: true })), sweep: true };
  const p = await plan(b);
  assert.deepEqual([p.sweep, p.held], [true, null]);
  const runs = planRuns(ctx, p, ['--exclude=/cache'], null);
  assert.deepEqual(
    runs.map((r) => r.kind),
    ['update', 'delete', 'delete'],
  );
  const sweep = runs[2];
  for (const arg of ['--delete', '--existing', '--ignore-existing', '--exclude=/cache']) assert.ok(sweep?.args.includes(arg), arg);
  assert.equal(sweep?.input, null);
  assert.equal(sweep?.args.at(-2), '/w/');
  // Below a lost mount point the sweep protects and owes; while the root is held it waits with the deletions.
  const below = await plan(b, { all: false, below: ['m'], reason: 'm' });
  assert.equal(below.sweep, true);
  assert.deepEqual(below.protect, ['--filter=- /m/***']);
  assert.deepEqual(below.held?.entries, [{ path: 'm', tree: true, deletes: true }]);
  const all = await plan(b, { all: true, below: [], reason: 'root empty' });
  assert.deepEqual([all.sweep, all.held?.sweep, all.held?.entries.map((e) => e.path)], [false, true, ['gone']]);
  assert.deepEqual(
    planRuns(ctx, all, [], null).map((r) => r.kind),
    ['update'],
  );
  // A remote without --delete owes no sweep.
  const noDeletes = await plan(b, NOTHING_HELD, false);
  assert.deepEqual([noDeletes.sweep, noDeletes.held], [false, null]);
});

test('planBatch: below a lost mount point updates wait too, and a directory sent whole keeps the bare directory out', async () => {
  const p = await plan(batchOf(entry('d', { tree: true }), entry('m/new.txt'), entry('m/gone', { deletes: true })), {
    all: false,
    below: ['m'],
    reason: 'm',
  });
  assert.deepEqual(
    p.held?.entries.map((e) => e.path),
    ['m/new.txt', 'm/gone'],
  );
  assert.deepEqual(p.update?.paths, ['d']);
  assert.ok(planRuns(ctx, p, [], null)[0]?.args.includes('--filter=- /m/***'));
});

test('planBatch: a directory sent with its deletions keeps a lost mount point below it out of its delete run too', async () => {
  const p = await plan(batchOf(entry('d', { tree: true, deletes: true })), { all: false, below: ['d/m'], reason: 'd/m' });
  assert.deepEqual(p.deletes, [{ path: 'd', tree: true }]);
  const runs = planRuns(ctx, p, [], null);
  assert.deepEqual(
    runs.map((r) => [r.kind, r.args.includes('--filter=- /d/m/***')]),
    [
      ['update', true],
      ['delete', true],
    ],
  );
  const del = runs[1]?.args ?? [];
  assert.ok(del.indexOf('--filter=- /d/m/***') < del.indexOf('--include-from=-'), 'the first matching rule wins');
});

test('renameTargets: only renamed paths that are being sent, directories marked', () => {
  const b = batchOf(entry('a'), entry('new', { renamedFrom: 'old' }), entry('skip', { renamedFrom: 'x' }));
  assert.deepEqual(renameTargets(b, ['a', 'new'], ['new']), [{ path: 'new', from: 'old', isDir: true }]);
});

test('classifyRun: every exit-code decision of the lane in one place', () => {
  const update = { kind: 'update', args: ['--modify-window=-1'] };
  const step = (exitCode: number | undefined, stderr = '', run = update, nanoseconds = true, spawnError?: string) =>
    classifyRun(run, { exitCode, stderr, spawnError }, 'rsync', nanoseconds).step;
  assert.equal(step(0), 'ok');
  assert.equal(step(24), 'vanished');
  assert.equal(step(23), 'partial');
  assert.equal(step(23, 'rsync: unknown option'), 'partial', "a 23's stderr never means an old receiver");
  assert.equal(step(25), 'max-delete');
  assert.equal(step(12), 'failed');
  assert.equal(step(1, 'rsync: -@: unknown option'), 'old-receiver');
  assert.equal(step(1, 'rsync: -@: unknown option', update, false), 'failed', 'whole seconds already');
  assert.equal(step(1, 'rsync: -@: unknown option', { kind: 'delete', args: ['--modify-window=-1'] }), 'failed');
  assert.equal(step(1, 'unknown option', { kind: 'update', args: [] }), 'failed');
  const spawned = classifyRun(update, { exitCode: undefined, stderr: '', spawnError: 'spawn E2BIG' }, 'rsync', true);
  assert.equal(spawned.verdict, 'config');
  assert.match(spawned.meaning, /too long for the kernel/);
  assert.equal(classifyRun(update, { signal: 'SIGKILL', stderr: '' }, 'rsync', true).step, 'failed');
});
