/**
 * The daemon's state with real parts: the retry queue on a real full tmpfs while a real rsync daemon is down, two
 * daemons from two copies of sersync2's shipped config (same failLog, same <host> port), state paths in the real
 * /tmp that another user made first or turned into a symbolic link, the pid file, the default state directory of a
 * user that is not root, and what an uncaught error does.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { runProcess, spawnBackground } from '../helpers/processes.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { generateTree } from '../helpers/trees.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { BIN, runSersync, type SersyncProcess, startSersync, writeConf } from './support/sersync.ts';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const CMP = { absSymlinksStripped: true, ignoreRootAttrs: true };
const SHIPPED = join(import.meta.dirname, '..', 'fixtures', 'config', 'shipped-confxml.xml');

let rsyncd: RsyncDaemon;
const running: SersyncProcess[] = [];
const mounts: string[] = [];
/** Names made directly in /tmp, outside makeTempDir's directories. */
const inTmp: string[] = [];

before(async () => {
  rsyncd = await startRsyncDaemon({ modules: ['full', 'site1', 'site2'], user: 'rsync_backup', password: 'pw for state' });
});

after(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  for (const m of mounts) await runProcess('umount', ['-l', m]);
  for (const p of inTmp) await rm(p, { recursive: true, force: true });
  await rsyncd?.stop();
  await removeTempDirs();
});

const tmpName = (what: string) => {
  const p = join(tmpdir(), `sersync-ts-it-${what}-${process.pid}-${inTmp.length}`);
  inTmp.push(p);
  return p;
};

/** SIGTERM to the daemon alone (as systemd's KillMode=mixed does), so a running rsync may finish within the grace. */
async function stopCleanly(proc: SersyncProcess): Promise<void> {
  process.kill(proc.proc.child.pid as number, 'SIGTERM');
  const status = await Promise.race([proc.proc.exited, sleep(30_000).then(() => null)]);
  if (status === null) await proc.stop('SIGKILL');
  assert.equal(status?.code, 0, `exit ${status?.code} after SIGTERM:\n${proc.proc.output().slice(-3000)}`);
}

const failuresOf = (proc: SersyncProcess, id: string) =>
  proc.records().filter((r) => r.remote === id && typeof r.verdict === 'string').length;

describe('state', { concurrency: 1 }, () => {
  test('the retry queue on a full disk while the remote is down: the daemon stays up, and the trees end identical', async (t) => {
    if (!isRoot) return t.skip('needs root to mount a tmpfs');
    const dir = await makeTempDir('state-full');
    const src = join(dir, 'src');
    const stateDir = join(dir, 'state');
    await Promise.all([mkdir(src), mkdir(stateDir)]);
    await runProcess('mount', ['-t', 'tmpfs', '-o', 'size=128k,mode=0700', 'tmpfs', stateDir]);
    mounts.push(stateDir);
    await generateTree(join(src, 'site'), { dirs: 3, filesPerDir: 5 });
    await writeFile(join(src, 'old.txt'), 'deleted while the disk is full');
    const port = await freePort();
    const conf = await writeConf(dir, {
      watch: src,
      remotes: [{ ip: '127.0.0.1', name: 'full' }],
      auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
      port: rsyncd.port,
      failLog: join(dir, 'rsync_fail_log.sh'),
      tuning: { stateDir },
      host: { ip: '127.0.0.1', port },
    });
    const id = '127.0.0.1::full';
    const dest = rsyncd.modules.full as string;
    const proc = await startSersync(['-r', '-o', conf]);
    running.push(proc);
    await waitForIdenticalTrees(src, dest, { ...CMP, timeoutMs: 30_000 });

    // The state filesystem fills up, then the remote goes down: every failed batch must go to the queue file.
    const fill = await runProcess('dd', ['if=/dev/zero', `of=${join(stateDir, 'filler')}`, 'bs=4k']);
    assert.match(fill.stderr, /No space left/);
    const fullAt = Date.now();
    await rsyncd.stop();
    try {
      await writeFile(join(src, 'during.txt'), 'written while the disk is full and the remote down');
      await mkdir(join(src, 'new-dir'));
      await writeFile(join(src, 'new-dir', 'x.txt'), 'x');
      await rm(join(src, 'old.txt'));
      await proc.waitForLog((r) => String(r.msg).startsWith('cannot write the retry queue'), 'the write error', 30_000);
      // Several failed attempts (each one a write of the queue) with the daemon still up.
      await proc.waitForLog(() => failuresOf(proc, id) >= 4, 'four failed attempts', 60_000);
      assert.equal(proc.proc.running(), true, `the daemon died on a full disk:\n${proc.proc.output().slice(-3000)}`);
      const errors = proc.records().filter((r) => String(r.msg).startsWith('cannot write the retry queue'));
      assert.equal(errors.length, 1, 'one error for the episode, not one per write');
      const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { retryQueue: { writeError: string | null } };
      assert.match(status.retryQueue.writeError ?? '', /ENOSPC|no space/i);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /^sersync_retry_queue_write_failing 1$/m);
    } finally {
      await rm(join(stateDir, 'filler'), { force: true });
      await rsyncd.restart();
    }
    const backAt = Date.now();
    await waitForIdenticalTrees(src, dest, { ...CMP, timeoutMs: 90_000 });
    t.diagnostic(
      `disk full and remote down for ${((backAt - fullAt) / 1000).toFixed(1)} s, ${failuresOf(proc, id)} failed attempts; ` +
        `identical ${((Date.now() - backAt) / 1000).toFixed(1)} s after space and remote were back`,
    );
    await proc.waitForLog((r) => r.msg === 'the retry queue is written again', 'the queue written again', 30_000);
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { retryQueue: { writeError: string | null } };
    assert.equal(status.retryQueue.writeError, null);
    await stopCleanly(proc);
    const files = readdirSync(stateDir).filter((f) => f.endsWith('.queue.json'));
    assert.equal(files.length, 1, String(readdirSync(stateDir)));
    const queue = JSON.parse(await readFile(join(stateDir, files[0] as string), 'utf8')) as { running: boolean; remotes: object };
    assert.deepEqual(queue.remotes, {}, proc.proc.output().slice(-6000));
    assert.equal(queue.running, false);
  });

  test('a start on a full state disk runs, degraded, and syncs', async (t) => {
    if (!isRoot) return t.skip('needs root to mount a tmpfs');
    const dir = await makeTempDir('state-full-start');
    const src = join(dir, 'src');
    const stateDir = join(dir, 'state');
    await Promise.all([mkdir(src), mkdir(stateDir)]);
    await runProcess('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', stateDir]);
    mounts.push(stateDir);
    await runProcess('dd', ['if=/dev/zero', `of=${join(stateDir, 'filler')}`, 'bs=4k']);
    const conf = await writeConf(dir, {
      watch: src,
      remotes: [{ ip: '127.0.0.1', name: 'full' }],
      auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
      port: rsyncd.port,
      tuning: { stateDir },
      host: { ip: '127.0.0.1', port: await freePort() },
    });
    const proc = await startSersync(['-o', conf]);
    running.push(proc);
    await proc.waitForLog((r) => String(r.msg).startsWith('cannot write the retry queue'), 'the write error');
    await writeFile(join(src, 'fresh.txt'), 'synced although the state disk is full');
    await waitFor(async () => existsSync(join(rsyncd.modules.full as string, 'fresh.txt')), { what: 'fresh.txt on the remote' });
    assert.equal(proc.proc.running(), true);
    await stopCleanly(proc);
    assert.ok(
      readdirSync(stateDir).some((f) => f.endsWith('.lock')),
      'the lock stays: the queue file missed this run, so the next start does a full sync',
    );
  });

  test('--check fails with 73 where the start would: a state directory on a read-only mount', async (t) => {
    if (!isRoot) return t.skip('needs root to mount a tmpfs');
    const dir = await makeTempDir('state-ro-check');
    const src = join(dir, 'src');
    const stateDir = join(dir, 'state');
    await Promise.all([mkdir(src), mkdir(stateDir), mkdir(join(dir, 'mirror'))]);
    assert.equal((await runProcess('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', stateDir])).code, 0);
    mounts.push(stateDir);
    assert.equal((await runProcess('mount', ['-o', 'remount,ro', stateDir])).code, 0);
    const conf = await writeConf(dir, { watch: src, remotes: [{ name: join(dir, 'mirror') }], tuning: { stateDir } });
    const check = await runSersync(['--check', '-o', conf]);
    assert.equal(check.code, 73, check.stdout + check.stderr);
    assert.match(check.stderr, /cannot be written \(EROFS\)/);
    const start = await runSersync(['-o', conf], { timeoutMs: 20_000 });
    assert.equal(start.code, 73, 'the start fails the same way');
  });

  test('two daemons from two copies of the shipped config (same failLog, same port) both sync; the same config twice is refused', async () => {
    const shipped = await readFile(SHIPPED, 'utf8');
    const sites = await Promise.all(
      ['site1', 'site2'].map(async (module) => {
        const dir = await makeTempDir(`state-${module}`);
        const src = join(dir, 'www');
        await mkdir(src);
        const xml = shipped
          .replace('<localpath watch="/opt/tongbu">', `<localpath watch="${src}">`)
          .replace('<remote ip="127.0.0.1" name="tongbu1"/>', `<remote ip="127.0.0.1" name="${module}"/>`)
          .replace(
            '<auth start="false" users="root" passwordfile="/etc/rsync.pas"/>',
            `<auth start="true" users="${rsyncd.user}" passwordfile="${rsyncd.passwordFile}"/>`,
          )
          .replace('<userDefinedPort start="false" port="874"/>', `<userDefinedPort start="true" port="${rsyncd.port}"/>`);
        assert.ok(xml.includes('<failLog path="/tmp/rsync_fail_log.sh"') && xml.includes('port="8008"'), 'the shipped failLog and port');
        assert.ok(xml.includes(src) && xml.includes(`name="${module}"`) && xml.includes(`port="${rsyncd.port}"`));
        const conf = join(dir, 'confxml.xml');
        await writeFile(conf, xml);
        return { module, dir, src, conf, dest: rsyncd.modules[module] as string };
      }),
    );
    const procs = [];
    for (const s of sites) {
      const proc = await startSersync(['-r', '-o', s.conf]);
      running.push(proc);
      procs.push(proc);
    }
    for (const s of sites) {
      await generateTree(join(s.src, 'pages'), { dirs: 2, filesPerDir: 4 });
      await writeFile(join(s.src, `${s.module}.html`), s.module);
    }
    for (const s of sites) await waitForIdenticalTrees(s.src, s.dest, { ...CMP, timeoutMs: 30_000 });
    for (const p of procs) assert.equal(p.proc.running(), true);

    // The same config again, and a copy of it under another name: one instance, so both are refused with 75.
    const site1 = sites[0] as (typeof sites)[number];
    const copy = join(site1.dir, 'copy.xml');
    await writeFile(copy, await readFile(site1.conf));
    for (const conf of [site1.conf, copy]) {
      const again = await runSersync(['-o', conf]);
      assert.equal(again.code, 75, `${again.stdout}\n${again.stderr}`);
      assert.match(again.stderr, /another sersync-ts \(pid \d+\) holds the lock of this instance/);
    }
    await writeFile(join(site1.src, 'after.html'), 'the running daemon was not disturbed');
    await waitForIdenticalTrees(site1.src, site1.dest, { ...CMP, timeoutMs: 30_000 });
    for (const p of procs) await stopCleanly(p);
  });

  test('a state directory in /tmp that another user made first, or that is a symbolic link, is refused with 73; nothing is written through the link', async (t) => {
    if (!isRoot) return t.skip('needs root to create a directory owned by another user');
    const dir = await makeTempDir('state-refused');
    const src = join(dir, 'src');
    await Promise.all([mkdir(src), mkdir(join(dir, 'mirror'))]);
    const target = join(dir, 'target');
    await mkdir(target, { mode: 0o700 });
    const link = tmpName('link');
    await symlink(target, link);
    const foreign = tmpName('foreign');
    await mkdir(foreign, { mode: 0o700 });
    await chown(foreign, NOBODY, NOBODY);
    for (const [stateDir, why] of [
      [link, /symbolic link in the world-writable \/tmp/],
      [join(link, 'sub'), /symbolic link in the world-writable \/tmp/],
      [foreign, /belongs to uid 65534/],
    ] as const) {
      const conf = await writeConf(dir, { watch: src, remotes: [{ name: join(dir, 'mirror') }], tuning: { stateDir } });
      const r = await runSersync(['-o', conf]);
      assert.equal(r.code, 73, `${stateDir}: ${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /<tuning stateDir=/, 'says what to do');
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    assert.deepEqual(await readdir(target), [], 'nothing was written through the link');
    assert.deepEqual(await readdir(foreign), []);
  });

  test('the pid file: never through a symbolic link, refused while another daemon holds it, removed at the stop', async () => {
    const dir = await makeTempDir('state-pid');
    const src = join(dir, 'src');
    await Promise.all([mkdir(src), mkdir(join(dir, 'mirror')), mkdir(join(dir, 'mirror2'))]);
    const conf = await writeConf(dir, {
      watch: src,
      remotes: [{ name: join(dir, 'mirror') }],
      host: { ip: '127.0.0.1', port: await freePort() },
    });
    const victim = join(dir, 'victim');
    await writeFile(victim, 'precious\n');
    const link = tmpName('pid-link');
    await symlink(victim, link);
    const r = await runSersync(['-o', conf, '--pid-file', link]);
    assert.equal(r.code, 73, r.stderr);
    assert.match(r.stderr, /--pid-file .*symbolic link/);
    assert.equal(await readFile(victim, 'utf8'), 'precious\n');

    const pidFile = join(dir, 'sersync.pid');
    await writeFile(pidFile, '999999\n');
    const proc = await startSersync(['-o', conf, '--pid-file', pidFile]);
    running.push(proc);
    assert.equal((await readFile(pidFile, 'utf8')).trim(), String(proc.proc.child.pid), 'a stale pid file is replaced');
    const conf2 = await writeConf(await makeTempDir('state-pid2'), { watch: src, remotes: [{ name: join(dir, 'mirror2') }] });
    const second = await runSersync(['-o', conf2, '--pid-file', pidFile]);
    assert.equal(second.code, 75, second.stderr);
    assert.match(second.stderr, /holds --pid-file/);
    await stopCleanly(proc);
    assert.equal(existsSync(pidFile), false);
  });

  test('not root: the state goes to ~/.local/state/sersync-ts, and a /tmp state path made by root is refused', async (t) => {
    if (!isRoot) return t.skip('needs root to switch to an unprivileged user with setpriv');
    const dir = await makeTempDir('state-user');
    const home = join(dir, 'home');
    const src = join(dir, 'src');
    const mirror = join(dir, 'mirror');
    await Promise.all([mkdir(home), mkdir(src), mkdir(mirror)]);
    await writeFile(join(src, 'a.txt'), 'a');
    const conf = await writeConf(dir, { watch: src, remotes: [{ name: mirror }], host: { ip: '127.0.0.1', port: await freePort() } });
    for (const p of [dir, home, src, mirror, conf, join(src, 'a.txt')]) await chown(p, NOBODY, NOBODY);
    const env = { ...process.env, HOME: home, STATE_DIRECTORY: undefined, XDG_STATE_HOME: undefined };
    const asNobody = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, BIN];

    const proc = spawnBackground('setpriv', [...asNobody, '-r', '-o', conf], { env });
    try {
      await waitForIdenticalTrees(src, mirror, { ...CMP, timeoutMs: 30_000 });
      const stateDir = join(home, '.local', 'state', 'sersync-ts');
      await waitFor(async () => readdirSync(stateDir).some((f) => f.endsWith('.queue.json')), { what: `a queue file in ${stateDir}` });
      assert.equal((await runProcess('stat', ['-c', '%a %u', stateDir])).stdout.trim(), `700 ${NOBODY}`);
    } finally {
      const status = await proc.stop({ signal: 'SIGTERM', timeoutMs: 20_000 });
      assert.equal(status.code, 0, proc.output().slice(-3000));
    }

    const rootMade = tmpName('root-made');
    await mkdir(rootMade, { mode: 0o700 });
    await chmod(dir, 0o755);
    const refusedConf = await writeConf(dir, { watch: src, remotes: [{ name: mirror }], tuning: { stateDir: rootMade } });
    await chown(refusedConf, NOBODY, NOBODY);
    const r = await runProcess('setpriv', [...asNobody, '-o', refusedConf], { env });
    assert.equal(r.code, 73, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /belongs to uid 0/);
  });

  test('an uncaught error is logged with its stack and ends the process with 70 after saving', async () => {
    const dir = await makeTempDir('state-fatal');
    const saved = join(dir, 'saved');
    const main = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
    const script = [
      `import { writeFileSync } from 'node:fs';`,
      `import pino from 'pino';`,
      `const { exitOnFatal } = await import(${JSON.stringify(main)});`,
      `exitOnFatal(pino(), () => writeFileSync(${JSON.stringify(saved)}, 'saved'));`,
      'setTimeout(() => Promise.reject(new Error("lost in a promise chain")), 10);',
      'setTimeout(() => {}, 5000);',
    ].join('\n');
    const r = await runProcess(process.execPath, ['--input-type=module', '-e', script], { cwd: join(import.meta.dirname, '..', '..') });
    assert.equal(r.code, 70, `${r.stdout}\n${r.stderr}`);
    const fatal = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; origin?: string; err?: { stack?: string } })
      .find((l) => l.level === 60);
    assert.ok(fatal, r.stdout);
    assert.equal(fatal.origin, 'unhandledRejection');
    assert.match(fatal.err?.stack ?? '', /lost in a promise chain\n\s+at /);
    assert.equal(await readFile(saved, 'utf8'), 'saved');
  });
});
