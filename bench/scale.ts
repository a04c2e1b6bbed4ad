/**
 * Scale benchmark (issue 7): how sersync-ts starts, how much memory it holds and how fast it syncs on big trees.
 *
 *   ./node_modules/.bin/node bench/scale.ts [--tree 200k|1m|both] [--watcher dirs|chokidar|both]
 *                                           [--skip-lsyncd] [--chokidar-1m] [--repeat N]
 *
 * Trees (generated once, reused while their marker file `.scale-tree-complete` is there):
 *   /tmp/sersync-scale-200k  d{0..19}/s{1..100}/f{0..99}.txt   200,000 files, 2,021 dirs (with the root)
 *   /tmp/sersync-scale-1m    t{0..99}/s{0..999}/f{0..9}.txt   1,000,000 files, 100,101 dirs
 *   /tmp/sersync-scale-1m-mirror  an `rsync -a` copy of the 1M tree (the daemon's local remote)
 *
 * Measures, for each watcher (and lsyncd 2.x with init = false where installed), every figure `--repeat` times
 * (default 2; page cache cannot be dropped here, so the first run of a tree may be colder than the second):
 *   - wall seconds from spawn to the "watching" log line, and the daemon's own logged `seconds`
 *   - VmRSS as soon as "watching" is seen, VmRSS 3 s later, VmHWM (peak); inotify watches (fdinfo `inotify wd:` lines)
 *   - 1M tree, watcher=dirs: idle CPU ticks over 10 s; one changed file → identical in the mirror (median of 5);
 *     `cp -a /usr/share/man` burst → seconds from the end of cp until src/man and mirror/man agree, the daemon's
 *     rsync processes (sum of `rsyncRuns`), and a plain `rsync -artuz src/man/ ref/man/` timed in the same run.
 * Results: bench/results/scale-<YYYY-MM-DD-HHMM>.json (UTC). Nothing asserts: the figures are printed as a markdown table and written to bench/results/scale-<date>.json.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
  lstatSync,
} from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { BIN, writeConf } from '../test/integration/support/sersync.ts';
import { compareTrees } from '../test/helpers/trees.ts';

type TreeKind = '200k' | '1m';

const { values: opt } = parseArgs({
  options: {
    tree: { type: 'string', default: 'both' },
    watcher: { type: 'string', default: 'both' },
    'skip-lsyncd': { type: 'boolean', default: false },
    'chokidar-1m': { type: 'boolean', default: false },
    repeat: { type: 'string', default: '2' },
  },
});
const trees: TreeKind[] = opt.tree === 'both' ? ['200k', '1m'] : [opt.tree as TreeKind];
const watchers: ('dirs' | 'chokidar')[] = opt.watcher === 'both' ? ['dirs', 'chokidar'] : [opt.watcher as 'dirs' | 'chokidar'];
const REPEAT = Number(opt.repeat);
const LSYNCD = '/usr/bin/lsyncd';
const useLsyncd = !opt['skip-lsyncd'] && existsSync(LSYNCD);
const MAN = '/usr/share/man';
const WORK = '/tmp/sersync-scale-work';
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

const log = (...a: unknown[]) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

// ---------------------------------------------------------------------------------------------------- trees

const TREES: Record<TreeKind, { root: string; dirs: [string, number][]; dirCount: number }> = {
  '200k': { root: '/tmp/sersync-scale-200k', dirs: [], dirCount: 1 + 20 + 20 * 100 },
  '1m': { root: '/tmp/sersync-scale-1m', dirs: [], dirCount: 1 + 100 + 100 * 1000 },
};
for (let d = 0; d < 20; d++) for (let s = 1; s <= 100; s++) TREES['200k'].dirs.push([`d${d}/s${s}`, 100]);
for (let t = 0; t < 100; t++) for (let s = 0; s < 1000; s++) TREES['1m'].dirs.push([`t${t}/s${s}`, 10]);
const MARKER = '.scale-tree-complete';

async function ensureTree(kind: TreeKind): Promise<number> {
  const { root, dirs } = TREES[kind];
  if (existsSync(join(root, MARKER))) return 0;
  log(`generating ${root} (${dirs.length} leaf dirs)`);
  const t0 = Date.now();
  let i = 0;
  const worker = async () => {
    while (i < dirs.length) {
      const [d, n] = dirs[i++] as [string, number];
      await mkdir(`${root}/${d}`, { recursive: true });
      await Promise.all(Array.from({ length: n }, (_, f) => writeFile(`${root}/${d}/f${f}.txt`, `${d}/f${f}\n`)));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  await writeFile(join(root, MARKER), `${kind} ${dirs.length} dirs\n`);
  return (Date.now() - t0) / 1000;
}

function run(cmd: string, args: string[]): { seconds: number; code: number | null; stderr: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { seconds: (performance.now() - t0) / 1000, code: r.status, stderr: (r.stderr ?? '').slice(-2000) };
}

// ---------------------------------------------------------------------------------------------------- /proc

function statusKb(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
function cpuTicks(pid: number): number | undefined {
  try {
    const t = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}
/** inotify watches held by the process: `inotify wd:` lines in the fdinfo of its inotify descriptors. */
function inotifyWatches(pid: number): number {
  let n = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target = '';
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (target !== 'anon_inode:inotify') continue;
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
      let i = -1;
      while ((i = info.indexOf('inotify wd:', i + 1)) !== -1) n++;
    }
  } catch {
    // gone
  }
  return n;
}
const mb = (kb: number | undefined) => (kb === undefined ? undefined : Math.round(kb / 1024));

// ---------------------------------------------------------------------------------------------------- processes

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) {
    try {
      process.kill(-(c.pid as number), 'SIGKILL');
    } catch {}
  }
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

interface Daemon {
  child: ChildProcess;
  pid: number;
  logFile: string;
  spawnedAt: number;
  exited: Promise<{ code: number | null; signal: string | null }>;
  done: () => boolean;
}
function startProcess(file: string, args: string[], logFile: string): Daemon {
  const fd = openSync(logFile, 'w');
  const spawnedAt = Date.now();
  const child = spawn(file, args, { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  live.add(child);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, pid: child.pid as number, logFile, spawnedAt, exited, done: () => done };
}
async function stopProcess(d: Daemon): Promise<{ code: number | null; signal: string | null }> {
  if (!d.done()) {
    try {
      process.kill(-d.pid, 'SIGTERM');
    } catch {}
    const t = setTimeout(() => {
      try {
        process.kill(-d.pid, 'SIGKILL');
      } catch {}
    }, 20_000);
    const r = await d.exited;
    clearTimeout(t);
    return r;
  }
  return d.exited;
}
function records(d: Daemon): Record<string, unknown>[] {
  let text = '';
  try {
    text = readFileSync(d.logFile, 'utf8');
  } catch {}
  return text.split('\n').flatMap((l) => {
    if (!l.startsWith('{')) return [];
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}
const tail = (file: string) => {
  try {
    return readFileSync(file, 'utf8').slice(-3000);
  } catch {
    return '';
  }
};

// ---------------------------------------------------------------------------------------------------- startup

interface Startup {
  ok: boolean;
  error?: string;
  wallSeconds?: number;
  loggedSeconds?: number;
  directories?: number;
  inotifyWatches?: number;
  rssMbAtWatching?: number;
  rssMb3sLater?: number;
  hwmMb?: number;
}

/** Spawns sersync-ts and waits for "watching"; returns the process still running. */
async function startSersync(kind: TreeKind, watcher: 'dirs' | 'chokidar', remote: string, tag: string, timeoutMs: number) {
  const dir = join(WORK, `${tag}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const conf = await writeConf(dir, {
    watch: TREES[kind].root,
    remotes: [{ name: remote }],
    failLog: join(dir, 'rsync_fail_log.sh'),
    tuning: { watcher, stateDir: dir },
  });
  const d = startProcess(process.execPath, [BIN, '-o', conf], join(dir, 'daemon.log'));
  const out: Startup = { ok: false };
  const deadline = Date.now() + timeoutMs;
  let peakRss = 0;
  for (;;) {
    const hit = records(d).find((r) => typeof r.msg === 'string' && r.msg.startsWith('watching '));
    if (hit) {
      out.rssMbAtWatching = mb(statusKb(d.pid, 'VmRSS'));
      out.hwmMb = mb(statusKb(d.pid, 'VmHWM'));
      out.ok = true;
      out.wallSeconds = (Date.parse(String(hit.time)) - d.spawnedAt) / 1000;
      out.loggedSeconds = Number(hit.seconds);
      out.directories = Number(hit.directories);
      break;
    }
    if (d.done()) {
      out.error = `exited ${JSON.stringify(await d.exited)} before watching: ${tail(d.logFile)}`;
      return { d, out };
    }
    const rss = statusKb(d.pid, 'VmRSS') ?? 0;
    peakRss = Math.max(peakRss, rss);
    if (Date.now() > deadline || rss > 4 * 1024 * 1024) {
      out.error = `no "watching" after ${((Date.now() - d.spawnedAt) / 1000).toFixed(1)} s (RSS ${mb(rss)} MB); stopped`;
      await stopProcess(d);
      return { d, out };
    }
    await sleep(10);
  }
  out.inotifyWatches = inotifyWatches(d.pid);
  await sleep(3000);
  out.rssMb3sLater = mb(statusKb(d.pid, 'VmRSS'));
  out.hwmMb = mb(statusKb(d.pid, 'VmHWM'));
  return { d, out };
}

async function startupOnly(kind: TreeKind, watcher: 'dirs' | 'chokidar', i: number, timeoutMs: number): Promise<Startup> {
  const target = join(WORK, 'unused-target');
  mkdirSync(target, { recursive: true });
  log(`${kind} ${watcher} startup #${i + 1}`);
  const { d, out } = await startSersync(kind, watcher, target, `${kind}-${watcher}-${i}`, timeoutMs);
  if (!d.done()) {
    const r = await stopProcess(d);
    if (r.code !== 0) out.error = `${out.error ?? ''} stop: exit ${JSON.stringify(r)}`.trim();
  }
  log(`  ${JSON.stringify(out)}`);
  return out;
}

async function lsyncdStartup(kind: TreeKind, i: number): Promise<Startup> {
  const dir = join(WORK, `lsyncd-${kind}-${i}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'target'), { recursive: true });
  const conf = join(dir, 'lsyncd.conf.lua');
  writeFileSync(
    conf,
    `settings { nodaemon = true, insist = true, logfile = "${dir}/lsyncd.log" }\n` +
      `sync { default.rsync, source = "${TREES[kind].root}", target = "${dir}/target", init = false }\n`,
  );
  log(`${kind} lsyncd startup #${i + 1}`);
  const d = startProcess(LSYNCD, ['-nodaemon', conf], join(dir, 'stdout.log'));
  const want = TREES[kind].dirCount;
  const out: Startup = { ok: false };
  const deadline = Date.now() + 180_000;
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const n = inotifyWatches(d.pid);
    if (n >= want) {
      out.ok = true;
      out.wallSeconds = (Date.now() - d.spawnedAt) / 1000;
      out.inotifyWatches = n;
      out.rssMbAtWatching = mb(statusKb(d.pid, 'VmRSS'));
      break;
    }
    if (n !== last) {
      last = n;
      lastChange = Date.now();
    }
    if (d.done() || Date.now() > deadline || (n > 0 && Date.now() - lastChange > 15_000)) {
      out.error = `${n} of ${want} watches; ${d.done() ? 'exited' : 'stalled'}: ${tail(d.logFile)} ${tail(join(dir, 'lsyncd.log'))}`;
      break;
    }
    await sleep(kind === '1m' ? 50 : 10);
  }
  if (out.ok) {
    await sleep(3000);
    out.rssMb3sLater = mb(statusKb(d.pid, 'VmRSS'));
  }
  out.hwmMb = mb(statusKb(d.pid, 'VmHWM'));
  await stopProcess(d);
  log(`  ${JSON.stringify(out)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------------- 1M sync

const MIRROR = '/tmp/sersync-scale-1m-mirror';
const REF = join(WORK, 'ref');

/** Cheap type/mode/size/mtime manifest of a tree, for polling; compareTrees checks bytes afterwards. */
function manifest(root: string): Map<string, string> {
  const m = new Map<string, string>();
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(root, rel));
    } catch {
      return;
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(join(root, r));
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        m.set(r, 'd');
        walk(r);
      } else m.set(r, `${st.mode}:${st.size}:${Math.floor(st.mtimeMs / 1000)}`);
    }
  };
  walk('');
  return m;
}
function sameManifest(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

interface SyncRun {
  startup: Startup;
  idleCpuTicks10s?: number;
  oneFileSeconds: (number | null)[];
  oneFileMedian?: number | null;
  burst?: {
    cpSeconds: number;
    entries: number;
    agreeSecondsAfterCp: number | null;
    lastBatchSecondsAfterCp: number | null;
    identical: boolean | null;
    differences?: string[];
    rsyncRuns: number;
    batches: number;
    fullSyncs: number;
    refRsyncSeconds: number;
    refIdentical: boolean;
  };
  rssMbEnd?: number;
  hwmMbEnd?: number;
  errors: string[];
  stopExit?: unknown;
}

async function syncRun(i: number): Promise<SyncRun> {
  const src = TREES['1m'].root;
  const res: SyncRun = { startup: { ok: false }, oneFileSeconds: [], errors: [] };
  // Start from a clean state: no leftover man trees, the touched directories in sync.
  for (const p of [join(src, 'man'), join(MIRROR, 'man'), REF]) rmSync(p, { recursive: true, force: true });
  const touched = [0, 1, 2, 3, 4].map((k) => `t${90 + k}`);
  for (const t of touched) run('rsync', ['-a', '--delete', `${src}/${t}/`, `${MIRROR}/${t}/`]);

  log(`1m dirs sync run #${i + 1}: starting the daemon with ${MIRROR} as its remote`);
  const { d, out } = await startSersync('1m', 'dirs', MIRROR, `1m-sync-${i}`, 120_000);
  res.startup = out;
  log(`  startup ${JSON.stringify(out)}`);
  if (!out.ok) {
    res.errors.push(out.error ?? 'no start');
    return res;
  }
  try {
    // Idle CPU over 10 s (after the 3 s the startup measurement already waited).
    const c0 = cpuTicks(d.pid);
    await sleep(10_000);
    const c1 = cpuTicks(d.pid);
    res.idleCpuTicks10s = c0 !== undefined && c1 !== undefined ? c1 - c0 : undefined;
    log(`  idle CPU ticks over 10 s: ${res.idleCpuTicks10s} (${TICKS}/s)`);

    // One changed file, 5 times (different files, so -u never sees two writes in one second).
    for (let k = 0; k < 5; k++) {
      const rel = `${touched[k]}/s${100 + k}/f${k}.txt`;
      const content = Buffer.from(`changed ${i}.${k} at ${new Date().toISOString()}\n`);
      writeFileSync(join(src, rel), content);
      const t0 = performance.now();
      const mt = Math.floor(statSync(join(src, rel)).mtimeMs / 1000);
      let seconds: number | null = null;
      while (performance.now() - t0 < 30_000) {
        try {
          const b = readFileSync(join(MIRROR, rel));
          if (b.equals(content) && Math.floor(statSync(join(MIRROR, rel)).mtimeMs / 1000) === mt) {
            seconds = (performance.now() - t0) / 1000;
            break;
          }
        } catch {}
        await sleep(5);
      }
      res.oneFileSeconds.push(seconds);
      log(`  one file ${rel}: ${seconds?.toFixed(3) ?? 'NOT SYNCED in 30 s'}`);
      await sleep(1500);
    }
    const ok = res.oneFileSeconds.filter((s): s is number => s !== null).sort((a, b) => a - b);
    res.oneFileMedian = ok.length === 5 ? (ok[2] as number) : null;

    // The burst.
    const before = records(d).length;
    log('  burst: cp -a /usr/share/man');
    const cpStart = Date.now();
    const cp = run('cp', ['-a', MAN, join(src, 'man')]);
    const cpEnd = Date.now();
    if (cp.code !== 0) res.errors.push(`cp: ${cp.stderr}`);
    const srcMan = manifest(join(src, 'man'));
    let agree: number | null = null;
    while (Date.now() - cpEnd < 300_000) {
      const t = Date.now();
      if (sameManifest(srcMan, manifest(join(MIRROR, 'man')))) {
        agree = (t - cpEnd) / 1000;
        break;
      }
      if (d.done()) {
        res.errors.push(`daemon exited during the burst: ${tail(d.logFile)}`);
        break;
      }
      await sleep(200);
    }
    log(`  burst: cp ${((cpEnd - cpStart) / 1000).toFixed(1)} s, trees agree ${agree} s after cp`);
    // Let the daemon settle (no new batch line for 3 s) before counting its rsync runs.
    let n = records(d).length;
    for (let quiet = 0; quiet < 3; ) {
      await sleep(1000);
      const m = records(d).length;
      quiet = m === n ? quiet + 1 : 0;
      n = m;
    }
    const batches = records(d)
      .slice(before)
      .filter((r) => typeof r.rsyncRuns === 'number');
    const lastBatch = batches.at(-1);
    const diffs = await compareTrees(join(src, 'man'), join(MIRROR, 'man'));
    // Reference in the same run.
    mkdirSync(REF, { recursive: true });
    const ref = run('rsync', ['-artuz', `${src}/man/`, `${REF}/man/`]);
    const refDiffs = await compareTrees(join(src, 'man'), join(REF, 'man'));
    res.burst = {
      cpSeconds: (cpEnd - cpStart) / 1000,
      entries: srcMan.size,
      agreeSecondsAfterCp: agree,
      lastBatchSecondsAfterCp: lastBatch ? (Date.parse(String(lastBatch.time)) - cpEnd) / 1000 : null,
      identical: diffs.length === 0,
      differences: diffs.slice(0, 10),
      rsyncRuns: batches.reduce((s, r) => s + Number(r.rsyncRuns), 0),
      batches: batches.length,
      fullSyncs: batches.filter((r) => r.full === true).length,
      refRsyncSeconds: ref.seconds,
      refIdentical: refDiffs.length === 0 && ref.code === 0,
    };
    if (diffs.length > 0) res.errors.push(`burst: ${diffs.length} differences, e.g. ${diffs.slice(0, 5).join('; ')}`);
    log(`  burst: ${JSON.stringify(res.burst)}`);
    res.rssMbEnd = mb(statusKb(d.pid, 'VmRSS'));
    res.hwmMbEnd = mb(statusKb(d.pid, 'VmHWM'));
    const warns = records(d).filter((r) => Number(r.level) >= 40);
    for (const w of warns.slice(0, 5)) res.errors.push(`daemon ${w.level === 50 ? 'error' : 'warn'}: ${String(w.msg)}`);
  } finally {
    res.stopExit = await stopProcess(d);
    // Leave the reusable trees as they were.
    for (const p of [join(src, 'man'), join(MIRROR, 'man'), REF]) rmSync(p, { recursive: true, force: true });
  }
  return res;
}

// ---------------------------------------------------------------------------------------------------- main

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  nproc: spawnSync('nproc', { encoding: 'utf8' }).stdout.trim(),
  rsync: spawnSync('rsync', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0],
  maxUserWatches: readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8').trim(),
  maxQueuedEvents: readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8').trim(),
  argv: process.argv.slice(2),
  generated: {} as Record<string, number>,
  startup: {} as Record<string, Startup[]>,
  sync1m: [] as SyncRun[],
};
mkdirSync(WORK, { recursive: true });
log(`max_user_watches ${results.maxUserWatches}, max_queued_events ${results.maxQueuedEvents}`);

for (const kind of trees) {
  const g = await ensureTree(kind);
  if (g) (results.generated as Record<string, number>)[kind] = g;
}
const startup = results.startup as Record<string, Startup[]>;
for (const kind of trees) {
  for (const w of watchers) {
    if (kind === '1m' && w === 'chokidar' && !opt['chokidar-1m']) continue;
    const reps = kind === '1m' && w === 'chokidar' ? 1 : REPEAT;
    const list: Startup[] = [];
    for (let i = 0; i < reps; i++) list.push(await startupOnly(kind, w, i, kind === '1m' ? 180_000 : 60_000));
    startup[`${kind}/${w}`] = list;
  }
  if (useLsyncd) {
    const list: Startup[] = [];
    for (let i = 0; i < REPEAT; i++) list.push(await lsyncdStartup(kind, i));
    startup[`${kind}/lsyncd`] = list;
  }
  if (kind === '1m' && watchers.includes('dirs')) {
    if (!existsSync(join(MIRROR, MARKER))) {
      log(`creating the mirror ${MIRROR} with rsync -a`);
      const r = run('rsync', ['-a', `${TREES['1m'].root}/`, `${MIRROR}/`]);
      (results.generated as Record<string, number>).mirror = r.seconds;
      log(`  ${r.seconds.toFixed(1)} s, exit ${r.code}`);
    }
    for (let i = 0; i < REPEAT; i++) (results.sync1m as SyncRun[]).push(await syncRun(i));
  }
}

// ---------------------------------------------------------------------------------------------------- report

const f = (x: number | null | undefined, digits = 2) => (x === null || x === undefined ? '–' : x.toFixed(digits));
const cell = (vals: (string | undefined)[]) => (vals.length === 0 ? '–' : vals.map((v) => v ?? '–').join(' / '));
const rows: string[] = ['| measurement | dirs | chokidar | lsyncd | target |', '|---|---|---|---|---|'];
const startCell = (key: string, pick: (s: Startup) => string | undefined) =>
  cell((startup[key] ?? []).map((s) => (s.ok ? pick(s) : `FAILED (${(s.error ?? '').slice(0, 60)})`)));
for (const kind of trees) {
  const label = kind === '200k' ? '200k files / 2,021 dirs' : '1M files / 100,101 dirs';
  const tgt = kind === '200k' ? { t: '≤ 1.5 s', m: '≤ 100 MB' } : { t: '≤ 10 s', m: '≤ 200 MB' };
  const line = (what: string, pick: (s: Startup) => string | undefined, target: string) =>
    rows.push(
      `| ${label}: ${what} | ${startCell(`${kind}/dirs`, pick)} | ${startCell(`${kind}/chokidar`, pick)} | ${startCell(`${kind}/lsyncd`, pick)} | ${target} |`,
    );
  line('spawn → watching (s)', (s) => f(s.wallSeconds), tgt.t);
  line('logged `seconds`', (s) => f(s.loggedSeconds), '');
  line('watched dirs (log / inotify wd)', (s) => `${s.directories ?? '–'}/${s.inotifyWatches ?? '–'}`, String(TREES[kind].dirCount));
  line('RSS at watching (MB)', (s) => String(s.rssMbAtWatching ?? '–'), tgt.m);
  line('RSS 3 s later (MB)', (s) => String(s.rssMb3sLater ?? '–'), tgt.m);
  line('peak RSS VmHWM (MB)', (s) => String(s.hwmMb ?? '–'), '');
}
const sr = results.sync1m as SyncRun[];
if (sr.length > 0) {
  const r = (what: string, pick: (s: SyncRun) => string, target: string) =>
    rows.push(`| 1M: ${what} | ${cell(sr.map(pick))} | | | ${target} |`);
  r('spawn → watching with mirror remote (s)', (s) => f(s.startup.wallSeconds), '≤ 10 s');
  r('idle CPU ticks over 10 s', (s) => `${s.idleCpuTicks10s ?? '–'}`, `~0 (${TICKS} ticks = 1 s)`);
  r('one changed file → mirror, median of 5 (s)', (s) => f(s.oneFileMedian, 3), '≤ 1 s');
  r('one changed file, all 5 (s)', (s) => s.oneFileSeconds.map((x) => f(x, 2)).join(' '), '');
  r('burst `cp -a man`: cp duration (s)', (s) => f(s.burst?.cpSeconds, 1), '');
  r('burst: end of cp → man subtree agrees (s)', (s) => f(s.burst?.agreeSecondsAfterCp, 1), '');
  r('burst: end of cp → last batch logged (s)', (s) => f(s.burst?.lastBatchSecondsAfterCp, 1), '');
  r('burst: byte-identical (compareTrees)', (s) => String(s.burst?.identical ?? '–'), 'true');
  r(
    'burst: rsync processes (Σ rsyncRuns) / batches / full syncs',
    (s) => (s.burst ? `${s.burst.rsyncRuns}/${s.burst.batches}/${s.burst.fullSyncs}` : '–'),
    '',
  );
  r('burst reference: plain `rsync -artuz man/` (s)', (s) => f(s.burst?.refRsyncSeconds, 1), '');
  r('RSS / VmHWM after the burst (MB)', (s) => `${s.rssMbEnd ?? '–'}/${s.hwmMbEnd ?? '–'}`, '≤ 200 MB');
}
const table = rows.join('\n');
console.log(table);
const errors = [
  ...Object.entries(startup).flatMap(([k, l]) => l.filter((s) => s.error).map((s) => `${k}: ${s.error}`)),
  ...sr.flatMap((s, i) => s.errors.map((e) => `1m sync run #${i + 1}: ${e}`)),
];
if (errors.length) console.log(`\nProblems:\n${errors.map((e) => `- ${e.slice(0, 600)}`).join('\n')}`);
results.table = table;
results.problems = errors;
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
const out = join(import.meta.dirname, 'results', `scale-${new Date().toISOString().slice(0, 16).replace('T', '-').replace(':', '')}.json`);
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
console.error(`wrote ${out}`);
