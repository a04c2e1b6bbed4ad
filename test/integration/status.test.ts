import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { statusCommand } from '../../src/cli/status-command.ts';
import { parseConfig } from '../../src/config/parse-config.ts';
import { renderMetrics } from '../../src/observe/metrics.ts';
import type { DaemonStatus, StatusSource } from '../../src/observe/status-model.ts';
import { type StatusServer, startStatusServer } from '../../src/observe/status-server.ts';
import { freePort } from '../helpers/ports.ts';
import { statusFixture as fixture } from '../helpers/status-fixture.ts';
import { runProcess } from '../helpers/processes.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';

/**
 * The status endpoint as a client meets it: a real HTTP server on 127.0.0.1 fed by a fake StatusSource, read with
 * fetch, with a real headless Chromium (Debian's `chromium`; installed when missing, as root, only when
 * SERSYNC_TEST_HOST_CHANGES=1 asks for it, else skipped with the reason), and with `sersync-ts status`. With
 * SERSYNC_TEST_HOST_CHANGES=1, a machine without Chromium fails this test unless CHROMIUM_UNAVAILABLE_OK=1.
 */

const EVIL_WATCH = '/srv/<b>site</b> & "quotes" \'x\' \uD800 end';

/** A StatusSource whose answer the test changes; counts the snapshots taken. */
class FakeSource implements StatusSource {
  status: DaemonStatus = fixture(EVIL_WATCH);
  snapshots = 0;
  fail = false;
  snapshot(): DaemonStatus {
    this.snapshots++;
    if (this.fail) throw new Error('snapshot broke');
    return this.status;
  }
}

interface Logged {
  level: string;
  args: unknown[];
}
function fakeLog(into: Logged[]) {
  const at =
    (level: string) =>
    (...args: unknown[]) =>
      void into.push({ level, args });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

let tmp: string;
let source: FakeSource;
let server: StatusServer;
const logged: Logged[] = [];

before(async () => {
  tmp = await makeTempDir('status-');
  source = new FakeSource();
  server = await startStatusServer({ host: '127.0.0.1', port: 0, source, log: fakeLog(logged) as never });
});
after(async () => {
  await server?.close();
  await removeTempDirs();
});

/** A raw HTTP exchange (fetch cannot send every method, nor show a HEAD body). */
function exchange(url: string, method: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(method === 'POST' ? 'ignored body' : undefined);
  });
}

describe('status endpoint over HTTP', () => {
  test('listens on 127.0.0.1 with the real port in the url', () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(new URL(server.url).port, '0');
    assert.deepEqual(server.addresses, [new URL(server.url).host]);
    assert.ok(!logged.some((l) => l.level === 'warn'), 'loopback is not warned about');
  });

  test('GET /metrics: Prometheus text 0.0.4 of a fresh snapshot', async () => {
    source.status = fixture(EVIL_WATCH);
    const before = source.snapshots;
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const text = await res.text();
    assert.equal(text, renderMetrics({ ...source.status, watch: EVIL_WATCH.replace('\uD800', '\uFFFD') }));
    assert.ok(text.includes('sersync_pending_paths{remote="10.0.0.3::www"} 17\n'));
    assert.equal(source.snapshots, before + 1);

    source.status = { ...source.status, events: { ...source.status.events, seen: 99999 } };
    assert.match(
      await (await fetch(`${server.url}/metrics`)).text(),
      /^sersync_events_seen_total 99999$/m,
      'every request sees the current state',
    );
  });

  test('GET /status: the DaemonStatus as JSON', async () => {
    source.status = fixture('/data/www');
    const res = await fetch(`${server.url}/status?pretty=1`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.deepEqual(await res.json(), fixture('/data/www'));
  });

  test('GET /: the HTML page, self-contained, with a policy that allows nothing but its inline style', async () => {
    source.status = fixture(EVIL_WATCH);
    const res = await fetch(`${server.url}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'; style-src 'unsafe-inline'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const html = await res.text();
    assert.ok(!/<script|<link|src=|url\(/i.test(html), 'no script and no external asset');
    assert.ok(html.includes('/srv/&#60;b&#62;site&#60;/b&#62; &#38; &#34;quotes&#34; &#39;x&#39; \uFFFD end'), 'the watch path, escaped');
  });

  test('HEAD answers like GET without a body; anything else is 404 or 405', async () => {
    const head = await exchange(`${server.url}/metrics`, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    for (const path of ['/nope', '/metrics/', '/status.json', '/status/x', '/favicon.ico']) {
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 404, path);
      assert.match(await res.text(), /try \/ \(page\), \/status \(JSON\) or \/metrics/);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const res = await exchange(`${server.url}/metrics`, method);
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.allow, 'GET, HEAD');
    }
  });

  test('a snapshot that throws is a 500 and is logged; the server goes on', async () => {
    source.fail = true;
    try {
      const res = await fetch(`${server.url}/status`);
      assert.equal(res.status, 500);
      assert.ok(logged.some((l) => l.level === 'error'));
    } finally {
      source.fail = false;
    }
    assert.equal((await fetch(`${server.url}/status`)).status, 200);
  });

  test('a busy port rejects with the address and what to do, and leaves nothing bound', async () => {
    const blocker = await listenTcp('127.0.0.1', 0);
    const port = (blocker.address() as { port: number }).port;
    try {
      await assert.rejects(startStatusServer({ host: '127.0.0.1', port, source, log: fakeLog([]) as never }), (err: Error) => {
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
        assert.match(err.message, /give each config its own <host port>/);
        assert.equal((err.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
        return true;
      });
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    // The port is free again: the failed start did not keep a half-open server.
    const again = await startStatusServer({ host: '127.0.0.1', port, source, log: fakeLog([]) as never });
    await again.close();
  });

  test("an address that is not this machine's is refused with a hint", async () => {
    // 192.0.2.0/24 is TEST-NET-1: never assigned to a real interface.
    await assert.rejects(
      startStatusServer({ host: '192.0.2.7', port: 0, source, log: fakeLog([]) as never }),
      /192\.0\.2\.7 is not an address of this machine/,
    );
  });

  test('"localhost" (sersync2\'s default) listens on the loopback addresses only', async () => {
    const log: Logged[] = [];
    const s = await startStatusServer({ host: 'localhost', port: 0, source, log: fakeLog(log) as never });
    try {
      const port = new URL(s.url).port;
      assert.equal(s.url, `http://localhost:${port}`);
      assert.ok(s.addresses.includes(`127.0.0.1:${port}`), s.addresses.join(' '));
      for (const a of s.addresses) assert.match(a, /^(127\.0\.0\.1|\[::1\]):\d+$/);
      for (const a of s.addresses) assert.equal((await fetch(`http://${a}/status`)).status, 200, a);
      assert.equal((await fetch(`${s.url}/status`)).status, 200);
      assert.ok(!log.some((l) => l.level === 'warn'));
    } finally {
      await s.close();
    }
  });

  test('a wildcard host is served, with a warning that it is reachable from other machines', async () => {
    const log: Logged[] = [];
    const s = await startStatusServer({ host: '0.0.0.0', port: 0, source, log: fakeLog(log) as never });
    try {
      assert.equal((await fetch(`http://127.0.0.1:${new URL(s.url).port}/status`)).status, 200);
      assert.ok(log.some((l) => l.level === 'warn' && String(l.args[1]).includes('no authentication')));
    } finally {
      await s.close();
    }
  });

  test('close() ends at once even with a keep-alive connection open', async () => {
    const s = await startStatusServer({ host: '127.0.0.1', port: 0, source, log: fakeLog([]) as never });
    const res = await fetch(`${s.url}/status`); // undici keeps the connection alive
    await res.text();
    const t0 = Date.now();
    await s.close();
    assert.ok(Date.now() - t0 < 1000, `closed in ${Date.now() - t0} ms`);
    await assert.rejects(fetch(`${s.url}/status`));
  });
});

describe('the page in a real browser (headless Chromium)', () => {
  test('shows the figures, escaped, and renders a 1200x800 screenshot', { timeout: 15 * 60_000 }, async (t) => {
    const chromium = await ensureChromium();
    if (chromium === null) {
      t.skip('chromium is not installed; SERSYNC_TEST_HOST_CHANGES=1 installs it (or CHROMIUM_UNAVAILABLE_OK=1 said to go without)');
      return;
    }
    source.status = fixture(EVIL_WATCH);
    const profile = join(tmp, 'chromium-profile');
    mkdirSync(profile, { recursive: true });
    const flags = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
    ];
    const dump = await runProcess(chromium, [...flags, '--dump-dom', `${server.url}/`], { timeoutMs: 120_000 });
    assert.equal(dump.code, 0, `chromium --dump-dom failed:\n${dump.stderr.slice(-2000)}`);
    const dom = dump.stdout;
    assert.match(dom, /<title>sersync-ts: \/srv\/&lt;b&gt;site&lt;\/b&gt; &amp; "quotes" 'x' \uFFFD end<\/title>/);
    assert.ok(!/<script|<b>/.test(dom), 'nothing from the status became markup');

    assert.equal(text(dom, 'watch'), EVIL_WATCH.replace('\uD800', '\uFFFD'));
    assert.equal(text(dom, 'pid'), '4242');
    assert.equal(text(dom, 'uptime'), '2 h 5 min');
    assert.equal(text(dom, 'watcher'), 'dirs (inotify)');
    assert.equal(text(dom, 'watches'), '1,234 of 65,536 (1.9 %)');
    assert.equal(text(dom, 'events'), '12,345 seen · 10 ignored · 12,000 counted · 0 lost');
    assert.equal(text(dom, 'crontab'), 'next full sync in 12 min');

    const rows = [...dom.matchAll(/<tr data-remote="([^"]*)"/g)].map((m) => decode(m[1] as string));
    assert.deepEqual(rows, ['10.0.0.2::www', '10.0.0.3::www', 'mirror@10.0.0.4:/srv/www', '/mnt/backup']);
    const expected: Record<string, Record<string, string>> = {
      '10.0.0.2::www': {
        state: 'ok',
        pending: '0',
        'oldest-pending': '–',
        'last-success': '12 s ago',
        'last-error': '–',
        'retry-queued': '0',
      },
      '10.0.0.3::www': { state: 'syncing', pending: '17 rsync running', 'oldest-pending': '42 s', 'retry-queued': '0' },
      'mirror@10.0.0.4:/srv/www': {
        state: 'degraded',
        pending: '5',
        'oldest-pending': '6 min 40 s',
        'last-success': '7 min 30 s ago',
        'last-error': 'rsync exit 12: <connection> unexpectedly closed & "gone"',
        'retry-queued': '2 next in 30 s',
      },
      '/mnt/backup': { state: 'holding deletions', 'last-success': 'never' },
    };
    for (const [remote, fields] of Object.entries(expected)) {
      for (const [name, value] of Object.entries(fields)) assert.equal(text(dom, name, remote), value, `${remote} ${name}`);
    }

    const png = join(tmp, 'status.png');
    const shot = await runProcess(chromium, [...flags, `--screenshot=${png}`, '--window-size=1200,800', `${server.url}/`], {
      timeoutMs: 120_000,
    });
    assert.equal(shot.code, 0, `chromium --screenshot failed:\n${shot.stderr.slice(-2000)}`);
    const bytes = readFileSync(png);
    assert.equal(bytes.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'a PNG');
    assert.deepEqual([bytes.readUInt32BE(16), bytes.readUInt32BE(20)], [1200, 800]);
    assert.ok(statSync(png).size > 20_000, 'the page is not blank');
    t.diagnostic(`screenshot: ${png}${process.env.SERSYNC_TEST_KEEP_TMP === '1' ? '' : ' (set SERSYNC_TEST_KEEP_TMP=1 to keep it)'}`);
  });
});

describe('sersync-ts status', () => {
  function configFor(port: number, watch: string, ip = '127.0.0.1') {
    const xml = `<head><host hostip="${ip}" port="${port}"/><sersync><localpath watch="${watch}"><remote ip="10.0.0.2" name="www"/></localpath></sersync></head>`;
    return parseConfig(Buffer.from(xml), join(tmp, 'test.xml'));
  }

  function capture(t: { mock: { method: (o: object, m: string, impl: (...a: unknown[]) => void) => unknown } }) {
    const out: string[] = [];
    const err: string[] = [];
    t.mock.method(console, 'log', (...a: unknown[]) => void out.push(a.join(' ')));
    t.mock.method(console, 'error', (...a: unknown[]) => void err.push(a.join(' ')));
    return { out, err };
  }

  test('prints the daemon and one aligned line per remote', async (t) => {
    const watch = await makeTempDir('status-watch-');
    source.status = fixture(watch);
    const config = configFor(Number(new URL(server.url).port), watch);
    const io = capture(t);
    const code = await statusCommand(config, {});
    t.mock.restoreAll();
    assert.equal(code, 0, io.err.join('\n'));
    assert.deepEqual(io.err, []);
    const lines = io.out.join('\n').split('\n');
    assert.deepEqual(lines.slice(0, 7), [
      `daemon   pid 4242, sersync-ts 0.1.0, up 2 h 5 min, ${server.url}`,
      `watch    ${watch} (dirs watcher, inotify)`,
      'watches  1,234 of 65,536 (1.9 %)',
      'events   12,345 seen, 10 ignored, 12,000 counted, 0 lost',
      'retry    3 entries in /var/lib/sersync-ts/retry-queue.json',
      'crontab  next full sync in 12 min',
      '',
    ]);
    assert.deepEqual(lines.slice(7), [
      'REMOTE                    STATE              PENDING  OLDEST      LAST SUCCESS    RETRY  LAST ERROR',
      '10.0.0.2::www             ok                       0  -           12 s ago            0  -',
      '10.0.0.3::www             syncing                 17  42 s        12 s ago            0  -',
      'mirror@10.0.0.4:/srv/www  degraded                 5  6 min 40 s  7 min 30 s ago      2  rsync exit 12: <connection> unexpectedly closed & "gone"',
      '/mnt/backup               holding deletions        0  -           never               0  -',
    ]);
  });

  test('--json prints the status as the daemon sent it', async (t) => {
    const watch = await makeTempDir('status-watch-');
    source.status = fixture(watch);
    const io = capture(t);
    const code = await statusCommand(configFor(Number(new URL(server.url).port), watch), { json: true });
    t.mock.restoreAll();
    assert.equal(code, 0);
    assert.equal(io.out.length, 1);
    assert.deepEqual(JSON.parse(io.out[0] as string), fixture(watch));
  });

  test('nothing listening: one line and exit 69', async (t) => {
    const port = await freePort();
    const io = capture(t);
    const code = await statusCommand(configFor(port, tmp), {});
    t.mock.restoreAll();
    assert.equal(code, 69);
    assert.deepEqual(io.out, []);
    assert.deepEqual(io.err, [
      `sersync-ts status: no daemon answers on http://127.0.0.1:${port}: is it running with this config? (connection refused)`,
    ]);
  });

  test('IPv6 hosts are bracketed in the URL', async (t) => {
    const port = await freePort();
    const io = capture(t);
    const code = await statusCommand(configFor(port, tmp, '::1'), {});
    t.mock.restoreAll();
    assert.equal(code, 69);
    assert.match(
      io.err[0] ?? '',
      new RegExp(`^sersync-ts status: no daemon answers on http://\\[::1\\]:${port}: is it running with this config\\?`),
    );
  });

  test('a daemon of another config on the port (same <host>) is not reported as this one: exit 69', async (t) => {
    source.status = fixture('/some/other/dir');
    const io = capture(t);
    const code = await statusCommand(configFor(Number(new URL(server.url).port), tmp), {});
    t.mock.restoreAll();
    assert.equal(code, 69);
    assert.deepEqual(io.out, []);
    assert.match(
      io.err[0] ?? '',
      /watches \/some\/other\/dir, not .* another instance holds the port; give each config its own <host port>/,
    );
  });

  test('another program answering on the port: exit 69 naming it', async (t) => {
    const other = await startOtherHttp();
    try {
      const io = capture(t);
      const code = await statusCommand(configFor(other.port, tmp), {});
      t.mock.restoreAll();
      assert.equal(code, 69);
      assert.match(io.err[0] ?? '', /answered HTTP 404 but not with a sersync-ts status: is another program on port \d+\?/);
    } finally {
      await other.close();
    }
  });

  test('a daemon that does not answer within 3 s: exit 69', async (t) => {
    // Accepts the connection and never answers.
    const silent = await listenTcp('127.0.0.1', 0);
    const sockets: import('node:net').Socket[] = [];
    silent.on('connection', (s) => sockets.push(s));
    try {
      const io = capture(t);
      const t0 = Date.now();
      const code = await statusCommand(configFor((silent.address() as { port: number }).port, tmp), {});
      t.mock.restoreAll();
      assert.equal(code, 69);
      assert.ok(Date.now() - t0 < 6000);
      assert.match(io.err[0] ?? '', /no daemon answers on .*\(no answer within 3 s\)$/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

/** The text content of the element with data-field="name" (in the row of `remote`), entities decoded, tags dropped. */
function text(dom: string, name: string, remote?: string): string {
  let scope = dom;
  if (remote !== undefined) {
    const start = [...dom.matchAll(/<tr data-remote="([^"]*)"/g)].find((m) => decode(m[1] as string) === remote)?.index;
    assert.ok(start !== undefined, `a row for ${remote}`);
    scope = dom.slice(start, dom.indexOf('</tr>', start));
  }
  const m = new RegExp(`<(\\w+)[^>]*data-field="${name}"[^>]*>`).exec(scope);
  assert.ok(m, `an element with data-field=${name}`);
  // The element's content up to its own closing tag (these elements do not nest their own kind).
  const from = (m.index ?? 0) + m[0].length;
  const inner = scope.slice(from, scope.indexOf(`</${m[1]}>`, from));
  return decode(inner.replace(/<br>/g, ' ').replace(/<[^>]+>/g, ''))
    .replace(/\s+/g, ' ')
    .trim();
}

function decode(html: string): string {
  return html.replace(
    /&(amp|lt|gt|quot|#39|nbsp);/g,
    (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", nbsp: '\u00a0' })[e] ?? '',
  );
}

function listenTcp(host: string, port: number): Promise<TcpServer> {
  return new Promise((resolve, reject) => {
    const s = createTcpServer();
    s.once('error', reject);
    s.listen(port, host, () => resolve(s));
  });
}

async function startOtherHttp(): Promise<{ port: number; close(): Promise<void> }> {
  const { createServer } = await import('node:http');
  const s = createServer((_req, res) => {
    res.writeHead(404, { 'Content-Type': 'text/html' });
    res.end('<h1>Not Found</h1>');
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as { port: number }).port,
    close: () =>
      new Promise((r) => {
        s.close(() => r());
        s.closeAllConnections();
      }),
  };
}

/**
 * The path of Debian's chromium, installing the package when it is missing and we are root. null only when it
 * cannot be had and CHROMIUM_UNAVAILABLE_OK=1; otherwise a missing browser fails the test.
 */
async function ensureChromium(): Promise<string | null> {
  const which = async () => {
    const r = await runProcess('sh', ['-c', 'command -v chromium'], { timeoutMs: 10_000 });
    return r.code === 0 ? r.stdout.trim() : null;
  };
  const found = await which();
  if (found) return found;
  const problems: string[] = [];
  if (process.env.SERSYNC_TEST_HOST_CHANGES !== '1') {
    problems.push('installing it changes this machine: set SERSYNC_TEST_HOST_CHANGES=1 to let the test apt-get install chromium (.ci/run does)');
  } else if (process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () =>
      runProcess('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'chromium'], { env, timeoutMs: 10 * 60_000 });
    let r = await install();
    if (r.code !== 0) {
      // The package lists may be missing or stale on a fresh machine.
      const update = await runProcess('apt-get', ['update', '-q'], { env, timeoutMs: 5 * 60_000 });
      if (update.code !== 0) problems.push(`apt-get update: ${update.stderr.trim().split('\n').slice(-3).join(' / ')}`);
      r = await install();
    }
    if (r.code !== 0) problems.push(`apt-get install chromium: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
    const after = await which();
    if (after) return after;
    if (r.code === 0) problems.push('apt-get install chromium succeeded, but no chromium is on PATH');
  } else {
    problems.push('not root, so it cannot be installed here (apt-get install chromium)');
  }
  if (process.env.CHROMIUM_UNAVAILABLE_OK === '1' || process.env.SERSYNC_TEST_HOST_CHANGES !== '1') return null;
  assert.fail(
    `chromium is needed for this test and is missing: ${problems.join('; ')}. Install it, or set CHROMIUM_UNAVAILABLE_OK=1 to skip`,
  );
}
