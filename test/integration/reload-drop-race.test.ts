/**
 * A site that a reload drops, while its root is replaced during the reload's grace period (the mount poll or the
 * watcher reports the root gone): the root follow queued behind the reload must not bring the dropped site back as
 * one that nobody stops. In-process daemon with its real watcher on real directories; the runner is scripted so that
 * the dropped site's batch is still running when the root goes.
 */
import assert from 'node:assert/strict';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { parseConfig } from '../../src/config/parse-config.ts';
import { startDaemon } from '../../src/daemon/daemon.ts';
import type { ProcessResult, ProcessRunner, RunOptions } from '../../src/sync/process-runner.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitFor } from '../helpers/wait.ts';

after(removeTempDirs);

test('a root follow queued behind the reload that drops its site does not start that site again', { timeout: 60_000 }, async () => {
  const dir = await makeTempDir('drop-race');
  for (const d of ['a', 'b', 'ma', 'mb', 'state']) await mkdir(`${dir}/${d}`, { mode: 0o700 });
  const xml = (sites: string) =>
    Buffer.from(`<head><sersync>${sites}<failLog path="${dir}/fail.sh" timeToExecute="60"/></sersync>
<tuning stateDir="${dir}/state"/></head>`);
  const a = `<localpath watch="${dir}/a"><remote name="${dir}/ma"/></localpath>`;
  const b = `<localpath watch="${dir}/b"><remote name="${dir}/mb"/></localpath>`;
  const both = parseConfig(xml(a + b), 'c.xml', { cwd: dir });
  const onlyA = parseConfig(xml(a), 'c.xml', { cwd: dir });
  const runs: string[] = [];
  const runner: ProcessRunner = {
    async run(_file: string, args: readonly string[], opts?: RunOptions): Promise<ProcessResult> {
      if (args[0] === '--version') return { exitCode: 0, stdout: 'rsync  version 3.2.7', stderr: '', durationMs: 0 };
      runs.push(args.filter((x) => x.startsWith('/')).join(' '));
      await sleep(7000, undefined, { signal: opts?.signal }).catch(() => {});
      return { exitCode: 0, stdout: '', stderr: '', durationMs: 7000 };
    },
  };
  const daemon = await startDaemon({
    config: both,
    log: pino({ level: 'silent' }),
    initialSync: false,
    workers: 4,
    runner,
    statusEndpoint: false,
  });
  await writeFile(`${dir}/b/f1`, 'x');
  await waitFor(async () => runs.some((r) => r.startsWith(`${dir}/b/`)), { what: "b's batch running" });
  const reloading = daemon.reload(onlyA);
  // The dropped root is replaced while the reload waits for b's batch (7 s: longer than the 5 s mount poll).
  await sleep(300);
  await rename(`${dir}/b`, `${dir}/b.old`);
  await mkdir(`${dir}/b`);
  await reloading;
  assert.deepEqual(
    daemon.snapshot().sites.map((s) => s.watch),
    [`${dir}/a`],
  );
  await writeFile(`${dir}/b/after-drop`, 'x');
  const before = runs.length;
  assert.equal(await daemon.stop('test', 1000), 0);
  await writeFile(`${dir}/b/after-stop`, 'x');
  // Long enough for a follow retry (2 s) and a batch of the resurrected site; nothing of b may run.
  await sleep(4000);
  assert.deepEqual(
    runs.slice(before).filter((r) => r.startsWith(`${dir}/b`)),
    [],
  );
  assert.equal(runs.filter((r) => r.startsWith(`${dir}/b/`)).length, 1, 'b ran once, before the reload');
});
