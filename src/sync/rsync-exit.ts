/**
 * rsync's exit codes (rsync(1) "EXIT VALUES") as verdicts. Expected conditions are values, not exceptions.
 * - ok: done.
 * - partial (23, 24): some files did not transfer or vanished. Never success for the files that failed: the batch is
 *   planned again from the disk's state, where a vanished temporary file is simply gone (lsyncd forgets them).
 * - retry: network, timeouts, the receiver, a signal: back off and try again.
 * - config: our invocation or the remote's setup is wrong (usage, protocol, auth, unknown module): say so loudly and
 *   keep retrying slowly, since an operator can fix it without restarting us.
 */
export type RsyncVerdict = 'ok' | 'partial' | 'retry' | 'config';

export interface RsyncOutcome {
  readonly exitCode?: number | undefined;
  readonly signal?: string | undefined;
}

const MEANING: Record<number, [RsyncVerdict, string]> = {
  0: ['ok', 'success'],
  1: ['config', 'syntax or usage error'],
  2: ['config', 'protocol incompatibility'],
  3: ['retry', 'errors selecting input/output files, dirs'],
  4: ['config', 'requested action not supported'],
  5: ['config', 'error starting client-server protocol (authentication, unknown module or max connections)'],
  6: ['retry', 'daemon unable to append to log-file'],
  10: ['retry', 'error in socket I/O'],
  11: ['retry', 'error in file I/O'],
  12: ['retry', 'error in rsync protocol data stream'],
  13: ['retry', 'errors with program diagnostics'],
  14: ['retry', 'error in IPC code'],
  20: ['retry', 'received SIGUSR1 or SIGINT'],
  21: ['retry', 'some error returned by waitpid()'],
  22: ['retry', 'error allocating core memory buffers'],
  23: ['partial', 'partial transfer due to error'],
  24: ['partial', 'partial transfer due to vanished source files'],
  25: ['retry', 'the --max-delete limit stopped deletions'],
  30: ['retry', 'timeout in data send/receive'],
  35: ['retry', 'timeout waiting for daemon connection'],
  127: ['config', 'rsync or the remote shell was not found'],
  255: ['retry', 'the remote shell (ssh) failed or the connection dropped'],
};

export function classifyRsyncExit(outcome: RsyncOutcome): { verdict: RsyncVerdict; meaning: string } {
  if (outcome.signal) return { verdict: 'retry', meaning: `killed by ${outcome.signal}` };
  const code = outcome.exitCode ?? -1;
  const known = MEANING[code];
  if (known) return { verdict: known[0], meaning: known[1] };
  return { verdict: 'retry', meaning: `unknown exit code ${code}` };
}

/**
 * Why rsync could not be started at all, for the log and the retry queue; always a configuration error. E2BIG (the
 * command line is longer than the kernel allows) no longer depends on the batch: paths go on stdin and the regex
 * walk's excludes into a file, so only the config's own arguments (commonParams, filters, crontabfilter) are left.
 */
export function spawnFailure(rsyncPath: string, error: string): string {
  if (/E2BIG/.test(error))
    return `cannot run ${rsyncPath}: its command line is too long for the kernel (E2BIG): shorten commonParams, the filter or the crontabfilter list`;
  return `cannot run ${rsyncPath}: ${error}`;
}
