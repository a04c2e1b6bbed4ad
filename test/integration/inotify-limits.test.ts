import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { runProcess } from '../helpers/processes.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitForIdenticalTrees } from '../helpers/wait.ts';
import { BIN, startSersync, testStateDir, writeConf } from './support/sersync.ts';

/**
 * The inotify watch limit, met for real: the daemon runs in a user namespace whose own watch limit the test sets
 * (support/inotify-watch-limit.ts), so nothing on the machine is lowered, and the daemon cannot raise it there.
 */

const LIMITED = join(import.meta.dirname, 'support', 'inotify-watch-limit.ts');
/** 1 + 5 + 25 directories. */
const TREE_DIRS = 31;
let userNamespaces = false;

function underWatchLimit(limit: number): string[] {
  return ['unshare', '--user', '--map-root-user', process.execPath, LIMITED, String(limit)];
}

function makeTree(root: string): void {
  for (const a of ['a', 'b', 'c', 'd', 'e']) {
    for (const b of ['1', '2', '3', '4', '5']) {
      mkdirSync(join(root, a, b), { recursive: true });
      writeFileSync(join(root, a, b, 'f.txt'), `${a}${b}`);
    }
  }
}

before(async () => {
  const [file, ...args] = underWatchLimit(5) as [string, ...string[]];
  const probe = await runProcess(file, [...args, process.execPath, '-e', '0']);
  userNamespaces = probe.code === 0;
});
after(removeTempDirs);

describe('inotify watch limit', () => {
  test('a tree with more directories than the watch limit: exit 75 at start, naming the sysctl, nothing half-watched', async (t) => {
    if (!userNamespaces) return t.skip('unshare --user cannot make a user namespace here (its own inotify limit is how this is tested)');
    const watch = await makeTempDir('limit-watch-');
    const mirror = await makeTempDir('limit-mirror-');
    makeTree(watch);
    const conf = await writeConf(await makeTempDir('limit-conf-'), {
      watch,
      remotes: [{ name: mirror }],
      host: { ip: '127.0.0.1', port: await freePort() },
    });
    const [file, ...args] = underWatchLimit(TREE_DIRS - 10) as [string, ...string[]];
    const r = await runProcess(file, [...args, process.execPath, BIN, '-r', '-o', conf], {
      env: { STATE_DIRECTORY: testStateDir(), ...process.env },
      timeoutMs: 30_000,
    });
    assert.equal(r.timedOut, false, `the daemon ran with part of the tree unwatched instead of failing:\n${r.stdout}`);
    assert.equal(r.code, 75, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /^sersync-ts: cannot watch all of .*fs\.inotify\.max_user_watches.*sysctl/m);
    assert.deepEqual(readdirSync(mirror), [], 'no sync starts from a tree that is not watched');
  });

  test('within the limit it runs; a directory made later past the limit becomes a full sync, not a lost change', async (t) => {
    if (!userNamespaces) return t.skip('unshare --user cannot make a user namespace here (its own inotify limit is how this is tested)');
    const watch = await makeTempDir('limit-ok-watch-');
    const mirror = await makeTempDir('limit-ok-mirror-');
    makeTree(watch);
    const conf = await writeConf(await makeTempDir('limit-ok-conf-'), {
      watch,
      remotes: [{ name: mirror }],
      host: { ip: '127.0.0.1', port: await freePort() },
    });
    const d = await startSersync(['-r', '-o', conf], { via: underWatchLimit(TREE_DIRS + 2) });
    try {
      await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
      // Three more directories, one file deep each: the third cannot be watched.
      for (const n of ['x', 'y', 'z']) {
        mkdirSync(join(watch, n, 'deep'), { recursive: true });
        writeFileSync(join(watch, n, 'deep', 'late.txt'), n);
      }
      await d.waitForLog((rec) => /inotify watch limit reached/.test(String(rec.msg)), 'the watch limit reported as lost events');
      await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  test('a start that fails after a crash (the limit) keeps the crash: the next start still syncs in full', async (t) => {
    if (!userNamespaces) return t.skip('unshare --user cannot make a user namespace here (its own inotify limit is how this is tested)');
    const watch = await makeTempDir('limit-crash-watch-');
    const mirror = await makeTempDir('limit-crash-mirror-');
    makeTree(watch);
    const conf = await writeConf(await makeTempDir('limit-crash-conf-'), {
      watch,
      remotes: [{ name: mirror }],
      host: { ip: '127.0.0.1', port: await freePort() },
    });
    const first = await startSersync(['-r', '-o', conf]);
    await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
    await first.stop('SIGKILL');
    // Changed while no daemon ran: only the full sync after a crash brings it.
    writeFileSync(join(watch, 'a', '1', 'f.txt'), 'changed while down');
    const [file, ...args] = underWatchLimit(TREE_DIRS - 10) as [string, ...string[]];
    const failed = await runProcess(file, [...args, process.execPath, BIN, '-o', conf], {
      env: { STATE_DIRECTORY: testStateDir(), ...process.env },
      timeoutMs: 30_000,
    });
    assert.equal(failed.code, 75, `${failed.stdout}\n${failed.stderr}`);
    const next = await startSersync(['-o', conf]);
    try {
      await next.waitForLog((r) => /did not shut down cleanly/.test(String(r.msg)), 'the crash to be remembered');
      await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
    } finally {
      assert.equal(await next.stop(), 0);
    }
  });
});
