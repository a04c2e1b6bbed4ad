import pino, { type Logger } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/**
 * JSON lines (pino) for machines; on a terminal one readable line per record instead. Passwords never reach a log:
 * the config holds only the password *file* path, and rsync's stderr does not echo secrets.
 */
export function createLogger(opts: { level: LogLevel; pretty?: boolean; destination?: NodeJS.WritableStream }): Logger {
  const out = opts.destination ?? process.stdout;
  const pretty = opts.pretty ?? (out as NodeJS.WriteStream).isTTY === true;
  const base = { level: opts.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (!pretty) return pino(base, out as pino.DestinationStream);
  return pino(base, { write: (line: string) => out.write(formatLine(line)) });
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

function formatLine(line: string): string {
  try {
    const rec = JSON.parse(line) as Record<string, unknown>;
    const time = typeof rec.time === 'string' ? rec.time.slice(11, 23) : '';
    const extras = Object.entries(rec)
      .filter(([k]) => !HIDDEN.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${time} ${LEVEL_NAMES[rec.level as number] ?? rec.level} ${rec.msg ?? ''}${extras ? `  ${extras}` : ''}\n`;
  } catch {
    return line;
  }
}
