import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EntryKind, withoutLinkedAncestors } from '../../src/sync/linked-ancestors.ts';

/** A scripted disk: what each path under /w is (directories unless named), and which paths were probed. */
function disk(kinds: Record<string, EntryKind>) {
  const probed: string[] = [];
  const kindOf = async (p: string) => {
    probed.push(p);
    return kinds[p] ?? 'dir';
  };
  return { probed, kindOf };
}

test('a path below a symlink that replaced a directory is dropped; the link is sent instead, once', async () => {
  const { kindOf } = disk({ '/w/a': 'link' });
  const plan = await withoutLinkedAncestors('/w', ['a/shadow', 'a/b/c', 'x/y', 'top'], ['a/b/c', 'x/y'], kindOf);
  assert.deepEqual(plan, { paths: ['x/y', 'top', 'a'], trees: ['x/y'], links: ['a'], dropped: 2 });
});

test('shared ancestors cost one lstat per batch, checked top down, never through a link', async () => {
  const { probed, kindOf } = disk({ '/w/d/l': 'link' });
  const paths = Array.from({ length: 100 }, (_, i) => `d/e/f${i}`);
  const plan = await withoutLinkedAncestors('/w', [...paths, 'd/l/z/deep', 'root-file'], [], kindOf);
  assert.deepEqual(probed.sort(), ['/w/d', '/w/d/e', '/w/d/l']);
  assert.deepEqual(plan.links, ['d/l']);
  assert.equal(plan.paths.length, 102);
});

test('an ancestor that is gone or no directory leaves the path as it is (rsync reports it vanished)', async () => {
  const { kindOf } = disk({ '/w/gone': 'other' });
  const plan = await withoutLinkedAncestors('/w', ['gone/f', 'ok/f'], ['gone/f'], kindOf);
  assert.deepEqual(plan, { paths: ['gone/f', 'ok/f'], trees: ['gone/f'], links: [], dropped: 0 });
});

test('a listed link that is also an ancestor of another listed path is listed once', async () => {
  const { kindOf } = disk({ '/w/a': 'link' });
  const plan = await withoutLinkedAncestors('/w', ['a', 'a/f'], [], kindOf);
  assert.deepEqual(plan.paths, ['a']);
});
