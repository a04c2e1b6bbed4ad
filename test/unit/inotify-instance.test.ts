/**
 * One inotify instance for several watchers (the sites of a daemon): events go to the watcher that holds the watch
 * descriptor, an overflow to every watcher, a watcher leaving removes only its own watches and leaves the descriptor
 * open, and its hand-over works while the others read on. Scripted addon for the routing; the real reader for the
 * descriptor count and the hand-over.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inotifyInstancesHeld } from '../../src/recovery/inotify-limits.ts';
import type { DirWatchListener } from '../../src/watch/dir-watch-backend.ts';
import { loadNativeInotify } from '../../src/watch/dir-watch-backend.ts';
import { DirWatcher } from '../../src/watch/dir-watcher.ts';
import { InotifyInstance } from '../../src/watch/inotify-instance.ts';
import type { WatchEvent } from '../../src/watch/watcher.ts';
import { waitFor } from '../helpers/wait.ts';
import { scriptedAddon } from './support/scripted-inotify.ts';

const [CLOSE_WRITE, DELETE, Q_OVERFLOW, IGNORED] = [0x8, 0x200, 0x4000, 0x8000];

/** A listener that writes what it hears as `who name`. */
function listener(who: string, heard: string[]): DirWatchListener {
  return { event: (_type, name) => heard.push(`${who} ${name?.toString() ?? '-'}`), error: () => {} };
}

/** Lets the instance's slices of watch removals run. */
const turn = () => new Promise((r) => setImmediate(r));

test('events go to the watcher whose directory has the watch descriptor; an overflow goes to every watcher', () => {
  const { addon, ev, read } = scriptedAddon({ '/a': 1, '/b': 2 });
  const instance = new InotifyInstance(addon);
  const heard: string[] = [];
  const overflows: string[] = [];
  const a = instance.backend(
    () => overflows.push('a'),
    () => {},
  );
  const b = instance.backend(
    () => overflows.push('b'),
    () => {},
  );
  a.watch(Buffer.from('/a'), listener('a', heard));
  b.watch(Buffer.from('/b'), listener('b', heard));
  read(ev(CLOSE_WRITE, 'x', 1), ev(CLOSE_WRITE, 'y', 2), ev(DELETE, 'z', 1), ev(CLOSE_WRITE, 'w', 3));
  assert.deepEqual(heard, ['a x', 'b y', 'a z']);
  read(ev(Q_OVERFLOW, '', -1));
  assert.deepEqual(overflows, ['a', 'b']);
  assert.equal(instance.watchers, 2);
});

test('a watcher that leaves removes only its own watches and leaves the descriptor open for the others', async () => {
  const { addon, calls, ev, read } = scriptedAddon({ '/a': 1, '/a/sub': 3, '/b': 2 });
  const instance = new InotifyInstance(addon);
  const heard: string[] = [];
  const a = instance.backend(
    () => {},
    () => {},
  );
  const b = instance.backend(
    () => {},
    () => {},
  );
  const la = listener('a', heard);
  const lsub = listener('a/sub', heard);
  const tokens = [a.watch(Buffer.from('/a'), la), a.watch(Buffer.from('/a/sub'), lsub)];
  b.watch(Buffer.from('/b'), listener('b', heard));
  // What WatchedTree.close() does: the backend first, then each of its directories.
  a.close();
  a.unwatch(tokens[0] as number, la);
  a.unwatch(tokens[1] as number, lsub);
  read(ev(CLOSE_WRITE, 'x', 1), ev(CLOSE_WRITE, 'y', 2), ev(CLOSE_WRITE, 'z', 3));
  assert.deepEqual(heard, ['b y'], 'a left: only b hears');
  await turn();
  assert.deepEqual(
    calls.filter((c) => !c.startsWith('add')),
    ['rm 1', 'rm 3'],
  );
  assert.equal(instance.watchers, 1);
  instance.close();
  assert.equal(calls.at(-1), 'close');
});

test('the same directory watched by two watchers is one descriptor: both hear it, the kernel watch goes with the last', async () => {
  // A symlinked root into another site's tree, or a site swapped new-first by a reload.
  const { addon, calls, ev, read } = scriptedAddon({ '/a/shared': 5, '/b': 5 });
  const instance = new InotifyInstance(addon);
  const heard: string[] = [];
  const [a, b] = [backendOf(instance), backendOf(instance)];
  const [la, lb] = [listener('a', heard), listener('b', heard)];
  a.watch(Buffer.from('/a/shared'), la);
  b.watch(Buffer.from('/b'), lb);
  read(ev(CLOSE_WRITE, 'x', 5));
  assert.deepEqual(heard, ['a x', 'b x']);
  a.unwatch(5, la);
  await turn();
  assert.ok(!calls.includes('rm 5'), 'b still watches it');
  read(ev(CLOSE_WRITE, 'y', 5));
  assert.deepEqual(heard, ['a x', 'b x', 'b y']);
  b.unwatch(5, lb);
  await turn();
  assert.ok(calls.includes('rm 5'));
  instance.close();
});

test('a directory watched again before its removal ran keeps its watch; IN_IGNORED drops every listener of it', async () => {
  const { addon, calls, ev, read } = scriptedAddon({ '/a': 1, '/b': 2 });
  const instance = new InotifyInstance(addon);
  const heard: string[] = [];
  const w = instance.backend(
    () => {},
    () => {},
  );
  const [old, renewed, lb] = [listener('old', heard), listener('new', heard), listener('b', heard)];
  w.watch(Buffer.from('/a'), old);
  w.unwatch(1, old);
  w.watch(Buffer.from('/a'), renewed);
  await turn();
  assert.ok(!calls.includes('rm 1'), 'the watch of /a was removed while /a is watched again');
  read(ev(CLOSE_WRITE, 'x', 1));
  assert.deepEqual(heard, ['new x']);
  // /b removed: the kernel drops its watch and says so; a descriptor it hands out later is not b's.
  w.watch(Buffer.from('/b'), lb);
  read(ev(IGNORED, '', 2), ev(CLOSE_WRITE, 'y', 2));
  assert.deepEqual(heard, ['new x']);
  instance.close();
});

test('hand-overs: one asks the reader, those asking meanwhile get the next end marker; the reader reads on', async () => {
  const { addon, calls, ev, read, end } = scriptedAddon({ '/a': 1, '/b': 2 });
  const instance = new InotifyInstance(addon);
  const heard: string[] = [];
  const [a, b] = [backendOf(instance), backendOf(instance)];
  a.watch(Buffer.from('/a'), listener('a', heard));
  b.watch(Buffer.from('/b'), listener('b', heard));
  const done: string[] = [];
  void a.finish(5000).then((ok) => done.push(`a ${ok}`));
  void b.finish(5000).then((ok) => done.push(`b ${ok}`));
  assert.equal(calls.filter((c) => c === 'finish').length, 1);
  read(ev(CLOSE_WRITE, 'x', 1));
  end();
  await turn();
  assert.deepEqual(done, ['a true'], "b asked after a's marker was requested: it may have been read already");
  assert.equal(calls.filter((c) => c === 'finish').length, 2);
  end();
  await turn();
  assert.deepEqual(done, ['a true', 'b true']);
  read(ev(CLOSE_WRITE, 'y', 2));
  assert.deepEqual(heard, ['a x', 'b y'], 'events flow on after the hand-overs');
  assert.ok(!calls.includes('close'));
  instance.close();
});

test("a lone watcher's instance closes with it", () => {
  const { addon, calls } = scriptedAddon();
  const instance = new InotifyInstance(addon, { closeWithLastWatcher: true });
  const w = instance.backend(
    () => {},
    () => {},
  );
  w.close();
  assert.equal(calls.at(-1), 'close');
});

/** inotify descriptors this process holds. */
const inotifyFds = (): number => inotifyInstancesHeld() ?? Number.NaN;

test('three DirWatchers in one real instance: one descriptor; one stops (its hand-over too) and the others hear on', async (t) => {
  const addon = loadNativeInotify();
  if (addon === null) return t.skip('the native reader is not built here');
  const base = mkdtempSync(join(tmpdir(), 'inotify-instance-'));
  const instance = new InotifyInstance(addon);
  const before = inotifyFds();
  const roots = ['a', 'b', 'c'].map((n) => join(base, n));
  const events = roots.map(() => [] as WatchEvent[]);
  const watchers = roots.map(() => new DirWatcher({ inotify: () => instance }));
  t.after(async () => {
    for (const w of watchers) await w.close();
    instance.close();
    rmSync(base, { recursive: true, force: true });
  });
  for (const [i, r] of roots.entries()) {
    mkdirSync(join(r, 'sub'), { recursive: true });
    await watchers[i]?.start(r, (e) => events[i]?.push(e), { isIgnored: () => false });
  }
  assert.equal(inotifyFds(), before, 'the watchers opened descriptors of their own');
  const seen = (i: number, path: string) => events[i]?.some((e) => e.kind === 'file' && e.path === path) ?? false;
  for (const [i, r] of roots.entries()) writeFileSync(join(r, 'sub', `f${i}`), 'x');
  for (const i of [0, 1, 2]) await waitFor(async () => seen(i, `sub/f${i}`) || undefined, { what: `site ${i}'s file` });
  assert.ok(!seen(0, 'sub/f1') && !seen(1, 'sub/f0'), 'an event reached another watcher');

  // Written right before the stop: the hand-over brings it.
  writeFileSync(join(roots[1] as string, 'last'), 'x');
  await watchers[1]?.close();
  assert.ok(seen(1, 'last'), 'the hand-over lost what the kernel had queued');
  assert.equal(watchers[1]?.watchCount(), 0);
  for (const i of [0, 2]) writeFileSync(join(roots[i] as string, 'sub', 'after'), 'x');
  writeFileSync(join(roots[1] as string, 'after'), 'x');
  for (const i of [0, 2]) await waitFor(async () => seen(i, 'sub/after') || undefined, { what: `site ${i} after the stop` });
  assert.ok(!seen(1, 'after'), 'the stopped watcher heard on');
  assert.equal(instance.watchers, 2);
  assert.equal(inotifyFds(), before);
});

test('the watches of a watcher that leaves are removed a slice per turn, so their IN_IGNORED cannot flood the shared queue', async () => {
  const paths = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`/a/${i}`, i + 1]));
  const { addon, calls } = scriptedAddon(paths);
  const instance = new InotifyInstance(addon);
  const w = instance.backend(
    () => {},
    () => {},
  );
  const listeners = Object.keys(paths).map((p) => {
    const l = listener(p, []);
    return { l, wd: w.watch(Buffer.from(p), l) as number };
  });
  for (const { l, wd } of listeners) w.unwatch(wd, l);
  const removed = () => calls.filter((c) => c.startsWith('rm ')).length;
  assert.equal(removed(), 0);
  await turn();
  assert.equal(removed(), 4096);
  await turn();
  assert.equal(removed(), 5000);
  instance.close();
});

/** One watcher's backend on the shared instance, its overflow and error callbacks ignored. */
function backendOf(instance: InotifyInstance): ReturnType<InotifyInstance['backend']> {
  return instance.backend(
    () => {},
    () => {},
  );
}
