/**
 * `-n N` bounds the rsync processes of the whole daemon, over every remote and every site (README "Running it"). An
 * `rsync` first on the daemon's PATH records when each run starts and ends, then runs the real one; the test looks
 * only at how the runs overlap, never at how long they take.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitForIdenticalTrees } from '../helpers/wait.ts';
import { startSersync, writeConf } from './support/sersync.ts';

after(removeTempDirs);

function realRsync(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'rsync'))) return join(dir, 'rsync');
  }
  throw new Error('rsync is not on PATH');
}

/** A directory holding an `rsync` that appends `start PID` / `end PID` to `log` around the real one. */
async function recordingRsync(log: string): Promise<string> {
  const bin = await makeTempDir('limit-bin-');
  const wrapper = join(bin, 'rsync');
  // A pause before the real rsync makes two runs that are allowed to overlap do so.
  writeFileSync(
    wrapper,
    `#!/bin/sh\necho "start $$" >> '${log}'\nsleep 0.2\n'${realRsync()}' "$@"\nrc=$?\necho "end $$" >> '${log}'\nexit $rc\n`,
  );
  chmodSync(wrapper, 0o755);
  return bin;
}

/** The most rsync processes that ran at once, and how many ran, from the wrapper's log. */
function overlap(log: string): { most: number; runs: number } {
  let now = 0;
  let most = 0;
  let runs = 0;
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (line.startsWith('start ')) {
      runs++;
      most = Math.max(most, ++now);
    } else if (line.startsWith('end ')) now--;
  }
  return { most, runs };
}

/** Two sites, three remotes (two on the first site); `-r`, then changes on both sites; returns the wrapper's figures. */
async function runWithThreads(threads: number): Promise<{ most: number; runs: number }> {
  const log = join(await makeTempDir('limit-log-'), 'runs.log');
  writeFileSync(log, '');
  const bin = await recordingRsync(log);
  const dirs = await Promise.all(['a', 'b', 'a1', 'a2', 'b1'].map((n) => makeTempDir(`limit-${n}-`)));
  const [a, b, a1, a2, b1] = dirs as [string, string, string, string, string];
  const mirrors: [string, string][] = [
    [a, a1],
    [a, a2],
    [b, b1],
  ];
  writeFileSync(join(a, 'old-a.txt'), 'a');
  writeFileSync(join(b, 'old-b.txt'), 'b');
  const conf = await writeConf(await makeTempDir('limit-conf-'), {
    watch: a,
    remotes: [{ name: a1 }, { name: a2 }],
    moreSites: [{ watch: b, remotes: [{ name: b1 }] }],
    host: { ip: '127.0.0.1', port: await freePort() },
  });
  const d = await startSersync(['-r', '-n', String(threads), '-o', conf], { env: { PATH: `${bin}${delimiter}${process.env.PATH}` } });
  try {
    for (const [src, dest] of mirrors) await waitForIdenticalTrees(src, dest, { ignoreRootAttrs: true });
    for (let i = 0; i < 3; i++) {
      writeFileSync(join(a as string, `new-a-${i}.txt`), String(i));
      writeFileSync(join(b as string, `new-b-${i}.txt`), String(i));
    }
    for (const [src, dest] of mirrors) await waitForIdenticalTrees(src, dest, { ignoreRootAttrs: true, timeoutMs: 30_000 });
  } finally {
    assert.equal(await d.stop(), 0);
  }
  return overlap(log);
}

describe('-n: rsync processes at once over all remotes and sites', () => {
  test('-n 1 with two sites and three remotes: never two rsync processes at once', async () => {
    const { most, runs } = await runWithThreads(1);
    assert.ok(runs >= 6, `three full syncs and at least one update per remote ran: ${runs} runs`);
    assert.equal(most, 1);
  });

  test('-n 3 (the control: the wrapper sees overlapping runs when they are allowed)', async () => {
    const { most } = await runWithThreads(3);
    assert.ok(most >= 2, `runs overlapped: at most ${most} at once`);
  });
});
