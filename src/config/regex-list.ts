import { fromUtf8 } from '../core/paths.ts';
import { type ConfigNode, attr, children, where } from './config-node.ts';
import type { FilterRegex } from './model.ts';
import type { ValueReader } from './value-reader.ts';

/**
 * A regex list (`<filter><exclude>`, the command plugin's `<include>`), anchored like boost::regex_match and compiled
 * over byte strings. What sersync2 would have read differently earns a warning saying what it does here.
 */
export function readRegexList(values: ValueReader, node: ConfigNode | undefined, tag: string, enabled: boolean): FilterRegex[] {
  const p = values.problems;
  const list: FilterRegex[] = [];
  for (const item of children(node, tag)) {
    const source = attr(item, 'expression') ?? '';
    const line = item.el.line;
    if (source === '') {
      p.warn(line, where(item, 'expression'), 'empty expression, ignored');
      continue;
    }
    const bytes = values.utf8 ? fromUtf8(source) : source;
    // Checked alone first: `a)|(b` is invalid, but would compile once wrapped in ^(?:...)$ and match wrongly.
    const problem = regexProblem(bytes);
    if (problem !== null) {
      // sersync2 printed "regular expression error" and went on without the pattern; so does sersync-ts.
      const skipped = enabled ? 'skipped as sersync2 skipped it, so it excludes nothing' : 'not used while this part is off';
      const glob = /^\*[^*()|+{}\\]*$/.test(source) ? `; a file pattern ${source} is the regex ${globAsRegex(source)}` : '';
      p.warn(line, where(item, 'expression'), `invalid regular expression: ${problem}; ${skipped}${glob}`);
      continue;
    }
    if (/\\[AZz<>`']/.test(source)) {
      p.warn(
        line,
        where(item, 'expression'),
        "uses a boost-only escape (\\A \\Z \\z \\< \\> \\` \\'), which means something else in JavaScript",
      );
    }
    // `<filter>`'s `/name` (a literal, one component): a top-level entry's subject has no slash, a deeper one two.
    // (The command plugin's includes see absolute paths.)
    const name = source.replace(/^\^?\//, '').replace(/\/\*\$?$|\$$/, '');
    if (tag === 'exclude' && /^\^?\/(?:[^/\\.*+?()[\]{}|^$]|\\[^A-Za-z0-9/])+(?:\/\*)?\$?$/.test(source)) {
      p.warn(
        line,
        where(item, 'expression'),
        `matches nothing in sersync2, which tests a top-level entry as "name", without a leading slash (deeper ones as "/dir/name"); ` +
          `sersync-ts excludes the top-level "${name}" (rsync exclude /${name} in every run), as "^${name}" would`,
      );
    }
    const part = String.raw`(?:[^/\\.*+?()[\]{}|^$]|\\[^A-Za-z0-9/])+`;
    if (tag === 'exclude' && new RegExp(`^\\^?${part}(?:/${part})+\\$?$`).test(source)) {
      const dir = source.replace(/^\^/, '').replace(/\$$/, '');
      p.warn(
        line,
        where(item, 'expression'),
        `matches nothing in sersync2 (an event below the top level is tested as "/${dir}", a directory at start-up as "${dir}/"), so it excludes nothing; ` +
          `"^${dir}/*" keeps the directory ${dir} out`,
      );
    }
    list.push({ source, regex: new RegExp(`^(?:${bytes})$`), line });
  }
  return list;
}

/** Why `source` does not compile as a JavaScript regex, or null when it does. */
export function regexProblem(source: string): string | null {
  try {
    new RegExp(source);
    return null;
  } catch (err) {
    // V8 says `Invalid regular expression: /(.*\.gz/: Unterminated group`; the expression is already in the message.
    return err instanceof Error ? err.message.replace(/^Invalid regular expression: \/[\s\S]*\/[a-z]*: /, '') : String(err);
  }
}

/** `*.gz` → `.*\.gz`: the regex a shell-style pattern means, for a hint. */
function globAsRegex(glob: string): string {
  return glob.replace(/[.^$]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
}
