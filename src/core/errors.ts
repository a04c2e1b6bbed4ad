/**
 * Exit codes, from sysexits.h where one fits. Only src/cli turns errors into exit codes; everything else throws
 * SersyncError with the code it maps to. The README's exit-code table is written from this list.
 */
export const ExitCode = {
  Ok: 0,
  /** Stopping failed (an error while flushing or saving); a fatal error while running is Software (70). */
  Failure: 1,
  /** Unknown option, missing or bad option value. */
  Usage: 64,
  /** `--check --strict`: the config is valid, but it has warnings. */
  ConfigWarnings: 65,
  /** The config file is missing or unreadable. */
  NoInput: 66,
  /** A program we need is missing (rsync), Node.js is too old, or (`status`) no daemon answers. */
  Unavailable: 69,
  /** A bug: an error nobody planned for. */
  Software: 70,
  /** The state directory (retry queue, pid file) cannot be created or written. */
  CantCreate: 73,
  /** A resource limit of the machine (inotify watches or instances), or another instance holds the lock or pid file. */
  TempFail: 75,
  /** The config file is invalid, or names something that does not exist (watch dir, password file). */
  Config: 78,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * What each exit code means, in the words `--help` prints; the README's table and the man page say the same
 * (test/unit/exit-codes.test.ts holds the three together).
 */
export const EXIT_CODE_MEANINGS: Readonly<Record<ExitCode, string>> = {
  [ExitCode.Ok]: 'clean stop, --help, --version, --check of a valid config',
  [ExitCode.Failure]: 'an error while stopping',
  [ExitCode.Usage]: 'usage: unknown option, missing or bad option value',
  [ExitCode.ConfigWarnings]: '--check --strict: the config runs, but has warnings',
  [ExitCode.NoInput]: 'the config file is missing or unreadable',
  [ExitCode.Unavailable]: 'rsync cannot run, or Node.js is older than 22.22; for status: no daemon of this config answers',
  [ExitCode.Software]: 'internal error (a bug), at start or while running',
  [ExitCode.CantCreate]: 'a state path cannot be used (state directory, retry queue, --pid-file)',
  [ExitCode.TempFail]: 'an inotify limit, or another sersync-ts runs this instance or holds the --pid-file',
  [ExitCode.Config]: 'the config is invalid, or names something that does not exist',
};

export type ErrorCode =
  | 'USAGE'
  | 'CONFIG_MISSING'
  | 'CONFIG_INVALID'
  | 'RSYNC_MISSING'
  | 'WATCH_LIMIT'
  | 'STATE_DIR'
  | 'ALREADY_RUNNING'
  | 'INTERNAL';

/** The `code` of a Node system error (ENOENT, EACCES …), if it has one. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The one error class of the project: a string code, a message that says what to do, and the exit code. */
export class SersyncError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;

  constructor(code: ErrorCode, message: string, opts: { exitCode: ExitCode; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SersyncError';
    this.code = code;
    this.exitCode = opts.exitCode;
  }
}
