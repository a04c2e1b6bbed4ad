/**
 * Nothing destroyed by a missing disk (issue "Nothing destroyed"): a tmpfs mounted at the watch root, or inside the
 * tree, is unmounted while its mount point holds a stray file. No remote file may be deleted; the hold is logged and
 * shown in /status; a remount is followed and synced. Needs root (mount); real rsync daemon with auth.
 */
import assert from 'node:assert/strict';
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { DaemonStatus } from '../../src/observe/status-model.ts';
import { freePort } from '../helpers/ports.ts';
import { runProcess } from '../helpers/processes.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { compareTrees } from '../helpers/trees.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { type SersyncProcess, startSersync, writeConf } from './support/sersync.ts';

const MODULES = ['rootmount', 'innermount', 'restartmount', 'latemount', 'parentmount'];
let rsyncd: RsyncDaemon;
const running: SersyncProcess[] = [];
const mounted: string[] = [];

before(async () => {
  rsyncd = await startRsyncDaemon({ modules: MODULES, user: 'rsync_backup', password: 'mount pass' });
});

after(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  for (const m of mounted.reverse()) await runProcess('umount', ['-l', m]);
  await rsyncd?.stop();
  await removeTempDirs();
});

async function mountTmpfs(dir: string): Promise<void> {
  const r = await runProcess('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir]);
  assert.equal(r.code, 0, `mount: ${r.stderr}`);
  mounted.push(dir);
}

async function unmount(dir: string): Promise<void> {
  const r = await runProcess('umount', [dir]);
  if (r.code !== 0) assert.equal((await runProcess('umount', ['-l', dir])).code, 0, `umount: ${r.stderr}`);
  mounted.splice(mounted.lastIndexOf(dir), 1);
}

async function writeFiles(dir: string, n: number, prefix = 'f'): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < n; i++) await writeFile(join(dir, `${prefix}${i}.txt`), `${prefix} ${i}`);
}

function status(port: number): Promise<DaemonStatus> {
  return waitFor(async () => (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as DaemonStatus, {
    what: `the status endpoint on port ${port}`,
  });
}

/** `local`: mirror into a local directory instead of the rsync daemon's module. */
async function scenario(module: string, tuning: Record<string, string | number> = {}, local = false) {
  const dir = await makeTempDir(`mounts-${module}-`);
  const src = join(dir, 'src');
  await mkdir(src);
  const port = await freePort();
  const localDest = join(dir, 'mirror');
  if (local) await mkdir(localDest);
  const conf = await writeConf(dir, {
    watch: src,
    remotes: [local ? { name: localDest } : { ip: '127.0.0.1', name: module }],
    auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
    port: rsyncd.port,
    host: { ip: '127.0.0.1', port },
    failLog: join(dir, 'state', 'rsync_fail_log.sh'),
    tuning: { stateDir: join(dir, 'state'), ...tuning },
  });
  return {
    dir,
    src,
    port,
    dest: local ? localDest : (rsyncd.modules[module] as string),
    async start(args: string[] = []): Promise<SersyncProcess> {
      const proc = await startSersync([...args, '-o', conf]);
      running.push(proc);
      return proc;
    },
  };
}

/** Every entry of `expected` is still on the remote (the stray file and the mount point's own mode may arrive: updates go on). */
async function nothingDeleted(expected: string, dest: string): Promise<void> {
  const diff = await compareTrees(expected, dest, { absSymlinksStripped: true, ignoreRootAttrs: true });
  const lost = diff.filter((d) => d.endsWith('only in a'));
  assert.deepEqual(lost, [], 'files were deleted on the remote');
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

const identical = (a: string, b: string) =>
  waitForIdenticalTrees(a, b, { absSymlinksStripped: true, ignoreRootAttrs: true, timeoutMs: 30_000 });

describe('unmounted disks', { skip: process.getuid?.() === 0 ? false : 'needs root to mount a tmpfs' }, () => {
  test('a tmpfs at the watch root unmounted over a stray file: nothing deleted, the hold shown; the remount syncs', async () => {
    const s = await scenario('rootmount');
    await writeFile(join(s.src, 'stray.txt'), 'left in the mount point');
    // An old copy of a live file under the mount point (a site migrated onto the disk): it must not overwrite the mirror.
    await writeFiles(join(s.src, 'site'), 1);
    await writeFile(join(s.src, 'site', 'f0.txt'), 'stale copy under the mount point');
    await mountTmpfs(s.src);
    await writeFiles(join(s.src, 'site'), 40);
    const snapshot = join(s.dir, 'snapshot');
    assert.equal((await runProcess('cp', ['-a', `${s.src}/.`, snapshot])).code, 0);
    const proc = await s.start(['-r']);
    await identical(s.src, s.dest);

    await unmount(s.src);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('holding deletions'), 'the hold to be logged', 30_000);
    await sleep(8000);
    await nothingDeleted(snapshot, s.dest);
    assert.equal(await readFile(join(s.dest, 'site', 'f0.txt'), 'utf8'), 'f 0', 'a stale file under the mount point reached the mirror');
    const st = await status(s.port);
    assert.equal(st.remotes[0]?.holdingDeletions, true);
    assert.match(String(st.remotes[0]?.holdReason), /another device|mount point/);

    await mountTmpfs(s.src);
    await writeFiles(join(s.src, 'site'), 40);
    await writeFile(join(s.src, 'after-remount.txt'), 'new');
    await identical(s.src, s.dest);
  });

  test('a tmpfs inside the tree unmounted over a stray file: nothing below it deleted, the rest syncs; the remount syncs', async () => {
    const s = await scenario('innermount');
    await writeFiles(join(s.src, 'site'), 10, 'page');
    const uploads = join(s.src, 'uploads');
    await mkdir(uploads);
    await writeFile(join(uploads, 'stray.txt'), 'left in the mount point');
    // An old copy of a live file under the mount point: it must not overwrite the mirror's.
    await writeFiles(join(uploads, 'img'), 1);
    await writeFile(join(uploads, 'img', 'f0.txt'), 'stale copy under the mount point');
    await mountTmpfs(uploads);
    await writeFiles(join(uploads, 'img'), 30);
    const snapshot = join(s.dir, 'snapshot');
    assert.equal((await runProcess('cp', ['-a', `${s.src}/.`, snapshot])).code, 0);
    const proc = await s.start(['-r']);
    await identical(s.src, s.dest);

    await unmount(uploads);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('holding deletions'), 'the hold to be logged', 30_000);
    await writeFile(join(s.src, 'site', 'during.txt'), 'updates go on');
    await sleep(8000);
    await nothingDeleted(snapshot, s.dest);
    assert.equal(
      await readFile(join(s.dest, 'uploads', 'img', 'f0.txt'), 'utf8'),
      'f 0',
      'a stale file under the mount point reached the mirror',
    );
    await waitFor(async () => (await compareTrees(join(s.src, 'site'), join(s.dest, 'site'), { ignoreRootAttrs: true })).length === 0, {
      what: 'the update outside the unmounted disk',
      timeoutMs: 20_000,
    });
    assert.equal((await status(s.port)).remotes[0]?.holdingDeletions, true);

    await mountTmpfs(uploads);
    await writeFiles(join(uploads, 'img'), 31);
    await identical(s.src, s.dest);
    const wrong = proc.records().filter((r) => String(r.msg).includes('was mounted inside the tree'));
    assert.deepEqual(wrong, [], 'a known mount point mounted again is no new mount');
  });

  test('more deletions than <tuning maxDelete> in one run: a hold in the log and /status until SIGUSR1', async () => {
    // A local mirror: against this rsync daemon the delete run of a removed directory went whole, cap or not.
    const s = await scenario('maxdelete', { maxDelete: 3 }, true);
    await writeFiles(join(s.src, 'old'), 10);
    await writeFile(join(s.src, 'keep.txt'), 'kept');
    const proc = await s.start(['-r']);
    await identical(s.src, s.dest);
    await runProcess('rm', ['-r', join(s.src, 'old')]);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('holding deletions'), 'the hold to be logged');
    const st = await status(s.port);
    assert.equal(st.remotes[0]?.holdingDeletions, true);
    assert.match(String(st.remotes[0]?.holdReason), /maxDelete=3/);
    const left = async () => (await compareTrees(s.src, s.dest, { ignoreRootAttrs: true })).filter((d) => d.endsWith('only in b'));
    const before = await left();
    assert.ok(before.length > 0, 'rsync deleted everything despite --max-delete');
    // Held: no retry on its own deletes more.
    await sleep(6000);
    assert.deepEqual(await left(), before);
    process.kill(proc.proc.child.pid as number, 'SIGUSR1');
    await identical(s.src, s.dest);
    assert.equal((await status(s.port)).remotes[0]?.holdingDeletions, false);
  });

  test('an empty watch root at start (a disk that did not mount at boot) deletes nothing, even with -r', async () => {
    const s = await scenario('emptystart', {}, true);
    await writeFiles(join(s.dest, 'site'), 5);
    const proc = await s.start(['-r']);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('holding deletions'), 'the hold to be logged');
    await sleep(6000);
    assert.equal((await readdir(join(s.dest, 'site'))).length, 5, 'the mirror lost files to an empty root');
    // Content arrives (the disk is there after all): updates go at once, the held deletions once the root has content,
    // as a sweep that sends nothing (no full transfer of a tree that the updates are sending already).
    await writeFile(join(s.src, 'index.html'), 'home');
    await identical(s.src, s.dest);
    await proc.waitForLog((r) => r.sweep === true, 'the held deletions to go as a sweep');
    assert.deepEqual(
      proc.records().filter((r) => r.full === true),
      [],
      'no full sync ran',
    );
  });

  test('a restart while a disk inside the tree is unmounted keeps holding its deletions', async () => {
    const s = await scenario('restartmount');
    await writeFiles(join(s.src, 'site'), 3, 'page');
    const uploads = join(s.src, 'uploads');
    await mkdir(uploads);
    await mountTmpfs(uploads);
    await writeFiles(join(uploads, 'img'), 20);
    const snapshot = join(s.dir, 'snapshot');
    assert.equal((await runProcess('cp', ['-a', `${s.src}/.`, snapshot])).code, 0);
    let proc = await s.start(['-r']);
    await identical(s.src, s.dest);
    await unmount(uploads);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('holding deletions'), 'the hold to be logged', 30_000);
    assert.equal(await proc.stop(), 0);
    // The new run never saw uploads/ mounted; the guard remembers that it was a mount point.
    proc = await s.start(['-r']);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('holding deletions'), 'the hold after the restart', 30_000);
    await sleep(6000);
    await nothingDeleted(snapshot, s.dest);
    await mountTmpfs(uploads);
    await writeFiles(join(uploads, 'img'), 21);
    await identical(s.src, s.dest);
  });

  test('a directory that holds an unmounted disk and loses a file in a burst: its delete run leaves the disk alone', async () => {
    const s = await scenario('parentmount');
    const uploads = join(s.src, 'a', 'uploads');
    await mkdir(uploads, { recursive: true });
    await writeFile(join(s.src, 'a', 'x.txt'), 'to be deleted');
    await mountTmpfs(uploads);
    await writeFiles(join(uploads, 'img'), 20);
    const proc = await s.start(['-r']);
    await identical(s.src, s.dest);
    await unmount(uploads);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('holding deletions'), 'the hold to be logged', 30_000);
    // More changes in a/ than maxChildrenPerDir: the batch sends a/ whole, with its deletions.
    await writeFiles(join(s.src, 'a'), 150, 'new');
    await rm(join(s.src, 'a', 'x.txt'));
    await waitFor(async () => !(await exists(join(s.dest, 'a', 'x.txt'))) && (await exists(join(s.dest, 'a', 'new149.txt'))), {
      what: 'the burst in a/ and its deletion on the mirror',
      timeoutMs: 30_000,
    });
    assert.deepEqual((await readdir(join(s.dest, 'a', 'uploads', 'img'))).length, 20, 'the unmounted disk was deleted from the mirror');
  });

  test('a disk mounted inside the tree after the start: its files are watched and synced; unmounted, nothing below it deleted', async () => {
    const s = await scenario('latemount');
    await writeFiles(join(s.src, 'site'), 3, 'page');
    const uploads = join(s.src, 'uploads');
    await mkdir(uploads);
    await writeFile(join(uploads, 'stray.txt'), 'left in the mount point');
    const proc = await s.start(['-r']);
    await identical(s.src, s.dest);
    // A disk that came up after the daemon (a network mount at boot): inotify tells the watch on uploads/ nothing.
    await mountTmpfs(uploads);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.includes('was mounted inside the tree'), 'the new mount point', 30_000);
    await writeFiles(join(uploads, 'img'), 20);
    await identical(s.src, s.dest);
    const snapshot = join(s.dir, 'snapshot');
    assert.equal((await runProcess('cp', ['-a', `${s.src}/.`, snapshot])).code, 0);
    await unmount(uploads);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('holding deletions'), 'the hold to be logged', 30_000);
    await sleep(6000);
    await nothingDeleted(snapshot, s.dest);
  });
});
