import assert from 'node:assert/strict';
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { regexToRsyncPattern } from '../../src/watch/path-filter.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { type SersyncProcess, startSersync, writeConf } from './support/sersync.ts';

/**
 * Issue 16, build item 5: a filter regex that rsync cannot express, matched by 50,000 files (names long enough that
 * one `--exclude=` argument each overflows the kernel's 2 MiB argument limit), through a full sync and a directory
 * sync of the real daemon to a real rsync daemon with auth. None of them may arrive, a UTF-8 name and a name that
 * is no UTF-8 at all neither; the files the regex does not match do.
 */

const REGEX = '(.*)\\.tmp[0-9]';
const MATCHING = 50_000;
/** rsync matches each file against each exclude rule in turn: 50,000 of them take it tens of seconds. */
const SYNC_TIMEOUT_MS = 300_000;
let rsyncd: RsyncDaemon;
const running: SersyncProcess[] = [];

before(async () => {
  rsyncd = await startRsyncDaemon({ modules: ['full', 'dir', 'few'], user: 'rsync_backup' });
});

after(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await rsyncd?.stop();
  await removeTempDirs();
});

const utf8Name = Buffer.from('é-upload.tmp3');
const rawName = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('-raw.tmp4')]);
/** Not matched by the regex (anchored: `.tmp10` and `.tmp` are not `.tmp` + one digit): these must arrive. */
const KEPT = ['keep.txt', 'notes.tmp', 'x.tmp10'];

async function fillDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < MATCHING; i++) await writeFile(join(dir, `upload-session-${String(i).padStart(6, '0')}-chunk.tmp${i % 10}`), 'x');
  await writeFile(Buffer.concat([Buffer.from(`${dir}/`), utf8Name]), 'utf-8 name');
  await writeFile(Buffer.concat([Buffer.from(`${dir}/`), rawName]), 'not utf-8');
  for (const name of KEPT) await writeFile(join(dir, name), name);
}

async function sersyncFor(module: string, src: string, base: string, args: string[]): Promise<SersyncProcess> {
  const conf = await writeConf(base, {
    watch: src,
    remotes: [{ ip: '127.0.0.1', name: module }],
    auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
    port: rsyncd.port,
    failLog: join(base, 'state', 'fail.log'),
    filterExcludes: [REGEX],
  });
  const proc = await startSersync([...args, '-o', conf]);
  running.push(proc);
  return proc;
}

/** The first record that says a run of this kind ended, in success or failure. */
function runEnded(proc: SersyncProcess, done: RegExp, what: string) {
  return proc.waitForLog(
    (r) => typeof r.msg === 'string' && (done.test(r.msg) || /^rsync \w+ to .* failed|^internal error/.test(r.msg)),
    what,
    SYNC_TIMEOUT_MS,
  );
}

async function names(dir: string): Promise<string[]> {
  const list = await readdir(dir, { encoding: 'buffer' });
  return list.map((n) => n.toString('latin1')).sort();
}

test('the regex has no rsync pattern (it needs the walk)', () => {
  assert.equal(regexToRsyncPattern(REGEX), null);
});

test('50,000 matches in a full sync (-r): none sent, no E2BIG, non-ASCII names too', { timeout: SYNC_TIMEOUT_MS + 60_000 }, async () => {
  const base = await makeTempDir('regex-full');
  const src = join(base, 'src');
  await fillDirectory(join(src, 'data'));
  await writeFile(join(src, 'index.html'), 'index');
  const proc = await sersyncFor('full', src, base, ['-r']);
  const ended = await runEnded(proc, /^full sync to .* done/, 'the full sync');
  assert.match(String(ended.msg), /^full sync to .* done/, JSON.stringify(ended));
  const dest = rsyncd.modules.full as string;
  assert.deepEqual(await names(dest), ['data', 'index.html']);
  assert.deepEqual(await names(join(dest, 'data')), KEPT);
});

test('50,000 matches in a directory moved into the tree: none sent, no E2BIG, non-ASCII names too', {
  timeout: SYNC_TIMEOUT_MS + 60_000,
}, async () => {
  const base = await makeTempDir('regex-dir');
  const src = join(base, 'src');
  await mkdir(src);
  await writeFile(join(src, 'index.html'), 'index');
  const staging = join(base, 'staging', 'batch');
  await fillDirectory(staging);
  const proc = await sersyncFor('dir', src, base, []);
  await rename(staging, join(src, 'batch'));
  const ended = await runEnded(proc, /^synced \d+ paths/, 'the directory sync');
  assert.match(String(ended.msg), /^synced \d+ paths/, JSON.stringify(ended));
  const dest = rsyncd.modules.dir as string;
  assert.deepEqual(await names(join(dest, 'batch')), KEPT);
});

test('a few matches with non-ASCII names in a directory sync: excluded by their bytes', async () => {
  const base = await makeTempDir('regex-few');
  const src = join(base, 'src');
  await mkdir(src);
  const proc = await sersyncFor('few', src, base, []);
  const staging = join(base, 'staging', 'few');
  await mkdir(staging, { recursive: true });
  await writeFile(Buffer.concat([Buffer.from(`${staging}/`), utf8Name]), 'utf-8 name');
  await writeFile(Buffer.concat([Buffer.from(`${staging}/`), rawName]), 'not utf-8');
  await writeFile(join(staging, 'plain.tmp5'), 'ascii');
  for (const name of KEPT) await writeFile(join(staging, name), name);
  await rename(staging, join(src, 'few'));
  const ended = await runEnded(proc, /^synced \d+ paths/, 'the directory sync');
  assert.match(String(ended.msg), /^synced \d+ paths/, JSON.stringify(ended));
  assert.deepEqual(await names(join(rsyncd.modules.few as string, 'few')), KEPT);
});
