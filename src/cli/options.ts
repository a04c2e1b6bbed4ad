import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { EXIT_CODE_MEANINGS, ExitCode, SersyncError } from '../core/errors.ts';
import { LOG_LEVELS, type LogLevel } from '../observe/logger.ts';
import { loadNativeInotify } from '../watch/dir-watch-backend.ts';

/** sersync2's command line (getopt "hdro:n:m:", clustering included: `-dro conf.xml`) plus long forms. */
export interface CliOptions {
  /** As the user gave it, for messages; relative paths are resolved against `cwd`. */
  readonly config: string;
  /** The directory sersync-ts was started in: a reload after `-d` left it still reads the same files. */
  readonly cwd: string;
  readonly initialSync: boolean;
  readonly daemon: boolean;
  readonly threads: number;
  readonly module: 'command' | 'socket' | 'refreshCDN' | 'http' | null;
  readonly check: boolean;
  /** With --check: exit ExitCode.ConfigWarnings when the config has warnings. */
  readonly strict: boolean;
  readonly logLevel: LogLevel | null;
  readonly logFile: string | null;
  readonly pidFile: string | null;
}

export type ParsedCommand = { kind: 'run'; options: CliOptions } | { kind: 'exit'; code: number };

const MODULES = ['command', 'socket', 'refreshCDN', 'http'] as const;

export function parseCommandLine(
  argv: readonly string[],
  version: string,
  out: { log: (s: string) => void; err: (s: string) => void },
): ParsedCommand {
  const program = new Command('sersync-ts')
    .description(
      'Real-time mirroring daemon: watches a directory and pushes every change to rsync remotes.\n' +
        'A drop-in replacement for sersync2: same flags, same confxml.xml.',
    )
    .option('-o, --config <file>', 'config file (sersync2 confxml.xml format)', 'confxml.xml')
    .option('-r, --initial-sync', 'push the whole tree to every remote once, after watching has started', false)
    .option(
      '-d, --daemon',
      'run in the background (under systemd only in a Type=forking or oneshot unit; SERSYNC_TS_FOREGROUND=1 keeps it in the foreground)',
      false,
    )
    .addOption(
      new Option('-n, --threads <n>', 'rsync processes at once, over all remotes').default(10).argParser((v: string) => {
        if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1000)
          throw new InvalidArgumentError('expected a whole number from 1 to 1000.');
        return Number(v);
      }),
    )
    .addOption(new Option('-m, --module <name>', 'run one plugin module alone, without rsync').choices(MODULES))
    .option('--check', 'validate the config, print warnings and the rsync commands each remote would get, then exit', false)
    .option('--strict', 'with --check: exit 65 when the config has warnings (for CI)', false)
    .option('--pid-file <file>', "write the daemon's pid here while it runs")
    .option('--log-file <file>', 'with -d outside systemd: append logs here (default: /dev/null)')
    .addOption(new Option('--log-level <level>', 'log level (default: info, or debug with <debug start="true">)').choices(LOG_LEVELS))
    .option('--version', 'print the version and which inotify reader this build carries, then exit')
    .helpOption('-h, --help', 'print this help and exit')
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.log(s.trimEnd()), writeErr: (s) => out.err(s.trimEnd()) });
  program.addHelpText(
    'after',
    `\nExit codes:\n${Object.entries(EXIT_CODE_MEANINGS)
      .map(([code, meaning]) => `  ${code.padEnd(3)} ${meaning}`)
      .join('\n')}\n` +
      'Example: sersync-ts -r -d -o /etc/sersync/confxml.xml\n' +
      'Status of a running daemon: sersync-ts status [-o FILE] [--json]',
  );
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return { kind: 'exit', code: ExitCode.Ok };
      }
      return { kind: 'exit', code: ExitCode.Usage };
    }
    throw err;
  }
  const o = program.opts<{
    version?: boolean;
    config: string;
    initialSync: boolean;
    daemon: boolean;
    threads: number;
    module?: CliOptions['module'];
    check: boolean;
    strict: boolean;
    logLevel?: LogLevel;
    logFile?: string;
    pidFile?: string;
  }>();
  if (o.version) {
    out.log(`sersync-ts ${version} (${loadNativeInotify() ? 'native inotify reader' : 'fs.watch fallback'})`);
    return { kind: 'exit', code: ExitCode.Ok };
  }
  if (o.config === '') {
    throw new SersyncError('USAGE', 'option -o needs a file name, got an empty string', { exitCode: ExitCode.Usage });
  }
  if (o.strict && !o.check) throw new SersyncError('USAGE', '--strict goes with --check', { exitCode: ExitCode.Usage });
  return {
    kind: 'run',
    options: {
      config: o.config,
      cwd: process.cwd(),
      initialSync: o.initialSync,
      daemon: o.daemon,
      threads: o.threads,
      module: o.module ?? null,
      check: o.check,
      strict: o.strict,
      logLevel: o.logLevel ?? null,
      logFile: o.logFile ?? null,
      pidFile: o.pidFile === undefined ? null : resolve(o.pidFile),
    },
  };
}

export type ParsedStatusCommand = { kind: 'run'; options: { config: string; json: boolean } } | { kind: 'exit'; code: number };

/** `sersync-ts status [-o FILE] [--json]`: asks the running daemon of that config for its status. */
export function parseStatusCommandLine(
  argv: readonly string[],
  out: { log: (s: string) => void; err: (s: string) => void },
): ParsedStatusCommand {
  const program = new Command('sersync-ts status')
    .description('Prints the status of the daemon running with this config (from its <host hostip port> endpoint).')
    .option('-o, --config <file>', 'config file of the running daemon', 'confxml.xml')
    .option('--json', 'print the status as JSON, as /status serves it', false)
    .helpOption('-h, --help', 'print this help and exit')
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.log(s.trimEnd()), writeErr: (s) => out.err(s.trimEnd()) });
  program.addHelpText('after', '\nExit codes: 0 the daemon answered, 69 no daemon of this config answers, 64 usage, 66/78 config.');
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return { kind: 'exit', code: err.code === 'commander.helpDisplayed' ? ExitCode.Ok : ExitCode.Usage };
    throw err;
  }
  const o = program.opts<{ config: string; json: boolean }>();
  return { kind: 'run', options: { config: o.config, json: o.json } };
}
