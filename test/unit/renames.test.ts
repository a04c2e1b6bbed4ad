import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import PQueue from 'p-queue';
import pino from 'pino';
import { Aggregator, type Batch, type ChangeHint, MOVES_QUIET_MS } from '../../src/aggregate/aggregator.ts';
import type { Remote, RsyncSettings } from '../../src/config/model.ts';
import { SHIPPED_TOGGLES } from '../../src/config/parse-config.ts';
import { NOTHING_HELD } from '../../src/sync/deletion-guard.ts';
import type { DiskProbe } from '../../src/sync/disk-probe.ts';
import {
  LEAD_MADE_DIRECTORY,
  planRename,
  planRenameDelete,
  renameLeavesLinks,
  splitRename,
  totalFileSizeFromStats,
} from '../../src/sync/plan-rename.ts';
import type { ProcessResult, ProcessRunner, RunOptions } from '../../src/sync/process-runner.ts';
import { RemoteLane } from '../../src/sync/remote-lane.ts';
import type { CommandContext } from '../../src/sync/rsync-command.ts';
import { CloseWriteFilter } from '../../src/watch/close-write.ts';
import { loadNativeInotify } from '../../src/watch/dir-watch-backend.ts';
import { DirWatcher } from '../../src/watch/dir-watcher.ts';
import { MAX_OPEN_MOVES, MovePairs } from '../../src/watch/move-pairs.ts';
import type { WatchEvent } from '../../src/watch/watcher.ts';
import { FakeClock } from './support/fake-clock.ts';

/** Issue 18 item 1: pairing moves, rename entries in the aggregator, the rename run's plan, and the lane's order. */

const LIMITS = { quietMs: 100, maxWaitMs: 2000, maxChildrenPerDir: 100, maxPendingPaths: 1000 };
const removedDir: ChangeHint = { tree: true, removed: true, created: false };
const movedDir = (from: string): ChangeHint => ({ tree: true, removed: false, created: true, renamedFrom: from });

function aggregator() {
  const clock = new FakeClock();
  const agg = new Aggregator(LIMITS, clock, () => {});
  return { clock, agg, take: (): Batch => agg.take() as Batch };
}

test('MovePairs: a moved-to half finds its moved-from half by cookie, once; types must agree; old halves drop out', () => {
  const pairs = new MovePairs();
  pairs.movedFrom(7, 'a', true);
  assert.equal(pairs.movedTo(8, true), null);
  assert.equal(pairs.movedTo(7, false), null, 'a file cannot be the other half of a directory');
  pairs.movedFrom(9, 'x.txt', false);
  assert.equal(pairs.movedTo(9, false), 'x.txt');
  assert.equal(pairs.movedTo(9, false), null);
  for (let c = 100; c < 100 + MAX_OPEN_MOVES + 1; c++) pairs.movedFrom(c, `m${c}`, false);
  assert.equal(pairs.movedTo(100, false), null, 'the oldest half was dropped');
  assert.equal(pairs.movedTo(101, false), 'm101');
});

test('aggregator: a move whose old name is pending as a removal becomes a rename entry', () => {
  const { agg, take } = aggregator();
  agg.add('photos', removedDir);
  agg.add('photos-2026', movedDir('photos'));
  assert.deepEqual(take().entries, [
    { path: 'photos', tree: true, deletes: true, removalsOnly: true },
    { path: 'photos-2026', tree: true, deletes: false, renamedFrom: 'photos' },
  ]);
});

test('aggregator: a move across batches is a plain new path', () => {
  const { agg, take } = aggregator();
  agg.add('a', removedDir);
  take();
  agg.add('b', movedDir('a'));
  assert.deepEqual(take().entries, [{ path: 'b', tree: true, deletes: false }]);
});

test('aggregator: a chain a→b→c sends c plainly and deletes a; renames come in the order of the moves (the deploy swap)', () => {
  const { agg, take } = aggregator();
  agg.add('a', removedDir);
  agg.add('b', movedDir('a'));
  agg.add('b', removedDir);
  agg.add('c', movedDir('b'));
  assert.deepEqual(take().entries, [
    { path: 'a', tree: true, deletes: true, removalsOnly: true },
    { path: 'c', tree: true, deletes: false },
  ]);
  // mv site site.old; mv site.new site: site.old must be built from the remote's site before site is rewritten.
  agg.add('site', removedDir);
  agg.add('site.old', movedDir('site'));
  agg.add('site.new', removedDir);
  agg.add('site', movedDir('site.new'));
  const renames = take().entries.filter((e) => e.renamedFrom !== undefined);
  assert.deepEqual(
    renames.map((e) => [e.path, e.renamedFrom, e.deletes]),
    [
      ['site.old', 'site', false],
      ['site', 'site.new', true],
    ],
  );
  // The watcher may report the new site before site.old (its check ran first): site.old still goes first.
  agg.add('site', removedDir);
  agg.add('site.new', removedDir);
  agg.add('site', movedDir('site.new'));
  agg.add('site.old', movedDir('site'));
  assert.deepEqual(
    take()
      .entries.filter((e) => e.renamedFrom !== undefined)
      .map((e) => [e.path, e.renamedFrom]),
    [
      ['site.old', 'site'],
      ['site', 'site.new'],
    ],
  );
});

test('aggregator: a rename swallowed by a directory above, or put back after a failure, is plain', () => {
  const { agg, take } = aggregator();
  agg.add('d', { tree: true, removed: false, created: true });
  agg.add('d/x', removedDir);
  agg.add('d/y', movedDir('d/x'));
  assert.deepEqual(take().entries, [{ path: 'd', tree: true, deletes: true }]);
  agg.add('a', removedDir);
  agg.putBack('b', { tree: true, removed: false, created: false, deletes: false });
  assert.equal(
    take().entries.some((e) => e.renamedFrom !== undefined),
    false,
  );
});

test('aggregator: a move onto a name whose symlink or file was removed in the same window is plain (the remote may hold it)', () => {
  const { agg, take } = aggregator();
  agg.add('current', { tree: false, removed: true, created: false });
  agg.add('rel2', removedDir);
  agg.add('current', movedDir('rel2'));
  const entries = take().entries;
  assert.equal(entries.find((e) => e.path === 'current')?.renamedFrom, undefined, JSON.stringify(entries));
  // A directory moved away first (the deploy swap) still lets the next move onto its name go as a rename.
  agg.add('site', removedDir);
  agg.add('site.new', removedDir);
  agg.add('site', movedDir('site.new'));
  assert.equal(take().entries.find((e) => e.path === 'site')?.renamedFrom, 'site.new');
});

test('aggregator: a window of completed moves only is due after MOVES_QUIET_MS of quiet, not the whole quietMs', () => {
  const clock = new FakeClock();
  let due = 0;
  const agg = new Aggregator(LIMITS, clock, () => due++);
  agg.add('photos', removedDir);
  clock.advance(10);
  agg.add('photos-2026', movedDir('photos'));
  clock.advance(MOVES_QUIET_MS - 1);
  assert.equal(agg.isDue(), false);
  clock.advance(1);
  assert.equal(due, 1, 'the timer says so at MOVES_QUIET_MS after the second half');
  assert.deepEqual(
    agg.takeDue()?.entries.map((e) => e.path),
    ['photos', 'photos-2026'],
  );
  // The deploy swap: due once both moves are complete, counted from the last half.
  agg.add('site', removedDir);
  agg.add('site.old', movedDir('site'));
  agg.add('site.new', removedDir);
  clock.advance(MOVES_QUIET_MS);
  assert.equal(agg.isDue(), false, 'site.new is removed, and its move not complete yet: the usual quiet');
  agg.add('site', movedDir('site.new'));
  clock.advance(MOVES_QUIET_MS);
  assert.equal(agg.takeDue()?.entries.length, 3);
});

test('aggregator: a move beside any other change, or whose old name is not pending, waits the whole quietMs', () => {
  const { clock, agg } = aggregator();
  agg.add('photos', removedDir);
  agg.add('photos-2026', movedDir('photos'));
  agg.add('index.html', { tree: false, removed: false, created: false });
  clock.advance(MOVES_QUIET_MS);
  assert.equal(agg.isDue(), false, 'a change beside the move');
  clock.advance(LIMITS.quietMs - MOVES_QUIET_MS);
  assert.equal(agg.takeDue()?.entries.length, 3);
  agg.add('b', movedDir('a'));
  clock.advance(MOVES_QUIET_MS);
  assert.equal(agg.isDue(), false, 'the old name went in an earlier batch: a plain new path');
  agg.take();
  agg.add('gone', removedDir);
  clock.advance(MOVES_QUIET_MS);
  assert.equal(agg.isDue(), false, 'a removal alone (a move out of the tree, or the first half of one)');
  agg.take();
  agg.add('x', removedDir);
  agg.add('y', movedDir('x'));
  agg.add('x', { tree: true, removed: false, created: true });
  clock.advance(MOVES_QUIET_MS);
  assert.equal(agg.isDue(), false, 'the old name was made again');
});

const TOGGLES = SHIPPED_TOGGLES;

test('close-write filter: a renamed file counts when moveTo is on, and carries its old name; a directory like createFolder', () => {
  const clock = new FakeClock();
  const on = new CloseWriteFilter(TOGGLES, { clock, onDue: () => {}, seesCloseWrite: () => true });
  assert.deepEqual(on.change({ kind: 'rename', op: 'move', path: 'b.txt', from: 'a.txt', isDir: false }), {
    path: 'b.txt',
    hint: { tree: false, removed: false, created: false, renamedFrom: 'a.txt' },
  });
  assert.deepEqual(on.change({ kind: 'rename', op: 'move', path: 'd2', from: 'd', isDir: true }), {
    path: 'd2',
    hint: { tree: true, removed: false, created: true, renamedFrom: 'd' },
  });
  const off = new CloseWriteFilter({ ...TOGGLES, moveTo: false }, { clock, onDue: () => {}, seesCloseWrite: () => true });
  assert.equal(off.change({ kind: 'rename', op: 'move', path: 'b.txt', from: 'a.txt', isDir: false }), null);
});

const rsync: RsyncSettings = {
  commonParams: ['-artuz'],
  auth: { enabled: true, users: 'rsync_backup', passwordFile: '/etc/rsync.pas' },
  port: { enabled: false, port: 874 },
  timeout: { enabled: false, seconds: 100 },
  ssh: { enabled: false, options: [] },
};
const daemon: Remote = { kind: 'daemon', ip: '10.0.0.2', name: 'www', id: '10.0.0.2::www', line: 1 };
const ctxFor = (remote: Remote, over: Partial<CommandContext> = {}): CommandContext => ({
  watch: '/data/www',
  remote,
  rsync,
  deletes: true,
  filters: ['--exclude=*.swp'],
  defaultTimeoutSeconds: 300,
  ...over,
});

test('planRename: a directory goes with --link-dest at its old name, relative to the new one, to daemon, ssh and local remotes', () => {
  assert.deepEqual(planRename(ctxFor(daemon), { path: 'img/2026', from: 'photos', isDir: true }), {
    kind: 'rename',
    args: [
      '-artz',
      '--timeout=300',
      '--contimeout=30',
      '--sockopts=TCP_NODELAY',
      '--modify-window=-1',
      '--stats',
      '--exclude=*.swp',
      '--link-dest=../../photos',
      '--password-file=/etc/rsync.pas',
      '/data/www/img/2026/',
      'rsync_backup@10.0.0.2::www/img/2026/',
    ],
    input: null,
  });
  const ssh: Remote = { kind: 'ssh', ip: '10.0.0.3', name: '/srv/www', id: '10.0.0.3:/srv/www', line: 2 };
  const sshArgs = planRename(ctxFor(ssh, { rsync: { ...rsync, ssh: { enabled: true, options: [] } } }), {
    path: 'b $(id)',
    from: 'a',
    isDir: true,
  })?.args;
  assert.deepEqual(sshArgs?.slice(-3), ['--link-dest=../a', '/data/www/b $(id)/', 'rsync_backup@10.0.0.3:/srv/www/b $(id)/']);
  const local: Remote = { kind: 'local', ip: '', name: '/mirror', id: '/mirror', line: 3 };
  // Paths are byte strings (core/paths.ts): 'é' as its two UTF-8 bytes, which the argument carries as 'é' again.
  const e = Buffer.from('é').toString('latin1');
  assert.deepEqual(planRename(ctxFor(local), { path: e, from: 'a', isDir: true })?.args.slice(-3), [
    '--link-dest=../a',
    '/data/www/é/',
    '/mirror/é/',
  ]);
});

const sshRemote: Remote = { kind: 'ssh', ip: '10.0.0.3', name: '/srv/www', id: '10.0.0.3:/srv/www', line: 2 };

test('splitRename: the lead keeps the root and the names a pattern cannot carry; the others take theirs by exact include', () => {
  const run = planRename(ctxFor(sshRemote), { path: 'new', from: 'old', isDir: true });
  assert.ok(run !== null);
  const bad = Buffer.from([0x66, 0xff]).toString('latin1');
  const entries = [
    { name: 'a.jpg', dir: false },
    { name: 'd1', dir: true },
    { name: 'w[1]', dir: true },
    { name: ' lead', dir: true },
    { name: bad, dir: true },
    { name: 'd2', dir: true },
    { name: 'b.jpg', dir: false },
    { name: '- x', dir: true },
  ];
  const parts = splitRename(run, entries, 2, []);
  assert.ok(parts !== null);
  const [lead, other, ...more] = parts;
  assert.equal(more.length, 0);
  // Directories first, then files, dealt in turn: the lead gets d1, '- x' and b.jpg; the other d2 and a.jpg.
  assert.deepEqual(lead.args.slice(0, 2), ['--exclude=/d2', '--exclude=/a.jpg']);
  assert.deepEqual(lead.args.slice(2, -2), run.args.slice(0, -2).concat(['-ii', '--out-format=%i']));
  assert.deepEqual(lead.args.slice(-2), run.args.slice(-2));
  assert.equal(lead.input, null);
  assert.deepEqual(other?.args.slice(0, 3), ['--include=/d2', '--include=/a.jpg', '--exclude=/*']);
  assert.deepEqual(other?.args.slice(-5), ['--recursive', '--from0', '--files-from=-', ...run.args.slice(-2)]);
  assert.equal(other?.input?.toString(), '.\0');
  assert.ok(other?.args.includes('--link-dest=../old'));
  // More ways than names to deal: one run per name; one name, a single way or --delete-excluded: no split.
  assert.equal(splitRename(run, entries.slice(0, 2), 4, [])?.length, 2);
  assert.equal(
    splitRename(
      run,
      [
        { name: 'd1', dir: true },
        { name: 'w[1]', dir: true },
      ],
      4,
      [],
    ),
    null,
  );
  assert.equal(splitRename(run, entries, 1, []), null);
  for (const params of [
    ['-a', '--delete-excluded'],
    ['-aC'],
    ['-a', '--exclude=.git'],
    ['-aq'],
    ['-a', '--delete-after'],
    ['--delay-updates'],
    ['-F'],
    ['--stderr=all'],
    ['-aH'],
    ['--chmod=Du-w'],
    ['--bwlimit=100'],
  ]) {
    assert.equal(splitRename(run, entries, 2, params), null, params.join(' '));
  }
  assert.ok(splitRename(run, entries, 2, ['-artuz', '-v', '--progress', '--safe-links']) !== null);
  // At most MAX_TREE_RULES names move to other runs (rules are matched per file); the rest stay with the lead.
  const many = Array.from({ length: 500 }, (_, i) => ({ name: `f${i}`, dir: false }));
  const [big, ...others] = splitRename(run, many, 2, []) ?? [];
  assert.equal(big?.args.filter((a) => a.startsWith('--exclude=/')).length, 100);
  assert.equal(others[0]?.args.filter((a) => a.startsWith('--include=/')).length, 100);
  // The others are released on a whole line that shows the directory exists, not on -v's or -vv's earlier lines.
  for (const line of ['sending incremental file list', '[sender] hiding directory cdrom because of pattern /cdrom', 'cd']) {
    assert.equal(LEAD_MADE_DIRECTORY.test(line), false, line);
  }
  for (const line of ['created directory /srv/www/new', '.d..t......', '.d         ', 'cd+++++++++', 'cd+++++++++\r']) {
    assert.ok(LEAD_MADE_DIRECTORY.test(line), line);
  }
});

test('planRenameDelete: through ssh, the old names of one directory on stdin, the run rooted at that directory', () => {
  const targets = [
    { path: 'img/photos', tree: true },
    { path: 'img/#notes', tree: true },
  ];
  const run = planRenameDelete(ctxFor(sshRemote, { maxDelete: 500 }), targets);
  assert.deepEqual(run?.args, [
    '-artz',
    '--timeout=300',
    '-e',
    'ssh',
    '--delete',
    '--delete-missing-args',
    '--force',
    '--max-delete=500',
    '--existing',
    '--ignore-existing',
    '--exclude=*.swp',
    '--no-relative',
    '--from0',
    '--files-from=-',
    '/data/www/img/',
    'rsync_backup@10.0.0.3:/srv/www/img/',
  ]);
  assert.equal(run?.input?.toString('latin1'), '/photos\0/#notes\0');
  assert.deepEqual(planRenameDelete(ctxFor(sshRemote), [{ path: 'gone', tree: true }])?.args.slice(-2), [
    '/data/www/',
    'rsync_backup@10.0.0.3:/srv/www',
  ]);
});

test('planRenameDelete: null (the plain delete run) for a daemon, names in two directories, anchored filters, a directory argv cannot carry', () => {
  assert.equal(planRenameDelete(ctxFor(daemon), [{ path: 'a', tree: true }]), null);
  assert.equal(planRenameDelete(ctxFor(sshRemote), []), null);
  assert.equal(
    planRenameDelete(ctxFor(sshRemote), [
      { path: 'a', tree: true },
      { path: 'd/b', tree: true },
    ]),
    null,
  );
  assert.equal(planRenameDelete(ctxFor(sshRemote, { filters: ['--exclude=/cache'] }), [{ path: 'a', tree: true }]), null);
  assert.equal(planRenameDelete(ctxFor(sshRemote), [{ path: 'd\xff/a', tree: true }]), null);
  assert.equal(planRenameDelete(ctxFor(sshRemote), [{ path: 'a', tree: false }]), null, 'the plain run clears only trees');
  assert.equal(planRenameDelete(ctxFor(sshRemote, { earlyDeletes: false }), [{ path: 'a', tree: true }]), null, 'refused before');
  // The destination argument's glob characters reach the remote side unescaped: `w[1]/` would name `w1/`.
  assert.equal(planRenameDelete(ctxFor(sshRemote), [{ path: 'w[1]/a', tree: true }]), null);
  assert.notEqual(planRenameDelete(ctxFor(sshRemote), [{ path: 'w1/a[1]', tree: true }]), null, 'names go on stdin');
});

test('planRename: a destination with glob characters, or --old-args, goes as a plain transfer to a remote, not to a local mirror', () => {
  const dir = (remote: Remote, path: string, over: Partial<CommandContext> = {}) =>
    planRename(ctxFor(remote, over), { path, from: 'a', isDir: true });
  for (const path of ['w[1]', 'x*', 'q?', 'back\\slash']) {
    assert.equal(dir(sshRemote, path), null, path);
    assert.equal(dir(daemon, path), null, path);
  }
  const local: Remote = { kind: 'local', ip: '', name: '/mirror', id: '/mirror', line: 3 };
  assert.notEqual(dir(local, 'w[1]'), null);
  // A file's destination is its directory: its own name may hold them.
  assert.notEqual(planRename(ctxFor(sshRemote), { path: 'd/w[1].txt', from: 'd/a.txt', isDir: false }), null);
  assert.equal(planRename(ctxFor(sshRemote), { path: 'w[1]/b.txt', from: 'w[1]/a.txt', isDir: false }), null);
  const oldArgs = { rsync: { ...rsync, commonParams: ['-artz', '--old-args'] } };
  assert.equal(dir(sshRemote, 'plain', oldArgs), null);
  assert.notEqual(dir(sshRemote, 'plain'), null);
});

test('renameLeavesLinks: to a daemon, or with options that judge links by the run root, links go in the update run', () => {
  assert.equal(renameLeavesLinks(ctxFor(daemon)), true);
  assert.equal(renameLeavesLinks(ctxFor(sshRemote)), false);
  assert.equal(renameLeavesLinks(ctxFor(sshRemote, { rsync: { ...rsync, commonParams: ['-artz', '--safe-links'] } })), true);
  assert.ok(planRename(ctxFor(daemon), { path: 'b', from: 'a', isDir: true }, true)?.args.includes('--no-links'));
  assert.ok(!planRename(ctxFor(daemon), { path: 'b', from: 'a', isDir: true })?.args.includes('--no-links'));
});

test('planRename: --copy-dest where rsync writes in place; --fuzzy for a file renamed in its directory', () => {
  const inplace = ctxFor(daemon, { rsync: { ...rsync, commonParams: ['-artz', '--inplace'] } });
  assert.ok(planRename(inplace, { path: 'b', from: 'a', isDir: true })?.args.includes('--copy-dest=../a'));
  const file = planRename(ctxFor(daemon), { path: 'v/final.mp4', from: 'v/raw.mp4', isDir: false });
  assert.deepEqual(file?.args.slice(-4), [
    '--fuzzy',
    '--password-file=/etc/rsync.pas',
    '/data/www/v/final.mp4',
    'rsync_backup@10.0.0.2::www/v/',
  ]);
});

test('planRename: a file moved to another directory: -yy with the old directory as --link-dest, but not to a daemon', () => {
  const ssh: Remote = { kind: 'ssh', ip: '10.0.0.3', name: '/srv/www', id: '10.0.0.3:/srv/www', line: 2 };
  const args = (path: string, from: string) => planRename(ctxFor(ssh), { path, from, isDir: false })?.args.slice(-5);
  assert.deepEqual(args('b/c/x', 'a/y'), [
    '--fuzzy',
    '--fuzzy',
    '--link-dest=../../a',
    '/data/www/b/c/x',
    'rsync_backup@10.0.0.3:/srv/www/b/c/',
  ]);
  assert.deepEqual(args('x', 'a/y')?.slice(2), ['--link-dest=a', '/data/www/x', 'rsync_backup@10.0.0.3:/srv/www']);
  assert.deepEqual(args('b/x', 'y')?.slice(2, 3), ['--link-dest=..']);
});

test('planRename: null (a plain transfer) for a file moved to another directory of a daemon, names argv cannot carry, anchored filters', () => {
  assert.equal(planRename(ctxFor(daemon), { path: 'b/x', from: 'a/x', isDir: false }), null);
  assert.equal(planRename(ctxFor(daemon), { path: 'b\nc', from: 'a', isDir: true }), null);
  assert.equal(planRename(ctxFor(daemon), { path: 'b\xff', from: 'a', isDir: true }), null, 'not UTF-8');
  assert.equal(planRename(ctxFor(daemon, { filters: ['--exclude=/cache'] }), { path: 'b', from: 'a', isDir: true }), null);
  assert.equal(planRename(ctxFor(daemon, { filters: ['--filter=-p /data/cache/'] }), { path: 'b', from: 'a', isDir: true }), null);
  // The path filter's own form (perishable excludes of names, as every real-time run has them) is fine.
  assert.notEqual(
    planRename(ctxFor(daemon, { filters: ['--filter=-p *.part', '--filter=-p *~'] }), { path: 'b', from: 'a', isDir: true }),
    null,
  );
  assert.equal(totalFileSizeFromStats('Total file size: 33,554,432 bytes\nTotal bytes sent: 7,712'), 33554432);
});

class Runner implements ProcessRunner {
  readonly args: (readonly string[])[] = [];
  readonly codes: number[];
  constructor(codes: number[]) {
    this.codes = codes;
  }
  async run(_file: string, args: readonly string[]): Promise<ProcessResult> {
    this.args.push(args);
    const exitCode = this.codes.shift() ?? 0;
    const stdout = args.some((a) => a.startsWith('--link-dest')) ? 'Total file size: 1,000,000 bytes\nTotal bytes sent: 1,000\n' : '';
    return { exitCode, stdout, stderr: '', durationMs: 1 };
  }
}

const laneRoot = '/w';
/** The lane's tree, scripted (no directory): new/ with one file; the old name is gone. */
const laneDisk: DiskProbe = {
  async kind(path) {
    return path === '/w/new' ? 'dir' : path === '/w/new/f' ? 'other' : 'gone';
  },
  async *entries() {},
};
/** new/ with two directories: a rename that may go in two runs. */
const splitDisk: DiskProbe = {
  ...laneDisk,
  async *entries(dir) {
    if (dir === '/w/new')
      yield* [
        { name: 'a', dir: true },
        { name: 'b', dir: true },
      ];
  },
};

function renameLane<R extends ProcessRunner = Runner>(
  codes: number[],
  remote: Remote = daemon,
  scripted?: R,
  renameWays = 1,
  disk: DiskProbe = renameWays > 1 ? splitDisk : laneDisk,
  limiter = new PQueue({ concurrency: renameWays }),
) {
  const clock = new FakeClock();
  const runner = scripted ?? (new Runner(codes) as unknown as R);
  const synced: { updated: readonly string[]; deleted: readonly string[] }[] = [];
  const lane = new RemoteLane(remote, ctxFor(remote, { watch: laneRoot, filters: [] }), LIMITS, {
    clock,
    runner,
    limiter,
    log: pino({ level: 'silent' }),
    rsyncPath: 'rsync',
    rootBytes: laneRoot,
    disk,
    renameWays,
    untranslated: [],
    fullSyncFilters: [],
    retry: { baseMs: 1000, capMs: 60_000, random: () => 0.5 },
    onSynced: (_l, _b, r) => void synced.push({ updated: r.updated, deleted: r.deleted }),
    deletionGuard: async () => NOTHING_HELD,
  });
  return { clock, runner, synced, lane };
}

/** `old/` moved to `new/` (its removal and its rename), and the lane given time to send it. */
async function moveOldToNew({ lane, clock }: { lane: RemoteLane; clock: FakeClock }): Promise<void> {
  lane.add('old', removedDir);
  lane.add('new', movedDir('old'));
  await settle(clock, 400);
}

/** Advances the fake clock in steps, letting the lane's promises (the scripted disk and runner) run in between. */
async function settle(clock: FakeClock, ms: number) {
  for (let t = 0; t < ms; t += 50) {
    clock.advance(50);
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  }
}

const runKind = (args: readonly string[]) =>
  args.some((a) => a.startsWith('--link-dest'))
    ? args.includes('--files-from=-')
      ? 'rename-part'
      : 'rename'
    : args.includes('--delete')
      ? 'delete'
      : 'update';

test('lane: the rename run goes first, then the old name is deleted; no update run; plugins hear a delete and a create', async () => {
  const { clock, runner, synced, lane } = renameLane([]);
  lane.add('old', removedDir);
  lane.add('new', movedDir('old'));
  await settle(clock, 400);
  assert.deepEqual(runner.args.map(runKind), ['rename', 'delete']);
  assert.deepEqual(synced, [{ updated: ['new'], deleted: ['old'] }]);
  assert.equal(lane.stats.renames, 1);
  assert.equal(lane.stats.renameBytesSaved, 999_000);
});

test('lane: a rename run that fails leaves the path to the plain update run of the same batch', async () => {
  const { clock, runner, lane } = renameLane([12]);
  lane.add('old', removedDir);
  lane.add('new', movedDir('old'));
  await settle(clock, 400);
  assert.deepEqual(runner.args.map(runKind), ['rename', 'update', 'delete']);
  assert.equal(lane.stats.renames, 0);
  assert.equal(lane.stats.consecutiveFailures, 0);
});

/** Records when each run starts, gets its held-back stdin (or is stopped without it) and ends. */
class OrderRunner implements ProcessRunner {
  readonly events: string[] = [];
  readonly codes: Record<string, number[]>;
  /** Moves this clock on before the lead's first line (a remote side slow to start). */
  slowStart: { clock: FakeClock; ms: number } | null = null;
  /** The lead prints nothing (its messages go to stderr). */
  silentLead = false;
  constructor(codes: Record<string, number[]> = {}) {
    this.codes = codes;
  }
  async run(_file: string, args: readonly string[], opts: RunOptions = {}): Promise<ProcessResult> {
    const kind = args.includes('--delete-missing-args') ? 'early-delete' : runKind(args);
    this.events.push(`start ${kind}`);
    const input = opts.input;
    if (input instanceof Promise) {
      const stopped = new Promise<null>((resolve) => opts.signal?.addEventListener('abort', () => resolve(null)));
      const list = await Promise.race([input, stopped]);
      if (list === null) {
        this.events.push(`stopped ${kind}`);
        return { signal: 'SIGTERM', stdout: '', stderr: '', durationMs: 1 };
      }
      this.events.push(`stdin ${kind} ${list.toString('latin1')}`);
    }
    await new Promise((r) => setImmediate(r));
    const exitCode = this.codes[kind]?.shift() ?? 0;
    if (opts.onStdout && exitCode === 0 && !this.silentLead) {
      if (this.slowStart) this.slowStart.clock.advance(this.slowStart.ms);
      this.events.push(`stdout ${kind}`);
      opts.onStdout('cd+++++++++\n');
      await new Promise((r) => setImmediate(r));
    }
    this.events.push(`end ${kind} ${exitCode}`);
    const stdout = kind.startsWith('rename') ? 'Total file size: 1,000,000 bytes\nTotal bytes sent: 1,000\n' : '';
    return { exitCode, stdout, stderr: '', durationMs: 1 };
  }
}

test('lane over ssh: the delete run starts with the rename run and gets its list only once the rename run ended', async () => {
  const { clock, runner, synced, lane } = renameLane([], sshRemote, new OrderRunner());
  lane.add('old', removedDir);
  lane.add('new', movedDir('old'));
  await settle(clock, 400);
  assert.deepEqual(runner.events, [
    'start early-delete',
    'start rename',
    'end rename 0',
    'stdin early-delete /old\0',
    'end early-delete 0',
  ]);
  assert.deepEqual(synced, [{ updated: ['new'], deleted: ['old'] }]);
  assert.equal(lane.stats.rsyncRuns, 2);
});

test('lane over ssh: a directory in two runs, the second given its list on the first output of the lead; one failing sends it plain', async () => {
  const { clock, runner, synced, lane } = renameLane([], sshRemote, new OrderRunner(), 2);
  lane.add('old', removedDir);
  lane.add('new', movedDir('old'));
  await settle(clock, 400);
  const at = (event: string) => runner.events.indexOf(event);
  assert.ok(at('start rename') < at('start rename-part'), runner.events.join(', '));
  assert.ok(at('stdout rename') >= 0 && at('stdout rename') < at('stdin rename-part .\0'), runner.events.join(', '));
  assert.ok(at('stdin rename-part .\0') < at('end rename 0'), 'released before the lead ended');
  assert.ok(at('end rename-part 0') < at('stdin early-delete /old\0') && at('end rename 0') < at('stdin early-delete /old\0'));
  assert.deepEqual(synced, [{ updated: ['new'], deleted: ['old'] }]);
  assert.equal(lane.stats.renames, 1);
  assert.equal(lane.stats.renameBytesSaved, 2 * 999_000);
  assert.equal(lane.stats.rsyncRuns, 3);
  // The lead fails before it made the directory: the other is stopped unreleased; the directory goes as a plain update.
  const failed = renameLane([], sshRemote, new OrderRunner({ rename: [12] }), 2);
  await moveOldToNew(failed);
  const events = failed.runner.events;
  assert.ok(events.indexOf('end rename 12') < events.indexOf('stopped rename-part'), events.join(', '));
  assert.ok(!events.some((e) => e.startsWith('stdin rename-part')), events.join(', '));
  assert.ok(events.indexOf('stopped rename-part') < events.indexOf('start update'), events.join(', '));
  assert.deepEqual(failed.synced, [{ updated: ['new'], deleted: ['old'] }]);
  assert.equal(failed.lane.stats.renames, 0);
  // A part that fails does the same.
  const part = renameLane([], sshRemote, new OrderRunner({ 'rename-part': [23] }), 2);
  await moveOldToNew(part);
  assert.ok(part.runner.events.includes('start update'), part.runner.events.join(', '));
  assert.equal(part.lane.stats.renames, 0);
  // One that cannot start beside a lead that went (ssh's 255: an sshd's MaxSessions): one run per rename from now on.
  const refused = renameLane([], sshRemote, new OrderRunner({ 'rename-part': [255] }), 2);
  await moveOldToNew(refused);
  refused.runner.events.length = 0;
  await moveOldToNew(refused);
  assert.equal(refused.runner.events.filter((e) => e.startsWith('start rename')).join(), 'start rename', refused.runner.events.join(', '));
  assert.equal(refused.lane.stats.renames, 1);
  // Leads whose remote side answers 200 ms after their start (a slow login shell), twice in a row: then one run.
  const slow = renameLane([], sshRemote, new OrderRunner(), 2);
  slow.runner.slowStart = { clock: slow.clock, ms: 200 };
  for (let i = 0; i < 2; i++) {
    await moveOldToNew(slow);
  }
  assert.equal(slow.lane.stats.renames, 2);
  assert.equal(slow.runner.events.filter((e) => e === 'start rename-part').length, 2);
  slow.runner.events.length = 0;
  await moveOldToNew(slow);
  assert.equal(slow.runner.events.filter((e) => e.startsWith('start rename')).join(), 'start rename', slow.runner.events.join(', '));
  assert.equal(slow.lane.stats.renames, 3);
  // A directory without u+w: one run (a receiver that is not root lends each run write access to it in turn).
  const readOnly = renameLane([], sshRemote, new OrderRunner(), 2, { ...splitDisk, ownerWritable: async () => false });
  await moveOldToNew(readOnly);
  assert.equal(readOnly.runner.events.filter((e) => e.startsWith('start rename')).join(), 'start rename');
  assert.equal(readOnly.lane.stats.renames, 1);
  // A lead that never says it made the directory (--msgs2stderr on the remote): the parts are stopped, the
  // directory goes plain, and the lane keeps one run from then on.
  const silent = renameLane([], sshRemote, new OrderRunner(), 2);
  silent.runner.silentLead = true;
  for (let i = 0; i < 2; i++) {
    await moveOldToNew(silent);
  }
  assert.equal(silent.runner.events.filter((e) => e === 'stopped rename-part').length, 1, silent.runner.events.join(', '));
  assert.equal(silent.runner.events.filter((e) => e.startsWith('start rename')).length, 3, silent.runner.events.join(', '));
  // No free -n slot beside the batch's own: one run, nothing waits for a slot.
  const busy = new PQueue({ concurrency: 2 });
  void busy.add(() => new Promise(() => {}));
  const full = renameLane([], sshRemote, new OrderRunner(), 2, splitDisk, busy);
  await moveOldToNew(full);
  assert.equal(full.runner.events.filter((e) => e.startsWith('start rename')).join(), 'start rename', full.runner.events.join(', '));
  assert.equal(full.lane.stats.renames, 1);
  // 100 ms is not slow: the next rename goes split again.
  const quick = renameLane([], sshRemote, new OrderRunner(), 2);
  quick.runner.slowStart = { clock: quick.clock, ms: 100 };
  for (let i = 0; i < 3; i++) {
    await moveOldToNew(quick);
  }
  assert.equal(quick.runner.events.filter((e) => e === 'start rename-part').length, 3);
});

test('lane over ssh: a delete run started early that fails is followed by the plain one; one never released is stopped', async () => {
  const refused = renameLane([], sshRemote, new OrderRunner({ 'early-delete': [2] }));
  await moveOldToNew(refused);
  assert.deepEqual(refused.runner.events.slice(-4), ['stdin early-delete /old\0', 'end early-delete 2', 'start delete', 'end delete 0']);
  assert.deepEqual(refused.synced, [{ updated: ['new'], deleted: ['old'] }]);
  // The rename run and the plain update after it fail: the old name must stay, and nothing reaches the early run.
  const failed = renameLane([], sshRemote, new OrderRunner({ rename: [12], update: [12] }));
  await moveOldToNew(failed);
  assert.deepEqual(failed.runner.events.slice(0, 6), [
    'start early-delete',
    'start rename',
    'end rename 12',
    'start update',
    'end update 12',
    'stopped early-delete',
  ]);
  assert.deepEqual(failed.synced, []);
});

test('lane over ssh: an early delete run that reaches maxDelete or fails on paths answers for the batch; a refusal is remembered', async () => {
  const capped = renameLane([], sshRemote, new OrderRunner({ 'early-delete': [25] }));
  await moveOldToNew(capped);
  assert.deepEqual(
    capped.runner.events.slice(-2),
    ['stdin early-delete /old\0', 'end early-delete 25'],
    'no second run deletes as many again',
  );
  assert.equal(capped.lane.waitsForOperator, true);
  const partial = renameLane([], sshRemote, new OrderRunner({ 'early-delete': [23] }));
  partial.lane.add('old', removedDir);
  partial.lane.add('new', movedDir('old'));
  await settle(partial.clock, 100);
  assert.deepEqual(partial.runner.events.slice(-2), ['stdin early-delete /old\0', 'end early-delete 23']);
  assert.deepEqual(partial.synced, []);
  // Exit 2 (a 3.4.3 receiver): the plain run, now and for every later rename of this lane.
  const refused = renameLane([], sshRemote, new OrderRunner({ 'early-delete': [2] }));
  await moveOldToNew(refused);
  refused.lane.add('new', removedDir);
  refused.lane.add('newer', movedDir('new'));
  await settle(refused.clock, 400);
  assert.equal(refused.runner.events.filter((e) => e === 'start early-delete').length, 1);
  assert.equal(refused.runner.events.filter((e) => e === 'start delete').length, 2);
});

test("dir watcher (native inotify): a move inside the tree is one rename event after the old name's removal", async (t) => {
  if (loadNativeInotify() === null) {
    t.skip('the native inotify reader is not built (node native/build.mjs)');
    return;
  }
  const base = mkdtempSync(join(tmpdir(), 'rename-watch-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const root = join(base, 'root');
  mkdirSync(join(root, 'd', 'sub'), { recursive: true });
  writeFileSync(join(root, 'f.txt'), 'f');
  mkdirSync(join(base, 'outside'));
  const events: WatchEvent[] = [];
  const watcher = new DirWatcher();
  t.after(() => watcher.close());
  await watcher.start(root, (e) => events.push(e), { isIgnored: () => false, pairMoves: true });
  renameSync(join(root, 'd'), join(root, 'd2'));
  renameSync(join(root, 'f.txt'), join(root, 'g.txt'));
  renameSync(join(root, 'g.txt'), join(base, 'outside', 'g.txt'));
  writeFileSync(join(base, 'outside', 'h.txt'), 'h');
  renameSync(join(base, 'outside', 'h.txt'), join(root, 'h.txt'));
  const deadline = Date.now() + 10_000;
  const seen = (path: string) => events.some((e) => e.kind !== 'lost' && e.path === path);
  while (!seen('h.txt') || !seen('d2')) {
    if (Date.now() > deadline) assert.fail(`events so far: ${JSON.stringify(events)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const shown = events.map((e) =>
    e.kind === 'lost' ? 'lost' : `${e.kind} ${e.op} ${e.path}${e.kind === 'rename' ? ` from ${e.from}` : ''}`,
  );
  assert.ok(shown.indexOf('dir unlink d') >= 0 && shown.indexOf('dir unlink d') < shown.indexOf('rename move d2 from d'), shown.join('\n'));
  assert.ok(shown.indexOf('file unlink f.txt') < shown.indexOf('rename move g.txt from f.txt'), shown.join('\n'));
  assert.ok(shown.includes('file unlink g.txt'), 'moved out: a removal');
  assert.ok(shown.includes('file change h.txt'), `moved in: a plain change\n${shown.join('\n')}`);
  assert.equal(events.filter((e) => e.kind === 'rename').length, 2);
});
