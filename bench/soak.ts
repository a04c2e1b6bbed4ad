/**
 * Soak benchmark (issue 7): memory while a remote is down and changes go on. sersync-ts (the built daemon) watches a
 * directory whose only remote is an rsync daemon that is stopped for the whole churn; every `--tick-ms` a writer
 * creates `--per-tick` files under never-repeating names spread over 200 directories (the worst case for pending
 * state: nothing collapses by name) and removes some older ones. Every `--sample-s` seconds the daemon's VmRSS and
 * its /status (pending paths, full sync pending) are read. At the end the rsync daemon is started again and the
 * benchmark waits until the mirror equals the source: what piled up while the remote was down is not lost.
 *
 *   ./node_modules/.bin/node bench/soak.ts [--minutes 10] [--per-tick 50] [--tick-ms 100] [--sample-s 30]
 *
 * What to expect: pending state stays O(maxPendingPaths) (20,000 by default): a directory with more than
 * maxChildrenPerDir changed children becomes the directory, and past maxPendingPaths the remote's pending work
 * becomes one full sync. Nothing asserts; the figures go to stdout (markdown) and bench/results/soak-<date>.json.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/ports.ts';
import { startRsyncDaemon } from '../test/helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../test/helpers/tmp.ts';
import { waitForIdenticalTrees } from '../test/helpers/wait.ts';
import { statusKb } from './lib/procfs.ts';
import { startSersyncTs } from './lib/syncers.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'per-tick': { type: 'string', default: '50' },
    'tick-ms': { type: 'string', default: '100' },
    'sample-s': { type: 'string', default: '30' },
  },
});
const MINUTES = Number(values.minutes);
const PER_TICK = Number(values['per-tick']);
const TICK_MS = Number(values['tick-ms']);
const SAMPLE_S = Number(values['sample-s']);
const DIRS = 200;

interface Sample {
  minute: number;
  rssMb: number;
  pendingPaths: number;
  fullPending: boolean;
  written: number;
}

const log = (...a: unknown[]) => console.error(`[soak ${new Date().toISOString().slice(11, 19)}]`, ...a);

async function main(): Promise<void> {
  const dir = await makeTempDir('soak-');
  const src = join(dir, 'src');
  for (let d = 0; d < DIRS; d++) await mkdir(join(src, `d${d}`), { recursive: true });
  const rsyncd = await startRsyncDaemon({ modules: ['soak'], user: 'rsync_backup', password: 'soak' });
  const statusPort = await freePort();
  const daemon = await startSersyncTs({ dir, src, rsyncd, module: 'soak', tuning: {}, host: { ip: '127.0.0.1', port: statusPort } });
  await rsyncd.stop();
  log(`remote down; churning ${PER_TICK} new files every ${TICK_MS} ms for ${MINUTES} min`);
  const started = Date.now();
  const samples: Sample[] = [];
  let written = 0;
  let nextSample = started;
  const status = async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${statusPort}/status`, { signal: AbortSignal.timeout(3000) });
      const s = (await r.json()) as { remotes: { pendingPaths: number; pendingFullSync: boolean }[] };
      return s.remotes[0] ?? null;
    } catch {
      return null;
    }
  };
  while (Date.now() - started < MINUTES * 60_000) {
    const tick = Date.now();
    await Promise.all(
      Array.from({ length: PER_TICK }, (_, i) => writeFile(join(src, `d${(written + i) % DIRS}`, `f${written + i}.txt`), `${written + i}\n`)),
    );
    // Remove what was written 100 ticks ago in one directory, so deletions pile up too.
    if (written >= 100 * PER_TICK) await rm(join(src, `d${written % DIRS}`, `f${written - 100 * PER_TICK}.txt`), { force: true });
    written += PER_TICK;
    if (Date.now() >= nextSample) {
      nextSample += SAMPLE_S * 1000;
      const s = await status();
      const sample: Sample = {
        minute: Number(((Date.now() - started) / 60_000).toFixed(2)),
        rssMb: Number(((statusKb(daemon.pid, 'VmRSS') ?? 0) / 1024).toFixed(1)),
        pendingPaths: s?.pendingPaths ?? -1,
        fullPending: s?.pendingFullSync ?? false,
        written,
      };
      samples.push(sample);
      log(JSON.stringify(sample));
    }
    await sleep(Math.max(0, TICK_MS - (Date.now() - tick)));
  }
  log('remote back; waiting for the mirror to equal the source');
  await rsyncd.restart();
  const t0 = Date.now();
  await waitForIdenticalTrees(src, rsyncd.modules.soak as string, { ignoreRootAttrs: true, timeoutMs: 600_000 });
  const healSeconds = (Date.now() - t0) / 1000;
  const hwm = (statusKb(daemon.pid, 'VmHWM') ?? 0) / 1024;
  await daemon.stop();
  await rsyncd.stop();

  const rss = samples.map((s) => s.rssMb);
  const lines = [
    `# sersync-ts soak: remote down for ${MINUTES} min, ${PER_TICK} new files every ${TICK_MS} ms (${written} files written)`,
    '',
    '| minute | files written | VmRSS (MB) | pending paths | full sync pending |',
    '|---|---|---|---|---|',
    ...samples.map((s) => `| ${s.minute} | ${s.written} | ${s.rssMb} | ${s.pendingPaths} | ${s.fullPending ? 'yes' : 'no'} |`),
    '',
    `RSS first ${rss[0]} MB, max ${Math.max(...rss)} MB, last ${rss.at(-1)} MB; VmHWM ${hwm.toFixed(1)} MB.`,
    `Remote back: mirror identical to the source ${healSeconds.toFixed(1)} s later.`,
  ];
  console.log(lines.join('\n'));
  const out = join(import.meta.dirname, 'results', `soak-${new Date().toISOString().slice(0, 16).replace(/:/g, '-')}.json`);
  await writeFile(out, `${JSON.stringify({ minutes: MINUTES, perTick: PER_TICK, tickMs: TICK_MS, written, samples, hwmMb: hwm, healSeconds }, null, 2)}\n`);
  console.log(`Raw figures: ${out}`);
  await removeTempDirs();
}

main().catch(async (err: unknown) => {
  console.error(err);
  await removeTempDirs();
  process.exit(2);
});
