import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ExitCode, SersyncError } from '../../src/core/errors.ts';
import { PidFile } from '../../src/recovery/pid-file.ts';
import { ensureStateDir, stateDirFor } from '../../src/recovery/state-dir.ts';

/**
 * State paths in the real /tmp (world-writable, sticky), where another local user can create a name first: a
 * symbolic link or a directory made by someone else is refused with exit 73 and nothing is written through it. The
 * pid file is created exclusively, never through a link, and removed only while it holds our pid.
 */

const isRoot = process.getuid?.() === 0;
const made: string[] = [];
after(() => {
  for (const p of made) rmSync(p, { recursive: true, force: true });
});
/** A fresh name directly in /tmp (nothing created). */
const inTmp = (what: string) => {
  const p = join(tmpdir(), `sersync-ts-${what}-${process.pid}-${made.length}`);
  made.push(p);
  return p;
};
const refused = (fn: () => void, pattern: RegExp) =>
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SersyncError, String(err));
    assert.equal(err.exitCode, ExitCode.CantCreate);
    assert.match(err.message, pattern);
    assert.match(err.message, /<tuning stateDir=|remove it/, 'the message says what to do');
    return true;
  });

test('the default state directory: the config, then systemd, then /var/lib for root, else XDG', () => {
  assert.equal(stateDirFor('/srv/state', { STATE_DIRECTORY: '/var/lib/x' }, 0), '/srv/state');
  assert.equal(stateDirFor(null, { STATE_DIRECTORY: '/var/lib/sersync-ts:/var/lib/other' }, 1000), '/var/lib/sersync-ts');
  assert.equal(stateDirFor(null, {}, 0), '/var/lib/sersync-ts');
  assert.equal(stateDirFor(null, { XDG_STATE_HOME: '/home/u/.st', HOME: '/home/u' }, 1000), '/home/u/.st/sersync-ts');
  assert.equal(stateDirFor(null, { XDG_STATE_HOME: 'relative', HOME: '/home/u' }, 1000), '/home/u/.local/state/sersync-ts');
  assert.equal(stateDirFor(null, { HOME: '/home/u' }, 1000), '/home/u/.local/state/sersync-ts');
});

test('a symbolic link planted in /tmp at the state path is refused, and nothing is created through it', () => {
  const target = mkdtempSync(join(tmpdir(), 'sersync-ts-link-target-'));
  made.push(target);
  const link = inTmp('state-link');
  symlinkSync(target, link);
  refused(() => ensureStateDir(link), /symbolic link in the world-writable \/tmp/);
  refused(() => ensureStateDir(join(link, 'sub')), /symbolic link in the world-writable \/tmp/);
  assert.deepEqual(readdirSync(target), [], 'nothing was created through the link');
  const dangling = inTmp('state-dangling');
  symlinkSync(join(target, 'made-by-us'), dangling);
  refused(() => ensureStateDir(dangling), /symbolic link/);
  assert.equal(existsSync(join(target, 'made-by-us')), false);
});

test('a state directory in /tmp made first by another user is refused', (t) => {
  if (!isRoot) return t.skip('needs root to create a directory owned by another user');
  const dir = inTmp('state-foreign');
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, 65534, 65534);
  refused(() => ensureStateDir(dir), /belongs to uid 65534/);
});

test('a state directory in /tmp must be mode 0700; elsewhere only group- and world-writable ones are refused', () => {
  const dir = inTmp('state-mode');
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  refused(() => ensureStateDir(dir), /mode is 755/);
  chmodSync(dir, 0o700);
  ensureStateDir(dir);
  const inner = join(dir, 'private-parent');
  mkdirSync(inner, { mode: 0o755 });
  ensureStateDir(inner);
  chmodSync(inner, 0o775);
  refused(() => ensureStateDir(inner), /mode is 775/);
});

test('a missing state path is created 0700 along the way; a link that root made outside /tmp is followed', () => {
  const top = inTmp('state-new');
  ensureStateDir(join(top, 'a', 'b'));
  for (const d of [top, join(top, 'a'), join(top, 'a', 'b')]) assert.equal(statSync(d).mode & 0o777, 0o700, d);
  symlinkSync(join(top, 'a'), join(top, 'via-link'));
  ensureStateDir(join(top, 'via-link', 'b'));
});

test('the pid file is created exclusively, replaces a stale one, and is removed only while it holds our pid', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sersync-ts-pid-'));
  made.push(dir);
  const path = join(dir, 'sersync.pid');
  let pid = PidFile.acquire(path, '--pid-file');
  assert.equal(readFileSync(path, 'utf8'), `${process.pid}\n`);
  assert.equal(pid.stalePid, null);
  pid.release();
  assert.equal(existsSync(path), false);

  // A dead pid: stale, replaced.
  writeFileSync(path, '999999\n');
  pid = PidFile.acquire(path, '--pid-file');
  assert.equal(pid.stalePid, 999999);
  assert.equal(readFileSync(path, 'utf8'), `${process.pid}\n`);
  // Someone rewrote it with another pid: not ours to remove.
  writeFileSync(path, '12345\n');
  pid.release();
  assert.equal(readFileSync(path, 'utf8'), '12345\n');

  // A live sersync-ts holds it: refused with 75.
  const other = spawn('sh', ['-c', 'sleep 60', 'sersync-ts'], { stdio: 'ignore' });
  t.after(() => other.kill());
  await new Promise((r) => other.once('spawn', r));
  writeFileSync(path, `${other.pid}\n`);
  assert.throws(
    () => PidFile.acquire(path, '--pid-file'),
    (err: unknown) => err instanceof SersyncError && err.exitCode === ExitCode.TempFail && err.message.includes(`pid ${other.pid}`),
  );
  // A live process that is no sersync-ts (a recycled pid): stale.
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => sleeper.kill());
  await new Promise((r) => sleeper.once('spawn', r));
  writeFileSync(path, `${sleeper.pid}\n`);
  PidFile.acquire(path, '--pid-file').release();
  assert.equal(existsSync(path), false);
});

test('a pid file path that is a symbolic link in /tmp is refused and its target left alone', () => {
  const target = join(mkdtempSync(join(tmpdir(), 'sersync-ts-pid-target-')), 'victim');
  made.push(join(target, '..'));
  writeFileSync(target, 'precious\n');
  const link = inTmp('pid-link');
  symlinkSync(target, link);
  refused(() => PidFile.acquire(link, '--pid-file'), /symbolic link/);
  assert.equal(readFileSync(target, 'utf8'), 'precious\n');
  const dangling = inTmp('pid-dangling');
  symlinkSync(join(target, '..', 'created'), dangling);
  refused(() => PidFile.acquire(dangling, '--pid-file'), /symbolic link/);
  assert.equal(existsSync(join(target, '..', 'created')), false);
});
