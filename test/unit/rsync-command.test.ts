import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Remote, RsyncSettings } from '../../src/config/model.ts';
import {
  type CommandContext,
  MAX_TREE_RULES,
  planDelete,
  planFull,
  sshControlPathIn,
  sshMasterArgs,
  sshSocketBase,
  planUpdate,
  protectRule,
  withoutUpdateFlag,
  bytesSentFromStats,
} from '../../src/sync/rsync-command.ts';
import { classifyRsyncExit } from '../../src/sync/rsync-exit.ts';

const rsync: RsyncSettings = {
  commonParams: ['-artuz'],
  auth: { enabled: false, users: 'root', passwordFile: '/etc/rsync.pas' },
  port: { enabled: false, port: 874 },
  timeout: { enabled: false, seconds: 100 },
  ssh: { enabled: false, options: [] },
};
const daemon: Remote = { kind: 'daemon', ip: '10.0.0.2', name: 'www', id: '10.0.0.2::www', line: 1 };
const ctx = (over: Partial<CommandContext> = {}): CommandContext => ({
  watch: '/data/www',
  remote: daemon,
  rsync,
  deletes: true,
  filters: ['--exclude=*~'],
  defaultTimeoutSeconds: 300,
  ...over,
});
const stdinItems = (b: Buffer | null) => (b ? b.toString('latin1').split('\0').slice(0, -1) : null);

test('update run: files-from on stdin, NUL-separated, every entry behind a slash', () => {
  const run = planUpdate(ctx(), ['#notes', ';x', 'a b/$(x)', 'dir']);
  assert.deepEqual(run.args, [
    '-artz',
    '--timeout=300',
    '--contimeout=30',
    '--sockopts=TCP_NODELAY',
    '--force',
    '--modify-window=-1',
    '--stats',
    '--from0',
    '--files-from=-',
    '--exclude=*~',
    '/data/www/',
    '10.0.0.2::www',
  ]);
  assert.deepEqual(stdinItems(run.input), ['/#notes', '/;x', '/a b/$(x)', '/dir']);
});

test('update run with directories: include rules on stdin instead of --files-from, temporaries still excluded first', () => {
  const run = planUpdate(ctx(), ['new dir', 'a/w[1]', 'a/#x.txt', ';y'], [], new Set(['new dir', 'a/w[1]']));
  assert.deepEqual(run.args, [
    '-artz',
    '--timeout=300',
    '--contimeout=30',
    '--sockopts=TCP_NODELAY',
    '--force',
    '--modify-window=-1',
    '--stats',
    '--from0',
    '--exclude=*~',
    '--include-from=-',
    '--exclude=*',
    '/data/www/',
    '10.0.0.2::www',
  ]);
  assert.deepEqual(stdinItems(run.input), ['/new dir', '/new dir/***', '/a/', '/a/w\\[1]', '/a/w\\[1]/***', '/a/#x.txt', '/;y']);
});

test('an exclude file goes after the other excludes, and --from0 comes before it (rsync reads it as it parses it)', () => {
  const forms = [
    planUpdate(ctx(), ['f'], [], new Set(), '/tmp/x/excludes'),
    planUpdate(ctx(), ['d'], [], new Set(['d']), '/tmp/x/excludes'),
    planFull(ctx(), ['--exclude=*.php'], '/tmp/x/excludes'),
  ];
  for (const { args } of forms) {
    const at = args.indexOf('--exclude-from=/tmp/x/excludes');
    assert.ok(at > 0, args.join(' '));
    assert.ok(args.indexOf('--from0') >= 0 && args.indexOf('--from0') < at, args.join(' '));
    assert.ok(args.indexOf('--exclude=*~') < at, 'the path filter first');
    assert.ok(!args.slice(at + 1).some((a) => a.startsWith('--exclude=') && a !== '--exclude=*'), 'then nothing but the rules');
  }
  assert.ok(!planFull(ctx()).args.includes('--from0'), 'a full sync without the file reads no list');
});

test('update run with directories keeps --files-from when rules would cost more', () => {
  const many = Array.from({ length: MAX_TREE_RULES }, (_, i) => `d/f${i}`);
  assert.ok(planUpdate(ctx(), ['t', ...many], [], new Set(['t'])).args.includes('--files-from=-'), 'too many rules');
  assert.ok(planUpdate(ctx(), ['f'], [], new Set()).args.includes('--files-from=-'), 'no directory');
});

test('update run compares mtimes to the nanosecond, unless commonParams already decide the comparison', () => {
  const has = (params: string[]) =>
    planUpdate(ctx({ rsync: { ...rsync, commonParams: params } }), ['f']).args.includes('--modify-window=-1');
  assert.equal(has(['-artz']), true);
  for (const params of [['-artzc'], ['-a', '--checksum'], ['-aI'], ['-a', '--modify-window=2'], ['-a', '-@', '1']]) {
    assert.equal(has(params), false, params.join(' '));
  }
  assert.ok(!planFull(ctx()).args.includes('--modify-window=-1'), 'full syncs keep whole seconds');
});

test('update run adds -r when commonParams lack it (with --files-from even -a does not recurse)', () => {
  const run = planUpdate(ctx({ rsync: { ...rsync, commonParams: ['-az'] } }), ['d']);
  assert.equal(run.args[0], '-az');
  assert.equal(run.args[1], '-r');
  const withR = planUpdate(ctx({ rsync: { ...rsync, commonParams: ['-a', '--recursive'] } }), ['d']);
  assert.equal(withR.args.filter((a) => a === '-r').length, 0);
});

test('delete run: ancestors, the path and everything below it, wildcards escaped, transfers nothing', () => {
  const run = planDelete(ctx(), [
    { path: 'a/b/w[1].txt', tree: true },
    { path: 'back\\slash', tree: false },
  ]);
  assert.deepEqual(stdinItems(run.input), ['/a/', '/a/b/', '/a/b/w\\[1].txt', '/a/b/w\\[1].txt/***', '/back\\slash']);
  for (const flag of ['--delete', '--existing', '--ignore-existing', '--include-from=-', '--exclude=*']) {
    assert.ok(run.args.includes(flag), flag);
  }
  assert.ok(run.args.indexOf('--exclude=*~') < run.args.indexOf('--include-from=-'), 'temporaries stay protected');
  assert.ok(run.args.indexOf('--include-from=-') < run.args.indexOf('--exclude=*'));
});

test('full sync: --delete only when removals propagate, crontab excludes appended', () => {
  assert.deepEqual(planFull(ctx(), ['--exclude=*.php']).args, [
    '-artz',
    '--timeout=300',
    '--contimeout=30',
    '--sockopts=TCP_NODELAY',
    '--delete',
    '--force',
    '--stats',
    '--info=progress2',
    '--exclude=*~',
    '--exclude=*.php',
    '/data/www/',
    '10.0.0.2::www',
  ]);
  assert.ok(!planFull(ctx({ deletes: false })).args.includes('--delete'));
});

test('daemon auth, port and timeout as sersync2 places them (SPEC §3.1), without a shell', () => {
  const s: RsyncSettings = {
    ...rsync,
    auth: { enabled: true, users: 'rsync_backup', passwordFile: '/etc/rsync.pas' },
    port: { enabled: true, port: 874 },
    timeout: { enabled: true, seconds: 100 },
  };
  const args = planFull(ctx({ rsync: s })).args;
  assert.ok(args.includes('--port=874'));
  assert.ok(args.includes('--timeout=100'));
  assert.deepEqual(args.slice(-3), ['--password-file=/etc/rsync.pas', '/data/www/', 'rsync_backup@10.0.0.2::www']);
});

test('daemon runs turn Nagle off on their own socket, unless commonParams set socket options; ssh and local runs never', () => {
  assert.ok(planFull(ctx()).args.includes('--sockopts=TCP_NODELAY'));
  const own = planFull(ctx({ rsync: { ...rsync, commonParams: ['-artz', '--sockopts=SO_SNDBUF=65536'] } })).args;
  assert.deepEqual(
    own.filter((a) => a.startsWith('--sockopts')),
    ['--sockopts=SO_SNDBUF=65536'],
  );
  const ssh: Remote = { kind: 'ssh', ip: '10.0.0.2', name: '/backup/www', id: '10.0.0.2:/backup/www', line: 1 };
  const local: Remote = { kind: 'local', ip: '', name: '/srv/mirror', id: '/srv/mirror', line: 1 };
  for (const remote of [ssh, local]) assert.ok(!planFull(ctx({ remote })).args.some((a) => a.startsWith('--sockopts')));
});

test('ssh mode: host:path, -e ssh with the port and options, never --password-file', () => {
  const s: RsyncSettings = {
    ...rsync,
    auth: { enabled: true, users: 'root', passwordFile: '/etc/rsync.pas' },
    port: { enabled: true, port: 2222 },
    ssh: { enabled: true, options: ['-i', '/root/my key'] },
  };
  const remote: Remote = { kind: 'ssh', ip: '10.0.0.2', name: '/backup/www', id: '10.0.0.2:/backup/www', line: 1 };
  const args = planFull(ctx({ rsync: s, remote })).args;
  assert.equal(args[args.indexOf('-e') + 1], "ssh -p 2222 -i '/root/my key'");
  assert.ok(!args.some((a) => a.startsWith('--password-file')));
  assert.ok(!args.some((a) => a.startsWith('--port')));
  assert.equal(args.at(-1), 'root@10.0.0.2:/backup/www');
});

test('ssh mode: the runs of a remote share one master connection, unless <ssh options> say how', () => {
  const remote: Remote = { kind: 'ssh', ip: '10.0.0.2', name: '/backup/www', id: '10.0.0.2:/backup/www', line: 1 };
  const shell = (options: string[]) => {
    const args = planFull({
      ...ctx({ rsync: { ...rsync, ssh: { enabled: true, options } }, remote }),
      sshControlPath: '/var/lib/x/ssh-0123456789abcdef',
    }).args;
    return args[args.indexOf('-e') + 1];
  };
  // The runs join the site's master or connect on their own; none of them becomes a master (see SshMaster).
  assert.equal(
    shell([]),
    'ssh -o ControlMaster=no -o ControlPath=/var/lib/x/ssh-0123456789abcdef -o ServerAliveInterval=5 -o ServerAliveCountMax=3',
  );
  assert.equal(
    shell(['-o', 'ServerAliveInterval=30']),
    'ssh -o ServerAliveInterval=30 -o ControlMaster=no -o ControlPath=/var/lib/x/ssh-0123456789abcdef',
  );
  const withBase = (options: string[]) =>
    sshSocketBase({
      ...ctx({ rsync: { ...rsync, ssh: { enabled: true, options } }, remote }),
      sshSocketBase: '/var/lib/x/ssh-0123456789abcdef',
    });
  assert.equal(withBase([]), '/var/lib/x/ssh-0123456789abcdef');
  assert.equal(withBase(['-o', 'ControlMaster=no']), null, '<ssh options> that say how get no master');
  assert.equal(withBase(['-M']), null, '-M is ControlMaster');
  assert.equal(withBase(['-qS', '/tmp/ctl']), null, '-S is ControlPath');
  assert.equal(withBase(['-oServerAliveInterval=9', '-i', '/k/MS']), '/var/lib/x/ssh-0123456789abcdef', 'an S after -o, a path: not flags');
  for (const words of [['-lSteve'], ['-iServerKey'], ['-J', 'Srv'], ['-EStderr.log'], ['-i', '-MyKey'], ['-4C', '-p', '22']]) {
    assert.equal(withBase(words), '/var/lib/x/ssh-0123456789abcdef', `${words.join(' ')}: an argument, not -M or -S`);
  }
  assert.equal(withBase(['-4qM']), null, 'M among other flags');
  assert.equal(
    sshSocketBase({ ...ctx({ rsync: { ...rsync, ssh: { enabled: true, options: [] } } }), sshSocketBase: '/x/ssh-1' }),
    null,
    'not ssh',
  );
  // A socket path ssh could not bind: no shared connection.
  const path = sshControlPathIn('/var/lib/sersync-ts', ['/www', 'h:/m', ['-i', 'a']]);
  assert.match(path ?? '', /^\/var\/lib\/sersync-ts\/ssh-[0-9a-f]{16}$/);
  // Another key (or site) is another connection; the same is the same.
  assert.notEqual(sshControlPathIn('/var/lib/sersync-ts', ['/www', 'h:/m', ['-i', 'b']]), path);
  assert.equal(sshControlPathIn('/var/lib/sersync-ts', ['/www', 'h:/m', ['-i', 'a']]), path);
  assert.equal(sshControlPathIn(`/${'d'.repeat(60)}`, []), null);
  assert.equal(sshControlPathIn('/srv/state%d', []), null);
  assert.equal(sshControlPathIn('/srv/my state', []), null, 'ssh splits an -o value at blanks');
});

test("ssh mode: the master connection has the runs' port, options and target, no command and no prompt", () => {
  const remote: Remote = { kind: 'ssh', ip: 'bob@[fe80::1]', name: '/srv', id: 'bob@[fe80::1]:/srv', line: 1 };
  const args = sshMasterArgs(
    ctx({
      rsync: { ...rsync, port: { enabled: true, port: 2222 }, ssh: { enabled: true, options: ['-i', '/k', '-o', 'BatchMode=no'] } },
      remote,
    }),
    '/var/lib/x/ssh-0123456789abcdef-1-ab',
  );
  assert.deepEqual(args, [
    '-p',
    '2222',
    '-o',
    'ControlMaster=yes',
    '-o',
    'ControlPersist=no',
    '-o',
    'ControlPath=/var/lib/x/ssh-0123456789abcdef-1-ab',
    '-i',
    '/k',
    '-o',
    'BatchMode=no',
    '-o',
    'BatchMode=yes',
    '-o',
    'ServerAliveInterval=5',
    '-o',
    'ServerAliveCountMax=3',
    '-N',
    'bob@fe80::1',
  ]);
});

test('local remote (extension) and IPv6 literals', () => {
  const local: Remote = { kind: 'local', ip: '', name: '/srv/mirror', id: '/srv/mirror', line: 1 };
  assert.deepEqual(planFull(ctx({ remote: local })).args.slice(-2), ['/data/www/', '/srv/mirror/']);
  const v6: Remote = { kind: 'daemon', ip: 'fe80::1', name: 'www', id: 'fe80::1::www', line: 1 };
  assert.equal(planFull(ctx({ remote: v6 })).args.at(-1), '[fe80::1]::www');
  const withUser: Remote = { kind: 'ssh', ip: 'bob@fe80::1', name: '/srv', id: 'bob@fe80::1:/srv', line: 1 };
  assert.equal(planFull(ctx({ remote: withUser })).args.at(-1), 'bob@[fe80::1]:/srv');
  const bracketed: Remote = { kind: 'ssh', ip: 'bob@[fe80::1]', name: '/srv', id: 'bob@[fe80::1]:/srv', line: 1 };
  assert.equal(planFull(ctx({ remote: bracketed })).args.at(-1), 'bob@[fe80::1]:/srv');
});

test('rsync exit codes: 23 and 24 are partial, never ok; signals retry; auth is a config problem', () => {
  assert.equal(classifyRsyncExit({ exitCode: 0 }).verdict, 'ok');
  assert.equal(classifyRsyncExit({ exitCode: 23 }).verdict, 'partial');
  assert.equal(classifyRsyncExit({ exitCode: 24 }).verdict, 'partial');
  assert.equal(classifyRsyncExit({ exitCode: 5 }).verdict, 'config');
  assert.equal(classifyRsyncExit({ exitCode: 10 }).verdict, 'retry');
  assert.equal(classifyRsyncExit({ exitCode: 30 }).verdict, 'retry');
  assert.equal(classifyRsyncExit({ exitCode: 255 }).verdict, 'retry');
  assert.equal(classifyRsyncExit({ exitCode: 0, signal: 'SIGKILL' }).verdict, 'retry');
  assert.equal(classifyRsyncExit({ exitCode: 99 }).verdict, 'retry');
});

test('-u is dropped from commonParams: a copy taken mid-write must not win over the finished file', () => {
  assert.deepEqual(withoutUpdateFlag(['-artuz', '--update', '--bwlimit=100', '-u']), { params: ['-artz', '--bwlimit=100'], dropped: true });
  assert.deepEqual(withoutUpdateFlag(['-az', '--numeric-ids']), { params: ['-az', '--numeric-ids'], dropped: false });
});

test("bytes sent come from rsync's --stats", () => {
  assert.equal(bytesSentFromStats('Number of files: 3\nTotal bytes sent: 1,234,567\nTotal bytes received: 35'), 1234567);
  assert.equal(bytesSentFromStats('nothing'), 0);
});

test('a protect rule (held deletions below a mount point) names the path as rsync reads arguments: UTF-8, escaped', () => {
  assert.equal(protectRule(Buffer.from('données/w[1]', 'utf8').toString('latin1')), '--filter=- /données/w\\[1]/***');
  assert.equal(protectRule(Buffer.from([0x66, 0xff]).toString('latin1')), null, 'not valid UTF-8: no argument can name it');
});
