import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import type { Batch } from '../../src/aggregate/aggregator.ts';
import { parseConfig } from '../../src/config/parse-config.ts';
import type { Config, PluginName } from '../../src/config/model.ts';
import { createAfterSync } from '../../src/plugins/after-sync.ts';
import { createPlugin } from '../../src/plugins/create-plugin.ts';
import { startStandalone } from '../../src/plugins/standalone.ts';
import type { ProcessResult, ProcessRunner, RunOptions } from '../../src/sync/process-runner.ts';
import type { WatchEvent, WatchOptions, Watcher } from '../../src/watch/watcher.ts';
import { FakeClock } from './support/fake-clock.ts';

const log = pino({ level: 'silent' });

const COMMAND = '<plugin name="command"><param prefix="/hook" suffix="" ignoreError="true"/></plugin>';

function config(body: string, opts: { standalone?: PluginName } = {}): Config {
  const xml = `<head>${body}</head>`;
  return parseConfig(Buffer.from(xml), 'test.xml', opts.standalone ? { standalonePlugin: opts.standalone } : {});
}

class RecordingRunner implements ProcessRunner {
  readonly calls: { args: readonly string[]; env: RunOptions['env'] }[] = [];
  run(_file: string, args: readonly string[], opts?: RunOptions): Promise<ProcessResult> {
    this.calls.push({ args, env: opts?.env });
    return Promise.resolve({ exitCode: 0, stdout: '', stderr: '', durationMs: 1 });
  }
  seen(): string[] {
    return this.calls.map((c) => `${c.env?.SERSYNC_EVENT}${c.env?.SERSYNC_ISDIR === '1' ? '-dir' : ''} ${c.args[0]}`);
  }
}

class FakeWatcher implements Watcher {
  root = '';
  sink: ((e: WatchEvent) => void) | null = null;
  options: WatchOptions | null = null;
  closed = false;
  start(root: string, sink: (e: WatchEvent) => void, options: WatchOptions): Promise<void> {
    this.root = root;
    this.sink = sink;
    this.options = options;
    return Promise.resolve();
  }
  watchCount(): number {
    return 1;
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  emit(e: WatchEvent): void {
    assert.ok(this.sink);
    this.sink(e);
  }
}

const settle = () => new Promise((r) => setTimeout(r, 20));
const batch = (entries: { path: string; tree?: boolean }[], full = false): Batch => ({
  full,
  fullReason: full ? 'test' : '',
  entries: entries.map((e) => ({ path: e.path, tree: e.tree ?? false, deletes: false })),
  since: 0,
});

test('createPlugin picks the implementation and refuses a missing block', () => {
  const c = config(`<sersync><localpath watch="/w"><remote ip="h" name="m"/></localpath></sersync>${COMMAND}`);
  assert.equal(createPlugin('command', c, { log }).name, 'command');
  assert.throws(() => createPlugin('socket', c, { log }), { code: 'CONFIG_INVALID', message: /no <plugin name="socket"> block/ });
});

test('after-sync: null without <plugin start="true">', () => {
  const c = config(`<sersync><localpath watch="/w"><remote ip="h" name="m"/></localpath></sersync>${COMMAND}`);
  assert.equal(createAfterSync(c, { log }), null);
});

/** A command plugin in sync mode over two remotes a and b of /data/www. */
function twoRemotes() {
  const c = config(`<sersync><localpath watch="/data/www"><remote ip="a" name="m"/><remote ip="b" name="m"/></localpath>
<plugin start="true" name="command"/></sersync>${COMMAND}`);
  const runner = new RecordingRunner();
  const after = createAfterSync(c, { log, runner });
  assert.ok(after);
  const [a, b] = c.remotes.map((r) => r.id) as [string, string];
  return { runner, after, a, b };
}

test('after-sync: the plugin runs for a path once every remote has it, with absolute paths and directory flags', async () => {
  const { runner, after, a, b } = twoRemotes();
  after.synced(a, batch([{ path: 'x.txt' }, { path: 'newdir', tree: true }, { path: 'old' }]), {
    updated: ['x.txt', 'newdir'],
    deleted: ['old'],
    seconds: 0,
  });
  await settle();
  assert.deepEqual(runner.seen(), [], 'nothing before the second remote has it');
  after.synced(b, batch([{ path: 'x.txt' }, { path: 'old' }]), { updated: ['x.txt'], deleted: ['old'], seconds: 0 });
  await settle();
  assert.deepEqual(runner.seen(), ['change /data/www/x.txt', 'delete /data/www/old']);
  after.synced(b, batch([], true), { updated: [], deleted: [], seconds: 0 });
  await after.close(1000);
  assert.deepEqual(runner.seen(), ['change /data/www/x.txt', 'delete /data/www/old', 'change-dir /data/www/newdir'], 'a full sync counts');
});

test('after-sync: the paths a full sync took in reach the plugin once both full syncs went; beyond maxPendingPaths the root', async () => {
  const { runner, after, a, b } = twoRemotes();
  after.synced(a, batch([], true), { updated: ['new.php', 'img'], deleted: ['gone.txt'], dirs: ['img'], seconds: 0 });
  await settle();
  assert.deepEqual(runner.seen(), []);
  after.synced(b, batch([], true), { updated: ['new.php', 'img'], deleted: ['gone.txt'], dirs: ['img'], seconds: 0 });
  after.synced(a, batch([], true), { updated: [''], deleted: [], dirs: [''], seconds: 0 });
  after.synced(b, batch([], true), { updated: [''], deleted: [], dirs: [''], seconds: 0 });
  await after.close(1000);
  assert.deepEqual(runner.seen(), ['change /data/www/new.php', 'change-dir /data/www/img', 'delete /data/www/gone.txt', 'change-dir /data/www']);
});

test('after-sync: a full sync that covered the tree only in part (crontabfilter, held deletions) completes nothing else', async () => {
  const { runner, after, a, b } = twoRemotes();
  after.synced(b, batch([{ path: 'x.php' }]), { updated: ['x.php'], deleted: [], seconds: 0 });
  after.synced(a, batch([], true), { updated: [], deleted: [], whole: false, seconds: 0 });
  await after.close(1000);
  assert.deepEqual(runner.seen(), [], 'x.php is not on a yet');
});

test('standalone: watches the plugin block`s own directory, filters, honours the toggles, merges bursts per path', async () => {
  const c = config(
    `<filter start="true"><exclude expression="(.*)\\.log"/></filter>
<inotify><delete start="false"/></inotify>
<sersync><localpath watch="/data/www"><remote ip="a" name="m"/></localpath></sersync>
<plugin name="socket"><localpath watch="/srv/own"><deshost ip="127.0.0.1" port="9"/></localpath></plugin>${COMMAND}`,
    { standalone: 'command' },
  );
  const clock = new FakeClock();
  const watcher = new FakeWatcher();
  const runner = new RecordingRunner();
  const running = await startStandalone(c, 'command', { log, runner, clock, createWatcher: () => watcher });
  assert.equal(watcher.root, '/data/www', 'command always uses <sersync><localpath watch>');
  assert.deepEqual(running.roots, ['/data/www']);
  assert.ok(watcher.options);
  assert.equal(watcher.options.isIgnored('a/b.log', false), true, 'the realtime filter applies');
  assert.equal(watcher.options.isIgnored('a/x~', false), true, 'so do the built-in temporary-file rules');
  assert.equal(watcher.options.isIgnored('a/b.txt', false), false);

  watcher.emit({ kind: 'file', op: 'change', path: 'a.txt' });
  watcher.emit({ kind: 'file', op: 'change', path: 'b.txt' });
  watcher.emit({ kind: 'file', op: 'change', path: 'a.txt' });
  watcher.emit({ kind: 'file', op: 'unlink', path: 'gone.txt' }); // <delete start="false">: not counted
  watcher.emit({ kind: 'dir', op: 'add', path: 'sub' });
  watcher.emit({ kind: 'lost', reason: 'test' });
  clock.advance(c.tuning.quietMs - 1);
  await settle();
  assert.deepEqual(runner.seen(), [], 'still inside the quiet period');
  clock.advance(1);
  await settle();
  assert.deepEqual(runner.seen(), ['change /data/www/a.txt', 'change /data/www/b.txt', 'change-dir /data/www/sub']);

  // A file written without pause for longer than maxWaitMs still goes at maxWaitMs.
  const step = c.tuning.quietMs / 2;
  for (let t = 0; t <= c.tuning.maxWaitMs; t += step) {
    watcher.emit({ kind: 'file', op: 'change', path: 'busy.bin' });
    clock.advance(step);
  }
  await settle();
  assert.equal(runner.seen().filter((s) => s.endsWith('busy.bin')).length, 1);

  watcher.emit({ kind: 'file', op: 'change', path: 'last.txt' });
  await running.stop(1000);
  assert.equal(watcher.closed, true);
  assert.equal(runner.seen().at(-1), 'change /data/www/last.txt', 'stop sends what is pending');
});

test('standalone: socket, refreshCDN and http watch their own <localpath>, else the sync watch', async () => {
  const c = config(
    `<sersync><localpath watch="/data/www"><remote ip="a" name="m"/></localpath></sersync>
<plugin name="socket"><localpath watch="/srv/sock"><deshost ip="127.0.0.1" port="9"/></localpath></plugin>
<plugin name="http"><localpath watch="/srv/http/"><deshost url="http://127.0.0.1:9/x"/></localpath></plugin>`,
  );
  for (const [name, root] of [
    ['socket', '/srv/sock'],
    ['http', '/srv/http'],
  ] as const) {
    const watcher = new FakeWatcher();
    const running = await startStandalone(c, name, { log, createWatcher: () => watcher });
    assert.equal(watcher.root, root);
    await running.stop(0);
  }
});

test('standalone: a watcher that cannot start closes the plugin and throws', async () => {
  const c = config(`<sersync><localpath watch="/data/www"><remote ip="a" name="m"/></localpath></sersync>${COMMAND}`);
  const watcher = new FakeWatcher();
  watcher.start = () => Promise.reject(new Error('no such directory'));
  await assert.rejects(startStandalone(c, 'command', { log, createWatcher: () => watcher }), /no such directory/);
});

/** Runs `-m command` on a fake watcher: the events `emit` sends, one quiet period, a stop; what the plugin was told. */
async function standaloneSeen(tuning: string, watch: string, emit: (watcher: FakeWatcher) => void): Promise<string[]> {
  const c = config(
    `${tuning}
<sersync><localpath watch="${watch}"><remote ip="a" name="m"/></localpath></sersync>${COMMAND}`,
    { standalone: 'command' },
  );
  const clock = new FakeClock();
  const watcher = new FakeWatcher();
  const runner = new RecordingRunner();
  const running = await startStandalone(c, 'command', { log, runner, clock, createWatcher: () => watcher });
  emit(watcher);
  clock.advance(c.tuning.quietMs);
  await settle();
  await running.stop(1000);
  return runner.seen();
}

test('standalone: bursts go through the sync aggregator: a crowded directory is passed as the directory, a short-lived file not at all', async () => {
  const seen = await standaloneSeen('<tuning maxChildrenPerDir="2"/>', '/nonexistent/www', (watcher) => {
    for (const n of [1, 2, 3]) watcher.emit({ kind: 'file', op: 'change', path: `img/${n}.jpg` });
    watcher.emit({ kind: 'file', op: 'add', path: 'tmp.txt' });
    watcher.emit({ kind: 'file', op: 'unlink', path: 'tmp.txt' });
    // Changed, then removed: what the disk says (nothing there) makes it a deletion.
    watcher.emit({ kind: 'file', op: 'change', path: 'old.txt' });
    watcher.emit({ kind: 'file', op: 'unlink', path: 'old.txt' });
  });
  assert.deepEqual(seen, ['change-dir /nonexistent/www/img', 'delete /nonexistent/www/old.txt']);
});

test('standalone: more changed paths than maxPendingPaths tell the plugin the watched directory', async () => {
  const seen = await standaloneSeen('<tuning maxPendingPaths="3" maxChildrenPerDir="100"/>', '/nonexistent/www', (watcher) => {
    for (const n of [1, 2, 3, 4]) watcher.emit({ kind: 'file', op: 'change', path: `${n}.txt` });
  });
  assert.deepEqual(seen, ['change-dir /nonexistent/www']);
});

test('standalone: a directory that only lost children is a change, a directory that is gone a deletion (the disk decides)', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'sersync-standalone-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'd'));
  const seen = await standaloneSeen('<tuning maxChildrenPerDir="2"/>', `${root}`, (watcher) => {
    for (const n of [1, 2, 3]) watcher.emit({ kind: 'file', op: 'unlink', path: `d/${n}.txt` });
    watcher.emit({ kind: 'dir', op: 'changed', path: 'e' });
    watcher.emit({ kind: 'dir', op: 'unlink', path: 'e' });
  });
  assert.deepEqual(seen.sort(), [`change-dir ${root}/d`, `delete-dir ${root}/e`]);
});
