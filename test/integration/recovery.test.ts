/**
 * Recovery with real parts: the daemon as a process (bin/), real rsync, a real rsync daemon with auth and a real sshd
 * on 127.0.0.1. Remotes go away and come back, the daemon is killed and restarted, a password is wrong and then
 * fixed, an ssh peer hangs, the watch root is emptied or replaced. Every scenario ends by comparing the trees entry by
 * entry: nothing may be lost, and nothing may be deleted that should not be.
 *
 * The wrong-password scenario waits out the longest retry delay (timeToExecute="1": about a minute), so it runs
 * beside the others, with its own rsync daemon, and so does the ssh scenario with its own sshd; the scenarios on the
 * shared rsync daemon (which some of them stop and restart) run one after the other.
 */
import assert from 'node:assert/strict';
import { access, chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { runProcess } from '../helpers/processes.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { compareTrees, generateTree, writeOddFiles } from '../helpers/trees.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { queueFileFor } from '../../src/recovery/queue-file.ts';
import { type ConfSpec, type SersyncProcess, startSersync, testStateDir, writeConf } from './support/sersync.ts';

const PASSWORD = 's3cret pass';
const MODULES = ['outage', 'crash-r', 'crash-norm', 'term', 'slow', 'root', 'usr1', 'odd'];
const UID = process.getuid?.() ?? 0;
/** The two names that a shell would run; any PWNED file anywhere means one did. */
const SHELL_NAMES = ['x`touch PWNED`y', '$(touch PWNED)'];

let rsyncd: RsyncDaemon;
const running: SersyncProcess[] = [];

before(async () => {
  rsyncd = await startRsyncDaemon({ modules: MODULES, user: 'rsync_backup', password: PASSWORD });
});

after(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
  await rsyncd?.stop();
  await removeTempDirs();
});

const identical = (src: string, dest: string, timeoutMs = 30_000) =>
  waitForIdenticalTrees(src, dest, { absSymlinksStripped: true, ignoreRootAttrs: true, timeoutMs });

const differences = (src: string, dest: string) => compareTrees(src, dest, { absSymlinksStripped: true, ignoreRootAttrs: true });

interface StoredBatch {
  full: boolean;
  fullReason: string;
  entries: { path: string; tree: boolean; deletes: boolean }[];
  attempts: number;
  lastExitCode: number | null;
  lastError: string;
  nextAttemptAt: string | null;
}

interface QueueFile {
  format: string;
  version: number;
  running: boolean;
  pid: number;
  remotes: Record<string, StoredBatch>;
}

async function readQueue(file: string): Promise<QueueFile> {
  const data = JSON.parse(await readFile(file, 'utf8')) as QueueFile;
  assert.equal(data.format, 'sersync-ts retry queue', `${file} is not a retry queue`);
  assert.equal(data.version, 1);
  return data;
}

/** The queue holds what the watcher reported: 0600, in a directory that nobody else can write. */
async function assertPrivate(queueFile: string): Promise<void> {
  const st = await stat(queueFile);
  assert.equal((st.mode & 0o777).toString(8), '600', `mode of ${queueFile}`);
  assert.equal(st.uid, UID);
  const dir = await stat(dirname(queueFile));
  assert.equal(dir.mode & 0o022, 0, `${dirname(queueFile)} is group- or world-writable (mode ${(dir.mode & 0o777).toString(8)})`);
  assert.equal(dir.uid, UID);
}

/** Queue paths are byte strings (latin1 per byte); `wanted` is UTF-8 text. Covered: the path itself or a parent. */
function queued(batch: StoredBatch | undefined, wanted: string): boolean {
  if (!batch) return false;
  if (batch.full) return true;
  const bytes = Buffer.from(wanted, 'utf8').toString('latin1');
  return batch.entries.some((e) => e.path === bytes || e.path === '' || bytes.startsWith(`${e.path}/`));
}

/**
 * SIGTERM to the daemon alone, as systemd does with the shipped unit (KillMode=mixed): it sends or persists what is
 * pending, lets a running rsync finish within its grace period, and exits 0.
 */
async function stopCleanly(proc: SersyncProcess): Promise<void> {
  const pid = proc.proc.child.pid as number;
  if (proc.proc.running()) process.kill(pid, 'SIGTERM');
  const status = await Promise.race([proc.proc.exited, sleep(30_000).then(() => null)]);
  if (status === null) await proc.stop('SIGKILL');
  assert.ok(status, `still running 30 s after SIGTERM; output:\n${proc.proc.output().slice(-4000)}`);
  assert.equal(status.code, 0, `exit ${status.code}, signal ${status.signal} after SIGTERM; output:\n${proc.proc.output().slice(-4000)}`);
}

const isBatchLog = (id: string) => (r: Record<string, unknown>) => r.remote === id && typeof r.rsyncRuns === 'number';
const isFailure = (id: string) => (r: Record<string, unknown>) => r.remote === id && typeof r.verdict === 'string';
/**
 * The debug line for an event on `path` (or on a directory above it: a watcher may report a new directory as one
 * event for its whole subtree).
 */
const watchEvent = (path: string, op?: string) => (r: Record<string, unknown>) =>
  r.msg === 'watch event' &&
  typeof r.path === 'string' &&
  (r.path === path || path.startsWith(`${r.path}/`)) &&
  (op === undefined || r.op === op);
const failures = (proc: SersyncProcess, id: string) => proc.records().filter(isFailure(id));

/** Regular files below `dir` (0 when it does not exist). */
async function countFiles(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).length;
}

/** Resolves once `dir` holds at least one entry: a transfer has begun to land there. */
function firstArrival(dir: string, what: string, timeoutMs = 60_000): Promise<true> {
  return waitFor(async () => (await readdir(dir)).length > 0, { what, timeoutMs, intervalMs: 20 });
}

/**
 * A fresh watched directory for one module of the shared rsync daemon, with its config written. `start` runs a
 * sersync-ts on it (again and again, for restarts); the queue file lives in the tests' state directory (or in
 * `<tuning stateDir>`), named after the failLog and the instance.
 */
async function daemonScenario(
  module: string,
  opts: { seed?: (src: string) => Promise<void>; tuning?: ConfSpec['tuning']; failLogDir?: string } = {},
) {
  const dir = await makeTempDir(`recovery-${module}-`);
  const src = join(dir, 'src');
  await mkdir(src);
  await opts.seed?.(src);
  const failLogDir = opts.failLogDir ?? join(dir, 'state');
  const failLog = join(failLogDir, 'rsync_fail_log.sh');
  const conf = await writeConf(dir, {
    watch: src,
    remotes: [{ ip: '127.0.0.1', name: module }],
    auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
    port: rsyncd.port,
    failLog,
    tuning: opts.tuning,
  });
  const stateDir = opts.tuning?.stateDir;
  return {
    dir,
    src,
    dest: rsyncd.modules[module] as string,
    id: `127.0.0.1::${module}`,
    queueFile: queueFileFor(failLog, typeof stateDir === 'string' ? stateDir : testStateDir(), src, [`127.0.0.1::${module}`]),
    async start(args: string[] = [], env?: NodeJS.ProcessEnv): Promise<SersyncProcess> {
      const proc = await startSersync([...args, '-o', conf], { env });
      running.push(proc);
      return proc;
    },
  };
}

describe('recovery', { concurrency: true }, () => {
  describe('a wrong password', { concurrency: 1 }, () => {
    let pwDaemon: RsyncDaemon;
    before(async () => {
      pwDaemon = await startRsyncDaemon({ modules: ['pw'], user: 'rsync_backup', password: 'the right one' });
    });
    after(() => pwDaemon?.stop());

    test('is reported loudly without stopping the other remote, and heals once the password file is fixed', async () => {
      const dir = await makeTempDir('recovery-pw-');
      const src = join(dir, 'src');
      const mirror = join(dir, 'mirror');
      const passwordFile = join(dir, 'rsync.password');
      await Promise.all([mkdir(src), mkdir(mirror), writeFile(passwordFile, 'a wrong one\n', { mode: 0o600 })]);
      // sersync2's format gives every daemon remote the same auth and port, so the healthy remote is a local mirror.
      const conf = await writeConf(dir, {
        watch: src,
        remotes: [{ ip: '127.0.0.1', name: 'pw' }, { name: mirror }],
        auth: { users: 'rsync_backup', passwordFile },
        port: pwDaemon.port,
        failLog: join(dir, 'state', 'rsync_fail_log.sh'),
      });
      const proc = await startSersync(['-o', conf]);
      running.push(proc);
      const bad = '127.0.0.1::pw';
      const dest = pwDaemon.modules.pw as string;
      const queueFile = queueFileFor(join(dir, 'state', 'rsync_fail_log.sh'), testStateDir(), src, [bad, mirror]);

      await generateTree(join(src, 'site'), { dirs: 5, filesPerDir: 10 });
      const failure = await proc.waitForLog(isFailure(bad), 'the failed login', 30_000);
      assert.equal(failure.exitCode, 5, JSON.stringify(failure));
      assert.equal(failure.verdict, 'config');
      await proc.waitForLog((r) => r.level === 50 && String(r.msg).includes(`remote ${bad} is degraded`), 'the "degraded" error');
      await identical(src, mirror);
      // More work while the bad remote waits out its backoff: the good one keeps up.
      await writeFile(join(src, 'while-degraded.txt'), 'the mirror must not wait for the bad remote');
      await identical(src, mirror);
      assert.equal(proc.proc.running(), true, 'the daemon must survive an authentication failure');
      const queue = await readQueue(queueFile);
      assert.equal(queue.remotes[bad]?.lastExitCode, 5, JSON.stringify(queue.remotes[bad]));
      assert.equal(queue.remotes[mirror], undefined, 'the healthy remote has nothing pending');
      assert.deepEqual(await readdir(dest), [], 'nothing can have reached the remote with the wrong password');

      // The operator fixes the file; the daemon is neither restarted nor signalled. A config failure waits the cap
      // (timeToExecute="1": 60 s, +-25 % jitter) before the next attempt.
      await writeFile(passwordFile, 'the right one\n');
      await identical(src, dest, 100_000);
      await waitFor(async () => Object.keys((await readQueue(queueFile)).remotes).length === 0, {
        what: 'the retry queue to empty after the recovery',
      });
      assert.equal(proc.proc.running(), true);
      await stopCleanly(proc);
    });
  });

  describe('outages, crashes and shutdowns', { concurrency: 1 }, () => {
    test('the rsync daemon stops in the middle of a 5,000-file burst and is back 10 s later', async (t) => {
      const s = await daemonScenario('outage', { seed: (src) => writeFile(join(src, 'old.txt'), 'deleted during the outage') });
      const proc = await s.start(['-r']);
      await identical(s.src, s.dest);
      const staging = await makeTempDir('staging-outage');
      const files = await generateTree(join(staging, 'site'), { dirs: 99, filesPerDir: 50, depth: 4 });
      assert.equal(files, 5000);
      const cp = runProcess('cp', ['-a', join(staging, 'site'), s.src]);
      // Down while the burst is still arriving and the first transfer is landing.
      await firstArrival(join(s.dest, 'site'), 'the first files of the burst on the remote').catch(() => undefined);
      await rsyncd.stop();
      const down = Date.now();
      const onRemote = await countFiles(join(s.dest, 'site'));
      const copied = await cp;
      assert.equal(copied.code, 0, copied.stderr);
      // Changes that can only get there after the outage: a new file, and a deletion.
      await writeFile(join(s.src, 'during-outage.txt'), 'written while the remote was down');
      await rm(join(s.src, 'old.txt'));
      // Three failures in a row (1 s and 2 s apart, +-25 %) make the remote "degraded": loudly, and still retried.
      await proc.waitForLog(
        (r) => r.level === 50 && String(r.msg).includes(`remote ${s.id} is degraded`),
        'the "degraded" error while the rsync daemon is down',
        30_000,
      );
      const waiting = await readQueue(s.queueFile);
      for (const p of ['during-outage.txt', 'old.txt'])
        assert.ok(queued(waiting.remotes[s.id], p), `${p} is not in the queue: ${JSON.stringify(waiting)}`);
      t.diagnostic(`at the outage ${onRemote} of ${files} files were on the remote; failures during it: ${failures(proc, s.id).length}`);
      await sleep(Math.max(0, 10_000 - (Date.now() - down)));
      await rsyncd.restart();
      // After 10 s down the next attempt is at most ~16 s away (backoff 1, 2, 4, 8, 16 s with jitter).
      await identical(s.src, s.dest, 120_000);
      assert.equal(proc.proc.running(), true);
      await stopCleanly(proc);
      const queue = await readQueue(s.queueFile);
      assert.deepEqual(queue.remotes, {});
      assert.equal(queue.running, false);
      await assertPrivate(s.queueFile);
    });

    for (const withR of [true, false]) {
      test(`SIGKILL in the middle of a burst, then a start ${withR ? 'with -r' : 'without -r: the crash is detected and healed'}`, async () => {
        const s = await daemonScenario(withR ? 'crash-r' : 'crash-norm', {
          seed: (src) => writeFile(join(src, 'old.txt'), 'deleted while the daemon is dead'),
        });
        let proc = await s.start(['-r']);
        await identical(s.src, s.dest);
        const staging = await makeTempDir('staging-crash');
        await generateTree(join(staging, 'site'), { dirs: 40, filesPerDir: 50, depth: 3 });
        const cp = runProcess('cp', ['-a', join(staging, 'site'), s.src]);
        await firstArrival(join(s.dest, 'site'), 'the first files of the burst on the remote').catch(() => undefined);
        const pid = proc.proc.child.pid;
        await proc.stop('SIGKILL');
        const copied = await cp;
        assert.equal(copied.code, 0, copied.stderr);
        // What happens while no daemon runs is seen by nobody: only a full sync can bring it over.
        await writeFile(join(s.src, 'while-dead.txt'), 'written while no daemon ran');
        await rm(join(s.src, 'old.txt'));
        const crashed = await readQueue(s.queueFile);
        assert.equal(crashed.running, true, 'a killed daemon cannot have marked the queue as cleanly stopped');
        assert.equal(crashed.pid, pid);

        proc = await s.start(withR ? ['-r'] : []);
        await identical(s.src, s.dest, 90_000);
        if (!withR) {
          assert.ok(
            proc.records().some((r) => isBatchLog(s.id)(r) && r.full === true),
            'without -r, only the crash detection can have run a full sync',
          );
        }
        await stopCleanly(proc);
        const clean = await readQueue(s.queueFile);
        assert.equal(clean.running, false);
        assert.deepEqual(clean.remotes, {});
        await assertPrivate(s.queueFile);
      });
    }

    test('SIGTERM sends what is still pending within the grace period', async () => {
      // A failLog in a world-writable directory, like sersync2's /tmp default: nothing goes there, the queue lives
      // in the state directory.
      const shared = join(await makeTempDir('recovery-shared-tmp'), 'tmp');
      await mkdir(shared);
      await chmod(shared, 0o1777);
      const s = await daemonScenario('term', { tuning: { quietMs: 5000, maxWaitMs: 10000 }, failLogDir: shared });
      const queueFile = s.queueFile;
      let proc = await s.start(['--log-level', 'debug']);
      await writeFile(join(s.src, 'a.txt'), 'pending at SIGTERM');
      await mkdir(join(s.src, 'sub'));
      await writeFile(join(s.src, 'sub', 'b.txt'), 'pending at SIGTERM too');
      await proc.waitForLog(watchEvent('sub/b.txt'), 'the watcher to report sub/b.txt');
      assert.deepEqual(await readdir(s.dest), [], 'quietMs=5000: nothing can have been sent yet');
      await stopCleanly(proc);
      assert.deepEqual(await differences(s.src, s.dest), []);
      assert.deepEqual((await readQueue(queueFile)).remotes, {});
      await assertPrivate(queueFile);
      assert.deepEqual(await readdir(shared), [], 'nothing is written beside the failLog in a world-writable directory');

      // Now the remote is down at SIGTERM: what cannot be sent is kept in the queue, and sent by the next start.
      proc = await s.start(['--log-level', 'debug']);
      await rsyncd.stop();
      try {
        await writeFile(join(s.src, 'c.txt'), 'kept in the queue');
        await mkdir(join(s.src, 'dir2'));
        await writeFile(join(s.src, 'dir2', 'd.txt'), 'kept in the queue too');
        await rm(join(s.src, 'a.txt'));
        await proc.waitForLog(watchEvent('dir2/d.txt'), 'the watcher to report dir2/d.txt');
        await proc.waitForLog(watchEvent('a.txt', 'unlink'), 'the watcher to report a.txt gone');
        await stopCleanly(proc);
        const queue = await readQueue(queueFile);
        assert.equal(queue.running, false);
        const batch = queue.remotes[s.id];
        assert.ok(batch, `no entry for ${s.id} in ${JSON.stringify(queue)}`);
        for (const p of ['c.txt', 'dir2/d.txt', 'a.txt']) assert.ok(queued(batch, p), `${p} is not in the queue: ${JSON.stringify(batch)}`);
        await assertPrivate(queueFile);
      } finally {
        await rsyncd.restart();
      }
      proc = await s.start();
      await identical(s.src, s.dest);
      await stopCleanly(proc);
      assert.deepEqual((await readQueue(queueFile)).remotes, {});
    });

    test('SIGTERM while an rsync runs: it may finish within the grace period, else it is stopped and kept', async () => {
      const s = await daemonScenario('slow');
      // A slow remote, made deterministic: an rsync on PATH that says when it starts and then waits
      // $SLOW_RSYNC_SECONDS before it does its work (and stops waiting on SIGTERM, as rsync would).
      const bin = await makeTempDir('slow-rsync');
      const started = join(bin, 'started');
      const real = (await runProcess('sh', ['-c', 'command -v rsync'])).stdout.trim();
      assert.ok(real.startsWith('/'), `no rsync on PATH: ${real}`);
      const script = [
        '#!/bin/sh',
        'if [ "$1" != --version ]; then',
        `  : > '${started}'`,
        "  trap 'kill $! 2>/dev/null; exit 143' TERM",
        '  sleep "$SLOW_RSYNC_SECONDS" & wait $!',
        '  trap - TERM',
        'fi',
        `exec '${real}' "$@"`,
        '',
      ].join('\n');
      await writeFile(join(bin, 'rsync'), script, { mode: 0o755 });
      const slow = (seconds: number) => ({ PATH: `${bin}:${process.env.PATH}`, SLOW_RSYNC_SECONDS: String(seconds) });

      // 3 s: well within the 10 s grace period. The running rsync finishes, nothing is left over.
      let proc = await s.start([], slow(3));
      await writeFile(join(s.src, 'in-flight.txt'), 'on its way when SIGTERM comes');
      await waitFor(() => access(started).then(() => true), { what: 'the slow rsync to start' });
      await stopCleanly(proc);
      assert.deepEqual(await differences(s.src, s.dest), [], 'the rsync running at SIGTERM did not finish');
      let queue = await readQueue(s.queueFile);
      assert.equal(queue.running, false);
      assert.deepEqual(queue.remotes, {});

      // 60 s: longer than the grace period. The rsync is stopped, its batch is kept for the next start.
      await rm(started);
      proc = await s.start([], slow(60));
      await writeFile(join(s.src, 'too-slow.txt'), 'still on its way when the grace period ends');
      await waitFor(() => access(started).then(() => true), { what: 'the slow rsync to start' });
      await stopCleanly(proc);
      assert.deepEqual(await differences(s.src, s.dest), ['"too-slow.txt": only in a']);
      queue = await readQueue(s.queueFile);
      assert.equal(queue.running, false);
      assert.ok(queued(queue.remotes[s.id], 'too-slow.txt'), `the stopped batch was not kept: ${JSON.stringify(queue)}`);

      proc = await s.start();
      await identical(s.src, s.dest);
      await stopCleanly(proc);
      assert.deepEqual((await readQueue(s.queueFile)).remotes, {});
    });

    test('a watch root replaced by an empty directory deletes nothing; its new content is mirrored', async () => {
      const s = await daemonScenario('root', {
        seed: async (src) => {
          await generateTree(join(src, 'site'), { dirs: 4, filesPerDir: 5 });
          await writeFile(join(src, 'index.html'), 'old root');
        },
      });
      const proc = await s.start(['-r']);
      await identical(s.src, s.dest);
      const old = join(s.dir, 'src.old');
      await rename(s.src, old);
      await mkdir(s.src);
      // The daemon looks for a replaced root every 2 s; give it several rounds to do something wrong.
      await sleep(8000);
      assert.deepEqual(await differences(old, s.dest), [], 'the remote lost files while the new root was empty');
      assert.equal(proc.proc.running(), true);

      await writeFile(join(s.src, 'index.html'), 'new root');
      await mkdir(join(s.src, 'fresh'));
      await writeFile(join(s.src, 'fresh', 'page.html'), 'new content');
      // With content in the new root, the mirror follows it: the old root's files go.
      await identical(s.src, s.dest);
      await writeFile(join(s.src, 'fresh', 'later.html'), 'the new root is watched');
      await identical(s.src, s.dest);
      await stopCleanly(proc);
    });

    test('an emptied watch root holds deletions until SIGUSR1', async () => {
      const s = await daemonScenario('usr1', {
        seed: (src) => generateTree(join(src, 'site'), { dirs: 3, filesPerDir: 4 }).then(() => {}),
      });
      const proc = await s.start(['-r']);
      await identical(s.src, s.dest);
      const snapshot = await makeTempDir('usr1-copy');
      assert.equal((await runProcess('cp', ['-a', `${s.src}/.`, snapshot])).code, 0);
      await rm(join(s.src, 'site'), { recursive: true });
      await proc.waitForLog((r) => String(r.msg).includes('is empty or unreadable'), 'the hold to be logged');
      await sleep(3000);
      assert.deepEqual(await differences(snapshot, s.dest), [], 'deletions went through although the root is empty');
      process.kill(proc.proc.child.pid as number, 'SIGUSR1');
      await identical(s.src, s.dest);
      assert.deepEqual(await readdir(s.dest), []);
      await stopCleanly(proc);
    });

    test('shell-hostile names go through the retry queue and a restart, and no shell ever runs them', async () => {
      const dir0 = await makeTempDir('recovery-odd-state');
      const stateDir = join(dir0, 'state-dir');
      const s = await daemonScenario('odd', { tuning: { stateDir }, seed: (src) => writeFile(join(src, 'keep.txt'), 'k') });
      let proc = await s.start(['-r']);
      await identical(s.src, s.dest);

      await rsyncd.stop();
      try {
        for (const name of SHELL_NAMES) await writeFile(join(s.src, name), name);
        await mkdir(join(s.src, 'all'));
        await writeOddFiles(join(s.src, 'all'));
        await proc.waitForLog(isFailure(s.id), 'a failed attempt while the rsync daemon is down', 30_000);
        // The failure is logged just before the queue is written (temp file, fsync, rename, fsync: slow on this disk).
        const queue = await waitFor(
          async () => {
            const q = await readQueue(s.queueFile);
            return SHELL_NAMES.every((name) => queued(q.remotes[s.id], name)) && q;
          },
          { timeoutMs: 10_000, what: 'the failed batch in the retry queue' },
        ).catch(() => readQueue(s.queueFile));
        for (const name of SHELL_NAMES)
          assert.ok(queued(queue.remotes[s.id], name), `${name} is not in the queue: ${JSON.stringify(queue)}`);
      } finally {
        await rsyncd.restart();
      }
      await identical(s.src, s.dest, 60_000);

      // Again, through SIGTERM and a restart without -r.
      await rsyncd.stop();
      try {
        await mkdir(join(s.src, 'later'));
        for (const name of SHELL_NAMES) await writeFile(join(s.src, 'later', name), `later ${name}`);
        for (const name of SHELL_NAMES) await rm(join(s.src, name));
        const seen = failures(proc, s.id).length;
        await proc.waitForLog(() => failures(proc, s.id).length > seen, 'a failed attempt after the second outage', 30_000);
        await stopCleanly(proc);
        const queue = await readQueue(s.queueFile);
        for (const name of SHELL_NAMES) {
          assert.ok(queued(queue.remotes[s.id], `later/${name}`), `later/${name} is not in the queue: ${JSON.stringify(queue)}`);
          assert.ok(queued(queue.remotes[s.id], name), `the deletion of ${name} is not in the queue: ${JSON.stringify(queue)}`);
        }
        await assertPrivate(s.queueFile);
      } finally {
        await rsyncd.restart();
      }
      proc = await s.start();
      await identical(s.src, s.dest);
      await stopCleanly(proc);
      for (const place of [process.cwd(), '/', s.src, s.dest, s.dir, stateDir, tmpdir(), rsyncd.configDir]) {
        await assert.rejects(access(join(place, 'PWNED')), `a PWNED file appeared in ${place}`);
      }
    });
  });

  describe('an ssh remote that accepts the connection and then hangs', { concurrency: 1 }, () => {
    let sshd: Sshd;
    let proxy: HangingProxy;
    before(async () => {
      sshd = await startSshd();
      proxy = await startHangingProxy(sshd.port);
    });
    after(async () => {
      await proxy?.close();
      await sshd?.stop();
    });

    test('rsync --timeout frees the lane, the batch is retried, and it lands once the peer answers', async () => {
      const dir = await makeTempDir('recovery-ssh-');
      const src = join(dir, 'src');
      const dest = join(dir, 'dest');
      await Promise.all([mkdir(src), mkdir(dest)]);
      // The test's ssh options, pointed at the proxy, without ConnectTimeout: only rsync's own timeout may act.
      const options: string[] = [];
      for (let i = 0; i < sshd.sshArgs.length; i += 2) {
        const [flag, value] = [sshd.sshArgs[i] as string, sshd.sshArgs[i + 1] as string];
        if (flag === '-o' && value.startsWith('ConnectTimeout=')) continue;
        options.push(flag, flag === '-p' ? String(proxy.port) : value);
      }
      const conf = await writeConf(dir, {
        watch: src,
        remotes: [{ ip: '127.0.0.1', name: dest }],
        ssh: { options: options.join(' ') },
        timeoutSeconds: 3,
        failLog: join(dir, 'state', 'rsync_fail_log.sh'),
      });
      const proc = await startSersync(['-o', conf]);
      running.push(proc);
      const id = `127.0.0.1:${dest}`;

      await generateTree(join(src, 'site'), { dirs: 3, filesPerDir: 5 });
      await writeFile(join(src, 'big.bin'), randomBytes(8 << 20));
      // 1. The peer accepts and says nothing, not even the ssh banner.
      const first = await proc.waitForLog(isFailure(id), 'the first attempt to give up on a silent peer', 30_000);
      assert.equal(first.verdict, 'retry', JSON.stringify(first));
      assert.ok(proxy.accepted >= 1);
      // 2. The next connection gets through ssh's handshake and stalls in the middle of the transfer.
      proxy.mode = 'stall';
      await proc.waitForLog(() => failures(proc, id).length >= 2, 'the second attempt to give up on a stalled transfer', 30_000);
      assert.ok(proxy.stalled >= 1, 'the second attempt never reached the middle of the transfer');
      assert.equal(failures(proc, id)[1]?.verdict, 'retry');
      // 3. The peer answers again: the retried batch lands.
      proxy.mode = 'forward';
      await waitForIdenticalTrees(src, dest, { ignoreRootAttrs: true, timeoutMs: 60_000 });
      assert.equal(proc.proc.running(), true);
      await stopCleanly(proc);
    });
  });
});

interface HangingProxy {
  readonly port: number;
  /** For new connections: accept and stay silent, forward and then stall after STALL_AFTER bytes, or forward. */
  mode: 'silent' | 'stall' | 'forward';
  readonly accepted: number;
  /** Connections frozen in the middle of a transfer. */
  readonly stalled: number;
  close(): Promise<void>;
}

/** Client bytes forwarded before a 'stall' connection freezes: past ssh's handshake, inside the file data. */
const STALL_AFTER = 1 << 20;

/** A TCP proxy on 127.0.0.1 to `targetPort` that can hang like a dead peer: the socket stays open, nothing moves. */
async function startHangingProxy(targetPort: number): Promise<HangingProxy> {
  const sockets = new Set<Socket>();
  const state = { mode: 'silent' as HangingProxy['mode'], accepted: 0, stalled: 0 };
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  };
  const server: Server = createServer((client) => {
    state.accepted++;
    track(client);
    const mode = state.mode;
    if (mode === 'silent') return;
    const upstream = connect(targetPort, '127.0.0.1');
    track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    let sent = 0;
    let frozen = false;
    client.on('data', (chunk: Buffer) => {
      if (frozen) return;
      upstream.write(chunk);
      sent += chunk.length;
      if (mode === 'stall' && sent > STALL_AFTER) {
        // A dead network: from now on nothing gets through, either way. The bytes are dropped rather than left
        // unread, so that the proxy still sees the client go away and can close the server side too; a paused
        // socket never reports the close, and sshd would keep the remote rsync and its temporary file forever.
        frozen = true;
        state.stalled++;
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!frozen) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    get mode() {
      return state.mode;
    },
    set mode(m) {
      state.mode = m;
    },
    get accepted() {
      return state.accepted;
    },
    get stalled() {
      return state.stalled;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
