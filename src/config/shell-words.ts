export type ShellWords =
  | {
      readonly ok: true;
      readonly words: string[];
      /**
       * Unquoted characters that meant something to the shell sersync2 ran its commands with (`$ ` ; | & < > ( )`
       * and `#` starting a word), in order of appearance, without duplicates. sersync-ts runs no shell, so they
       * are passed on literally; the caller warns.
       */
      readonly shellSyntax: string;
    }
  | { readonly ok: false; readonly reason: string };

const SHELL_SYNTAX = new Set(['$', '`', ';', '|', '&', '<', '>', '(', ')']);

/**
 * Splits a string into words the way sh does, without any expansion: blanks separate words; single quotes keep
 * everything; double quotes keep everything but `\$`, `` \` ``, `\"`, `\\` and `\<newline>`; a backslash outside
 * quotes keeps the next character. `-artuz --exclude='a b'` → `['-artuz', '--exclude=a b']`.
 */
export function splitShellWords(text: string): ShellWords {
  const words: string[] = [];
  const syntax = new Set<string>();
  let word = '';
  let inWord = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (c === "'") {
      const j = text.indexOf("'", i + 1);
      if (j < 0) return { ok: false, reason: `unterminated single quote at character ${i + 1}` };
      word += text.slice(i + 1, j);
      inWord = true;
      i = j + 1;
    } else if (c === '"') {
      let j = i + 1;
      let closed = false;
      while (j < n) {
        const d = text[j] as string;
        if (d === '"') {
          closed = true;
          break;
        }
        if (d === '\\' && j + 1 < n && '$`"\\\n'.includes(text[j + 1] as string)) {
          if (text[j + 1] !== '\n') word += text[j + 1];
          j += 2;
        } else {
          word += d;
          j++;
        }
      }
      if (!closed) return { ok: false, reason: `unterminated double quote at character ${i + 1}` };
      inWord = true;
      i = j + 1;
    } else if (c === '\\') {
      if (i + 1 >= n) {
        word += c;
        inWord = true;
        i++;
      } else {
        // `\<newline>` is a line continuation: it joins, it adds nothing.
        if (text[i + 1] !== '\n') {
          word += text[i + 1];
          inWord = true;
        }
        i += 2;
      }
    } else {
      if (SHELL_SYNTAX.has(c) || (c === '#' && !inWord)) syntax.add(c);
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return { ok: true, words, shellSyntax: [...syntax].join('') };
}
