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

/**
 * What the lane does after one run of a batch:
 * - ok: the next run;
 * - vanished (24): files vanished between the plan and the transfer; everything that still existed went, so it is no
 *   failure (or a full sync of a live tree would never succeed), and the listed paths are looked at once more;
 * - old-receiver: the remote's rsync refuses --modify-window=-1 (older than 3.1.3): whole seconds from now on;
 * - partial (23): some paths did not go: re-plan, then park (see RemoteLane);
 * - max-delete (25): the run reached <tuning maxDelete>; never retried on its own (each retry would delete as many
 *   again): every deletion waits for the operator;
 * - failed: back off and retry.
 */
export type RunStep = 'ok' | 'vanished' | 'old-receiver' | 'partial' | 'max-delete' | 'failed';

export interface RunClassification {
  readonly verdict: RsyncVerdict;
  readonly meaning: string;
  readonly step: RunStep;
}

/** Every exit-code decision about one rsync run: the verdict (statistics, retry queue), its meaning, the next step. */
export function classifyRun(
  run: { readonly kind: string; readonly args: readonly string[] },
  result: RsyncOutcome & { readonly stderr: string; readonly spawnError?: string | undefined },
  rsyncPath: string,
  nanoseconds: boolean,
): RunClassification {
  const { verdict, meaning } = result.spawnError
    ? { verdict: 'config' as const, meaning: spawnFailure(rsyncPath, result.spawnError) }
    : classifyRsyncExit(result);
  const code = result.exitCode;
  let step: RunStep = verdict === 'ok' ? 'ok' : 'failed';
  if (verdict === 'partial' && code === 24) step = 'vanished';
  else if (
    verdict !== 'ok' &&
    code !== 23 &&
    run.kind === 'update' &&
    nanoseconds &&
    run.args.includes('--modify-window=-1') &&
    /unknown option|-@/i.test(result.stderr)
  )
    step = 'old-receiver';
  else if (code === 23) step = 'partial';
  else if (code === 25) step = 'max-delete';
  return { verdict, meaning, step };
}
