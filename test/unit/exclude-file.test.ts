import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { fromBytes } from '../../src/core/paths.ts';
import { writeExcludeFile } from '../../src/sync/exclude-file.ts';

test('the exclude file: private, one anchored literal per path from its bytes, NUL-separated, removed after', async () => {
  const utf8 = fromBytes(Buffer.from('data/é.tmp1'));
  const raw = fromBytes(Buffer.from([0x64, 0x2f, 0xff, 0x0a, 0x31])); // d/<0xff><newline>1
  const file = await writeExcludeFile([utf8, raw, 'w[1].tmp2', 'back\\slash.tmp3']);
  assert.ok(file);
  try {
    assert.equal((await stat(file.path)).mode & 0o777, 0o600);
    assert.equal((await stat(dirname(file.path))).mode & 0o777, 0o700);
    const bytes = await readFile(file.path);
    const expected = Buffer.concat(
      [
        Buffer.from('/data/é.tmp1'),
        Buffer.from([0x2f, 0x64, 0x2f, 0xff, 0x0a, 0x31]),
        Buffer.from('/w\\[1].tmp2'),
        Buffer.from('/back\\slash.tmp3'),
      ].flatMap((b) => [b, Buffer.from([0])]),
    );
    assert.deepEqual(bytes, expected);
  } finally {
    await file.remove();
  }
  await assert.rejects(stat(dirname(file.path)), { code: 'ENOENT' });
  await file.remove();
});

test('no paths, no file', async () => {
  assert.equal(await writeExcludeFile([]), null);
});
