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

test('--check: real-time runs exclude the temporaries and the filter; full syncs the filter only, as sersync2', async () => {
  const report = await checkReport(config(['(.*)\\.gz']), { initialSync: true, defaultTimeoutSeconds: 300 });
  assert.match(fullSync(report), /'--filter=-p \*\.gz' /);
  assert.doesNotMatch(fullSync(report), /\*\.part|\*~|4913/);
  assert.match(report, /sample batch, update run:\n {4}rsync .*'--filter=-p \*\.part'.*'--filter=-p \*\.gz'/);
  assert.match(
    report,
    /^temporary files, not synced in real time; full syncs carry them \(<tuning tempGlobs> sets all but 4913 and \*~\): 4913 \*~ \.\*\.sw\[a-px\] .* \*\.crdownload$/m,
  );
});

test('--check: tempGlobs="" leaves only sersync2\'s own temporaries in real-time runs', async () => {
  const report = await checkReport(config([], '<tuning tempGlobs=""/>'), { initialSync: false, defaultTimeoutSeconds: 300 });
  assert.match(report, /^temporary files, not synced in real time.*: 4913 \*~$/m);
  assert.doesNotMatch(report, /\*\.part/);
  assert.match(report, /sample batch, update run:\n {4}rsync .*'--filter=-p \*~'/);
});

test('--check -m: the plugin alone on its directory, no rsync runs and no crontab, as -m runs it', async () => {
  const c = parseConfig(
    Buffer.from(`<head>
<sersync><localpath watch="/nonexistent/www"><remote ip="10.0.0.2" name="www"/></localpath><crontab start="true" schedule="60"/></sersync>
<plugin name="socket"><localpath watch="/nonexistent/own"><deshost ip="127.0.0.1" port="9"/></localpath></plugin></head>`),
    'conf.xml',
    { cwd: '/', standalonePlugin: 'socket' },
  );
  const report = await checkReport(c, { initialSync: false, module: 'socket' });
  assert.match(report, /^watch: \/nonexistent\/own$/m);
  assert.match(report, /crontab: off \(-m\)$/m);
  assert.match(report, /^-m socket: the plugin alone on \/nonexistent\/own, told each batch; no rsync/m);
  assert.doesNotMatch(report, /^\s+rsync /m);
  assert.doesNotMatch(report, /^warning/m);
});

test('--check: crontab on, a realtime filter and no crontabfilter: a note (not a warning), full syncs carry the filter', async () => {
  const withCrontab = (crontabfilter: string) =>
    parseConfig(
      Buffer.from(`<head><filter start="true"><exclude expression="(.*)\\.gz"/></filter>
<sersync><localpath watch="/nonexistent/www"><remote ip="10.0.0.2" name="www"/></localpath>
<crontab start="true" schedule="60">${crontabfilter}</crontab></sersync></head>`),
      'conf.xml',
      { cwd: '/' },
    );
  const bare = withCrontab('');
  assert.deepEqual(bare.warnings, []);
  const report = await checkReport(bare, { initialSync: false, defaultTimeoutSeconds: 300 });
  assert.match(
    report,
    /^note: the realtime <filter> is on and <crontabfilter> has no <exclude>: sersync2 turned the crontab off here; sersync-ts keeps it/m,
  );
  assert.match(report, /crontab: every 60 min/);
  assert.match(fullSync(report), /'--filter=-p \*\.gz' /);
  const withPatterns = await checkReport(withCrontab('<crontabfilter start="true"><exclude expression="*.tmp"/></crontabfilter>'), {
    initialSync: false,
    defaultTimeoutSeconds: 300,
  });
  assert.doesNotMatch(withPatterns, /^note: the realtime <filter>/m);
  assert.match(fullSync(withPatterns), /'--filter=-p \*\.gz' .*--exclude=\*\.tmp/);
});

test('--check over ssh: the connection the daemon keeps open, and the runs joining it, as the daemon runs them', async () => {
  const ssh = (options: string) =>
    parseConfig(
      Buffer.from(`<head><sersync><localpath watch="/nonexistent/www"><remote ip="10.0.0.2" name="/srv/www"/></localpath>
<rsync><commonParams params="-artuz"/><ssh start="true" options="${options}"/></rsync></sersync>
<tuning stateDir="/var/lib/st"/></head>`),
      'conf.xml',
      { cwd: '/' },
    );
  const report = await checkReport(ssh('-i /root/k'), { initialSync: false, defaultTimeoutSeconds: 300 });
  assert.match(
    report,
    /ssh connection kept open .*\n {4}ssh -o ControlMaster=yes -o ControlPersist=no -o 'ControlPath=\/var\/lib\/st\/ssh-[0-9a-f]{16}-<pid>-<nonce>' -i \/root\/k -o BatchMode=yes .* -N 10\.0\.0\.2$/m,
  );
  assert.match(fullSync(report), /-e 'ssh -i \/root\/k -o ControlMaster=no -o ControlPath=\/var\/lib\/st\/ssh-[0-9a-f]{16}-<pid>-<nonce> /);
  // <ssh options> that choose their own Control options: no kept connection, the runs as written.
  const own = await checkReport(ssh('-o ControlMaster=auto'), { initialSync: false, defaultTimeoutSeconds: 300 });
  assert.doesNotMatch(own, /kept open|ControlPath/);
});
