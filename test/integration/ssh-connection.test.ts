import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runProcess } from '../helpers/processes.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { type SersyncProcess, startSersync, writeConf } from './support/sersync.ts';

/**
 * The shared ssh connection (SshMaster) with a real sshd: opened when the site starts, joined by every rsync run (the
 * sshd sees one login however many runs there are), reopened when it drops, closed at the stop, and a master left
 * behind by a daemon killed with SIGKILL closed at the next start.
 */

let sshd: Sshd;
const running: SersyncProcess[] = [];

before(async () => {
  sshd = await startSshd();
});

after(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL').catch(() => {})));
  await sshd?.stop();
  await removeTempDirs();
});

/** Logins the test sshd accepted so far (each ssh connection is one; a session on a shared one is none). */
const logins = () => (sshd.output().match(/Accepted publickey/g) ?? []).length;

/** Processes whose command line holds all of `words`, with their parents. */
function processesWith(...words: string[]): { pid: number; ppid: number }[] {
  const found: { pid: number; ppid: number }[] = [];
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0');
      if (!words.every((w) => args.includes(w))) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      found.push({ pid: Number(name), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** The master ssh of the daemon whose state directory is `stateDir` (its socket lives there). */
async function masterOf(stateDir: string, ppid?: number): Promise<{ pid: number; ppid: number; socket: string }> {
  return waitFor(
    async () => {
      const sockets = (await readdir(stateDir)).filter((n) => n.startsWith('ssh-'));
      for (const s of sockets) {
        const socket = join(stateDir, s);
        const [p] = processesWith('ssh', '-N', `ControlPath=${socket}`).filter((x) => ppid === undefined || x.ppid === ppid);
        if (p) return { ...p, socket };
      }
      return undefined;
    },
    { timeoutMs: 20_000, what: `an ssh master with its socket in ${stateDir}` },
  );
}

/** Waits until the master at `socket` answers a control request (it is logged in and listening). */
async function answering(socket: string): Promise<void> {
  await waitFor(
    async () =>
      (await runProcess('ssh', [...sshd.sshArgs, '-o', 'ControlMaster=no', '-o', `ControlPath=${socket}`, '-O', 'check', sshd.host]))
        .code === 0,
    { timeoutMs: 20_000, what: `the master at ${socket} to answer` },
  );
}

async function site(name: string) {
  const dir = await makeTempDir(`ssh-conn-${name}-`);
  const src = join(dir, 'src');
  const dest = join(dir, 'dest');
  const stateDir = await makeTempDir('st-');
  await mkdir(src);
  await mkdir(dest);
  const conf = await writeConf(dir, {
    watch: src,
    remotes: [{ ip: '127.0.0.1', name: dest }],
    ssh: { options: sshd.sshArgs.join(' ') },
    failLog: join(dir, 'fail.log'),
    tuning: { watcher: 'dirs', stateDir },
  });
  return { src, dest, stateDir, conf };
}

describe('the shared ssh connection', () => {
  test('opened at the start, joined by every run, reopened when it drops, closed at the stop', async () => {
    const { src, dest, stateDir, conf } = await site('keep');
    const proc = await startSersync(['-o', conf]);
    running.push(proc);
    const daemonPid = proc.proc.child.pid as number;
    const master = await masterOf(stateDir, daemonPid);
    await answering(master.socket);
    const synced = () => proc.records().filter((r) => String(r.msg).startsWith('synced ')).length;
    /** A change, synced: the trees agree and the batch's rsync runs have ended. */
    const change = async (name: string) => {
      const before = synced();
      await writeFile(join(src, name), `${name}\n`);
      await waitForIdenticalTrees(src, dest, { ignoreRootAttrs: true, timeoutMs: 20_000 });
      await waitFor(async () => synced() > before, { timeoutMs: 20_000, what: `the batch of ${name} logged` });
    };
    const loggedIn = logins();
    for (const n of [1, 2, 3]) await change(`f${n}.txt`);
    assert.equal(logins(), loggedIn, 'three batches, no login of their own');

    // The connection dies: the daemon says so, opens another, and the runs join that one.
    process.kill(master.pid, 'SIGKILL');
    await proc.waitForLog((r) => /the shared ssh connection to .* ended/.test(String(r.msg)), 'the dropped connection noted');
    const again = await waitFor(
      async () => processesWith('ssh', '-N', `ControlPath=${master.socket}`).find((p) => p.ppid === daemonPid && p.pid !== master.pid),
      { timeoutMs: 20_000, what: 'a new master on the same socket' },
    );
    await answering(master.socket);
    const loggedInAgain = logins();
    assert.ok(loggedInAgain > loggedIn, 'the new master logged in');
    await change('after.txt');
    assert.equal(logins(), loggedInAgain);

    assert.equal(await proc.stop(), 0);
    await waitFor(async () => processesWith('ssh', '-N', `ControlPath=${master.socket}`).length === 0, {
      timeoutMs: 10_000,
      what: `master ${again.pid} to end with the daemon`,
    });
    assert.deepEqual(
      (await readdir(stateDir)).filter((n) => n.startsWith('ssh-')),
      [],
      'no socket left',
    );
  });

  test('a master left by a daemon killed with SIGKILL is closed when the daemon starts again', async () => {
    const { stateDir, conf } = await site('orphan');
    const first = await startSersync(['-o', conf]);
    running.push(first);
    const orphan = await masterOf(stateDir, first.proc.child.pid);
    // The daemon alone, as the OOM killer would (its process group, as systemd's stop, takes the master with it).
    process.kill(first.proc.child.pid as number, 'SIGKILL');
    await first.proc.exited;
    assert.equal(processesWith('ssh', '-N', `ControlPath=${orphan.socket}`).length, 1, 'the master outlives its daemon');

    const second = await startSersync(['-o', conf]);
    running.push(second);
    await second.waitForLog(
      (r) => /closed a shared ssh connection to .* left by a daemon that is gone/.test(String(r.msg)),
      'the leftover closed',
    );
    await waitFor(async () => processesWith('ssh', '-N', `ControlPath=${orphan.socket}`).length === 0, {
      timeoutMs: 10_000,
      what: `the leftover master ${orphan.pid} to exit`,
    });
    const own = await masterOf(stateDir, second.proc.child.pid);
    assert.notEqual(own.socket, orphan.socket);
    assert.equal(await second.stop(), 0);
  });
});
