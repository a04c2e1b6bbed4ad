import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FilterRegex } from '../../src/config/model.ts';
import { fromUtf8 } from '../../src/core/paths.ts';
import { createPathFilter, EXTRA_TEMPORARY_GLOBS, regexToRsyncPattern, tempGlobProblem } from '../../src/watch/path-filter.ts';

const re = (source: string): FilterRegex => ({ source, regex: new RegExp(`^(?:${fromUtf8(source)})$`), line: 1 });

test('built-in temporaries are excluded, dot-files synced by default', () => {
  const f = createPathFilter({ dotFiles: true, regexes: [] });
  for (const p of [
    '4913',
    'a/4913',
    'x~',
    'a/.x.txt.swp',
    'a/.x.swx',
    '.#lock',
    '#auto#',
    'd/.goutputstream-ABC',
    '.~lock.doc#',
    'v.iso.part',
    'f.crdownload',
  ]) {
    assert.equal(f.isExcluded(p, false), true, p);
  }
  for (const p of ['.htaccess', 'a/.user.ini', 'index.html', 'swp', 'a.swp.txt', 'x~y', 'part']) {
    assert.equal(f.isExcluded(p, false), false, p);
  }
});

test('dotFiles=false restores sersync2: non-directories starting with a dot are skipped, dot-directories are not', () => {
  const f = createPathFilter({ dotFiles: false, regexes: [] });
  assert.equal(f.isExcluded('.htaccess', false), true);
  assert.equal(f.isExcluded('.git', true), false);
  assert.equal(f.isExcluded('.git/config', false), false);
  // An event rule only, as in sersync2: its directory and full syncs carry dot-files.
  assert.deepEqual(f.rsyncFilters, createPathFilter({ dotFiles: true, regexes: [] }).rsyncFilters);
  assert.ok(!f.rsyncFilters.includes('--exclude=.*'));
});

test("filter regexes match sersync2's strings: bare name at the root, /dir/name below", () => {
  const f = createPathFilter({ dotFiles: true, regexes: [re('(.*)\\.gz'), re('^info/*'), re('/a/b')] });
  assert.equal(f.isExcluded('x.gz', false), true);
  assert.equal(f.isExcluded('d/e/x.gz', false), true);
  assert.equal(f.isExcluded('info', true), true);
  assert.equal(f.isExcluded('info', false), true);
  assert.equal(f.isExcluded('a/info', true), false, 'sersync2 ^info/* only hits the top level');
  assert.equal(f.isExcluded('a/b', true), true);
  assert.equal(f.isExcluded('a/bc', true), false);
  assert.deepEqual(f.rsyncFilters.slice(-3), ['--filter=-p *.gz', '--filter=-p /info', '--filter=-p /a/b']);
  assert.deepEqual(f.untranslated, []);
});

test('/name matches no sersync2 subject in real time (a top-level entry is "name"); full syncs exclude /name, the safe side', () => {
  assert.equal(regexToRsyncPattern('/logs'), '/logs');
  const f = createPathFilter({ dotFiles: true, regexes: [re('/logs')] });
  assert.equal(f.isExcluded('logs', true), false);
  assert.equal(f.rsyncFilters.at(-1), '--filter=-p /logs');
  assert.deepEqual(f.untranslated, []);
});

test('regexes without an rsync equivalent are reported as untranslated', () => {
  assert.equal(regexToRsyncPattern('(.*)\\.svn'), '*.svn');
  assert.equal(regexToRsyncPattern('.*\\.log$'), '*.log');
  assert.equal(regexToRsyncPattern('^static/*'), '/static');
  assert.equal(regexToRsyncPattern('cache/[0-9]+'), null);
  assert.equal(regexToRsyncPattern('(a|b)\\.txt'), null);
  assert.equal(regexToRsyncPattern('.*\\d'), null);
  const f = createPathFilter({ dotFiles: true, regexes: [re('.*/tmp[0-9]+')] });
  assert.equal(f.untranslated.length, 1);
  assert.equal(f.isExcluded('a/tmp12', true), true);
});

test('a non-ASCII filter regex matches UTF-8 names (byte strings)', () => {
  const f = createPathFilter({ dotFiles: true, regexes: [re('(.*)临时')] });
  assert.equal(f.isExcluded(fromUtf8('文件/临时'), true), true);
  assert.equal(f.isExcluded(fromUtf8('文件/正式'), true), false);
});

test("a directory is tested in sersync2's start-up form too: ^data/cache/* keeps data/cache out, as sersync2 did at start", () => {
  const f = createPathFilter({ dotFiles: true, regexes: [re('^data/cache/*'), re('.*/tmp/'), re('(.*)\\.svn')] });
  // sersync2's walk tested "data/cache/"; its events "/data/cache": the directory is out whenever it exists.
  assert.equal(f.isExcluded('data/cache', true), true);
  assert.equal(f.isExcluded('data/cache', false), false, 'a file named cache: only the event form, which does not match');
  assert.equal(f.isExcluded('data/cachex', true), false);
  assert.equal(f.isExcluded('data', true), false);
  // ".*/tmp/" only ever matches the start-up form of a nested directory.
  assert.equal(f.isExcluded('a/tmp', true), true);
  assert.equal(f.isExcluded('a/tmp', false), false);
  assert.equal(f.isExcluded('tmp', true), false);
  // (.*)\.svn: the event form of a directory; sersync2 missed existing ones at start, sersync-ts does not.
  assert.equal(f.isExcluded('a/.svn', true), true);
  assert.equal(f.isExcluded('.svn', true), true);
  assert.deepEqual(f.rsyncFilters.slice(-2), ['--filter=-p /data/cache/', '--filter=-p *.svn']);
  assert.deepEqual(
    f.untranslated.map((r) => r.source),
    ['.*/tmp/'],
  );
});

test('the rsync translation of the start-up form: directory-only patterns where only a directory can match', () => {
  for (const [regex, pattern] of [
    ['^data/cache/*', '/data/cache/'],
    ['data/cache/', '/data/cache/'],
    ['^info/*', '/info'],
    ['^info/', '/info/'],
    ['^/a/b/*', '/a/b'],
    ['.*cache/', '*cache/'],
    ['.*cache/*', '*cache'],
    ['(.*)\\.svn/*', '*.svn'],
    ['^data/cache', null],
    ['^a//b/*', null],
    ['.*/x/', null],
  ] as const) {
    assert.equal(regexToRsyncPattern(regex), pattern, regex);
  }
});

test('temporaries, then the filter: perishable rsync excludes of every run', () => {
  const f = createPathFilter({ dotFiles: true, regexes: [re('(.*)\\.gz')] });
  assert.deepEqual(f.rsyncFilters, [
    '--filter=-p 4913',
    '--filter=-p *~',
    ...EXTRA_TEMPORARY_GLOBS.map((g) => `--filter=-p ${g}`),
    '--filter=-p *.gz',
  ]);
});

test("<tuning tempGlobs> replaces the extra globs; sersync2's 4913 and *~ stay", () => {
  const none = createPathFilter({ dotFiles: true, regexes: [], tempGlobs: [] });
  for (const p of ['v.iso.part', 'f.crdownload', '#auto#', '.#lock']) assert.equal(none.isExcluded(p, false), false, p);
  assert.equal(none.isExcluded('4913', false), true);
  assert.equal(none.isExcluded('a/x~', false), true);
  assert.deepEqual(none.rsyncFilters, ['--filter=-p 4913', '--filter=-p *~']);
  const own = createPathFilter({ dotFiles: true, regexes: [], tempGlobs: ['*.tmp', 'upload-[0-9]*'] });
  assert.equal(own.isExcluded('a/x.tmp', false), true);
  assert.equal(own.isExcluded('upload-7abc', false), true);
  assert.equal(own.isExcluded('x.part', false), false);
  assert.equal(own.isExcluded(fromUtf8('文件.tmp'), false), true);
});

test('tempGlobProblem: one base-name glob that rsync reads the same way', () => {
  assert.equal(tempGlobProblem('*.part'), null);
  assert.equal(tempGlobProblem('.*.sw[a-px]'), null);
  assert.match(tempGlobProblem('a/*.part') ?? '', /holds "\/"/);
  assert.match(tempGlobProblem('x[ab') ?? '', /unclosed/);
  assert.match(tempGlobProblem('**.tmp') ?? '', /\*\*/);
});
