import { SHIPPED_TOGGLES } from '../../src/config/parse-config.ts';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InotifyToggles } from '../../src/config/model.ts';
import { APPROXIMATE_MAX_WAIT_MS, CloseWriteFilter, OPEN_WRITE_BOUND_MS, STABLE_MS } from '../../src/watch/close-write.ts';
import type { WatchEvent } from '../../src/watch/watcher.ts';
import { FakeClock } from './support/fake-clock.ts';

const SHIPPED = SHIPPED_TOGGLES;

function setup(toggles: InotifyToggles = SHIPPED, seesCloseWrite = true) {
  const clock = new FakeClock();
  const due: string[] = [];
  const stillOpen: string[] = [];
  const filter = new CloseWriteFilter(toggles, {
    clock,
    onDue: (path) => void due.push(path),
    onStillOpen: (path) => void stillOpen.push(path),
    seesCloseWrite: () => seesCloseWrite,
  });
  const counted = (how: Extract<WatchEvent, { kind: 'file' }>['how'], path = 'up.bin') =>
    filter.change(how === undefined ? { kind: 'file', op: 'change', path } : { kind: 'file', op: 'change', path, how }) !== null;
  return { clock, filter, due, stillOpen, counted };
}

test('shipped toggles: a file goes when it is closed after writing, not while it is written', () => {
  const { counted, filter } = setup();
  assert.equal(counted('create'), false, 'created: being written');
  assert.equal(counted('write'), false);
  assert.equal(counted('attrib'), false, 'a chmod while it is written waits too');
  assert.deepEqual(filter.openPaths(), ['up.bin']);
  assert.equal(counted('closeWrite'), true);
  assert.deepEqual(filter.openPaths(), []);
  assert.equal(counted('attrib'), true, 'a chmod of a closed file counts (sersync-ts syncs attributes in real time)');
});

test('moved in, a link, a FIFO: no close-write will come, so they count at once', () => {
  const { counted } = setup();
  assert.equal(counted('moveTo'), true);
  assert.equal(counted('link', 'ln'), true);
});

test('the toggles mean what they meant: createFile sends on create, moveTo off ignores moves, modify sends every write', () => {
  assert.equal(setup({ ...SHIPPED, createFile: true }).counted('create'), true);
  assert.equal(setup({ ...SHIPPED, moveTo: false }).counted('moveTo'), false);
  assert.equal(setup({ ...SHIPPED, closeWrite: false }).counted('closeWrite'), false);
  const modify = setup({ ...SHIPPED, modify: true });
  assert.equal(modify.counted('write'), true);
  assert.equal(modify.counted('create'), true);
});

test('a file that stays open for writing is sent every OPEN_WRITE_BOUND_MS, and said', () => {
  const { clock, counted, due, stillOpen } = setup();
  counted('create', 'app.log');
  clock.advance(OPEN_WRITE_BOUND_MS - 1000);
  counted('write', 'app.log');
  assert.deepEqual(due, []);
  clock.advance(1000);
  assert.deepEqual(due, ['app.log']);
  assert.deepEqual(stillOpen, ['app.log']);
  clock.advance(OPEN_WRITE_BOUND_MS);
  assert.deepEqual(due, ['app.log', 'app.log']);
});

test('without close-write events (fs.watch, chokidar): a file is due once it has had no event for STABLE_MS', () => {
  const { clock, counted, due } = setup(SHIPPED, false);
  assert.equal(counted(undefined), false);
  clock.advance(STABLE_MS - 250);
  assert.equal(counted(undefined), false, 'written again: its quiet period starts over');
  clock.advance(STABLE_MS - 250);
  assert.deepEqual(due, []);
  clock.advance(500);
  assert.deepEqual(due, ['up.bin']);
});

test('without close-write events, quiet files go together once nothing is written any more, or after APPROXIMATE_MAX_WAIT_MS', () => {
  const { clock, filter, due } = setup(SHIPPED, false);
  const write = (path: string) => filter.change({ kind: 'file', op: 'change', path });
  // A new directory waits with them, as one recursive entry.
  assert.equal(filter.change({ kind: 'dir', op: 'add', path: 'new-dir' }), null);
  write('copied-1');
  write('copied-2');
  // A copy goes on: other files keep having events, so the quiet ones wait and go as one group.
  for (let t = 0; t < APPROXIMATE_MAX_WAIT_MS - 500; t += 250) {
    clock.advance(250);
    write(`more-${t}`);
  }
  assert.deepEqual(due, []);
  clock.advance(500);
  assert.deepEqual(due.slice(0, 3), ['new-dir', 'copied-1', 'copied-2']);
});

test('without close-write events, a file written to more often than STABLE_MS is still sent every OPEN_WRITE_BOUND_MS', () => {
  const { clock, counted, due } = setup(SHIPPED, false);
  for (let t = 0; t < OPEN_WRITE_BOUND_MS; t += 500) {
    counted(undefined, 'app.log');
    clock.advance(500);
  }
  assert.deepEqual(due, ['app.log']);
});

test('a file whose close-write never comes (lost in an overflow) is sent at the bound once, then forgotten', () => {
  const { clock, counted, due, filter } = setup();
  counted('create', 'lost-close.bin');
  clock.advance(OPEN_WRITE_BOUND_MS);
  assert.deepEqual(due, ['lost-close.bin']);
  assert.deepEqual(filter.openPaths(), []);
  clock.advance(3 * OPEN_WRITE_BOUND_MS);
  assert.deepEqual(due, ['lost-close.bin']);
  // And a lost event forgets every open file at once (the full sync that follows sends them).
  counted('write', 'other.bin');
  filter.reset();
  assert.deepEqual(filter.openPaths(), []);
});

test('a removed file is no longer waited for', () => {
  const { clock, filter, due } = setup();
  filter.change({ kind: 'file', op: 'change', path: 'd/a', how: 'write' });
  filter.change({ kind: 'file', op: 'change', path: 'b' });
  filter.change({ kind: 'dir', op: 'unlink', path: 'd' });
  filter.change({ kind: 'file', op: 'unlink', path: 'b' });
  assert.deepEqual(filter.openPaths(), []);
  clock.advance(OPEN_WRITE_BOUND_MS);
  assert.deepEqual(due, []);
});
