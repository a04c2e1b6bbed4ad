import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import type { CommandPluginConfig } from '../../src/config/model.ts';
import { parseConfig } from '../../src/config/parse-config.ts';
import { fromUtf8 } from '../../src/core/paths.ts';
import { commandArgv, createCommandPlugin } from '../../src/plugins/command-plugin.ts';
import type { ProcessResult, ProcessRunner, RunOptions } from '../../src/sync/process-runner.ts';

function commandConfig(block: string): CommandPluginConfig {
  const xml = `<head><sersync><localpath watch="/data/www"><remote ip="h" name="m"/></localpath>
<plugin start="true" name="command"/></sersync>
<plugin name="command">${block}</plugin></head>`;
  const config = parseConfig(Buffer.from(xml), 'test.xml');
  assert.ok(config.plugins.command);
  return config.plugins.command;
}

function capture() {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line));
      done();
    },
  });
  const log = pino({ level: 'debug' }, stream);
  const messages = (level: number) => records.filter((r) => r.level === level).map((r) => String(r.msg));
  return { log, records, messages };
}

interface Call {
  file: string;
  args: readonly string[];
  opts: RunOptions | undefined;
}

/** A runner whose runs end when the test says so; it honours the abort signal like execa's cancelSignal. */
class FakeRunner implements ProcessRunner {
  readonly calls: Call[] = [];
  running = 0;
  maxRunning = 0;
  readonly #waiting: ((r: ProcessResult) => void)[] = [];
  auto: ProcessResult | null = null;

  run(file: string, args: readonly string[], opts?: RunOptions): Promise<ProcessResult> {
    this.calls.push({ file, args, opts });
    if (this.auto) return Promise.resolve(this.auto);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    return new Promise((resolve) => {
      const done = (r: ProcessResult) => {
        this.running--;
        resolve(r);
      };
      this.#waiting.push(done);
      opts?.signal?.addEventListener('abort', () => done({ signal: 'SIGTERM', stdout: '', stderr: '', durationMs: 1 }), { once: true });
    });
  }

  finishNext(result: ProcessResult = { exitCode: 0, stdout: '', stderr: '', durationMs: 1 }): void {
    const next = this.#waiting.shift();
    assert.ok(next, 'a run is waiting');
    next(result);
  }
}

const tick = () => new Promise((r) => setImmediate(r));
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(cond(), what);
}

test('argv: prefix words, the path as one argument, suffix words; no shell', () => {
  const cfg = commandConfig('<param prefix="/usr/bin/php -f /opt/hook.php --" suffix="--quiet \'a b\'" ignoreError="false"/>');
  assert.deepEqual(commandArgv(cfg, '/data/www/; rm -rf x'), {
    file: '/usr/bin/php',
    args: ['-f', '/opt/hook.php', '--', '/data/www/; rm -rf x', '--quiet', 'a b'],
  });
  assert.deepEqual(commandArgv(cfg, '/data/www/$(touch y) `z` "q\' *'), {
    file: '/usr/bin/php',
    args: ['-f', '/opt/hook.php', '--', '/data/www/$(touch y) `z` "q\' *', '--quiet', 'a b'],
  });
});

test('argv: a UTF-8 name goes as its text (Node encodes it back to the same bytes); invalid UTF-8 is skipped', () => {
  const cfg = commandConfig('<param prefix="/bin/echo" suffix="" ignoreError="true"/>');
  assert.deepEqual(commandArgv(cfg, fromUtf8('/data/www/日本.txt')), { file: '/bin/echo', args: ['/data/www/日本.txt'] });
  assert.deepEqual(commandArgv(cfg, `/data/www/caf${String.fromCharCode(0xe9)}`), { skip: 'bytes' });
});

test('argv: <filter start="true"> runs only for paths an <include> matches, anchored, on the absolute byte path', () => {
  const cfg = commandConfig(`<param prefix="/bin/sh /hook.sh" suffix="" ignoreError="true"/>
<filter start="true"><include expression="(.*)\\.php"/><include expression="/data/www/日本/.*"/></filter>`);
  assert.equal('file' in commandArgv(cfg, '/data/www/a/index.php'), true);
  assert.deepEqual(commandArgv(cfg, '/data/www/a/index.php.bak'), { skip: 'filter' });
  assert.equal('file' in commandArgv(cfg, fromUtf8('/data/www/日本/x.txt')), true, 'non-ASCII include matches the UTF-8 bytes');
  const off = commandConfig(
    '<param prefix="/bin/sh" suffix="" ignoreError="true"/><filter start="false"><include expression="(.*)\\.php"/></filter>',
  );
  assert.equal('file' in commandArgv(off, '/data/www/a.txt'), true, 'a filter that is off lets everything through');
});

test('argv: an empty prefix never runs the changed file itself', () => {
  const cfg = commandConfig('<param prefix="" suffix="x" ignoreError="true"/>');
  assert.deepEqual(commandArgv(cfg, '/data/www/evil.sh'), { skip: 'prefix' });
});

test('plugin: one run per event in order, deletions included, with SERSYNC_EVENT and SERSYNC_ISDIR', async () => {
  const runner = new FakeRunner();
  runner.auto = { exitCode: 0, stdout: '', stderr: '', durationMs: 1 };
  const { log } = capture();
  const cfg = commandConfig('<param prefix="/bin/sh /hook.sh" suffix="end" ignoreError="false"/>');
  const plugin = createCommandPlugin(cfg, { log, runner, limits: { concurrency: 1 } });
  plugin.notify([
    { path: '/data/www/a.txt', isDir: false, deleted: false },
    { path: '/data/www/d', isDir: true, deleted: false },
    { path: '/data/www/old', isDir: false, deleted: true },
  ]);
  await plugin.close(1000);
  assert.deepEqual(
    runner.calls.map((c) => [c.file, ...c.args]),
    [
      ['/bin/sh', '/hook.sh', '/data/www/a.txt', 'end'],
      ['/bin/sh', '/hook.sh', '/data/www/d', 'end'],
      ['/bin/sh', '/hook.sh', '/data/www/old', 'end'],
    ],
  );
  assert.deepEqual(
    runner.calls.map((c) => c.opts?.env),
    [
      { SERSYNC_EVENT: 'change', SERSYNC_ISDIR: '0' },
      { SERSYNC_EVENT: 'change', SERSYNC_ISDIR: '1' },
      { SERSYNC_EVENT: 'delete', SERSYNC_ISDIR: '0' },
    ],
  );
});

test('plugin: notify returns at once; at most `concurrency` commands run; a path never overlaps itself', async () => {
  const runner = new FakeRunner();
  const { log } = capture();
  const cfg = commandConfig('<param prefix="/hook" suffix="" ignoreError="true"/>');
  const plugin = createCommandPlugin(cfg, { log, runner, limits: { concurrency: 2 } });
  plugin.notify([
    { path: '/w/1', isDir: false, deleted: false },
    { path: '/w/1', isDir: false, deleted: true },
    { path: '/w/2', isDir: false, deleted: false },
    { path: '/w/3', isDir: false, deleted: false },
  ]);
  assert.equal(runner.calls.length, 0, 'nothing runs inside notify');
  await until(() => runner.calls.length === 2, 'two runs start');
  assert.deepEqual(
    runner.calls.map((c) => c.args[0]),
    ['/w/1', '/w/2'],
    'the second event of /w/1 waits for the first, /w/2 takes the free slot',
  );
  runner.finishNext(); // /w/1 (change)
  await until(() => runner.calls.length === 3, 'a third run starts');
  assert.equal(runner.running, 2);
  runner.finishNext();
  runner.finishNext();
  await until(() => runner.calls.length === 4, 'all four ran');
  runner.finishNext();
  await plugin.close(1000);
  assert.equal(runner.maxRunning, 2);
  assert.deepEqual(
    runner.calls.filter((c) => c.args[0] === '/w/1').map((c) => c.opts?.env?.SERSYNC_EVENT),
    ['change', 'delete'],
  );
});

test('plugin: a hanging command is stopped at the timeout, logged, and the queue moves on', async () => {
  const runner = new FakeRunner();
  const { log, messages } = capture();
  const cfg = commandConfig('<param prefix="/hook" suffix="" ignoreError="true"/>');
  const plugin = createCommandPlugin(cfg, { log, runner, limits: { concurrency: 1, timeoutMs: 50 } });
  plugin.notify([
    { path: '/w/hang', isDir: false, deleted: false },
    { path: '/w/next', isDir: false, deleted: false },
  ]);
  await until(() => runner.calls.length === 2, 'the next event runs after the timeout');
  assert.equal(runner.calls[0]?.opts?.signal?.aborted, true, 'the hanging run was cancelled through its signal');
  runner.finishNext();
  await plugin.close(1000);
  assert.ok(
    messages(40).some((m) => m.includes('gave up on /w/hang after 50 ms')),
    messages(40).join('\n'),
  );
});

test('plugin: failures are logged with exit code and stderr unless ignoreError; spawn errors always', async () => {
  for (const ignoreError of [false, true]) {
    const runner = new FakeRunner();
    const { log, messages } = capture();
    const cfg = commandConfig(`<param prefix="/hook" suffix="" ignoreError="${ignoreError}"/>`);
    const plugin = createCommandPlugin(cfg, { log, runner, limits: { concurrency: 1 } });
    plugin.notify([
      { path: '/w/a', isDir: false, deleted: false },
      { path: '/w/b', isDir: false, deleted: false },
    ]);
    await until(() => runner.calls.length === 1, 'first run');
    runner.finishNext({ exitCode: 3, stdout: '', stderr: 'line 1\nboom: no such thing\n', durationMs: 5 });
    await until(() => runner.calls.length === 2, 'second run');
    runner.finishNext({ stdout: '', stderr: '', durationMs: 1, spawnError: 'spawn /hook ENOENT' });
    await plugin.close(1000);
    const warned = messages(40);
    assert.equal(
      warned.some((m) => m === 'command plugin: /hook exited with 3 for /w/a: line 1 | boom: no such thing'),
      !ignoreError,
      warned.join('\n'),
    );
    assert.ok(
      warned.some((m) => m === 'command plugin: cannot run /hook: spawn /hook ENOENT'),
      warned.join('\n'),
    );
  }
});

test('plugin: a name that is not valid UTF-8 is skipped with a warning naming it', async () => {
  const runner = new FakeRunner();
  runner.auto = { exitCode: 0, stdout: '', stderr: '', durationMs: 1 };
  const { log, messages } = capture();
  const plugin = createCommandPlugin(commandConfig('<param prefix="/hook" suffix="" ignoreError="true"/>'), { log, runner });
  plugin.notify([{ path: `/w/bad${String.fromCharCode(0xff)}.txt`, isDir: false, deleted: false }]);
  await plugin.close(1000);
  assert.equal(runner.calls.length, 0);
  assert.ok(
    messages(40).some((m) => m.includes('/w/bad\ufffd.txt') && m.includes('not valid UTF-8')),
    messages(40).join('\n'),
  );
});

test('plugin: beyond the queue cap events are dropped, counted and logged; close waits a bounded time', async () => {
  const runner = new FakeRunner();
  const { log, records, messages } = capture();
  const plugin = createCommandPlugin(commandConfig('<param prefix="/hook" suffix="" ignoreError="true"/>'), {
    log,
    runner,
    limits: { concurrency: 1, maxQueued: 3, timeoutMs: 60_000 },
  });
  const events = Array.from({ length: 10 }, (_, i) => ({ path: `/w/${i}`, isDir: false, deleted: false }));
  plugin.notify(events);
  await tick();
  const started = performance.now();
  await plugin.close(100);
  assert.ok(performance.now() - started < 2000, 'close gave up after its grace period');
  assert.deepEqual(
    runner.calls.map((c) => c.args[0]),
    ['/w/0'],
    'only the first ran; the other queued ones were abandoned at close',
  );
  assert.ok(messages(40).some((m) => m.includes('dropping new events')));
  assert.ok(
    records.some((r) => r.dropped === 7),
    'the drop count is logged',
  );
  assert.ok(
    messages(40).some((m) => m.includes('3 events not handled within 100 ms of shutdown')),
    messages(40).join('\n'),
  );
  plugin.notify(events);
  assert.equal(runner.calls.length, 1, 'a closed plugin takes no more events');
});

test('plugin: a <filter> that matches nothing runs nothing', async () => {
  const runner = new FakeRunner();
  runner.auto = { exitCode: 0, stdout: '', stderr: '', durationMs: 1 };
  const { log } = capture();
  const cfg = commandConfig(`<param prefix="/hook" suffix="" ignoreError="true"/>
<filter start="true"><include expression="(.*)\\.php"/></filter>`);
  const plugin = createCommandPlugin(cfg, { log, runner });
  plugin.notify([
    { path: '/w/a.txt', isDir: false, deleted: false },
    { path: '/w/b.php', isDir: false, deleted: true },
  ]);
  await plugin.close(1000);
  assert.deepEqual(
    runner.calls.map((c) => c.args[0]),
    ['/w/b.php'],
  );
});
