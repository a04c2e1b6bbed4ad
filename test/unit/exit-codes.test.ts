import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseCommandLine } from '../../src/cli/options.ts';
import { EXIT_CODE_MEANINGS, ExitCode } from '../../src/core/errors.ts';

/** `--help`, the README's exit-code table and the man page list the same codes with the same meanings. */

const ROOT = path.join(import.meta.dirname, '..', '..');
/** Markup aside (backticks, roff's `\-`), blanks collapsed: the words a reader sees. */
const plain = (text: string) => text.replace(/`/g, '').replace(/\\-/g, '-').replace(/\s+/g, ' ').trim();

function helpText(): string {
  const printed: string[] = [];
  const out = { log: (s: string) => printed.push(s), err: (s: string) => printed.push(s) };
  assert.deepEqual(parseCommandLine(['--help'], '0.0.0', out), { kind: 'exit', code: ExitCode.Ok });
  return printed.join('\n');
}

function readmeRows(): Map<number, string> {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('### Exit codes'), readme.indexOf('A config error lists every problem'));
  const rows = new Map<number, string>();
  for (const m of table.matchAll(/^\| (\d+) \| (.*) \|$/gm)) rows.set(Number(m[1]), plain(m[2] as string));
  return rows;
}

function manRows(): Map<number, string> {
  const man = readFileSync(path.join(ROOT, 'packaging', 'debian', 'sersync-ts.1'), 'utf8');
  const section = man.slice(man.indexOf('.SH EXIT STATUS'), man.indexOf('.SH FILES'));
  const rows = new Map<number, string>();
  for (const m of section.matchAll(/^\.TP\n\.B (\d+)\n([^.][^\n]*(?:\n[^.][^\n]*)*)/gm)) rows.set(Number(m[1]), plain(m[2] as string));
  return rows;
}

test('every exit code has one meaning, and --help prints each on its own line', () => {
  const codes = Object.values(ExitCode).sort((a, b) => a - b);
  assert.deepEqual(Object.keys(EXIT_CODE_MEANINGS).map(Number), codes);
  const help = helpText();
  for (const code of codes) {
    assert.ok(help.includes(`  ${String(code).padEnd(3)} ${EXIT_CODE_MEANINGS[code]}\n`), `--help lacks ${code}`);
  }
});

test('the README table and the man page list the same codes as --help, each with its meaning', () => {
  const codes = Object.values(ExitCode).sort((a, b) => a - b);
  for (const [where, rows] of [
    ['README.md', readmeRows()],
    ['sersync-ts.1', manRows()],
  ] as const) {
    assert.deepEqual([...rows.keys()], codes, `${where}: codes`);
    for (const code of codes) {
      const meaning = EXIT_CODE_MEANINGS[code];
      assert.ok(rows.get(code)?.startsWith(meaning), `${where}, ${code}: "${rows.get(code)}" does not start with "${meaning}"`);
    }
  }
});
