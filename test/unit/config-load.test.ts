import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config/load-config.ts';
import type { Config } from '../../src/config/model.ts';
import { ExitCode, SersyncError } from '../../src/core/errors.ts';

const FIXTURES = new URL('../fixtures/config/', import.meta.url);

let tmp = '';
let watch = '';

before(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'sersync-ts-config-'));
  watch = path.join(tmp, 'www');
  mkdirSync(watch);
});

after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Copies a fixture into the temp dir with `@WATCH@` (or the given literal) pointing at the test's watch dir. */
function place(fixture: string, name: string, replace: string = '@WATCH@'): string {
  const text = readFileSync(new URL(fixture, FIXTURES), 'utf8').replaceAll(replace, watch);
  const file = path.join(tmp, name);
  writeFileSync(file, text);
  return file;
}

function write(name: string, text: string | Buffer): string {
  const file = path.join(tmp, name);
  writeFileSync(file, text);
  return file;
}

async function rejection(file: string): Promise<SersyncError> {
  try {
    await loadConfig(file, { cwd: tmp });
  } catch (err) {
    assert.ok(err instanceof SersyncError, `expected a SersyncError, got ${String(err)}`);
    return err;
  }
  return assert.fail(`expected ${file} to be rejected`);
}

test("loads sersync2's shipped confxml.xml with the watch dir pointed at a real directory", async () => {
  const file = place('shipped-confxml.xml', 'confxml.xml', '/opt/tongbu');
  const config = await loadConfig(file);
  assert.equal(config.file, file);
  assert.equal(config.watch, watch);
  assert.deepEqual(
    config.remotes.map((r) => r.id),
    ['127.0.0.1::tongbu1'],
  );
  assert.deepEqual(config.warnings, []);
  assert.ok(Object.isFrozen(config.remotes));
});

test('a relative config path is resolved against the cwd and shown as given', async () => {
  place('minimal.xml', 'relative.xml', '/data/www');
  const config = await loadConfig('relative.xml', { cwd: tmp });
  assert.equal(config.file, path.join(tmp, 'relative.xml'));
  writeFileSync(path.join(tmp, 'bad-relative.xml'), '<head>\n<sersync/></head>');
  const err = await rejection('bad-relative.xml');
  assert.equal(err.message, 'bad-relative.xml:2: <sersync>: no <localpath watch="/dir"> element, so there is nothing to watch');
});

interface BrokenCase {
  readonly name: string;
  readonly file: () => string;
  readonly code: 'CONFIG_MISSING' | 'CONFIG_INVALID';
  readonly exitCode: number;
  /** Every line of the message must match, in order. */
  readonly message: readonly RegExp[];
}

const broken: readonly BrokenCase[] = [
  {
    name: 'not XML',
    file: () => place('broken/not-xml.xml', 'not-xml.xml'),
    code: 'CONFIG_INVALID',
    exitCode: ExitCode.Config,
    message: [/^\/.*\/not-xml\.xml:5: not valid XML: Attributes for 'localpath' have open quote\.$/],
  },
  {
    name: 'wrong root',
    file: () => place('broken/wrong-root.xml', 'wrong-root.xml'),
    code: 'CONFIG_INVALID',
    exitCode: ExitCode.Config,
    message: [/wrong-root\.xml:2: <sersync>: the root element must be <head>/],
  },
  {
    name: 'missing watch dir',
    file: () => place('broken/missing-watch-dir.xml', 'missing-watch-dir.xml'),
    code: 'CONFIG_INVALID',
    exitCode: ExitCode.Config,
    message: [
      /missing-watch-dir\.xml:5: <sersync><localpath watch="\/.*\/www\/never-created">: directory does not exist, so there is nothing to watch \(sersync2 started anyway and never synced\); create it or fix the path$/,
    ],
  },
  {
    name: 'empty remote',
    file: () => place('broken/empty-remote.xml', 'empty-remote.xml'),
    code: 'CONFIG_INVALID',
    exitCode: ExitCode.Config,
    message: [/empty-remote\.xml:6: <sersync><localpath><remote>: empty name/],
  },
  {
    name: 'missing file',
    file: () => path.join(tmp, 'no-such-confxml.xml'),
    code: 'CONFIG_MISSING',
    exitCode: ExitCode.NoInput,
    message: [/^config file \/.*\/no-such-confxml\.xml does not exist; pass the config file with -o FILE/],
  },
  {
    name: 'missing parent directory',
    file: () => path.join(tmp, 'no-such-dir', 'confxml.xml'),
    code: 'CONFIG_MISSING',
    exitCode: ExitCode.NoInput,
    message: [/no-such-dir\/confxml\.xml does not exist/],
  },
  {
    name: 'unreadable: a directory',
    file: () => watch,
    code: 'CONFIG_MISSING',
    exitCode: ExitCode.NoInput,
    message: [/^config file \/.*\/www is a directory, not a file; pass the config file with -o FILE/],
  },
  {
    name: 'unreadable: a dangling symbolic link',
    file: () => {
      const link = path.join(tmp, 'dangling.xml');
      symlinkSync(path.join(tmp, 'gone.xml'), link);
      return link;
    },
    code: 'CONFIG_MISSING',
    exitCode: ExitCode.NoInput,
    message: [/dangling\.xml is a symbolic link to a file that does not exist/],
  },
  {
    name: 'unreadable: a path through a regular file',
    file: () => path.join(place('minimal.xml', 'plain.xml'), 'confxml.xml'),
    code: 'CONFIG_MISSING',
    exitCode: ExitCode.NoInput,
    message: [/plain\.xml\/confxml\.xml: a part of the path is not a directory/],
  },
  {
    name: 'unreadable: a FIFO (must not hang)',
    file: () => {
      const fifo = path.join(tmp, 'fifo.xml');
      execFileSync('mkfifo', [fifo]);
      return fifo;
    },
    code: 'CONFIG_MISSING',
    exitCode: ExitCode.NoInput,
    message: [/fifo\.xml is not a regular file/],
  },
  {
    name: 'binary garbage',
    file: () => {
      const garbage = Buffer.alloc(4096);
      for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 256;
      garbage[0] = 0x7f; // an ELF-like start, not a UTF-16 BOM
      return write('garbage.xml', garbage);
    },
    code: 'CONFIG_INVALID',
    exitCode: ExitCode.Config,
    message: [/garbage\.xml:\d+: holds NUL bytes, so it is binary data, not a confxml\.xml; is this the right file\?$/],
  },
  {
    name: 'a 50 MB file',
    file: () => {
      const big = path.join(tmp, 'big.xml');
      const chunk = Buffer.alloc(1024 * 1024, '<head>   </head>\n');
      writeFileSync(big, '');
      for (let i = 0; i < 50; i++) writeFileSync(big, chunk, { flag: 'a' });
      return big;
    },
    code: 'CONFIG_INVALID',
    exitCode: ExitCode.Config,
    message: [/big\.xml: 52428800 bytes is too large for a confxml\.xml \(limit 1048576\); is this the right file\?$/],
  },
];

for (const c of broken) {
  test(`broken config: ${c.name} → ${c.code}, exit ${c.exitCode}`, { timeout: 10_000 }, async () => {
    const err = await rejection(c.file());
    assert.equal(err.code, c.code);
    assert.equal(err.exitCode, c.exitCode);
    const lines = err.message.split('\n');
    assert.equal(lines.length, c.message.length, err.message);
    for (const [i, re] of c.message.entries()) assert.match(lines[i] ?? '', re);
    assert.ok(!err.message.includes('    at '), 'no stack trace in the message');
  });
}

test('the watch path must be a directory', async () => {
  const notDir = write('not-a-dir.txt', 'x');
  const file = write(
    'watch-file.xml',
    `<head><sersync><localpath watch="${notDir}"><remote ip="h" name="m"/></localpath></sersync></head>`,
  );
  const err = await rejection(file);
  assert.equal(err.message, `${file}:1: <sersync><localpath watch="${notDir}">: ${notDir} is not a directory; fix the path`);
});

test('local mirrors must exist', async () => {
  const mirror = path.join(tmp, 'mirror');
  const file = write('mirror.xml', `<head><sersync><localpath watch="${watch}">\n<remote name="${mirror}"/></localpath></sersync></head>`);
  const err = await rejection(file);
  assert.equal(
    err.message,
    `${file}:2: <sersync><localpath><remote name="${mirror}">: directory does not exist; create it or fix the path`,
  );
  mkdirSync(mirror);
  const config: Config = await loadConfig(file);
  assert.deepEqual(config.remotes, [{ kind: 'local', ip: '', name: mirror, id: mirror, line: 2 }]);
});

test('auth on an rsync daemon: the password file must exist, be readable and private; relative means the watch dir', async () => {
  const xml = (passwordfile: string, ssh = 'false') =>
    `<head><sersync><localpath watch="${watch}"><remote ip="127.0.0.1" name="www"/></localpath>\n<rsync><auth start="true" users="u" passwordfile="${passwordfile}"/><ssh start="${ssh}"/></rsync></sersync></head>`;
  const file = write('auth.xml', xml('rsync.pas'));
  const secret = path.join(watch, 'rsync.pas');
  let err = await rejection(file);
  assert.equal(
    err.message,
    `${file}:2: <sersync><rsync><auth passwordfile="rsync.pas">: password file ${secret} does not exist; create it (one line, the password; chmod 600) or fix the path`,
  );
  writeFileSync(secret, 'pw\n', { mode: 0o644 });
  chmodSync(secret, 0o644);
  err = await rejection(file);
  assert.match(err.message, /accessible by other users, which rsync refuses; run chmod 600 /);
  chmodSync(secret, 0o600);
  const config = await loadConfig(file);
  assert.equal(config.rsync.auth.passwordFile, secret);
  // A directory is no password file.
  err = await rejection(write('auth-dir.xml', xml(tmp)));
  assert.match(err.message, /auth-dir\.xml:2: .*: password file \/.* is not a regular file$/);
  // Over ssh the password file is dropped, so it is not checked.
  const ssh = await loadConfig(write('auth-ssh.xml', xml('/nonexistent/pw', 'true')));
  assert.equal(ssh.warnings.length, 1);
});

test('parse errors and disk errors are reported together, in file order', async () => {
  const file = write(
    'many.xml',
    `<head>
<sersync><localpath watch="${path.join(tmp, 'nowhere')}">
<remote ip="h" name="m"/>
<remote name="${path.join(tmp, 'nomirror')}"/>
</localpath>
<rsync><userDefinedPort start="true" port="x"/></rsync></sersync>
</head>`,
  );
  const err = await rejection(file);
  assert.equal(err.code, 'CONFIG_INVALID');
  assert.deepEqual(
    err.message.split('\n').map((l) => l.replace(`${file}:`, 'F:').replace(/: .*?: /, ': … ')),
    [
      'F:2: … directory does not exist, so there is nothing to watch (sersync2 started anyway and never synced); create it or fix the path',
      'F:4: … directory does not exist; create it or fix the path',
      'F:6: … expected a port number 1-65535',
    ],
  );
});

test('the tutorial copies load once their paths exist', async () => {
  const file = place('tutorial-rsyncd.xml', 'tutorial.xml', '/data/www/');
  const pw = path.join(tmp, 'rsync.password');
  writeFileSync(pw, 'secret\n', { mode: 0o600 });
  writeFileSync(file, readFileSync(file, 'utf8').replace('/etc/rsync.password', pw));
  const config = await loadConfig(file);
  assert.equal(config.watch, watch);
  assert.equal(config.rsync.auth.passwordFile, pw);
  assert.equal(config.filter.excludes.length, 4);
});

test('two <localpath> roots that are nested once symbolic links are followed are refused, naming both lines', async () => {
  const outer = path.join(tmp, 'site-outer');
  mkdirSync(path.join(outer, 'inner'), { recursive: true });
  const link = path.join(tmp, 'site-link');
  symlinkSync(path.join(outer, 'inner'), link);
  const file = write(
    'linked-roots.xml',
    `<head><sersync>\n<localpath watch="${outer}"><remote ip="h" name="a"/></localpath>\n<localpath watch="${link}"><remote ip="h" name="b"/></localpath>\n</sersync></head>`,
  );
  const err = await rejection(file);
  assert.equal(
    err.message,
    `${file}:3: <sersync><localpath watch>: ${link} is ${path.join(outer, 'inner')} once symbolic links are followed: inside the <localpath watch="${outer}"> of line 2; its files would be synced twice, give each directory one <localpath>`,
  );
});
