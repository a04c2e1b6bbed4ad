/**
 * What the benchmark reads from /proc: CPU clock ticks of a process and of its reaped children, its peak RSS, its
 * live child processes. Linux only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { runProcess } from '../../test/helpers/processes.ts';

export interface CpuTicks {
  /** utime + stime of the process itself. */
  self: number;
  /** cutime + cstime: children it has waited for (rsync processes that have finished). */
  children: number;
}

/** Fields of /proc/PID/stat after the command name; index 0 is field 3 (state). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name is in parentheses and may hold spaces or parentheses itself: cut after the last ')'.
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

export function cpuTicks(pid: number): CpuTicks | undefined {
  const f = statFields(pid);
  if (!f) return undefined;
  const n = (i: number) => Number(f[i] ?? 0);
  return { self: n(11) + n(12), children: n(13) + n(14) };
}

export function ticksDelta(before: CpuTicks | undefined, after: CpuTicks | undefined): CpuTicks | undefined {
  if (!before || !after) return undefined;
  return { self: after.self - before.self, children: after.children - before.children };
}

/** A `kB` field of /proc/PID/status (VmHWM = peak RSS, VmRSS = now), in KiB. */
export function statusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface ProcEntry {
  pid: number;
  ppid: number;
  comm: string;
}

export function listProcesses(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = readFileSync(`/proc/${name}/stat`, 'latin1');
      const open = text.indexOf('(');
      const close = text.lastIndexOf(')');
      const rest = text.slice(close + 2).split(' ');
      out.push({ pid: Number(name), ppid: Number(rest[1]), comm: text.slice(open + 1, close) });
    } catch {
      // Gone between readdir and read.
    }
  }
  return out;
}

/** Live (or not yet reaped) direct children of `pid` whose command is `comm`. */
export function childrenNamed(pid: number, comm: string): number[] {
  return listProcesses()
    .filter((p) => p.ppid === pid && p.comm === comm)
    .map((p) => p.pid);
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** The pid of a process started by this one whose command line holds `needle`, if any. */
export function findOwnChild(needle: string): number | undefined {
  return listProcesses().find((p) => p.ppid === process.pid && cmdline(p.pid).some((a) => a.includes(needle)))?.pid;
}

/** Clock ticks per second (getconf CLK_TCK), usually 100. */
export async function clockTicksPerSecond(): Promise<number> {
  const r = await runProcess('getconf', ['CLK_TCK']).catch(() => undefined);
  const n = Number(r?.stdout.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
}
