import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describe, FullSyncProgress, lastProgress } from '../../src/observe/progress.ts';
import { FakeClock } from './support/fake-clock.ts';

// Records as rsync 3.5.0 prints them with --info=progress2 (copied from a run over /usr/share/man).
const R1 = '          1,399   0%  946.29kB/s    0:00:00 (xfr#2, ir-chk=18652/18691)';
const R2 = '     12,345,678  45%   10.50MB/s    0:00:10 (xfr#1200, to-chk=5000/20000)';
const BARE = '            430   0%    0.00kB/s    0:00:00  ';

test('lastProgress: the newest complete record with file counts', () => {
  assert.deepEqual(lastProgress(`\r${R1}\r${BARE}\r${R2}\r`), {
    bytes: 12345678,
    percent: 45,
    rate: '10.50MB/s',
    transferred: 1200,
    checked: 15000,
    known: 20000,
    scanning: false,
  });
  assert.equal(lastProgress(`\r${R1}\r${BARE}\r`)?.scanning, true, 'ir-chk: still listing');
  assert.equal(lastProgress(`\r${R2.slice(0, 30)}`), null, 'an unfinished record is not read');
  assert.equal(lastProgress(`\r${BARE}\r`), null, 'records without counts are skipped');
  assert.equal(lastProgress('Number of files: 3\nTotal bytes sent: 99\n'), null, '--stats lines are not progress');
});

test('describe: files, bytes, rate and an ETA from the share of files checked', () => {
  const p = lastProgress(`${R2}\r`);
  assert.ok(p);
  assert.equal(describe(p, 30_000), '15,000 of 20,000 files checked, 1,200 sent, 12.3 MB, 45 %, 10.50MB/s, ETA 10 s');
  const s = lastProgress(`${R1}\r`);
  assert.ok(s);
  assert.match(
    describe(s, 1000),
    /39 of 18,691 files checked, 2 sent, 1\.4 kB, 0 %, 946\.29kB\/s, ETA 7 min 58 s \(still listing the tree\)$/,
  );
});

test('FullSyncProgress: a log line per interval per remote, records split across chunks, a live line on a terminal', () => {
  const clock = new FakeClock();
  const logged: { obj: Record<string, unknown>; msg: string }[] = [];
  const drawn: string[] = [];
  const progress = new FullSyncProgress({
    clock,
    log: {
      info: ((obj: Record<string, unknown>, msg: string) => {
        logged.push({ obj, msg });
        drawn.push('<log>');
      }) as never,
    },
    intervalMs: 10_000,
    tty: { write: (s: string) => drawn.push(s) },
  });
  const a = progress.start('10.0.0.2::www');
  a.update(`\r${R1}\r${R2.slice(0, 20)}`);
  clock.advance(5000);
  a.update(`${R2.slice(20)}\r`);
  assert.equal(logged.length, 0, 'not before the interval');
  clock.advance(5000);
  a.update(`\r${R2}\r`);
  assert.equal(logged.length, 1);
  assert.equal(logged[0]?.msg, 'full sync to 10.0.0.2::www: 15,000 of 20,000 files checked, 1,200 sent, 12.3 MB, 45 %, 10.50MB/s, ETA 3 s');
  assert.equal(logged[0]?.obj.checked, 15000);
  a.update(`\r${R2}\r`);
  assert.equal(logged.length, 1, 'once per interval');
  assert.ok(
    drawn.some((d) => d.startsWith('\r\x1b[Kfull sync 10.0.0.2::www: ')),
    drawn.join('\n'),
  );
  assert.equal(drawn[drawn.indexOf('<log>') - 1], '\r\x1b[K', 'the live line is cleared before a log line on the same terminal');
  a.done();
  assert.equal(drawn.at(-1), '\r\x1b[K', 'the live line is cleared when the sync ends');
});
