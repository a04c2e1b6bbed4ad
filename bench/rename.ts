/**
 * Rename benchmark (issue 18): `mv` inside the watched tree, sersync-ts against a plain rsync of the renamed tree
 * measured in the same run, both pushing to one authenticated rsync daemon on 127.0.0.1 whose transfer log gives
 * the bytes that really crossed the wire (`%b`) per module.
 *
 *   ./node_modules/.bin/node bench/rename.ts [--rounds N]
 *
 * Scenarios: `dir-3000` renames a directory of 3,000 files (32 MiB of incompressible data); `file-200m` renames one
 * 200 MiB file in its directory. Both trees are on the remote before the `mv`. Measured: seconds from the `mv` until
 * the remote tree is identical (sersync-ts: the end of its last rsync before the trees agree, seen to within 20 ms;
 * the trees are not walked while one runs, as in engine.ts), or the wall time of the reference rsync (`-artz --delete`
 * of the whole renamed tree, which already sits on the remote under its old name), and the bytes the daemon received.
 * lsyncd is not run here (its default.rsync sends a move as delete + new; rsyncssh needs a remote shell).
 *
 * Nothing fails on a slow figure; the exit code is 1 when a tree ends up different.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/ports.ts';
import { runProcess } from '../test/helpers/processes.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../test/helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../test/helpers/tmp.ts';
import { compareTrees, generateTree } from '../test/helpers/trees.ts';
import { childrenNamed } from './lib/procfs.ts';
import { timedRun } from './lib/reference.ts';
import { startSersyncTs } from './lib/syncers.ts';
import { waitTreesAgree } from './lib/tree-probe.ts';

const SCENARIOS = {
  'dir-3000': {
    change: 'mv photos photos-2026 (3,000 files, 32 MiB)',
    seed: (src: string) => generateTree(join(src, 'photos'), { dirs: 29, filesPerDir: 100, size: 11_185 }),
    from: 'photos',
    to: 'photos-2026',
  },
  'file-200m': {
    change: 'mv video.mp4 video-final.mp4 (200 MiB)',
    seed: (src: string) => writeRandom(join(src, 'video.mp4'), 200 << 20),
    from: 'video.mp4',
    to: 'video-final.mp4',
  },
} as const;

interface Row {
  scenario: string;
  who: 'sersync-ts' | 'plain rsync';
  seconds: number | undefined;
  bytes: number;
  identical: boolean;
}

async function writeRandom(file: string, bytes: number): Promise<void> {
  const fh = await open(file, 'w');
  try {
    for (let left = bytes; left > 0; left -= 1 << 20) await fh.write(randomBytes(Math.min(1 << 20, left)));
  } finally {
    await fh.close();
  }
}

/** Bytes the daemon received for `module` since log offset `from` (the sum of `%b`). */
async function received(rsyncd: RsyncDaemon, module: string, from: number): Promise<number> {
  const text = (await readFile(join(rsyncd.configDir, 'rsyncd.log'))).subarray(from).toString('latin1');
  let bytes = 0;
  for (const m of text.matchAll(/ XFER (\S+) .* (\d+) (\d+)$/gm)) if (m[1] === module) bytes += Number(m[3]);
  return bytes;
}

const logSize = async (rsyncd: RsyncDaemon) => (await stat(join(rsyncd.configDir, 'rsyncd.log'))).size;

async function pushAll(rsyncd: RsyncDaemon, src: string, module: string, extra: string[] = []) {
  return runProcess('rsync', [
    '-artz',
    '--delete',
    ...extra,
    `--password-file=${rsyncd.passwordFile}`,
    `${src}/`,
    rsyncd.moduleUrl(module),
  ]);
}

async function round(name: keyof typeof SCENARIOS, rsyncd: RsyncDaemon, n: number): Promise<Row[]> {
  const s = SCENARIOS[name];
  const rows: Row[] = [];
  for (const who of ['sersync-ts', 'plain rsync'] as const) {
    const module = `${who === 'sersync-ts' ? 'ours' : 'ref'}${n}${name.replace(/\W/g, '')}`;
    const dir = await makeTempDir(`bench-rename-${module}-`);
    const src = join(dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'bench-root-marker.txt'), 'stays\n');
    await s.seed(src);
    const seed = await pushAll(rsyncd, src, module);
    if (seed.code !== 0) throw new Error(`seeding ${module} failed: ${seed.stderr}`);
    await runProcess('sync', []);
    const dest = rsyncd.modules[module] as string;
    const from = await logSize(rsyncd);
    let seconds: number | undefined;
    if (who === 'sersync-ts') {
      const daemon = await startSersyncTs({
        dir,
        src,
        rsyncd,
        module,
        tuning: { watcher: 'dirs' },
        host: { ip: '127.0.0.1', port: await freePort() },
      });
      try {
        const t0 = performance.now();
        await rename(join(src, s.from), join(src, s.to));
        const wait = await waitTreesAgree(src, dest, {
          intervalMs: 50,
          timeoutMs: 300_000,
          busy: () => childrenNamed(daemon.pid, 'rsync').length > 0,
        });
        seconds = wait.at === undefined ? undefined : (wait.at - t0) / 1000;
      } finally {
        await daemon.stop();
      }
    } else {
      await rename(join(src, s.from), join(src, s.to));
      const run = await timedRun('rsync', [
        '-artz',
        '--delete',
        `--password-file=${rsyncd.passwordFile}`,
        `${src}/`,
        rsyncd.moduleUrl(module),
      ]);
      seconds = run.code === 0 ? run.wall : undefined;
    }
    const identical = (await compareTrees(src, dest, { ignoreRootAttrs: true })).length === 0;
    rows.push({ scenario: name, who, seconds, bytes: await received(rsyncd, module, from), identical });
    process.stderr.write(`${name} ${who}: ${seconds?.toFixed(2) ?? 'timeout'} s, ${rows.at(-1)?.bytes} bytes received\n`);
  }
  return rows;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '1' } } });
  const rounds = Math.max(1, Number(values.rounds));
  const modules = [];
  for (let n = 0; n < rounds; n++)
    for (const name of Object.keys(SCENARIOS)) for (const w of ['ours', 'ref']) modules.push(`${w}${n}${name.replace(/\W/g, '')}`);
  const rsyncd = await startRsyncDaemon({ modules, user: 'rsync_backup', password: 'bench' });
  const rows: Row[] = [];
  try {
    for (const m of modules) await rsyncd.setModuleLines(m, ['transfer logging = yes', 'log format = XFER %m %f %l %b']);
    for (let n = 0; n < rounds; n++)
      for (const name of Object.keys(SCENARIOS) as (keyof typeof SCENARIOS)[]) rows.push(...(await round(name, rsyncd, n)));
  } finally {
    await rsyncd.stop();
    if (process.env.SERSYNC_TEST_KEEP_TMP !== '1') await removeTempDirs();
  }
  console.log('| change | who | seconds until identical | bytes received by the rsync daemon |');
  console.log('| --- | --- | ---: | ---: |');
  for (const r of rows) {
    const change = SCENARIOS[r.scenario as keyof typeof SCENARIOS].change;
    console.log(
      `| ${change} | ${r.who} | ${r.seconds?.toFixed(2) ?? 'timeout'} | ${r.bytes.toLocaleString('en')}${r.identical ? '' : ' (DIFFERENT)'} |`,
    );
  }
  return rows.every((r) => r.identical) ? 0 : 1;
}

process.exitCode = await main();
