import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DaemonStatus } from '../../src/observe/status-model.ts';
import { formatAge, remoteState, renderStatusPage } from '../../src/observe/status-page.ts';
import { IDLE, statusFixture } from '../helpers/status-fixture.ts';

const STATUS: DaemonStatus = statusFixture('/data/www', 'rsync exit 12: connection unexpectedly closed');

/** The text inside the element carrying data-field="field" in the row of `remote` (or the page, without one). */
function field(html: string, name: string, remote?: string): string {
  let scope = html;
  if (remote !== undefined) {
    const start = html.indexOf(`<tr data-remote="${remote}"`);
    assert.ok(start >= 0, `a row for ${remote}`);
    scope = html.slice(start, html.indexOf('</tr>', start));
  }
  const m = new RegExp(`data-field="${name}"[^>]*>(.*?)</(?:td|dd|span|code)>`, 's').exec(scope);
  assert.ok(m, `field ${name}${remote ? ` of ${remote}` : ''}`);
  return (m[1] as string).replace(/<br>/g, ' ').replace(/<[^>]+>/g, '');
}

test('remoteState: the worst condition wins', () => {
  assert.equal(remoteState(IDLE), 'ok');
  assert.equal(remoteState({ ...IDLE, pendingPaths: 1 }), 'syncing');
  assert.equal(remoteState({ ...IDLE, pendingFullSync: true }), 'syncing');
  assert.equal(remoteState({ ...IDLE, rsyncRunning: true }), 'syncing');
  assert.equal(remoteState({ ...IDLE, pendingPaths: 1, degraded: true }), 'degraded');
  assert.equal(remoteState({ ...IDLE, degraded: true, holdingDeletions: true }), 'holding deletions');
});

test('formatAge: short and readable at every scale', () => {
  assert.deepEqual([0, 0.44, 3, 9.99, 12.7, 60, 252, 3600, 7530, 86400, 273600, -5].map(formatAge), [
    '0 s',
    '0.4 s',
    '3 s',
    '9.9 s',
    '12 s',
    '1 min',
    '4 min 12 s',
    '1 h',
    '2 h 5 min',
    '1 d',
    '3 d 4 h',
    '0 s',
  ]);
});

test('the page shows the figures of the daemon and of every remote', () => {
  const html = renderStatusPage(STATUS);
  assert.ok(html.startsWith('<!doctype html>\n<html lang="en">'));
  assert.ok(html.includes('<meta http-equiv="refresh" content="5">'));
  assert.equal(field(html, 'watch'), '/data/www');
  assert.equal(field(html, 'pid'), '4242');
  assert.equal(field(html, 'uptime'), '2 h 5 min');
  assert.equal(field(html, 'watcher'), 'dirs (inotify)');
  assert.equal(field(html, 'unreadable'), 'none');
  assert.equal(field(html, 'watches'), '1,234 of 65,536 (1.9 %)');
  assert.equal(field(html, 'events-seen'), '12,345');
  assert.equal(field(html, 'events-ignored'), '10');
  assert.equal(field(html, 'events-counted'), '12,000');
  assert.equal(field(html, 'events-lost'), '0');
  assert.equal(field(html, 'retry-queue'), '3 entries in /var/lib/sersync-ts/retry-queue.json');
  assert.equal(field(html, 'crontab'), 'next full sync in 12 min');

  assert.equal(field(html, 'state', '10.0.0.2::www'), 'ok');
  assert.equal(field(html, 'pending', '10.0.0.2::www'), '0');
  assert.equal(field(html, 'oldest-pending', '10.0.0.2::www'), '–');
  assert.equal(field(html, 'last-success', '10.0.0.2::www'), '12 s ago');
  assert.equal(field(html, 'last-error', '10.0.0.2::www'), '–');
  assert.equal(field(html, 'retry-queued', '10.0.0.2::www'), '0');

  assert.equal(field(html, 'state', '10.0.0.3::www'), 'syncing');
  assert.equal(field(html, 'pending', '10.0.0.3::www'), '17 rsync running');
  assert.equal(field(html, 'oldest-pending', '10.0.0.3::www'), '42 s');

  const ssh = 'mirror@10.0.0.4:/srv/www';
  assert.equal(field(html, 'state', ssh), 'degraded');
  assert.equal(field(html, 'oldest-pending', ssh), '6 min 40 s');
  assert.equal(field(html, 'last-success', ssh), '7 min 30 s ago');
  assert.equal(field(html, 'last-error', ssh), 'rsync exit 12: connection unexpectedly closed');
  assert.equal(field(html, 'retry-queued', ssh), '2 next in 30 s');
  assert.equal(field(html, 'rsync-runs', ssh), '37 ok 3 retry 3 failed in a row');
  assert.equal(field(html, 'rsync-runs', '10.0.0.2::www'), '40 ok 1 partial');

  assert.equal(field(html, 'state', '/mnt/backup'), 'holding deletions');
  assert.equal(field(html, 'last-success', '/mnt/backup'), 'never');
  assert.ok(html.includes('<tr data-remote="/mnt/backup" class="holding-deletions">'));
});

test('the page warns when events were lost or the watch limit is near', () => {
  const calm = renderStatusPage(STATUS);
  assert.ok(!calm.includes('class="warn"'));
  const html = renderStatusPage({ ...STATUS, watches: 60000, events: { ...STATUS.events, lost: 2 } });
  assert.ok(html.includes('<div class="warn"><dt>Watches</dt>'));
  assert.ok(html.includes('<div class="warn"><dt>Events</dt>'));
});

test('everything from the status is escaped: markup, quotes, ampersands, invalid UTF-16 and control characters', () => {
  const evil = '/srv/<b>x</b> & "q" \'a\' \uD800 \x1b[31m';
  const html = renderStatusPage({
    ...STATUS,
    watch: evil,
    version: '<i>1</i>',
    retryQueue: { file: `${evil}/q.json`, entries: 1, writeError: `ENOSPC ${evil}` },
    remotes: [{ ...IDLE, id: `${evil}"><script>alert(1)</script>`, lastError: 'rsync: <script>alert(2)</script>\nsecond line' }],
  });
  assert.ok(!html.includes('<script'), 'no script element');
  assert.ok(html.includes('data-field="retry-queue-error">cannot write: ENOSPC /srv/&#60;b&#62;'), 'the write error is shown, escaped');
  assert.ok(!html.includes('<b>') && !html.includes('<i>'), 'no markup from the status');
  assert.ok(!/[\uD800-\uDFFF]/.test(html), 'no lone surrogate');
  assert.ok(!html.includes('\x1b'), 'no escape character');
  assert.equal(field(html, 'watch'), '/srv/&#60;b&#62;x&#60;/b&#62; &#38; &#34;q&#34; &#39;a&#39; \uFFFD \uFFFD[31m');
  assert.ok(html.includes('<title>sersync-ts: /srv/&#60;b&#62;x'));
  // The attribute that names the row cannot be broken out of.
  assert.ok(html.includes('<tr data-remote="/srv/&#60;b&#62;x&#60;/b&#62; &#38; &#34;q&#34;'));
  assert.equal(
    field(
      html,
      'last-error',
      '/srv/&#60;b&#62;x&#60;/b&#62; &#38; &#34;q&#34; &#39;a&#39; \uFFFD \uFFFD[31m&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;',
    ),
    'rsync: &#60;script&#62;alert(2)&#60;/script&#62;\nsecond line',
  );
});

test('a daemon without remotes or a readable watch limit still renders', () => {
  const html = renderStatusPage({ ...STATUS, maxUserWatches: null, crontab: { enabled: false, nextAt: null }, remotes: [] });
  assert.equal(field(html, 'watches'), '1,234 (limit unknown)');
  assert.equal(field(html, 'crontab'), 'off');
  const fresh = renderStatusPage({ ...STATUS, remotes: [{ ...IDLE, rsyncRuns: { ok: 0, partial: 0, retry: 0, config: 0 } }] });
  assert.equal(field(fresh, 'rsync-runs', IDLE.id), 'none yet');
  assert.ok(html.includes('no remotes'));
});
