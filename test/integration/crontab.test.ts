/**
 * The crontab full sync with a realtime `<filter>` and no `<crontabfilter>` (README "What never reaches a remote":
 * sersync2 turned the crontab off here; sersync-ts keeps it, with the filter as rsync excludes). The shortest schedule
 * is one minute, jittered to 45-75 s, so this test waits for one real crontab run.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CRONTAB_KEPT_NOTE } from '../../src/sync/site-plan.ts';
import { freePort } from '../helpers/ports.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { startSersync, writeConf } from './support/sersync.ts';

after(removeTempDirs);

test('crontab with a filter and no crontabfilter: the full sync runs and leaves the filtered paths out', { timeout: 180_000 }, async () => {
  const watch = await makeTempDir('crontab-watch-');
  const mirror = await makeTempDir('crontab-mirror-');
  // There before the start and never changed: only the crontab's full sync can carry them.
  writeFileSync(join(watch, 'index.html'), 'kept');
  writeFileSync(join(watch, 'app.log'), 'filtered by (.*)\\.log');
  mkdirSync(join(watch, 'cache', 'deep'), { recursive: true });
  writeFileSync(join(watch, 'cache', 'deep', 'page.bin'), 'filtered by ^cache/*');
  writeFileSync(join(mirror, 'stale.html'), 'the source has none: the full sync with --delete removes it');
  const conf = await writeConf(await makeTempDir('crontab-conf-'), {
    watch,
    remotes: [{ name: mirror }],
    filterExcludes: ['(.*)\\.log', '^cache/*'],
    crontab: { minutes: 1 },
    host: { ip: '127.0.0.1', port: await freePort() },
  });
  const d = await startSersync(['-o', conf]);
  try {
    // Logged once the crontab starts, after the "watching" line.
    await d.waitForLog((r) => r.msg === CRONTAB_KEPT_NOTE, 'the start to say that the crontab keeps running with the filter');
    await d.waitForLog((r) => r.msg === 'crontab: full sync of every remote', 'the crontab to fire', 100_000);
    await d.waitForLog((r) => r.full === true && r.remote === mirror && r.exitCode === 0, 'the crontab full sync to finish', 60_000);
    assert.deepEqual(readdirSync(mirror).sort(), ['index.html'], 'the mirror after the crontab full sync');
    assert.equal(existsSync(join(mirror, 'cache')), false);
  } finally {
    assert.equal(await d.stop(), 0);
  }
});
