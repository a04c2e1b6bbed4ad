import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DiskProbe } from '../../src/sync/disk-probe.ts';
import { excludedByRegexes } from '../../src/sync/excluded-walk.ts';

const disk: DiskProbe = {
  async kind() {
    return 'dir';
  },
  async *entries(dir: string) {
    if (dir === '/w') yield* [{ name: 'site', dir: true }, { name: 'a.txt', dir: false }];
    if (dir === '/w/site') yield* [{ name: 'tmp', dir: true }, { name: 'tmp.txt', dir: false }];
    if (dir === '/w/site/tmp') yield* [{ name: 'x', dir: false }];
  },
};

test("a directory is matched in sersync2's start-up form too (dir/sub/), as the path filter does", async () => {
  // `.*/tmp/` can match only `site/tmp/`: the walk's subject for a directory, never an event's.
  const regex = { source: '.*/tmp/', regex: /^(?:.*\/tmp\/)$/, line: 1 };
  assert.deepEqual(await excludedByRegexes(disk, '/w', [''], [regex]), ['site/tmp']);
});
