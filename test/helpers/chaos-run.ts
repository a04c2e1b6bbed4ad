/**
 * One chaos run with real parts: a real rsync daemon with auth, the real sersync-ts process (bin/), and a churn of
 * the watched tree at full speed (chaos-churn.ts) while the faults of a seeded plan hit (chaos-faults.ts). Then the
 * churn stops, whatever is down is started again, and the run waits until the mirror is identical to the source.
 *
 * The operations and the faults come from the seed alone; `maxOps` replays a run up to exactly the same operation.
 * Used by test/integration/chaos.test.ts (a short run) and bench/chaos.ts (rounds for as long as asked).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ConfSpec, type SersyncProcess, startSersync, writeConf } from '../integration/support/sersync.ts';
import { ChaosChurn, type ChurnOp } from './chaos-churn.ts';
import { DEFAULT_FAULT_GAP_OPS, FAULT_KINDS, type Fault, type FaultKind, FaultPlan } from './chaos-faults.ts';
import { SeededRandom } from './chaos-random.ts';
import { freePort } from './ports.ts';
import { type RsyncDaemon, startRsyncDaemon } from './rsync-daemon.ts';
import { makeTempDir } from './tmp.ts';
import { compareTrees } from './trees.ts';
import { waitFor } from './wait.ts';

export interface ChaosOptions {
  readonly seed: number;
  /** How long the churn runs (the faults with it). */
  readonly churnMs: number;
  /** How long to wait for identical trees once the churn has stopped. */
  readonly convergeMs: number;
  /** Stop the churn after this many operations even if time is left (to replay a run exactly). */
  readonly maxOps?: number;
  /** Entries the churned tree tends towards (default 3000). */
  readonly targetEntries?: number;
  /** Operations between two faults (default 600..2400, see chaos-faults.ts). */
  readonly faultGapOps?: readonly [number, number];
  /** Progress lines (faults as they hit, phases). */
  readonly log?: (line: string) => void;
}

export interface FaultRecord {
  readonly kind: FaultKind | 'restore rsyncd' | 'restore sersync-ts';
  readonly atOp: number;
  /** Milliseconds since the churn began. */
  readonly atMs: number;
}

export interface ChaosResult {
  readonly seed: number;
  /** The fault plan's operations between two faults. */
  readonly faultGapOps: readonly [number, number];
  readonly operations: number;
  readonly opCounts: Readonly<Record<ChurnOp, number>>;
  readonly faults: readonly FaultRecord[];
  readonly faultCounts: Readonly<Record<FaultKind, number>>;
  readonly churnMs: number;
  /** Entries in the source tree when the churn stopped. */
  readonly entries: number;
  /** Milliseconds from the end of the churn until the trees were identical; null when they never were. */
  readonly convergeMs: number | null;
  /** The differences (source a, mirror b) of the last comparison; empty when the trees converged. */
  readonly differences: readonly string[];
  /** What went wrong besides the trees: a daemon that exited on its own, a SIGTERM that did not end in exit 0. */
  readonly problems: readonly string[];
  /** What sersync-ts logged: full syncs done, crashes detected, events lost (overflow), and its warnings. */
  readonly daemonLog: { fullSyncs: number; crashesDetected: number; eventsLost: number; warnings: string[] };
  /** The last operations of the churn, newest last. */
  readonly recentOps: readonly string[];
}

export const ok = (r: ChaosResult) => r.convergeMs !== null && r.differences.length === 0 && r.problems.length === 0;

/** A one-line and a detailed account of a run, with everything needed to replay it. */
export function describeChaos(r: ChaosResult): string {
  const faults = FAULT_KINDS.filter((k) => r.faultCounts[k] > 0)
    .map((k) => `${k} ${r.faultCounts[k]}`)
    .join(', ');
  const head =
    `chaos seed ${r.seed}: ${r.operations} operations in ${(r.churnMs / 1000).toFixed(1)} s (${r.entries} entries at the end), ` +
    `faults: ${faults || 'none'}; ` +
    (r.convergeMs === null ? 'DID NOT CONVERGE' : `converged in ${(r.convergeMs / 1000).toFixed(1)} s`) +
    `; sersync-ts: ${r.daemonLog.fullSyncs} full syncs, ${r.daemonLog.crashesDetected} crashes detected, ${r.daemonLog.eventsLost} lost-event reports`;
  if (ok(r)) return head;
  const bench = `--seed ${r.seed} --ops ${r.operations} --fault-gap ${r.faultGapOps.join('-')}`;
  const lines = [head, `replay: bench/chaos.ts ${bench} (--trace for its operations)`];
  for (const p of r.problems) lines.push(`problem: ${p}`);
  if (r.differences.length > 0) {
    lines.push(`${r.differences.length} difference(s) (a = source, b = mirror), each with the last operation on it or above it:`);
    for (const d of r.differences.slice(0, 40)) lines.push(`  ${d}`, ...lastTouch(r, d).map((l) => `      ${l}`));
    if (r.differences.length > 40) lines.push(`  ... and ${r.differences.length - 40} more`);
  }
  lines.push(`faults: ${r.faults.map((f) => `${f.kind}@op${f.atOp}/${(f.atMs / 1000).toFixed(1)}s`).join(' ')}`);
  return lines.join('\n');
}

/** Faults this many operations around an operation are named beside it. */
const NEAR_OPS = 300;

/**
 * The last operation of the churn that named the differing path (or, failing that, its nearest ancestor), and the
 * faults within NEAR_OPS operations of it: most losses sit right beside the fault that caused them.
 */
function lastTouch(r: ChaosResult, difference: string): string[] {
  const quoted = /^("(?:[^"\\]|\\.)*")/.exec(difference)?.[1];
  if (quoted === undefined) return [];
  for (let path = quoted.slice(1, -1); path !== ''; path = path.slice(0, Math.max(0, path.lastIndexOf('/')))) {
    const needle = `"${path}"`;
    const needleDir = `"${path}/`;
    const op = r.recentOps.findLast((o) => o.includes(needle) || o.includes(needleDir));
    if (op === undefined) continue;
    const at = Number(/^#(\d+)/.exec(op)?.[1]);
    const near = r.faults.filter((f) => Math.abs(f.atOp - at) <= NEAR_OPS).map((f) => `${f.kind}@op${f.atOp}`);
    const shown = op.length > 200 ? `${op.slice(0, 200)}... (${needle} among them)` : op;
    return [`${shown}${near.length > 0 ? `  [near: ${near.join(' ')}]` : ''}`];
  }
  return ['(no operation on it among the last ones kept)'];
}

const MODULE = 'chaos';
const MARKER_RE = /"msg":"([^"\\]*(?:\\.[^"\\]*)*)"/;

/** Counts what the daemon's JSON log lines say, across every process of the run. */
class DaemonLogTally {
  fullSyncs = 0;
  crashesDetected = 0;
  eventsLost = 0;
  readonly warnings: string[] = [];
  #partial = '';

  /** Reads what `proc` logged so far (its start) and then every new line. */
  attach(proc: SersyncProcess): void {
    this.#partial = '';
    this.#feed(proc.proc.output());
    proc.proc.child.stdout?.on('data', (chunk: Buffer) => this.#feed(chunk.toString('utf8')));
  }

  #feed(text: string): void {
    const lines = (this.#partial + text).split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      const msg = MARKER_RE.exec(line)?.[1] ?? '';
      if (msg.startsWith('full sync to ')) this.fullSyncs++;
      if (msg.startsWith('the previous run did not shut down cleanly')) this.crashesDetected++;
      if (msg.startsWith('events may have been lost')) this.eventsLost++;
      const level = /"level":(\d+)/.exec(line)?.[1];
      if (level !== undefined && Number(level) >= 40 && this.warnings.length < 30) this.warnings.push(msg.slice(0, 300));
    }
  }
}

/**
 * The churn of a run with its fault plan: bursts of operations at full speed with short pauses between them (so that
 * some aggregation windows close mid-churn), and each fault handed to `hit` once its operation is done. A SIGTERM
 * and a SIGHUP come right after a flurry of 100-400 files, so that the daemon holds many unchecked events then; a
 * second flurry follows a SIGHUP 20 ms later, while the reload runs.
 */
async function churnWithFaults(
  churn: ChaosChurn,
  seed: number,
  gapOps: readonly [number, number] | undefined,
  io: { more: () => boolean; pause: (ms: number) => Promise<unknown>; hit: (fault: Fault) => Promise<void> | undefined },
): Promise<void> {
  const plan = new FaultPlan(seed, { gapOps });
  const pacing = new SeededRandom(seed, 2);
  while (io.more()) {
    const burst = pacing.int(20, 400);
    for (let i = 0; i < burst && io.more(); i++) {
      await churn.step();
      for (const fault of plan.due(churn.operations)) {
        if (fault.kind === 'termRestart' || fault.kind === 'hup') churn.flurry(100, 400);
        await io.hit(fault);
        if (fault.kind === 'hup') {
          // And another while the reload runs.
          await io.pause(20);
          churn.flurry(100, 400);
        }
      }
    }
    await io.pause(pacing.int(0, 250));
  }
}

/**
 * Every operation of a run of `seed` up to operation `ops`, faults shown where they hit, made on a scratch tree
 * without any daemon: to follow a differing path back through its renames.
 */
export async function traceChaos(
  seed: number,
  ops: number,
  opts: Pick<ChaosOptions, 'targetEntries' | 'faultGapOps'> = {},
): Promise<string[]> {
  const dir = await makeTempDir('chaos-trace');
  const root = join(dir, 'src');
  const staging = join(dir, 'staging');
  await Promise.all([mkdir(root), mkdir(staging)]);
  const churn = new ChaosChurn(new SeededRandom(seed, 0), {
    root,
    staging,
    targetEntries: opts.targetEntries,
    recentLimit: Number.POSITIVE_INFINITY,
  });
  await churn.prepare();
  const faults: string[] = [];
  await churnWithFaults(churn, seed, opts.faultGapOps, {
    more: () => churn.operations < ops,
    pause: async () => {},
    hit: (fault) => {
      faults.push(`-- fault ${fault.kind} after operation #${churn.operations} (planned at #${fault.atOp})`);
      return undefined;
    },
  });
  await rm(dir, { recursive: true, force: true });
  // Faults go after the operation they followed.
  const lines: string[] = [];
  const byOp = new Map<number, string[]>();
  for (const f of faults) {
    const at = Number(/#(\d+) \(/.exec(f)?.[1]);
    byOp.set(at, [...(byOp.get(at) ?? []), f]);
  }
  for (const line of churn.recent()) {
    lines.push(line);
    lines.push(...(byOp.get(Number(/^#(\d+)/.exec(line)?.[1])) ?? []));
  }
  return lines;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const log = opts.log ?? (() => {});
  const dir = await makeTempDir('chaos');
  const src = join(dir, 'src');
  const staging = join(dir, 'staging');
  await Promise.all([mkdir(src), mkdir(staging)]);
  const rsyncd: RsyncDaemon = await startRsyncDaemon({
    modules: [MODULE],
    user: 'rsync_backup',
    password: `chaos ${opts.seed}`,
    // A chrooted module keeps symlink targets exactly as they are (TRAPS.md), so they are compared exactly.
    useChroot: true,
  });
  const dest = rsyncd.modules[MODULE] as string;
  const spec: ConfSpec = {
    watch: src,
    remotes: [{ ip: '127.0.0.1', name: MODULE }],
    auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
    port: rsyncd.port,
    failLog: join(dir, 'state', 'rsync_fail_log.sh'),
    host: { ip: '127.0.0.1', port: await freePort() },
  };
  const conf = await writeConf(dir, spec);
  const tally = new DaemonLogTally();
  const problems: string[] = [];
  const churn = new ChaosChurn(new SeededRandom(opts.seed, 0), { root: src, staging, targetEntries: opts.targetEntries });
  await churn.prepare();
  const differences = () => compareTrees(src, dest, { ignoreRootAttrs: true });

  let daemon: SersyncProcess | null = null;
  let expectExit = false;
  // CHAOS_LOG_DIR=dir keeps every daemon's log (stdout, at debug level) there, one file per process, to follow a path.
  const logDir = process.env.CHAOS_LOG_DIR;
  let started = 0;
  const start = async (args: string[] = []) => {
    const proc = await startSersync([...args, '-o', conf, ...(logDir ? ['--log-level', 'debug'] : [])]);
    tally.attach(proc);
    if (logDir) {
      const file = createWriteStream(join(logDir, `chaos-${opts.seed}-${++started}.log`));
      file.write(proc.proc.output());
      proc.proc.child.stdout?.on('data', (chunk: Buffer) => file.write(chunk));
      void proc.proc.exited.then(() => file.end());
    }
    expectExit = false;
    daemon = proc;
    void proc.proc.exited.then((status) => {
      if (!expectExit && daemon === proc) {
        problems.push(`sersync-ts exited on its own (code ${status.code}, signal ${status.signal}):\n${proc.proc.output().slice(-3000)}`);
        daemon = null;
      }
    });
  };
  const current = (): SersyncProcess | null => daemon;
  let rsyncdUp = true;

  const faultActions: Record<FaultKind, () => Promise<void>> = {
    rsyncdStop: async () => {
      await rsyncd.stop();
      rsyncdUp = false;
    },
    rsyncdStart: async () => {
      await rsyncd.restart();
      rsyncdUp = true;
    },
    kill: async () => {
      const proc = current();
      if (proc === null) return;
      expectExit = true;
      await proc.stop('SIGKILL');
      daemon = null;
    },
    start: async () => {
      if (current() === null) await start();
    },
    hup: async () => {
      const pid = current()?.proc.child.pid;
      if (pid !== undefined) process.kill(pid, 'SIGHUP');
    },
    termRestart: async () => {
      const proc = current();
      if (proc === null) return;
      expectExit = true;
      process.kill(proc.proc.child.pid as number, 'SIGTERM');
      const status = await Promise.race([proc.proc.exited, sleep(30_000).then(() => null)]);
      if (status === null) {
        problems.push(`sersync-ts still ran 30 s after SIGTERM; killed:\n${proc.proc.output().slice(-3000)}`);
        await proc.stop('SIGKILL');
      } else if (status.code !== 0) {
        problems.push(`sersync-ts exited ${status.code} (signal ${status.signal}) after SIGTERM:\n${proc.proc.output().slice(-3000)}`);
      }
      // Sweep rsync children it may have left behind.
      await proc.proc.stop({ signal: 'SIGKILL' });
      daemon = null;
      await start();
    },
  };

  const faults: FaultRecord[] = [];
  const faultCounts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  let churnStarted = 0;
  // Faults run one after the other, beside the churn; only a SIGTERM restart holds the churn (see chaos-faults.ts).
  let faultChain: Promise<void> = Promise.resolve();
  const schedule = (what: FaultRecord['kind'], action: () => Promise<void>) => {
    const run = async () => {
      const record = { kind: what, atOp: churn.operations, atMs: Date.now() - churnStarted };
      faults.push(record);
      log(`op ${record.atOp} +${(record.atMs / 1000).toFixed(1)} s: ${what}`);
      try {
        await action();
      } catch (err) {
        // A start that failed leaves the daemon down; the next `start` fault or the final restore tries again.
        problems.push(`${what} at op ${record.atOp} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    faultChain = faultChain.then(run);
    return faultChain;
  };

  try {
    // The first start syncs the marker file with -r; every later start goes without it.
    await start(['-r']);
    await waitFor(async () => (await differences()).length === 0, { timeoutMs: 60_000, intervalMs: 200, what: 'the initial sync' });
    log(`seed ${opts.seed}: churning for ${opts.churnMs / 1000} s`);

    churnStarted = Date.now();
    const maxOps = opts.maxOps ?? Number.POSITIVE_INFINITY;
    await churnWithFaults(churn, opts.seed, opts.faultGapOps, {
      more: () => churn.operations < maxOps && Date.now() - churnStarted < opts.churnMs,
      pause: (ms) => sleep(ms),
      hit: (fault) => {
        faultCounts[fault.kind]++;
        const done = schedule(fault.kind, faultActions[fault.kind]);
        // A SIGTERM restart holds the churn (what changes while no daemon runs is seen by nobody); a SIGHUP only until
        // it is sent, so that the flurry after it lands during the reload.
        return fault.kind === 'termRestart' || fault.kind === 'hup' ? done : undefined;
      },
    });
    const churnMs = Date.now() - churnStarted;
    await faultChain;
    if (!rsyncdUp) await schedule('restore rsyncd', faultActions.rsyncdStart);
    if (current() === null) await schedule('restore sersync-ts', () => start());
    const entries = churn.entries;
    log(`churn stopped after ${churn.operations} operations (${entries} entries); waiting for identical trees`);

    const stopped = Date.now();
    let last: string[] = [];
    let convergeMs: number | null = null;
    try {
      await waitFor(
        async () => {
          last = await differences();
          return last.length === 0;
        },
        { timeoutMs: opts.convergeMs, intervalMs: 1000, what: 'identical trees' },
      );
      convergeMs = Date.now() - stopped;
    } catch {
      // `last` holds the differences of the last comparison.
    }

    // A clean stop must not undo anything: compare once more after it.
    const proc = current();
    if (proc !== null) {
      expectExit = true;
      process.kill(proc.proc.child.pid as number, 'SIGTERM');
      const status = await Promise.race([proc.proc.exited, sleep(30_000).then(() => null)]);
      if (status?.code !== 0)
        problems.push(`the final SIGTERM ended in ${status === null ? 'no exit within 30 s' : `exit ${status.code}`}`);
      daemon = null;
    }
    if (convergeMs !== null) {
      last = await differences();
      if (last.length > 0) problems.push('the trees differed again after the final clean stop');
    }

    return {
      seed: opts.seed,
      faultGapOps: opts.faultGapOps ?? DEFAULT_FAULT_GAP_OPS,
      operations: churn.operations,
      opCounts: churn.counts(),
      faults,
      faultCounts,
      churnMs,
      entries,
      convergeMs,
      differences: last,
      problems,
      daemonLog: {
        fullSyncs: tally.fullSyncs,
        crashesDetected: tally.crashesDetected,
        eventsLost: tally.eventsLost,
        warnings: tally.warnings,
      },
      recentOps: churn.recent(),
    };
  } finally {
    await faultChain.catch(() => {});
    expectExit = true;
    await current()?.stop('SIGKILL');
    await rsyncd.stop();
    if (process.env.SERSYNC_TEST_KEEP_TMP !== '1')
      await Promise.all([dir, dest, rsyncd.configDir].map((d) => rm(d, { recursive: true, force: true })));
  }
}
