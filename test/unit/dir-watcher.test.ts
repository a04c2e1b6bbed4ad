import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, type TestContext, test } from 'node:test';
import { promisify } from 'node:util';
import { fromBytes, type RelPath, toBuffer } from '../../src/core/paths.ts';
import { inotifyInstancesHeld } from '../../src/recovery/inotify-limits.ts';
import { type DirEventHint, loadNativeInotify } from '../../src/watch/dir-watch-backend.ts';
import { DirWatcher } from '../../src/watch/dir-watcher.ts';
import { InotifyInstance } from '../../src/watch/inotify-instance.ts';
import type { WatchEvent, WatchOptions } from '../../src/watch/watcher.ts';
import { scriptedAddon } from './support/scripted-inotify.ts';

const run = promisify(execFile);

/** Polls until `cond` holds; the timeout is generous because this machine is shared and sometimes slow. */
async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every test runs on both backends: the native inotify reader ('auto' where it is built) and fs.watch. */
let currentBackend: 'auto' | 'fs.watch' = 'auto';

interface Harness {
  readonly root: string;
  readonly watcher: DirWatcher;
  readonly events: WatchEvent[];
  has(kind: WatchEvent['kind'], path: RelPath, op?: string): boolean;
  paths(): RelPath[];
}

async function watched(
  t: TestContext,
  prepare?: (root: string) => void,
  options?: WatchOptions,
  backend: 'auto' | 'fs.watch' = currentBackend,
): Promise<Harness> {
  const base = mkdtempSync(join(tmpdir(), 'dir-watcher-'));
  const root = join(base, 'root');
  mkdirSync(root);
  prepare?.(root);
  const watcher = new DirWatcher({ backend });
  const events: WatchEvent[] = [];
  t.after(async () => {
    await watcher.close();
    rmSync(base, { recursive: true, force: true });
  });
  await watcher.start(root, (e) => events.push(e), options ?? { isIgnored: () => false });
  return {
    root,
    watcher,
    events,
    has: (kind, path, op) =>
      events.some((e) => e.kind === kind && e.kind !== 'lost' && e.path === path && (op === undefined || e.op === op)),
    paths: () => events.flatMap((e) => (e.kind === 'lost' ? [] : [e.path])),
  };
}

/** A path of the watched tree as a Buffer (for names that are not valid UTF-8). */
function absBuffer(root: string, rel: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${root}/`), rel]);
}

for (const backend of ['auto', 'fs.watch'] as const) {
  describe(`DirWatcher on ${backend === 'auto' ? 'the native inotify reader' : 'fs.watch'}`, () => {
    before(() => {
      currentBackend = backend;
    });
    test('a new file is reported with its path', async (t) => {
      const h = await watched(t, (root) => mkdirSync(join(root, 'sub')));
      assert.equal(h.watcher.watchCount(), 2);
      writeFileSync(join(h.root, 'sub', 'new.txt'), 'x');
      await waitFor('file event sub/new.txt', () => h.has('file', 'sub/new.txt'));
      const first = h.events.find((e) => e.kind === 'file' && e.path === 'sub/new.txt');
      // The native reader says which inotify event it was: a file created, written and closed at once is one
      // close-write (its IN_CREATE and IN_MODIFY fold into it); fs.watch cannot tell.
      if (backend === 'auto') assert.deepEqual(first, { kind: 'file', op: 'change', path: 'sub/new.txt', how: 'closeWrite' });
      else assert.deepEqual(first, { kind: 'file', op: 'change', path: 'sub/new.txt' });
    });

    test('a file still being written is reported as created, and complete once closed', async (t) => {
      if (backend !== 'auto') return t.skip('fs.watch cannot tell a write from a close');
      const h = await watched(t);
      const file = openSync(join(h.root, 'upload.bin'), 'w');
      writeSync(file, 'first part');
      const how = (e: (typeof h.events)[number]) => (e.kind === 'file' && e.path === 'upload.bin' ? (e.how ?? '-') : null);
      await waitFor('the creation of upload.bin', () => h.events.some((e) => how(e) === 'create'));
      writeSync(file, 'second part');
      closeSync(file);
      await waitFor('the close-write of upload.bin', () => h.events.some((e) => how(e) === 'closeWrite'));
    });

    test('a symlink, a hard link and a FIFO are reported as links: no close-write follows them', async (t) => {
      if (backend !== 'auto') return t.skip('fs.watch cannot tell them apart from a file being written');
      const h = await watched(t, (root) => writeFileSync(join(root, 'target'), 'x'));
      symlinkSync('target', join(h.root, 'sym'));
      linkSync(join(h.root, 'target'), join(h.root, 'hard'));
      execFileSync('mkfifo', [join(h.root, 'fifo')]);
      for (const name of ['sym', 'hard', 'fifo']) {
        await waitFor(`an event for ${name}`, () => h.has('file', name));
        const first = h.events.find((e) => e.kind === 'file' && e.path === name);
        assert.deepEqual(first, { kind: 'file', op: 'change', path: name, how: 'link' });
      }
    });

    test('mkdir -p reports the top new directory, and later files inside it have their own events', async (t) => {
      const h = await watched(t);
      mkdirSync(join(h.root, 'a', 'b', 'c'), { recursive: true });
      writeFileSync(join(h.root, 'a', 'b', 'c', 'early.txt'), 'x');
      await waitFor('dir add a', () => h.has('dir', 'a', 'add'));
      await waitFor('a, a/b, a/b/c watched', () => h.watcher.watchCount() === 4);
      writeFileSync(join(h.root, 'a', 'b', 'c', 'later.txt'), 'y');
      await waitFor('file event a/b/c/later.txt', () => h.has('file', 'a/b/c/later.txt'));
    });

    test('cp -a of a tree of 2,000 files in 51 directories: every directory ends up watched', async (t) => {
      const h = await watched(t);
      const src = join(h.root, '..', 'src', 't');
      let dirs = 1;
      let files = 0;
      for (let d = 0; d < 10; d++) {
        const dd = join(src, `d${d}`);
        mkdirSync(dd, { recursive: true });
        dirs++;
        for (let f = 0; f < 40; f++, files++) writeFileSync(join(dd, `f${f}`), `${d}/${f}`);
        for (let e = 0; e < 4; e++) {
          const ee = join(dd, `e${e}`);
          mkdirSync(ee);
          dirs++;
          for (let f = 0; f < 40; f++, files++) writeFileSync(join(ee, `f${f}`), `${d}/${e}/${f}`);
        }
      }
      assert.equal(files, 2000);
      assert.equal(dirs, 51);
      await run('cp', ['-a', src, h.root]);
      await waitFor(`${dirs + 1} directories watched`, () => h.watcher.watchCount() === dirs + 1);
      await waitFor('dir add t', () => h.has('dir', 't', 'add'));
      // Nothing outside the copy was reported, and nothing that exists was reported as removed. (A directory's own
      // attribute change names the directory inside itself, e.g. t/d0/d0: such an unlink is of a path that is absent.)
      assert.ok(h.paths().every((p) => p === 't' || p.startsWith('t/')));
      const unlinked = h.events.flatMap((e) => (e.kind !== 'lost' && e.op === 'unlink' ? [e.path] : []));
      assert.deepEqual(
        unlinked.filter((p) => existsSync(absBuffer(h.root, toBuffer(p)))),
        [],
      );
      // One more write deep inside proves the watches are live, not only counted.
      writeFileSync(join(h.root, 't', 'd9', 'e3', 'after.txt'), 'z');
      await waitFor('file event t/d9/e3/after.txt', () => h.has('file', 't/d9/e3/after.txt'));
    });

    test('deleting a tree reports the directory as removed and drops its watches', async (t) => {
      const h = await watched(t, (root) => {
        mkdirSync(join(root, 'gone', 'x', 'y'), { recursive: true });
        writeFileSync(join(root, 'gone', 'x', 'y', 'f'), 'x');
        mkdirSync(join(root, 'kept'));
      });
      assert.equal(h.watcher.watchCount(), 5);
      rmSync(join(h.root, 'gone'), { recursive: true });
      await waitFor('dir unlink gone', () => h.has('dir', 'gone', 'unlink'));
      await waitFor('only root and kept watched', () => h.watcher.watchCount() === 2);
      assert.ok(!h.events.some((e) => e.kind === 'lost'));
    });

    test('renaming a directory reports old removed, new added, and later writes under the new name', async (t) => {
      const h = await watched(t, (root) => {
        mkdirSync(join(root, 'old', 'sub'), { recursive: true });
        writeFileSync(join(root, 'old', 'sub', 'f'), 'x');
      });
      renameSync(join(h.root, 'old'), join(h.root, 'new'));
      await waitFor('dir unlink old', () => h.has('dir', 'old', 'unlink'));
      await waitFor('dir add new', () => h.has('dir', 'new', 'add'));
      assert.equal(h.watcher.watchCount(), 3);
      const before = h.events.length;
      writeFileSync(join(h.root, 'new', 'sub', 'later.txt'), 'y');
      await waitFor('file event new/sub/later.txt', () => h.has('file', 'new/sub/later.txt'));
      const after = h.events.slice(before);
      assert.ok(!after.some((e) => e.kind !== 'lost' && e.path.startsWith('old')), JSON.stringify(after));
    });

    test('a directory removed and re-created under the same name is watched again', async (t) => {
      const h = await watched(t, (root) => mkdirSync(join(root, 'a')));
      rmSync(join(h.root, 'a'), { recursive: true });
      mkdirSync(join(h.root, 'a'));
      await waitFor('dir add a', () => h.has('dir', 'a', 'add'));
      writeFileSync(join(h.root, 'a', 'f.txt'), 'x');
      await waitFor('file event a/f.txt', () => h.has('file', 'a/f.txt'));
      assert.equal(h.watcher.watchCount(), 2);
    });

    test('names with invalid UTF-8 and with a newline keep their exact bytes', async (t) => {
      const h = await watched(t, (root) => mkdirSync(join(root, 'd')));
      const bad = Buffer.from([0x66, 0xff, 0xfe]);
      const newline = Buffer.from('line1\nline2', 'utf8');
      writeFileSync(absBuffer(h.root, Buffer.concat([Buffer.from('d/'), bad])), 'x');
      writeFileSync(absBuffer(h.root, newline), 'y');
      const badPath = fromBytes(Buffer.concat([Buffer.from('d/'), bad]));
      await waitFor('event for d/<ff fe>', () => h.has('file', badPath, 'change'));
      await waitFor('event for the newline name', () => h.has('file', fromBytes(newline), 'change'));
      const got = h.events.filter((e) => e.kind === 'file').map((e) => (e.kind === 'file' ? toBuffer(e.path) : null));
      assert.ok(got.some((b) => b?.equals(Buffer.from([0x64, 0x2f, 0x66, 0xff, 0xfe]))));
      assert.ok(got.some((b) => b?.equals(newline)));
      // A directory with such a name is watched and its files keep the bytes too.
      mkdirSync(absBuffer(h.root, bad));
      await waitFor('dir add <ff fe>', () => h.has('dir', fromBytes(bad), 'add'));
      writeFileSync(absBuffer(h.root, Buffer.concat([bad, Buffer.from('/in')])), 'z');
      await waitFor('file event <ff fe>/in', () => h.has('file', fromBytes(Buffer.concat([bad, Buffer.from('/in')]))));
      // Deleting the name gives an unlink, not a spurious event for a mangled name.
      rmSync(absBuffer(h.root, Buffer.concat([Buffer.from('d/'), bad])));
      await waitFor('unlink of d/<ff fe>', () => h.has('file', badPath, 'unlink'));
      assert.ok(h.paths().every((p) => !displayHasReplacement(p)));
    });

    function displayHasReplacement(p: RelPath): boolean {
      return p.includes('\u00ef\u00bf\u00bd');
    }

    test('ignored directories are not watched and ignored paths are not reported', async (t) => {
      const ignore: WatchOptions = {
        isIgnored: (p, isDir) => (isDir && /(^|\/)cache$/.test(p)) || p.endsWith('.tmp'),
      };
      const h = await watched(
        t,
        (root) => {
          mkdirSync(join(root, 'cache', 'deep'), { recursive: true });
          mkdirSync(join(root, 'site', 'cache'), { recursive: true });
        },
        ignore,
      );
      assert.equal(h.watcher.watchCount(), 2); // root and site
      writeFileSync(join(h.root, 'cache', 'x'), 'x');
      writeFileSync(join(h.root, 'cache', 'deep', 'y'), 'x');
      writeFileSync(join(h.root, 'site', 'cache', 'z'), 'x');
      writeFileSync(join(h.root, 'site', 'w.tmp'), 'x');
      mkdirSync(join(h.root, 'site', 'new', 'cache'), { recursive: true });
      await waitFor('dir add site/new', () => h.has('dir', 'site/new', 'add'));
      writeFileSync(join(h.root, 'site', 'new', 'cache', 'q'), 'x');
      rmSync(join(h.root, 'site', 'cache'), { recursive: true });
      rmSync(join(h.root, 'site', 'w.tmp'));
      // A sentinel written last: once it is seen, anything ignored would have been seen too.
      writeFileSync(join(h.root, 'site', 'sentinel'), 'x');
      await waitFor('sentinel', () => h.has('file', 'site/sentinel'));
      await sleep(200);
      assert.equal(h.watcher.watchCount(), 3); // root, site, site/new
      const leaked = h.paths().filter((p) => /(^|\/)cache(\/|$)/.test(p) || p.endsWith('.tmp'));
      assert.deepEqual(leaked, []);
    });

    test('a symlink to a directory is a file event and is not followed', async (t) => {
      const h = await watched(t, (root) => mkdirSync(join(root, 'real')));
      symlinkSync('real', join(h.root, 'link'));
      await waitFor('file event link', () => h.has('file', 'link'));
      assert.ok(!h.has('dir', 'link'));
      assert.equal(h.watcher.watchCount(), 2);
    });

    test('removing the watch root gives a lost event', async (t) => {
      const h = await watched(t, (root) => mkdirSync(join(root, 'sub')));
      rmSync(h.root, { recursive: true });
      await waitFor('lost event', () => h.events.some((e) => e.kind === 'lost'));
      const lost = h.events.find((e) => e.kind === 'lost');
      assert.equal(lost?.kind === 'lost' ? lost.reason : '', 'watch root was removed or replaced');
    });

    test('moving the watch root away gives a lost event', async (t) => {
      const h = await watched(t);
      renameSync(h.root, `${h.root}.moved`);
      await waitFor('lost event', () => h.events.some((e) => e.kind === 'lost'));
      rmSync(`${h.root}.moved`, { recursive: true });
    });

    function openWatchHandles(): number {
      return process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length;
    }

    test('close() drops every watch and no event follows (fs.watch)', async (t) => {
      const h = await watched(t, (root) => mkdirSync(join(root, 'a', 'b'), { recursive: true }), undefined, 'fs.watch');
      assert.equal(h.watcher.backend, 'fs.watch');
      assert.equal(h.watcher.watchCount(), 3);
      assert.ok(openWatchHandles() >= 3);
      await h.watcher.close();
      assert.equal(h.watcher.watchCount(), 0);
      writeFileSync(join(h.root, 'a', 'b', 'f'), 'x');
      mkdirSync(join(h.root, 'c'));
      await sleep(300);
      assert.deepEqual(h.events, []);
      assert.equal(h.watcher.watchCount(), 0);
      // The fs.watch handles are really closed (they are FSEventWrap resources until then).
      assert.deepEqual(openWatchHandles(), 0);
    });

    test('close() during start() stops the walk without adding watches', async (t) => {
      const base = mkdtempSync(join(tmpdir(), 'dir-watcher-'));
      t.after(() => rmSync(base, { recursive: true, force: true }));
      for (let i = 0; i < 200; i++) mkdirSync(join(base, `d${i}`, 'x'), { recursive: true });
      const watcher = new DirWatcher({ walkConcurrency: 2, backend: currentBackend });
      const started = watcher.start(base, () => {}, { isIgnored: () => false });
      await sleep(1);
      await watcher.close();
      await started;
      assert.equal(watcher.watchCount(), 0);
      await sleep(50);
      assert.equal(watcher.watchCount(), 0);
    });

    test('start() rejects a root that does not exist or is not a directory', async (t) => {
      const base = mkdtempSync(join(tmpdir(), 'dir-watcher-'));
      t.after(() => rmSync(base, { recursive: true, force: true }));
      writeFileSync(join(base, 'file'), 'x');
      await assert.rejects(
        new DirWatcher({ backend: currentBackend }).start(join(base, 'missing'), () => {}, { isIgnored: () => false }),
        /does not exist/,
      );
      await assert.rejects(
        new DirWatcher({ backend: currentBackend }).start(join(base, 'file'), () => {}, { isIgnored: () => false }),
        /not a directory/,
      );
    });
  });
}

/** inotify descriptors this process holds. */
const inotifyFds = (): number => inotifyInstancesHeld() ?? Number.NaN;

const NO_READER = 'the native reader is not built here (SERSYNC_NATIVE_INOTIFY_OPTIONAL=1): the fs.watch fallback is tested instead';
/** Shrinking the kernel's inotify queue changes the host for every other process for a moment: only when asked. */
const HOST_CHANGES = process.env.SERSYNC_TEST_HOST_CHANGES === '1';

describe('the native inotify reader', () => {
  test('is built here and chosen by default', (t) => {
    if (loadNativeInotify() === null && process.env.SERSYNC_NATIVE_INOTIFY_OPTIONAL === '1') return t.skip(NO_READER);
    assert.ok(loadNativeInotify(), 'native/build/Release/inotify.node is missing: npm test builds it (native/build.mjs)');
  });

  test('a moved directory is reported gone with its rename, in one turn, however long the walk of the new name', async (t) => {
    if (loadNativeInotify() === null) return t.skip(NO_READER);
    const h = await watched(
      t,
      (root) => {
        for (let d = 0; d < 60; d++) for (let e = 0; e < 50; e++) mkdirSync(join(root, 'big', `d${d}`, `e${e}`), { recursive: true });
        for (const s of ['site', 'site.new']) mkdirSync(join(root, s, 'd'), { recursive: true });
      },
      { isIgnored: () => false, pairMoves: true },
      'auto',
    );
    renameSync(join(h.root, 'big'), join(h.root, 'big2'));
    renameSync(join(h.root, 'site'), join(h.root, 'site.old'));
    renameSync(join(h.root, 'site.new'), join(h.root, 'site'));
    await waitFor(
      `three renames: ${JSON.stringify(h.events)}`.slice(0, 0) || 'three renames',
      () => h.events.filter((e) => e.kind === 'rename').length === 3,
    ).catch((err) => {
      throw new Error(`${err.message}: ${JSON.stringify(h.events)}`);
    });
    const shown = h.events.map((e) => (e.kind === 'lost' ? 'lost' : `${e.kind} ${e.path}${e.kind === 'rename' ? ` from ${e.from}` : ''}`));
    // Nothing said `big` was gone before its 3,000 directories were walked under the new name: no batch in between.
    const moved = shown.indexOf('rename big2 from big');
    assert.deepEqual([shown.indexOf('dir big'), shown.lastIndexOf('dir big')], [moved - 1, moved - 1], shown.join('\n'));
    // The deploy swap: both renames, the new site paired with site.new.
    assert.ok(shown.includes('rename site.old from site') && shown.includes('rename site from site.new'), shown.join('\n'));
  });

  test('the deploy swap of a big site: site.old is reported (from site) before anything says site was replaced', async (t) => {
    if (loadNativeInotify() === null) return t.skip(NO_READER);
    const h = await watched(
      t,
      (root) => {
        for (let d = 0; d < 60; d++) for (let e = 0; e < 50; e++) mkdirSync(join(root, 'site', `d${d}`, `e${e}`), { recursive: true });
        mkdirSync(join(root, 'site.new', 'd'), { recursive: true });
        mkdirSync(join(root, 'logs', 'd'), { recursive: true });
      },
      { isIgnored: () => false, pairMoves: true },
      'auto',
    );
    renameSync(join(h.root, 'site'), join(h.root, 'site.old'));
    renameSync(join(h.root, 'site.new'), join(h.root, 'site'));
    await waitFor('the two renames', () => h.events.filter((e) => e.kind === 'rename').length === 2).catch((err) => {
      throw new Error(`${err.message}: ${JSON.stringify(h.events)}`);
    });
    const shown = h.events.map((e) => (e.kind === 'lost' ? 'lost' : `${e.kind} ${e.path}${e.kind === 'rename' ? ` from ${e.from}` : ''}`));
    // The walk of site.old (3,000 directories) takes longer than a batch's quiet time: had `site`'s removal or its new
    // tree been reported before, a batch would have replaced the remote's site before site.old was built from it.
    const old = shown.indexOf('rename site.old from site');
    assert.ok(old > 0, shown.join('\n'));
    const aboutSite = shown.flatMap((e, i) => (e === 'dir site' || e.startsWith('rename site from') ? [i] : []));
    assert.ok(
      aboutSite.every((i) => i === old - 1 || i > old),
      `nothing about site before site.old's rename, but its removal with it: ${shown.join('\n')}`,
    );
    assert.equal(shown[old - 1], 'dir site', shown.join('\n'));
    // The removal of the tree the new site replaced comes before the new site, so the remote's extra files go.
    const renamed = shown.indexOf('rename site from site.new');
    assert.ok(renamed > old && shown.lastIndexOf('dir site') < renamed, shown.join('\n'));
  });

  test('an exchange of two directories (renameat2 RENAME_EXCHANGE) and a rotation through a third name: both renames reported', async (t) => {
    if (loadNativeInotify() === null) return t.skip(NO_READER);
    // `mv --exchange` (coreutils 9.5) is not on every machine; python3 is, wherever node-gyp built the reader.
    const exchange = (a: string, b: string) =>
      execFileSync('python3', [
        '-c',
        'import ctypes,os,sys; libc=ctypes.CDLL(None, use_errno=True); sys.exit(0 if libc.renameat2(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), 2) == 0 else ctypes.get_errno())',
        a,
        b,
      ]);
    const h = await watched(
      t,
      (root) => {
        for (const d of ['a/x', 'b/y', 'c/z', 'd/w']) mkdirSync(join(root, d), { recursive: true });
      },
      { isIgnored: () => false, pairMoves: true },
      'auto',
    );
    exchange(join(h.root, 'a'), join(h.root, 'b'));
    renameSync(join(h.root, 'c'), join(h.root, 't'));
    renameSync(join(h.root, 'd'), join(h.root, 'c'));
    renameSync(join(h.root, 't'), join(h.root, 'd'));
    const shown = () =>
      h.events.map((e) => (e.kind === 'rename' ? `rename ${e.path} from ${e.from}` : e.kind === 'lost' ? 'lost' : `${e.kind} ${e.path}`));
    await waitFor('each new name reported', () =>
      ['a', 'b', 'c', 'd'].every((n) =>
        shown().some((e) => e === `rename ${n} from ${{ a: 'b', b: 'a', c: 'd', d: 't' }[n]}` || e === `dir ${n}`),
      ),
    ).catch((err) => {
      throw new Error(`${err.message}: ${shown().join(', ')}`);
    });
    assert.ok(shown().includes('rename a from b') && shown().includes('rename b from a'), shown().join(', '));
  });

  test('two moves onto one name before its check: the first old name is reported gone, and a directory that takes it later is reported', async (t) => {
    if (loadNativeInotify() === null) return t.skip(NO_READER);
    const h = await watched(
      t,
      (root) => {
        for (const d of ['a/x', 'b/y', 'e', 'f/w']) mkdirSync(join(root, d), { recursive: true });
      },
      { isIgnored: () => false, pairMoves: true },
      'auto',
    );
    const shown = () =>
      h.events.map((e) => (e.kind === 'rename' ? `rename ${e.path} from ${e.from}` : e.kind === 'lost' ? 'lost' : `${e.kind} ${e.path}`));
    const mv = (from: string, to: string) => renameSync(join(h.root, from), join(h.root, to));
    mv('a', 'p');
    mv('p', 'q');
    mv('b', 'p');
    mv('e', 'r');
    mv('f', 'r'); // e was empty: replaced
    await waitFor('the removals of a and e', () => shown().includes('dir a') && shown().includes('dir e')).catch((err) => {
      throw new Error(`${err.message}: ${shown().join(', ')}`);
    });
    // Later, directories take the old names: each is reported (it waited for ever for a move nobody would report).
    for (const name of ['a', 'e']) {
      mkdirSync(join(h.root, `new-${name}`, 'inner'), { recursive: true });
      writeFileSync(join(h.root, `new-${name}`, 'inner', 'file'), 'x');
    }
    await sleep(100);
    mv('new-a', 'a');
    mv('new-e', 'e');
    await waitFor('a and e reported again', () => shown().includes('rename a from new-a') && shown().includes('rename e from new-e')).catch(
      (err) => {
        throw new Error(`${err.message}: ${shown().join(', ')}`);
      },
    );
  });

  test('a moved directory whose walk claims nothing is still reported gone: moved out among 70 files, to an ignored name, its name taken again', async (t) => {
    if (loadNativeInotify() === null) return t.skip(NO_READER);
    const out = mkdtempSync(join(tmpdir(), 'dir-watcher-out-'));
    t.after(() => rmSync(out, { recursive: true, force: true }));
    const h = await watched(
      t,
      (root) => {
        for (const d of ['a/sub', 'b/sub', 'logs/sub']) mkdirSync(join(root, d), { recursive: true });
        for (let i = 0; i < 70; i++) writeFileSync(join(root, `f${i}`), 'x');
      },
      { isIgnored: (path) => path.endsWith('.bak'), pairMoves: true },
      'auto',
    );
    // More moves in one read than MovePairs keeps open: the directory's half is dropped before any IN_MOVED_TO.
    renameSync(join(h.root, 'a'), join(out, 'a'));
    for (let i = 0; i < 70; i++) renameSync(join(h.root, `f${i}`), join(out, `f${i}`));
    renameSync(join(h.root, 'b'), join(h.root, 'b.bak'));
    renameSync(join(h.root, 'logs'), join(h.root, 'logs.1'));
    mkdirSync(join(h.root, 'logs'));
    const shown = () => h.events.map((e) => (e.kind === 'lost' ? 'lost' : `${e.kind} ${e.op} ${e.path}`));
    await waitFor('the three removals', () => ['a', 'b', 'logs'].every((p) => shown().includes(`dir unlink ${p}`)));
    assert.ok(shown().indexOf('dir unlink logs') < shown().indexOf('dir add logs'), shown().join('\n'));
  });

  test('holds one descriptor, closed by close()', async (t) => {
    if (loadNativeInotify() === null) return t.skip(NO_READER);
    const before = inotifyFds();
    const h = await watched(t, (root) => mkdirSync(join(root, 'a', 'b'), { recursive: true }), undefined, 'auto');
    assert.equal(h.watcher.backend, 'inotify');
    assert.equal(inotifyFds(), before + 1);
    await h.watcher.close();
    assert.equal(inotifyFds(), before);
  });

  // Before the fix, close() waited forever: the reader thread was blocked handing IN_IGNORED events to a full queue.
  test('close() with thousands of watches ends (one descriptor closed, not one rm_watch each)', { timeout: 60_000 }, async (t) => {
    if (loadNativeInotify() === null) return t.skip(NO_READER);
    const h = await watched(
      t,
      (root) => {
        for (let i = 0; i < 3000; i++) mkdirSync(join(root, `d${i}`));
      },
      undefined,
      'auto',
    );
    assert.equal(h.watcher.watchCount(), 3001);
    await h.watcher.close();
    assert.equal(h.watcher.watchCount(), 0);
  });

  test('an overflowing kernel queue is reported as lost (libuv drops IN_Q_OVERFLOW)', async (t) => {
    if (loadNativeInotify() === null) return t.skip(NO_READER);
    if (!HOST_CHANGES)
      return t.skip('writes /proc/sys/fs/inotify/max_queued_events for a moment: set SERSYNC_TEST_HOST_CHANGES=1 (.ci/run does)');
    const knob = '/proc/sys/fs/inotify/max_queued_events';
    const saved = readFileSync(knob, 'utf8').trim();
    try {
      // The queue size is taken when the descriptor is made: shrink it for this watcher only, as root.
      writeFileSync(knob, '16');
    } catch {
      t.skip(`cannot write ${knob} (not root): overflow is not tested here`);
      return;
    }
    let h: Harness;
    try {
      h = await watched(t, undefined, undefined, 'auto');
    } finally {
      writeFileSync(knob, saved);
    }
    // The event loop is busy while the files are made. The reader thread drains the kernel queue every 2 ms into a
    // queue of 64 chunks that only this thread empties: fast writes overflow the 16-event kernel queue within 2 ms,
    // slow ones fill the 64 chunks first (200 files were too few for that on a slow disk: it flaked).
    for (let i = 0; i < 2000; i++) writeFileSync(join(h.root, `f${i}`), 'x');
    await waitFor('a lost event', () => h.events.some((e) => e.kind === 'lost'));
    const lost = h.events.find((e) => e.kind === 'lost');
    assert.match(lost?.kind === 'lost' ? lost.reason : '', /overflow/);
  });
});

/**
 * The native backend on a scripted addon watching `/w` as wd 7: `read` hands it one read of the kernel, `ev` encodes
 * one event, `seen` is what the backend passed on, as `describe` writes it.
 */
function scriptedBackend(describe: (type: string, name: Buffer | null, hint: DirEventHint | null) => string) {
  const { addon, ev, read } = scriptedAddon();
  const backend = new InotifyInstance(addon, { closeWithLastWatcher: true }).backend(
    () => {},
    () => {},
  );
  const seen: string[] = [];
  backend.watch(Buffer.from('/w'), { event: (type, name, hint) => seen.push(describe(type, name, hint)), error: () => {} });
  return { backend, seen, ev, read };
}

test('native backend: a change right after an event for the same entry is not passed on, anything else is', () => {
  const { seen, ev, read } = scriptedBackend((type, name, hint) => `${type} ${name?.toString() ?? '-'}${hint?.gone ? ' gone' : ''}`);
  const [MODIFY, ATTRIB, CREATE, DELETE] = [0x2, 0x4, 0x100, 0x200];
  read(
    ev(CREATE, 'a'),
    ev(MODIFY, 'a'),
    ev(ATTRIB, 'a'), // cp: one event for a
    ev(MODIFY, 'b'),
    ev(ATTRIB, 'b'), // a rewrite: one for b
    ev(DELETE, 'c'),
    ev(ATTRIB, 'c'), // removed, then a change that must still be seen
    ev(MODIFY, 'a'), // not right after a's events
    ev(MODIFY, 'a', 8), // another directory's a (not watched here)
  );
  assert.deepEqual(seen, ['rename a', 'change b', 'rename c gone', 'change c', 'change a']);
});

test('native backend: a creation at the end of one read is folded into its close-write in the next, a lone one goes on', async () => {
  const { backend, seen, ev, read } = scriptedBackend((type, name, hint) => `${type} ${name?.toString() ?? '-'} ${hint?.how ?? '-'}`);
  const [MODIFY, CLOSE_WRITE, CREATE] = [0x2, 0x8, 0x100];
  // `cp -a` read mid-file: the creation ends one chunk, the writes and the close start the next.
  read(ev(CREATE, 'a'));
  read(ev(MODIFY, 'a'), ev(CLOSE_WRITE, 'a'));
  assert.deepEqual(seen, ['change a closeWrite']);
  // A link: nothing follows its creation, and no further read comes.
  read(ev(CREATE, 'l'));
  assert.deepEqual(seen, ['change a closeWrite']);
  await waitFor('the lone creation', () => seen.length === 2);
  assert.deepEqual(seen, ['change a closeWrite', 'rename l create']);
  backend.close();
});
