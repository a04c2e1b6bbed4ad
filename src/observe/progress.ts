import type { Logger } from 'pino';
import type { Clock } from '../core/clock.ts';

/**
 * Progress of long full syncs (the `-r` initial sync of a large tree above all), read from rsync's
 * `--info=progress2` records on stdout: `   1,234,567  45%   10.50MB/s    0:00:10 (xfr#123, ir-chk=456/789)`.
 * A terminal gets one live line on stderr; a log gets a line every `<tuning progressMs>` (10 s) per remote.
 */

export interface RsyncProgress {
  /** Bytes of file data handled so far (transferred or matched). */
  readonly bytes: number;
  /** Of the bytes rsync knows about so far. */
  readonly percent: number;
  /** rsync's own rate, as it prints it (`10.50MB/s`). */
  readonly rate: string;
  /** Files transferred so far. */
  readonly transferred: number;
  /** Files looked at so far, of `known`. */
  readonly checked: number;
  readonly known: number;
  /** rsync is still listing the tree (`ir-chk`): `known`, the percentage and the ETA will still grow. */
  readonly scanning: boolean;
}

const RECORD = /^\s*([\d,]+)\s+(\d+)%\s+(\S+\/s)\s+\d+:\d\d:\d\d(?:\s+\(xfr#(\d+),\s+(ir|to)-chk=(\d+)\/(\d+)\))?\s*$/;

/** The last complete progress2 record in `text` (records end with `\r` or `\n`) that carries file counts. */
export function lastProgress(text: string): RsyncProgress | null {
  const records = text.split(/[\r\n]/);
  records.pop(); // the part after the last separator may be incomplete
  for (let i = records.length - 1; i >= 0; i--) {
    const m = RECORD.exec(records[i] as string);
    if (!m || m[4] === undefined) continue;
    const known = Number(m[7]);
    return {
      bytes: Number((m[1] as string).replace(/,/g, '')),
      percent: Number(m[2]),
      rate: m[3] as string,
      transferred: Number(m[4]),
      checked: known - Number(m[6]),
      known,
      scanning: m[5] === 'ir',
    };
  }
  return null;
}

export interface ProgressSink {
  /** A piece of rsync's stdout. */
  update(chunk: string): void;
  done(): void;
}

export interface FullSyncProgressOptions {
  readonly clock: Clock;
  readonly log: Pick<Logger, 'info'>;
  readonly intervalMs: number;
  /** The live line's terminal (stderr when it is one), or null. */
  readonly tty: { write(s: string): unknown } | null;
}

/** One per daemon: hands a sink to each full sync and renders what they report. */
export class FullSyncProgress {
  readonly #o: FullSyncProgressOptions;
  readonly #running = new Map<string, { started: number; loggedAt: number; carry: string; last: RsyncProgress | null }>();
  #drawnAt = 0;

  constructor(opts: FullSyncProgressOptions) {
    this.#o = opts;
  }

  start(remote: string): ProgressSink {
    const now = this.#o.clock.now();
    const state = { started: now, loggedAt: now, carry: '', last: null as RsyncProgress | null };
    this.#running.set(remote, state);
    return {
      update: (chunk) => {
        // Only the record still being written is carried over to the next chunk.
        const text = state.carry + chunk;
        state.carry = text.slice(text.search(/[^\r\n]*$/));
        const p = lastProgress(text);
        if (p === null) return;
        state.last = p;
        const t = this.#o.clock.now();
        if (t - state.loggedAt >= this.#o.intervalMs) {
          state.loggedAt = t;
          // The log line goes to the same terminal: clear the live line first, or the two run together.
          if (this.#o.tty) {
            this.#o.tty.write('\r\x1b[K');
            this.#drawnAt = 0;
          }
          this.#o.log.info(
            { remote, ...p, seconds: (t - state.started) / 1000, eta: eta(p, t - state.started) },
            `full sync to ${remote}: ${describe(p, t - state.started)}`,
          );
        }
        if (this.#o.tty && t - this.#drawnAt >= 250) {
          this.#drawnAt = t;
          this.#draw();
        }
      },
      done: () => {
        this.#running.delete(remote);
        if (this.#o.tty) this.#draw();
      },
    };
  }

  #draw(): void {
    const now = this.#o.clock.now();
    const parts = [...this.#running].flatMap(([remote, s]) => (s.last ? [`${remote}: ${describe(s.last, now - s.started)}`] : []));
    this.#o.tty?.write(`\r\x1b[K${parts.length > 0 ? `full sync ${parts.join(' | ')}` : ''}`);
  }
}

/** `1,234 of 5,678 files checked, 120 sent, 1.2 GB, 45 %, 10.50MB/s, ETA 1 min 10 s (still listing)`. */
export function describe(p: RsyncProgress, elapsedMs: number): string {
  const e = eta(p, elapsedMs);
  return (
    `${group(p.checked)} of ${group(p.known)} files checked, ${group(p.transferred)} sent, ${bytes(p.bytes)}, ${p.percent} %, ${p.rate}` +
    `${e === null ? '' : `, ETA ${duration(e)}`}${p.scanning ? ' (still listing the tree)' : ''}`
  );
}

/** Seconds left, from the share of files checked so far; null before there is anything to go by. */
export function eta(p: RsyncProgress, elapsedMs: number): number | null {
  if (p.checked <= 0 || p.known <= 0 || elapsedMs <= 0) return null;
  return Math.round(((elapsedMs / 1000) * (p.known - p.checked)) / p.checked);
}

function group(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

function duration(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
