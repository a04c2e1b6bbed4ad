/**
 * Uploads in progress (issue "Drop-in on real publishing servers"): with sersync2's shipped toggles a file is sent
 * once it is closed after writing, never while it is written. The real daemon, a real rsync daemon with transfer
 * logging, real slow writers.
 */
import assert from 'node:assert/strict';
import { access, mkdir, open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitForIdenticalTrees } from '../helpers/wait.ts';
import { type SersyncProcess, startSersync, writeConf } from './support/sersync.ts';

const MODULE = 'uploads';
const STOPPED = 'stopped';
let rsyncd: RsyncDaemon;
const running: SersyncProcess[] = [];

before(async () => {
  rsyncd = await startRsyncDaemon({ modules: [MODULE, STOPPED], user: 'rsync_backup', password: 'upload pass' });
  for (const m of [MODULE, STOPPED]) await rsyncd.setModuleLines(m, ['transfer logging = yes', 'log format = XFER %f %l']);
});

after(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  await rsyncd?.stop();
  await removeTempDirs();
});

/** How often the rsync daemon received `name` (its transfer log). */
async function transfers(name: string): Promise<number> {
  const log = await readFile(join(rsyncd.configDir, 'rsyncd.log'), 'utf8');
  return log.split('\n').filter((l) => l.includes(`XFER ${name} `)).length;
}

describe('uploads in progress', () => {
  test('a 20 MiB file written through one descriptor over 5 s reaches the remote once, whole, after its close', async () => {
    const dir = await makeTempDir('close-write-');
    const src = join(dir, 'src');
    await mkdir(src);
    const conf = await writeConf(dir, {
      watch: src,
      remotes: [{ ip: '127.0.0.1', name: MODULE }],
      auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
      port: rsyncd.port,
      failLog: join(dir, 'state', 'rsync_fail_log.sh'),
      tuning: { stateDir: join(dir, 'state') },
    });
    const proc = await startSersync(['-o', conf]);
    running.push(proc);
    const dest = rsyncd.modules[MODULE] as string;
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    const file = await open(join(src, 'video.bin'), 'w');
    let seenEarly = false;
    for (let i = 0; i < 20; i++) {
      await file.write(chunk);
      await sleep(250);
      seenEarly ||= await access(join(dest, 'video.bin')).then(
        () => true,
        () => false,
      );
    }
    await file.close();
    await waitForIdenticalTrees(src, dest, { ignoreRootAttrs: true, timeoutMs: 20_000 });
    assert.equal(seenEarly, false, 'the remote had the file while it was still being written');
    assert.equal(await transfers('video.bin'), 1);

    // Appended through reopening: each close sends what is there; the end is identical.
    for (let i = 0; i < 20; i++) {
      const f = await open(join(src, 'append.log'), 'a');
      await f.write(`line ${i}\n`);
      await f.close();
      await sleep(30);
    }
    await waitForIdenticalTrees(src, dest, { ignoreRootAttrs: true, timeoutMs: 20_000 });
  });

  test('a stop keeps a file still open for writing in the retry queue; the next start sends it once complete', async () => {
    const dir = await makeTempDir('close-write-stop-');
    const src = join(dir, 'src');
    const state = join(dir, 'state');
    await mkdir(src);
    const conf = await writeConf(dir, {
      watch: src,
      remotes: [{ ip: '127.0.0.1', name: STOPPED }],
      auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
      port: rsyncd.port,
      failLog: join(state, 'rsync_fail_log.sh'),
      tuning: { stateDir: state },
    });
    const dest = rsyncd.modules[STOPPED] as string;
    const first = await startSersync(['--log-level', 'debug', '-o', conf]);
    running.push(first);
    const file = await open(join(src, 'upload-at-stop.bin'), 'w');
    await file.write(Buffer.alloc(256 * 1024, 'a'));
    await first.waitForLog((r) => r.msg === 'watch event' && r.path === 'upload-at-stop.bin', 'the write seen by the daemon');
    assert.equal(await first.stop(), 0);
    const queues = (await readdir(state)).filter((f) => f.endsWith('.queue.json'));
    assert.equal(queues.length, 1, `one retry queue in ${state}: ${queues.join(', ')}`);
    const queue = JSON.parse(await readFile(join(state, queues[0] as string), 'utf8')) as {
      remotes: Record<string, { entries: { path: string }[] }>;
    };
    const owed = Object.values(queue.remotes).flatMap((b) => b.entries.map((e) => e.path));
    assert.deepEqual(owed, ['upload-at-stop.bin'], 'the open file is owed to the remote after the stop');
    assert.equal(await transfers('upload-at-stop.bin'), 0, 'not sent while it was open');

    await file.write(Buffer.alloc(256 * 1024, 'b'));
    await file.close();
    const second = await startSersync(['-o', conf]);
    running.push(second);
    await waitForIdenticalTrees(src, dest, { ignoreRootAttrs: true, timeoutMs: 20_000 });
    assert.equal(await transfers('upload-at-stop.bin'), 1);
    assert.equal(await second.stop(), 0);
  });
});
