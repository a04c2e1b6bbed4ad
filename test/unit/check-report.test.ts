import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkReport } from '../../src/cli/check-report.ts';
import { parseConfig } from '../../src/config/parse-config.ts';

const config = (excludes: string[], tuning = '') =>
  parseConfig(
    Buffer.from(
      `<head><filter start="${excludes.length > 0}">${excludes.map((e) => `<exclude expression="${e}"/>`).join('')}</filter>${tuning}
<sersync><localpath watch="/nonexistent/www"><remote ip="10.0.0.2" name="www"/></localpath></sersync></head>`,
    ),
    'conf.xml',
    { cwd: '/' },
  );

/** The full-sync line of the first remote in a --check report. */
const fullSync = (report: string) => report.split('\n')[report.split('\n').findIndex((l) => l.startsWith('  full sync')) + 1] ?? '';

test('--check: full syncs clear the temporaries and keep the filter; real-time runs exclude both', async () => {
  const report = await checkReport(config(['(.*)\\.gz']), { initialSync: true, defaultTimeoutSeconds: 300 });
  const full = fullSync(report);
  assert.match(full, /'--filter=-p \*\.part' .*'--filter=!' '--filter=-p \*\.gz' /);
  assert.match(report, /sample batch, update run:\n {4}rsync .*'--filter=-p \*\.part'.*'--filter=-p \*\.gz'/);
  assert.doesNotMatch(report, /full syncs skip the temporary-file globs/);
  assert.match(report, /^temporary files \(real time only\): 4913 \*~ \.\*\.sw\[a-px\] .* \*\.crdownload$/m);
});

test('--check: with a regex that needs a walk, it says full syncs keep skipping the temporaries', async () => {
  const report = await checkReport(config(['cache/[0-9]+']), { initialSync: true, defaultTimeoutSeconds: 300 });
  assert.match(report, /note: with such regexes, full syncs skip the temporary-file globs too/);
  assert.doesNotMatch(fullSync(report), /--filter=!/);
});

test('--check: tempGlobs="" leaves only sersync2\'s own temporaries', async () => {
  const report = await checkReport(config([], '<tuning tempGlobs=""/>'), { initialSync: false, defaultTimeoutSeconds: 300 });
  assert.match(report, /^temporary files \(real time only\): 4913 \*~$/m);
  assert.doesNotMatch(report, /\*\.part/);
});
