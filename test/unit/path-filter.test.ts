import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FilterRegex } from '../../src/config/model.ts';
import { fromUtf8 } from '../../src/core/paths.ts';
import { createPathFilter, regexToRsyncPattern } from '../../src/watch/path-filter.ts';

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
  assert.equal(f.isExcluded('a/info', true), false, 'sersync2 ^info/* only hits the top level');
  assert.equal(f.isExcluded('a/b', true), true);
  assert.equal(f.isExcluded('a/bc', true), false);
  assert.deepEqual(f.rsyncFilters.filter((a) => !a.includes('~') && !a.includes('4913')).slice(-3), [
    '--exclude=*.gz',
    '--exclude=/info',
    '--exclude=/a/b',
  ]);
  assert.deepEqual(f.untranslated, []);
});

test('/name matches no sersync2 subject in real time (a top-level entry is "name"); full syncs exclude /name, the safe side', () => {
  assert.equal(regexToRsyncPattern('/logs'), '/logs');
  const f = createPathFilter({ dotFiles: true, regexes: [re('/logs')] });
  assert.equal(f.isExcluded('logs', true), false);
  assert.equal(f.rsyncFilters.at(-1), '--exclude=/logs');
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
