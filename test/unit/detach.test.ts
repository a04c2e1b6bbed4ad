import assert from 'node:assert/strict';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { keptOutput, shouldDetach } from '../../src/daemon/detach.ts';

test('-d detaches outside systemd and in a Type=forking or oneshot unit (rc.local too); simple, exec, notify keep this process', () => {
  const systemd = { INVOCATION_ID: 'x' };
  const never = () => assert.fail('systemctl asked without need');
  assert.equal(shouldDetach(false, {}, never), false);
  assert.equal(shouldDetach(true, {}, never), true);
  assert.equal(
    shouldDetach(true, systemd, () => 'forking'),
    true,
  );
  for (const type of ['exec', 'simple', 'notify'])
    assert.equal(
      shouldDetach(true, systemd, () => type),
      false,
      type,
    );
  // A oneshot wrapper waits for its command to exit, as forking does.
  assert.equal(
    shouldDetach(true, systemd, () => 'oneshot'),
    true,
  );
  // No systemctl, no unit in /proc/self/cgroup: as sersync2 did.
  assert.equal(
    shouldDetach(true, systemd, () => null),
    true,
  );
  assert.equal(shouldDetach(true, { ...systemd, SERSYNC_TS_FOREGROUND: '1' }, never), false);
  assert.equal(shouldDetach(true, { SERSYNC_TS_DETACHED_CHILD: '1' }, never), false);
});

test('-d without --log-file keeps a file or the journal (JOURNAL_STREAM) as its output; a terminal, pipe or other socket gets /dev/null', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'detach-out-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = openSync(join(dir, 'log'), 'a');
  t.after(() => closeSync(file));
  assert.equal(keptOutput(file, undefined), file);
  const devNull = openSync('/dev/null', 'w');
  t.after(() => closeSync(devNull));
  assert.equal(keptOutput(devNull, undefined), 'ignore');
  assert.equal(keptOutput(9999, undefined), 'ignore', 'a closed descriptor');
  const server = createServer((s) => s.resume());
  await new Promise<void>((resolve) => server.listen(join(dir, 'journal.sock'), resolve));
  t.after(() => server.close());
  const client: Socket = await new Promise((resolve) => {
    const c = createConnection(join(dir, 'journal.sock'), () => resolve(c));
  });
  t.after(() => client.destroy());
  const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
  const st = fstatSync(fd);
  assert.equal(keptOutput(fd, `${st.dev}:${st.ino}`), fd, 'the journal');
  assert.equal(keptOutput(fd, undefined), 'ignore', 'a socket of a caller that reads until the end');
});
