import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitShellWords } from '../../src/config/shell-words.ts';

function words(text: string): string[] {
  const r = splitShellWords(text);
  assert.ok(r.ok, `expected ${JSON.stringify(text)} to split`);
  return r.words;
}

test('blanks separate words; runs of blanks and edges produce no empty words', () => {
  assert.deepEqual(words('-artuz'), ['-artuz']);
  assert.deepEqual(words('  -a \t -u\n-z  '), ['-a', '-u', '-z']);
  assert.deepEqual(words(''), []);
  assert.deepEqual(words('   '), []);
});

test('single quotes keep everything literally, including backslashes and double quotes', () => {
  assert.deepEqual(words(`--exclude='a b' 'x\\y"z'`), ['--exclude=a b', 'x\\y"z']);
  assert.deepEqual(words(`''`), ['']);
  assert.deepEqual(words(`a''b`), ['ab']);
});

test('double quotes keep blanks; backslash escapes only $ ` " \\ and newline there', () => {
  assert.deepEqual(words(`"a b" "c\\"d" "e\\$f" "g\\h" "i\\\\j"`), ['a b', 'c"d', 'e$f', 'g\\h', 'i\\j']);
  assert.deepEqual(words(`"line\\\ncontinued"`), ['linecontinued']);
  assert.deepEqual(words(`--chmod="D755,F644"x`), ['--chmod=D755,F644x']);
});

test('a backslash outside quotes keeps the next character; backslash-newline joins', () => {
  assert.deepEqual(words('a\\ b c'), ['a b', 'c']);
  assert.deepEqual(words('-a\\\n-z'), ['-a-z']);
  assert.deepEqual(words('end\\'), ['end\\']);
});

test('no expansion: $VAR, globs and ~ stay literal, and shell syntax is reported', () => {
  const r = splitShellWords('-e $HOME/*.txt ~ a;b `x` # c');
  assert.ok(r.ok);
  assert.deepEqual(r.words, ['-e', '$HOME/*.txt', '~', 'a;b', '`x`', '#', 'c']);
  assert.equal(r.shellSyntax, '$;`#');
});

test('quoted shell characters and a # inside a word are not reported', () => {
  const r = splitShellWords(`'$HOME' "a;b" x#y`);
  assert.ok(r.ok);
  assert.deepEqual(r.words, ['$HOME', 'a;b', 'x#y']);
  assert.equal(r.shellSyntax, '');
});

test('an unterminated quote is an error naming its position', () => {
  assert.deepEqual(splitShellWords(`-az 'oops`), { ok: false, reason: 'unterminated single quote at character 5' });
  assert.deepEqual(splitShellWords(`"oops`), { ok: false, reason: 'unterminated double quote at character 1' });
});
