import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { closeSync, cpSync, openSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { runProcess, spawnBackground } from '../helpers/processes.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { BIN, runSersync, startSersync, writeConf } from './support/sersync.ts';

/** The command line as an operator meets it: real binary, real files; never a stack trace. */

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'config');
let tmp: string;
let watch: string;

before(async () => {
  tmp = await makeTempDir('cli-');
  watch = await makeTempDir('cli-watch-');
});
after(removeTempDirs);

function place(fixture: string): string {
  const file = join(tmp, fixture.replaceAll('/', '-'));
  writeFileSync(file, readFileSync(join(FIXTURES, fixture), 'utf8').replaceAll('@WATCH@', watch).replaceAll('/opt/tongbu', watch));
  return file;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function assertNoStackTrace(out: string): void {
  assert.doesNotMatch(out, /^\s+at .+[(:]\d+/m, `a stack trace was printed:\n${out}`);
}

describe('command line', () => {
  test('--help and -h print the flags and exit 0; --version prints the version and the reader', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await runSersync([flag]);
      assert.equal(r.code, 0);
      for (const f of ['-o, --config', '-r, --initial-sync', '-d, --daemon', '-n, --threads', '-m, --module', '--check', '--log-level']) {
        assert.ok(r.stdout.includes(f), `${flag} lists ${f}`);
      }
    }
    const v = await runSersync(['--version']);
    assert.equal(v.code, 0);
    const version = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')).version;
    // npm test builds the reader, so this build has it (unless the machine cannot build it and says so, as the unit
    // test of the reader allows); --version says which one it watches with.
    const optional = process.env.SERSYNC_NATIVE_INOTIFY_OPTIONAL === '1' && !/\(native inotify reader\)$/.test(v.stdout.trim());
    assert.equal(v.stdout.trim(), `sersync-ts ${version} (${optional ? 'fs.watch fallback' : 'native inotify reader'})`);
  });

  test('without the native reader, --version and the start say so and what fs.watch costs', async () => {
    // What an npm install that could not compile the reader leaves: the package without native/build/.
    const repo = join(import.meta.dirname, '..', '..');
    const pkg = await makeTempDir('cli-no-reader-');
    for (const part of ['bin', 'dist', 'package.json']) cpSync(join(repo, part), join(pkg, part), { recursive: true });
    symlinkSync(join(repo, 'node_modules'), join(pkg, 'node_modules'));
    const bin = join(pkg, 'bin', 'sersync-ts.cjs');
    const cost =
      /native inotify reader is not available: .*inotify\.node was not built.*\n.*fs\.watch instead: about 2 KB more memory per directory/;
    const v = await runProcess(process.execPath, [bin, '--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, / \(fs\.watch fallback\)\n$/);
    assert.match(v.stderr, cost);

    const mirror = await makeTempDir('cli-no-reader-mirror-');
    const conf = await writeConf(pkg, {
      watch,
      remotes: [{ name: mirror }],
      host: { ip: '127.0.0.1', port: await freePort() },
      failLog: join(pkg, 'fail.sh'),
    });
    const daemon = spawnBackground(process.execPath, [bin, '-o', conf]);
    try {
      await waitFor(async () => daemon.output().includes('"msg":"watching ') || !daemon.running(), {
        what: 'the "watching" line',
        timeoutMs: 20_000,
      });
      assert.match(daemon.output(), /"backend":"fs\.watch"/);
      assert.match(daemon.output(), cost);
    } finally {
      await daemon.stop();
    }
  });

  test('an unknown option or a bad value is a usage error: exit 64, one line naming it', async () => {
    for (const [args, needle] of [
      [['-x'], '-x'],
      [['--frobnicate'], '--frobnicate'],
      [['-n', 'abc'], 'abc'],
      [['-n', '0'], '-n'],
      [['-m', 'ftp'], 'ftp'],
      [['-o'], '-o'],
      [['--log-level', 'loud'], 'loud'],
      [['stray-argument'], 'stray-argument'],
    ] as const) {
      const r = await runSersync([...args]);
      assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
      assert.ok(lines[0]?.includes(needle), `${lines[0]} names ${needle}`);
    }
  });

  test("--check accepts sersync2's shipped confxml.xml, clustered flags included, and prints each remote's rsync argv", async () => {
    const conf = place('shipped-confxml.xml');
    const r = await runSersync(['-dro', conf, '--check']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /remote 127\.0\.0\.1::tongbu1 \(daemon\):/);
    assert.match(r.stdout, /full sync.*\n\s+rsync -artz .*--delete .*127\.0\.0\.1::tongbu1/);
    assert.match(r.stdout, /update run:\n\s+rsync .*--files-from=- /);
    assert.match(r.stdout, /stdin \(NUL-separated\): "\/index\.html" "\/img\/logo\.png"/);
    assert.match(
      r.stdout,
      /--include-from=- '--exclude=\*' \S+ 127\.0\.0\.1::tongbu1\n +stdin \(NUL-separated\): "\/index\.html" "\/img\/" "\/img\/new-dir" "\/img\/new-dir\/\*\*\*"/,
    );
    assert.match(r.stdout, /delete run:\n\s+rsync .*--delete --force --existing --ignore-existing/);
    assert.match(r.stdout, /-u \(--update\)/, 'says that -u is dropped');
  });

  test('--check accepts the annotated tutorial copies (Chinese comments, # free text, mixed case)', async () => {
    for (const f of ['tutorial-rsyncd.xml', 'tutorial-ssh.xml']) {
      const text = readFileSync(join(FIXTURES, f), 'utf8');
      const dirs = [...text.matchAll(/watch="([^"]+)"/gi)].map((m) => m[1] as string);
      let patched = text;
      for (const d of dirs) patched = patched.replaceAll(`"${d}"`, `"${watch}"`);
      // The tutorials' password files exist on their servers; give ours one (rsync wants it private).
      const secret = join(tmp, 'rsync.password');
      writeFileSync(secret, 'secret\n', { mode: 0o600 });
      patched = patched.replace(/passwordfile="[^"]*"/gi, `passwordfile="${secret}"`);
      const file = join(tmp, f);
      writeFileSync(file, patched);
      const r = await runSersync(['--check', '-o', file]);
      assert.equal(r.code, 0, `${f}: ${r.stderr}`);
      assert.match(r.stdout, /remote .+:/);
    }
  });

  test('broken configs: documented exit code, file:line in the message, no stack trace, no hang', async () => {
    const cases: [string, number, RegExp][] = [];
    for (const f of readdirSync(join(FIXTURES, 'broken'))) cases.push([place(`broken/${f}`), 78, /:\d+: /]);
    cases.push([join(tmp, 'does-not-exist.xml'), 66, /does-not-exist\.xml/]);
    cases.push([tmp, 66, /cli-/]);
    const garbage = join(tmp, 'garbage.xml');
    writeFileSync(garbage, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
    cases.push([garbage, 78, /garbage\.xml/]);
    const big = join(tmp, 'big.xml');
    writeFileSync(big, Buffer.alloc(50 * 1024 * 1024, 0x20));
    cases.push([big, 78, /big\.xml/]);
    for (const [file, code, message] of cases) {
      const r = await runSersync(['-o', file], { timeoutMs: 15_000 });
      assert.equal(r.timedOut, false, `${file} hung`);
      assert.equal(r.code, code, `${file}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, message);
      assertNoStackTrace(r.stderr + r.stdout);
    }
  });

  test('-d: the parent exits 0 once the background daemon watches, and syncs; non-zero with the error otherwise', async () => {
    const mirror = await makeTempDir('cli-mirror-');
    const conf = join(tmp, 'detach.xml');
    const logFile = join(tmp, 'detach.log');
    writeFileSync(
      conf,
      `<head><sersync><localpath watch="${watch}"><remote name="${mirror}"/></localpath><failLog path="${tmp}/state/f.sh"/></sersync></head>`,
    );
    const pidFile = join(tmp, 'sersync-ts.pid');
    const r = await runSersync(['-d', '-o', conf, '--log-file', logFile, '--pid-file', pidFile], { env: { INVOCATION_ID: '' } });
    assert.equal(r.code, 0, r.stderr);
    const pid = Number(/pid (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(pid > 0, r.stdout);
    assert.equal(readFileSync(pidFile, 'utf8').trim(), String(pid));
    try {
      const second = await runSersync(['-o', conf]);
      assert.equal(second.code, 75, `a second instance on the same config is refused: ${second.stderr}`);
      assert.match(second.stderr, new RegExp(`another sersync-ts \\(pid ${pid}\\) holds the lock of this instance`));
      writeFileSync(join(watch, 'detached.txt'), 'hello');
      await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
      assert.match(readFileSync(logFile, 'utf8'), /"msg":"watching /);
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    const bad = await runSersync(['-d', '-o', conf], { env: { INVOCATION_ID: '', PATH: '/nonexistent' } });
    assert.equal(bad.code, 69, "the child's error and exit code reach the caller");
    assert.match(bad.stderr, /install rsync/);
  });

  test('-d without --log-file: the logs go on to the file that stdout and stderr were redirected to, as with sersync2', async () => {
    const watch = await makeTempDir('cli-redirect-watch-');
    const mirror = await makeTempDir('cli-redirect-mirror-');
    const conf = join(tmp, 'redirect.xml');
    writeFileSync(
      conf,
      `<head><sersync><localpath watch="${watch}"><remote name="${mirror}"/></localpath><failLog path="${tmp}/redirect-state/f.sh"/></sersync></head>`,
    );
    // `sersync-ts -r -d -o conf.xml >> sersync.log 2>&1` in rc.local
    const logFile = join(tmp, 'redirected.log');
    const fd = openSync(logFile, 'a');
    const pidFile = join(tmp, 'redirect.pid');
    const r = spawnSync(process.execPath, [BIN, '-d', '-r', '-o', conf, '--pid-file', pidFile], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, INVOCATION_ID: '', STATE_DIRECTORY: join(tmp, 'redirect-state') },
      timeout: 30_000,
    });
    closeSync(fd);
    assert.equal(r.status, 0, readFileSync(logFile, 'utf8'));
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    try {
      writeFileSync(join(watch, 'after-detach.txt'), 'logged');
      await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
      await waitFor(async () => /"msg":"synced [^"]*after-detach|after-detach\.txt/.test(readFileSync(logFile, 'utf8')) || undefined, {
        what: 'the background daemon to log its batch into the redirected file',
      });
      assert.match(readFileSync(logFile, 'utf8'), /"msg":"watching /);
    } finally {
      process.kill(pid, 'SIGTERM');
    }
  });

  test('SIGHUP applies a changed <debug start> (unless --log-level chose the level)', async () => {
    const dir = await makeTempDir('cli-debug-');
    const watch = join(dir, 'src');
    const mirror = join(dir, 'mirror');
    for (const d of [watch, mirror]) await mkdir(d);
    const conf = await writeConf(dir, { watch, remotes: [{ name: mirror }], failLog: join(dir, 'state', 'f.sh') });
    const proc = await startSersync(['-o', conf]);
    try {
      writeFileSync(conf, readFileSync(conf, 'utf8').replace('<debug start="false"/>', '<debug start="true"/>'));
      proc.proc.child.kill('SIGHUP');
      await proc.waitForLog((r) => r.msg === 'config reloaded', 'the reload');
      writeFileSync(join(watch, 'seen.txt'), 'x');
      await proc.waitForLog((r) => r.msg === 'watch event' && r.path === 'seen.txt', 'a debug line after the reload');
    } finally {
      await proc.stop();
    }
  });

  test('-d from /etc/rc.local or a Type=forking unit (INVOCATION_ID set): the parent exits 0 once the child watches, the child syncs', async () => {
    // rc-local.service and a hand-written Type=forking unit both set INVOCATION_ID and wait for this process to exit.
    const watch = await makeTempDir('cli-rclocal-watch-');
    const mirror = await makeTempDir('cli-rclocal-mirror-');
    const conf = join(tmp, 'rclocal.xml');
    writeFileSync(
      conf,
      `<head><sersync><localpath watch="${watch}"><remote name="${mirror}"/></localpath><failLog path="${tmp}/rclocal-state/f.sh"/></sersync></head>`,
    );
    const pidFile = join(tmp, 'rclocal.pid');
    const r = await runSersync(['-d', '-r', '-o', conf, '--pid-file', pidFile], {
      env: { INVOCATION_ID: '0123456789abcdef0123456789abcdef', SERSYNC_TS_FOREGROUND: '' },
      timeoutMs: 20_000,
    });
    assert.equal(r.timedOut, false, `-d stayed in the foreground under INVOCATION_ID: rc.local would never finish\n${r.stdout}${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    assert.match(r.stdout, new RegExp(`running in the background, pid ${pid}\\b`));
    try {
      writeFileSync(join(watch, 'after-rc-local.txt'), 'still syncing');
      await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    await waitFor(async () => !processExists(pid), { what: `the background daemon (pid ${pid}) to stop on SIGTERM` });
  });

  test('-d with SERSYNC_TS_FOREGROUND=1, as the shipped Type=exec unit sets it, stays in the foreground', async () => {
    const unit = readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'systemd', 'sersync-ts.service'), 'utf8');
    assert.match(unit, /^Type=exec$/m, 'the shipped unit supervises the foreground process');
    assert.match(unit, /^ExecStart=\S+ .*-d\b/m);
    const unitEnv = Object.fromEntries([...unit.matchAll(/^Environment=(\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
    assert.equal(unitEnv.SERSYNC_TS_FOREGROUND, '1', 'the shipped unit sets SERSYNC_TS_FOREGROUND=1');
    const watch = await makeTempDir('cli-fg-watch-');
    const mirror = await makeTempDir('cli-fg-mirror-');
    const conf = join(tmp, 'foreground.xml');
    writeFileSync(
      conf,
      `<head><sersync><localpath watch="${watch}"><remote name="${mirror}"/></localpath><failLog path="${tmp}/fg-state/f.sh"/></sersync></head>`,
    );
    const pidFile = join(tmp, 'foreground.pid');
    // With and without INVOCATION_ID: the variable alone decides.
    for (const invocation of ['', '0123456789abcdef0123456789abcdef']) {
      const d = await startSersync(['-d', '-o', conf, '--pid-file', pidFile], { env: { ...unitEnv, INVOCATION_ID: invocation } });
      try {
        assert.equal(readFileSync(pidFile, 'utf8').trim(), String(d.proc.child.pid), 'the process systemd started is the daemon');
        assert.doesNotMatch(d.proc.output(), /running in the background/);
        writeFileSync(join(watch, `foreground${invocation.length}.txt`), 'x');
        await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
      } finally {
        assert.equal(await d.stop(), 0);
      }
    }
  });

  test('rsync missing from PATH: exit 69 and what to do', async () => {
    const conf = join(tmp, 'ok.xml');
    writeFileSync(conf, `<head><sersync><localpath watch="${watch}"><remote name="${tmp}"/></localpath></sersync></head>`);
    const r = await runSersync(['-o', conf], { env: { PATH: '/nonexistent' } });
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /install rsync/);
    assertNoStackTrace(r.stderr);
    // --check too (a unit's ExecStartPre), after its report; -m runs no rsync, so its --check passes.
    const check = await runSersync(['--check', '-o', conf], { env: { PATH: '/nonexistent' } });
    assert.equal(check.code, 69, check.stderr);
    assert.match(check.stdout, /^config .*: valid$/m);
    assert.match(check.stderr, /cannot run 'rsync --version' .*install rsync \(apt-get install rsync\)/);
    assertNoStackTrace(check.stderr);
    assert.equal((await runSersync(['--check', '-o', conf])).code, 0);
    const plugin = join(tmp, 'plugin-only.xml');
    writeFileSync(
      plugin,
      `<head><plugin name="socket"><localpath watch="${watch}"><deshost ip="127.0.0.1" port="9"/></localpath></plugin></head>`,
    );
    const alone = await runSersync(['--check', '-m', 'socket', '-o', plugin], { env: { PATH: '/nonexistent' } });
    assert.equal(alone.code, 0, alone.stderr);
  });

  test('an older Node fails with one line naming the version it needs', async (t) => {
    const old = '/usr/bin/node';
    const version = await runProcess(old, ['--version']).catch(() => null);
    const [major = 99, minor = 0] = (version?.stdout.trim().slice(1) ?? '99').split('.').map(Number);
    if (version?.code !== 0 || major > 22 || (major === 22 && minor >= 22)) {
      t.skip(`no Node older than 22.22 at ${old} on this machine`);
      return;
    }
    const r = await runProcess(old, [BIN, '--help']);
    assert.equal(r.code, 69);
    assert.deepEqual(r.stderr.trim().split('\n'), [`sersync-ts: needs Node.js >= 22.22, this is ${version.stdout.trim()}`]);
  });
});
