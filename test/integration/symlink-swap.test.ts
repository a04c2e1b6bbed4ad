import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, readFile, readlink, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import PQueue from 'p-queue';
import pino from 'pino';
import type { Batch, ChangeHint } from '../../src/aggregate/aggregator.ts';
import type { Remote, RsyncSettings } from '../../src/config/model.ts';
import { systemClock } from '../../src/core/clock.ts';
import { execaRunner } from '../../src/sync/process-runner.ts';
import { NOTHING_HELD } from '../../src/sync/deletion-guard.ts';
import { type AttemptReport, RemoteLane } from '../../src/sync/remote-lane.ts';
import { planUpdate } from '../../src/sync/rsync-command.ts';
import { runProcess } from '../helpers/processes.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';

/**
 * Issue 16, build item 3: a directory of the tree swapped for a symlink between a batch's plan and its rsync
 * (`mv a a.d; ln -s /etc a` after `a/shadow` was written). The swap runs through the lane's afterPlan seam, against
 * a real rsync daemon with auth; the "secret" is a file in a temporary directory outside the tree.
 */

const SECRET = 'SECRET-outside-the-tree';
let rsyncd: RsyncDaemon;

before(async () => {
  rsyncd = await startRsyncDaemon({ modules: ['files-from', 'rules', 'rsync-alone-ff', 'rsync-alone-rules'], user: 'rsync_backup' });
});

after(async () => {
  await rsyncd?.stop();
  await removeTempDirs();
});

function settings(): RsyncSettings {
  return {
    commonParams: ['-artz'],
    auth: { enabled: true, users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
    port: { enabled: true, port: rsyncd.port },
    timeout: { enabled: false, seconds: 100 },
    ssh: { enabled: false, options: [] },
  };
}

function remoteFor(module: string): Remote {
  return { kind: 'daemon', ip: '127.0.0.1', name: module, id: `127.0.0.1::${module}`, line: 1 };
}

/** A source tree with `a/` holding `shadow` and `sub/shadow`, a secret directory outside it, mirrored to `module`. */
async function scenario(module: string) {
  const base = await makeTempDir(`swap-${module}`);
  const src = join(base, 'src');
  const secret = join(base, 'secret');
  await mkdir(join(src, 'a', 'sub'), { recursive: true });
  await mkdir(join(secret, 'sub'), { recursive: true });
  await writeFile(join(src, 'index.html'), 'index');
  await writeFile(join(src, 'a', 'shadow'), 'a page called shadow');
  await writeFile(join(src, 'a', 'sub', 'shadow'), 'a page called shadow, deeper');
  await writeFile(join(secret, 'shadow'), SECRET);
  await writeFile(join(secret, 'sub', 'shadow'), SECRET);
  const dest = rsyncd.modules[module] as string;
  const seed = await runProcess('rsync', ['-a', `--password-file=${rsyncd.passwordFile}`, `${src}/`, rsyncd.moduleUrl(module)]);
  assert.equal(seed.code, 0, seed.stderr);
  /** The swap: `a` moves aside and a symlink to the secret directory takes its place. */
  const swap = async () => {
    await rename(join(src, 'a'), join(src, 'a.d'));
    await symlink(secret, join(src, 'a'));
  };
  return { src, dest, secret, swap };
}

/** Every regular file's content below `dir`, never following a symlink. */
async function contents(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await contents(p)));
    else if (e.isFile()) out.push(await readFile(p, 'utf8'));
  }
  return out;
}

/** A lane over the real runner whose afterPlan seam runs `between` once, for the first batch that is no full sync. */
function laneFor(module: string, src: string, between: () => Promise<void>) {
  const reports: AttemptReport[] = [];
  let armed = true;
  const lane = new RemoteLane(
    remoteFor(module),
    { watch: src, remote: remoteFor(module), rsync: settings(), deletes: true, filters: [], defaultTimeoutSeconds: 60 },
    { quietMs: 10, maxWaitMs: 100, maxChildrenPerDir: 100, maxPendingPaths: 1000 },
    {
      clock: systemClock,
      runner: execaRunner,
      limiter: new PQueue({ concurrency: 1 }),
      log: pino({ level: 'silent' }),
      rsyncPath: 'rsync',
      rootBytes: src,
      untranslated: [],
      fullSyncFilters: [],
      retry: { baseMs: 60_000, capMs: 60_000, random: () => 0.5 },
      onAttempt: (_lane, r) => void reports.push(r),
      deletionGuard: async () => NOTHING_HELD,
      afterPlan: async (batch: Batch) => {
        if (!armed || batch.full) return;
        armed = false;
        await between();
      },
    },
  );
  return { lane, reports };
}

const changed: ChangeHint = { tree: false, removed: false, created: false };

async function assertLinkArrivedAndNoSecret(dest: string, secret: string) {
  assert.deepEqual(
    await contents(dest).then((c) => c.filter((t) => t.includes(SECRET))),
    [],
    'nothing from outside the tree on the remote',
  );
  const st = await lstat(join(dest, 'a'));
  assert.ok(st.isSymbolicLink(), 'a arrives as a symlink, like the source');
  // The daemon (use chroot = no) strips the leading slash of an absolute target.
  assert.equal(await readlink(join(dest, 'a')), secret.replace(/^\/+/, ''));
}

test('a file batch (--files-from): the swapped directory is sent as the link, never read through', async () => {
  const { src, dest, secret, swap } = await scenario('files-from');
  await writeFile(join(src, 'a', 'shadow'), 'a page called shadow, edited');
  const { lane, reports } = laneFor('files-from', src, swap);
  lane.add('a/shadow', changed);
  await lane.flush();
  assert.deepEqual(
    reports.map((r) => [r.ok, r.exitCode]),
    [[true, 0]],
  );
  await assertLinkArrivedAndNoSecret(dest, secret);
  lane.stop();
});

test('a batch with a directory (include rules): the swapped ancestor is sent as the link', async () => {
  const { src, dest, secret, swap } = await scenario('rules');
  await writeFile(join(src, 'a', 'sub', 'new.html'), 'new');
  const { lane, reports } = laneFor('rules', src, swap);
  lane.add('a/sub', { tree: true, removed: false, created: true });
  await lane.flush();
  assert.deepEqual(
    reports.map((r) => [r.ok, r.exitCode]),
    [[true, 0]],
  );
  await assertLinkArrivedAndNoSecret(dest, secret);
  lane.stop();
});

/**
 * Why the lane checks ancestors before a `--files-from` run: rsync 3.5 reads a listed file through a symlinked
 * ancestor owned by root. The include-rules form walks from the root and never follows a link. rsync alone, no lane.
 */
test('rsync alone: --files-from reads through a swapped ancestor, include rules do not', async () => {
  const ff = await scenario('rsync-alone-ff');
  await ff.swap();
  const ctx = (module: string, src: string) => ({
    watch: src,
    remote: remoteFor(module),
    rsync: settings(),
    deletes: true,
    filters: [],
    defaultTimeoutSeconds: 60,
  });
  const filesFrom = planUpdate(ctx('rsync-alone-ff', ff.src), ['a/shadow']);
  assert.ok(filesFrom.args.includes('--files-from=-'));
  const r1 = await runProcess('rsync', [...filesFrom.args], { input: filesFrom.input ?? undefined });
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(await readFile(join(ff.dest, 'a', 'shadow'), 'utf8'), SECRET, 'rsync itself follows the link (the premise)');

  const rules = await scenario('rsync-alone-rules');
  await rules.swap();
  const withRules = planUpdate(ctx('rsync-alone-rules', rules.src), ['a/sub', 'a/shadow'], [], new Set(['a/sub']));
  assert.ok(withRules.args.includes('--include-from=-'));
  const r2 = await runProcess('rsync', [...withRules.args], { input: withRules.input ?? undefined });
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(await contents(rules.dest).then((c) => c.filter((t) => t.includes(SECRET))), []);
});
