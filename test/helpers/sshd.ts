/**
 * A real OpenSSH server on 127.0.0.1, owned by the test, for rsync-over-ssh pushes (`rsync -e sshCommand`).
 *
 * It runs `/usr/sbin/sshd -D -e` with its own config, host key and port, and lets root in with a client key made
 * for this test only. `StrictModes no` is needed because the keys live under /tmp; Debian's sshd also needs
 * /run/sshd to exist.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { type BackgroundProcess, runProcess, spawnBackground } from './processes.ts';
import { makeTempDir } from './tmp.ts';
import { waitFor } from './wait.ts';

export interface Sshd {
  readonly port: number;
  /** The user the client key logs in as. */
  readonly user: 'root';
  readonly host: '127.0.0.1';
  /** Private client key (ed25519, no passphrase). */
  readonly keyFile: string;
  /**
   * ssh options that reach this server non-interactively, without reading ~/.ssh/config or known_hosts:
   * pass them to `ssh` before the destination.
   */
  readonly sshArgs: readonly string[];
  /** `ssh` followed by sshArgs, quoted where needed, for `rsync -e`. */
  readonly sshCommand: string;
  /** sshd's own output (it runs with -e), for error messages. */
  output(): string;
  stop(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';
const START_TIMEOUT_MS = 15_000;

/** Quotes one word for the small shell-like splitter rsync applies to `-e` (it understands single quotes). */
function quoteWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`;
}

async function keygen(file: string, comment: string): Promise<void> {
  const r = await runProcess('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  if (r.code !== 0) throw new Error(`ssh-keygen -f ${file} failed (exit ${r.code}): ${r.stderr}`);
}

/** Starts sshd and resolves once `ssh ... root@127.0.0.1 true` succeeds through it. */
/** `extra`: more sshd_config lines (MaxSessions 1, say). */
export async function startSshd(extra: readonly string[] = []): Promise<Sshd> {
  const dir = await makeTempDir('sshd');
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const keyFile = join(dir, 'id_ed25519');
  const authorizedKeys = join(dir, 'authorized_keys');
  const configFile = join(dir, 'sshd_config');
  await Promise.all([keygen(hostKey, 'sersync-ts test host'), keygen(keyFile, 'sersync-ts test client')]);
  await writeFile(authorizedKeys, await readFile(`${keyFile}.pub`), { mode: 0o600 });
  // Privilege separation directory required by Debian's sshd; normally made by the init script.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  let port = 0;
  let proc: BackgroundProcess | undefined;
  let sshArgs: string[] = [];

  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    await writeFile(
      configFile,
      [
        '# Written by test/helpers/sshd.ts',
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'StrictModes no',
        'UsePAM no',
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UseDNS no',
        ...extra,
        '',
      ].join('\n'),
    );
    sshArgs = [
      '-F',
      '/dev/null',
      '-p',
      String(port),
      '-i',
      keyFile,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'LogLevel=ERROR',
      '-o',
      'ConnectTimeout=5',
    ];
    const p = spawnBackground(SSHD, ['-D', '-e', '-f', configFile]);
    proc = p;
    const args = sshArgs;
    let outcome: 'ready' | 'exited' | 'timeout';
    try {
      outcome = await waitFor(
        async () => {
          if (!p.running()) return 'exited';
          const r = await runProcess('ssh', [...args, 'root@127.0.0.1', 'true'], { timeoutMs: 5000 });
          if (r.code !== 0) throw new Error(`ssh exit ${r.code}: ${r.stderr.trim()}`);
          return 'ready';
        },
        { timeoutMs: START_TIMEOUT_MS, intervalMs: 100, what: `sshd on 127.0.0.1:${port} to accept the test key` },
      );
    } catch (err) {
      await p.stop();
      throw new Error(`sshd did not become usable on 127.0.0.1:${port}: ${(err as Error).message}\n--- sshd output ---\n${p.output()}`, {
        cause: err,
      });
    }
    if (outcome === 'ready') break;
    const status = await p.exited;
    // The port from freePort can be taken before sshd binds it; retry with a fresh one a few times.
    if (/Bind to port|Address already in use|Cannot bind/i.test(p.output()) && attempt < 3) continue;
    throw new Error(
      `sshd exited during startup (exit code ${status.code}, signal ${status.signal}${status.error ? `, ${status.error.message}` : ''})\n` +
        `--- sshd output ---\n${p.output()}`,
    );
  }

  const running = proc;
  return {
    port,
    user: 'root',
    host: '127.0.0.1',
    keyFile,
    sshArgs,
    sshCommand: ['ssh', ...sshArgs].map(quoteWord).join(' '),
    output: () => running.output(),
    async stop() {
      await running.stop();
    },
  };
}
