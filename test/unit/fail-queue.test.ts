import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { ExitCode, SersyncError } from '../../src/core/errors.ts';
import { FailQueue, type FailQueueOptions, WRITE_RETRY_MS } from '../../src/recovery/fail-queue.ts';
import type { StoredBatch } from '../../src/recovery/queue-file.ts';
import { FakeClock } from './support/fake-clock.ts';

/**
 * The retry queue on a real file system: a failed write (a real full tmpfs) keeps the queue in memory, is logged
 * once and written again on the clock; the queue and its lock belong to one instance (watch path and remotes); an
 * earlier version's queue file is taken over once.
 */

const base = mkdtempSync(join(tmpdir(), 'sersync-ts-fail-queue-'));
const mounts: string[] = [];
after(() => {
  for (const m of mounts) execFileSync('umount', ['-l', m]);
  rmSync(base, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
let n = 0;
const freshDir = () => {
  const dir = join(base, `d${++n}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
};

interface Rec {
  level: 'error' | 'warn' | 'info';
  obj: Record<string, unknown>;
  msg: string;
}
function recorder() {
  const records: Rec[] = [];
  const at = (level: Rec['level']) => (obj: Record<string, unknown>, msg: string) => records.push({ level, obj, msg });
  return { records, log: { error: at('error'), warn: at('warn'), info: at('info') } as unknown as FailQueueOptions['log'] };
}

function options(stateDir: string, over: Partial<FailQueueOptions> = {}) {
  const rec = recorder();
  const clock = new FakeClock();
  const opts: FailQueueOptions = {
    failLogPath: '/tmp/rsync_fail_log.sh',
    stateDir,
    watch: '/srv/www',
    remoteIds: ['10.0.0.2::www'],
    clock,
    log: rec.log,
    ...over,
  };
  return { opts, clock, records: rec.records };
}

const batch = (path: string): StoredBatch => ({
  full: false,
  fullReason: '',
  entries: [{ path, tree: false, deletes: false }],
  attempts: 1,
  lastExitCode: 10,
  lastError: 'connection refused',
  firstFailedAt: '2026-01-01T00:00:00.000Z',
  lastAttemptAt: '2026-01-01T00:00:00.000Z',
  nextAttemptAt: null,
});

const onDisk = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as { running: boolean; remotes: Record<string, StoredBatch> };

function fullTmpfs(t: { skip(why: string): void }): string | null {
  if (!isRoot) {
    t.skip('needs root to mount a tmpfs');
    return null;
  }
  const dir = freshDir();
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

function fill(dir: string): void {
  try {
    writeFileSync(join(dir, 'filler'), Buffer.alloc(1024 * 1024));
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  }
}

test('a write on a full disk keeps the queue in memory, is logged once, and is written again on the clock', (t) => {
  const dir = fullTmpfs(t);
  if (dir === null) return;
  const { opts, clock, records } = options(dir);
  const queue = FailQueue.open(opts);
  queue.markRunning(true);
  assert.equal(queue.writeError, null);
  fill(dir);

  queue.put('10.0.0.2::www', batch('a.txt'));
  queue.put('10.0.0.2::www', batch('b.txt'));
  clock.advance(WRITE_RETRY_MS * 3);
  assert.match(queue.writeError ?? '', /ENOSPC|no space/);
  assert.equal(queue.remotes['10.0.0.2::www']?.entries[0]?.path, 'b.txt', 'kept in memory');
  assert.deepEqual(onDisk(queue.file).remotes, {}, 'the file still holds the last write that worked');
  assert.equal(records.filter((r) => r.level === 'error').length, 1, 'one error for the episode, not one per write');
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no half-written temp file left to eat the space',
  );
  assert.equal(clock.pendingTimers, 1, 'a retry is scheduled');

  rmSync(join(dir, 'filler'));
  clock.advance(WRITE_RETRY_MS);
  assert.equal(queue.writeError, null);
  assert.equal(onDisk(queue.file).remotes['10.0.0.2::www']?.entries[0]?.path, 'b.txt', 'written once space is back, without a change');
  assert.ok(records.some((r) => r.level === 'info' && r.msg.includes('written again')));
  assert.equal(clock.pendingTimers, 0);
  queue.markRunning(false);
  queue.close();
});

test('markRunning at start on a full disk is not fatal; a stop that could not write leaves the lock, so the next start does a full sync', (t) => {
  const dir = fullTmpfs(t);
  if (dir === null) return;
  const first = options(dir);
  let queue = FailQueue.open(first.opts);
  queue.markRunning(true);
  queue.markRunning(false);
  queue.close();
  fill(dir);

  queue = FailQueue.open(first.opts);
  assert.equal(queue.previousRunCrashed, false);
  queue.markRunning(true);
  assert.notEqual(queue.writeError, null);
  queue.put('10.0.0.2::www', batch('c.txt'));
  queue.markRunning(false);
  queue.close();
  assert.equal(onDisk(queue.file).running, false, 'the file still says the last run stopped cleanly');
  assert.equal(first.clock.pendingTimers, 0, 'close stops the retries');

  const again = FailQueue.open(options(dir).opts);
  assert.equal(again.previousRunCrashed, true, 'the lock left behind says the file missed changes');
});

test('the queue and its lock belong to one instance: copies of one config with other watch or remotes do not collide', () => {
  const dir = freshDir();
  const a = FailQueue.open(options(dir).opts);
  const b = FailQueue.open(options(dir, { watch: '/srv/other' }).opts);
  const c = FailQueue.open(options(dir, { remoteIds: ['10.0.0.3::www'] }).opts);
  assert.equal(new Set([a.file, b.file, c.file]).size, 3);
  for (const q of [a, b, c]) assert.match(q.file, /\/rsync_fail_log-[0-9a-f]{12}\.queue\.json$/);
  const d = FailQueue.open(options(dir, { remoteIds: ['10.0.0.2::www', '10.0.0.9::x'] }).opts);
  const e = FailQueue.open(options(freshDir(), { remoteIds: ['10.0.0.9::x', '10.0.0.2::www'] }).opts);
  assert.equal(d.file.split('/').pop(), e.file.split('/').pop(), 'the order of the remotes does not matter');
  for (const q of [a, b, c, d, e]) q.close();
});

test('the same instance twice: the second is refused with 75 while the first runs, and takes over once it is gone', async (t) => {
  const dir = freshDir();
  const { opts } = options(dir);
  const first = FailQueue.open(opts);
  const lock = first.file.replace(/\.queue\.json$/, '.lock');
  assert.equal(readFileSync(lock, 'utf8'), `${process.pid}\n`);
  first.close();
  assert.equal(existsSync(lock), false, 'a clean close removes the lock');

  // A live process whose command line says sersync-ts holds the lock (another daemon of this instance).
  const other = spawn('sh', ['-c', 'sleep 60', 'sersync-ts'], { stdio: 'ignore' });
  t.after(() => other.kill());
  await new Promise((r) => other.once('spawn', r));
  writeFileSync(lock, `${other.pid}\n`);
  assert.throws(
    () => FailQueue.open(opts),
    (err: unknown) => err instanceof SersyncError && err.exitCode === ExitCode.TempFail && err.message.includes(`pid ${other.pid}`),
  );
  other.kill();
  await new Promise((r) => other.once('exit', r));
  const second = FailQueue.open(opts);
  assert.equal(second.previousRunCrashed, true, 'a lock left by a dead process means that run crashed');
  second.close();
});

test("an earlier version's queue file is taken over once, and left alone when it holds other remotes", () => {
  const dir = freshDir();
  const earlier = join(dir, 'rsync_fail_log.queue.json');
  const old = (remotes: Record<string, StoredBatch>) =>
    writeFileSync(
      earlier,
      JSON.stringify({ format: 'sersync-ts retry queue', version: 1, running: true, pid: 999999, updatedAt: '', remotes }),
      {
        mode: 0o600,
      },
    );

  old({ '10.0.0.9::elsewhere': batch('x.txt') });
  const foreign = options(dir);
  let queue = FailQueue.open(foreign.opts);
  assert.deepEqual(queue.remotes, {});
  assert.equal(existsSync(earlier), true);
  assert.ok(foreign.records.some((r) => r.level === 'warn' && r.msg.includes('not taken over')));
  queue.close();
  rmSync(queue.file, { force: true });

  old({ '10.0.0.2::www': batch('pending.txt') });
  const mine = options(dir);
  queue = FailQueue.open(mine.opts);
  assert.equal(queue.remotes['10.0.0.2::www']?.entries[0]?.path, 'pending.txt');
  assert.equal(queue.previousRunCrashed, true, 'the earlier run did not stop cleanly');
  assert.equal(existsSync(earlier), false, 'taken over once');
  assert.equal(onDisk(queue.file).remotes['10.0.0.2::www']?.entries[0]?.path, 'pending.txt');
  assert.ok(mine.records.some((r) => r.level === 'warn' && r.msg.includes('took over')));
  queue.close();
});

test('the queue a stop left under the same watch path with other remotes (a reload) is taken over by the next start', async (t) => {
  const dir = freshDir();
  const before = FailQueue.open(options(dir, { remoteIds: ['10.0.0.2::www', '10.0.0.3::www'] }).opts);
  before.markRunning(true);
  before.put('10.0.0.2::www', batch('queued-before-the-reload.txt'));
  before.markRunning(false);
  before.close();

  const otherWatch = FailQueue.open(options(dir, { watch: '/srv/elsewhere' }).opts);
  assert.deepEqual(otherWatch.remotes, {}, 'another watch path: not ours');
  otherWatch.close();

  // The sibling is in use: left alone.
  const other = spawn('sh', ['-c', 'sleep 60', 'sersync-ts'], { stdio: 'ignore' });
  t.after(() => other.kill());
  await new Promise((r) => other.once('spawn', r));
  const siblingLock = before.file.replace(/\.queue\.json$/, '.lock');
  writeFileSync(siblingLock, `${other.pid}\n`);
  const busy = options(dir);
  let after = FailQueue.open(busy.opts);
  assert.deepEqual(after.remotes, {});
  assert.ok(busy.records.some((r) => r.msg.includes('not taken over')));
  after.close();
  rmSync(after.file, { force: true });
  rmSync(siblingLock);

  after = FailQueue.open(options(dir).opts);
  assert.equal(after.remotes['10.0.0.2::www']?.entries[0]?.path, 'queued-before-the-reload.txt');
  assert.equal(after.previousRunCrashed, false, 'that run stopped cleanly');
  assert.equal(existsSync(before.file), false);
  after.close();
});

test('an unreadable queue file is set aside and taken for a crash', () => {
  const dir = freshDir();
  const probe = FailQueue.open(options(dir).opts);
  probe.close();
  writeFileSync(probe.file, 'not json {', { mode: 0o600 });
  const queue = FailQueue.open(options(dir).opts);
  assert.ok(queue.setAside?.startsWith(`${probe.file}.unreadable-`));
  assert.equal(readFileSync(queue.setAside as string, 'utf8'), 'not json {');
  assert.equal(queue.previousRunCrashed, true, 'what was pending is unknown: a full sync');
  queue.close();
});

test('a queue file that is a symbolic link is refused, never followed', () => {
  const dir = freshDir();
  const probe = FailQueue.open(options(dir).opts);
  const file = probe.file;
  probe.close();
  const target = join(base, 'target.json');
  writeFileSync(target, 'not yours');
  execFileSync('ln', ['-s', target, file]);
  assert.throws(
    () => FailQueue.open(options(dir).opts),
    (err: unknown) => err instanceof SersyncError && err.exitCode === ExitCode.CantCreate && /symbolic link/.test(err.message),
  );
  assert.equal(readFileSync(target, 'utf8'), 'not yours');
  assert.equal(existsSync(file.replace(/\.queue\.json$/, '.lock')), false, 'the lock is given back when the open fails');
});

test('the state directory is created with mode 0700', () => {
  const dir = join(freshDir(), 'a', 'b');
  const queue = FailQueue.open(options(dir).opts);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, '..')).mode & 0o777, 0o700);
  queue.markRunning(true);
  assert.equal(statSync(queue.file).mode & 0o777, 0o600);
  queue.close();
  chmodSync(dir, 0o700);
});
