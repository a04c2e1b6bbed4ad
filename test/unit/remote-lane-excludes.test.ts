import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import PQueue from 'p-queue';
import pino from 'pino';
import type { Remote, RsyncSettings } from '../../src/config/model.ts';
import { systemClock } from '../../src/core/clock.ts';
import type { ProcessResult, ProcessRunner } from '../../src/sync/process-runner.ts';
import { NOTHING_HELD } from '../../src/sync/deletion-guard.ts';
import { RemoteLane } from '../../src/sync/remote-lane.ts';

/**
 * The lane's side of the untranslated filter regexes, with a runner that records what rsync would get (no rsync):
 * the matches go into a file, never onto argv, and the file is gone once the run is over. The real thing, with
 * 50,000 matches and a real rsync daemon, is test/integration/regex-excludes.test.ts.
 */

const root = mkdtempSync(join(tmpdir(), 'sersync-lane-excl-'));
after(() => rmSync(root, { recursive: true, force: true }));

const rsync: RsyncSettings = {
  commonParams: ['-artz'],
  auth: { enabled: false, users: '', passwordFile: '' },
  port: { enabled: false, port: 874 },
  timeout: { enabled: false, seconds: 100 },
  ssh: { enabled: false, options: [] },
};
const remote: Remote = { kind: 'daemon', ip: '10.0.0.2', name: 'www', id: '10.0.0.2::www', line: 1 };

class RecordingRunner implements ProcessRunner {
  readonly runs: { args: readonly string[]; file: string | undefined; rules: Buffer | undefined }[] = [];
  async run(_file: string, args: readonly string[]): Promise<ProcessResult> {
    const file = args.find((a) => a.startsWith('--exclude-from='))?.slice('--exclude-from='.length);
    this.runs.push({ args, file, rules: file === undefined ? undefined : readFileSync(file) });
    return { exitCode: 0, stdout: '', stderr: '', durationMs: 1 };
  }
}

function laneWith(runner: ProcessRunner) {
  return new RemoteLane(
    remote,
    { watch: root, remote, rsync, deletes: true, filters: [], defaultTimeoutSeconds: 300 },
    { quietMs: 10, maxWaitMs: 100, maxChildrenPerDir: 100, maxPendingPaths: 1000 },
    {
      clock: systemClock,
      runner,
      limiter: new PQueue({ concurrency: 1 }),
      log: pino({ level: 'silent' }),
      rsyncPath: 'rsync',
      rootBytes: root,
      untranslated: [{ source: '(.*)\\.tmp[0-9]', regex: /^(?:(.*)\.tmp[0-9])$/, line: 1 }],
      fullSyncFilters: [],
      retry: { baseMs: 1000, capMs: 60_000, random: () => 0.5 },
      deletionGuard: async () => NOTHING_HELD,
    },
  );
}

test('matches of an untranslated regex reach rsync as a file, argv stays the same size, the file is removed', async () => {
  mkdirSync(join(root, 'd'));
  for (let i = 0; i < 2000; i++) writeFileSync(join(root, 'd', `f${i}.tmp${i % 10}`), 'x');
  writeFileSync(join(root, 'd', 'keep.txt'), 'k');
  const runner = new RecordingRunner();
  const lane = laneWith(runner);
  lane.add('d', { tree: true, removed: false, created: true });
  await lane.flush();
  lane.requestFull('test');
  await lane.flush();
  lane.stop();
  assert.deepEqual(
    runner.runs.map((r) => r.args.some((a) => a.includes('.tmp'))),
    [false, false],
    'no match on argv',
  );
  for (const r of runner.runs) {
    assert.ok(r.file && r.rules, 'an exclude file');
    assert.equal(r.rules.toString('latin1').split('\0').length - 1, 2000);
    assert.ok(r.args.indexOf('--from0') < r.args.indexOf(`--exclude-from=${r.file}`));
    assert.equal(existsSync(r.file), false, 'removed after the run');
  }
});
