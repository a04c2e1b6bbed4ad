/**
 * Nothing unwatched in silence (issue "Nothing lost under chaos"): a directory the daemon cannot read, and a start
 * without the native inotify reader, are each named in the log and in /status. The unreadable directory needs a
 * daemon that is not root (root reads a 0000 directory), so that test runs it as nobody through setpriv.
 */
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { DaemonStatus } from '../../src/observe/status-model.ts';
import { freePort } from '../helpers/ports.ts';
import { runProcess } from '../helpers/processes.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { type SersyncProcess, startSersync, writeConf } from './support/sersync.ts';

const NOBODY = 65534;
const running: SersyncProcess[] = [];

after(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  await removeTempDirs();
});

/** /status, once the endpoint listens (it starts after the "watching" line). */
function status(port: number): Promise<DaemonStatus> {
  return waitFor(async () => (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as DaemonStatus, {
    what: `the status endpoint on port ${port}`,
  });
}

/** A watched tree mirrored into a local directory, with its own status port; every part owned by `uid`. */
async function localScenario(name: string, uid: number) {
  const dir = await makeTempDir(`unwatched-${name}-`);
  const src = join(dir, 'src');
  const dest = join(dir, 'dest');
  await mkdir(src);
  await mkdir(dest);
  const port = await freePort();
  const conf = await writeConf(dir, {
    watch: src,
    remotes: [{ name: dest }],
    failLog: join(dir, 'state', 'rsync_fail_log.sh'),
    host: { ip: '127.0.0.1', port },
    tuning: { stateDir: join(dir, 'state') },
  });
  for (const p of [dir, src, dest, conf]) await chown(p, uid, uid);
  return { dir, src, dest, conf, port };
}

describe('nothing unwatched in silence', () => {
  test('a directory the daemon cannot read is named in the log and in /status, and watched once it can be read', async (t) => {
    if ((await runProcess('setpriv', ['--version'])).code !== 0) return t.skip('setpriv (util-linux) is not installed');
    if (process.getuid?.() !== 0) return t.skip('needs root to run the daemon as another user');
    const s = await localScenario('eacces', NOBODY);
    const asNobody = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--'];
    // The node binary and the checkout must be readable by nobody, or the daemon cannot even start.
    const probe = await runProcess(asNobody[0] as string, [...asNobody.slice(1), process.execPath, '--version']);
    if (probe.code !== 0) return t.skip(`nobody cannot run ${process.execPath}: ${probe.stderr}`);
    await mkdir(join(s.src, 'ok'));
    await writeFile(join(s.src, 'ok', 'a.txt'), 'readable');
    await mkdir(join(s.src, 'private'));
    await writeFile(join(s.src, 'private', 'secret.txt'), 'only once readable');
    for (const p of ['ok', 'ok/a.txt', 'private', 'private/secret.txt']) await chown(join(s.src, p), NOBODY, NOBODY);
    await chmod(join(s.src, 'private'), 0o000);

    const proc = await startSersync(['-o', s.conf], { via: asNobody });
    running.push(proc);
    const warning = await proc.waitForLog((r) => r.path === 'private' && r.level === 40, 'the warning that names private/');
    assert.match(String(warning.msg), /cannot read private/);
    const before = await status(s.port);
    assert.deepEqual(before.unreadable, { count: 1, sample: ['private'] });

    // Readable again: watched (without a restart) and synced.
    await chmod(join(s.src, 'private'), 0o755);
    await waitFor(async () => (await status(s.port)).unreadable.count === 0, { what: '/status to show nothing unreadable', timeoutMs: 40_000 });
    await writeFile(join(s.src, 'private', 'later.txt'), 'written once watched');
    await chown(join(s.src, 'private', 'later.txt'), NOBODY, NOBODY);
    await waitForIdenticalTrees(join(s.src, 'private'), join(s.dest, 'private'), { ignoreRootAttrs: true, timeoutMs: 20_000 });
  });

  test('a start without the native inotify reader says what it costs, in the log and in /status', async () => {
    const s = await localScenario('fswatch', process.getuid?.() ?? 0);
    const proc = await startSersync(['-o', s.conf], { env: { SERSYNC_TS_NATIVE_INOTIFY: '0' } });
    running.push(proc);
    const warning = await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('watching with fs.watch'), 'the fs.watch warning');
    assert.match(String(warning.msg), /overflow goes unnoticed/);
    assert.equal((await status(s.port)).watchBackend, 'fs.watch');
    await writeFile(join(s.src, 'a.txt'), 'still synced');
    await waitForIdenticalTrees(s.src, s.dest, { ignoreRootAttrs: true, timeoutMs: 20_000 });
  });
});
