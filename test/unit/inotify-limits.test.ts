import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inotifyInstancesHeld, raiseInotifyLimits } from '../../src/recovery/inotify-limits.ts';

const PROC = '/proc/sys/fs/inotify';
/** Lowering a kernel limit changes the host for every other process for a moment: only when asked. */
const HOST_CHANGES = process.env.SERSYNC_TEST_HOST_CHANGES === '1';

test('as root, limits lower than sersync2 set are raised in /proc and the raise is logged', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to write /proc/sys/fs/inotify');
  if (!HOST_CHANGES) return t.skip(`lowers ${PROC}/* for a moment: set SERSYNC_TEST_HOST_CHANGES=1 (.ci/run does)`);
  const names = ['max_user_watches', 'max_queued_events'] as const;
  const saved = names.map((n) => readFileSync(join(PROC, n), 'utf8').trim());
  try {
    // One below sersync2's values: a raise, and nothing any other process on the machine would notice.
    writeFileSync(join(PROC, 'max_user_watches'), '49999999');
    writeFileSync(join(PROC, 'max_queued_events'), '327678');
    const limits = await raiseInotifyLimits();
    assert.deepEqual(limits.messages, [
      {
        level: 'info',
        text: 'raised fs.inotify.max_user_watches (one watch per directory of every site) from 49999999 to 50000000 (as sersync2 did)',
      },
      {
        level: 'info',
        text: 'raised fs.inotify.max_queued_events (the one event queue of all sites) from 327678 to 327679 (as sersync2 did)',
      },
    ]);
    assert.equal(readFileSync(join(PROC, 'max_user_watches'), 'utf8').trim(), '50000000');
    assert.equal(readFileSync(join(PROC, 'max_queued_events'), 'utf8').trim(), '327679');
    assert.equal(limits.maxUserWatches, 50_000_000);
  } finally {
    for (const [i, n] of names.entries()) writeFileSync(join(PROC, n), `${saved[i]}\n`);
  }
});

test('not root: lower limits are left alone, and a warning names the sysctl to run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sersync-ts-inotify-limits-'));
  try {
    writeFileSync(join(dir, 'max_user_watches'), '8192\n');
    writeFileSync(join(dir, 'max_queued_events'), '16384\n');
    const limits = await raiseInotifyLimits({ procDir: dir, isRoot: false });
    assert.deepEqual(limits.messages, [
      {
        level: 'warn',
        text: 'fs.inotify.max_user_watches (one watch per directory of every site) is 8192; as root run: sysctl -w fs.inotify.max_user_watches=50000000 (see examples/sysctl)',
      },
      {
        level: 'warn',
        text: 'fs.inotify.max_queued_events (the one event queue of all sites) is 16384; as root run: sysctl -w fs.inotify.max_queued_events=327679 (see examples/sysctl)',
      },
    ]);
    assert.equal(readFileSync(join(dir, 'max_user_watches'), 'utf8'), '8192\n');
    assert.equal(limits.maxUserWatches, 8192);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inotifyInstancesHeld counts the descriptors that are inotify instances', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inotify-fds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // What /proc/PID/fd holds: links named by descriptor.
  symlinkSync('anon_inode:inotify', join(dir, '7'));
  symlinkSync('/dev/null', join(dir, '8'));
  symlinkSync('anon_inode:[eventfd]', join(dir, '9'));
  assert.equal(inotifyInstancesHeld(dir), 1);
  assert.equal(inotifyInstancesHeld(join(dir, 'missing')), null);
});
