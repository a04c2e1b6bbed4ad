/**
 * The three losses that a seeded chaos run found, each on its own and with real parts (issue "Nothing lost under
 * chaos"): a path the remote received in a window that also created and removed it; a SIGHUP reload during churn;
 * a SIGTERM right after writes. Each ends with an entry-by-entry compare of the trees, without a full sync to help.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import PQueue from 'p-queue';
import pino from 'pino';
import type { Remote, RsyncSettings } from '../../src/config/model.ts';
import { systemClock } from '../../src/core/clock.ts';
import { execaRunner, type ProcessRunner } from '../../src/sync/process-runner.ts';
import { NOTHING_HELD } from '../../src/sync/deletion-guard.ts';
import { RemoteLane } from '../../src/sync/remote-lane.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { compareTrees } from '../helpers/trees.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { type SersyncProcess, startSersync, writeConf } from './support/sersync.ts';

const PASSWORD = 'lossless pass';
const MODULES = ['hup', 'term'];
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

const differences = (src: string, dest: string) => compareTrees(src, dest, { absSymlinksStripped: true, ignoreRootAttrs: true });

async function scenario(module: string, tuning: Record<string, string | number> = {}) {
  const dir = await makeTempDir(`lossless-${module}-`);
  const src = join(dir, 'src');
  await mkdir(src);
  const conf = await writeConf(dir, {
    watch: src,
    remotes: [{ ip: '127.0.0.1', name: module }],
    auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
    port: rsyncd.port,
    failLog: join(dir, 'state', 'rsync_fail_log.sh'),
    tuning: { stateDir: join(dir, 'state'), ...tuning },
  });
  return {
    src,
    conf,
    dest: rsyncd.modules[module] as string,
    async start(args: string[] = []): Promise<SersyncProcess> {
      const proc = await startSersync([...args, '-o', conf]);
      running.push(proc);
      return proc;
    },
  };
}

async function terminate(proc: SersyncProcess): Promise<void> {
  process.kill(proc.proc.child.pid as number, 'SIGTERM');
  const status = await Promise.race([proc.proc.exited, sleep(30_000).then(() => null)]);
  assert.ok(status, `still running 30 s after SIGTERM:\n${proc.proc.output().slice(-3000)}`);
  assert.equal(status.code, 0, `exit ${status.code} after SIGTERM:\n${proc.proc.output().slice(-3000)}`);
}

const fullSyncs = (proc: SersyncProcess) => proc.records().filter((r) => r.full === true && typeof r.rsyncRuns === 'number').length;

describe('nothing lost', () => {
  test('a path created and removed in one window is deleted on the remote when a transfer in between carried it', async () => {
    // The lane over real rsync into a local mirror. The runner creates A/Y while the transfer of A runs (as a retried
    // or parked batch of A would, or the full sync after a crash), and the watcher's event for it arrives then.
    const dir = await makeTempDir('lossless-window-');
    const src = join(dir, 'src');
    const dest = join(dir, 'dest');
    await mkdir(join(src, 'A'), { recursive: true });
    await mkdir(dest);
    const remote: Remote = { kind: 'local', ip: '', name: dest, id: dest, line: 1 };
    const rsync: RsyncSettings = {
      commonParams: ['-artz'],
      auth: { enabled: false, users: '', passwordFile: '' },
      port: { enabled: false, port: 874 },
      timeout: { enabled: false, seconds: 100 },
      ssh: { enabled: false, options: [] },
    };
    let lane: RemoteLane | null = null;
    let runs = 0;
    let carried: string[] = [];
    const runner: ProcessRunner = {
      async run(file, args, opts) {
        if (++runs > 1) return execaRunner.run(file, args, opts);
        await mkdir(join(src, 'A', 'Y'));
        await writeFile(join(src, 'A', 'Y', 'f.txt'), 'carried by the transfer of A');
        lane?.add('A/Y', { tree: true, removed: false, created: true });
        const result = await execaRunner.run(file, args, opts);
        carried = await differences(src, dest);
        // Removed before its own batch went: in the same window that created it.
        await rm(join(src, 'A', 'Y'), { recursive: true });
        lane?.add('A/Y', { tree: true, removed: true, created: false });
        return result;
      },
    };
    lane = new RemoteLane(
      remote,
      { watch: src, remote, rsync, deletes: true, filters: [], defaultTimeoutSeconds: 300 },
      { quietMs: 50, maxWaitMs: 2000, maxChildrenPerDir: 100, maxPendingPaths: 1000 },
      {
        clock: systemClock,
        runner,
        limiter: new PQueue({ concurrency: 1 }),
        log: pino({ level: 'silent' }),
        rsyncPath: 'rsync',
        rootBytes: src,
        untranslated: [],
        fullSyncFilters: [],
        retry: { baseMs: 1000, capMs: 60_000, random: () => 0.5 },
        deletionGuard: async () => NOTHING_HELD,
      },
    );
    lane.add('A', { tree: true, removed: false, created: true });
    await waitFor(async () => runs >= 1 && !lane.busy, { what: 'the transfer of A to end' });
    assert.deepEqual(carried, [], 'the transfer of A carried A/Y');
    await lane.flush();
    lane.stop();
    assert.deepEqual(await differences(src, dest), []);
  });

  test('SIGTERM right after writes: every file arrives after a restart without -r', async () => {
    const s = await scenario('term');
    for (let round = 0; round < 5; round++) {
      const proc = await s.start();
      await Promise.all(Array.from({ length: 50 }, (_, i) => writeFile(join(s.src, `r${round}-${i}.txt`), `round ${round} file ${i}`)));
      await terminate(proc);
    }
    const proc = await s.start();
    await waitForIdenticalTrees(s.src, s.dest, { absSymlinksStripped: true, ignoreRootAttrs: true, timeoutMs: 20_000 });
    assert.equal(fullSyncs(proc), 0, 'converged without a full sync');
    await terminate(proc);
  });

  test('SIGHUP reloads during churn in 200 directories lose nothing', async () => {
    const s = await scenario('hup', { quietMs: 100, progressMs: 10_000 });
    const proc = await s.start();
    const dirs = Array.from({ length: 200 }, (_, i) => join(s.src, `d${i}`));
    let stop = false;
    let written = 0;
    const writer = (async () => {
      while (!stop) {
        // New directories too: the reload must not lose the walk of one the new watcher does not watch yet.
        const d = dirs[written % dirs.length] as string;
        await mkdir(d, { recursive: true });
        await writeFile(join(d, `f${written}.txt`), `file ${written}`);
        written++;
        if (written % 25 === 0) await sleep(5);
      }
    })();
    for (let i = 0; i < 10; i++) {
      await sleep(300);
      // A changed setting, so that each reload hands the site over to a new watcher (an unchanged site runs on).
      const text = await readFile(s.conf, 'utf8');
      await writeFile(s.conf, text.replace(/progressMs="\d+"/, `progressMs="${10_001 + i}"`));
      process.kill(proc.proc.child.pid as number, 'SIGHUP');
    }
    stop = true;
    await writer;
    await proc.waitForLog((r) => r.msg === 'config reloaded', 'a reload to finish');
    await waitForIdenticalTrees(s.src, s.dest, { absSymlinksStripped: true, ignoreRootAttrs: true, timeoutMs: 30_000 });
    assert.equal(fullSyncs(proc), 0, `converged without a full sync (${written} files written)`);
    const watching = proc.records().filter((r) => typeof r.msg === 'string' && r.msg.startsWith('watching ')).length;
    assert.ok(watching > 1, `the reloads started new watchers (${watching} "watching" lines)`);
    await terminate(proc);
  });
});
