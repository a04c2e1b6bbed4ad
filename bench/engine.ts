/**
 * Engine benchmark: sersync-ts (the built daemon, bin/sersync-ts.cjs) against a plain rsync run measured in the same
 * run, and against lsyncd when it is installed, all pushing to one authenticated rsync daemon on 127.0.0.1.
 *
 *   ./node_modules/.bin/node bench/engine.ts [--quick] [--scenario NAME[,NAME]] [--no-lsyncd] [--tree DIR]
 *                                             [--tuning key=value]... [--rounds N] [--out FILE] [--keep]
 *
 * Scenarios, in this order (each prepares what it needs when run alone):
 *   one-file      write one small file; seconds until the remote copy is identical (5 ms polls), N times
 *   burst-20k     cp -a /usr/share/man WATCHED/man (~21k files + 2.5k symlinks); seconds from the end of cp
 *   dir-rename    mv WATCHED/man WATCHED/man2
 *   delete-burst  rm -rf WATCHED/man2
 *   idle-cpu      CPU ticks of each daemon over 10 s with nothing changing
 *
 * The machine is shared and its speed varies several-fold within an hour, so every figure is printed beside a
 * reference measured minutes apart in the same run, with the ratio. Nothing here fails on a slow figure: the exit
 * code is non-zero only when a tree ends up different, a process dies or a command fails. lsyncd's own failures are
 * reported but do not fail the run (they are findings about lsyncd).
 *
 * Prints a markdown table on stdout (progress goes to stderr) and writes the raw figures to
 * bench/results/engine-<date>.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { runProcess } from '../test/helpers/processes.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../test/helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../test/helpers/tmp.ts';
import { compareTrees, generateTree } from '../test/helpers/trees.ts';
import { type CpuTicks, childrenNamed, clockTicksPerSecond, cpuTicks, findOwnChild, statusKb, ticksDelta } from './lib/procfs.ts';
import { type TimedRun, timedRun } from './lib/reference.ts';
import { readFrom, type Syncer, sizeOf, startLsyncd, startSersyncTs } from './lib/syncers.ts';
import { countEntries, waitFileCopied, waitTreesAgree } from './lib/tree-probe.ts';

const REPO = join(import.meta.dirname, '..');
const ROOT_MARKER = 'bench-root-marker.txt';
const SCENARIOS = ['one-file', 'burst-20k', 'dir-rename', 'delete-burst', 'idle-cpu'] as const;
const CMP = { absSymlinksStripped: true, ignoreRootAttrs: true };

// ---------------------------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: ./node_modules/.bin/node bench/engine.ts [options]
  --quick              5 one-file writes instead of 10, one reference run per scenario instead of 2, 5 s idle
  --scenario NAME      only these (repeat or comma-separate): ${SCENARIOS.join(', ')}
  --no-lsyncd          skip lsyncd even when installed
  --tree DIR           the tree copied in the burst (default /usr/share/man; a generated 20k-file tree if missing)
  --tuning key=value   a <tuning> attribute for sersync-ts (repeatable), e.g. --tuning quietMs=100
  --rounds N           run the tree scenarios (burst-20k, dir-rename, delete-burst) N times, each round with its
                       own reference run, and print the median of the per-round ratios (default 1)
  --lsyncd-delay S     lsyncd's delay in seconds (default 1; lsyncd's own default is 15)
  --lsyncd-timeout S   give up on lsyncd after S seconds per tree change and stop it (default 120)
  --out FILE           where the JSON goes (default bench/results/engine-<date>.json)
  --keep               keep the temporary directories (SERSYNC_TEST_KEEP_TMP=1)
  --empty-root         sersync-ts starts with -r on an empty watch root (a new site) and no marker file is written:
                       with --scenario burst-20k, the copy goes into a root that was empty at start`;

function options() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      scenario: { type: 'string', multiple: true },
      'no-lsyncd': { type: 'boolean', default: false },
      tree: { type: 'string' },
      tuning: { type: 'string', multiple: true },
      rounds: { type: 'string' },
      'lsyncd-delay': { type: 'string' },
      'lsyncd-timeout': { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'empty-root': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const wanted = (values.scenario ?? [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of wanted) {
    if (!(SCENARIOS as readonly string[]).includes(s))
      throw new UsageError(`unknown scenario ${JSON.stringify(s)}; known: ${SCENARIOS.join(', ')}`);
  }
  const tuning: Record<string, string> = {};
  for (const t of values.tuning ?? []) {
    const eq = t.indexOf('=');
    if (eq <= 0) throw new UsageError(`--tuning ${JSON.stringify(t)}: expected key=value`);
    tuning[t.slice(0, eq)] = t.slice(eq + 1);
  }
  const quick = values.quick === true;
  const rounds = Number(values.rounds ?? 1);
  if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError('--rounds: expected a whole number >= 1');
  const lsyncdDelay = Number(values['lsyncd-delay'] ?? 1);
  if (!(lsyncdDelay >= 0)) throw new UsageError('--lsyncd-delay: expected seconds >= 0');
  const lsyncdTimeout = Number(values['lsyncd-timeout'] ?? 120);
  if (!(lsyncdTimeout > 0)) throw new UsageError('--lsyncd-timeout: expected seconds > 0');
  return {
    quick,
    scenarios: SCENARIOS.filter((s) => wanted.length === 0 || wanted.includes(s)),
    lsyncd: values['no-lsyncd'] !== true,
    lsyncdDelay,
    rounds,
    tree: values.tree,
    tuning,
    out: values.out,
    keep: values.keep === true,
    emptyRoot: values['empty-root'] === true,
    oneFileRuns: quick ? 5 : 10,
    refRuns: quick ? 1 : 2,
    idleSeconds: quick ? 5 : 10,
    /** Poll interval while waiting for a big tree (a walk of the man tree costs ~30 ms of CPU). */
    treePollMs: 200,
    filePollMs: 5,
    treeTimeoutMs: 300_000,
    /** lsyncd gets less: its move handling can spin for many minutes, and the run should end in minutes. */
    lsyncdTimeoutMs: lsyncdTimeout * 1000,
    fileTimeoutMs: 20_000,
    /** A daemon counts as done once it has no rsync child and its log has been silent this long. */
    settleMs: 3000,
    oneFileSettleMs: 700,
  };
}
type Options = ReturnType<typeof options>;

class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------------------------
// State

interface World {
  readonly s: Syncer;
  /** Name of the big tree in the watched directory (man, man2), or null. */
  treeAt: string | null;
  /** Why this daemon is no longer measured (its trees stopped agreeing, it died). */
  broken: string | undefined;
}

interface RefWorld {
  readonly src: string;
  readonly dest: string;
  treeAt: string | null;
}

interface Ctx {
  readonly o: Options;
  readonly rsyncd: RsyncDaemon;
  readonly rsyncdLog: string;
  readonly rsyncdPid: number | undefined;
  readonly tree: string;
  readonly treeEntries: number;
  readonly clk: number;
  readonly ours: World;
  readonly lsyncd: World | undefined;
  readonly ref: RefWorld;
  /** Wrong results of sersync-ts or the reference: the run exits non-zero. */
  readonly problems: string[];
  /** Wrong results of lsyncd: reported only. */
  readonly lsyncdProblems: string[];
}

function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function problem(ctx: Ctx, w: World | 'reference', msg: string): void {
  if (w !== 'reference' && w.s.label === 'lsyncd') {
    ctx.lsyncdProblems.push(msg);
    w.broken ??= msg;
  } else {
    ctx.problems.push(`${w === 'reference' ? 'reference' : w.s.label}: ${msg}`);
    if (w !== 'reference') w.broken ??= msg;
  }
  progress(`PROBLEM (${w === 'reference' ? 'reference' : w.s.label}): ${msg}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring a daemon

interface Mark {
  log: number;
  rsyncdLog: number;
  ticks: CpuTicks | undefined;
  receiver: CpuTicks | undefined;
}

interface Taken {
  /** rsync processes according to the daemon's own log. */
  rsyncRuns: number;
  /** Connections the rsync daemon logged for this daemon's module: an independent count of rsync processes. */
  connections: number;
  failures: number;
  warnings: string[];
  overflows: number;
  /** Full syncs during the measurement: each one fails the run (nothing may need a full sync's help). */
  fullSyncs: number;
  lastBatchAt: number | undefined;
  cpuSelf: number | null;
  cpuChildren: number | null;
  /** Seconds of CPU: the daemon plus the rsync processes it started (and reaped). */
  cpu: number | null;
  /** Seconds of CPU of the rsync daemon's connection processes (the receiving side). */
  receiverCpu: number | null;
  peakRssMb: number | null;
  rssMb: number | null;
}

function rsyncdConnections(ctx: Ctx, module: string, fromByte: number): number {
  const re = new RegExp(`\\] rsync to ${module}/`, 'g');
  return readFrom(ctx.rsyncdLog, fromByte).match(re)?.length ?? 0;
}

function mark(ctx: Ctx, w: World): Mark {
  return {
    log: w.s.logSize(),
    rsyncdLog: sizeOf(ctx.rsyncdLog),
    ticks: cpuTicks(w.s.pid),
    receiver: ctx.rsyncdPid === undefined ? undefined : cpuTicks(ctx.rsyncdPid),
  };
}

function take(ctx: Ctx, w: World, m: Mark): Taken {
  const sum = w.s.summarize(m.log);
  const d = ticksDelta(m.ticks, cpuTicks(w.s.pid));
  const r = ctx.rsyncdPid === undefined ? undefined : ticksDelta(m.receiver, cpuTicks(ctx.rsyncdPid));
  const hwm = statusKb(w.s.pid, 'VmHWM');
  const rss = statusKb(w.s.pid, 'VmRSS');
  return {
    rsyncRuns: sum.rsyncRuns,
    connections: rsyncdConnections(ctx, w.s.module, m.rsyncdLog),
    failures: sum.failures,
    warnings: sum.warnings,
    overflows: sum.overflows,
    fullSyncs: sum.fullSyncs,
    lastBatchAt: sum.lastBatchAt,
    cpuSelf: d ? d.self / ctx.clk : null,
    cpuChildren: d ? d.children / ctx.clk : null,
    cpu: d ? (d.self + d.children) / ctx.clk : null,
    receiverCpu: r ? r.children / ctx.clk : null,
    peakRssMb: hwm === undefined ? null : hwm / 1024,
    rssMb: rss === undefined ? null : rss / 1024,
  };
}

/** Waits until the daemon has no rsync child and its log has been silent for quietMs. */
async function settle(w: World, quietMs: number, timeoutMs = 60_000): Promise<boolean> {
  const start = performance.now();
  let size = w.s.logSize();
  let quietSince = start;
  for (;;) {
    await sleep(50);
    const now = performance.now();
    const s = w.s.logSize();
    if (s !== size || childrenNamed(w.s.pid, 'rsync').length > 0) {
      size = s;
      quietSince = now;
    } else if (now - quietSince >= quietMs) {
      return true;
    }
    if (!w.s.running() || now - start > timeoutMs) return false;
  }
}

const timeoutMs = (ctx: Ctx, w: World) => (w.s.label === 'lsyncd' ? ctx.o.lsyncdTimeoutMs : ctx.o.treeTimeoutMs);

/** A broken lsyncd is stopped, so that a process spinning at 100% CPU does not skew the measurements after it. */
async function retireIfBroken(w: World): Promise<void> {
  if (w.s.label !== 'lsyncd' || !w.broken || !w.s.running()) return;
  progress(`stopping lsyncd (${w.broken.slice(0, 80)}) so it does not skew later measurements; its later scenarios are skipped`);
  await w.s.stop();
}

const stopIfDead = (w: World) => () => (w.s.running() ? undefined : `${w.s.label} exited (${w.s.logFile})`);

async function run(file: string, args: string[], what: string): Promise<void> {
  const r = await runProcess(file, args, { timeoutMs: 600_000 });
  if (r.code !== 0)
    throw new Error(
      `${what}: ${file} ${args.join(' ')} exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.trim()}`,
    );
}

const cpTree = (from: string, to: string) => run('cp', ['-a', from, to], 'copying the tree');
/**
 * Writes every dirty page out before a timed change, the daemon's and the reference's alike. Without it, what the
 * previous step left in the page cache decided the figures: deleting a tree written seconds earlier (the
 * reference's, whose blocks were not even allocated yet) took 0.75 s, the same deletion of a tree written a minute
 * earlier (the daemon's) 2.5-4.3 s.
 */
const flushDisk = () => run('sync', [], 'flushing the disk (sync)');
const rmTree = (path: string) => run('rm', ['-rf', path], 'removing the tree');
const mvTree = (from: string, to: string) => run('mv', [from, to], 'renaming the tree');

interface ChangeResult extends Taken {
  /** How long the change itself took (cp -a, mv, rm -rf). */
  changeSeconds: number;
  /** From the end of the change until the trees agreed (null: they did not within the timeout). */
  latency: number | null;
  latencyFromStart: number | null;
  /** Set when the trees did not agree in time: the limit that was hit. */
  timeoutSeconds: number | null;
  /** From the end of the change until the daemon logged its last batch as done (sersync-ts only). */
  loggedLatency: number | null;
  polls: number;
  waitNote: string;
  settled: boolean;
  identical: boolean;
  diffCount: number;
  diffs: string[];
}

async function measureChange(
  ctx: Ctx,
  w: World,
  what: string,
  change: () => Promise<void>,
  treeAfter: string | null,
): Promise<ChangeResult | undefined> {
  if (w.broken) {
    progress(`${w.s.label}: skipping ${what} (${w.broken})`);
    return undefined;
  }
  progress(`${w.s.label}: ${what}`);
  await flushDisk();
  const m = mark(ctx, w);
  const t0 = performance.now();
  await change();
  const t1 = performance.now();
  const epochEnd = Date.now();
  const wait = await waitTreesAgree(w.s.src, w.s.dest, {
    intervalMs: ctx.o.treePollMs,
    timeoutMs: timeoutMs(ctx, w),
    stop: stopIfDead(w),
    busy: () => childrenNamed(w.s.pid, 'rsync').length > 0,
  });
  const settled = await settle(w, ctx.o.settleMs);
  const taken = take(ctx, w, m);
  w.treeAt = treeAfter;
  if (taken.fullSyncs > 0 || taken.overflows > 0)
    problem(ctx, w, `${what}: ${taken.fullSyncs} full sync(s), ${taken.overflows} lost-event warning(s) during the change`);
  progress(
    `${w.s.label}: ${what}: ${wait.at === undefined ? `NOT in agreement (${wait.last})` : `agreed after ${((wait.at - t1) / 1000).toFixed(2)} s`}; comparing contents`,
  );
  const diffs = await compareTrees(w.s.src, w.s.dest, CMP);
  const res: ChangeResult = {
    ...taken,
    changeSeconds: (t1 - t0) / 1000,
    latency: wait.at === undefined ? null : (wait.at - t1) / 1000,
    latencyFromStart: wait.at === undefined ? null : (wait.at - t0) / 1000,
    loggedLatency: w.s.label === 'sersync-ts' && taken.lastBatchAt !== undefined ? (taken.lastBatchAt - epochEnd) / 1000 : null,
    timeoutSeconds: wait.at === undefined ? timeoutMs(ctx, w) / 1000 : null,
    polls: wait.polls,
    waitNote: wait.last,
    settled,
    identical: diffs.length === 0,
    diffCount: diffs.length,
    diffs: diffs.slice(0, 10),
  };
  if (wait.at === undefined) problem(ctx, w, `${what}: the trees did not agree within ${timeoutMs(ctx, w) / 1000} s (${wait.last})`);
  if (diffs.length > 0) problem(ctx, w, `${what}: ${diffs.length} difference(s) after the sync, e.g. ${diffs.slice(0, 3).join('; ')}`);
  if (!settled) problem(ctx, w, `${what}: did not settle (rsync still running or log still growing after 60 s)`);
  await retireIfBroken(w);
  return res;
}

/** Brings a daemon's watched tree to `want` (untimed) and waits until its remote agrees. */
async function ensureTree(ctx: Ctx, w: World, want: string | null): Promise<void> {
  if (w.broken || w.treeAt === want) return;
  progress(`${w.s.label}: preparing (${w.treeAt ?? 'no tree'} -> ${want ?? 'no tree'}), untimed`);
  if (w.treeAt !== null) await rmTree(join(w.s.src, w.treeAt));
  if (want !== null) await cpTree(ctx.tree, join(w.s.src, want));
  const wait = await waitTreesAgree(w.s.src, w.s.dest, { intervalMs: 500, timeoutMs: timeoutMs(ctx, w), stop: stopIfDead(w) });
  await settle(w, ctx.o.settleMs);
  w.treeAt = want;
  if (wait.at === undefined) problem(ctx, w, `preparing ${want ?? 'an empty tree'}: the trees did not agree (${wait.last})`);
  await retireIfBroken(w);
}

// ---------------------------------------------------------------------------------------------------------------
// The reference

interface RefResult extends TimedRun {
  receiverCpu: number | null;
}

function refUrl(ctx: Ctx, sub: string): string {
  return `${ctx.rsyncd.moduleUrl('ref')}${sub}`;
}

function rsyncAuth(ctx: Ctx): string[] {
  return [`--password-file=${ctx.rsyncd.passwordFile}`];
}

/** Untimed: makes the ref module a mirror of the ref source. */
async function refMirror(ctx: Ctx): Promise<void> {
  await run('rsync', ['-artuz', '--delete', ...rsyncAuth(ctx), `${ctx.ref.src}/`, refUrl(ctx, '')], 'mirroring the reference');
}

async function ensureRefTree(ctx: Ctx, want: string | null): Promise<void> {
  const ref = ctx.ref;
  if (ref.treeAt !== want) {
    if (ref.treeAt !== null) await rmTree(join(ref.src, ref.treeAt));
    if (want !== null) await cpTree(ctx.tree, join(ref.src, want));
    ref.treeAt = want;
  }
  await refMirror(ctx);
}

/** `prepare` (untimed) sets up the source; then one plain `rsync -artuz ARGS`, timed. */
async function refRun(ctx: Ctx, what: string, prepare: () => Promise<void>, args: string[], quiet = false): Promise<RefResult> {
  await prepare();
  if (!quiet) progress(`reference: ${what}`);
  const before = ctx.rsyncdPid === undefined ? undefined : cpuTicks(ctx.rsyncdPid);
  const r = await timedRun('rsync', ['-artuz', ...rsyncAuth(ctx), ...args]);
  // The receiving process has exited when the client has; give the daemon a moment to reap it.
  await sleep(50);
  const d = ctx.rsyncdPid === undefined ? undefined : ticksDelta(before, cpuTicks(ctx.rsyncdPid));
  if (r.code !== 0) problem(ctx, 'reference', `${what}: rsync exited ${r.code ?? 'on timeout'}: ${r.stderr.slice(0, 500)}`);
  return { ...r, receiverCpu: d ? d.children / ctx.clk : null };
}

async function refIdentical(ctx: Ctx, what: string): Promise<{ identical: boolean; diffCount: number; diffs: string[] }> {
  const diffs = await compareTrees(ctx.ref.src, ctx.ref.dest, CMP);
  if (diffs.length > 0) problem(ctx, 'reference', `${what}: ${diffs.length} difference(s), e.g. ${diffs.slice(0, 3).join('; ')}`);
  return { identical: diffs.length === 0, diffCount: diffs.length, diffs: diffs.slice(0, 10) };
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

interface OneFileIter extends Taken {
  latency: number | null;
}

async function oneFileDaemon(ctx: Ctx, w: World, name: string, content: Buffer): Promise<OneFileIter | undefined> {
  if (w.broken) return undefined;
  const m = mark(ctx, w);
  const src = join(w.s.src, name);
  await writeFile(src, content);
  const t1 = performance.now();
  const at = await waitFileCopied(src, join(w.s.dest, name), {
    intervalMs: ctx.o.filePollMs,
    timeoutMs: ctx.o.fileTimeoutMs,
    stop: stopIfDead(w),
  });
  await settle(w, ctx.o.oneFileSettleMs);
  const taken = take(ctx, w, m);
  if (at === undefined) problem(ctx, w, `one-file: ${name} did not reach the remote within ${ctx.o.fileTimeoutMs / 1000} s`);
  await retireIfBroken(w);
  return { ...taken, latency: at === undefined ? null : (at - t1) / 1000 };
}

async function daemonIdentical(ctx: Ctx, w: World | undefined, what: string) {
  if (!w || (w.broken && w.s.label === 'lsyncd')) return undefined;
  const diffs = await compareTrees(w.s.src, w.s.dest, CMP);
  if (diffs.length > 0) problem(ctx, w, `${what}: ${diffs.length} difference(s), e.g. ${diffs.slice(0, 3).join('; ')}`);
  return { identical: diffs.length === 0, diffCount: diffs.length, diffs: diffs.slice(0, 10) };
}

async function scenarioOneFile(ctx: Ctx) {
  const n = ctx.o.oneFileRuns;
  const stamp = Date.now().toString(36);
  const ours: OneFileIter[] = [];
  const lsyncd: OneFileIter[] = [];
  const ref: RefResult[] = [];
  progress(`one-file: ${n} writes each (sersync-ts, reference, lsyncd interleaved)`);
  for (let i = 0; i < n; i++) {
    const name = `one-file-${stamp}-${i}.txt`;
    const content = Buffer.from(`${name}\n${'0123456789abcdef'.repeat(16)}\n${new Date().toISOString()}\n`);
    const o = await oneFileDaemon(ctx, ctx.ours, name, content);
    if (o) ours.push(o);
    ref.push(
      await refRun(
        ctx,
        `one-file ${i}`,
        () => writeFile(join(ctx.ref.src, name), content),
        [join(ctx.ref.src, name), refUrl(ctx, name)],
        true,
      ),
    );
    if (ctx.lsyncd) {
      const l = await oneFileDaemon(ctx, ctx.lsyncd, name, content);
      if (l) lsyncd.push(l);
    }
    progress(
      `one-file ${i + 1}/${n}: sersync-ts ${fmtS(o?.latency)} s, reference ${fmtS(ref.at(-1)?.wall)} s` +
        (ctx.lsyncd ? `, lsyncd ${fmtS(lsyncd.at(-1)?.latency)} s` : ''),
    );
  }
  return {
    ours,
    lsyncd: ctx.lsyncd ? lsyncd : undefined,
    ref,
    identical: {
      ours: await daemonIdentical(ctx, ctx.ours, 'one-file'),
      ref: await refIdentical(ctx, 'one-file'),
      lsyncd: await daemonIdentical(ctx, ctx.lsyncd, 'one-file'),
    },
  };
}
type OneFileResult = Awaited<ReturnType<typeof scenarioOneFile>>;

interface TreeScenarioResult {
  ours: ChangeResult | undefined;
  lsyncd: ChangeResult | undefined;
  ref: RefResult[];
  refIdentical: { identical: boolean; diffCount: number; diffs: string[] };
  change: string;
}

/**
 * A change to the big tree, measured on each daemon and on the reference (once before and once after the daemons
 * when refRuns > 1). `pre` is the tree the change needs: null (none), a name, or 'any' (whichever is there, else
 * a fresh copy named man).
 */
async function treeScenario(
  ctx: Ctx,
  what: string,
  pre: string | null,
  post: string | null,
  change: (root: string, from: string | null) => Promise<void>,
  refArgs: string[],
  description: string,
): Promise<TreeScenarioResult> {
  const wantFrom = (current: string | null) => (pre === 'any' ? (current ?? 'man') : pre);
  const worlds = [ctx.ours, ...(ctx.lsyncd ? [ctx.lsyncd] : [])];
  for (const w of worlds) await ensureTree(ctx, w, wantFrom(w.treeAt));
  const refOnce = () =>
    refRun(
      ctx,
      what,
      async () => {
        await ensureRefTree(ctx, wantFrom(ctx.ref.treeAt));
        await flushDisk();
        await change(ctx.ref.src, ctx.ref.treeAt);
        ctx.ref.treeAt = post;
      },
      refArgs,
    );
  const ref: RefResult[] = [];
  if (ctx.o.refRuns > 1) ref.push(await refOnce());
  const measure = (w: World) => {
    const from = w.treeAt;
    return measureChange(ctx, w, what, () => change(w.s.src, from), post);
  };
  const ours = await measure(ctx.ours);
  const lsyncd = ctx.lsyncd ? await measure(ctx.lsyncd) : undefined;
  ref.push(await refOnce());
  const refIdent = await refIdentical(ctx, what);
  return { ours, lsyncd, ref, refIdentical: refIdent, change: description };
}

const scenarioBurst = (ctx: Ctx) =>
  treeScenario(
    ctx,
    'burst-20k',
    null,
    'man',
    (root) => cpTree(ctx.tree, join(root, 'man')),
    [`${ctx.ref.src}/man/`, refUrl(ctx, 'man/')],
    `cp -a ${ctx.tree} WATCHED/man (${ctx.treeEntries} entries)`,
  );

const scenarioRename = (ctx: Ctx) =>
  treeScenario(
    ctx,
    'dir-rename',
    'man',
    'man2',
    (root) => mvTree(join(root, 'man'), join(root, 'man2')),
    ['--delete', `${ctx.ref.src}/`, refUrl(ctx, '')],
    'mv WATCHED/man WATCHED/man2',
  );

const scenarioDelete = (ctx: Ctx) =>
  treeScenario(
    ctx,
    'delete-burst',
    'any',
    null,
    (root, from) => rmTree(join(root, from ?? 'man')),
    ['--delete', `${ctx.ref.src}/`, refUrl(ctx, '')],
    'rm -rf WATCHED/man2 (the renamed tree)',
  );

const TREE_SCENARIOS = { 'burst-20k': scenarioBurst, 'dir-rename': scenarioRename, 'delete-burst': scenarioDelete };
const isTreeScenario = (name: string): name is keyof typeof TREE_SCENARIOS => Object.hasOwn(TREE_SCENARIOS, name);

async function scenarioIdle(ctx: Ctx) {
  const worlds = [ctx.ours, ...(ctx.lsyncd ? [ctx.lsyncd] : [])].filter((w) => !w.broken);
  for (const w of worlds) await settle(w, 1000);
  progress(`idle-cpu: ${ctx.o.idleSeconds} s with nothing changing`);
  const marks = worlds.map((w) => mark(ctx, w));
  const before = worlds.map((w) => cpuTicks(w.s.pid));
  await sleep(ctx.o.idleSeconds * 1000);
  const out: Record<string, { ticks: number | null; cpu: number | null; rsyncRuns: number; logLines: number; rssMb: number | null }> = {};
  worlds.forEach((w, i) => {
    const d = ticksDelta(before[i], cpuTicks(w.s.pid));
    const t = take(ctx, w, marks[i] as Mark);
    out[w.s.label] = {
      ticks: d ? d.self + d.children : null,
      cpu: t.cpu,
      rsyncRuns: t.rsyncRuns,
      logLines: w.s.summarize(marks[i]?.log ?? 0).lines,
      rssMb: t.rssMb,
    };
  });
  return { seconds: ctx.o.idleSeconds, clockTicksPerSecond: ctx.clk, ...out };
}
type IdleResult = Awaited<ReturnType<typeof scenarioIdle>>;

// ---------------------------------------------------------------------------------------------------------------
// Report

function fmtS(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return Math.abs(x) < 10 ? x.toFixed(3) : x.toFixed(2);
}

function fmtMb(x: number | null | undefined): string {
  return x === null || x === undefined ? '—' : `${x.toFixed(1)} MB`;
}

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return '—';
  return `${(a / b).toFixed(2)}×`;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const mean = (xs: number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((p, q) => p + q, 0) / xs.length);
const max = (xs: number[]) => (xs.length === 0 ? Number.NaN : Math.max(...xs));
const nums = (xs: (number | null | undefined)[]) => xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));

interface Row {
  scenario: string;
  metric: string;
  ours: string;
  ref: string;
  ratio: string;
  lsyncd: string;
  lsyncdRatio: string;
}

function identCell(i: { identical: boolean; diffCount: number } | undefined, broken?: string): string {
  if (!i) return broken ? `skipped (${broken.slice(0, 60)})` : '—';
  return i.identical ? 'yes' : `**NO** (${i.diffCount} differences)`;
}

function latCell(c: { latency: number | null; timeoutSeconds: number | null } | undefined): string {
  if (!c) return '—';
  return c.timeoutSeconds !== null ? `> ${c.timeoutSeconds} (gave up)` : fmtS(c.latency);
}

/** rsync processes started: the successful runs plus the failed ones, checked against the rsync daemon's count. */
function runsCell(t: { rsyncRuns: number; failures: number; connections: number } | undefined): string {
  if (!t) return '—';
  const total = t.rsyncRuns + t.failures;
  const notes = [...(t.failures ? [`${t.failures} failed`] : []), ...(total !== t.connections ? [`rsyncd saw ${t.connections}`] : [])];
  return notes.length ? `${total} (${notes.join('; ')})` : String(total);
}

function refList(xs: number[]): string {
  if (xs.length <= 1) return fmtS(xs[0]);
  return `${fmtS(mean(xs))} (${xs.map(fmtS).join(', ')})`;
}

function oneFileRows(r: OneFileResult, hasLsyncd: boolean): Row[] {
  const lat = (xs: OneFileIter[] | undefined) => nums((xs ?? []).map((x) => x.latency));
  const ol = lat(r.ours);
  const ll = lat(r.lsyncd);
  const rw = nums(r.ref.map((x) => x.wall));
  const rc = nums(r.ref.map((x) => x.cpu));
  const sum = (xs: OneFileIter[] | undefined, f: (x: OneFileIter) => number | null) => nums((xs ?? []).map(f)).reduce((a, b) => a + b, 0);
  const per = (xs: OneFileIter[] | undefined, f: (x: OneFileIter) => number | null) => (xs?.length ? sum(xs, f) / xs.length : Number.NaN);
  const L = (s: string) => (hasLsyncd ? s : 'not run');
  const sc = `one-file (${r.ref.length}×)`;
  return [
    {
      scenario: sc,
      metric: 'latency median (s)',
      ours: fmtS(median(ol)),
      ref: fmtS(median(rw)),
      ratio: ratio(median(ol), median(rw)),
      lsyncd: L(fmtS(median(ll))),
      lsyncdRatio: ratio(median(ll), median(rw)),
    },
    {
      scenario: sc,
      metric: 'latency max (s)',
      ours: fmtS(max(ol)),
      ref: fmtS(max(rw)),
      ratio: ratio(max(ol), max(rw)),
      lsyncd: L(fmtS(max(ll))),
      lsyncdRatio: ratio(max(ll), max(rw)),
    },
    {
      scenario: sc,
      metric: 'rsync processes (all writes)',
      ours: runsCell({
        rsyncRuns: sum(r.ours, (x) => x.rsyncRuns),
        failures: sum(r.ours, (x) => x.failures),
        connections: sum(r.ours, (x) => x.connections),
      }),
      ref: String(r.ref.length),
      ratio: '',
      lsyncd: hasLsyncd
        ? runsCell({
            rsyncRuns: sum(r.lsyncd, (x) => x.rsyncRuns),
            failures: sum(r.lsyncd, (x) => x.failures),
            connections: sum(r.lsyncd, (x) => x.connections),
          })
        : 'not run',
      lsyncdRatio: '',
    },
    {
      scenario: sc,
      metric: 'CPU per write, daemon + its rsync (s)',
      ours: fmtS(per(r.ours, (x) => x.cpu)),
      ref: fmtS(mean(rc)),
      ratio: ratio(
        per(r.ours, (x) => x.cpu),
        mean(rc),
      ),
      lsyncd: L(fmtS(per(r.lsyncd, (x) => x.cpu))),
      lsyncdRatio: ratio(
        per(r.lsyncd, (x) => x.cpu),
        mean(rc),
      ),
    },
    {
      scenario: sc,
      metric: 'trees identical',
      ours: identCell(r.identical.ours),
      ref: identCell(r.identical.ref),
      ratio: '',
      lsyncd: hasLsyncd ? identCell(r.identical.lsyncd) : 'not run',
      lsyncdRatio: '',
    },
  ];
}

function treeRows(name: string, r: TreeScenarioResult, hasLsyncd: boolean, ctx: Ctx): Row[] {
  const o = r.ours;
  const l = r.lsyncd;
  const walls = nums(r.ref.map((x) => x.wall));
  const cpus_ = nums(r.ref.map((x) => x.cpu));
  const rcv = nums(r.ref.map((x) => x.receiverCpu));
  const rss = nums(r.ref.map((x) => (x.maxRssKb === undefined ? null : x.maxRssKb / 1024)));
  const L = (s: string) => (hasLsyncd ? (l ? s : `skipped${ctx.lsyncd?.broken ? ' (broken earlier)' : ''}`) : 'not run');
  const cpuCell = (c: ChangeResult | undefined) => (c ? `${fmtS(c.cpu)} (${fmtS(c.cpuSelf)} + rsync ${fmtS(c.cpuChildren)})` : '—');
  return [
    {
      scenario: name,
      metric: `the change itself (s): ${r.change}`,
      ours: fmtS(o?.changeSeconds),
      ref: '',
      ratio: '',
      lsyncd: L(fmtS(l?.changeSeconds)),
      lsyncdRatio: '',
    },
    {
      scenario: name,
      metric: 'latency after the change (s) / reference wall',
      ours: latCell(o),
      ref: refList(walls),
      ratio: ratio(o?.latency, mean(walls)),
      lsyncd: L(latCell(l)),
      lsyncdRatio: ratio(l?.latency, mean(walls)),
    },
    {
      scenario: name,
      metric: 'latency from the start of the change (s)',
      ours: fmtS(o?.latencyFromStart),
      ref: '',
      ratio: '',
      lsyncd: L(fmtS(l?.latencyFromStart)),
      lsyncdRatio: '',
    },
    {
      scenario: name,
      metric: 'last batch logged done, after the change (s)',
      ours: fmtS(o?.loggedLatency),
      ref: '',
      ratio: '',
      lsyncd: hasLsyncd ? 'n/a' : 'not run',
      lsyncdRatio: '',
    },
    {
      scenario: name,
      metric: 'rsync processes',
      ours: runsCell(o),
      ref: String(r.ref.length > 0 ? 1 : 0),
      ratio: '',
      lsyncd: L(runsCell(l)),
      lsyncdRatio: '',
    },
    {
      scenario: name,
      metric: 'CPU, daemon + its rsync (s)',
      ours: cpuCell(o),
      ref: refList(cpus_),
      ratio: ratio(o?.cpu, mean(cpus_)),
      lsyncd: L(cpuCell(l)),
      lsyncdRatio: ratio(l?.cpu, mean(cpus_)),
    },
    {
      scenario: name,
      metric: 'CPU of the receiving rsync (s)',
      ours: fmtS(o?.receiverCpu),
      ref: refList(rcv),
      ratio: ratio(o?.receiverCpu, mean(rcv)),
      lsyncd: L(fmtS(l?.receiverCpu)),
      lsyncdRatio: ratio(l?.receiverCpu, mean(rcv)),
    },
    {
      scenario: name,
      metric: 'peak RSS so far (VmHWM; ref: rsync maxrss)',
      ours: fmtMb(o?.peakRssMb),
      ref: rss.length ? fmtMb(max(rss)) : '—',
      ratio: '',
      lsyncd: L(fmtMb(l?.peakRssMb)),
      lsyncdRatio: '',
    },
    {
      scenario: name,
      metric: 'trees identical',
      ours: identCell(o, ctx.ours.broken),
      ref: identCell(r.refIdentical),
      ratio: '',
      lsyncd: L(identCell(l, ctx.lsyncd?.broken)),
      lsyncdRatio: '',
    },
  ];
}

/**
 * One round: its rows. Several: each round's rows, then the median of the per-round ratios (each round's daemon
 * figure over that round's reference), which is what a noisy machine can vouch for.
 */
function treeRoundsRows(name: string, rs: TreeScenarioResult[], hasLsyncd: boolean, ctx: Ctx): Row[] {
  if (rs.length === 1) return treeRows(name, rs[0] as TreeScenarioResult, hasLsyncd, ctx);
  const perRound = rs.flatMap((r, i) => treeRows(`${name} (round ${i + 1}/${rs.length})`, r, hasLsyncd, ctx));
  const refMean = (r: TreeScenarioResult, f: (x: RefResult) => number | null) => mean(nums(r.ref.map(f)));
  const ratios = (f: (c: ChangeResult) => number | null, g: (x: RefResult) => number | null, who: 'ours' | 'lsyncd') =>
    nums(
      rs.map((r) => {
        const c = r[who];
        // A round the daemon skipped or did not finish in time has no ratio (the problem list names it).
        const a = c && c.latency !== null ? f(c) : null;
        const b = refMean(r, g);
        return a === null || !Number.isFinite(b) || b <= 0 ? null : a / b;
      }),
    );
  const cell = (xs: number[]) =>
    xs.length
      ? `${median(xs).toFixed(2)}× (${xs.map((x) => x.toFixed(2)).join(', ')})${xs.length < rs.length ? `, ${xs.length} of ${rs.length} rounds` : ''}`
      : '—';
  const L = (s: string) => (hasLsyncd ? s : 'not run');
  const sc = `${name}, ${rs.length} rounds`;
  const runs = (who: 'ours' | 'lsyncd') =>
    nums(
      rs.map((r) => {
        const c = r[who];
        return c ? c.rsyncRuns + c.failures : null;
      }),
    );
  const allIdentical = (who: 'ours' | 'lsyncd') => {
    const ran = rs.filter((r) => r[who] !== undefined);
    const skipped = rs.length - ran.length ? ` (${rs.length - ran.length} round(s) skipped)` : '';
    if (ran.length === 0) return '—';
    const wrong = ran.filter((r) => !r[who]?.identical).length;
    return `${wrong === 0 ? 'yes' : `**NO** in ${wrong} round(s)`}${skipped}`;
  };
  const ratioRow = (metric: string, f: (c: ChangeResult) => number | null, g: (x: RefResult) => number | null): Row => ({
    scenario: sc,
    metric: `${metric}: median of the rounds (each round)`,
    ours: '',
    ref: '',
    ratio: cell(ratios(f, g, 'ours')),
    lsyncd: '',
    lsyncdRatio: L(cell(ratios(f, g, 'lsyncd'))),
  });
  return [
    ...perRound,
    ratioRow(
      'latency after the change / reference wall',
      (c) => c.latency,
      (x) => x.wall,
    ),
    ratioRow(
      'CPU, daemon + its rsync / reference CPU',
      (c) => c.cpu,
      (x) => x.cpu,
    ),
    {
      scenario: sc,
      metric: 'rsync processes, most in one round',
      ours: fmtCount(max(runs('ours'))),
      ref: '1',
      ratio: '',
      lsyncd: L(fmtCount(max(runs('lsyncd')))),
      lsyncdRatio: '',
    },
    {
      scenario: sc,
      metric: 'trees identical in every round',
      ours: allIdentical('ours'),
      ref: rs.every((r) => r.refIdentical.identical) ? 'yes' : '**NO**',
      ratio: '',
      lsyncd: L(allIdentical('lsyncd')),
      lsyncdRatio: '',
    },
  ];
}

const fmtCount = (x: number) => (Number.isFinite(x) ? String(x) : '—');

function idleRows(r: IdleResult, hasLsyncd: boolean): Row[] {
  const rec = r as unknown as Record<
    string,
    { ticks: number | null; cpu: number | null; rsyncRuns: number; rssMb: number | null } | undefined
  >;
  const o = rec['sersync-ts'];
  const l = rec.lsyncd;
  const cell = (x: typeof o) => (x ? `${x.ticks ?? '—'} ticks (${fmtS(x.cpu)} s)` : '—');
  return [
    {
      scenario: `idle-cpu (${r.seconds} s)`,
      metric: `CPU ticks (${r.clockTicksPerSecond}/s)`,
      ours: cell(o),
      ref: '',
      ratio: '',
      lsyncd: hasLsyncd ? cell(l) : 'not run',
      lsyncdRatio: '',
    },
    {
      scenario: `idle-cpu (${r.seconds} s)`,
      metric: 'rsync processes',
      ours: String(o?.rsyncRuns ?? '—'),
      ref: '',
      ratio: '',
      lsyncd: hasLsyncd ? String(l?.rsyncRuns ?? '—') : 'not run',
      lsyncdRatio: '',
    },
    {
      scenario: `idle-cpu (${r.seconds} s)`,
      metric: 'RSS now',
      ours: fmtMb(o?.rssMb),
      ref: '',
      ratio: '',
      lsyncd: hasLsyncd ? fmtMb(l?.rssMb) : 'not run',
      lsyncdRatio: '',
    },
  ];
}

function table(rows: Row[]): string {
  const head = '| scenario | metric | sersync-ts | reference rsync | sersync-ts / ref | lsyncd | lsyncd / ref |';
  const sep = '|---|---|---|---|---|---|---|';
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    head,
    sep,
    ...rows.map((r) => `| ${[r.scenario, r.metric, r.ours, r.ref, r.ratio, r.lsyncd, r.lsyncdRatio].map(esc).join(' | ')} |`),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function version(cmd: string, args: string[]): Promise<string> {
  const r = await runProcess(cmd, args).catch(() => undefined);
  return (r?.stdout || r?.stderr || '').split('\n').find((l) => l.trim()) ?? 'unknown';
}

async function treeSource(o: Options): Promise<{ tree: string; generated: boolean }> {
  const candidate = o.tree ?? '/usr/share/man';
  if (countEntries(candidate) >= 1000) return { tree: candidate, generated: false };
  if (o.tree) throw new UsageError(`--tree ${o.tree}: fewer than 1000 entries`);
  const staging = await makeTempDir('bench-tree');
  const root = join(staging, 'man');
  progress(`${candidate} is missing: generating a 20k-file tree in ${root}`);
  await generateTree(root, { dirs: 200, filesPerDir: 100, depth: 3, size: 1024 });
  return { tree: root, generated: true };
}

async function main(): Promise<number> {
  const o = options();
  if (o.keep) process.env.SERSYNC_TEST_KEEP_TMP = '1';
  const startedAt = new Date();
  const load0 = loadavg();
  if (countEntries(join(REPO, 'dist')) === 0) throw new UsageError('dist/ is empty: run npm run build first');
  const clk = await clockTicksPerSecond();
  const { tree, generated } = await treeSource(o);
  const treeEntries = countEntries(tree);
  const lsyncdPath = o.lsyncd ? (await runProcess('sh', ['-c', 'command -v lsyncd'])).stdout.trim() : '';

  const rsyncd = await startRsyncDaemon({ modules: ['ours', 'lsyncd', 'ref'], user: 'rsync_backup' });
  const rsyncdPid = findOwnChild(`--config=${join(rsyncd.configDir, 'rsyncd.conf')}`);
  const base = await makeTempDir('bench-engine');
  const dirs = { ours: join(base, 'sersync-ts'), lsyncd: join(base, 'lsyncd'), ref: join(base, 'reference') };
  for (const d of Object.values(dirs)) await mkdir(join(d, 'watched'), { recursive: true });

  const syncers: Syncer[] = [];
  let exitCode = 0;
  try {
    progress(`starting sersync-ts (tuning ${JSON.stringify(o.tuning)})`);
    const oursS = await startSersyncTs({
      dir: dirs.ours,
      src: join(dirs.ours, 'watched'),
      rsyncd,
      module: 'ours',
      tuning: o.tuning,
      args: o.emptyRoot ? ['-r'] : [],
    });
    syncers.push(oursS);
    let lsyncdS: Syncer | undefined;
    if (lsyncdPath) {
      progress(`starting lsyncd (${lsyncdPath}, delay ${o.lsyncdDelay} s)`);
      lsyncdS = await startLsyncd({
        dir: dirs.lsyncd,
        src: join(dirs.lsyncd, 'watched'),
        rsyncd,
        module: 'lsyncd',
        delaySeconds: o.lsyncdDelay,
      });
      syncers.push(lsyncdS);
    } else {
      progress(o.lsyncd ? 'lsyncd is not installed: its column stays empty' : 'lsyncd skipped (--no-lsyncd)');
    }
    const ctx: Ctx = {
      o,
      rsyncd,
      rsyncdLog: join(rsyncd.configDir, 'rsyncd.log'),
      rsyncdPid,
      tree,
      treeEntries,
      clk,
      ours: { s: oursS, treeAt: null, broken: undefined },
      lsyncd: lsyncdS ? { s: lsyncdS, treeAt: null, broken: undefined } : undefined,
      ref: { src: join(dirs.ref, 'watched'), dest: rsyncd.modules.ref as string, treeAt: null },
      problems: [],
      lsyncdProblems: [],
    };

    // A file that stays in every watched root: sersync-ts holds deletions while its watch root is empty (what an
    // unmounted disk looks like), and removing the only tree would empty it.
    for (const w of o.emptyRoot ? [] : [ctx.ours, ...(ctx.lsyncd ? [ctx.lsyncd] : [])]) {
      const marker = join(w.s.src, ROOT_MARKER);
      await writeFile(marker, 'keeps the watch root from looking unmounted\n');
      const at = await waitFileCopied(marker, join(w.s.dest, ROOT_MARKER), {
        intervalMs: 50,
        timeoutMs: ctx.o.fileTimeoutMs,
        stop: stopIfDead(w),
      });
      if (at === undefined) problem(ctx, w, `${ROOT_MARKER} did not reach the remote`);
      await settle(w, ctx.o.oneFileSettleMs);
    }
    await writeFile(join(ctx.ref.src, ROOT_MARKER), 'keeps the watch root from looking unmounted\n');
    await refMirror(ctx);

    const results: Record<string, unknown> = {};
    const rows: Row[] = [];
    const loads: Record<string, number[]> = {};
    const header = (label: string) => {
      loads[label] = loadavg();
      progress(`=== ${label} (load ${loads[label].map((x) => x.toFixed(2)).join(' ')})`);
    };
    for (const name of o.scenarios) {
      if (!isTreeScenario(name)) header(name);
      if (name === 'one-file') {
        const r = await scenarioOneFile(ctx);
        results[name] = r;
        rows.push(...oneFileRows(r, !!ctx.lsyncd));
      } else if (isTreeScenario(name)) {
        // The tree scenarios run as one group, --rounds times over, each round with its own reference runs.
        const group = o.scenarios.filter(isTreeScenario);
        if (name !== group[0]) continue;
        const runs: Record<string, TreeScenarioResult[]> = {};
        for (let round = 1; round <= o.rounds; round++) {
          for (const t of group) {
            header(o.rounds > 1 ? `${t} (round ${round}/${o.rounds})` : t);
            (runs[t] ??= []).push(await TREE_SCENARIOS[t](ctx));
          }
        }
        for (const t of group) {
          const rs = runs[t] ?? [];
          results[t] = rs.length === 1 ? rs[0] : rs;
          rows.push(...treeRoundsRows(t, rs, !!ctx.lsyncd, ctx));
        }
      } else if (name === 'idle-cpu') {
        const r = await scenarioIdle(ctx);
        results[name] = r;
        rows.push(...idleRows(r, !!ctx.lsyncd));
      }
    }
    for (const s of syncers) {
      // lsyncd's own failures are findings about lsyncd, not a broken benchmark (README).
      if (!s.running())
        (s.label === 'lsyncd' ? ctx.lsyncdProblems : ctx.problems).push(`${s.label} is no longer running (log: ${s.logFile})`);
    }

    const finishedAt = new Date();
    const load1 = loadavg();
    const git = {
      commit: (await runProcess('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']).catch(() => undefined))?.stdout.trim(),
      dirtyFiles: (await runProcess('git', ['-C', REPO, 'status', '--porcelain']).catch(() => undefined))?.stdout
        .split('\n')
        .filter(Boolean).length,
    };
    const machine = {
      cores: cpus().length,
      kernel: release(),
      loadStart: load0,
      loadEnd: load1,
      node: process.version,
      rsync: await version('rsync', ['--version']),
      lsyncd: lsyncdPath ? await version('lsyncd', ['-version']) : null,
      clockTicksPerSecond: clk,
    };
    const oursWarnings = oursS.summarize(0).warnings;

    // -- stdout: the report
    const lines: string[] = [];
    lines.push(`# sersync-ts engine benchmark, ${startedAt.toISOString()}${o.quick ? ' (--quick)' : ''}`);
    lines.push('');
    lines.push(
      `${machine.cores} cores, load ${load0.map((x) => x.toFixed(2)).join(' ')} → ${load1.map((x) => x.toFixed(2)).join(' ')}; ` +
        `${machine.node}; ${machine.rsync}; ${machine.lsyncd ?? 'no lsyncd'}; commit ${git.commit ?? '?'}` +
        `${git.dirtyFiles ? ` + ${git.dirtyFiles} uncommitted files` : ''}; took ${((finishedAt.getTime() - startedAt.getTime()) / 1000).toFixed(0)} s`,
    );
    lines.push(
      `Tree: ${tree}${generated ? ' (generated)' : ''}, ${treeEntries} entries. sersync-ts tuning: ${Object.keys(o.tuning).length ? JSON.stringify(o.tuning) : 'defaults'}; ` +
        `lsyncd: default.rsync, delay ${o.lsyncdDelay} s, archive+update+compress. Reference: one plain \`rsync -artuz\` (` +
        `${o.refRuns > 1 ? 'run before and after the daemons; mean (each run)' : 'one run'}). Ratios < 1 mean faster/cheaper than the reference.`,
    );
    lines.push('');
    lines.push(table(rows));
    lines.push('');
    const notes: string[] = [];
    for (const p of ctx.problems) notes.push(`**PROBLEM** ${p}`);
    for (const p of ctx.lsyncdProblems) notes.push(`lsyncd: ${p}`);
    if (oursWarnings.length) notes.push(`sersync-ts logged warnings: ${oursWarnings.join(' / ')}`);
    if (notes.length) lines.push(...notes.map((n) => `- ${n}`), '');
    const verdict =
      ctx.problems.length === 0 ? 'OK: every sersync-ts and reference tree was identical' : `FAILED: ${ctx.problems.length} problem(s)`;
    lines.push(verdict);

    // -- JSON
    const stamp = startedAt.toISOString().replace(/:/g, '-').replace(/\..*$/, '');
    const out = o.out ?? join(REPO, 'bench', 'results', `engine-${stamp}${o.quick ? '-quick' : ''}.json`);
    await mkdir(join(out, '..'), { recursive: true });
    await writeFile(
      out,
      `${JSON.stringify(
        {
          benchmark: 'engine',
          startedAt: startedAt.toISOString(),
          finishedAt: finishedAt.toISOString(),
          argv: process.argv.slice(2),
          machine,
          git,
          tree: { path: tree, generated, entries: treeEntries },
          settings: { ...o, tuning: o.tuning },
          loadPerScenario: loads,
          results,
          problems: ctx.problems,
          lsyncdProblems: ctx.lsyncdProblems,
          sersyncTsWarnings: oursWarnings,
          table: rows,
        },
        null,
        2,
      )}\n`,
    );
    lines.push(`Raw figures: ${out}`);
    console.log(lines.join('\n'));
    exitCode = ctx.problems.length === 0 ? 0 : 1;
  } finally {
    for (const s of syncers) await s.stop().catch(() => {});
    await rsyncd.stop().catch(() => {});
    await removeTempDirs();
  }
  return exitCode;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`bench/engine.ts: ${err.message}\n${USAGE}`);
      process.exitCode = 64;
      return;
    }
    console.error('bench/engine.ts: failed:', err);
    process.exitCode = 2;
  },
);
