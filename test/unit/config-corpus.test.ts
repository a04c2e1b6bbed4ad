import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { checkReport } from '../../src/cli/check-report.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { CORPUS_DIRS, type CorpusPlaces, corpusExpectation, corpusFiles, placeCorpusFile } from '../helpers/config-corpus.ts';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.ts';

/** Every file of the compatibility corpus loads, with exactly the warnings its `.expect` names (see the helper). */

let dir: string;
let places: CorpusPlaces;

before(async () => {
  dir = await makeTempDir('corpus-');
  const watch = path.join(dir, 'www');
  const mirror = path.join(dir, 'mirror');
  for (const d of [mirror, ...CORPUS_DIRS.map((c) => path.join(watch, c))]) mkdirSync(d, { recursive: true });
  const passwordFile = path.join(dir, 'rsync.password');
  writeFileSync(passwordFile, 'secret\n', { mode: 0o600 });
  places = { watch, mirror, passwordFile };
});
after(removeTempDirs);

test('the corpus holds the kinds of files the issue names', () => {
  const files = corpusFiles();
  assert.ok(files.length >= 8, files.join(' '));
  for (const f of files) assert.doesNotThrow(() => corpusExpectation(f), `${f} has no .expect`);
});

for (const name of corpusFiles()) {
  test(`corpus: ${name} loads, with the expected warnings, and --check names each of them and its notes`, async () => {
    const file = placeCorpusFile(name, dir, places);
    const config = await loadConfig(file);
    const { warnings: expected, notes, keptOut } = corpusExpectation(name);
    assert.equal(
      config.warnings.length,
      expected.length,
      `${name}: ${config.warnings.length} warnings, expected ${expected.length}:\n${config.warnings.join('\n')}`,
    );
    for (const [i, want] of expected.entries()) {
      assert.ok(config.warnings[i]?.includes(want), `${name} warning ${i + 1}: ${config.warnings[i]}\n  lacks: ${want}`);
    }
    const report = await checkReport(config, { initialSync: true, defaultTimeoutSeconds: 600 });
    for (const w of config.warnings) assert.ok(report.includes(`warning: ${w}`), `--check lacks: ${w}`);
    const printedNotes = report.split('\n').filter((l) => l.startsWith('note: '));
    assert.equal(printedNotes.length, notes.length, `${name}: the notes of --check:\n${printedNotes.join('\n')}`);
    for (const [i, want] of notes.entries())
      assert.ok(printedNotes[i]?.includes(want), `${name} note ${i + 1}: ${printedNotes[i]}\n  lacks: ${want}`);
    const kept = /^directories the filter keeps out \(.*?\): (.*)$/m.exec(report)?.[1] ?? null;
    assert.equal(kept, keptOut, `${name}: what --check says the filter keeps out`);
  });
}
