import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inotifyInstancesHeld, raiseInotifyLimits } from '../../src/recovery/inotify-limits.ts';

test('the limit messages say what each limit is to a daemon whose sites share one instance', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inotify-limits-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'max_user_watches'), '8192\n');
  writeFileSync(join(dir, 'max_queued_events'), '16384\n');
  const limits = await raiseInotifyLimits({ procDir: dir, isRoot: false });
  assert.deepEqual(
    limits.messages.map((m) => m.text),
    [
      'fs.inotify.max_user_watches (one watch per directory of every site) is 8192; as root run: sysctl -w fs.inotify.max_user_watches=50000000 (see examples/sysctl)',
      'fs.inotify.max_queued_events (the one event queue of all sites) is 16384; as root run: sysctl -w fs.inotify.max_queued_events=327679 (see examples/sysctl)',
    ],
  );
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
