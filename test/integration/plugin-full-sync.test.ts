/**
 * The plugin hears of the changes that a full sync took in (Batch.absorbed): a change made while the `-r` full sync
 * (or any other) is pending is carried by that sync, and the plugin runs for it once the sync went. Real rsync
 * daemon with auth, stopped and started again; a real hook script; the daemon as a process.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { recordingHook } from './support/hook.ts';
import { type SersyncProcess, startSersync, writeConf } from './support/sersync.ts';

const running: SersyncProcess[] = [];
after(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await removeTempDirs();
});

test('changes made while the -r full sync waits for a remote that is down reach the plugin once it went', async () => {
  const rsyncd = await startRsyncDaemon({ modules: ['hooked'], user: 'rsync_backup', password: 'pw' });
  try {
    const dir = await makeTempDir('plugin-full-');
    const src = join(dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'old.txt'), 'there before');
    await writeFile(join(src, 'gone.txt'), 'removed while the remote is down');
    const { script, runs } = await recordingHook(dir);
    const conf = await writeConf(dir, {
      watch: src,
      remotes: [{ ip: '127.0.0.1', name: 'hooked' }],
      auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
      port: rsyncd.port,
      failLog: join(dir, 'state', 'fail.log'),
      plugin: 'command',
      extra: `<plugin name="command"><param prefix="/bin/sh ${script}" suffix="" ignoreError="false"/></plugin>`,
    });
    await rsyncd.stop();
    const proc = await startSersync(['-r', '-o', conf]);
    running.push(proc);
    await proc.waitForLog((r) => r.run === 'full' && r.exitCode !== 0, 'the -r full sync to fail', 30_000);
    await writeFile(join(src, 'hook $(id).php'), 'new while down');
    await rm(join(src, 'gone.txt'));
    // The daemon sees both within milliseconds; the full sync is still retried with backoff.
    await new Promise((r) => setTimeout(r, 1500));
    await rsyncd.restart();
    await waitForIdenticalTrees(src, rsyncd.modules.hooked as string, {
      absSymlinksStripped: true,
      ignoreRootAttrs: true,
      timeoutMs: 60_000,
    });
    const told = await waitFor(
      async () => {
        const all = await runs();
        return all.length >= 2 ? all.map((r) => r.join(' ')).sort() : undefined;
      },
      { timeoutMs: 20_000, what: 'the plugin runs for the changes the full sync took in' },
    );
    assert.deepEqual(told, [`change 0 ${join(src, 'hook $(id).php')}`, `delete 0 ${join(src, 'gone.txt')}`]);
  } finally {
    await rsyncd.stop();
  }
});
