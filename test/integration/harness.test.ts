/**
 * Proves the integration-test harness with real parts: a real rsync daemon and sshd receive a real rsync push of a
 * generated tree plus hostile names, and the tree comparator both passes identical trees and catches every kind of
 * difference it claims to check, so tests built on it cannot pass by accident.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, lstat, lutimes, mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { runProcess, spawnBackground } from '../helpers/processes.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { compareTrees, generateTree, oddNames, writeOddFiles } from '../helpers/trees.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';

const INVALID_UTF8 = Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x74]);

let src: string;
/** Working directory of every rsync run here, to show that no odd name ever reached a shell. */
let cwd: string;

/** Environment without any inherited RSYNC_PASSWORD, plus `extra`. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { RSYNC_PASSWORD: _ignored, ...rest } = process.env;
  return { ...rest, ...extra };
}

function rsync(args: string[], extraEnv: Record<string, string> = {}) {
  return runProcess('rsync', args, { env: env(extraEnv), cwd, timeoutMs: 20_000 });
}

before(async () => {
  src = await makeTempDir('harness-src');
  cwd = await makeTempDir('harness-cwd');
  await generateTree(src, { dirs: 5, filesPerDir: 4, depth: 3, size: 3000 });
  await writeOddFiles(src);
  await mkdir(join(src, 'odd'));
  await writeOddFiles(join(src, 'odd'));
  await mkdir(join(src, 'empty-dir'));
  await symlink('/etc/hostname', join(src, 'abs-link'));
  await symlink('d0/f0.dat', join(src, 'rel-link'));
  await chmod(join(src, 'd0', 'f1.dat'), 0o600);
  await chmod(join(src, 'd0', 'f2.dat'), 0o755);
  await utimes(join(src, 'f0.dat'), new Date('2001-02-03T04:05:06Z'), new Date('2001-02-03T04:05:06Z'));
});

after(async () => {
  // Nothing run here may have interpreted a file name as a command.
  assert.deepEqual(await readdir(cwd), []);
  await removeTempDirs();
});

describe('rsync daemon', () => {
  const password = 'first-secret';
  let daemon: RsyncDaemon;

  function moduleDir(name: string): string {
    const dir = daemon.modules[name];
    assert.ok(dir, `no module ${name}`);
    return dir;
  }
  function passwordFile(): string {
    assert.ok(daemon.passwordFile, 'an authenticated daemon has a client password file');
    return daemon.passwordFile;
  }

  before(async () => {
    daemon = await startRsyncDaemon({ modules: ['data', 'spare'], user: 'sersync', password });
  });
  after(async () => {
    await daemon.stop();
  });

  test('a push with RSYNC_PASSWORD makes an identical tree, absolute symlink targets stripped', async () => {
    const r = await rsync(['-artuz', `${src}/`, daemon.moduleUrl('data')], { RSYNC_PASSWORD: password });
    assert.equal(r.code, 0, r.stderr);
    const dest = moduleDir('data');
    assert.deepEqual(await compareTrees(src, dest, { absSymlinksStripped: true }), []);
    assert.ok(existsSync(Buffer.concat([Buffer.from(`${dest}/odd/`), INVALID_UTF8])));
    // Without the option the comparator sees what the daemon did to the absolute link, and nothing else.
    assert.deepEqual(await compareTrees(src, dest), ['"abs-link": symlink target "/etc/hostname" != "etc/hostname"']);
  });

  test('a push with --password-file makes an identical tree', async () => {
    assert.equal((await stat(passwordFile())).mode & 0o777, 0o600);
    const r = await rsync(['-artuz', `--password-file=${daemon.passwordFile}`, `${src}/`, daemon.moduleUrl('spare')]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await compareTrees(src, moduleDir('spare'), { absSymlinksStripped: true }), []);
  });

  test('a wrong password is rsync exit 5, and setPassword changes what the daemon accepts', async () => {
    const wrong = await rsync(['-artuz', `${src}/`, daemon.moduleUrl('data')], { RSYNC_PASSWORD: 'not-it' });
    assert.equal(wrong.code, 5, wrong.stderr);
    assert.match(wrong.stderr, /auth failed/);

    await daemon.setPassword('second-secret');
    try {
      assert.equal(daemon.password, 'second-secret');
      const stale = await rsync(['-artuz', `--password-file=${daemon.passwordFile}`, `${src}/`, daemon.moduleUrl('data')]);
      assert.equal(stale.code, 5, stale.stderr);
      const fresh = await rsync(['-artuz', `${src}/`, daemon.moduleUrl('data')], { RSYNC_PASSWORD: 'second-secret' });
      assert.equal(fresh.code, 0, fresh.stderr);
    } finally {
      await daemon.setPassword(password);
    }
  });

  test('stop() makes pushes fail with exit 10, restart() on the same port makes them work again', async () => {
    const port = daemon.port;
    const dest = moduleDir('data');
    await writeFile(join(src, 'during-outage.txt'), 'written while the receiver was down\n');
    try {
      await daemon.stop();
      const down = await rsync(['-artuz', `${src}/`, daemon.moduleUrl('data')], { RSYNC_PASSWORD: password });
      assert.equal(down.code, 10, down.stderr);
      assert.match(down.stderr, /Connection refused/);

      await daemon.restart();
      assert.equal(daemon.port, port);
      assert.equal(daemon.modules.data, dest);
      const up = await rsync(['-artuz', `${src}/`, daemon.moduleUrl('data')], { RSYNC_PASSWORD: password });
      assert.equal(up.code, 0, up.stderr);
      assert.deepEqual(await compareTrees(src, dest, { absSymlinksStripped: true }), []);
    } finally {
      await rm(join(src, 'during-outage.txt'));
    }
  });
});

describe('sshd', () => {
  let sshd: Sshd;

  before(async () => {
    sshd = await startSshd();
  });
  after(async () => {
    await sshd.stop();
  });

  test('a push over ssh (-e sshCommand) makes an identical tree, absolute symlink targets kept', async () => {
    const dest = await makeTempDir('harness-ssh-dest');
    const r = await rsync(['-artuz', '-e', sshd.sshCommand, `${src}/`, `root@127.0.0.1:${dest}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await compareTrees(src, dest), []);
  });

  test('sshArgs run a remote command', async () => {
    const r = await runProcess('ssh', [...sshd.sshArgs, 'root@127.0.0.1', 'echo', 'hello'], { timeoutMs: 10_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello\n');
  });
});

describe('compareTrees catches every difference it claims to check', () => {
  /** A fresh exact copy of src (rsync -a keeps modes, times and symlinks) for one mutation. */
  async function copyOfSrc(): Promise<string> {
    const copy = await makeTempDir('harness-copy');
    const r = await rsync(['-a', `${src}/`, `${copy}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await compareTrees(src, copy), [], 'the unmodified copy must compare identical');
    return copy;
  }

  test('a changed byte, with size and mtime kept', async () => {
    const copy = await copyOfSrc();
    const file = join(copy, 'd0', 'f3.dat');
    const before = await stat(file);
    const bytes = await readFile(file);
    bytes[1234] = (bytes[1234] ?? 0) ^ 0x01;
    await writeFile(file, bytes);
    await utimes(file, before.atime, before.mtime);
    assert.deepEqual(await compareTrees(src, copy), ['"d0/f3.dat": content differs']);
  });

  test('a missing file and an extra file', async () => {
    const copy = await copyOfSrc();
    await rm(join(copy, 'd0', 'd1', 'f0.dat'));
    await writeFile(join(copy, 'extra'), '');
    assert.deepEqual(await compareTrees(src, copy), ['"d0/d1/f0.dat": only in a', '"extra": only in b']);
  });

  test('a missing file with an invalid UTF-8 name, and one with a newline', async () => {
    const copy = await copyOfSrc();
    await rm(Buffer.concat([Buffer.from(`${copy}/odd/`), INVALID_UTF8]));
    await rm(join(copy, 'new\nline'));
    assert.deepEqual(await compareTrees(src, copy), ['"new\\nline": only in a', '"odd/f\\xff\\xfe.t": only in a']);
  });

  test('a different mtime', async () => {
    const copy = await copyOfSrc();
    const file = join(copy, 'f0.dat');
    const t = new Date('2001-02-03T04:05:11Z');
    await utimes(file, t, t);
    assert.deepEqual(await compareTrees(src, copy), ['"f0.dat": mtime 981173106 != 981173111 (5 s)']);
  });

  test('a different symlink target', async () => {
    const copy = await copyOfSrc();
    const link = join(copy, 'rel-link');
    const before = await lstat(link);
    await rm(link);
    await symlink('d0/f1.dat', link);
    await lutimes(link, before.atime, before.mtime);
    assert.deepEqual(await compareTrees(src, copy), ['"rel-link": symlink target "d0/f0.dat" != "d0/f1.dat"']);
    // absSymlinksStripped only forgives a stripped leading slash, not another target.
    assert.deepEqual(await compareTrees(src, copy, { absSymlinksStripped: true }), [
      '"rel-link": symlink target "d0/f0.dat" != "d0/f1.dat"',
    ]);
  });

  test('a different mode, size and type', async () => {
    const copy = await copyOfSrc();
    await chmod(join(copy, 'd0', 'f1.dat'), 0o644);
    const grown = join(copy, 'd3', 'f0.dat');
    const before = await stat(grown);
    await writeFile(grown, 'short');
    await utimes(grown, before.atime, before.mtime);
    await rm(join(copy, 'empty-dir'), { recursive: true });
    await writeFile(join(copy, 'empty-dir'), '');
    const diffs = await compareTrees(src, copy);
    assert.deepEqual(diffs, ['"d0/f1.dat": mode 600 != 644', '"d3/f0.dat": size 3000 != 5', '"empty-dir": type dir != file']);
  });

  test('a missing root is a difference, not a crash', async () => {
    const diffs = await compareTrees(src, join(src, 'no-such-dir'));
    assert.deepEqual(diffs, ['(root): only in a']);
  });

  test('directory mtimes and root attributes only when asked', async () => {
    const copy = await copyOfSrc();
    const t = new Date('2010-01-01T00:00:00Z');
    await utimes(join(copy, 'd0'), t, t);
    await chmod(copy, 0o711);
    assert.deepEqual(await compareTrees(src, copy, { ignoreRootAttrs: true }), []);
    const diffs = await compareTrees(src, copy, { compareDirMtime: true });
    assert.ok(diffs.includes('(root): mode 700 != 711'), diffs.join('\n'));
    assert.ok(diffs.some((d) => d.startsWith('"d0": mtime ')), diffs.join('\n'));
  });
});

describe('waiting', () => {
  test('waitForIdenticalTrees returns once the trees converge and lists differences when they do not', async () => {
    const a = await makeTempDir('harness-wait-a');
    const b = await makeTempDir('harness-wait-b');
    await writeFile(join(a, 'x'), 'x');
    const late = setTimeout(() => void rsync(['-a', `${a}/`, `${b}/`]), 150);
    await waitForIdenticalTrees(a, b, { timeoutMs: 5000 });
    clearTimeout(late);

    for (let i = 0; i < 25; i++) await writeFile(join(a, `n${String(i).padStart(2, '0')}`), '');
    await assert.rejects(waitForIdenticalTrees(a, b, { timeoutMs: 200 }), (err: Error) => {
      assert.match(err.message, /25 difference\(s\)/);
      assert.match(err.message, /"n00": only in a/);
      assert.match(err.message, /"n19": only in a/);
      assert.doesNotMatch(err.message, /"n20"/);
      assert.match(err.message, /and 5 more/);
      return true;
    });
  });

  test('waitFor names what it waited for and the last probe error', async () => {
    await assert.rejects(
      waitFor(
        async () => {
          throw new Error('still closed');
        },
        { timeoutMs: 100, intervalMs: 20, what: 'the gate to open' },
      ),
      /timed out after 100 ms waiting for the gate to open; last probe error: still closed/,
    );
    let n = 0;
    assert.equal(await waitFor(async () => ++n >= 3 && n, { timeoutMs: 1000, intervalMs: 1, what: 'three' }), 3);
  });
});

describe('process tracking and ports', () => {
  test('a background child left running is killed when the test process exits, even on failure', async () => {
    const dir = await makeTempDir('harness-orphan');
    const script = join(dir, 'orphan.ts');
    const helper = new URL('../helpers/processes.ts', import.meta.url).href;
    await writeFile(
      script,
      `import { spawnBackground } from ${JSON.stringify(helper)};\n` +
        `const p = spawnBackground('sleep', ['60']);\n` +
        `await new Promise((r) => setTimeout(r, 100));\n` +
        `console.log(p.child.pid);\n` +
        `throw new Error('test failed on purpose');\n`,
    );
    const r = await runProcess(process.execPath, [script], { timeoutMs: 10_000 });
    assert.equal(r.code, 1, r.stderr);
    const pid = Number(r.stdout.trim());
    assert.ok(pid > 0, r.stdout);
    // Dead means gone or a zombie: this machine's pid 1 reaps orphans only every second or two.
    await waitFor(
      async () => {
        const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => undefined);
        return stat === undefined || / Z /.test(stat.slice(stat.lastIndexOf(')')));
      },
      { timeoutMs: 2000, what: `orphan sleep (pid ${pid}) to be killed` },
    );
  });

  test('stop() ends a background child with SIGTERM', async () => {
    const p = spawnBackground('sleep', ['60']);
    assert.ok(p.running());
    const status = await p.stop();
    assert.equal(status.signal, 'SIGTERM');
    assert.equal(p.running(), false);
  });

  test('freePort returns a port that can be listened on', async () => {
    const port = await freePort();
    assert.ok(port > 0 && port < 65536);
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
    await new Promise((resolve) => server.close(resolve));
  });

  test('oddNames are distinct single names', () => {
    const keys = new Set(oddNames.map((n) => n.toString('latin1')));
    assert.equal(keys.size, oddNames.length);
    for (const n of oddNames) assert.ok(!n.includes(0x2f) && !n.includes(0x00));
  });
});
