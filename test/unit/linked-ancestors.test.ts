import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DiskEntryKind, DiskProbe } from '../../src/sync/disk-probe.ts';
import { withoutLinkedAncestors } from '../../src/sync/linked-ancestors.ts';

/** A scripted disk: what each path under /w is (directories unless named), and which paths were probed. */
function disk(kinds: Record<string, DiskEntryKind>) {
  const probed: string[] = [];
  const probe: DiskProbe = {
    async kind(p) {
      probed.push(p);
      return kinds[p] ?? 'dir';
    },
    async *entries() {},
  };
  return { probed, probe };
}

test('a path below a symlink that replaced a directory is dropped; the link is sent instead, once', async () => {
  const { probe } = disk({ '/w/a': 'link' });
  const plan = await withoutLinkedAncestors(probe, '/w', ['a/shadow', 'a/b/c', 'x/y', 'top'], ['a/b/c', 'x/y']);
  assert.deepEqual(plan, { paths: ['x/y', 'top', 'a'], trees: ['x/y'], links: ['a'], dropped: 2 });
});

test('shared ancestors cost one lstat per batch, checked top down, never through a link', async () => {
  const { probed, probe } = disk({ '/w/d/l': 'link' });
  const paths = Array.from({ length: 100 }, (_, i) => `d/e/f${i}`);
  const plan = await withoutLinkedAncestors(probe, '/w', [...paths, 'd/l/z/deep', 'root-file'], []);
  assert.deepEqual(probed.sort(), ['/w/d', '/w/d/e', '/w/d/l']);
  assert.deepEqual(plan.links, ['d/l']);
  assert.equal(plan.paths.length, 102);
});

test('an ancestor that is gone or no directory leaves the path as it is (rsync reports it vanished)', async () => {
  const { probe } = disk({ '/w/gone': 'gone', '/w/file': 'other' });
  const plan = await withoutLinkedAncestors(probe, '/w', ['gone/f', 'file/f', 'ok/f'], ['gone/f']);
  assert.deepEqual(plan, { paths: ['gone/f', 'file/f', 'ok/f'], trees: ['gone/f'], links: [], dropped: 0 });
});

test('a listed link that is also an ancestor of another listed path is listed once', async () => {
  const { probe } = disk({ '/w/a': 'link' });
  const plan = await withoutLinkedAncestors(probe, '/w', ['a', 'a/f'], []);
  assert.deepEqual(plan.paths, ['a']);
});
