/**
 * Several `<localpath>` in one daemon (an extension; sersync2 read only the first): each a site with its own remotes,
 * lanes and retry queue file, one status endpoint and one inotify instance for them all; a SIGHUP reload that drops a site stops its lanes and leaves the
 * others running on their watchers; `--check` shows each site; same or nested roots are refused. Real daemon (bin/ →
 * dist/), real rsync daemon with auth, real files.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, writeSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { queueFileFor } from '../../src/recovery/queue-file.ts';
import { freePort } from '../helpers/ports.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { type ConfSpec, runSersync, type SersyncProcess, startSersync, testStateDir, writeConf } from './support/sersync.ts';

let rsyncd: RsyncDaemon;
const running: SersyncProcess[] = [];

before(async () => {
  rsyncd = await startRsyncDaemon({
    modules: [
      's1',
      's2',
      's3',
      'r1',
      'r2',
      'r3',
      'h1',
      'h2',
      'h2b',
      'h3',
      'f1',
      'f2',
      'f2b',
      'f3',
      'k1',
      'k2',
      'k3',
      'i1',
      'i2',
      'i3',
      'i3b',
      'o1',
      'o2',
      'o3',
    ],
    user: 'rsync_backup',
    password: 'pw',
  });
});

after(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await rsyncd?.stop();
  await removeTempDirs();
});

const CMP = { absSymlinksStripped: true, ignoreRootAttrs: true };

interface SiteView {
  watch: string;
  watchingSince: string;
  retryQueue: { file: string };
  remotes: { id: string; consecutiveFailures: number; fullSyncs: number; rsyncRuns: { partial: number } }[];
}

/** The inotify instances a process holds: its `anon_inode:inotify` descriptors. */
function inotifyInstancesOf(pid: number | undefined): number {
  assert.ok(pid !== undefined, 'the daemon has no pid');
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:inotify';
    } catch {
      return false;
    }
  }).length;
}

/**
 * Three watch roots, each to its own module of `daemon` (the shared one by default); `sites` picks which of them are
 * in, `more` gives a site further modules.
 */
async function threeSites(prefix: string, modules: [string, string, string], daemon: RsyncDaemon = rsyncd) {
  const dir = await makeTempDir(prefix);
  const roots = ['a', 'b', 'c'].map((n) => join(dir, n)) as [string, string, string];
  for (const r of roots) await mkdir(r);
  const statusPort = await freePort();
  const spec = (sites: number[], more: Record<number, string[]> = {}): ConfSpec => {
    const [first, ...rest] = sites.map((i) => ({
      watch: roots[i] as string,
      remotes: [modules[i] as string, ...(more[i] ?? [])].map((name) => ({ ip: '127.0.0.1', name })),
    }));
    return {
      ...(first as { watch: string; remotes: { ip: string; name: string }[] }),
      moreSites: rest,
      auth: { users: daemon.user as string, passwordFile: daemon.passwordFile as string },
      port: daemon.port,
      failLog: join(dir, 'fail.log'),
      host: { ip: '127.0.0.1', port: statusPort },
    };
  };
  const mirrors = modules.map((m) => daemon.modules[m] as string) as [string, string, string];
  const status = async () =>
    (await (await fetch(`http://127.0.0.1:${statusPort}/status`)).json()) as {
      watch: string;
      inotifyInstances: number | null;
      remotes: { id: string }[];
      sites: SiteView[];
      sitesNotStarted: { watch: string; error: string }[];
    };
  return { dir, roots, mirrors, spec, status, statusPort };
}

test('a config with three <localpath> syncs all three, each with its own retry queue file; the first keeps the one-site name', async () => {
  const { dir, roots, mirrors, spec, status } = await threeSites('sites-three-', ['s1', 's2', 's3']);
  for (const [i, r] of roots.entries()) await writeFile(join(r, 'before.txt'), `before, site ${i}`);
  const conf = await writeConf(dir, spec([0, 1, 2]));
  const proc = await startSersync(['-r', '-o', conf]);
  running.push(proc);
  // The extra sites are named once at the start: a drop-in sersync2 user may not expect them to sync.
  await proc.waitForLog(
    (r) => typeof r.msg === 'string' && r.msg.includes(`sersync-ts syncs them all, also ${roots[1]}, ${roots[2]}`),
    'the warning naming the extra sites',
  );
  for (const [i, r] of roots.entries()) await writeFile(join(r, 'after.txt'), `after, site ${i}`);
  for (const [i, r] of roots.entries()) await waitForIdenticalTrees(r, mirrors[i] as string, CMP);

  const st = await status();
  assert.equal(st.watch, roots[0]);
  assert.deepEqual(
    st.sites.map((s) => [s.watch, s.remotes.map((r) => r.id)]),
    [
      [roots[0], ['127.0.0.1::s1']],
      [roots[1], ['127.0.0.1::s2']],
      [roots[2], ['127.0.0.1::s3']],
    ],
  );
  assert.equal(st.remotes.length, 3);
  const files = st.sites.map((s) => s.retryQueue.file);
  assert.equal(new Set(files).size, 3, `one retry queue file per site: ${files.join(', ')}`);
  assert.equal(files[0], queueFileFor(join(dir, 'fail.log'), testStateDir(), roots[0], ['127.0.0.1::s1']));

  // `sersync-ts status` names each remote's site.
  const table = await runSersync(['status', '-o', conf]);
  assert.equal(table.code, 0, table.stderr);
  for (const [i, r] of roots.entries()) assert.match(table.stdout, new RegExp(`^${r} +127\\.0\\.0\\.1::s${i + 1} `, 'm'), table.stdout);

  // The same config twice is still refused: the lock covers it.
  const again = await runSersync(['-o', conf]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /another sersync-ts \(pid \d+\) holds the lock of this instance/);
  assert.equal(await proc.stop(), 0);
});

test('a SIGHUP that drops one site stops its lanes; the others go on syncing on the watchers they had; one that adds it back syncs it in full (-r)', async () => {
  const { dir, roots, mirrors, spec, status } = await threeSites('sites-reload-', ['r1', 'r2', 'r3']);
  const conf = await writeConf(dir, spec([0, 1, 2]));
  const proc = await startSersync(['-r', '-o', conf]);
  running.push(proc);
  await waitFor(async () => (await status()).sites.length === 3 || undefined, { what: 'three sites running' });
  const before = await status();
  for (const [i, r] of roots.entries()) await writeFile(join(r, 'one.txt'), `site ${i}`);
  for (const [i, r] of roots.entries()) await waitForIdenticalTrees(r, mirrors[i] as string, CMP);

  await writeConf(dir, spec([0, 2]));
  proc.proc.child.kill('SIGHUP');
  await proc.waitForLog((r) => r.msg === 'config reloaded', 'the reload');
  await proc.waitForLog((r) => r.msg === `site ${roots[1]} removed from the config: its watcher and lanes stopped`, 'the drop');
  const after = await status();
  assert.deepEqual(
    after.sites.map((s) => s.watch),
    [roots[0], roots[2]],
  );
  // Their watchers were not started again: the same start time as before the reload.
  for (const site of after.sites) {
    assert.equal(site.watchingSince, before.sites.find((s) => s.watch === site.watch)?.watchingSince, site.watch);
  }

  await writeFile(join(roots[1], 'dropped.txt'), 'no longer synced');
  await writeFile(join(roots[0], 'two.txt'), 'still synced');
  await writeFile(join(roots[2], 'two.txt'), 'still synced');
  await waitForIdenticalTrees(roots[0], mirrors[0], CMP);
  await waitForIdenticalTrees(roots[2], mirrors[2], CMP);
  // The kept sites' batches went after the same quiet time the dropped one would have had.
  assert.equal(existsSync(join(mirrors[1], 'dropped.txt')), false, 'the dropped site synced after the reload');

  await writeConf(dir, spec([0, 1, 2]));
  proc.proc.child.kill('SIGHUP');
  await proc.waitForLog((r) => r.msg === `site ${roots[1]} added by the reload`, 'the site added again');
  // Added with -r: a full sync brings what changed while it was out.
  await waitForIdenticalTrees(roots[1], mirrors[1], CMP);
  const again = await status();
  assert.deepEqual(
    again.sites.map((s) => s.watch),
    roots,
  );
  for (const i of [0, 2]) assert.equal(again.sites[i]?.watchingSince, before.sites[i]?.watchingSince, `${roots[i]} kept its watcher`);
  assert.equal(await proc.stop(), 0);
});

test('a SIGHUP that adds a remote to one site: the others keep their watchers and sync on; the new remote gets it all, the old one goes on, nothing is lost', async () => {
  const { dir, roots, mirrors, spec, status } = await threeSites('sites-hup-', ['h1', 'h2', 'h3']);
  const added = rsyncd.modules.h2b as string;
  for (const [i, r] of roots.entries()) await writeFile(join(r, 'before.txt'), `before, site ${i}`);
  const conf = await writeConf(dir, spec([0, 1, 2]));
  const proc = await startSersync(['-r', '-o', conf]);
  running.push(proc);
  for (const [i, r] of roots.entries()) await waitForIdenticalTrees(r, mirrors[i] as string, CMP);
  const before = await status();

  await writeConf(dir, spec([0, 1, 2], { 1: ['h2b'] }));
  // Changes made right before the reload are in the old site's watcher or lanes when it is swapped out.
  for (let n = 0; n < 30; n++) await writeFile(join(roots[1], `late-${n}.txt`), `late ${n}`);
  proc.proc.child.kill('SIGHUP');
  await proc.waitForLog((r) => r.msg === 'config reloaded', 'the reload');
  const after = await status();
  assert.deepEqual(
    after.sites.map((s) => [s.watch, s.remotes.map((r) => r.id)]),
    [
      [roots[0], ['127.0.0.1::h1']],
      [roots[1], ['127.0.0.1::h2', '127.0.0.1::h2b']],
      [roots[2], ['127.0.0.1::h3']],
    ],
  );
  for (const i of [0, 2]) assert.equal(after.sites[i]?.watchingSince, before.sites[i]?.watchingSince, `${roots[i]} kept its watcher`);
  assert.notEqual(after.sites[1]?.watchingSince, before.sites[1]?.watchingSince, `${roots[1]} got a new watcher`);
  await waitForIdenticalTrees(roots[1], mirrors[1], CMP);
  await waitForIdenticalTrees(roots[1], added, CMP);

  for (const [i, r] of roots.entries()) await writeFile(join(r, 'after.txt'), `after, site ${i}`);
  for (const [i, r] of roots.entries()) await waitForIdenticalTrees(r, mirrors[i] as string, CMP);
  await waitForIdenticalTrees(roots[1], added, CMP);

  // The changed site's instance key (queue file and lock) follows its remotes: a second daemon of the new site config
  // is refused, one of the old config is not (its lock was given up).
  const keyed = (remotes: string[]) => queueFileFor(join(dir, 'fail.log'), testStateDir(), roots[1], remotes);
  assert.equal((await status()).sites[1]?.retryQueue.file, keyed(['127.0.0.1::h2', '127.0.0.1::h2b']));
  const aloneConf = async (more: Record<number, string[]>) =>
    writeConf(await makeTempDir('sites-hup-alone-'), { ...spec([1], more), host: { ip: '127.0.0.1', port: await freePort() } });
  const twin = await runSersync(['-o', await aloneConf({ 1: ['h2b'] })]);
  assert.equal(twin.code, 75, twin.stderr);
  assert.match(twin.stderr, /another sersync-ts \(pid \d+\) holds the lock of this instance/);
  const old = await startSersync(['-o', await aloneConf({})]);
  running.push(old);
  assert.equal(await old.stop(), 0);
  assert.equal(await proc.stop(), 0);
});

test('a SIGHUP that adds a remote to a site whose old remote fails: what that one owes goes to the new lanes and arrives once it is back', async () => {
  const { dir, roots, mirrors, spec, status } = await threeSites('sites-hup-owed-', ['f1', 'f2', 'f3']);
  const added = rsyncd.modules.f2b as string;
  const conf = await writeConf(dir, spec([0, 1, 2]));
  const proc = await startSersync(['-o', conf]);
  running.push(proc);
  await waitFor(async () => (await status()).sites.length === 3 || undefined, { what: 'three sites running' });
  // f2 refuses these files (exit 23): the lane keeps them and tries them again with a backoff.
  await rsyncd.setModuleLines('f2', ['exclude = /owed-*']);
  try {
    for (let n = 0; n < 10; n++) await writeFile(join(roots[1], `owed-${n}.txt`), `owed ${n}`);
    await waitFor(async () => ((await status()).sites[1]?.remotes[0]?.rsyncRuns.partial ?? 0) > 0 || undefined, {
      what: 'a refused run to f2',
    });
    await writeConf(dir, spec([0, 1, 2], { 1: ['f2b'] }));
    proc.proc.child.kill('SIGHUP');
    await proc.waitForLog((r) => r.msg === 'config reloaded', 'the reload');
    await waitForIdenticalTrees(roots[1], added, CMP);
    assert.ok(!existsSync(join(mirrors[1], 'owed-0.txt')), 'f2 refused the file, yet has it');
  } finally {
    await rsyncd.setModuleLines('f2', []);
  }
  await waitForIdenticalTrees(roots[1], mirrors[1], { ...CMP, timeoutMs: 30_000 });
  for (const i of [0, 2]) {
    await writeFile(join(roots[i] as string, 'after.txt'), `after, site ${i}`);
    await waitForIdenticalTrees(roots[i] as string, mirrors[i] as string, CMP);
  }
  assert.equal(await proc.stop(), 0);
});

test('a reload that adds a site whose retry queue lock another daemon holds names that site; the other sites run on, and a later SIGHUP adds it', async () => {
  const { dir, roots, mirrors, spec, status } = await threeSites('sites-locked-', ['k1', 'k2', 'k3']);
  const conf = await writeConf(dir, spec([0, 1]));
  const proc = await startSersync(['-o', conf]);
  running.push(proc);
  await waitFor(async () => (await status()).sites.length === 2 || undefined, { what: 'two sites running' });
  const before = await status();

  // A daemon of the third root alone, with the same failLog and state directory: the same instance lock.
  const otherDir = await makeTempDir('sites-locked-other-');
  const other = await startSersync(['-o', await writeConf(otherDir, { ...spec([2]), host: { ip: '127.0.0.1', port: await freePort() } })]);
  running.push(other);

  await writeConf(dir, spec([0, 1, 2]));
  proc.proc.child.kill('SIGHUP');
  const refused = await proc.waitForLog((r) => r.level === 50 && r.watch === roots[2], 'the error naming the locked site');
  assert.match(String(refused.msg), new RegExp(`^site ${roots[2]} cannot start`));
  assert.match(JSON.stringify(refused.err), /another sersync-ts \(pid \d+\) holds the lock of this instance/);
  await proc.waitForLog((r) => r.msg === 'config reloaded', 'the reload');
  const after = await status();
  assert.deepEqual(
    after.sites.map((s) => s.watch),
    [roots[0], roots[1]],
  );
  // /status names the site that did not start, and why.
  assert.deepEqual(
    after.sitesNotStarted.map((n) => n.watch),
    [roots[2]],
  );
  assert.match(after.sitesNotStarted[0]?.error ?? '', /another sersync-ts \(pid \d+\) holds the lock of this instance/);
  for (const i of [0, 1]) assert.equal(after.sites[i]?.watchingSince, before.sites[i]?.watchingSince, `${roots[i]} kept its watcher`);
  for (const i of [0, 1]) await writeFile(join(roots[i] as string, 'after.txt'), `after, site ${i}`);
  for (const i of [0, 1]) await waitForIdenticalTrees(roots[i] as string, mirrors[i] as string, CMP);

  // Once the other daemon is gone, a SIGHUP of the same file starts the site it could not.
  assert.equal(await other.stop(), 0);
  await writeFile(join(roots[2], 'later.txt'), 'after the other daemon');
  proc.proc.child.kill('SIGHUP');
  await proc.waitForLog((r) => r.msg === `site ${roots[2]} added by the reload`, 'the site added by the second reload');
  await writeFile(join(roots[2], 'watched.txt'), 'seen by the new site');
  await waitFor(async () => existsSync(join(mirrors[2], 'watched.txt')) || undefined, { what: `${roots[2]} synced` });
  const last = await status();
  assert.deepEqual(
    last.sites.map((s) => s.watch),
    roots,
  );
  assert.deepEqual(last.sitesNotStarted, []);
  assert.equal(await proc.stop(), 0);
});

test('a SIGTERM while three sites owe changes keeps what each site owes in its own queue file; a start without -r sends them all', async () => {
  // A daemon of this test's own, stopped while the changes are made, so that every run fails.
  const down = await startRsyncDaemon({ modules: ['d1', 'd2', 'd3'], user: 'rsync_backup', password: 'pw' });
  try {
    const { dir, roots, mirrors, spec, status } = await threeSites('sites-owed-', ['d1', 'd2', 'd3'], down);
    const conf = await writeConf(dir, spec([0, 1, 2]));
    const proc = await startSersync(['-o', conf]);
    running.push(proc);
    await down.stop();
    for (const [i, r] of roots.entries()) {
      await mkdir(join(r, 'sub'));
      for (const name of [`owed-${i}.txt`, '#notes', 'sub/-rf']) await writeFile(join(r, name), `${name}, site ${i}`);
    }
    await waitFor(async () => (await status()).sites.every((s) => (s.remotes[0]?.consecutiveFailures ?? 0) > 0) || undefined, {
      what: 'a failed run on every site',
      timeoutMs: 20_000,
    });
    // And some that no run has tried yet.
    for (const [i, r] of roots.entries()) await writeFile(join(r, `late-${i}.txt`), `late, site ${i}`);
    assert.equal(await proc.stop(), 0);
    const warned = proc.records().find((r) => r.msg === 'stopped with changes not yet on every remote; they are in the retry queue');
    assert.ok(warned, proc.proc.output());
    const files = roots.map((r, i) => queueFileFor(join(dir, 'fail.log'), testStateDir(), r, [`127.0.0.1::d${i + 1}`]));
    assert.deepEqual(warned.queue, files);
    for (const [i, file] of files.entries()) {
      const queue = JSON.parse(await readFile(file, 'utf8')) as {
        running: boolean;
        remotes: Record<string, { full: boolean; entries: unknown[] }>;
      };
      assert.equal(queue.running, false, file);
      const owed = queue.remotes[`127.0.0.1::d${i + 1}`];
      assert.ok(owed && !owed.full && owed.entries.length > 0, `${file}: ${JSON.stringify(queue)}`);
      for (const name of [`owed-${i}.txt`, `late-${i}.txt`])
        assert.ok(JSON.stringify(owed.entries).includes(name), `${file} lacks ${name}`);
      assert.doesNotMatch(JSON.stringify(owed.entries), new RegExp(`(owed|late)-[^${i}]\\.txt`), `${file} holds another site's changes`);
    }

    await down.restart();
    const again = await startSersync(['-o', conf]);
    running.push(again);
    for (const [i, r] of roots.entries()) await waitForIdenticalTrees(r, mirrors[i] as string, { ...CMP, timeoutMs: 30_000 });
    assert.equal(again.records().filter((r) => r.msg === 'replaying the retry queue').length, 3);
    assert.equal(await again.stop(), 0);
  } finally {
    await down.stop();
  }
});

test('three <localpath> watch in one inotify instance; a reload that drops one or swaps one keeps it at one, and the others sync on', async () => {
  const { dir, roots, mirrors, spec, status } = await threeSites('sites-instance-', ['i1', 'i2', 'i3']);
  const added = rsyncd.modules.i3b as string;
  const conf = await writeConf(dir, spec([0, 1, 2]));
  const proc = await startSersync(['-o', conf]);
  running.push(proc);
  await waitFor(async () => (await status()).sites.length === 3 || undefined, { what: 'three sites running' });
  const pid = proc.proc.child.pid;
  assert.equal(inotifyInstancesOf(pid), 1, 'one inotify instance for three sites');
  assert.equal((await status()).inotifyInstances, 1);
  await proc.waitForLog((r) => r.msg === 'the 3 sites share one inotify instance' && r.inotifyInstances === 1, 'the start line');
  for (const [i, r] of roots.entries()) await writeFile(join(r, 'one.txt'), `site ${i}`);
  for (const [i, r] of roots.entries()) await waitForIdenticalTrees(r, mirrors[i] as string, CMP);

  // Drop the second site, and swap the third (a remote added: its new watcher starts before the old one stops).
  await writeConf(dir, spec([0, 2], { 2: ['i3b'] }));
  proc.proc.child.kill('SIGHUP');
  await proc.waitForLog((r) => r.msg === 'config reloaded', 'the reload');
  assert.deepEqual(
    (await status()).sites.map((s) => s.watch),
    [roots[0], roots[2]],
  );
  assert.equal(inotifyInstancesOf(pid), 1, 'the reload left one inotify instance');
  await writeFile(join(roots[1], 'dropped.txt'), 'no longer synced');
  for (const i of [0, 2]) await writeFile(join(roots[i] as string, 'two.txt'), `site ${i}`);
  await waitForIdenticalTrees(roots[0], mirrors[0], CMP);
  await waitForIdenticalTrees(roots[2], mirrors[2], CMP);
  await waitForIdenticalTrees(roots[2], added, CMP);
  assert.equal(existsSync(join(mirrors[1], 'dropped.txt')), false, 'the dropped site synced after the reload');
  assert.equal(await proc.stop(), 0);
});

test('an inotify queue overflow makes every site sync in full: the sites share one queue', { timeout: 180_000 }, async (t) => {
  const knob = '/proc/sys/fs/inotify/max_queued_events';
  const { dir, roots, mirrors, spec, status } = await threeSites('sites-overflow-', ['o1', 'o2', 'o3']);
  const conf = await writeConf(dir, spec([0, 1, 2]));
  const proc = await startSersync(['-o', conf]);
  running.push(proc);
  await waitFor(async () => (await status()).sites.length === 3 || undefined, { what: 'three sites running' });
  if (!(await status()).sites.every((s) => s.remotes[0]?.fullSyncs === 0)) return t.skip('a site did a full sync at the start');
  // The queue's size was taken when the daemon opened its instance, after raising the knob to 327,679 as root (another
  // test may shrink the knob for a moment: the larger of the two is what the daemon's queue holds at most).
  const queued = Math.max(Number(readFileSync(knob, 'utf8').trim()), 327_679);
  const pid = proc.proc.child.pid as number;
  // Stopped, the daemon reads nothing: the writes fill the kernel queue until it overflows. Writes alternate
  // between two files so that the kernel cannot merge them into one event.
  process.kill(pid, 'SIGSTOP');
  try {
    const fds = ['flood-a', 'flood-b'].map((n) => openSync(join(roots[0], n), 'w'));
    try {
      for (let n = 0; n < queued + 1000; n++) writeSync(fds[n % 2] as number, 'x');
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    // Events the full queue drops: only a full sync of each site brings these.
    for (const [i, r] of roots.entries()) await writeFile(join(r, 'after-overflow.txt'), `site ${i}`);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await waitFor(async () => (await status()).sites.every((s) => (s.remotes[0]?.fullSyncs ?? 0) > 0) || undefined, {
    what: 'a full sync of every site',
    timeoutMs: 60_000,
  });
  for (const [i, r] of roots.entries()) await waitForIdenticalTrees(r, mirrors[i] as string, { ...CMP, timeoutMs: 30_000 });
  const lost = proc
    .records()
    .filter(
      (r) =>
        r.msg ===
        'events may have been lost (the inotify event queue overflowed (raise fs.inotify.max_queued_events)); scheduling a full sync',
    );
  assert.equal(lost.length, 3, 'one overflow for each site');
  assert.equal(await proc.stop(), 0);
});

test('--check shows each site with its remotes', async () => {
  const { dir, roots, spec } = await threeSites('sites-check-', ['s1', 's2', 's3']);
  const conf = await writeConf(dir, spec([0, 1, 2]));
  const res = await runSersync(['--check', '-o', conf]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^sites: 3 <localpath>/m);
  for (const [i, r] of roots.entries()) {
    const block = res.stdout.split(`site ${i + 1} of 3:\n`)[1]?.split(/\nsite \d of 3:/)[0] ?? '';
    assert.match(block, new RegExp(`^watch: ${r}$`, 'm'), `site ${i + 1}:\n${res.stdout}`);
    assert.match(block, new RegExp(`^remote 127\\.0\\.0\\.1::s${i + 1} \\(daemon\\):`, 'm'));
  }
});

test('a <localpath> that repeats or nests in another is a config error naming its line', async () => {
  const { dir, roots, spec } = await threeSites('sites-clash-', ['s1', 's2', 's3']);
  const nested = join(roots[0], 'inner');
  await mkdir(nested);
  for (const [watch, how] of [
    [roots[0], 'the same directory as'],
    [nested, 'inside'],
    [dir, 'around'],
  ] as const) {
    const conf = await writeConf(dir, { ...spec([0]), moreSites: [{ watch, remotes: [{ ip: '127.0.0.1', name: 's2' }] }] });
    const res = await runSersync(['--check', '-o', conf]);
    assert.equal(res.code, 78, res.stderr);
    assert.match(
      res.stderr,
      new RegExp(`confxml\\.xml:\\d+: <sersync><localpath watch="[^"]*">: ${how} the <localpath watch="${roots[0]}"> of line \\d+`),
    );
  }
});
