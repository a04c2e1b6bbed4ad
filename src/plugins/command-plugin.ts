import { isUtf8 } from 'node:buffer';
import type { CommandPluginConfig } from '../config/model.ts';
import { displayPath, toBuffer } from '../core/paths.ts';
import { execaRunner, lastLines } from '../sync/process-runner.ts';
import type { Plugin, PluginDeps, PluginEvent, PluginLimits } from './plugin.ts';
import { DEFAULT_CLOSE_GRACE_MS, PluginQueue } from './plugin-queue.ts';

export const COMMAND_LIMITS: PluginLimits = { concurrency: 4, maxQueued: 10_000, timeoutMs: 60_000 };

/**
 * The argv for one changed path: `prefix... <path> suffix...`, run without a shell. sersync2 ran
 * `system(prefix + " " + path + " " + suffix)`, so a file named `; rm -rf x` ran `rm`; here the path is one argument
 * that nothing interprets. Null when the command must not run: the `<filter>` is on and no `<include>` matches the
 * absolute path, or the path is not valid UTF-8 (see below).
 */
export function commandArgv(
  cfg: CommandPluginConfig,
  path: string,
): { file: string; args: string[] } | { skip: 'filter' | 'bytes' | 'prefix' } {
  if (cfg.filter.enabled && !cfg.filter.includes.some((rule) => rule.regex.test(path))) return { skip: 'filter' };
  const [file, ...rest] = cfg.prefix;
  // An empty prefix made sersync2's shell run the changed file itself; executing uploaded files is not a feature.
  if (file === undefined) return { skip: 'prefix' };
  // Node encodes every argv string as UTF-8: a byte string would be re-encoded into other bytes, and invalid UTF-8
  // has no JS string that encodes back to it. So a valid name goes as its text and an invalid one is not run: a
  // hook that gets a different path than the one that changed is worse than a hook that is told nothing.
  const bytes = toBuffer(path);
  if (!isUtf8(bytes)) return { skip: 'bytes' };
  return { file, args: [...rest, bytes.toString('utf8'), ...cfg.suffix] };
}

/**
 * `<plugin name="command">`: runs the program once per changed path, deletions included, at most
 * COMMAND_LIMITS.concurrency at a time, each for at most timeoutMs (then SIGTERM, SIGKILL 5 s later). A failure is
 * logged with its exit code and the end of its stderr; `ignoreError="true"` (sersync2 sent the output to /dev/null)
 * keeps non-zero exits at debug level. Timeouts and programs that cannot start are always logged. The program also
 * gets SERSYNC_EVENT=change|delete and SERSYNC_ISDIR=0|1 in its environment (sersync2 gave it nothing but the path).
 */
export function createCommandPlugin(cfg: CommandPluginConfig, deps: PluginDeps): Plugin {
  const log = deps.log;
  const runner = deps.runner ?? execaRunner;
  const limits = { ...COMMAND_LIMITS, ...deps.limits };
  if (cfg.prefix.length === 0) {
    log.error('command plugin: <param prefix=""> is empty, so there is no program to run; the plugin does nothing');
  }
  const queue = new PluginQueue('command', limits, log, async (event: PluginEvent, signal: AbortSignal) => {
    const shown = displayPath(event.path);
    const argv = commandArgv(cfg, event.path);
    if ('skip' in argv) {
      if (argv.skip === 'bytes') {
        log.warn(
          { plugin: 'command', path: shown },
          `command plugin: not run for ${JSON.stringify(shown)}: the name is not valid UTF-8, and a program argument cannot carry those bytes`,
        );
      } else if (argv.skip === 'filter') {
        log.debug({ plugin: 'command', path: shown }, 'command plugin: no <include> matches; not run');
      }
      return;
    }
    log.debug({ plugin: 'command', argv: [argv.file, ...argv.args], deleted: event.deleted }, 'command plugin: running');
    const env = { SERSYNC_EVENT: event.deleted ? 'delete' : 'change', SERSYNC_ISDIR: event.isDir ? '1' : '0' };
    const result = await runner.run(argv.file, argv.args, { signal, env });
    // A timeout or shutdown is reported by the queue, which stopped waiting when the signal fired.
    if (signal.aborted) return;
    const fields = { plugin: 'command', path: shown, exitCode: result.exitCode, signal: result.signal, seconds: result.durationMs / 1000 };
    if (result.spawnError !== undefined) {
      log.warn({ ...fields, error: result.spawnError }, `command plugin: cannot run ${argv.file}: ${result.spawnError}`);
    } else if (result.exitCode !== 0) {
      const stderr = lastLines(result.stderr, 5);
      const how = result.exitCode === undefined ? `was killed by ${result.signal}` : `exited with ${result.exitCode}`;
      if (cfg.ignoreError) log.debug({ ...fields, stderr }, `command plugin: ${argv.file} ${how} for ${shown} (ignoreError)`);
      else log.warn({ ...fields, stderr }, `command plugin: ${argv.file} ${how} for ${shown}${stderr ? `: ${stderr}` : ''}`);
    } else {
      log.debug(fields, 'command plugin: done');
    }
  });
  return {
    name: 'command',
    notify: (events) => queue.push(events),
    close: (graceMs = DEFAULT_CLOSE_GRACE_MS) => queue.close(graceMs),
  };
}
