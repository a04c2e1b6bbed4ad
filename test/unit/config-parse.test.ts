import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { Config } from '../../src/config/model.ts';
import { type ParseOptions, parseConfig } from '../../src/config/parse-config.ts';
import { ExitCode, SersyncError } from '../../src/core/errors.ts';
import { fromUtf8 } from '../../src/core/paths.ts';
import { EXTRA_TEMPORARY_GLOBS } from '../../src/watch/path-filter.ts';

const FIXTURES = new URL('../fixtures/config/', import.meta.url);

function fixture(name: string): Buffer {
  return readFileSync(new URL(name, FIXTURES));
}

function parse(xml: string | Buffer, options: ParseOptions = {}): Config {
  return parseConfig(typeof xml === 'string' ? Buffer.from(xml) : xml, 'conf.xml', { cwd: '/work', ...options });
}

/** The CONFIG_INVALID error of a config, one message line per problem. */
function problemsOf(xml: string | Buffer, options: ParseOptions = {}): string[] {
  try {
    parse(xml, options);
  } catch (err) {
    assert.ok(err instanceof SersyncError, `expected a SersyncError, got ${String(err)}`);
    assert.equal(err.code, 'CONFIG_INVALID');
    assert.equal(err.exitCode, ExitCode.Config);
    return err.message.split('\n');
  }
  return assert.fail('expected the config to be rejected');
}

/** A whole config around the given `<sersync>` inner part and extra `<head>` children. */
function withSersync(inner: string, extra = ''): string {
  return `<head>\n${extra}\n<sersync>\n${inner}\n</sersync>\n</head>\n`;
}

const REMOTE = '<localpath watch="/data/www"><remote ip="10.0.0.2" name="www"/></localpath>';

const DEFAULT_TUNING = {
  dotFiles: true,
  tempGlobs: EXTRA_TEMPORARY_GLOBS,
  quietMs: 100,
  maxWaitMs: 2000,
  maxChildrenPerDir: 100,
  maxPendingPaths: 20000,
  watcher: 'dirs',
  stateDir: null,
  progressMs: 10_000,
  maxDelete: null,
};

test("sersync2's shipped confxml.xml, verbatim, reads as its documented meaning", () => {
  const config = parseConfig(fixture('shipped-confxml.xml'), 'confxml.xml', { cwd: '/usr/local/sersync' });
  assert.deepEqual(config, {
    file: '/usr/local/sersync/confxml.xml',
    host: { ip: 'localhost', port: 8008 },
    debug: false,
    xfs: false,
    filter: { enabled: false, excludes: [] },
    inotify: {
      delete: true,
      createFolder: true,
      createFile: false,
      closeWrite: true,
      moveFrom: true,
      moveTo: true,
      attrib: false,
      modify: false,
    },
    watch: '/opt/tongbu',
    remotes: [{ kind: 'daemon', ip: '127.0.0.1', name: 'tongbu1', id: '127.0.0.1::tongbu1', line: 25 }],
    sites: [
      {
        watch: '/opt/tongbu',
        remotes: [{ kind: 'daemon', ip: '127.0.0.1', name: 'tongbu1', id: '127.0.0.1::tongbu1', line: 25 }],
        line: 24,
      },
    ],
    rsync: {
      commonParams: ['-artuz'],
      auth: { enabled: false, users: 'root', passwordFile: '/etc/rsync.pas' },
      port: { enabled: false, port: 874 },
      timeout: { enabled: false, seconds: 100 },
      ssh: { enabled: false, options: [] },
    },
    failLog: { path: '/tmp/rsync_fail_log.sh', retryCapMinutes: 60 },
    crontab: { enabled: false, scheduleMinutes: 600, filter: { enabled: false, excludes: [] } },
    plugin: { enabled: false, name: 'command' },
    plugins: {
      command: { prefix: ['/bin/sh'], suffix: [], ignoreError: true, filter: { enabled: false, includes: [] } },
      socket: { watch: '/opt/tongbu', hosts: [{ ip: '192.168.138.20', port: 8009 }] },
      refreshCDN: {
        watch: '/data0/htdocs/cms.xoyo.com/site',
        domainName: 'ccms.chinacache.com',
        port: 80,
        username: 'xxxx',
        password: 'xxxx',
        sendUrlBase: 'http://pic.xoyo.com/cms',
        regex: { enabled: false, match: 'cms.xoyo.com/site([/a-zA-Z0-9]*).xoyo.com/images' },
      },
      http: null,
    },
    tuning: DEFAULT_TUNING,
    warnings: [],
  });
});

test('a minimal file gets every shipped default', () => {
  const config = parseConfig(fixture('minimal.xml'), 'minimal.xml', { cwd: '/' });
  assert.deepEqual(
    { ...config, file: undefined, remotes: undefined, sites: undefined },
    {
      file: undefined,
      host: { ip: 'localhost', port: 8008 },
      debug: false,
      xfs: false,
      filter: { enabled: false, excludes: [] },
      inotify: {
        delete: true,
        createFolder: true,
        createFile: false,
        closeWrite: true,
        moveFrom: true,
        moveTo: true,
        attrib: false,
        modify: false,
      },
      watch: '/data/www',
      remotes: undefined,
      sites: undefined,
      rsync: {
        commonParams: ['-artuz'],
        auth: { enabled: false, users: 'root', passwordFile: '/etc/rsync.pas' },
        port: { enabled: false, port: 874 },
        timeout: { enabled: false, seconds: 100 },
        ssh: { enabled: false, options: [] },
      },
      failLog: { path: '/tmp/rsync_fail_log.sh', retryCapMinutes: 60 },
      crontab: { enabled: false, scheduleMinutes: 600, filter: { enabled: false, excludes: [] } },
      plugin: { enabled: false, name: 'command' },
      plugins: { command: null, socket: null, refreshCDN: null, http: null },
      tuning: DEFAULT_TUNING,
      warnings: [],
    },
  );
  assert.equal(config.file, '/minimal.xml');
  assert.deepEqual(config.remotes, [{ kind: 'daemon', ip: '1.2.3.4', name: 'm', id: '1.2.3.4::m', line: 1 }]);
});

test('elements present but without their attributes take the shipped defaults too', () => {
  const config = parse(
    withSersync(
      `${REMOTE}<rsync><commonParams/><auth start="true"/><userDefinedPort start="true"/><timeout start="true"/><ssh/></rsync>
<failLog/><crontab start="true"><crontabfilter/></crontab><plugin/>`,
      '<host/><debug/><fileSystem/><filter/><inotify><delete/><createFile/></inotify><tuning/>',
    ),
  );
  assert.deepEqual(config.rsync, {
    commonParams: ['-artuz'],
    auth: { enabled: true, users: 'root', passwordFile: '/etc/rsync.pas' },
    port: { enabled: true, port: 874 },
    timeout: { enabled: true, seconds: 100 },
    ssh: { enabled: false, options: [] },
  });
  assert.deepEqual(config.failLog, { path: '/tmp/rsync_fail_log.sh', retryCapMinutes: 60 });
  assert.deepEqual(config.crontab, { enabled: true, scheduleMinutes: 600, filter: { enabled: false, excludes: [] } });
  assert.deepEqual(config.plugin, { enabled: false, name: 'command' });
  assert.equal(config.inotify.delete, true);
  assert.equal(config.inotify.createFile, false);
  assert.deepEqual(config.host, { ip: 'localhost', port: 8008 });
  assert.deepEqual(config.tuning, DEFAULT_TUNING);
  assert.deepEqual(config.warnings, []);
});

test('tutorial copy 1: ISO-8859-1 declared, UTF-8 Chinese comments, "# ..." text, mixed-case names', () => {
  const config = parse(fixture('tutorial-rsyncd.xml'));
  assert.deepEqual(config.warnings, []);
  assert.deepEqual(
    config.filter.excludes.map((e) => [e.source, e.line]),
    [
      ['(.*)\\.svn', 12],
      ['(.*)\\.gz', 13],
      ['^info/*', 14],
      ['^static/*', 15],
    ],
  );
  // <CreateFile START="true"></createfile>, inside <Inotify>...</inotify>
  assert.deepEqual(config.inotify, {
    delete: true,
    createFolder: true,
    createFile: true,
    closeWrite: true,
    moveFrom: true,
    moveTo: true,
    attrib: false,
    modify: false,
  });
  assert.equal(config.watch, '/data/www');
  assert.deepEqual(
    config.remotes.map((r) => [r.id, r.line]),
    [
      ['172.16.1.41::www', 32],
      ['172.16.1.42::www', 33],
    ],
  );
  assert.deepEqual(config.rsync.auth, { enabled: true, users: 'rsync_backup', passwordFile: '/etc/rsync.password' });
  assert.deepEqual(config.rsync.timeout, { enabled: true, seconds: 100 });
  assert.deepEqual(config.crontab, {
    enabled: true,
    scheduleMinutes: 600,
    filter: { enabled: true, excludes: ['*.svn', '*.gz', 'info/*', 'static/*'] },
  });
  assert.deepEqual(config.plugins.socket, { watch: '/data/www', hosts: [{ ip: '192.168.138.20', port: 8009 }] });
});

test('tutorial copy 2: BOM, blank line before the declaration, upper-case names, ssh, the command plugin', () => {
  const config = parse(fixture('tutorial-ssh.xml'));
  assert.deepEqual(config.warnings, [
    'conf.xml:24: <inotify><attrib start="TRUE">: only the exact value "true" turns this on; read as false',
  ]);
  assert.equal(config.inotify.delete, false);
  assert.equal(config.inotify.attrib, false);
  assert.deepEqual(config.remotes, [
    { kind: 'ssh', ip: '10.0.0.12', name: '/srv/site', id: '10.0.0.12:/srv/site', line: 31 },
    { kind: 'ssh', ip: 'backup@10.0.0.13', name: '/backup/site', id: 'backup@10.0.0.13:/backup/site', line: 32 },
  ]);
  assert.deepEqual(config.rsync.commonParams, ['-auz', '--partial']);
  assert.deepEqual(config.rsync.ssh, { enabled: true, options: [] });
  assert.deepEqual(config.rsync.port, { enabled: true, port: 2222 });
  assert.deepEqual(config.failLog, { path: '/var/log/sersync_fail_log.sh', retryCapMinutes: 30 });
  assert.equal(config.crontab.enabled, false);
  assert.deepEqual(config.plugin, { enabled: true, name: 'command' });
  const command = config.plugins.command;
  assert.ok(command !== null);
  assert.deepEqual(command.prefix, ['/usr/local/bin/notify', 'site changed']);
  assert.deepEqual(command.suffix, ['--quiet']);
  assert.equal(command.ignoreError, false);
  assert.deepEqual(
    command.filter.includes.map((i) => [i.source, i.line]),
    [
      ['(.*)\\.php', 56],
      ['/srv/site/(.*)\\.html', 57],
    ],
  );
  assert.ok(command.filter.includes[1]?.regex.test('/srv/site/a/b.html'));
  assert.ok(!command.filter.includes[1]?.regex.test('/srv/site/a/b.html.bak'));
});

test('a CRLF copy reports the same lines', () => {
  const crlf = Buffer.from(fixture('tutorial-ssh.xml').toString('utf8').replace(/\n/g, '\r\n'));
  assert.deepEqual(parse(crlf).warnings, parse(fixture('tutorial-ssh.xml')).warnings);
});

test('the extensions: <tuning>, <ssh options>, local mirrors, the http plugin', () => {
  const config = parse(fixture('extensions.xml'));
  assert.deepEqual(config.warnings, []);
  assert.deepEqual(config.tuning, {
    dotFiles: false,
    tempGlobs: ['*.part', '*.tmp'],
    quietMs: 150,
    maxWaitMs: 5000,
    maxChildrenPerDir: 8,
    maxPendingPaths: 500,
    watcher: 'dirs',
    stateDir: '/var/lib/sersync-ts',
    progressMs: 30_000,
    maxDelete: 500,
  });
  assert.deepEqual(config.rsync.ssh.options, ['-p', '2222', '-i', '/root/.ssh/mirror_ed25519', '-o', 'StrictHostKeyChecking yes']);
  assert.deepEqual(config.rsync.commonParams, ['-artuz', '--exclude=*.tmp', '--chmod=D755,F644']);
  assert.deepEqual(config.remotes, [
    { kind: 'ssh', ip: 'mirror.example.com', name: '/srv/www', id: 'mirror.example.com:/srv/www', line: 8 },
    { kind: 'local', ip: '', name: '/backup/www', id: '/backup/www', line: 9 },
    { kind: 'local', ip: '', name: '/mnt/usb/www', id: '/mnt/usb/www', line: 10 },
  ]);
  assert.deepEqual(config.plugin, { enabled: true, name: 'http' });
  assert.deepEqual(config.plugins.http, { watch: '/data/www', url: 'http://127.0.0.1:8080/changed' });
});

test('element and attribute names are case-insensitive, attribute values are not', () => {
  const upper = parse(
    '<HEAD><DEBUG START="true"/><FILESYSTEM XFS="true"/><SERSYNC><LOCALPATH WATCH="/d"><REMOTE IP="h" NAME="M"/></LOCALPATH>' +
      '<RSYNC><TIMEOUT START="true" TIME="7"/></RSYNC></SERSYNC></HEAD>',
  );
  assert.equal(upper.debug, true);
  assert.equal(upper.xfs, true);
  assert.equal(upper.watch, '/d');
  assert.deepEqual(upper.remotes[0]?.id, 'h::M');
  assert.deepEqual(upper.rsync.timeout, { enabled: true, seconds: 7 });
  assert.deepEqual(problemsOf(withSersync(`${REMOTE}\n<plugin start="true" name="Command"/>`)), [
    'conf.xml:5: <sersync><plugin name="Command">: unknown plugin; expected command, socket, refreshCDN or http (exact case)',
  ]);
});

test('only the exact value "true" is true; other values warn and count as false', () => {
  for (const value of ['True', 'TRUE', '1', 'yes', ' true', 'true ', '', 'on']) {
    const config = parse(withSersync(REMOTE, `<debug start="${value}"/>`));
    assert.equal(config.debug, false, value);
    assert.deepEqual(config.warnings, [`conf.xml:2: <debug start="${value}">: only the exact value "true" turns this on; read as false`]);
  }
  const on = parse(withSersync(REMOTE, '<debug start="true"/>'));
  assert.equal(on.debug, true);
  const off = parse(withSersync(REMOTE, '<debug start="false"/>'));
  assert.equal(off.debug, false);
  assert.deepEqual(off.warnings, []);
});

test('a file that is not UTF-8 is read as latin1, with a warning, and its regexes stay byte strings', () => {
  const head = Buffer.from('<head>\n<filter start="true"><exclude expression="caf');
  const tail = Buffer.from(
    '(.*)"/></filter>\n<sersync><localpath watch="/d/caf\xe9"><remote ip="h" name="m"/></localpath></sersync></head>',
    'latin1',
  );
  const config = parse(Buffer.concat([head, Buffer.from([0xe9]), tail]));
  assert.deepEqual(config.warnings, [
    'conf.xml:1: not valid UTF-8, read as ISO-8859-1; the paths in it are used as UTF-8 names, so a non-ASCII path written in another encoding (GBK, Latin-1) names a different directory: save the file as UTF-8',
  ]);
  assert.equal(config.watch, '/d/caf\u00e9');
  const regex = config.filter.excludes[0]?.regex;
  assert.ok(regex?.test('caf\xe9.txt'), 'the byte 0xE9 matches itself');
  assert.ok(!regex?.test(fromUtf8('café.txt')), 'not the UTF-8 bytes of é');
});

test('filter regexes are anchored like boost regex_match and compiled over UTF-8 byte strings', () => {
  const config = parse(
    withSersync(
      REMOTE,
      '<filter start="true"><exclude expression="(.*)\\.gz"/><exclude expression="^info/*"/><exclude expression="(.*)临时"/></filter>',
    ),
  );
  const [gz, info, chinese] = config.filter.excludes.map((e) => e.regex);
  assert.ok(gz?.test('a.gz') && gz.test('/a/b/c.gz'));
  assert.ok(!gz?.test('a.gz.txt'), 'anchored at the end');
  assert.ok(info?.test('info') && info.test('info/'));
  assert.ok(!info?.test('info/x.txt') && !info?.test('/a/info'), 'anchored at both ends');
  assert.ok(chinese?.test(fromUtf8('/a/b临时')), 'matches the UTF-8 bytes');
  assert.ok(!chinese?.test('/a/b临时'), 'not the UTF-16 string');
  assert.deepEqual(
    config.filter.excludes.map((e) => e.source),
    ['(.*)\\.gz', '^info/*', '(.*)临时'],
  );
});

test('a disabled filter is not read: no regexes, no error for a bad one', () => {
  const config = parse(withSersync(REMOTE, '<filter start="false"><exclude expression="(unclosed"/></filter>'));
  assert.deepEqual(config.filter, { enabled: false, excludes: [] });
  assert.deepEqual(config.warnings, []);
});

test('a <filter> exclude "/name" is flagged: sersync2 never matched it (a top-level entry has no slash); it excludes /name', () => {
  const config = parse(
    withSersync(
      REMOTE,
      '<filter start="true">\n<exclude expression="/logs"/><exclude expression="/a/b"/><exclude expression="/tmp/*"/></filter>',
    ),
  );
  const says = (n: string) =>
    `matches nothing in sersync2, which tests a top-level entry as "name", without a leading slash (deeper ones as "/dir/name"); sersync-ts excludes the top-level "${n}" (rsync exclude /${n} in every run), as "^${n}" would`;
  assert.deepEqual(config.warnings, [
    `conf.xml:3: <filter><exclude expression="/logs">: ${says('logs')}`,
    `conf.xml:3: <filter><exclude expression="/tmp/*">: ${says('tmp')}`,
  ]);
});

test('an invalid regex in an enabled filter is skipped with a warning naming it, as sersync2 skipped it; so is an empty one', () => {
  const bad = parse(
    withSersync(
      REMOTE,
      '<filter start="true">\n<exclude expression="(.*\\.gz"/>\n<exclude expression="a)|(b"/>\n<exclude expression="^x"/>\n</filter>',
    ),
  );
  assert.deepEqual(
    bad.filter.excludes.map((r) => r.source),
    ['^x'],
  );
  assert.deepEqual(bad.warnings, [
    'conf.xml:3: <filter><exclude expression="(.*\\.gz">: invalid regular expression: Unterminated group; skipped as sersync2 skipped it, so it excludes nothing',
    'conf.xml:4: <filter><exclude expression="a)|(b">: invalid regular expression: Unmatched \')\'; skipped as sersync2 skipped it, so it excludes nothing',
  ]);
  const config = parse(withSersync(REMOTE, '<filter start="true"><exclude expression=""/><exclude/></filter>'));
  assert.deepEqual(config.filter, { enabled: true, excludes: [] });
  assert.equal(config.warnings.length, 2);
  assert.match(config.warnings[0] ?? '', /^conf\.xml:2: <filter><exclude expression="">: empty expression, ignored$/);
});

test('remotes: daemon, ssh and local kinds with their ids', () => {
  const daemon = parse(withSersync('<localpath watch="/d"><remote ip="h" name="mod/sub"/><remote ip="[::1]" name="m"/></localpath>'));
  assert.deepEqual(
    daemon.remotes.map((r) => [r.kind, r.id]),
    [
      ['daemon', 'h::mod/sub'],
      ['daemon', '[::1]::m'],
    ],
  );
  const ssh = parse(withSersync('<localpath watch="/d"><remote ip="h" name="backup"/></localpath><rsync><ssh start="true"/></rsync>'));
  assert.deepEqual(ssh.remotes, [{ kind: 'ssh', ip: 'h', name: 'backup', id: 'h:backup', line: 4 }]);
  const local = parse(withSersync('<localpath watch="/d"><remote name="/mirror//x/"/></localpath>'));
  assert.deepEqual(local.remotes, [{ kind: 'local', ip: '', name: '/mirror/x', id: '/mirror/x', line: 4 }]);
});

test('auth users are not part of the remote id', () => {
  const config = parse(withSersync(`${REMOTE}<rsync><auth start="true" users="backup" passwordfile="/etc/p"/></rsync>`));
  assert.equal(config.remotes[0]?.id, '10.0.0.2::www');
  assert.equal(config.rsync.auth.users, 'backup');
});

test('bad remotes are errors; a duplicate is a warning and dropped', () => {
  const lines = problemsOf(
    withSersync(
      `<localpath watch="/d">
<remote ip="h" name=""/>
<remote ip="" name="relative"/>
<remote name=""/>
<remote ip="-e sh" name="m"/>
<remote ip="h" name="--delete"/>
<remote ip="::1" name="m"/>
<remote ip="u@::1" name="m"/>
<remote name="/"/>
<remote name="/d/mirror"/>
<remote name="/"/>
</localpath>`,
    ),
  );
  assert.deepEqual(lines, [
    'conf.xml:5: <sersync><localpath><remote>: empty name; write the rsync module (the remote path with ssh), or an absolute directory without ip for a local mirror',
    'conf.xml:6: <sersync><localpath><remote name="relative">: no ip, and the name is not an absolute directory; write ip="host" for an rsync daemon, or name="/abs/dir" for a local mirror',
    'conf.xml:7: <sersync><localpath><remote>: empty name; write the rsync module (the remote path with ssh), or an absolute directory without ip for a local mirror',
    'conf.xml:8: <sersync><localpath><remote ip="-e sh">: starts with "-", so rsync would read it as an option',
    'conf.xml:9: <sersync><localpath><remote name="--delete">: starts with "-", so rsync would read it as an option',
    'conf.xml:12: <sersync><localpath><remote name="/">: mirroring into / is refused',
    'conf.xml:13: <sersync><localpath><remote name="/d/mirror">: the mirror and the watch directory /d contain one another; the mirror would sync into itself or delete the source',
    'conf.xml:14: <sersync><localpath><remote name="/">: mirroring into / is refused',
  ]);
  const dup = parse(withSersync('<localpath watch="/d"><remote ip="h" name="m"/>\n<remote ip="h" name="m"/></localpath>'));
  assert.equal(dup.remotes.length, 1);
  assert.deepEqual(dup.warnings, ['conf.xml:5: <sersync><localpath><remote>: the same destination as an earlier <remote> (h::m), ignored']);
});

test('no <sersync>, no <localpath>, no watch, no remote: each is an error', () => {
  assert.deepEqual(problemsOf('<head>\n<debug start="false"/>\n</head>'), [
    'conf.xml:1: <head>: no <sersync> element; add <sersync><localpath watch="/dir"><remote ip="host" name="module"/></localpath></sersync>',
  ]);
  assert.deepEqual(problemsOf(withSersync('<rsync/>')), [
    'conf.xml:3: <sersync>: no <localpath watch="/dir"> element, so there is nothing to watch',
  ]);
  assert.deepEqual(problemsOf(withSersync('<localpath watch=""><remote ip="h" name="m"/></localpath>')), [
    'conf.xml:4: <sersync><localpath watch="">: the watch directory is missing; write watch="/absolute/dir"',
  ]);
  assert.deepEqual(problemsOf(withSersync('<localpath watch="/">\n<remote ip="h" name="m"/></localpath>')), [
    'conf.xml:4: <sersync><localpath watch="/">: watching / is not supported (sersync2 refused it too); name a directory',
  ]);
  assert.deepEqual(problemsOf(withSersync('<localpath watch="/d">\n<!-- <remote ip="h" name="m"/> -->\n</localpath>')), [
    'conf.xml:4: <sersync><localpath>: no <remote>; add <remote ip="host" name="module"/> inside <localpath>',
  ]);
});

test('the watch path: one trailing slash stripped; a relative one is resolved against the cwd with a warning', () => {
  assert.equal(parse(withSersync('<localpath watch="/data/www/"><remote ip="h" name="m"/></localpath>')).watch, '/data/www');
  const rel = parse(withSersync('<localpath watch="site/"><remote ip="h" name="m"/></localpath>'), { cwd: '/srv' });
  assert.equal(rel.watch, '/srv/site');
  assert.deepEqual(rel.warnings, [
    'conf.xml:4: <sersync><localpath watch="site/">: relative path, resolved against the current directory: /srv/site',
  ]);
});

test('every <localpath> is a site with its own remotes; the extra ones are one warning (sersync2 ignored them)', () => {
  const config = parse(
    withSersync(
      `${REMOTE}\n<localpath watch="/other"><remote ip="x" name="y"/></localpath>\n<localpath watch="/third/"><remote name="/mirror"/></localpath>`,
    ),
  );
  assert.equal(config.watch, '/data/www');
  assert.deepEqual(
    config.remotes.map((r) => r.id),
    ['10.0.0.2::www'],
  );
  assert.deepEqual(
    config.sites.map((s) => [s.watch, s.remotes.map((r) => r.id), s.line]),
    [
      ['/data/www', ['10.0.0.2::www'], 4],
      ['/other', ['x::y'], 5],
      ['/third', ['/mirror'], 6],
    ],
  );
  assert.deepEqual(config.warnings, [
    'conf.xml:5: <sersync><localpath>: several <localpath>: sersync2 synced only the first and ignored the others; sersync-ts syncs them all, also /other, /third',
  ]);
});

test('one <localpath> is one site and no warning', () => {
  const config = parse(withSersync(REMOTE));
  assert.deepEqual(
    config.sites.map((s) => s.watch),
    ['/data/www'],
  );
  assert.deepEqual(config.warnings, []);
});

test('a <localpath> that repeats or nests in another is an error naming both lines', () => {
  assert.deepEqual(problemsOf(withSersync(`${REMOTE}\n<localpath watch="/data/www/"><remote ip="x" name="y"/></localpath>`)), [
    'conf.xml:5: <sersync><localpath watch="/data/www/">: the same directory as the <localpath watch="/data/www"> of line 4; its files would be synced twice, give each directory one <localpath>',
  ]);
  assert.deepEqual(problemsOf(withSersync(`${REMOTE}\n<localpath watch="/data/www/img"><remote ip="x" name="y"/></localpath>`)), [
    'conf.xml:5: <sersync><localpath watch="/data/www/img">: inside the <localpath watch="/data/www"> of line 4; its files would be synced twice, give each directory one <localpath>',
  ]);
  assert.deepEqual(problemsOf(withSersync(`${REMOTE}\n<localpath watch="/data"><remote ip="x" name="y"/></localpath>`)), [
    'conf.xml:5: <sersync><localpath watch="/data">: around the <localpath watch="/data/www"> of line 4; its files would be synced twice, give each directory one <localpath>',
  ]);
  // A sibling whose name only starts the same is no clash.
  assert.equal(parse(withSersync(`${REMOTE}\n<localpath watch="/data/www2"><remote ip="x" name="y"/></localpath>`)).sites.length, 2);
});

test('a local mirror inside or around another site`s root is an error (each would sync the other without end)', () => {
  assert.deepEqual(
    problemsOf(
      withSersync(`<localpath watch="/a"><remote name="/b/m"/></localpath>\n<localpath watch="/b"><remote name="/a/m"/></localpath>`),
    ),
    [
      'conf.xml:4: <sersync><localpath><remote name="/b/m">: the mirror and the <localpath watch="/b"> of another site contain one another; that site would sync the mirror again (or delete it)',
      'conf.xml:5: <sersync><localpath><remote name="/a/m">: the mirror and the <localpath watch="/a"> of another site contain one another; that site would sync the mirror again (or delete it)',
    ],
  );
  assert.equal(
    parse(
      withSersync(`<localpath watch="/a"><remote name="/srv/m"/></localpath>\n<localpath watch="/b"><remote name="/srv/n"/></localpath>`),
    ).sites.length,
    2,
  );
});

test('a user@ before a bare IPv6 address is a warning, and the address goes in brackets after the user', () => {
  const config = parse(withSersync('<localpath watch="/d"><remote ip="u@::1" name="m"/></localpath>'));
  assert.equal(config.remotes[0]?.ip, 'u@::1');
  assert.deepEqual(config.warnings, [
    'conf.xml:4: <sersync><localpath><remote ip="u@::1">: an IPv6 address without brackets; sersync-ts connects to u@[::1]',
  ]);
});

test('an ip with a port (IPv4, a host name, a bracketed IPv6) is refused: rsync has no port in host::module; a bare IPv6 address stays a warning', () => {
  const remote = (ip: string, rsync = '') => withSersync(`<localpath watch="/d"><remote ip="${ip}" name="m"/></localpath>${rsync}`);
  assert.deepEqual(problemsOf(remote('127.0.0.1:873')), [
    'conf.xml:4: <sersync><localpath><remote ip="127.0.0.1:873">: a port in ip: rsync\'s host::module form has no port; write ip="127.0.0.1" and set the port with <rsync><userDefinedPort start="true" port="873"/>',
  ]);
  assert.deepEqual(problemsOf(remote('u@mirror.example.com:8873')), [
    'conf.xml:4: <sersync><localpath><remote ip="u@mirror.example.com:8873">: a port in ip: rsync\'s host::module form has no port; write ip="u@mirror.example.com" and set the port with <rsync><userDefinedPort start="true" port="8873"/>',
  ]);
  assert.deepEqual(problemsOf(remote('[fd00::41]:873')), [
    'conf.xml:4: <sersync><localpath><remote ip="[fd00::41]:873">: a port in ip: rsync\'s host::module form has no port; write ip="[fd00::41]" and set the port with <rsync><userDefinedPort start="true" port="873"/>',
  ]);
  assert.match(
    problemsOf(remote('10.0.0.2:2222', '<rsync><ssh start="true"/></rsync>')).join('\n'),
    /rsync's host:path form has no port; write ip="10\.0\.0\.2" .*port="2222"/,
  );
  const v6 = parse(remote('fd00::41'));
  assert.deepEqual(v6.warnings, [
    'conf.xml:4: <sersync><localpath><remote ip="fd00::41">: an IPv6 address without brackets; sersync-ts connects to [fd00::41]',
  ]);
  assert.equal(parse(remote('[fd00::41]')).warnings.length, 0);
});

test('an element after a "#" on its line is read (XML has no # comments), with a warning; # text on its own line changes nothing', () => {
  const config = parse(
    withSersync(
      '<localpath watch="/d">\n<remote ip="10.0.0.1" name="m"/>\n  # <remote ip="10.9.9.9" name="old"/>\n  # old mirror:<remote ip="10.9.9.8" name="m"/>\n</localpath>\n# comment\n<rsync><timeout start="true" time="5"/></rsync> # trailing',
    ),
  );
  assert.deepEqual(
    config.remotes.map((r) => r.id),
    ['10.0.0.1::m', '10.9.9.9::old', '10.9.9.8::m'],
  );
  const hint =
    'a "#" before it on its line does not comment it out (XML has no # comments): this element is read and used; to disable it, wrap it in <!-- -->';
  assert.deepEqual(config.warnings, [
    `conf.xml:6: <sersync><localpath><remote>: ${hint}`,
    `conf.xml:7: <sersync><localpath><remote>: ${hint}`,
  ]);
});

test('unknown elements and attributes are warnings naming their path; repeated elements use the first', () => {
  const config = parse(
    withSersync(
      `${REMOTE}\n<rsync><timeout start="true" timeout="5"/><bogus/></rsync>`,
      '<foo/>\n<debug start="true"/>\n<debug start="false"/>',
    ),
  );
  assert.equal(config.debug, true);
  assert.deepEqual(config.warnings, [
    'conf.xml:2: <head><foo>: unknown element, ignored',
    'conf.xml:4: <debug>: repeated element, only the first one is used; this one is ignored',
    'conf.xml:7: <sersync><rsync><timeout>: unknown attribute "timeout", ignored',
    'conf.xml:7: <sersync><rsync><bogus>: unknown element, ignored',
  ]);
});

test('numbers: a bad port in an enabled element is an error, in a disabled one a warning', () => {
  const rsync = (start: string) => withSersync(`${REMOTE}\n<rsync>\n<userDefinedPort start="${start}" port="70000"/>\n</rsync>`);
  assert.deepEqual(problemsOf(rsync('true')), [
    'conf.xml:6: <sersync><rsync><userDefinedPort port="70000">: expected a port number 1-65535',
  ]);
  const off = parse(rsync('false'));
  assert.deepEqual(off.warnings, [
    'conf.xml:6: <sersync><rsync><userDefinedPort port="70000">: expected a port number 1-65535 (only a warning while this part is not enabled)',
  ]);
  assert.equal(off.rsync.port.port, 874);
});

test('<timeout time>: what rsync would refuse (or 0, rsync\'s "no timeout") runs with the default I/O timeout, with a warning', () => {
  const timeout = (time: string) => parse(withSersync(`${REMOTE}<rsync><timeout start="true" time="${time}"/></rsync>`));
  for (const bad of ['abc', '1.5', '1e3', '12s', '', '-5']) {
    const config = timeout(bad);
    assert.equal(config.rsync.timeout.enabled, false, bad);
    assert.deepEqual(config.warnings, [
      `conf.xml:4: <sersync><rsync><timeout time="${bad}">: expected whole seconds > 0 (rsync would refuse this and every sync fail); using the default I/O timeout, as with start="false"`,
    ]);
  }
  const zero = timeout('0');
  assert.equal(zero.rsync.timeout.enabled, false);
  assert.match(zero.warnings[0] ?? '', /time="0">: 0 turns rsync's I\/O timeout off; sersync-ts keeps its own default I\/O timeout/);
  assert.deepEqual(timeout(' 30 ').rsync.timeout, { enabled: true, seconds: 30 });
  // Off: not read by sersync2, not used here; only a warning about the odd value.
  const off = parse(withSersync(`${REMOTE}<rsync><timeout start="false" time="abc"/></rsync>`));
  assert.deepEqual(off.rsync.timeout, { enabled: false, seconds: 100 });
  assert.deepEqual(off.warnings, [
    'conf.xml:4: <sersync><rsync><timeout time="abc">: expected whole seconds > 0 (only a warning while this part is not enabled)',
  ]);
});

test('<crontab schedule>: read with atoi like sersync2; 0 or less, or no digits, is 600 minutes', () => {
  const crontab = (schedule: string) => parse(withSersync(`${REMOTE}<crontab start="true" schedule="${schedule}"/>`));
  for (const [raw, minutes, warning] of [
    ['30', 30, null],
    [' 45', 45, null],
    ['0', 600, 'not a number of minutes > 0, read as 600 (as sersync2 did)'],
    ['-5', 600, 'not a number of minutes > 0, read as 600 (as sersync2 did)'],
    ['abc', 600, 'not a number of minutes > 0, read as 600 (as sersync2 did)'],
    ['', 600, 'not a number of minutes > 0, read as 600 (as sersync2 did)'],
    ['10min', 10, 'not a whole number, read as 10 as sersync2 did (atoi)'],
    ['1.5', 1, 'not a whole number, read as 1 as sersync2 did (atoi)'],
    ['99999999', 525600, 'more than a year, read as 525600 minutes'],
  ] as const) {
    const config = crontab(raw);
    assert.equal(config.crontab.scheduleMinutes, minutes, raw);
    assert.deepEqual(config.warnings, warning === null ? [] : [`conf.xml:4: <sersync><crontab schedule="${raw}">: ${warning}`], raw);
  }
});

test('<crontab> off: its schedule and crontabfilter quirks are no warning (sersync2 never used them), the same value is read', () => {
  const off = (schedule: string) =>
    parse(
      withSersync(
        `${REMOTE}<crontab start="false" schedule="${schedule}"><crontabfilter start="yes"><exclude expression=""/></crontabfilter></crontab>`,
      ),
    );
  for (const [raw, minutes] of [
    ['0', 600],
    ['abc', 600],
    ['10min', 10],
    ['99999999', 525600],
  ] as const) {
    const config = off(raw);
    assert.equal(config.crontab.scheduleMinutes, minutes, raw);
    assert.deepEqual(config.warnings, [], raw);
  }
  // The start attribute itself is still read strictly: "True" is not on, and says so.
  assert.deepEqual(parse(withSersync(`${REMOTE}<crontab start="True" schedule="0"/>`)).warnings, [
    'conf.xml:4: <sersync><crontab start="True">: only the exact value "true" turns this on; read as false',
  ]);
});

test('failLog: minutes; an empty timeToExecute means 120 like sersync2; 0 or junk is 1 minute (sersync2 replayed every idle minute)', () => {
  assert.equal(parse(withSersync(`${REMOTE}<failLog path="/var/tmp/f.sh" timeToExecute=""/>`)).failLog.retryCapMinutes, 120);
  assert.deepEqual(parse(withSersync(`${REMOTE}<failLog path="/var/tmp/f.sh" timeToExecute="15"/>`)).failLog, {
    path: '/var/tmp/f.sh',
    retryCapMinutes: 15,
  });
  for (const raw of ['0', 'abc', '-3']) {
    const config = parse(withSersync(`${REMOTE}<failLog timeToExecute="${raw}"/>`));
    assert.equal(config.failLog.retryCapMinutes, 1);
    assert.deepEqual(config.warnings, [
      `conf.xml:4: <sersync><failLog timeToExecute="${raw}">: not a number of minutes > 0, read as 1 (sersync2 replayed its failLog every idle minute)`,
    ]);
  }
  assert.equal(parse(withSersync(`${REMOTE}<failLog timeToExecute="60 # an hour"/>`)).failLog.retryCapMinutes, 60);
  const rel = parse(withSersync(`${REMOTE}<failLog path="logs/fail.sh"/>`), { cwd: '/srv' });
  assert.equal(rel.failLog.path, '/srv/logs/fail.sh');
  assert.deepEqual(rel.warnings, [
    'conf.xml:4: <sersync><failLog path="logs/fail.sh">: relative path, resolved against the current directory: /srv/logs/fail.sh',
  ]);
  const empty = parse(withSersync(`${REMOTE}<failLog path="" timeToExecute="60"/>`));
  assert.equal(empty.failLog.path, '/tmp/rsync_fail_log.sh');
  assert.equal(empty.warnings.length, 1);
});

test('<host> is informational: a bad port is only a warning', () => {
  const config = parse(withSersync(REMOTE, '<host hostip="example" port="x"/>'));
  assert.deepEqual(config.host, { ip: 'example', port: 8008 });
  assert.deepEqual(config.warnings, ['conf.xml:2: <host port="x">: expected a port number 1-65535; the status endpoint uses 8008']);
});

test('a realtime filter with crontab on but no crontabfilter excludes is no warning: crontab stays on (--check notes it)', () => {
  const xml = (crontabfilter: string) =>
    withSersync(
      `${REMOTE}\n<crontab start="true" schedule="60">${crontabfilter}</crontab>`,
      '<filter start="true"><exclude expression="(.*)\\.gz"/></filter>',
    );
  const config = parse(xml('<crontabfilter start="false"><exclude expression="*.gz"/></crontabfilter>'));
  assert.equal(config.crontab.enabled, true);
  assert.deepEqual(config.warnings, []);
  const fine = parse(xml('<crontabfilter start="true"><exclude expression="*.gz"/></crontabfilter>'));
  assert.deepEqual(fine.warnings, []);
  assert.deepEqual(fine.crontab.filter, { enabled: true, excludes: ['*.gz'] });
});

test('auth: a relative password file is resolved against the watch dir; with ssh it is dropped with a warning', () => {
  const rel = parse(withSersync(`${REMOTE}<rsync><auth start="true" users="u" passwordfile="rsync.pas"/></rsync>`));
  assert.equal(rel.rsync.auth.passwordFile, '/data/www/rsync.pas');
  const ssh = parse(withSersync(`${REMOTE}\n<rsync><auth start="true" users="u" passwordfile="/etc/p"/><ssh start="true"/></rsync>`));
  assert.deepEqual(ssh.warnings, [
    'conf.xml:5: <sersync><rsync><auth passwordfile="/etc/p">: ignored with <ssh start="true">: rsync rejects --password-file over ssh (sersync2 passed it and every sync failed), so sersync-ts drops it',
  ]);
  assert.deepEqual(problemsOf(withSersync(`${REMOTE}<rsync><auth start="true" users="-x" passwordfile=""/></rsync>`)), [
    'conf.xml:4: <sersync><rsync><auth users="-x">: starts with "-", so rsync would read the destination as an option',
  ]);
});

test('commonParams: split like sh; empty is a warning; an unterminated quote is an error', () => {
  const quoted = parse(withSersync(`${REMOTE}<rsync><commonParams params="-artuz --exclude='my file' --bwlimit=1m"/></rsync>`));
  assert.deepEqual(quoted.rsync.commonParams, ['-artuz', '--exclude=my file', '--bwlimit=1m']);
  const empty = parse(withSersync(`${REMOTE}<rsync><commonParams params=""/></rsync>`));
  assert.deepEqual(empty.rsync.commonParams, []);
  assert.match(empty.warnings.join('\n'), /^conf\.xml:4: <sersync><rsync><commonParams params="">: empty: rsync then gets no -a or -r/);
  assert.deepEqual(problemsOf(withSersync(`${REMOTE}<rsync><commonParams params="-a 'x"/></rsync>`)), [
    `conf.xml:4: <sersync><rsync><commonParams params="-a 'x">: unterminated single quote at character 4; the value is split into words like sh does`,
  ]);
  const shell = parse(withSersync(`${REMOTE}<rsync><commonParams params="-a $OPTS"/></rsync>`));
  assert.deepEqual(shell.warnings, [
    'conf.xml:4: <sersync><rsync><commonParams params="-a $OPTS">: shell syntax ($) is passed literally: sersync-ts runs commands without a shell',
  ]);
});

test('<tuning>: bad values and unknown watcher names are errors', () => {
  assert.deepEqual(
    problemsOf(
      withSersync(REMOTE, '<tuning quietMs="-1" maxWaitMs="x" maxChildrenPerDir="0" maxPendingPaths="many" watcher="foo" stateDir="rel"/>'),
    ),
    [
      'conf.xml:2: <tuning quietMs="-1">: expected whole milliseconds >= 0',
      'conf.xml:2: <tuning maxWaitMs="x">: expected whole milliseconds > 0',
      'conf.xml:2: <tuning watcher="foo">: expected "chokidar" or "dirs"',
      'conf.xml:2: <tuning stateDir="rel">: expected an absolute directory',
      'conf.xml:2: <tuning maxChildrenPerDir="0">: expected a whole number > 0',
      'conf.xml:2: <tuning maxPendingPaths="many">: expected a whole number > 0',
    ],
  );
  assert.deepEqual(problemsOf(withSersync(REMOTE, '<tuning quietMs="500" maxWaitMs="100"/>')), [
    'conf.xml:2: <tuning maxWaitMs="100">: must not be less than quietMs (500)',
  ]);
  assert.deepEqual(parse(withSersync(REMOTE, '<tuning quietMs="0" stateDir=""/>')).tuning, { ...DEFAULT_TUNING, quietMs: 0 });
});

test('all inotify toggles off is a warning', () => {
  const toggles = ['delete', 'createFolder', 'createFile', 'closeWrite', 'moveFrom', 'moveTo', 'attrib', 'modify'];
  const config = parse(withSersync(REMOTE, `<inotify>${toggles.map((t) => `<${t} start="false"/>`).join('')}</inotify>`));
  assert.ok(Object.values(config.inotify).every((on) => on === false));
  assert.deepEqual(config.warnings, ['conf.xml:2: <inotify>: every event is off, so nothing is synced in real time (only -r and crontab)']);
});

test('plugins: the enabled one is validated strictly, the others only warn', () => {
  const blocks = `<plugin name="socket"><localpath watch="/s">
<deshost ip="10.0.0.9" port="x"/>
</localpath></plugin>
<plugin name="command"><param prefix="/bin/sh" suffix="" ignoreError="true"/><filter start="true">
<include expression="(bad"/>
</filter></plugin>`;
  const inactive = parse(withSersync(REMOTE, blocks));
  assert.deepEqual(inactive.warnings, [
    'conf.xml:3: <plugin name="socket"><localpath><deshost port="x">: expected a port number 1-65535 (only a warning while this part is not enabled)',
    'conf.xml:6: <plugin name="command"><filter><include expression="(bad">: invalid regular expression: Unterminated group; not used while this part is off',
  ]);
  assert.deepEqual(inactive.plugins.socket, { watch: '/s', hosts: [] });
  assert.deepEqual(problemsOf(withSersync(`${REMOTE}<plugin start="true" name="socket"/>`, blocks)), [
    'conf.xml:2: <plugin name="socket"><localpath>: no usable <deshost ip="..." port="..."/>; the socket plugin has nowhere to send',
    'conf.xml:3: <plugin name="socket"><localpath><deshost port="x">: expected a port number 1-65535',
  ]);
});

test('an enabled plugin needs its block; an unknown block name is a warning', () => {
  assert.deepEqual(problemsOf(withSersync(`${REMOTE}\n<plugin start="true" name="refreshCDN"/>`)), [
    'conf.xml:5: <sersync><plugin>: no <plugin name="refreshCDN"> block under <head>; the plugin needs one',
  ]);
  const config = parse(withSersync(REMOTE, '<plugin name="nope"/>'));
  assert.deepEqual(config.warnings, [
    'conf.xml:2: <plugin name="nope">: unknown plugin (known: command, socket, refreshCDN, http), ignored',
  ]);
});

test('refreshCDN: every attribute is required when enabled; the match regex is checked', () => {
  const lines = problemsOf(
    withSersync(
      `${REMOTE}<plugin start="true" name="refreshCDN"/>`,
      `<plugin name="refreshCDN"><localpath watch="/site/">
<cdninfo domainname="cdn.example" port="80" username="" passwd="p"/>
<regexurl regex="true" match="([a-z]"/>
</localpath></plugin>`,
    ),
  );
  assert.deepEqual(lines, [
    'conf.xml:2: <plugin name="refreshCDN"><localpath>: no <sendurl base="...">',
    'conf.xml:3: <plugin name="refreshCDN"><localpath><cdninfo username="">: missing username',
    'conf.xml:4: <plugin name="refreshCDN"><localpath><regexurl match="([a-z]">: invalid regular expression: Unterminated group',
  ]);
});

test('http plugin: <localpath watch><deshost url>, an http(s) URL', () => {
  const xml = (url: string) =>
    withSersync(
      `${REMOTE}<plugin start="true" name="http"/>`,
      `<plugin name="http"><localpath watch="/data/www">\n<deshost url="${url}"/></localpath></plugin>`,
    );
  assert.deepEqual(parse(xml('https://hooks.example/x?a=1')).plugins.http, { watch: '/data/www', url: 'https://hooks.example/x?a=1' });
  assert.deepEqual(problemsOf(xml('ftp://x/')), [
    'conf.xml:3: <plugin name="http"><localpath><deshost url="ftp://x/">: expected an http:// or https:// URL',
  ]);
  assert.deepEqual(problemsOf(xml('')), ['conf.xml:3: <plugin name="http"><localpath><deshost url="">: missing url']);
});

test("a plugin's own watch directory differing from the sync one is reported (sersync2 swapped them silently)", () => {
  const config = parse(
    withSersync(
      `${REMOTE}<plugin start="true" name="socket"/>`,
      '<plugin name="socket"><localpath watch="/elsewhere"><deshost ip="1.2.3.4" port="9"/></localpath></plugin>',
    ),
  );
  assert.equal(config.watch, '/data/www');
  assert.deepEqual(config.warnings, [
    'conf.xml:2: <plugin name="socket">: its <localpath watch="/elsewhere"> differs from <sersync><localpath watch="/data/www">; sersync2 silently watched the plugin\'s directory instead, sersync-ts watches and syncs /data/www',
  ]);
});

test('standalone plugin (-m): no <sersync> needed, the plugin watches its own directory', () => {
  const socketOnly = '<head><plugin name="socket"><localpath watch="/s/"><deshost ip="1.2.3.4" port="9000"/></localpath></plugin></head>';
  const config = parse(socketOnly, { standalonePlugin: 'socket' });
  assert.equal(config.watch, '/s');
  assert.deepEqual(config.remotes, []);
  assert.deepEqual(config.plugins.socket?.hosts, [{ ip: '1.2.3.4', port: 9000 }]);
  assert.match(problemsOf(socketOnly).join('\n'), /no <sersync> element/);
  const command = parse(
    '<head><sersync><localpath watch="/d"/></sersync><plugin name="command"><param prefix="/bin/echo"/></plugin></head>',
    {
      standalonePlugin: 'command',
    },
  );
  assert.equal(command.watch, '/d');
  assert.deepEqual(command.plugins.command?.prefix, ['/bin/echo']);
  assert.deepEqual(problemsOf('<head>\n<sersync><localpath watch="/d"/></sersync></head>', { standalonePlugin: 'command' }), [
    'conf.xml:1: <head>: no <plugin name="command"> block under <head>; the plugin needs one',
  ]);
});

test('every problem is reported at once, in file order, with exit code 78', () => {
  const xml = `<head>
<tuning watcher="inotify"/>
<filter start="true"><exclude expression="[z-a]"/></filter>
<sersync>
<localpath watch="/d"><remote ip="" name="x"/></localpath>
<rsync><userDefinedPort start="true" port="0"/></rsync>
</sersync>
</head>`;
  let caught: unknown;
  try {
    parse(xml);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof SersyncError);
  assert.equal(caught.code, 'CONFIG_INVALID');
  assert.equal(caught.exitCode, 78);
  assert.equal(
    caught.message,
    [
      'conf.xml:2: <tuning watcher="inotify">: expected "chokidar" or "dirs"',
      'conf.xml:5: <sersync><localpath><remote name="x">: no ip, and the name is not an absolute directory; write ip="host" for an rsync daemon, or name="/abs/dir" for a local mirror',
      'conf.xml:6: <sersync><rsync><userDefinedPort port="0">: expected a port number 1-65535',
    ].join('\n'),
  );
});

test('not XML, a wrong root, binary data and oversized input are CONFIG_INVALID with a line where there is one', () => {
  assert.deepEqual(problemsOf('<head>\n<sersync>\n<localpath watch="/d">\n</sersync>\n</head>'), [
    "conf.xml:4: not valid XML: Expected closing tag 'localpath' (opened in line 3, col 1) instead of closing tag 'sersync'.",
  ]);
  assert.deepEqual(problemsOf('\n<config>\n<head2/>\n</config>'), [
    "conf.xml:2: <config>: the root element must be <head> (or contain <head>), as in sersync2's confxml.xml",
  ]);
  assert.deepEqual(problemsOf('# only words'), ['conf.xml:1: not valid XML: Start tag expected.']);
  assert.deepEqual(problemsOf(Buffer.from('<head>\n\n<a\0/></head>', 'latin1')), [
    'conf.xml:3: holds NUL bytes, so it is binary data, not a confxml.xml; is this the right file?',
  ]);
  assert.deepEqual(problemsOf(Buffer.from('\xff\xfe<\0h\0', 'latin1')), [
    'conf.xml:1: encoded as UTF-16; save it as UTF-8 (or ISO-8859-1)',
  ]);
  assert.deepEqual(problemsOf(Buffer.alloc(1024 * 1024 + 1, 0x20)), [
    'conf.xml: 1048577 bytes is too large for a confxml.xml (limit 1048576); is this the right file?',
  ]);
});

test('a <head> inside another root element is accepted, as sersync2 did', () => {
  const config = parse(`<config>\n<head>${withSersync(REMOTE).slice('<head>'.length)}</config>`);
  assert.equal(config.watch, '/data/www');
});

test('the Config is deeply frozen', () => {
  const config = parse(fixture('tutorial-rsyncd.xml'));
  const walk = (value: unknown, where: string): void => {
    if (value === null || typeof value !== 'object') return;
    assert.ok(Object.isFrozen(value), `${where} is not frozen`);
    for (const [k, v] of Object.entries(value)) walk(v, `${where}.${k}`);
  };
  walk(config, 'config');
  assert.throws(() => (config.remotes as Config['remotes'][number][]).push(config.remotes[0] as Config['remotes'][number]), TypeError);
  assert.throws(() => {
    (config.rsync.timeout as { seconds: number }).seconds = 1;
  }, TypeError);
  assert.ok(config.filter.excludes[0]?.regex.test('a.svn'), 'frozen regexes still match');
});
