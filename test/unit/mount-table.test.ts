import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fromUtf8 } from '../../src/core/paths.ts';
import { mountPointsBelow, parseMountPoints } from '../../src/watch/mount-table.ts';

/** A disk mounted inside the tree after the start is found in /proc/self/mountinfo (inotify tells no watch of it). */

const line = (id: number, point: string) => `${id} 1 0:${id} / ${point} rw,relatime shared:1 - tmpfs tmpfs rw`;

test('parseMountPoints: the fifth field, with the kernel escapes of blank, tab, newline and backslash undone', () => {
  const table = [line(1, '/'), line(2, '/srv/www/up\\040loads'), line(3, '/srv/a\\011b\\012c\\134d'), ''].join('\n');
  assert.deepEqual(parseMountPoints(table), ['/', '/srv/www/up loads', '/srv/a\tb\nc\\d']);
  // Bytes that are not UTF-8 stay bytes (byte strings, core/paths.ts).
  assert.deepEqual(parseMountPoints(line(4, '/srv/\xff')), ['/srv/\xff']);
});

test('mountPointsBelow: strictly below the resolved root, relative, each once; null for an unreadable table or root', async (t) => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'mount-table-')));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const root = join(base, 'www');
  mkdirSync(root);
  // The config may name the root through a link; the table holds real paths.
  symlinkSync(root, join(base, 'link'));
  const table = join(base, 'mountinfo');
  writeFileSync(
    table,
    [
      line(1, '/'),
      line(2, root),
      line(3, `${root}/uploads`),
      line(4, `${root}/uploads`),
      line(5, `${root}/a/deep\\040disk`),
      line(6, `${root}-other/x`),
      line(7, base),
    ].join('\n'),
  );
  assert.deepEqual(await mountPointsBelow(fromUtf8(join(base, 'link')), table), ['uploads', 'a/deep disk']);
  assert.equal(await mountPointsBelow(fromUtf8(root), join(base, 'missing')), null, 'unknown now: the last table stands');
  assert.equal(await mountPointsBelow(fromUtf8(join(base, 'gone')), table), null);
});
