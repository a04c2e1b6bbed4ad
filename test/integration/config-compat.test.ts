import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CORPUS_DIRS, corpusExpectation, corpusFiles, placeCorpusFile, runnableCorpusFile } from '../helpers/config-corpus.ts';
import { freePort } from '../helpers/ports.ts';
import { runProcess } from '../helpers/processes.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitFor } from '../helpers/wait.ts';
import { BIN, runSersync, startSersync } from './support/sersync.ts';

/** sersync2 configs as they are found on servers: relative -o under -d, filters in sersync2's forms, temporaries. */

let tmp: string;

before(async () => {
  tmp = await makeTempDir('compat-');
});
after(removeTempDirs);

/** A sersync2-style config whose remote is a local mirror directory (no rsync daemon needed). */
function conf(o: { watch: string; mirror: string; port: number; excludes?: string[]; extra?: string }): string {
  const excludes = (o.excludes ?? []).map((e) => `<exclude expression="${e}"/>`).join('');
  return `<?xml version="1.0" encoding="ISO-8859-1"?>
<head version="2.5">
  <host hostip="127.0.0.1" port="${o.port}"/>
  <filter start="${excludes ? 'true' : 'false'}">${excludes}</filter>
  <sersync>
    <localpath watch="${o.watch}"><remote name="${o.mirror}"/></localpath>
    <failLog path="${tmp}/state-${o.port}/rsync_fail_log.sh" timeToExecute="60"/>
  </sersync>
  ${o.extra ?? ''}
</head>
`;
}

const exists = (p: string) => waitFor(async () => existsSync(p), { what: p, timeoutMs: 20_000 });

describe('sersync2 configs as found on servers', () => {
  test("the corpus: --check --strict prints each file's warnings and exits 65 exactly when there are some, else 0", async () => {
    const watch = await makeTempDir('compat-corpus-watch-');
    const mirror = await makeTempDir('compat-corpus-mirror-');
    for (const d of CORPUS_DIRS) mkdirSync(join(watch, d), { recursive: true });
    const passwordFile = join(tmp, 'rsync.password');
    writeFileSync(passwordFile, 'secret\n', { mode: 0o600 });
    for (const name of corpusFiles()) {
      const file = placeCorpusFile(name, tmp, { watch, mirror, passwordFile });
      const { warnings } = corpusExpectation(name);
      const check = await runProcess(process.execPath, [BIN, '--check', '--strict', '-o', file]);
      assert.equal(check.code, warnings.length > 0 ? 65 : 0, `${name}: exit ${check.code}\n${check.stderr}`);
      assert.match(check.stdout, /^config .*: valid$/m);
      const printed = check.stdout.split('\n').filter((l) => l.startsWith('warning: '));
      assert.equal(printed.length, warnings.length, `${name}:\n${printed.join('\n')}`);
      for (const [i, w] of warnings.entries()) assert.ok(printed[i]?.includes(w), `${name}: ${printed[i]} lacks ${w}`);
    }
    const alone = await runProcess(process.execPath, [
      BIN,
      '--strict',
      '-o',
      placeCorpusFile('quirky-values.xml', tmp, { watch, mirror, passwordFile }),
    ]);
    assert.equal(alone.code, 64, '--strict without --check is a usage error');
  });

  test('the corpus runs: each file, its remotes pointed at a local mirror, starts with -r, logs the warnings --check prints, syncs', async () => {
    const passwordFile = join(tmp, 'rsync.password');
    writeFileSync(passwordFile, 'secret\n', { mode: 0o600 });
    for (const name of corpusFiles()) {
      const watch = await makeTempDir('compat-run-watch-');
      const mirror = await makeTempDir('compat-run-mirror-');
      for (const d of CORPUS_DIRS) mkdirSync(join(watch, d), { recursive: true });
      writeFileSync(join(watch, 'existing.html'), 'there before the start: -r carries it');
      const file = runnableCorpusFile(name, tmp, {
        watch,
        mirror,
        passwordFile,
        port: await freePort(),
        stateDir: join(tmp, `state-${name}`),
      });
      const check = await runProcess(process.execPath, [BIN, '--check', '-o', file]);
      assert.equal(check.code, 0, `${name}: ${check.stderr}`);
      const printed = check.stdout
        .split('\n')
        .filter((l) => l.startsWith('warning: '))
        .map((l) => l.slice('warning: '.length));
      const d = await startSersync(['-r', '-o', file]);
      try {
        // A config warning names the file and line; the daemon logs each one at start, as --check prints it.
        const logged = d.records().filter((r) => String(r.msg).startsWith(`${file}:`));
        assert.deepEqual(
          logged.map((r) => r.msg),
          printed,
          `${name}: the warnings logged at start are the ones --check prints`,
        );
        for (const r of logged) assert.equal(r.level, 40, `${name}: logged as a warning: ${r.msg}`);
        await waitFor(async () => existsSync(join(mirror, 'existing.html')), {
          what: `${name}: -r carrying existing.html`,
          timeoutMs: 20_000,
        });
        writeFileSync(join(watch, 'published.html'), name);
        await waitFor(
          async () => existsSync(join(mirror, 'published.html')) && readFileSync(join(mirror, 'published.html'), 'utf8') === name,
          {
            what: `${name}: published.html on the mirror`,
            timeoutMs: 20_000,
          },
        );
      } finally {
        await d.stop();
      }
    }
  });

  test('two copies each of two corpus files (own watch and remote; the same failLog and <host> port) run at once; a copy started twice is refused', async () => {
    const passwordFile = join(tmp, 'rsync.password');
    writeFileSync(passwordFile, 'secret\n', { mode: 0o600 });
    const copies = [];
    for (const name of ['tutorial-rsyncd-chinese.xml', 'crlf-windows.xml']) {
      for (const copy of ['a', 'b']) {
        const watch = await makeTempDir('compat-copy-watch-');
        const mirror = await makeTempDir('compat-copy-mirror-');
        const file = runnableCorpusFile(name, await makeTempDir('compat-copy-conf-'), { watch, mirror, passwordFile });
        const text = readFileSync(file, 'latin1');
        assert.ok(
          text.includes('<failLog path="/tmp/rsync_fail_log.sh"') && text.includes('port="8008"'),
          `${name} keeps its failLog and port`,
        );
        copies.push({ label: `${name} copy ${copy}`, watch, mirror, file });
      }
    }
    const running = await Promise.all(copies.map((c) => startSersync(['-o', c.file])));
    try {
      for (const c of copies) writeFileSync(join(c.watch, 'published.html'), c.label);
      for (const c of copies) {
        await waitFor(
          async () => existsSync(join(c.mirror, 'published.html')) && readFileSync(join(c.mirror, 'published.html'), 'utf8') === c.label,
          {
            what: `${c.label}: published.html on its mirror`,
            timeoutMs: 20_000,
          },
        );
      }
      for (const [i, d] of running.entries()) assert.equal(d.proc.running(), true, `${copies[i]?.label} still runs`);
      const again = await runSersync(['-o', (copies[0] as (typeof copies)[number]).file]);
      assert.equal(again.code, 75, `the same copy twice is one instance: ${again.stderr}`);
    } finally {
      for (const d of running) assert.equal(await d.stop(), 0);
    }
  });

  test('kill -HUP under -d -o relative.xml reloads the same file (the daemon left its directory)', async () => {
    const cwd = await makeTempDir('compat-cwd-');
    // The watch directory is relative too (sersync2 resolved it against its working directory, which it kept).
    const watch = join(cwd, 'www');
    mkdirSync(watch);
    const first = await makeTempDir('compat-hup-m1-');
    const second = await makeTempDir('compat-hup-m2-');
    const port = await freePort();
    writeFileSync(join(cwd, 'site.xml'), conf({ watch: 'www', mirror: first, port }));
    const logFile = join(cwd, 'daemon.log');
    // As root the default state directory is /var/lib/sersync-ts: the test's own instead.
    const stateDir = await makeTempDir('compat-hup-state-');
    const r = await runProcess(process.execPath, [BIN, '-d', '-o', 'site.xml', '--log-file', 'daemon.log'], {
      cwd,
      env: { ...process.env, STATE_DIRECTORY: stateDir },
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const pid = Number(/pid (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(pid > 0, r.stdout);
    try {
      writeFileSync(join(watch, 'before.txt'), 'one');
      await exists(join(first, 'before.txt'));
      assert.ok(
        readdirSync(stateDir).some((f) => f.endsWith('.queue.json')),
        `the retry queue is in ${stateDir}`,
      );
      // The same relative name now points the daemon at another mirror; SIGHUP must read it from the start directory.
      writeFileSync(join(cwd, 'site.xml'), conf({ watch: 'www', mirror: second, port }));
      process.kill(pid, 'SIGHUP');
      await waitFor(async () => readFileSync(logFile, 'utf8').includes('"msg":"config reloaded"'), {
        what: `"config reloaded" in the log:\n${readFileSync(logFile, 'utf8').slice(-2000)}`,
        timeoutMs: 20_000,
      });
      writeFileSync(join(watch, 'after.txt'), 'two');
      await exists(join(second, 'after.txt'));
      assert.doesNotMatch(readFileSync(logFile, 'utf8'), /does not exist/);
    } finally {
      process.kill(pid, 'SIGTERM');
    }
  });

  test('^data/cache/* keeps an existing data/cache unwatched and unsynced, as sersync2 did; other directories go', async () => {
    const watch = await makeTempDir('compat-filter-watch-');
    const mirror = await makeTempDir('compat-filter-mirror-');
    for (const dir of ['data/cache/sub', 'data/keep']) mkdirSync(join(watch, dir), { recursive: true });
    writeFileSync(join(watch, 'data/cache/old.html'), 'cached');
    writeFileSync(join(watch, 'data/keep/page.html'), 'page');
    const file = join(tmp, 'filter.xml');
    writeFileSync(file, conf({ watch, mirror, port: await freePort(), excludes: ['^data/cache/*'] }));
    const check = await runProcess(process.execPath, [BIN, '--check', '-o', file]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /directories the filter keeps out \(not watched, not synced; first 3 levels\): data\/cache$/m);
    const d = await startSersync(['-r', '-o', file]);
    try {
      writeFileSync(join(watch, 'data/cache/sub/new.html'), 'new cache');
      writeFileSync(join(watch, 'data/keep/new.html'), 'new page');
      await exists(join(mirror, 'data/keep/new.html'));
      await exists(join(mirror, 'data/keep/page.html'));
      // Both writes went in the same burst; the one in data/cache has no watch to report it, and -r excluded it.
      assert.equal(existsSync(join(mirror, 'data/cache')), false, 'data/cache reached the mirror');
    } finally {
      await d.stop();
    }
  });

  test('temporaries: a new directory goes without its half-written .part; a removed directory goes although the mirror holds a temporary in it', async () => {
    const watch = await makeTempDir('compat-temp-watch-');
    const mirror = await makeTempDir('compat-temp-mirror-');
    mkdirSync(join(watch, 'old'));
    writeFileSync(join(watch, 'old', 'page.html'), 'old');
    // Something stays in the root: an emptied root holds deletions back on purpose (mass-delete safety).
    writeFileSync(join(watch, 'index.html'), 'home');
    const file = join(tmp, 'temp.xml');
    writeFileSync(file, conf({ watch, mirror, port: await freePort() }));
    const d = await startSersync(['-r', '-o', file]);
    try {
      await exists(join(mirror, 'old', 'page.html'));
      // The delete run excludes temporaries, perishably: the directory goes although the mirror's copy holds one.
      writeFileSync(join(mirror, 'old', 'upload.part'), 'left over');
      rmSync(join(watch, 'old'), { recursive: true });
      await waitFor(async () => !existsSync(join(mirror, 'old')), { what: 'old/ removed from the mirror', timeoutMs: 20_000 });
      // A directory that arrives with a download in progress inside it (moved in whole: one recursive sync).
      const outside = await makeTempDir('compat-temp-outside-');
      mkdirSync(join(outside, 'upload'));
      writeFileSync(join(outside, 'upload', 'video.mp4.part'), 'half');
      writeFileSync(join(outside, 'upload', 'index.html'), 'done');
      renameSync(join(outside, 'upload'), join(watch, 'upload'));
      await exists(join(mirror, 'upload', 'index.html'));
      writeFileSync(join(watch, 'marker.txt'), 'after');
      await exists(join(mirror, 'marker.txt'));
      assert.equal(existsSync(join(mirror, 'upload', 'video.mp4.part')), false, 'the half-written .part reached the mirror');
    } finally {
      await d.stop();
    }
  });

  test('temporaries are a real-time rule: a full sync (-r) carries a real file named like a download leftover, as sersync2 did', async () => {
    const watch = await makeTempDir('compat-tempfull-watch-');
    const mirror = await makeTempDir('compat-tempfull-mirror-');
    writeFileSync(join(watch, 'manual.part'), 'a real file with a temporary-looking name');
    writeFileSync(join(watch, 'notes.txt~'), 'a backup someone publishes on purpose');
    const file = join(tmp, 'tempfull.xml');
    writeFileSync(file, conf({ watch, mirror, port: await freePort() }));
    const d = await startSersync(['-r', '-o', file]);
    try {
      await exists(join(mirror, 'manual.part'));
      await exists(join(mirror, 'notes.txt~'));
    } finally {
      await d.stop();
    }
  });

  test('tempGlobs="": a real file named like a download leftover reaches the mirror, and a stale one is removed', async () => {
    const watch = await makeTempDir('compat-temp0-watch-');
    const mirror = await makeTempDir('compat-temp0-mirror-');
    writeFileSync(join(watch, 'manual.part'), 'a real file with a temporary-looking name');
    writeFileSync(join(mirror, 'stale.part'), 'left over');
    const file = join(tmp, 'temp0.xml');
    writeFileSync(file, conf({ watch, mirror, port: await freePort(), extra: '<tuning tempGlobs=""/>' }));
    const d = await startSersync(['-r', '-o', file]);
    try {
      await exists(join(mirror, 'manual.part'));
      await waitFor(async () => !existsSync(join(mirror, 'stale.part')), {
        what: 'the full sync (--delete) removing stale.part',
        timeoutMs: 20_000,
      });
      writeFileSync(join(watch, 'later.crdownload'), 'real too');
      await exists(join(mirror, 'later.crdownload'));
    } finally {
      await d.stop();
    }
  });
});
