import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Batch } from '../../src/aggregate/aggregator.ts';
import { retryRecord } from '../../src/recovery/retry-record.ts';

const T0 = Date.UTC(2026, 0, 1);
const batch = (paths: string[], full = false): Batch => ({
  full,
  fullReason: full ? 'crontab' : '',
  entries: paths.map((path) => ({ path, tree: false, deletes: false })),
  since: T0,
});

test('a failed attempt counts, and the first failure time and the batch are kept', () => {
  const first = retryRecord(undefined, batch(['a']), T0, { failed: { exitCode: 12, error: 'protocol', nextAttemptAt: T0 + 1000 } });
  assert.deepEqual(first, {
    full: false,
    fullReason: '',
    entries: [{ path: 'a', tree: false, deletes: false }],
    attempts: 1,
    lastExitCode: 12,
    lastError: 'protocol',
    firstFailedAt: new Date(T0).toISOString(),
    lastAttemptAt: new Date(T0).toISOString(),
    nextAttemptAt: new Date(T0 + 1000).toISOString(),
  });
  const second = retryRecord(first, batch(['a', 'b']), T0 + 5000, { failed: { exitCode: undefined, error: 'spawn', nextAttemptAt: null } });
  assert.equal(second.attempts, 2);
  assert.equal(second.lastExitCode, null, 'no exit code (a spawn error) is stored as null');
  assert.equal(second.firstFailedAt, new Date(T0).toISOString());
  assert.equal(second.lastAttemptAt, new Date(T0 + 5000).toISOString());
  assert.equal(second.nextAttemptAt, null);
  assert.equal(second.entries.length, 2);
});

test('what is owed at a stop keeps the failure history, says why only when there was none, and plans no try', () => {
  const failed = retryRecord(undefined, batch(['a']), T0, { failed: { exitCode: 23, error: 'partial', nextAttemptAt: T0 + 1 } });
  const owed = retryRecord(failed, batch(['a', 'b']), T0 + 9000, { why: 'pending at shutdown' });
  assert.equal(owed.attempts, 1);
  assert.equal(owed.lastExitCode, 23);
  assert.equal(owed.lastError, 'partial');
  assert.equal(owed.lastAttemptAt, new Date(T0).toISOString());
  assert.equal(owed.nextAttemptAt, null);
  const fresh = retryRecord(undefined, batch([], true), T0, { why: 'pending at a crash' });
  assert.deepEqual(
    { attempts: fresh.attempts, lastError: fresh.lastError, full: fresh.full, entries: fresh.entries, fullReason: fresh.fullReason },
    { attempts: 0, lastError: 'pending at a crash', full: true, entries: [], fullReason: 'crontab' },
  );
});

test('a sweep owed at a stop is kept as the full sync it came from (the guard looks again after the restart)', () => {
  const owed = retryRecord(undefined, { ...batch(['a']), sweep: true }, T0, { why: 'pending at shutdown' });
  assert.deepEqual([owed.full, owed.entries, owed.fullReason], [true, [], 'the held deletions of a full sync']);
});
