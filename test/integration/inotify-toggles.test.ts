/**
 * The `<inotify>` toggles on directories (README "inotify toggles"), with the real daemon, the native reader and a
 * local mirror: `createFolder` off, `attrib` on, and a directory's own chmod.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';
import { waitFor, waitForIdenticalTrees } from '../helpers/wait.ts';
import { confXml, type SersyncProcess, startSersync } from './support/sersync.ts';

after(removeTempDirs);

type Toggle = 'createFolder' | 'moveTo' | 'attrib';

/** A config for `watch` → `mirror` with some `<inotify>` toggles changed from the test default. */
async function toggledConf(watch: string, mirror: string, toggles: Partial<Record<Toggle, boolean>>): Promise<string> {
  let xml = confXml({ watch, remotes: [{ name: mirror }], host: { ip: '127.0.0.1', port: await freePort() } });
  for (const [name, on] of Object.entries(toggles)) {
    const before = xml;
    xml = xml.replace(new RegExp(`<${name} start="(true|false)"/>`), `<${name} start="${on}"/>`);
    assert.notEqual(xml, before, `the test config has no <${name}> toggle`);
  }
  const file = join(await makeTempDir('toggles-conf-'), 'confxml.xml');
  await writeFile(file, xml);
  return file;
}

/** Waits until `name` (written now at the root) is on the mirror: every event before it has been handled. */
async function settled(watch: string, mirror: string, name: string): Promise<void> {
  writeFileSync(join(watch, name), name);
  await waitFor(async () => existsSync(join(mirror, name)), { what: `${name} on the mirror`, timeoutMs: 15_000 });
}

const dirAdded = (path: string) => (r: Record<string, unknown>) =>
  r.msg === 'watch event' && r.event === 'dir' && r.op === 'add' && r.path === path;

describe('<inotify> toggles on directories', () => {
  test('createFolder and moveTo off: a new directory is not synced, as in sersync2; files written into it later are', async () => {
    const watch = await makeTempDir('toggles-cf-watch-');
    const mirror = await makeTempDir('toggles-cf-mirror-');
    const conf = await toggledConf(watch, mirror, { createFolder: false, moveTo: false });
    const d: SersyncProcess = await startSersync(['--log-level', 'debug', '-o', conf]);
    try {
      mkdirSync(join(watch, 'empty'));
      mkdirSync(join(watch, 'later'));
      await d.waitForLog(dirAdded('later'), 'later/ watched');
      await d.waitForLog(dirAdded('empty'), 'empty/ watched');
      writeFileSync(join(watch, 'later', 'f.txt'), 'written after the directory was watched');
      await settled(watch, mirror, 'marker1.txt');
      await waitFor(async () => existsSync(join(mirror, 'later', 'f.txt')), { what: 'later/f.txt on the mirror' });
      assert.equal(existsSync(join(mirror, 'empty')), false, 'a new directory reached the mirror with createFolder off');
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  test('attrib on: a chmod of a directory does not stop watching its subtree (sersync2 stopped)', async () => {
    const watch = await makeTempDir('toggles-attr-watch-');
    const mirror = await makeTempDir('toggles-attr-mirror-');
    mkdirSync(join(watch, 'site', 'deep'), { recursive: true });
    const conf = await toggledConf(watch, mirror, { attrib: true });
    const d = await startSersync(['-r', '-o', conf]);
    try {
      await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
      chmodSync(join(watch, 'site'), 0o750);
      chmodSync(join(watch, 'site', 'deep'), 0o750);
      await settled(watch, mirror, 'marker.txt');
      writeFileSync(join(watch, 'site', 'after-chmod.txt'), 'a');
      writeFileSync(join(watch, 'site', 'deep', 'after-chmod.txt'), 'b');
      mkdirSync(join(watch, 'site', 'deep', 'new'));
      writeFileSync(join(watch, 'site', 'deep', 'new', 'x.txt'), 'c');
      await waitFor(
        async () => existsSync(join(mirror, 'site', 'deep', 'new', 'x.txt')) && existsSync(join(mirror, 'site', 'deep', 'after-chmod.txt')),
        {
          what: 'the files written below the chmodded directories on the mirror',
        },
      );
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  test("a directory's own chmod waits for the next full sync (README), which carries it", async () => {
    const watch = await makeTempDir('toggles-mode-watch-');
    const mirror = await makeTempDir('toggles-mode-mirror-');
    mkdirSync(join(watch, 'pub'));
    chmodSync(join(watch, 'pub'), 0o755);
    const conf = await toggledConf(watch, mirror, { attrib: true });
    const first = await startSersync(['-r', '-o', conf]);
    try {
      await waitForIdenticalTrees(watch, mirror, { ignoreRootAttrs: true });
      chmodSync(join(watch, 'pub'), 0o711);
      await settled(watch, mirror, 'marker.txt');
      assert.equal(statSync(join(mirror, 'pub')).mode & 0o777, 0o755, 'the chmod of a directory went in real time: update the README');
    } finally {
      assert.equal(await first.stop(), 0);
    }
    const full = await startSersync(['-r', '-o', conf]);
    try {
      await waitFor(async () => (statSync(join(mirror, 'pub')).mode & 0o777) === 0o711, {
        what: 'the full sync to carry the mode of pub/',
      });
    } finally {
      assert.equal(await full.stop(), 0);
    }
  });
});
