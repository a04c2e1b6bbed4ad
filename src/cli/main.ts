import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../config/load-config.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { DEFAULT_IO_TIMEOUT_SECONDS, startDaemon } from '../daemon/daemon.ts';
import { CHILD_ENV, detach, shouldDetach, tellParent } from '../daemon/detach.ts';
import { createLogger } from '../observe/logger.ts';
import { checkReport } from './check-report.ts';
import { parseCommandLine } from './options.ts';

/** The only place that turns errors into exit codes and messages. Never a stack trace for expected errors. */
export async function main(argv: readonly string[]): Promise<number> {
  const version = readVersion();
  try {
    const parsed = parseCommandLine(argv, version, { log: (s) => console.log(s), err: (s) => console.error(s) });
    if (parsed.kind === 'exit') return parsed.code;
    const opts = parsed.options;
    const config = await loadConfig(opts.config);
    if (opts.check) {
      console.log(checkReport(config, { initialSync: opts.initialSync, defaultTimeoutSeconds: DEFAULT_IO_TIMEOUT_SECONDS }));
      return ExitCode.Ok;
    }
    if (opts.module) {
      console.error(`sersync-ts: -m ${opts.module}: standalone plugin modules are not available in this version yet`);
      return ExitCode.Unavailable;
    }
    if (shouldDetach(opts.daemon)) return await detach(argv, opts.logFile);
    const log = createLogger({ level: opts.logLevel ?? (config.debug ? 'debug' : 'info') });
    for (const w of config.warnings) log.warn(w);
    const daemon = await startDaemon({ config, log, initialSync: opts.initialSync, workers: opts.threads, version });
    if (opts.pidFile) writeFileSync(opts.pidFile, `${process.pid}\n`);
    if (process.env[CHILD_ENV]) process.chdir('/');
    tellParent({ kind: 'ready', pid: process.pid });
    return await new Promise<number>((resolve) => {
      const onSignal = (signal: NodeJS.Signals) => {
        daemon.stop(`received ${signal}`).then((code) => {
          if (opts.pidFile) rmSync(opts.pidFile, { force: true });
          resolve(code);
        }, (err: unknown) => {
          log.error({ err }, 'error while stopping');
          resolve(ExitCode.Failure);
        });
      };
      // `on`, not `once`: execa's cleanup (signal-exit) re-raises a signal that it believes nobody else handles, and a
      // `once` listener is already gone when signal-exit looks, so the daemon died mid-flush while an rsync ran.
      // A second signal during the stop is absorbed by daemon.stop(), which returns the same promise.
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      // SIGHUP reloads; a broken new config is reported and the running one goes on.
      process.on('SIGHUP', () => {
        loadConfig(opts.config).then(
          (next) => {
            for (const w of next.warnings) log.warn(w);
            return daemon.reload(next);
          },
          (err: unknown) => log.error({ errors: err instanceof Error ? err.message.split('\n') : String(err) }, 'SIGHUP: the new config is invalid; keeping the running one'),
        ).catch((err: unknown) => log.error({ err }, 'SIGHUP: reload failed; keeping the running config'));
      });
      process.on('SIGUSR1', () => daemon.releaseHold());
    });
  } catch (err) {
    if (err instanceof SersyncError) {
      tellParent({ kind: 'error', message: err.message, exitCode: err.exitCode });
      console.error(prefixLines(err.message));
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    tellParent({ kind: 'error', message: `internal error: ${message}`, exitCode: ExitCode.Software });
    console.error(`sersync-ts: internal error: ${message}`);
    if (process.env.SERSYNC_TS_DEBUG) console.error(err);
    else console.error('sersync-ts: this is a bug; set SERSYNC_TS_DEBUG=1 for the stack trace and report it');
    return ExitCode.Software;
  }
}

function prefixLines(message: string): string {
  return message
    .split('\n')
    .map((l) => `sersync-ts: ${l}`)
    .join('\n');
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
