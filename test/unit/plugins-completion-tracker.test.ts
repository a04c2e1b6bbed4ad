import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompletionTracker } from '../../src/plugins/completion-tracker.ts';

const upd = (path: string, isDir = false) => ({ path, deleted: false, isDir });
const del = (path: string, isDir = false) => ({ path, deleted: true, isDir });

test('one remote: every reported path completes at once, updates before deletions, nothing is kept', () => {
  const t = new CompletionTracker(['a'], { maxPaths: 10 });
  assert.deepEqual(t.report('a', ['x', 'd'], ['gone'], new Set(['d'])), [upd('x'), upd('d', true), del('gone')]);
  assert.equal(t.size, 0);
});

test('two remotes: a path completes only when the second remote has reported it', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  assert.deepEqual(t.report('a', ['x'], []), []);
  assert.equal(t.size, 1);
  assert.deepEqual(t.report('a', ['x'], []), [], 'the same remote twice is not every remote');
  assert.deepEqual(t.report('b', ['x'], []), [upd('x')]);
  assert.equal(t.size, 0);
});

test('three remotes in any order; each path is returned once', () => {
  const t = new CompletionTracker(['a', 'b', 'c'], { maxPaths: 10 });
  assert.deepEqual(t.report('c', ['p'], []), []);
  assert.deepEqual(t.report('a', ['p'], []), []);
  assert.deepEqual(t.report('b', ['p'], []), [upd('p')]);
  assert.deepEqual(t.report('b', [], []), []);
});

test('paths completed by one report come in first-seen order, not report order', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['1'], []);
  t.report('a', ['2'], []);
  t.report('a', [], ['3']);
  assert.deepEqual(t.report('b', ['2', '1'], ['3']), [upd('1'), upd('2'), del('3')]);
});

test('a path waiting for a slow remote does not hold back later paths', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['old'], []);
  t.report('a', ['new'], []);
  assert.deepEqual(t.report('b', ['new'], []), [upd('new')]);
  assert.deepEqual(t.report('b', ['old'], []), [upd('old')]);
});

test('update and deletion of the same path: the last report wins', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['f'], []);
  assert.deepEqual(t.report('b', [], ['f']), [del('f')]);
  t.report('a', [], ['g']);
  assert.deepEqual(t.report('b', ['g'], []), [upd('g')], 'created again after the deletion');
  t.report('a', ['h'], []);
  t.report('a', [], ['h']);
  t.report('b', [], ['h']);
  assert.equal(t.size, 0);
});

test('within one report a path both updated and deleted (a directory with deletions below) is updated', () => {
  const t = new CompletionTracker(['a'], { maxPaths: 10 });
  assert.deepEqual(t.report('a', ['d'], ['d'], new Set(['d'])), [upd('d', true)]);
});

test('isDir comes from the last report', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['x'], [], new Set(['x']));
  assert.deepEqual(t.report('b', ['x'], []), [upd('x', false)]);
});

test('a directory reported by one remote covers the paths below it that another remote reported one by one', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['img/1.jpg', 'img/2.jpg', 'img/sub/3.jpg', 'imgx/4.jpg'], []);
  // b's lane collapsed the changes in img into img itself.
  assert.deepEqual(t.report('b', ['img'], [], new Set(['img'])), [upd('img/1.jpg'), upd('img/2.jpg'), upd('img/sub/3.jpg')]);
  assert.equal(t.size, 2, 'img (waiting for a) and imgx/4.jpg (not below img) wait');
  assert.deepEqual(t.report('a', ['img'], [], new Set(['img'])), [upd('img', true)]);
});

test('a deleted directory covers the paths below it, which complete as deleted', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['d/f'], []);
  assert.deepEqual(t.report('b', [], ['d'], new Set(['d'])), [del('d/f')]);
});

test('the nearest reported ancestor decides', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['d/e/f'], []);
  assert.deepEqual(t.report('b', ['d'], ['d/e']), [del('d/e/f')]);
});

test('coverage counts only for the remote that reported the directory', () => {
  const t = new CompletionTracker(['a', 'b', 'c'], { maxPaths: 10 });
  t.report('a', ['d/f'], []);
  assert.deepEqual(t.report('b', ['d'], []), []);
  assert.deepEqual(t.report('c', ['d/f'], []), [upd('d/f')]);
});

test('a full sync counts for every tracked path of that remote', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['x', 'y/z'], ['w']);
  assert.deepEqual(t.reportFull('b'), [upd('x'), upd('y/z'), del('w')]);
  assert.equal(t.size, 0);
  assert.deepEqual(t.reportFull('a'), [], 'nothing tracked, nothing to say');
});

test('a full sync of a remote that already reported completes nothing', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['x'], []);
  assert.deepEqual(t.reportFull('a'), []);
  assert.equal(t.size, 1);
});

test('unknown remotes and empty reports change nothing', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  assert.deepEqual(t.report('zz', ['x'], []), []);
  assert.deepEqual(t.reportFull('zz'), []);
  assert.deepEqual(t.report('a', [], []), []);
  assert.equal(t.size, 0);
});

test('duplicate remote ids count once', () => {
  const t = new CompletionTracker(['a', 'a'], { maxPaths: 10 });
  assert.deepEqual(t.report('a', ['x'], []), [upd('x')]);
});

test('no remotes at all: nothing is ever tracked or returned', () => {
  const t = new CompletionTracker([], { maxPaths: 10 });
  assert.deepEqual(t.report('a', ['x'], []), []);
  assert.equal(t.size, 0);
});

test('the cap drops the oldest waiting paths and counts them once', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 3 });
  t.report('a', ['1', '2', '3', '4', '5'], []);
  assert.equal(t.size, 3);
  assert.equal(t.takeDropped(), 2);
  assert.equal(t.takeDropped(), 0, 'the count resets');
  assert.deepEqual(t.report('b', ['1', '2', '3', '4', '5'], []), [upd('3'), upd('4'), upd('5')]);
  // 1 and 2 are new to the tracker now and wait for a.
  assert.equal(t.size, 2);
});

test('paths that complete are never dropped by the cap', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 2 });
  t.report('a', ['1', '2'], []);
  assert.deepEqual(t.report('b', ['1', '2', '3'], []), [upd('1'), upd('2')]);
  assert.equal(t.takeDropped(), 0);
  assert.equal(t.size, 1);
});

test('a re-reported path keeps its first-seen place', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', ['first', 'second'], []);
  t.report('a', ['first'], []);
  assert.deepEqual(t.report('b', ['second', 'first'], []), [upd('first'), upd('second')]);
});

test('byte-string paths (not valid UTF-8) are tracked like any other', () => {
  const name = Buffer.from([0x66, 0xff, 0x2f, 0xe9]).toString('latin1');
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 10 });
  t.report('a', [name], []);
  assert.deepEqual(t.report('b', [name], []), [upd(name)]);
});

test('big reports against many waiting paths stay fast: coverage looks up ancestors, it does not compare pairs', () => {
  const t = new CompletionTracker(['a', 'b'], { maxPaths: 100_000 });
  t.report('a', Array.from({ length: 20_000 }, (_, i) => `d${i % 100}/sub/f${i}`), []);
  const started = performance.now();
  // 20,000 unrelated paths: a pairwise prefix check would be 400 million comparisons.
  assert.deepEqual(t.report('b', Array.from({ length: 20_000 }, (_, i) => `other/g${i}`), []), []);
  const done = t.report('b', Array.from({ length: 100 }, (_, i) => `d${i}`), []);
  assert.equal(done.length, 20_000);
  const ms = performance.now() - started;
  assert.ok(ms < 4000, `took ${ms} ms`);
});
