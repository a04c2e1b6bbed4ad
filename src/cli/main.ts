import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { loadConfig } from '../config/load-config.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { startDaemon } from '../daemon/daemon.ts';
import { CHILD_ENV, detach, shouldDetach, surviveLostOutput, tellParent } from '../daemon/detach.ts';
import { createLogger } from '../observe/logger.ts';
import { startStandalone } from '../plugins/standalone.ts';
import { PidFile } from '../recovery/pid-file.ts';
import { ensureWritableStateDir, stateDirFor } from '../recovery/state-dir.ts';
import { execaRunner } from '../sync/process-runner.ts';
import { requireRsync } from '../sync/rsync-available.ts';
import { checkReport } from './check-report.ts';
import { parseCommandLine, parseStatusCommandLine } from './options.ts';
import { statusCommand } from './status-command.ts';

/** The only place that turns errors into exit codes and messages. Never a stack trace for expected errors. */
export async function main(argv: readonly string[]): Promise<number> {
  const version = readVersion();
  const out = { log: (s: string) => console.log(s), err: (s: string) => console.error(s) };
  let pidFile: PidFile | null = null;
  try {
    if (argv[0] === 'status') {
      const parsed = parseStatusCommandLine(argv.slice(1), out);
      if (parsed.kind === 'exit') return parsed.code;
      return await statusCommand(await loadConfig(parsed.options.config), { json: parsed.options.json });
    }
    const parsed = parseCommandLine(argv, version, out);
    if (parsed.kind === 'exit') return parsed.code;
    const opts = parsed.options;
    const config = await loadConfig(opts.config, opts.module ? { standalonePlugin: opts.module } : {});
    if (opts.check) {
      console.log(await checkReport(config, { initialSync: opts.initialSync, module: opts.module }));
      // -m runs no rsync and keeps no state; everything else needs both, so a unit's ExecStartPre fails here, with
      // the daemon's code.
      if (!opts.module) {
        ensureWritableStateDir(stateDirFor(config.tuning.stateDir));
        await requireRsync(execaRunner, 'rsync');
      }
      return opts.strict && config.warnings.length > 0 ? ExitCode.ConfigWarnings : ExitCode.Ok;
    }
    if (shouldDetach(opts.daemon)) return await detach(argv, opts.logFile);
    surviveLostOutput();
    const log = createLogger({ level: opts.logLevel ?? (config.debug ? 'debug' : 'info') });
    for (const w of config.warnings) log.warn(w);
    // Absolute before -d leaves the working directory; taken before the start, so two daemons cannot both own it.
    const pid = opts.pidFile ? PidFile.acquire(resolve(opts.pidFile), '--pid-file') : null;
    pidFile = pid;
    let persist = () => {};
    exitOnFatal(log, () => {
      persist();
      pid?.release();
    });
    // Before the (possibly long) start: a SIGTERM then stops the daemon as soon as it runs, a SIGHUP is not fatal,
    // and a SIGUSR1 never reaches Node's default handler, which would open the inspector on 127.0.0.1:9229.
    const signals = signalHub(log, pid);
    if (opts.module) {
      // sersync2's -m: the plugin alone on the watched directory, no rsync.
      const standalone = await startStandalone(config, opts.module, { log });
      announce();
      return await signals.attach({
        stop: async (signal) => {
          log.info({ reason: `received ${signal}` }, 'stopping');
          await standalone.stop();
          return ExitCode.Ok;
        },
      });
    }
    const daemon = await startDaemon({ config, log, initialSync: opts.initialSync, workers: opts.threads, version });
    persist = () => daemon.persistForCrash();
    announce();
    return await signals.attach({
      stop: (signal) => daemon.stop(`received ${signal}`),
      // A broken new config is reported and the running one goes on.
      reload: () =>
        loadConfig(opts.config, { cwd: opts.cwd }).then(
          (next) => {
            for (const w of next.warnings) log.warn(w);
            // `<debug start>` as the new config says, unless --log-level chose the level.
            if (opts.logLevel === null) log.level = next.debug ? 'debug' : 'info';
            return daemon.reload(next);
          },
          (err: unknown) =>
            log.error(
              { errors: err instanceof Error ? err.message.split('\n') : String(err) },
              'SIGHUP: the new config is invalid; keeping the running one',
            ),
        ),
      releaseHold: () => daemon.releaseHold(),
    });
  } catch (err) {
    pidFile?.release();
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

/** Running: a detached child's parent is told, and the working directory is left. */
function announce(): void {
  if (process.env[CHILD_ENV]) process.chdir('/');
  tellParent({ kind: 'ready', pid: process.pid });
}

interface SignalTarget {
  stop(signal: NodeJS.Signals): Promise<number>;
  reload?(): Promise<void>;
  releaseHold?(): void;
}

/**
 * The daemon's signals, installed before it starts: SIGTERM/SIGINT stop it (one stop, later signals join it; one
 * that comes during start-up is acted on once it runs), SIGHUP reloads, SIGUSR1 releases a deletion hold.
 * `on`, not `once`: execa's cleanup (signal-exit) re-raises a signal it believes nobody else handles, and a `once`
 * listener is already gone when it looks, so a daemon stopped while an rsync ran died mid-flush.
 */
function signalHub(log: Logger, pidFile: PidFile | null): { attach(target: SignalTarget): Promise<number> } {
  let target: SignalTarget | null = null;
  let early: NodeJS.Signals | null = null;
  let stopping: Promise<number> | null = null;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const stop = (signal: NodeJS.Signals) => {
    if (target === null) {
      early ??= signal;
      log.info({ signal }, `${signal} during start-up: stopping as soon as the daemon runs`);
      return;
    }
    stopping ??= target.stop(signal).catch((err: unknown) => {
      log.error({ err }, 'error while stopping');
      return ExitCode.Failure;
    });
    void stopping.then((code) => {
      pidFile?.release();
      finish(code);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    if (target?.reload) target.reload().catch((err: unknown) => log.error({ err }, 'SIGHUP: reload failed; keeping the running config'));
    else log.warn('SIGHUP: nothing to reload yet (still starting, or -m); ignored');
  });
  process.on('SIGUSR1', () => {
    if (target?.releaseHold) target.releaseHold();
    else log.warn('SIGUSR1: no deletion hold to release yet; ignored');
  });
  return {
    attach(t) {
      target = t;
      if (early !== null) stop(early);
      return finished;
    },
  };
}

/**
 * An error that nobody caught is a bug, and carrying on in an unknown state could lose changes silently: its stack
 * is logged, what the lanes still owe is saved as far as the disk lets it, and the process ends with 70 (systemd
 * restarts it; the retry queue stays marked running, so the next start does a full sync).
 */
export function exitOnFatal(log: Logger, persist: () => void): void {
  let dying = false;
  const die = (origin: string) => (reason: unknown) => {
    if (dying) return;
    dying = true;
    const message = reason instanceof Error ? reason.message : String(reason);
    log.fatal(
      reason instanceof Error ? { err: reason, origin } : { reason: message, origin },
      `${origin}: ${message}; saving the retry queue and exiting with ${ExitCode.Software} (a bug: please report it with this line)`,
    );
    try {
      persist();
    } catch (err) {
      log.error({ err }, 'could not save everything before exiting');
    }
    tellParent({ kind: 'error', message: `internal error: ${message}`, exitCode: ExitCode.Software });
    process.exit(ExitCode.Software);
  };
  process.on('uncaughtException', die('uncaughtException'));
  process.on('unhandledRejection', die('unhandledRejection'));
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
