/**
 * The daemons under test, each started as a real process whose output goes to a log file (never to a pipe the
 * benchmark might leave undrained while it walks a tree): sersync-ts (bin/sersync-ts.cjs, a sersync2 confxml.xml)
 * and lsyncd (default.rsync to the same rsync daemon). Both push into their own module of one authenticated
 * rsync daemon on 127.0.0.1.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BackgroundProcess, spawnBackground } from '../../test/helpers/processes.ts';
import type { RsyncDaemon } from '../../test/helpers/rsync-daemon.ts';
import { waitFor } from '../../test/helpers/wait.ts';
import { BIN, writeConf } from '../../test/integration/support/sersync.ts';

/** What a daemon's log says happened between two points. */
export interface LogSummary {
  /** rsync processes the daemon says it started. */
  rsyncRuns: number;
  /** rsync runs that failed (a non-zero exit the daemon reported). */
  failures: number;
  /** Warnings and errors the daemon logged, first few, for the report. */
  warnings: string[];
  /** Epoch ms of the last batch the daemon logged as done (sersync-ts only: lsyncd logs whole seconds). */
  lastBatchAt: number | undefined;
  /** Number of log lines. */
  lines: number;
  /** Anything about lost events / queue overflow. */
  overflows: number;
  /** Full syncs the daemon logged as done (sersync-ts): the target says "without a full sync helping". */
  fullSyncs: number;
}

export interface Syncer {
  readonly label: 'sersync-ts' | 'lsyncd';
  /** The watched directory. */
  readonly src: string;
  /** The module directory it pushes into. */
  readonly dest: string;
  readonly module: string;
  readonly pid: number;
  readonly logFile: string;
  readonly proc: BackgroundProcess;
  running(): boolean;
  logSize(): number;
  summarize(fromByte: number): LogSummary;
  stop(): Promise<void>;
}

/** The whole lines of `file` from byte `fromByte` on ('' when missing). */
export function readFrom(file: string, fromByte: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = statSync(file).size;
    if (size <= fromByte) return '';
    const buf = Buffer.alloc(size - fromByte);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, fromByte + off);
      if (n === 0) break;
      off += n;
    }
    const text = buf.subarray(0, off).toString('utf8');
    // Only whole lines: a record being written now belongs to the next read.
    return text.slice(0, text.lastIndexOf('\n') + 1);
  } finally {
    closeSync(fd);
  }
}

export function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Runs `file args` with stdout and stderr appended to `logFile`; exec keeps the pid. */
function spawnLogged(file: string, args: string[], logFile: string): BackgroundProcess {
  return spawnBackground('/bin/sh', ['-c', 'exec "$@" >>"$BENCH_LOG_FILE" 2>&1', 'sh', file, ...args], {
    env: { ...process.env, BENCH_LOG_FILE: logFile },
  });
}

function parseRecords(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A non-JSON line: not a record.
    }
  }
  return out;
}

async function waitForLog(proc: BackgroundProcess, logFile: string, pattern: RegExp, what: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      if (pattern.test(readFrom(logFile, 0))) return true;
      if (!proc.running()) throw new Error(`${what}: the process exited:\n${readFrom(logFile, 0).slice(-3000)}`);
      return false;
    },
    { timeoutMs, intervalMs: 50, what },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n--- log ---\n${readFrom(logFile, 0).slice(-3000)}`);
  });
}

export async function startSersyncTs(opts: {
  dir: string;
  src: string;
  rsyncd: RsyncDaemon;
  module: string;
  tuning: Record<string, string>;
  /** Where its status endpoint listens (default 127.0.0.1:8008). */
  host?: { ip: string; port: number };
  /** Extra command-line flags (e.g. -r). */
  args?: string[];
}): Promise<Syncer> {
  const conf = await writeConf(opts.dir, {
    host: opts.host,
    watch: opts.src,
    remotes: [{ ip: '127.0.0.1', name: opts.module }],
    auth: { users: opts.rsyncd.user as string, passwordFile: opts.rsyncd.passwordFile as string },
    port: opts.rsyncd.port,
    failLog: join(opts.dir, 'state', 'rsync_fail_log.sh'),
    // Its state beside the run, not in the default /var/lib/sersync-ts.
    tuning: { stateDir: join(opts.dir, 'state'), ...opts.tuning },
  });
  const logFile = join(opts.dir, 'sersync-ts.log');
  const proc = spawnLogged(process.execPath, [BIN, ...(opts.args ?? []), '-o', conf], logFile);
  await waitForLog(proc, logFile, /"msg":"watching /, 'the "watching" line of sersync-ts');
  return runningSyncer('sersync-ts', opts, proc, logFile, (text) => {
    const records = parseRecords(text);
    const s: LogSummary = {
      rsyncRuns: 0,
      failures: 0,
      warnings: [],
      lastBatchAt: undefined,
      lines: records.length,
      overflows: 0,
      fullSyncs: 0,
    };
    for (const r of records) {
      // A full sync that failed is logged without rsyncRuns, as `run: "full"`; it counts too.
      if ((typeof r.rsyncRuns === 'number' && r.full === true) || r.run === 'full') s.fullSyncs++;
      if (typeof r.rsyncRuns === 'number') {
        s.rsyncRuns += r.rsyncRuns;
        const t = typeof r.time === 'string' ? Date.parse(r.time) : typeof r.time === 'number' ? r.time : Number.NaN;
        if (Number.isFinite(t)) s.lastBatchAt = Math.max(s.lastBatchAt ?? 0, t);
      }
      const level = typeof r.level === 'number' ? r.level : 30;
      // A failed run is logged as a warning naming the run kind and its exit code, without rsyncRuns.
      if (level >= 40 && 'run' in r && ('exitCode' in r || 'signal' in r)) s.failures++;
      if (level >= 40) {
        if (s.warnings.length < 5) s.warnings.push(String(r.msg));
        if (/lost|overflow/i.test(String(r.msg))) s.overflows++;
      }
    }
    return s;
  });
}

/** What both daemons' Syncer share; `summarize` reads the part of the log written since a byte offset. */
function runningSyncer(
  label: Syncer['label'],
  opts: { src: string; rsyncd: RsyncDaemon; module: string },
  proc: BackgroundProcess,
  logFile: string,
  summarize: (text: string) => LogSummary,
): Syncer {
  return {
    label,
    src: opts.src,
    dest: opts.rsyncd.modules[opts.module] as string,
    module: opts.module,
    pid: proc.child.pid as number,
    logFile,
    proc,
    running: () => proc.running(),
    logSize: () => sizeOf(logFile),
    summarize: (fromByte) => summarize(readFrom(logFile, fromByte)),
    async stop() {
      await proc.stop({ timeoutMs: 20_000 });
    },
  };
}

const lua = (s: string) => JSON.stringify(s);

/**
 * lsyncd 2.2.x with default.rsync, delay 1 s (its default is 15 s), and rsync flags matching sersync2's -artuz
 * (archive, update, compress) so both mirror the same attributes with the same compression. `-log Exec` logs
 * every rsync command line, which is how its rsync processes are counted.
 */
export async function startLsyncd(opts: {
  dir: string;
  src: string;
  rsyncd: RsyncDaemon;
  module: string;
  delaySeconds?: number;
}): Promise<Syncer> {
  const conf = join(opts.dir, 'lsyncd.conf.lua');
  await writeFile(
    conf,
    `settings { nodaemon = true, insist = false }
sync {
  default.rsync,
  source = ${lua(opts.src)},
  target = ${lua(`${opts.rsyncd.user}@127.0.0.1::${opts.module}`)},
  delay = ${opts.delaySeconds ?? 1},
  rsync = {
    archive = true,
    update = true,
    compress = true,
    password_file = ${lua(opts.rsyncd.passwordFile as string)},
    _extra = { ${lua(`--port=${opts.rsyncd.port}`)} },
  },
}
`,
  );
  const logFile = join(opts.dir, 'lsyncd.log');
  const proc = spawnLogged('lsyncd', ['-log', 'Exec', conf], logFile);
  await waitForLog(proc, logFile, /Normal: Startup of .* finished/, 'lsyncd to finish its startup sync');
  return runningSyncer('lsyncd', opts, proc, logFile, (text) => {
    const s: LogSummary = { rsyncRuns: 0, failures: 0, warnings: [], lastBatchAt: undefined, lines: 0, overflows: 0, fullSyncs: 0 };
    for (const line of text.split('\n')) {
      if (!line) continue;
      s.lines++;
      // "HH:MM:SS Exec: /usr/bin/rsync [<] [...]" — one line per rsync process it starts.
      if (/^\S+ Exec: \S*rsync /.test(line)) s.rsyncRuns++;
      const m = /Finished .*exitcode: (\d+)/.exec(line);
      if (m && m[1] !== '0') s.failures++;
      if (/^\S+ (Error|Warn)/.test(line) && s.warnings.length < 5) s.warnings.push(line);
      if (/overflow/i.test(line)) s.overflows++;
    }
    return s;
  });
}
