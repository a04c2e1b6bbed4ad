/**
 * Uploads in progress: a 20 MiB file written through one descriptor in 20 chunks 0.25 s apart (an SFTP upload, a
 * download), and a file appended to by reopening it 20 times. Counts how often the rsync daemon received the file
 * (its transfer log), the bytes it wrote for it, and the seconds from the close until the remote copy is whole.
 * lsyncd (default.rsync, CloseWrite mode, delay 1 s) beside it where installed.
 *
 *   ./node_modules/.bin/node bench/slow-writer.ts [--rounds N] [--no-lsyncd]
 */
import { open, readFile, writeFile } from 'node:fs/promises';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { runProcess } from '../test/helpers/processes.ts';
import { startRsyncDaemon } from '../test/helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../test/helpers/tmp.ts';
import { type Syncer, startLsyncd, startSersyncTs } from './lib/syncers.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, 'no-lsyncd': { type: 'boolean', default: false } } });
const rounds = Number(values.rounds);
const withLsyncd = !values['no-lsyncd'] && (await runProcess('lsyncd', ['-version'])).code === 0;
const CHUNK = Buffer.alloc(1024 * 1024, 'x');

interface Figures {
  daemon: string;
  round: number;
  transfers: number;
  mbWritten: number;
  secondsAfterClose: number;
  appendIdentical: boolean;
}

const results: Figures[] = [];
const rsyncd = await startRsyncDaemon({ modules: ['sersync', 'lsyncd'], user: 'rsync_backup', password: 'bench pass' });
try {
  for (const module of ['sersync', 'lsyncd']) {
    await rsyncd.setModuleLines(module, ['transfer logging = yes', `log format = XFER ${module} %f %l`]);
  }
  for (let round = 1; round <= rounds; round++) {
    for (const label of withLsyncd ? ['sersync-ts', 'lsyncd'] : ['sersync-ts']) {
      const module = label === 'sersync-ts' ? 'sersync' : 'lsyncd';
      const dir = await makeTempDir(`bench-slow-${module}`);
      const src = join(dir, 'src');
      await mkdir(src);
      await writeFile(join(src, 'marker.txt'), 'keeps the root from looking unmounted');
      const syncer: Syncer =
        label === 'sersync-ts'
          ? await startSersyncTs({ dir, src, rsyncd, module, tuning: { stateDir: join(dir, 'state') } })
          : await startLsyncd({ dir, src, rsyncd, module });
      const dest = rsyncd.modules[module] as string;
      const name = `video-${round}.bin`;
      const logBefore = await readFile(join(rsyncd.configDir, 'rsyncd.log'), 'utf8');
      const file = await open(join(src, name), 'w');
      for (let i = 0; i < 20; i++) {
        await file.write(CHUNK);
        await sleep(250);
      }
      await file.close();
      const closedAt = performance.now();
      let seconds = Number.NaN;
      for (;;) {
        const st = await readFile(join(dest, name)).catch(() => null);
        if (st !== null && st.length === 20 * CHUNK.length) {
          seconds = (performance.now() - closedAt) / 1000;
          break;
        }
        if (performance.now() - closedAt > 60_000) break;
        await sleep(5);
      }
      await sleep(1500);
      const log = (await readFile(join(rsyncd.configDir, 'rsyncd.log'), 'utf8')).slice(logBefore.length);
      const lines = log.split('\n').filter((l) => l.includes(`XFER ${module} ${name} `));
      const bytes = lines.reduce((n, l) => n + Number(/ (\d+)$/.exec(l)?.[1] ?? 0), 0);
      for (let i = 0; i < 20; i++) {
        const f = await open(join(src, `append-${round}.log`), 'a');
        await f.write(`line ${i}\n`);
        await f.close();
        await sleep(30);
      }
      // The appended file only: the module also holds earlier rounds, and sersync-ts runs without -r here.
      const want = await readFile(join(src, `append-${round}.log`));
      let identical = false;
      for (let t = 0; t < 100 && !identical; t++) {
        await sleep(100);
        identical = (await readFile(join(dest, `append-${round}.log`)).catch(() => null))?.equals(want) === true;
      }
      results.push({ daemon: label, round, transfers: lines.length, mbWritten: bytes / 2 ** 20, secondsAfterClose: seconds, appendIdentical: identical });
      console.error(JSON.stringify(results.at(-1)));
      await syncer.stop();
    }
  }
} finally {
  await rsyncd.stop();
  await removeTempDirs();
}
console.log('| daemon | round | times received | MB written by the receiver | s from close to whole | append x20 identical |');
console.log('|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.daemon} | ${r.round} | ${r.transfers} | ${r.mbWritten.toFixed(1)} | ${r.secondsAfterClose.toFixed(3)} | ${r.appendIdentical} |`);
}
const out = join(import.meta.dirname, 'results', `slow-writer-${new Date().toISOString().slice(0, 16).replace(':', '-')}.json`);
await writeFile(out, `${JSON.stringify({ when: new Date().toISOString(), results }, null, 1)}\n`);
console.error(`raw figures: ${out}`);
