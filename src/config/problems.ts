import { ExitCode, SersyncError } from '../core/errors.ts';

interface Problem {
  readonly line: number;
  readonly text: string;
}

/**
 * Collects every error and warning of one config file, so the user sees all of them at once. Each line reads
 * `conf.xml:27: <sersync><rsync><timeout time="abc">: expected whole seconds > 0`, with the file named as the user
 * gave it. Lines are reported in file order.
 */
export class ConfigProblems {
  readonly #displayName: string;
  readonly #errors: Problem[] = [];
  readonly #warnings: Problem[] = [];

  constructor(displayName: string) {
    this.#displayName = displayName;
  }

  /** `where` is the element path, e.g. `<sersync><localpath watch="/x">`; null for a problem of the whole file. */
  error(line: number | null, where: string | null, message: string): void {
    this.#errors.push(this.#format(line, where, message));
  }

  warn(line: number | null, where: string | null, message: string): void {
    this.#warnings.push(this.#format(line, where, message));
  }

  /** A bad value in an enabled element is an error; in a disabled one it cannot hurt yet, so it is a warning. */
  report(enabled: boolean, line: number | null, where: string | null, message: string): void {
    if (enabled) this.error(line, where, message);
    else this.warn(line, where, `${message} (only a warning while this part is not enabled)`);
  }

  get hasErrors(): boolean {
    return this.#errors.length > 0;
  }

  warnings(): string[] {
    return sorted(this.#warnings);
  }

  throwIfAny(): void {
    if (this.#errors.length === 0) return;
    throw new SersyncError('CONFIG_INVALID', sorted(this.#errors).join('\n'), { exitCode: ExitCode.Config });
  }

  #format(line: number | null, where: string | null, message: string): Problem {
    const head = line === null ? `${this.#displayName}:` : `${this.#displayName}:${line}:`;
    return { line: line ?? 0, text: where === null ? `${head} ${message}` : `${head} ${where}: ${message}` };
  }
}

function sorted(problems: readonly Problem[]): string[] {
  // Array.prototype.sort is stable, so problems on one line keep the order they were found in.
  return [...problems].sort((a, b) => a.line - b.line).map((p) => p.text);
}
