/**
 * The wiring of the real daemon (bin/ → dist/) as an operator meets it: the status endpoint on `<host>`, whose
 * counters move when files change; `sersync-ts status` against it; the command plugin after each batch has reached
 * every remote; and `-m MODULE` run from the command line. Real rsync daemon with auth, real files, real listeners.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createConnection, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { type RsyncDaemon, startRsyncDaemon } from '../helpers/rsync-daemon.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { generateTree } from '../helpers/trees.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { type ConfSpec, runSersync, type SersyncProcess, startSersync, writeConf } from './support/sersync.ts';

let rsyncd: RsyncDaemon;
const running: SersyncProcess[] = [];
const servers: (TcpServer | HttpServer)[] = [];

before(async () => {
  rsyncd = await startRsyncDaemon({ modules: ['one', 'two', 'm', 'big', 'hup1', 'hup2'], user: 'rsync_backup', password: 'pw' });
});
after(async () => {
  await Promise.all(running.map((p) => p.stop()));
  for (const s of servers) await new Promise((r) => s.close(r));
  await rsyncd?.stop();
  await removeTempDirs();
});

const CMP = { absSymlinksStripped: true, ignoreRootAttrs: true };
/** A config for the test's rsync daemon: `modules` of it as remotes, auth, its own state dir and status port. */
function toRsyncd(dir: string, src: string, modules: string[], statusPort: number, more: Partial<ConfSpec> = {}): ConfSpec {
  return {
    watch: src,
    remotes: modules.map((name) => ({ ip: '127.0.0.1', name })),
    auth: { users: rsyncd.user as string, passwordFile: rsyncd.passwordFile as string },
    port: rsyncd.port,
    failLog: join(dir, 'state', 'fail.log'),
    host: { ip: '127.0.0.1', port: statusPort },
    ...more,
  };
}

const xmlAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/** `name{labels} value` of one Prometheus sample, or NaN. */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('the daemon serves /metrics, /status and / on <host>; counters move with changes; the command plugin runs after every remote has the change', async () => {
  const dir = await makeTempDir('endpoints-');
  const src = join(dir, 'src');
  await mkdir(src);
  const [one, two] = [rsyncd.modules.one as string, rsyncd.modules.two as string];
  // The hook records its argv and whether both remotes already hold the path; sersync2 handed it to `sh -c`.
  const record = join(dir, 'runs');
  await mkdir(record);
  const script = join(dir, 'hook.sh');
  await writeFile(
    script,
    `#!/bin/sh
rel=\${1#${src}/}
if [ -e "${one}/$rel" ] && [ -e "${two}/$rel" ]; then where=both; else where=missing; fi
[ "$SERSYNC_EVENT" = delete ] && where=deleted
printf '%s\\0' "$#" "$1" "$where" > "$(mktemp "${record}/run.XXXXXX")"
`,
  );
  await chmod(script, 0o755);
  const port = await freePort();
  const conf = await writeConf(
    dir,
    toRsyncd(dir, src, ['one', 'two'], port, {
      plugin: 'command',
      extra: `<plugin name="command"><param prefix="/bin/sh ${xmlAttr(script)}" suffix="" ignoreError="true"/></plugin>`,
    }),
  );
  const proc = await startSersync(['-o', conf]);
  running.push(proc);
  const base = `http://127.0.0.1:${port}`;
  await proc.waitForLog((r) => r.url === base, 'the status endpoint line');
  const metrics = async () => (await fetch(`${base}/metrics`)).text();

  const before = await metrics();
  assert.equal(sample(before, 'sersync_events_counted_total'), 0);
  assert.equal(sample(before, 'sersync_rsync_runs_total', 'remote="127.0.0.1::one",result="ok"'), 0);

  const names = ['; rm -rf x', '$(touch PWNED)', 'plain.html'];
  for (const n of names) await writeFile(join(src, n), n);
  await waitForIdenticalTrees(src, one, CMP);
  await waitForIdenticalTrees(src, two, CMP);
  const runs = async () => {
    const out: string[][] = [];
    for (const f of await readdir(record)) {
      const t = await readFile(join(record, f), 'utf8');
      if (t.endsWith('\0')) out.push(t.slice(0, -1).split('\0'));
    }
    return out;
  };
  await waitFor(async () => (await runs()).length >= names.length || undefined, { what: 'a hook run per file' });
  for (const n of names) {
    assert.deepEqual(
      (await runs()).find((r) => r[1] === join(src, n)),
      ['1', join(src, n), 'both'],
      `${n}: one argument, run once both remotes had it`,
    );
  }
  assert.ok(!existsSync(join(src, 'PWNED')) && !existsSync(join(dir, 'PWNED')), 'no shell ran a name');
  const batchLine = proc.records().find((r) => r.remote === '127.0.0.1::one' && typeof r.updated === 'number' && (r.updated as number) > 0);
  assert.ok(batchLine, 'a batch line for the remote');
  assert.equal(batchLine.exitCode, 0);
  assert.ok(
    (batchLine.bytes as number) > 0 && typeof batchLine.seconds === 'number' && Array.isArray(batchLine.sample),
    JSON.stringify(batchLine),
  );

  await waitFor(
    async () => {
      const m = await metrics();
      return sample(m, 'sersync_rsync_runs_total', 'remote="127.0.0.1::two",result="ok"') >= 1 && m;
    },
    { what: 'an ok rsync run in /metrics' },
  );
  const after1 = await metrics();
  assert.ok(sample(after1, 'sersync_events_counted_total') >= names.length, after1);
  assert.ok(sample(after1, 'sersync_paths_synced_total', 'remote="127.0.0.1::one"') >= names.length, 'paths synced moved');
  assert.ok(sample(after1, 'sersync_bytes_sent_total', 'remote="127.0.0.1::one"') > 0, 'bytes sent moved');
  assert.ok(sample(after1, 'sersync_last_success_timestamp_seconds', 'remote="127.0.0.1::one"') > 0);

  await rm(join(src, 'plain.html'));
  await waitForIdenticalTrees(src, one, CMP);
  await waitFor(async () => (await runs()).some((r) => r[2] === 'deleted') || undefined, { what: 'the hook run for the deletion' });
  const after2 = await metrics();
  assert.ok(sample(after2, 'sersync_events_counted_total') > sample(after1, 'sersync_events_counted_total'), 'events counted moved again');

  const status = (await (await fetch(`${base}/status`)).json()) as { watch: string; remotes: { id: string; degraded: boolean }[] };
  assert.equal(status.watch, src);
  assert.deepEqual(
    status.remotes.map((r) => [r.id, r.degraded]),
    [
      ['127.0.0.1::one', false],
      ['127.0.0.1::two', false],
    ],
  );
  const page = await (await fetch(`${base}/`)).text();
  assert.ok(page.includes('127.0.0.1::one') && page.includes('127.0.0.1::two'), 'the page lists both remotes');

  const printed = await runSersync(['status', '-o', conf]);
  assert.equal(printed.code, 0, printed.stderr);
  assert.match(printed.stdout, new RegExp(`^daemon +pid ${proc.proc.child.pid}, `));
  assert.match(printed.stdout, /^127\.0\.0\.1::one +ok /m);
  const json = await runSersync(['status', '--json', '-o', conf]);
  assert.equal((JSON.parse(json.stdout) as { watch: string }).watch, src);

  assert.equal(await proc.stop(), 0);
  const gone = await runSersync(['status', '-o', conf]);
  assert.equal(gone.code, 69, 'nothing answers once the daemon stopped');
  assert.match(gone.stderr, /no daemon answers/);
});

test("a status port in use (two configs on sersync2's default) is a warning: the daemon syncs without an endpoint", async () => {
  const dir = await makeTempDir('endpoints-busy-');
  const src = join(dir, 'src');
  await mkdir(src);
  const blocker = createTcpServer();
  servers.push(blocker);
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  const conf = await writeConf(dir, toRsyncd(dir, src, ['m'], port));
  const proc = await startSersync(['-o', conf]);
  running.push(proc);
  await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('no status endpoint'), 'the warning');
  await writeFile(join(src, 'still-synced.txt'), 'x');
  await waitForIdenticalTrees(src, rsyncd.modules.m as string, CMP);
  assert.equal(await proc.stop(), 0);
});

/** Records the raw bytes of each TCP connection. */
async function tcpListener(): Promise<{ port: number; received: Buffer[] }> {
  const received: Buffer[] = [];
  const server = createTcpServer((sock) => {
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', () => received.push(Buffer.concat(chunks)));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, received };
}

/** Records each HTTP request's method, URL and body; answers 200. */
async function httpListener(): Promise<{ port: number; requests: { method: string; url: string; body: string }[] }> {
  const requests: { method: string; url: string; body: string }[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString('latin1') });
      res.end('ok');
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, requests };
}

test('-m socket, -m http, -m refreshCDN and -m command from the command line: the module alone, no rsync', async () => {
  const dir = await makeTempDir('endpoints-m-');
  const src = join(dir, 'src');
  await mkdir(src);
  const tcp = await tcpListener();
  const http = await httpListener();
  const cdn = await httpListener();
  const marker = join(dir, 'command-ran');
  const blocks = `
<plugin name="command"><param prefix="/usr/bin/touch" suffix="${xmlAttr(marker)}" ignoreError="true"/></plugin>
<plugin name="socket"><localpath watch="${xmlAttr(src)}"><deshost ip="127.0.0.1" port="${tcp.port}"/></localpath></plugin>
<plugin name="http"><localpath watch="${xmlAttr(src)}"><deshost url="http://127.0.0.1:${http.port}/hook"/></localpath></plugin>
<plugin name="refreshCDN"><localpath watch="${xmlAttr(src)}">
  <cdninfo domainname="127.0.0.1" port="${cdn.port}" username="u" passwd="p"/>
  <sendurl base="http://www.example.com"/><regexurl regex="false" match="x"/>
</localpath></plugin>`;
  // The remote is unreachable on purpose: -m never runs rsync.
  const conf = await writeConf(dir, {
    watch: src,
    remotes: [{ ip: '127.0.0.9', name: 'nowhere' }],
    failLog: join(dir, 'state', 'fail.log'),
    host: { ip: '127.0.0.1', port: await freePort() },
    tuning: { quietMs: 50, maxWaitMs: 500 },
    extra: blocks,
  });
  for (const module of ['socket', 'http', 'refreshCDN', 'command'] as const) {
    const proc = await startSersync(['-m', module, '-o', conf], { waitReady: false });
    running.push(proc);
    await proc.waitForLog((r) => typeof r.msg === 'string' && r.msg.includes(`(-m ${module})`), `-m ${module} running`);
    const file = join(src, `${module}.txt`);
    await writeFile(file, module);
    if (module === 'socket')
      await waitFor(async () => tcp.received.some((b) => b.toString() === file) || undefined, { what: 'the path over TCP' });
    if (module === 'http') {
      await waitFor(async () => http.requests.some((r) => new URLSearchParams(r.body).get('inotifyPath') === file) || undefined, {
        what: 'the POST',
      });
    }
    if (module === 'refreshCDN')
      await waitFor(async () => cdn.requests.some((r) => r.url.endsWith(`/${module}.txt`)) || undefined, { what: 'the purge' });
    if (module === 'command') await waitFor(async () => existsSync(marker) || undefined, { what: 'the command' });
    assert.equal(await proc.stop(), 0, `-m ${module} stops cleanly`);
    assert.ok(!proc.records().some((r) => typeof r.rsyncRuns === 'number'), 'no rsync ran');
  }
});

test('-r of a large tree logs its progress: files checked of known, bytes, rate, ETA', async () => {
  const dir = await makeTempDir('endpoints-progress-');
  const src = join(dir, 'src');
  await generateTree(src, { dirs: 40, filesPerDir: 100 });
  // Every 100 ms instead of every 10 s, and a bandwidth limit so that the sync lasts long enough to report.
  const conf = await writeConf(dir, toRsyncd(dir, src, ['big'], await freePort(), { tuning: { progressMs: 100 } }));
  await writeFile(conf, (await readFile(conf, 'utf8')).replace('params="-artuz"', 'params="-artuz --bwlimit=2000"'));
  const proc = await startSersync(['-r', '-o', conf]);
  running.push(proc);
  await waitForIdenticalTrees(src, rsyncd.modules.big as string, { ...CMP, timeoutMs: 60_000 });
  await proc.waitForLog((r) => r.full === true && typeof r.msg === 'string' && r.msg.endsWith('done'), 'the full sync to end');
  const lines = proc.records().filter((r) => typeof r.msg === 'string' && r.msg.startsWith('full sync to 127.0.0.1::big: '));
  assert.ok(lines.length >= 2, `progress lines: ${lines.length}`);
  const last = lines.at(-1) as Record<string, unknown>;
  assert.match(
    String(last.msg),
    /^full sync to 127\.0\.0\.1::big: [\d,]+ of [\d,]+ files checked, [\d,]+ sent, [\d.]+ [kMG]?B, \d+ %, \S+\/s/,
  );
  for (const key of ['checked', 'known', 'transferred', 'bytes', 'percent', 'rate', 'seconds']) assert.ok(key in last, key);
  const checked = lines.map((r) => r.checked as number);
  assert.deepEqual(
    [...checked].sort((a, b) => a - b),
    checked,
    'files checked only grow',
  );
});

test('SIGHUP reloads: a broken config is reported and the running one goes on; a valid one switches remote and status port', async () => {
  const dir = await makeTempDir('endpoints-hup-');
  const src = join(dir, 'src');
  await mkdir(src);
  const spec = (module: string, port: number) => toRsyncd(dir, src, [module], port);
  const [port1, port2] = [await freePort(), await freePort()];
  const conf = await writeConf(dir, spec('hup1', port1));
  const proc = await startSersync(['-o', conf]);
  running.push(proc);
  await writeFile(join(src, 'a.txt'), 'before the reload');
  await waitForIdenticalTrees(src, rsyncd.modules.hup1 as string, CMP);

  const good = await readFile(conf, 'utf8');
  // A remote name that rsync would read as an option: refused (sersync2 ran lenient values; sersync-ts too).
  await writeFile(conf, good.replace('name="hup1"', 'name="-hup1"'));
  proc.proc.child.kill('SIGHUP');
  const bad = await proc.waitForLog(
    (r) => typeof r.msg === 'string' && r.msg.startsWith('SIGHUP: the new config is invalid'),
    'the reload error',
  );
  assert.match((bad.errors as string[]).join('\n'), /confxml\.xml:\d+: <sersync><localpath><remote name="-hup1">: starts with "-"/);
  await writeFile(join(src, 'b.txt'), 'after the broken reload');
  await waitForIdenticalTrees(src, rsyncd.modules.hup1 as string, CMP);
  assert.equal((await fetch(`http://127.0.0.1:${port1}/status`)).status, 200, 'the old endpoint still answers');

  await writeConf(dir, spec('hup2', port2));
  proc.proc.child.kill('SIGHUP');
  await proc.waitForLog((r) => r.msg === 'config reloaded', 'the reload');
  await writeFile(join(src, 'c.txt'), 'after the good reload');
  // A remote new in the config gets a full sync: a.txt and b.txt too.
  await waitForIdenticalTrees(src, rsyncd.modules.hup2 as string, CMP);
  const st = (await (await fetch(`http://127.0.0.1:${port2}/status`)).json()) as { remotes: { id: string }[] };
  assert.deepEqual(
    st.remotes.map((r) => r.id),
    ['127.0.0.1::hup2'],
  );
  await assert.rejects(fetch(`http://127.0.0.1:${port1}/status`), 'the old port is closed');
  assert.equal(proc.proc.running(), true);
  assert.equal(await proc.stop(), 0);
});

test('signals during start-up: SIGUSR1 opens no inspector, SIGHUP is not fatal, SIGTERM stops the daemon once it runs', async () => {
  const dir = await makeTempDir('endpoints-early-');
  const src = join(dir, 'src');
  await mkdir(src);
  // A start-up that takes 3 s: rsync --version answers late (the rsync that syncs is the real one).
  const bin = join(dir, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'rsync'), '#!/bin/sh\n[ "$1" = --version ] && sleep 3\nexec /usr/bin/rsync "$@"\n', { mode: 0o755 });
  const conf = await writeConf(dir, toRsyncd(dir, src, ['m'], await freePort()));
  const proc = await startSersync(['-o', conf], { waitReady: false, env: { PATH: `${bin}:${process.env.PATH}` } });
  running.push(proc);
  // Node is up and the handlers are installed well within 1.5 s; rsync --version answers after 3 s.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(proc.records().length, 0, 'still starting: nothing logged yet');
  const pid = proc.proc.child.pid as number;
  process.kill(pid, 'SIGUSR1');
  process.kill(pid, 'SIGHUP');
  process.kill(pid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(proc.proc.running(), true, `neither SIGHUP nor SIGTERM killed it outright:\n${proc.proc.output()}`);
  const inspector = await new Promise<boolean>((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port: 9229 });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
  assert.equal(inspector, false, 'nothing listens on the inspector port');
  const status = await proc.proc.exited;
  assert.equal(status.code, 0, proc.proc.output());
  assert.ok(
    proc.records().some((r) => r.msg === 'stopped'),
    'it started, then stopped cleanly',
  );
  const file = proc.records().find((r) => typeof r.queue === 'string')?.queue as string;
  const queue = JSON.parse(await readFile(file, 'utf8')) as { running: boolean };
  assert.equal(queue.running, false, 'a clean stop: the next start does not take it for a crash');
});
