/**
 * A real rsync daemon on 127.0.0.1, owned by the test: `rsync --daemon --no-detach` on a free port, with its own
 * rsyncd.conf, secrets file and one fresh directory per module.
 *
 * Modules run with `use chroot = no` and `munge symlinks = no`, like a typical sersync2 receiver; note that such
 * a daemon still strips the leading `/` of absolute symlink targets (compare with `absSymlinksStripped`) and trims
 * the `../` of a relative target that climbs out of the module. `useChroot` keeps every target as it is.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { type BackgroundProcess, spawnBackground } from './processes.ts';
import { makeTempDir } from './tmp.ts';
import { waitFor } from './wait.ts';

export interface RsyncDaemonOptions {
  /** Module names, each [A-Za-z0-9_.-]+. */
  modules: string[];
  /** Enables authentication. Defaults to `rsync_backup` (sersync2's convention) when only `password` is given. */
  user?: string;
  /** Defaults to a random password when only `user` is given. */
  password?: string;
  /**
   * `use chroot = yes` (default no): the daemon then keeps symlink targets exactly, also absolute ones and relative
   * ones that climb out of the module, which a `use chroot = no` daemon rewrites.
   */
  useChroot?: boolean;
}

export interface RsyncDaemon {
  readonly port: number;
  /** Module name → the directory it serves. */
  readonly modules: Record<string, string>;
  /** The user in `auth users`, or undefined for an unauthenticated daemon. */
  readonly user: string | undefined;
  /** The password the daemon accepts now (changes with setPassword), or undefined without auth. */
  readonly password: string | undefined;
  /**
   * Client-side password file (mode 0600) for `rsync --password-file`, holding the password given at start.
   * setPassword does not rewrite it, so a client using it fails authentication (exit 5) until the password is set
   * back. Undefined without auth.
   */
  readonly passwordFile: string | undefined;
  /** The directory holding rsyncd.conf, the secrets file and rsyncd.log. */
  readonly configDir: string;
  /** `rsync://[user@]127.0.0.1:PORT/module/`, the destination for a push into `module`. */
  moduleUrl(module: string): string;
  /** Daemon output plus rsyncd.log, for error messages. */
  log(): Promise<string>;
  /** Stops the daemon and every connection it is serving; the port then refuses connections. */
  stop(): Promise<void>;
  /** Starts the daemon again on the same port with the same modules and directories (stopping it first if needed). */
  restart(): Promise<void>;
  /** Changes the password the daemon accepts; the daemon rereads its secrets file on every login. */
  setPassword(newPassword: string): Promise<void>;
  /**
   * Sets extra rsyncd.conf lines of one module (e.g. `exclude = /blocked/`: the receiver then refuses those paths and
   * the client exits 23); [] removes them. The daemon rereads its config on every connection.
   */
  setModuleLines(module: string, lines: string[]): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;

/** Resolves once something on 127.0.0.1:port answers with the rsync daemon greeting. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.on('error', () => finish(false));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (data.includes('\n')) finish(data.startsWith('@RSYNCD:'));
    });
    socket.on('end', () => finish(false));
  });
}

/** Starts an rsync daemon with the given modules and resolves once it accepts connections. */
export async function startRsyncDaemon(opts: RsyncDaemonOptions): Promise<RsyncDaemon> {
  if (opts.modules.length === 0) throw new Error('startRsyncDaemon: at least one module is needed');
  for (const name of opts.modules) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name))
      throw new Error(`startRsyncDaemon: module name ${JSON.stringify(name)} must match [A-Za-z0-9_.-]+`);
  }
  const auth = opts.user !== undefined || opts.password !== undefined;
  const user = auth ? (opts.user ?? 'rsync_backup') : undefined;
  let password = auth ? (opts.password ?? randomBytes(12).toString('hex')) : undefined;
  if (user !== undefined && !/^[A-Za-z0-9_.-]+$/.test(user))
    throw new Error(`startRsyncDaemon: user ${JSON.stringify(user)} must match [A-Za-z0-9_.-]+`);
  if (password?.includes('\n')) throw new Error('startRsyncDaemon: the password must not contain a newline');

  const configDir = await makeTempDir('rsyncd');
  const configFile = join(configDir, 'rsyncd.conf');
  const secretsFile = join(configDir, 'rsyncd.secrets');
  const logFile = join(configDir, 'rsyncd.log');
  const passwordFile = auth ? join(configDir, 'client.password') : undefined;

  const modules: Record<string, string> = {};
  for (const name of opts.modules) modules[name] = await makeTempDir(`rsyncd-${name}`);

  const moduleLines: Record<string, string[]> = {};
  async function writeConfig(): Promise<void> {
    const lines = [
      '# Written by test/helpers/rsync-daemon.ts',
      `log file = ${logFile}`,
      `lock file = ${join(configDir, 'rsyncd.lock')}`,
      // No DNS on a test machine: a reverse lookup of 127.0.0.1 can only add delay.
      'reverse lookup = no',
    ];
    for (const [name, dir] of Object.entries(modules)) {
      lines.push(
        '',
        `[${name}]`,
        `    path = ${dir}`,
        '    read only = no',
        `    use chroot = ${opts.useChroot === true ? 'yes' : 'no'}`,
        '    munge symlinks = no',
        '    uid = root',
        '    gid = root',
      );
      if (auth) lines.push(`    auth users = ${user}`, `    secrets file = ${secretsFile}`, '    strict modes = yes');
      for (const l of moduleLines[name] ?? []) lines.push(`    ${l}`);
    }
    await writeFile(configFile, `${lines.join('\n')}\n`, { mode: 0o644 });
  }
  await writeConfig();
  await writeSecrets();
  if (passwordFile !== undefined) await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });

  async function writeSecrets(): Promise<void> {
    // Written even without auth, so the file's absence never explains a failure; no module refers to it then.
    await writeFile(secretsFile, auth ? `${user}:${password}\n` : '', { mode: 0o600 });
  }

  let port = await freePort();
  let proc: BackgroundProcess | undefined;

  async function readLog(fromByte = 0): Promise<string> {
    const fileLog = await readFile(logFile).catch(() => Buffer.alloc(0));
    return `--- rsync --daemon output ---\n${proc?.output() ?? ''}\n--- ${logFile} ---\n${fileLog.subarray(fromByte).toString('utf8')}`;
  }

  /** Starts the daemon on `port`; returns false when the port could not be bound. */
  async function launch(): Promise<boolean> {
    // Only this launch's part of the log tells whether this launch failed to bind.
    const logStart = await stat(logFile).then(
      (st) => st.size,
      () => 0,
    );
    const p = spawnBackground('rsync', ['--daemon', '--no-detach', `--config=${configFile}`, `--port=${port}`, '--address=127.0.0.1']);
    proc = p;
    let outcome: 'ready' | 'exited' | 'timeout';
    try {
      // The probe returns 'exited' too, so a daemon that dies at once fails fast instead of after the timeout. The
      // second running() check keeps a greeting from some other daemon that won the port from counting as ours.
      outcome = await waitFor(async () => (!p.running() ? 'exited' : (await greets(port)) && p.running() && 'ready'), {
        timeoutMs: START_TIMEOUT_MS,
        intervalMs: 50,
        what: `rsync daemon on 127.0.0.1:${port}`,
      });
    } catch {
      outcome = 'timeout';
    }
    if (outcome === 'ready') return true;
    if (outcome === 'timeout') await p.stop();
    const status = await p.exited;
    const log = await readLog(logStart);
    if (outcome === 'exited' && /bind|in use/i.test(log)) return false;
    throw new Error(
      `rsync daemon did not start on 127.0.0.1:${port} (${outcome}; exit code ${status.code}, signal ${status.signal}` +
        `${status.error ? `, ${status.error.message}` : ''})\n${log}`,
    );
  }

  // The port from freePort can be taken before rsync binds it; retry with a fresh one a few times.
  for (let attempt = 1; ; attempt++) {
    if (await launch()) break;
    if (attempt >= 3) throw new Error(`rsync daemon could not bind a port after ${attempt} attempts\n${await readLog()}`);
    port = await freePort();
  }

  async function stop(): Promise<void> {
    await proc?.stop();
  }

  return {
    get port() {
      return port;
    },
    modules,
    user,
    get password() {
      return password;
    },
    passwordFile,
    configDir,
    moduleUrl(module: string) {
      if (!(module in modules)) throw new Error(`moduleUrl: no module ${JSON.stringify(module)}`);
      return `rsync://${user === undefined ? '' : `${user}@`}127.0.0.1:${port}/${module}/`;
    },
    log: readLog,
    stop,
    async restart() {
      await stop();
      // Same port on purpose (clients are configured with it); rsync binds with SO_REUSEADDR.
      for (let attempt = 1; ; attempt++) {
        if (await launch()) return;
        if (attempt >= 5) throw new Error(`rsync daemon could not rebind 127.0.0.1:${port}\n${await readLog()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async setPassword(newPassword: string) {
      if (!auth) throw new Error('setPassword: this daemon was started without a user or password');
      if (newPassword.includes('\n')) throw new Error('setPassword: the password must not contain a newline');
      password = newPassword;
      await writeSecrets();
    },
    async setModuleLines(module: string, lines: string[]) {
      if (!(module in modules)) throw new Error(`setModuleLines: no module ${JSON.stringify(module)}`);
      if (lines.some((l) => l.includes('\n'))) throw new Error('setModuleLines: one line each');
      moduleLines[module] = lines;
      await writeConfig();
    },
  };
}
