/**
 * The reference: one plain rsync run, timed: wall clock here, user and system CPU (including its children) by bash's
 * `time`, peak RSS by /usr/bin/time when installed.
 */
import { access } from 'node:fs/promises';
import { runProcess } from '../../test/helpers/processes.ts';

export interface TimedRun {
  /** Wall seconds measured here, from spawn to exit (includes the ~1 ms of the time wrapper). */
  wall: number;
  user: number;
  sys: number;
  /** user + sys. */
  cpu: number;
  maxRssKb: number | undefined;
  code: number | null;
  stderr: string;
}

let timeBinary: string | null | undefined;

async function findTime(): Promise<string | null> {
  if (timeBinary !== undefined) return timeBinary;
  timeBinary = await access('/usr/bin/time').then(
    () => '/usr/bin/time',
    () => null,
  );
  return timeBinary;
}

const MARK = 'BENCH-TIME';
const RSS = 'BENCH-RSS';

/**
 * bash's `time` keyword gives user and system CPU of the children in milliseconds (GNU time only prints
 * hundredths, too coarse for a one-file rsync); /usr/bin/time inside it, when installed, adds the peak RSS.
 */
export async function timedRun(file: string, args: string[], timeoutMs = 600_000): Promise<TimedRun> {
  const time = await findTime();
  const inner = time !== null ? [time, '-f', `${RSS} %M`, file, ...args] : [file, ...args];
  const started = performance.now();
  const r = await runProcess('bash', ['-c', `TIMEFORMAT='${MARK} %3R %3U %3S'; time "$@"`, 'bash', ...inner], { timeoutMs });
  const wall = (performance.now() - started) / 1000;
  const lines = r.stderr.split('\n');
  const [, , u, s] = (lines.find((l) => l.startsWith(`${MARK} `)) ?? '').split(' ');
  const m = (lines.find((l) => l.startsWith(`${RSS} `)) ?? '').split(' ')[1];
  const user = Number(u);
  const sys = Number(s);
  const rest = lines
    .filter((l) => !l.startsWith(`${MARK} `) && !l.startsWith(`${RSS} `) && !l.startsWith('Command exited with non-zero status'))
    .join('\n')
    .trim();
  return {
    wall,
    user: Number.isFinite(user) ? user : Number.NaN,
    sys: Number.isFinite(sys) ? sys : Number.NaN,
    cpu: user + sys,
    maxRssKb: m !== undefined && /^\d+$/.test(m) ? Number(m) : undefined,
    code: r.timedOut ? null : r.code,
    stderr: rest,
  };
}
