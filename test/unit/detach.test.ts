import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shouldDetach } from '../../src/daemon/detach.ts';

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
