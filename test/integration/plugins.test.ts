/**
 * The plugins with real parts: `-m` mode (startStandalone with a real DirWatcher on a temp directory), a real command
 * script that records its argv, a TCP listener and HTTP servers on 127.0.0.1 (port 0) that record what they receive.
 * The CLI is not involved: it only chooses startStandalone or createAfterSync (see the issue note).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import pino, { type Logger } from 'pino';
import type { Config, PluginName } from '../../src/config/model.ts';
import { parseConfig } from '../../src/config/parse-config.ts';
import { fromUtf8 } from '../../src/core/paths.ts';
import { createAfterSync } from '../../src/plugins/after-sync.ts';
import { createSocketPlugin } from '../../src/plugins/socket-plugin.ts';
import { type StandalonePlugin, startStandalone } from '../../src/plugins/standalone.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitFor } from '../helpers/wait.ts';

const running: StandalonePlugin[] = [];
const servers: (TcpServer | HttpServer)[] = [];

after(async () => {
  for (const r of running.splice(0)) await r.stop(0);
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  await removeTempDirs();
});

const xmlAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
const FAST = '<tuning quietMs="50" maxWaitMs="500"/>';

function config(watch: string, pluginBlock: string, standalone: PluginName | null): Config {
  const xml = `<head>${FAST}
<sersync><localpath watch="${xmlAttr(watch)}"><remote ip="127.0.0.1" name="a"/><remote ip="127.0.0.2" name="b"/></localpath>
<plugin start="${standalone === null ? 'true' : 'false'}" name="command"/></sersync>
${pluginBlock}</head>`;
  return parseConfig(Buffer.from(xml), 'test.xml', standalone === null ? {} : { standalonePlugin: standalone });
}

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

/** A command-plugin script that records, per run, SERSYNC_EVENT, SERSYNC_ISDIR and its argv, NUL-separated. */
async function recordingScript(dir: string, extra = ''): Promise<{ script: string; runs: () => Promise<string[][]> }> {
  const recDir = `${dir}/runs`;
  await mkdir(recDir);
  const script = `${dir}/record.sh`;
  await writeFile(
    script,
    `#!/bin/sh
out=$(mktemp "${recDir}/run.XXXXXX")
printf '%s\\0' "$SERSYNC_EVENT" "$SERSYNC_ISDIR" "$#" "$@" > "$out"
${extra}
`,
  );
  await chmod(script, 0o755);
  const runs = async () => {
    const files = await readdir(recDir);
    const out: string[][] = [];
    for (const f of files) {
      const text = await readFile(`${recDir}/${f}`, 'utf8');
      if (text.endsWith('\0')) out.push(text.slice(0, -1).split('\0'));
    }
    return out;
  };
  return { script, runs };
}

test('-m command: a real script gets the absolute path as one argument, whatever the name; nothing is interpreted', async () => {
  const base = await makeTempDir('plug-cmd');
  const watch = `${base}/www`;
  const cwd = `${base}/cwd`;
  await mkdir(watch);
  await mkdir(`${cwd}/x`, { recursive: true });
  await writeFile(`${cwd}/x/keep`, 'canary');
  const { script, runs } = await recordingScript(base);
  const c = config(
    watch,
    `<plugin name="command"><param prefix="/bin/sh ${script}" suffix="--tail" ignoreError="false"/></plugin>`,
    'command',
  );
  const { log, lines } = capture();
  // sersync2's system() ran in its working directory: a shell would have removed ./x and created ./pwned here.
  const oldCwd = process.cwd();
  process.chdir(cwd);
  try {
    const plugin = await startStandalone(c, 'command', { log });
    running.push(plugin);
    const names = ['; rm -rf x', '$(touch pwned)', '`touch pwned`', 'a "quoted" & * name.txt', 'café.txt'];
    for (const name of names) await writeFile(`${watch}/${name}`, 'data');
    await mkdir(`${watch}/newdir`);
    await waitFor(async () => (await runs()).length >= names.length + 1 || undefined, { what: 'a run per created path' });
    await rm(`${watch}/; rm -rf x`);
    await waitFor(async () => (await runs()).some((r) => r[0] === 'delete') || undefined, { what: 'the run for the deletion' });
    // A name that is not UTF-8 cannot be an argument: skipped, with a warning naming it.
    await writeFile(Buffer.concat([Buffer.from(`${watch}/bad`), Buffer.from([0xff]), Buffer.from('.txt')]), 'x');
    await waitFor(async () => lines.some((l) => l.includes('not valid UTF-8')) || undefined, { what: 'the warning for a non-UTF-8 name' });

    const got = await runs();
    for (const name of names) {
      const run = got.find((r) => r[0] === 'change' && r[3] === `${watch}/${name}`);
      assert.ok(run, `a run for ${name}: ${JSON.stringify(got)}`);
      assert.deepEqual(run, ['change', '0', '2', `${watch}/${name}`, '--tail'], 'exactly two arguments: the path and the suffix');
    }
    assert.ok(
      got.some((r) => r.join('|') === `change|1|2|${watch}/newdir|--tail`),
      'a new directory, SERSYNC_ISDIR=1',
    );
    assert.ok(
      got.some((r) => r.join('|') === `delete|0|2|${watch}/; rm -rf x|--tail`),
      'the deletion',
    );
    assert.ok(!got.some((r) => r.some((a) => a.includes('bad'))), 'the non-UTF-8 name never ran');
    assert.ok(existsSync(`${cwd}/x/keep`), './x survived');
    assert.ok(!existsSync(`${cwd}/pwned`) && !existsSync(`${watch}/pwned`), 'nothing was run by a shell');
  } finally {
    process.chdir(oldCwd);
  }
});

test('-m command with several <localpath> (an extension): the command runs for changes under each of them', async () => {
  const base = await makeTempDir('plug-sites');
  const [one, two] = [`${base}/one`, `${base}/two`];
  await mkdir(one);
  await mkdir(two);
  const { script, runs } = await recordingScript(base);
  const xml = `<head>${FAST}
<sersync><localpath watch="${one}"><remote ip="127.0.0.1" name="a"/></localpath><localpath watch="${two}"/>
<plugin start="false" name="command"/></sersync>
<plugin name="command"><param prefix="/bin/sh ${script}" suffix="" ignoreError="false"/></plugin></head>`;
  const c = parseConfig(Buffer.from(xml), 'test.xml', { standalonePlugin: 'command' });
  assert.ok(
    c.warnings.some((w) => /several <localpath>.*runs the command for them all, also .*two/.test(w)),
    c.warnings.join('\n'),
  );
  const plugin = await startStandalone(c, 'command', { log: capture().log });
  running.push(plugin);
  assert.deepEqual(plugin.roots, [one, two]);
  await writeFile(`${one}/a.txt`, 'a');
  await writeFile(`${two}/b.txt`, 'b');
  await waitFor(async () => (await runs()).length >= 2 || undefined, { what: 'a run for each root' });
  const paths = (await runs()).map((r) => r[3]).sort();
  assert.deepEqual(paths, [`${one}/a.txt`, `${two}/b.txt`]);
});

test('-m takes <tuning watcher> as sync mode does: chokidar when the config says so', async () => {
  const base = await makeTempDir('plug-chokidar');
  const watch = `${base}/www`;
  await mkdir(watch);
  const { script, runs } = await recordingScript(base);
  const xml = `<head><tuning quietMs="50" maxWaitMs="500" watcher="chokidar"/>
<sersync><localpath watch="${xmlAttr(watch)}"><remote ip="127.0.0.1" name="a"/></localpath></sersync>
<plugin name="command"><param prefix="/bin/sh ${script}" suffix="" ignoreError="true"/></plugin></head>`;
  const c = parseConfig(Buffer.from(xml), 'test.xml', { standalonePlugin: 'command' });
  const { log, lines } = capture();
  const plugin = await startStandalone(c, 'command', { log });
  running.push(plugin);
  const started = lines.map((l) => JSON.parse(l) as { msg?: string; backend?: string }).find((r) => r.msg?.includes('(-m command)'));
  assert.equal(started?.backend, 'chokidar', 'the watcher that <tuning watcher> names');
  await writeFile(`${watch}/a.txt`, 'x');
  await waitFor(async () => (await runs()).some((r) => r[0] === 'change' && r[3] === `${watch}/a.txt`) || undefined, {
    what: 'the run for a.txt',
  });
});

test('command: a hanging script is killed at the timeout and later events still run', async () => {
  const base = await makeTempDir('plug-hang');
  const watch = `${base}/www`;
  await mkdir(watch);
  const { script, runs } = await recordingScript(base, `case "$1" in *hang*) echo $$ > "${base}/hang.pid"; exec sleep 30;; esac`);
  const c = config(watch, `<plugin name="command"><param prefix="/bin/sh ${script}" suffix="" ignoreError="true"/></plugin>`, 'command');
  const { log, lines } = capture();
  const plugin = await startStandalone(c, 'command', { log, limits: { concurrency: 1, timeoutMs: 300 } });
  running.push(plugin);
  await writeFile(`${watch}/hang.txt`, 'x');
  await waitFor(async () => existsSync(`${base}/hang.pid`) || undefined, { what: 'the hanging script to start' });
  const pid = Number((await readFile(`${base}/hang.pid`, 'utf8')).trim());
  await writeFile(`${watch}/after.txt`, 'x');
  await waitFor(async () => (await runs()).some((r) => r[3] === `${watch}/after.txt`) || undefined, { what: 'the next event to run' });
  assert.ok(lines.some((l) => l.includes(`gave up on ${watch}/hang.txt after 300 ms`)));
  await waitFor(
    async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    },
    { what: `the hanging process ${pid} to be gone` },
  );
});

interface Connection {
  bytes: Buffer;
}

async function tcpListener(host: string): Promise<{ port: number; received: Connection[] }> {
  const received: Connection[] = [];
  const server = createTcpServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => {
      received.push({ bytes: Buffer.concat(chunks) });
      socket.end();
    });
    socket.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, received };
}

async function ipv6Available(): Promise<boolean> {
  const server = createTcpServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '::1', () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

test('-m socket: each path goes as raw bytes over its own connection, to IPv4, IPv6 and host-name receivers', async (t) => {
  const base = await makeTempDir('plug-sock');
  const syncWatch = `${base}/sync`;
  const own = `${base}/own`;
  await mkdir(syncWatch);
  await mkdir(own);
  const v4 = await tcpListener('127.0.0.1');
  const hosts = [`<deshost ip="127.0.0.1" port="${v4.port}"/>`];
  const v6 = (await ipv6Available()) ? await tcpListener('::1') : null;
  if (v6) hosts.push(`<deshost ip="::1" port="${v6.port}"/>`);
  else t.diagnostic('no IPv6 loopback here: the IPv6 receiver is not tested');
  const named = await tcpListener('127.0.0.1');
  hosts.push(`<deshost ip="localhost" port="${named.port}"/>`);
  const c = config(syncWatch, `<plugin name="socket"><localpath watch="${own}">${hosts.join('')}</localpath></plugin>`, 'socket');
  const plugin = await startStandalone(c, 'socket', { log: capture().log });
  running.push(plugin);
  assert.deepEqual(plugin.roots, [own], 'the plugin block`s own directory is watched');

  const odd = Buffer.concat([Buffer.from(`${own}/caf`), Buffer.from([0xe9]), Buffer.from('.txt')]); // latin1, not UTF-8
  await writeFile(odd, 'x');
  await writeFile(`${own}/plain.txt`, 'x');
  await writeFile(`${syncWatch}/ignored.txt`, 'x');
  const expected = [odd, Buffer.from(`${own}/plain.txt`)].map((b) => b.toString('hex')).sort();
  for (const receiver of [v4, v6, named]) {
    if (receiver === null) continue;
    await waitFor(async () => receiver.received.length >= 2 || undefined, { what: 'two connections' });
    assert.deepEqual(receiver.received.map((r) => r.bytes.toString('hex')).sort(), expected, 'the path, raw, no terminator');
  }
  await rm(`${own}/plain.txt`);
  await waitFor(async () => v4.received.length >= 3 || undefined, { what: 'the deletion' });
  assert.equal(v4.received[2]?.bytes.toString(), `${own}/plain.txt`);
});

test('socket: a receiver that is not up yet gets the path on a later attempt; a dead one is given up and logged', async () => {
  const base = await makeTempDir('plug-retry');
  const probe = await tcpListener('127.0.0.1');
  const port = probe.port;
  // Free the port, then listen on it again only after the first attempt has failed.
  const last = servers.pop() as TcpServer;
  await new Promise((r) => last.close(r));
  const { log, lines } = capture();
  const plugin = createSocketPlugin(
    { watch: base, hosts: [{ ip: '127.0.0.1', port }] },
    { log },
    { attempts: 4, connectTimeoutMs: 500, pauseMs: 150 },
  );
  plugin.notify([{ path: `${base}/late.txt`, isDir: false, deleted: false }]);
  await new Promise((r) => setTimeout(r, 60));
  const received: Buffer[] = [];
  const server = createTcpServer((s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => {
      received.push(Buffer.concat(chunks));
      s.end();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  await waitFor(async () => received.length === 1 || undefined, { what: 'the retried connection' });
  assert.equal(received[0]?.toString(), `${base}/late.txt`);
  await new Promise((r) => server.close(r));
  plugin.notify([{ path: `${base}/never.txt`, isDir: false, deleted: false }]);
  await plugin.close(5000);
  assert.ok(lines.some((l) => l.includes(`could not send ${base}/never.txt to 127.0.0.1:${port} after 4 attempts`)));
});

interface HttpRequestRecord {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

async function httpServer(status = 200): Promise<{ port: number; requests: HttpRequestRecord[] }> {
  const requests: HttpRequestRecord[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      res.statusCode = status;
      res.end('ok');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, requests };
}

test('-m http: one form POST per path with watchroot, isdir, inotifyPath and mask; URL credentials become a header', async () => {
  const base = await makeTempDir('plug-http');
  const own = `${base}/own`;
  await mkdir(own);
  const srv = await httpServer();
  const c = config(
    `${base}/sync`,
    `<plugin name="http"><localpath watch="${own}"><deshost url="http://hook:pa%20ss@127.0.0.1:${srv.port}/changed?key=1"/></localpath></plugin>`,
    'http',
  );
  const { log, lines } = capture();
  const plugin = await startStandalone(c, 'http', { log });
  running.push(plugin);
  await writeFile(`${own}/a&b.txt`, 'x');
  await mkdir(`${own}/dir`);
  await waitFor(async () => srv.requests.length >= 2 || undefined, { what: 'two POSTs' });
  await rm(`${own}/a&b.txt`);
  await waitFor(async () => srv.requests.length >= 3 || undefined, { what: 'the POST for the deletion' });
  const forms = srv.requests.map((r) => Object.fromEntries(new URLSearchParams(r.body.toString('latin1'))));
  for (const r of srv.requests) {
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/changed?key=1');
    assert.equal(r.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(r.headers.authorization, `Basic ${Buffer.from('hook:pa ss').toString('base64')}`);
  }
  assert.deepEqual(
    forms.sort((x, y) => String(x.mask).localeCompare(String(y.mask))),
    [
      { watchroot: own, isdir: '1', inotifyPath: `${own}/dir`, mask: String(0x40000100) },
      { watchroot: own, isdir: '0', inotifyPath: `${own}/a&b.txt`, mask: '512' },
      { watchroot: own, isdir: '0', inotifyPath: `${own}/a&b.txt`, mask: '8' },
    ],
  );
  assert.ok(!lines.some((l) => l.includes('pa ss') || l.includes('pa%20ss')), 'the password is never logged');
});

test('-m refreshCDN: PURGE of the sersync2 URL to domainname:port, Host of the URL, credentials only in a header', async () => {
  const base = await makeTempDir('plug-cdn');
  const own = `${base}/site`;
  await mkdir(`${own}/img`, { recursive: true });
  const cache = await httpServer();
  const c = config(
    `${base}/sync`,
    `<plugin name="refreshCDN"><localpath watch="${own}/">
  <cdninfo domainname="127.0.0.1" port="${cache.port}" username="cdnuser" passwd="t0p-secret"/>
  <sendurl base="http://pic.example.com/cms"/>
  <regexurl regex="false" match="unused"/>
</localpath></plugin>`,
    'refreshCDN',
  );
  const { log, lines } = capture();
  const plugin = await startStandalone(c, 'refreshCDN', { log });
  running.push(plugin);
  await writeFile(`${own}/img/logo 1.png`, 'x');
  await mkdir(`${own}/news`);
  await waitFor(async () => cache.requests.length >= 2 || undefined, { what: 'two purges' });
  const got = cache.requests.map((r) => `${r.method} ${r.headers.host}${r.url} ${r.headers['x-purge-type']}`).sort();
  assert.deepEqual(got, ['PURGE pic.example.com/cms/img/logo%201.png url', 'PURGE pic.example.com/cms/news/ dir']);
  for (const r of cache.requests) {
    assert.equal(r.headers.authorization, `Basic ${Buffer.from('cdnuser:t0p-secret').toString('base64')}`);
    assert.ok(!r.url.includes('secret') && !r.url.includes('cdnuser'), 'no credentials in the request line');
  }
  assert.ok(
    lines.some((l) => l.includes('purged http://pic.example.com/cms/img/logo%201.png')),
    'the result is logged',
  );
  assert.ok(!lines.some((l) => l.includes('t0p-secret') || l.includes(Buffer.from('cdnuser:t0p-secret').toString('base64'))));
});

test('refreshCDN: a failing cache is logged with its status', async () => {
  const base = await makeTempDir('plug-cdn-fail');
  await mkdir(`${base}/site`);
  const cache = await httpServer(403);
  const c = config(
    base,
    `<plugin name="refreshCDN"><localpath watch="${base}/site">
  <cdninfo domainname="127.0.0.1" port="${cache.port}" username="u" passwd="p"/>
  <sendurl base="http://pic.example.com"/><regexurl regex="false" match="x"/></localpath></plugin>`,
    'refreshCDN',
  );
  const { log, lines } = capture();
  const plugin = await startStandalone(c, 'refreshCDN', { log });
  running.push(plugin);
  await writeFile(`${base}/site/a.css`, 'x');
  await waitFor(async () => lines.some((l) => l.includes('purge of http://pic.example.com/a.css')) || undefined, { what: 'the failure' });
  assert.ok(lines.some((l) => l.includes(`at 127.0.0.1:${cache.port} failed: 403 Forbidden`)));
});

test('sync mode: the command runs once a change has reached both remotes (createAfterSync with a real script)', async () => {
  const base = await makeTempDir('plug-after');
  const watch = `${base}/www`;
  await mkdir(watch);
  const { script, runs } = await recordingScript(base);
  const c = config(watch, `<plugin name="command"><param prefix="/bin/sh ${script}" suffix="" ignoreError="false"/></plugin>`, null);
  const after = createAfterSync(c, { log: capture().log });
  assert.ok(after);
  const [a, b] = c.remotes.map((r) => r.id) as [string, string];
  const name = fromUtf8('; rm -rf 日本');
  const batch = { full: false, fullReason: '', entries: [{ path: name, tree: false, deletes: false }], since: 0 };
  after.synced(a, batch, { updated: [name], deleted: [], seconds: 0 });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(await runs(), [], 'one remote is not every remote');
  after.synced(b, batch, { updated: [name], deleted: [], seconds: 0 });
  await after.close(10_000);
  assert.deepEqual(await runs(), [['change', '0', '1', `${watch}/; rm -rf 日本`]]);
});

test('rename inside the watched tree reaches the plugin as a delete and a create', async () => {
  const base = await makeTempDir('plug-mv');
  const own = `${base}/own`;
  await mkdir(own);
  const v4 = await tcpListener('127.0.0.1');
  const c = config(
    base,
    `<plugin name="socket"><localpath watch="${own}"><deshost ip="127.0.0.1" port="${v4.port}"/></localpath></plugin>`,
    'socket',
  );
  const plugin = await startStandalone(c, 'socket', { log: capture().log });
  running.push(plugin);
  await writeFile(`${own}/a.txt`, 'x');
  await waitFor(async () => v4.received.length >= 1 || undefined, { what: 'the create' });
  await rename(`${own}/a.txt`, `${own}/b.txt`);
  await waitFor(async () => v4.received.length >= 3 || undefined, { what: 'the rename' });
  assert.deepEqual(
    v4.received
      .slice(1)
      .map((r) => r.bytes.toString())
      .sort(),
    [`${own}/a.txt`, `${own}/b.txt`],
  );
});
