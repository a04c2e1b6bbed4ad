import type { Remote, RsyncSettings } from '../../../src/config/model.ts';

/** `-artz`, no auth, no port, no timeout, no ssh: the rsync settings the lane and planner tests run with. */
export const PLAIN_RSYNC: RsyncSettings = {
  commonParams: ['-artz'],
  auth: { enabled: false, users: '', passwordFile: '' },
  port: { enabled: false, port: 874 },
  timeout: { enabled: false, seconds: 100 },
  ssh: { enabled: false, options: [] },
};

/** An rsync daemon module. */
export const DAEMON_REMOTE: Remote = { kind: 'daemon', ip: '10.0.0.2', name: 'www', id: '10.0.0.2::www', line: 1 };
