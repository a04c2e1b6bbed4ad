import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import PQueue from 'p-queue';
import pino from 'pino';
import { NOTHING_HELD } from '../../src/sync/deletion-guard.ts';
import type { DiskEntryKind, DiskProbe } from '../../src/sync/disk-probe.ts';
import type { ProcessResult, ProcessRunner } from '../../src/sync/process-runner.ts';
import { type LaneDeps, RemoteLane } from '../../src/sync/remote-lane.ts';
import { FakeClock } from './support/fake-clock.ts';
import { DAEMON_REMOTE, PLAIN_RSYNC } from './support/rsync-fixtures.ts';

/**
 * The lane's planning on a scripted disk and a fake clock (no directory, no rsync, no clock steps: flush() sends at
 * once): what is looked at and what rsync would be asked. The real-disk counterparts are test/integration/symlink-swap.test.ts and regex-excludes.test.ts.
 */

const rsync = PLAIN_RSYNC;
const remote = DAEMON_REMOTE;

/** Paths under /w: kinds (anything unnamed is gone) and directory listings. */
class ScriptedDisk implements DiskProbe {
  readonly kinds = new Map<string, DiskEntryKind>();
  readonly listings = new Map<string, { name: string; dir: boolean }[]>();
  readonly looked: string[] = [];
  async kind(path: string) {
    this.looked.push(path);
    return this.kinds.get(path) ?? 'gone';
  }
  async *entries(dir: string) {
    yield* this.listings.get(dir) ?? [];
  }
}

class RecordingRunner implements ProcessRunner {
  readonly runs: { args: readonly string[]; stdin: string[]; excludes: string[]; file: string | undefined }[] = [];
  async run(_file: string, args: readonly string[], opts?: { input?: Buffer | null }): Promise<ProcessResult> {
    const split = (b: Buffer | undefined | null) => (b ? b.toString('latin1').split('\0').slice(0, -1) : []);
    const file = args.find((a) => a.startsWith('--exclude-from='))?.slice('--exclude-from='.length);
    this.runs.push({ args, stdin: split(opts?.input), excludes: split(file === undefined ? undefined : readFileSync(file)), file });
    return { exitCode: 0, stdout: '', stderr: '', durationMs: 1 };
  }
}

function lane(disk: ScriptedDisk, extra: Partial<LaneDeps> = {}) {
  const runner = new RecordingRunner();
  const l = new RemoteLane(
    remote,
    { watch: '/w', remote, rsync, deletes: true, filters: [], defaultTimeoutSeconds: 300 },
    { quietMs: 10, maxWaitMs: 100, maxChildrenPerDir: 100, maxPendingPaths: 1000 },
    {
      clock: new FakeClock(),
      runner,
      limiter: new PQueue({ concurrency: 1 }),
      log: pino({ level: 'silent' }),
      rsyncPath: 'rsync',
      rootBytes: '/w',
      untranslated: [],
      fullSyncFilters: [],
      retry: { baseMs: 1000, capMs: 60_000, random: () => 0.5 },
      deletionGuard: async () => NOTHING_HELD,
      disk,
      ...extra,
    },
  );
  return { runner, lane: l };
}

const changed = { tree: false, removed: false, created: false };

test('what exists is sent, what is gone is deleted, a directory goes as a tree', async () => {
  const disk = new ScriptedDisk();
  disk.kinds.set('/w/f.html', 'other').set('/w/d', 'dir').set('/w/link', 'link');
  const { runner, lane: l } = lane(disk);
  for (const p of ['f.html', 'd', 'link', 'gone.html']) l.add(p, changed);
  await l.flush();
  l.stop();
  assert.deepEqual(
    runner.runs.map((r) => [r.args.includes('--include-from=-') ? 'rules' : 'files-from', r.args.includes('--delete'), r.stdin]),
    [
      ['rules', false, ['/f.html', '/d', '/d/***', '/link']],
      ['rules', true, ['/gone.html', '/gone.html/***']],
    ],
  );
});

test('a directory swapped for a symlink after the plan: the link is listed instead of the path below it', async () => {
  const disk = new ScriptedDisk();
  disk.kinds.set('/w/a', 'dir').set('/w/a/shadow', 'other').set('/w/b', 'dir').set('/w/b/c', 'dir').set('/w/b/c/f', 'other');
  const { runner, lane: l } = lane(disk, {
    afterPlan: async () => {
      disk.kinds.set('/w/a', 'link');
      disk.looked.length = 0;
    },
  });
  l.add('a/shadow', changed);
  l.add('b/c/f', changed);
  await l.flush();
  l.stop();
  assert.deepEqual(
    runner.runs.map((r) => r.stdin),
    [['/b/c/f', '/a']],
  );
  assert.deepEqual(disk.looked.sort(), ['/w/a', '/w/b', '/w/b/c'], 'each ancestor once, none below the link');
});

test("an untranslated regex: the walk of the tree goes into the exclude file, by the names' bytes", async () => {
  const disk = new ScriptedDisk();
  const e = Buffer.from('é.tmp1').toString('latin1');
  disk.kinds.set('/w/d', 'dir');
  disk.listings.set('/w/d', [
    { name: e, dir: false },
    { name: 'keep', dir: false },
    { name: 'sub', dir: true },
  ]);
  disk.listings.set('/w/d/sub', [{ name: 'x.tmp2', dir: false }]);
  const { runner, lane: l } = lane(disk, { untranslated: [{ source: '(.*)\\.tmp[0-9]', regex: /^(?:(.*)\.tmp[0-9])$/, line: 1 }] });
  l.add('d', { tree: true, removed: false, created: true });
  await l.flush();
  l.stop();
  assert.deepEqual(
    runner.runs.map((r) => r.excludes),
    [[`/d/${e}`, '/d/sub/x.tmp2']],
  );
});

test('matches of an untranslated regex reach rsync as a file, argv stays the same size, the file is removed', async () => {
  const disk = new ScriptedDisk();
  disk.kinds.set('/w/d', 'dir');
  const files = Array.from({ length: 2000 }, (_, i) => ({ name: `f${i}.tmp${i % 10}`, dir: false }));
  disk.listings.set('/w/d', [...files, { name: 'keep.txt', dir: false }]);
  disk.listings.set('/w', [{ name: 'd', dir: true }]);
  const { runner, lane: l } = lane(disk, { untranslated: [{ source: '(.*)\\.tmp[0-9]', regex: /^(?:(.*)\.tmp[0-9])$/, line: 1 }] });
  l.add('d', { tree: true, removed: false, created: true });
  await l.flush();
  l.requestFull('test');
  await l.flush();
  l.stop();
  assert.deepEqual(
    runner.runs.map((r) => r.args.some((a) => a.includes('.tmp'))),
    [false, false],
    'no match on argv',
  );
  for (const r of runner.runs) {
    assert.ok(r.file, 'an exclude file');
    assert.equal(r.excludes.length, 2000);
    assert.ok(r.args.indexOf('--from0') < r.args.indexOf(`--exclude-from=${r.file}`));
    assert.equal(existsSync(r.file), false, 'removed after the run');
  }
});
