import { ExitCode, SersyncError } from '../core/errors.ts';
import type { ProcessRunner } from './process-runner.ts';

/**
 * rsync must run before anything is promised: the daemon checks it at start, and `--check` too, so a unit's
 * `ExecStartPre` fails with the same message and exit code (69) instead of the daemon failing after it.
 */
export async function requireRsync(runner: ProcessRunner, rsyncPath: string): Promise<void> {
  const result = await runner.run(rsyncPath, ['--version']);
  if (result.spawnError || result.exitCode !== 0) {
    throw new SersyncError(
      'RSYNC_MISSING',
      `cannot run '${rsyncPath} --version' (${result.spawnError ?? `exit ${result.exitCode}`}): install rsync (apt-get install rsync) or put it on PATH`,
      { exitCode: ExitCode.Unavailable },
    );
  }
}
