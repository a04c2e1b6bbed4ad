import path from 'node:path';
import { type ConfigNode, attr, where } from './config-node.ts';
import type { ConfigProblems } from './problems.ts';
import { splitShellWords } from './shell-words.ts';

/** Something only the file system can confirm; loadConfig checks it and blames the element named here. */
export interface DiskCheck {
  readonly kind: 'watchDirectory' | 'directory' | 'passwordFile';
  readonly path: string;
  readonly line: number;
  readonly where: string;
}

export interface ValueRange {
  readonly min: number;
  readonly max: number;
  readonly expect: string;
}

export type OnBadValue = (node: ConfigNode, key: string, message: string) => void;

export const PORT: ValueRange = { min: 1, max: 65535, expect: 'expected a port number 1-65535' };
// A year; the timers that use these must cope with more than setTimeout's 24.8 days.
const MAX_MINUTES = 525600;

/**
 * Reads attribute values the way sersync2 did, leniently: a value it would have bent (a word for a number, `True`)
 * earns a warning saying what it became, and the problems go to one list. Also collects what only the disk can
 * confirm, for loadConfig.
 */
export class ValueReader {
  readonly problems: ConfigProblems;
  readonly #diskChecks: DiskCheck[] = [];
  /** Whether the file was read as UTF-8 (else Latin-1), which decides how regexes become byte strings. */
  readonly utf8: boolean;
  /** What relative paths in the file are resolved against. */
  readonly cwd: string;

  constructor(problems: ConfigProblems, cwd: string, utf8: boolean) {
    this.problems = problems;
    this.cwd = cwd;
    this.utf8 = utf8;
  }

  /** Only the exact value `true` is true, as in sersync2; anything but `true`/`false` earns a warning. */
  bool(node: ConfigNode | undefined, key: string, fallback: boolean): boolean {
    const value = attr(node, key);
    if (value === undefined || node === undefined) return fallback;
    if (value !== 'true' && value !== 'false') {
      this.problems.warn(node.el.line, where(node, key), 'only the exact value "true" turns this on; read as false');
    }
    return value === 'true';
  }

  number(node: ConfigNode | undefined, key: string, fallback: number, range: ValueRange, onBad: OnBadValue): number {
    const raw = attr(node, key);
    if (raw === undefined || node === undefined) return fallback;
    const text = raw.trim();
    const value = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
    if (Number.isInteger(value) && value >= range.min && value <= range.max) return value;
    onBad(node, key, range.expect);
    return fallback;
  }

  /**
   * A count of minutes read as sersync2 read it, with C's atoi: leading digits count, the rest is ignored, and no
   * digits at all is 0. Anything atoi had to bend earns a warning saying what the value became, unless `quiet`
   * (a value of a part that is off, which sersync2 never used).
   */
  minutes(node: ConfigNode, key: string, raw: string, zero: { atMostZero: number; meaning: string; quiet?: boolean }): number {
    const value = atoi(raw);
    const at = where(node, key);
    const warn = (message: string) => {
      if (zero.quiet !== true) this.problems.warn(node.el.line, at, message);
    };
    if (value <= 0) {
      warn(`not a number of minutes > 0, read as ${zero.atMostZero} (${zero.meaning})`);
      return zero.atMostZero;
    }
    if (value > MAX_MINUTES) {
      warn(`more than a year, read as ${MAX_MINUTES} minutes`);
      return MAX_MINUTES;
    }
    if (!/^\s*\+?\d+\s*$/.test(raw)) warn(`not a whole number, read as ${value} as sersync2 did (atoi)`);
    return value;
  }

  /** The onBad callback of number() for an element whose `start` decides between error and warning. */
  reportIf(enabled: boolean): OnBadValue {
    return (node, key, message) => this.problems.report(enabled, node.el.line, where(node, key), message);
  }

  /** A command line split into words like sh does, without running a shell; null when it cannot be split. */
  words(node: ConfigNode | undefined, key: string, raw: string, enabled: boolean): string[] | null {
    const split = splitShellWords(raw);
    if (!split.ok) {
      if (node !== undefined)
        this.problems.report(enabled, node.el.line, where(node, key), `${split.reason}; the value is split into words like sh does`);
      return null;
    }
    if (enabled && split.shellSyntax !== '' && node !== undefined) {
      this.problems.warn(
        node.el.line,
        where(node, key),
        `shell syntax (${[...split.shellSyntax].join(' ')}) is passed literally: sersync-ts runs commands without a shell`,
      );
    }
    return split.words;
  }

  /** A path from the file, absolute and without trailing slashes; a relative one is resolved against the cwd. */
  absolute(node: ConfigNode, key: string, raw: string): string {
    if (path.isAbsolute(raw)) return path.resolve(raw);
    const resolved = path.resolve(this.cwd, raw);
    this.problems.warn(node.el.line, where(node, key), `relative path, resolved against the current directory: ${resolved}`);
    return resolved;
  }

  /** A directory or file the config names at `<node key>`, for loadConfig to check on disk. */
  checkOnDisk(kind: DiskCheck['kind'], file: string, node: ConfigNode, key: string): void {
    this.#diskChecks.push({ kind, path: file, line: node.el.line, where: where(node, key) });
  }

  get diskChecks(): readonly DiskCheck[] {
    return this.#diskChecks;
  }
}

/** C's atoi: optional blanks and sign, then digits; whatever follows is ignored, and no digits at all is 0. */
export function atoi(text: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)/.exec(text);
  if (m === null) return 0;
  const digits = Number((m[2] as string).slice(0, 16));
  return m[1] === '-' ? -digits : digits;
}
