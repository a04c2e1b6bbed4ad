/**
 * Rename benchmark (issue 18): `mv` inside the watched tree, sersync-ts against a plain rsync of the renamed tree
 * measured in the same run, through two remotes: one authenticated rsync daemon on 127.0.0.1 whose transfer log gives
 * the bytes that really crossed the wire (`%b`) per module, and an sshd on 127.0.0.1 whose receiving rsync logs the
 * same `%b` to a file of its own (`--remote-option=--log-file`). Over ssh, lsyncd's `default.rsyncssh` (a move is
 * `ssh host mv`) runs too where lsyncd is installed.
 *
 *   ./node_modules/.bin/node bench/rename.ts [--rounds N] [--ssh-user NAME]
 *
 * Scenarios: `dir-3000` renames a directory of 3,000 files (32 MiB of incompressible data); `file-200m` renames one
 * 200 MiB file in its directory. Both trees are on the remote before the `mv`. Measured: seconds from the `mv` until
 * the remote tree is identical (sersync-ts: the end of its last rsync before the trees agree, seen to within 20 ms;
 * the trees are not walked while one runs, as in engine.ts; lsyncd: when the trees agree), or the wall time of the
 * reference rsync (`-artz --delete` of the whole renamed tree, which already sits on the remote under its old name);
 * the file data the receiver logged (`%b`) and everything it read (its closing `received N bytes`, file list
 * included). A calibration push first checks that the two logs count the same `%b` for the same transfer. Results
 * also go to bench/results/rename-<date>.json.
 *
 * Nothing fails on a slow figure; the exit code is 1 when a tree ends up different.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/ports.ts';
import { type BackgroundProcess, runProcess, spawnBackground } from '../test/helpers/processes.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../test/helpers/rsync-daemon.ts';
import { type Sshd, startSshd } from '../test/helpers/sshd.ts';
import { makeTempDir, removeTempDirs } from '../test/helpers/tmp.ts';
import { compareTrees, generateTree } from '../test/helpers/trees.ts';
import { waitFor } from '../test/helpers/wait.ts';
import { startSersync, writeConf } from '../test/integration/support/sersync.ts';
import { childrenNamed } from './lib/procfs.ts';
import { timedRun } from './lib/reference.ts';
import { startSersyncTs } from './lib/syncers.ts';
import { waitTreesAgree } from './lib/tree-probe.ts';

const SCENARIOS = {
  'dir-3000': {
    change: 'mv photos photos-2026 (3,000 files, 32 MiB)',
    seed: (src: string) => generateTree(join(src, 'photos'), { dirs: 29, filesPerDir: 100, size: 11_185 }),
    from: 'photos',
    to: 'photos-2026',
  },
  'file-200m': {
    change: 'mv video.mp4 video-final.mp4 (200 MiB)',
    seed: (src: string) => writeRandom(join(src, 'video.mp4'), 200 << 20),
    from: 'video.mp4',
    to: 'video-final.mp4',
  },
} as const;

interface Row {
  scenario: string;
  remote: 'rsync daemon' | 'ssh';
  who: 'sersync-ts' | 'plain rsync' | 'lsyncd rsyncssh';
  seconds: number | undefined;
  /** File data the receiver logged (the sum of `%b`). */
  bytes: number;
  /** Everything the receiving rsync read, file list and protocol included (its closing `received N bytes`). */
  wire: number;
  /** What the receiver sent back (its closing `sent N bytes`: block checksums of a delta basis, file-list replies). */
  back: number;
  identical: boolean;
}

async function writeRandom(file: string, bytes: number): Promise<void> {
  const fh = await open(file, 'w');
  try {
    for (let left = bytes; left > 0; left -= 1 << 20) await fh.write(randomBytes(Math.min(1 << 20, left)));
  } finally {
    await fh.close();
  }
}

/** Bytes the daemon received for `module` since log offset `from` (the sum of `%b`). */
async function received(rsyncd: RsyncDaemon, module: string, from: number): Promise<number> {
  const text = (await readFile(join(rsyncd.configDir, 'rsyncd.log'))).subarray(from).toString('latin1');
  let bytes = 0;
  for (const m of text.matchAll(/ XFER (\S+) .* (\d+) (\d+)$/gm)) if (m[1] === module) bytes += Number(m[3]);
  return bytes;
}

/** What the receiving rsyncs' closing lines (`[pid] sent N bytes  received M bytes ...`) say they read and sent. */
function wireBytes(text: string, pids?: Set<string>): { wire: number; back: number } {
  let wire = 0;
  let back = 0;
  for (const m of text.matchAll(/\[(\d+)\] sent (\d+) bytes\s+received (\d+) bytes/g)) {
    if (pids && !pids.has(m[1] as string)) continue;
    back += Number(m[2]);
    wire += Number(m[3]);
  }
  return { wire, back };
}

/** Bytes the daemon's connections to `module` read since log offset `from`, file list and protocol included. */
async function receivedOnWire(rsyncd: RsyncDaemon, module: string, from: number): Promise<{ wire: number; back: number }> {
  const text = (await readFile(join(rsyncd.configDir, 'rsyncd.log'))).subarray(from).toString('latin1');
  const pids = new Set<string>();
  for (const m of text.matchAll(/\[(\d+)\] rsync to ([^/\s]+)/g)) if (m[2] === module) pids.add(m[1] as string);
  return wireBytes(text, pids);
}

const logSize = async (rsyncd: RsyncDaemon) => (await stat(join(rsyncd.configDir, 'rsyncd.log'))).size;

async function pushAll(rsyncd: RsyncDaemon, src: string, module: string, extra: string[] = []) {
  return runProcess('rsync', [
    '-artz',
    '--delete',
    ...extra,
    `--password-file=${rsyncd.passwordFile}`,
    `${src}/`,
    rsyncd.moduleUrl(module),
  ]);
}

async function round(name: keyof typeof SCENARIOS, rsyncd: RsyncDaemon, n: number): Promise<Row[]> {
  const s = SCENARIOS[name];
  const rows: Row[] = [];
  for (const who of ['sersync-ts', 'plain rsync'] as const) {
    const module = `${who === 'sersync-ts' ? 'ours' : 'ref'}${n}${name.replace(/\W/g, '')}`;
    const dir = await makeTempDir(`bench-rename-${module}-`);
    const src = join(dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'bench-root-marker.txt'), 'stays\n');
    await s.seed(src);
    const seed = await pushAll(rsyncd, src, module);
    if (seed.code !== 0) throw new Error(`seeding ${module} failed: ${seed.stderr}`);
    await runProcess('sync', []);
    const dest = rsyncd.modules[module] as string;
    const from = await logSize(rsyncd);
    let seconds: number | undefined;
    if (who === 'sersync-ts') {
      const daemon = await startSersyncTs({
        dir,
        src,
        rsyncd,
        module,
        tuning: { watcher: 'dirs' },
        host: { ip: '127.0.0.1', port: await freePort() },
      });
      try {
        const t0 = performance.now();
        await rename(join(src, s.from), join(src, s.to));
        const wait = await waitTreesAgree(src, dest, {
          intervalMs: 50,
          timeoutMs: 300_000,
          busy: () => childrenNamed(daemon.pid, 'rsync').length > 0,
        });
        seconds = wait.at === undefined ? undefined : (wait.at - t0) / 1000;
      } finally {
        await daemon.stop();
      }
    } else {
      await rename(join(src, s.from), join(src, s.to));
      const run = await timedRun('rsync', [
        '-artz',
        '--delete',
        `--password-file=${rsyncd.passwordFile}`,
        `${src}/`,
        rsyncd.moduleUrl(module),
      ]);
      seconds = run.code === 0 ? run.wall : undefined;
    }
    const identical = (await compareTrees(src, dest, { ignoreRootAttrs: true })).length === 0;
    const bytes = await received(rsyncd, module, from);
    rows.push({ scenario: name, remote: 'rsync daemon', who, seconds, bytes, ...(await receivedOnWire(rsyncd, module, from)), identical });
    process.stderr.write(
      `${name} ${who}: ${seconds?.toFixed(2) ?? 'timeout'} s, ${rows.at(-1)?.bytes} bytes received (${rows.at(-1)?.wire} on the wire)\n`,
    );
  }
  return rows;
}

/**
 * The receiving rsync of an ssh push writes one `XFER:%b` line per file it received to `logFile` (its `%b` is the
 * same figure as the daemon's transfer log). `--remote-option` passes them to the rsync at the other end quoted by
 * rsync itself, where words added to `--rsync-path` would go through the remote shell's word splitting.
 */
const receiverLog = (logFile: string) => [`--remote-option=--log-file=${logFile}`, '--remote-option=--log-file-format=XFER:%b'];

/** Bytes the ssh receiver logged in `logFile` since byte `from` (the sum of its `XFER:%b` lines). */
async function receivedOverSsh(logFile: string, from: number): Promise<{ bytes: number; wire: number; back: number }> {
  const text = await readFile(logFile).then(
    (b) => b.subarray(from).toString('latin1'),
    () => '',
  );
  let bytes = 0;
  for (const m of text.matchAll(/ XFER:(\d+)$/gm)) bytes += Number(m[1]);
  return { bytes, ...wireBytes(text) };
}

const sizeOrZero = (file: string) =>
  stat(file).then(
    (s) => s.size,
    () => 0,
  );

const pushOverSsh = (sshd: Sshd, src: string, dest: string, extra: string[] = []) =>
  ['-artz', '--delete', '-e', sshd.sshCommand, ...extra, `${src}/`, `${sshTarget(sshd)}:${dest}/`] as const;

const lua = (s: string) => JSON.stringify(s);

/**
 * lsyncd 2.2 `default.rsyncssh` (a move is `ssh host mv old new`), delay 1 s and archive + update + compress as in
 * bench/lib/syncers.ts startLsyncd; resolves once its startup rsync finished.
 */
async function startLsyncdRsyncssh(dir: string, src: string, dest: string, sshd: Sshd, logFile: string): Promise<BackgroundProcess> {
  const conf = join(dir, 'lsyncd.conf.lua');
  const extra = receiverLog(logFile).map(lua).join(', ');
  await writeFile(
    conf,
    `settings { nodaemon = true, insist = false }
sync {
  default.rsyncssh,
  source = ${lua(src)},
  host = ${lua(sshTarget(sshd))},
  targetdir = ${lua(dest)},
  delay = 1,
  rsync = { archive = true, update = true, compress = true, _extra = { ${extra} } },
  ssh = {
    port = ${sshd.port},
    identityFile = ${lua(sshd.keyFile)},
    options = { StrictHostKeyChecking = "no", UserKnownHostsFile = "/dev/null", IdentitiesOnly = "yes", BatchMode = "yes", LogLevel = "ERROR" },
  },
}
`,
  );
  const proc = spawnBackground('lsyncd', ['-log', 'Exec', conf]);
  await waitFor(
    async () => {
      if (/Normal: Startup of .* finished/.test(proc.output())) return true;
      if (!proc.running()) throw new Error(`lsyncd exited:\n${proc.output()}`);
      return false;
    },
    { timeoutMs: 120_000, intervalMs: 50, what: 'lsyncd rsyncssh to finish its startup sync' },
  );
  return proc;
}

/**
 * What every rsync run over ssh pays however fast the connection: the remote account's shell starts (`sh -c` of
 * `rsync --server`), its rc files included. Three `ssh host true` through one open connection.
 */
async function remoteCommandSeconds(sshd: Sshd): Promise<number[]> {
  const socket = join(await makeTempDir('st-'), 'm');
  const mux = ['-o', 'ControlMaster=auto', '-o', 'ControlPersist=10', '-o', `ControlPath=${socket}`];
  await runProcess('ssh', [...sshd.sshArgs, ...mux, sshTarget(sshd), 'true']);
  const times: number[] = [];
  for (let i = 0; i < 3; i++) times.push((await timedRun('ssh', [...sshd.sshArgs, ...mux, sshTarget(sshd), 'true'])).wall);
  await runProcess('ssh', [...sshd.sshArgs, ...mux, '-O', 'exit', sshTarget(sshd)]);
  return times;
}

/** Resolves once the daemon's shared ssh connection (its socket in `stateDir`) answers. */
async function sharedConnectionOpen(sshd: Sshd, stateDir: string): Promise<void> {
  await waitFor(
    async () => {
      for (const name of (await readdir(stateDir)).filter((n) => n.startsWith('ssh-'))) {
        const check = ['-o', 'ControlMaster=no', '-o', `ControlPath=${join(stateDir, name)}`, '-O', 'check', sshd.host];
        if ((await runProcess('ssh', [...sshd.sshArgs, ...check])).code === 0) return true;
      }
      return false;
    },
    { timeoutMs: 30_000, intervalMs: 50, what: 'the shared ssh connection to open' },
  );
}

/**
 * The account the ssh rows log in as (`--ssh-user`, default root). Each rsync run over ssh starts that account's
 * shell, rc files included: an account made for the bench shows what a receiving account with a plain shell costs,
 * e.g. `useradd -M -d /nonexistent -s /bin/sh sersync-bench && usermod -p '*' sersync-bench`.
 */
let sshUser = 'root';
const sshTarget = (sshd: Sshd) => `${sshUser}@${sshd.host}`;

/** Lets the receiving account reach `dir`, write `dest` and its log (a root-owned 0700 temp directory otherwise). */
async function receiverOwns(dir: string, dest: string, logFile: string): Promise<void> {
  await writeFile(logFile, '');
  for (const [cmd, args] of [
    ['chmod', ['755', dir]],
    ['chown', ['-R', sshUser, dest, logFile]],
  ] as const) {
    const r = await runProcess(cmd, [...args]);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  }
}

/** The same scenario through an ssh remote (a directory on this machine reached through the bench's sshd). */
async function sshRound(name: keyof typeof SCENARIOS, sshd: Sshd, withLsyncd: boolean): Promise<Row[]> {
  const s = SCENARIOS[name];
  const rows: Row[] = [];
  const whos = withLsyncd ? (['sersync-ts', 'plain rsync', 'lsyncd rsyncssh'] as const) : (['sersync-ts', 'plain rsync'] as const);
  for (const who of whos) {
    const dir = await makeTempDir(`bench-rename-ssh-${name}-`);
    const src = join(dir, 'src');
    const dest = join(dir, 'dest');
    const logFile = join(dir, 'receiver.log');
    await mkdir(src);
    await mkdir(dest);
    if (sshUser !== 'root') await receiverOwns(dir, dest, logFile);
    await writeFile(join(src, 'bench-root-marker.txt'), 'stays\n');
    await s.seed(src);
    const seed = await runProcess('rsync', [...pushOverSsh(sshd, src, dest)]);
    if (seed.code !== 0) throw new Error(`seeding ${dest} over ssh failed: ${seed.stderr}`);
    await runProcess('sync', []);
    let seconds: number | undefined;
    let from = 0;
    const stateDir = await makeTempDir('st-');
    if (who === 'plain rsync') {
      await rename(join(src, s.from), join(src, s.to));
      const run = await timedRun('rsync', [...pushOverSsh(sshd, src, dest, receiverLog(logFile))]);
      seconds = run.code === 0 ? run.wall : undefined;
    } else {
      const daemon =
        who === 'sersync-ts'
          ? await startSersync([
              '-o',
              await writeConf(dir, {
                host: { ip: '127.0.0.1', port: await freePort() },
                watch: src,
                remotes: [{ ip: sshTarget(sshd), name: dest }],
                ssh: { options: sshd.sshArgs.join(' ') },
                commonParams: ['-artuz', ...receiverLog(logFile)].join(' '),
                failLog: join(dir, 'state', 'rsync_fail_log.sh'),
                // A short state directory: the shared ssh connection's socket lives there (sshControlPathIn).
                tuning: { watcher: 'dirs', stateDir },
              }),
            ])
          : await startLsyncdRsyncssh(dir, src, dest, sshd, logFile);
      // A daemon that has been running has its ssh connection open (lsyncd has finished its startup sync).
      if (who === 'sersync-ts') await sharedConnectionOpen(sshd, stateDir);
      try {
        from = await sizeOrZero(logFile);
        const t0 = performance.now();
        await rename(join(src, s.from), join(src, s.to));
        // sersync-ts as over the daemon remote: the end of its last rsync; lsyncd's `mv` is no rsync to wait for.
        const pid = 'proc' in daemon ? (daemon.proc.child.pid as number) : null;
        const busy = pid === null ? undefined : () => childrenNamed(pid, 'rsync').length > 0;
        const wait = await waitTreesAgree(src, dest, { intervalMs: 50, timeoutMs: 300_000, ...(busy ? { busy } : {}) });
        seconds = wait.at === undefined ? undefined : (wait.at - t0) / 1000;
      } finally {
        await daemon.stop();
      }
    }
    const identical = (await compareTrees(src, dest, { ignoreRootAttrs: true })).length === 0;
    rows.push({ scenario: name, remote: 'ssh', who, seconds, ...(await receivedOverSsh(logFile, from)), identical });
    process.stderr.write(
      `${name} ssh ${who}: ${seconds?.toFixed(2) ?? 'timeout'} s, ${rows.at(-1)?.bytes} bytes received (${rows.at(-1)?.wire} on the wire)\n`,
    );
  }
  return rows;
}

/**
 * The ssh receiver's own log must count what the daemon's transfer log counts: one small tree, and then a change
 * to part of it, pushed both ways; the sums must agree or the ssh rows would not be comparable.
 */
async function calibrate(rsyncd: RsyncDaemon, sshd: Sshd): Promise<string> {
  const dir = await makeTempDir('bench-rename-calibrate-');
  const src = join(dir, 'src');
  const dest = join(dir, 'dest');
  const logFile = join(dir, 'receiver.log');
  await mkdir(dest, { recursive: true });
  if (sshUser !== 'root') await receiverOwns(dir, dest, logFile);
  await generateTree(src, { dirs: 3, filesPerDir: 20, size: 9_000 });
  await writeRandom(join(src, 'big.bin'), 3 << 20);
  const steps: string[] = [];
  for (const step of ['new tree', 'changed file']) {
    if (step === 'changed file') {
      const fh = await open(join(src, 'big.bin'), 'r+');
      await fh.write(randomBytes(4096), 0, 4096, 1 << 20);
      await fh.close();
    }
    const [fromDaemon, fromSsh] = [await logSize(rsyncd), await sizeOrZero(logFile)];
    const d = await pushAll(rsyncd, src, 'calibrate');
    const r = await runProcess('rsync', [...pushOverSsh(sshd, src, dest, receiverLog(logFile))]);
    if (d.code !== 0 || r.code !== 0) throw new Error(`calibration push failed: ${d.stderr}${r.stderr}`);
    const viaDaemon = await received(rsyncd, 'calibrate', fromDaemon);
    const viaSsh = await receivedOverSsh(logFile, fromSsh);
    if (viaDaemon !== viaSsh.bytes) throw new Error(`${step}: the daemon logged ${viaDaemon} bytes, the ssh receiver ${viaSsh.bytes}`);
    const { wire } = await receivedOnWire(rsyncd, 'calibrate', fromDaemon);
    steps.push(
      `${step}: %b ${viaDaemon.toLocaleString('en')} both ways, on the wire ${wire.toLocaleString('en')} / ${viaSsh.wire.toLocaleString('en')}`,
    );
  }
  return steps.join(', ');
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '1' }, 'ssh-user': { type: 'string', default: 'root' } } });
  sshUser = values['ssh-user'];
  const rounds = Math.max(1, Number(values.rounds));
  const modules = ['calibrate'];
  for (let n = 0; n < rounds; n++)
    for (const name of Object.keys(SCENARIOS)) for (const w of ['ours', 'ref']) modules.push(`${w}${n}${name.replace(/\W/g, '')}`);
  const withLsyncd = (await runProcess('lsyncd', ['-version'])).code === 0;
  const [rsyncd, sshd] = await Promise.all([startRsyncDaemon({ modules, user: 'rsync_backup', password: 'bench' }), startSshd()]);
  const rows: Row[] = [];
  let calibration = '';
  let remoteCommand: number[] = [];
  try {
    for (const m of modules) await rsyncd.setModuleLines(m, ['transfer logging = yes', 'log format = XFER %m %f %l %b']);
    // sshd reads authorized_keys as the account logging in: another account must be able to read the bench's.
    if (sshUser !== 'root')
      for (const [mode, path] of [
        ['755', join(sshd.keyFile, '..')],
        ['644', join(sshd.keyFile, '..', 'authorized_keys')],
      ])
        await runProcess('chmod', [mode as string, path as string]);
    calibration = await calibrate(rsyncd, sshd);
    process.stderr.write(`calibration (daemon %b = ssh receiver's log): ${calibration}\n`);
    remoteCommand = await remoteCommandSeconds(sshd);
    process.stderr.write(
      `ssh remote: one command through an open connection (\`ssh host true\`, mostly the account's shell starting) ${remoteCommand.map((t) => t.toFixed(3)).join(', ')} s\n`,
    );
    for (let n = 0; n < rounds; n++)
      for (const name of Object.keys(SCENARIOS) as (keyof typeof SCENARIOS)[]) {
        rows.push(...(await round(name, rsyncd, n)));
        rows.push(...(await sshRound(name, sshd, withLsyncd)));
      }
  } finally {
    await Promise.all([rsyncd.stop(), sshd.stop()]);
    if (process.env.SERSYNC_TEST_KEEP_TMP !== '1') await removeTempDirs();
  }
  const file = join(import.meta.dirname, 'results', `rename-${new Date().toISOString().slice(0, 16).replace(':', '-')}.json`);
  await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
  await writeFile(file, `${JSON.stringify({ rounds, lsyncd: withLsyncd, sshUser, calibration, remoteCommand, rows }, null, 2)}\n`);
  process.stderr.write(`results in ${file}\n`);
  console.log(
    '| change | remote | who | seconds until identical (plain rsync: its wall time) | file data received (`%b`) | received on the wire | sent back by the receiver |',
  );
  console.log('| --- | --- | --- | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const change = SCENARIOS[r.scenario as keyof typeof SCENARIOS].change;
    console.log(
      `| ${change} | ${r.remote} | ${r.who} | ${r.seconds?.toFixed(2) ?? 'timeout'} | ${r.bytes.toLocaleString('en')} | ${r.wire.toLocaleString('en')} | ${r.back.toLocaleString('en')}${r.identical ? '' : ' (DIFFERENT)'} |`,
    );
  }
  return rows.every((r) => r.identical) ? 0 : 1;
}

process.exitCode = await main();
