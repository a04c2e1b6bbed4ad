import type { FilterRegex } from '../config/model.ts';
import { baseName, type RelPath } from '../core/paths.ts';

/**
 * Which paths never reach a remote: one matcher for the watcher (events, directories not to watch) and the same
 * rules as rsync excludes for directory and full syncs, so the two can never disagree (the dot-file rule aside,
 * see DOT_FILE_GLOB).
 *
 * Built-in temporaries (sersync2's rules, SPEC §4.4, plus the usual editor and download leftovers). Each rule is a
 * glob on the base name, valid both as an rsync pattern without a slash (matched against the last path component)
 * and, compiled below, as the realtime matcher. They apply to files and directories alike, as rsync patterns do.
 */
export const TEMPORARY_FILE_GLOBS: readonly string[] = [
  '4913', // vim's write test
  '*~', // vim and emacs backups, sersync2's rule
  '.*.sw[a-px]', // vim swap files (.swp, .swo, ... and .swx)
  '.#*', // emacs lock links
  '#*#', // emacs autosave
  '.goutputstream-*', // GIO/GNOME atomic-save temporaries
  '.~lock.*#', // LibreOffice locks
  '*.part', // Firefox, wget, KDE partial downloads
  '*.crdownload', // Chromium partial downloads
];

/**
 * sersync2 skips events of every non-directory whose name starts with '.' (SPEC §4.4 rule 5; off by default in
 * sersync-ts, `<tuning dotFiles="false">` restores it). An event rule only, as in sersync2: directory and full syncs
 * carry dot-files, so it has no rsync filter, and the remote's `.htaccess` is right again after the next full sync.
 */
const DOT_FILE_GLOB = '.*';

export interface PathFilterRules {
  readonly dotFiles: boolean;
  readonly regexes: readonly FilterRegex[];
}

export interface PathFilter {
  /** True when the path must never be synced (or, for a directory, watched). */
  isExcluded(path: RelPath, isDir: boolean): boolean;
  /** The same rules as rsync filter arguments, first match wins; `untranslated` regexes need a walk (see sync/). */
  readonly rsyncFilters: readonly string[];
  readonly untranslated: readonly FilterRegex[];
}

export function createPathFilter(rules: PathFilterRules): PathFilter {
  // One alternation, not one RegExp per glob: this runs for every event of a burst.
  const temporary = new RegExp(`^(?:${TEMPORARY_FILE_GLOBS.map(globBody).join('|')})$`);
  const dotFile = globToRegExp(DOT_FILE_GLOB);
  const regexes = rules.regexes;
  const translated: string[] = [];
  const untranslated: FilterRegex[] = [];
  for (const rule of regexes) {
    const pattern = regexToRsyncPattern(rule.source);
    if (pattern === null) untranslated.push(rule);
    else translated.push(pattern);
  }
  const rsyncFilters = [...TEMPORARY_FILE_GLOBS.map((g) => `--exclude=${g}`), ...translated.map((p) => `--exclude=${p}`)];
  return {
    rsyncFilters,
    untranslated,
    isExcluded(path, isDir) {
      const name = baseName(path);
      if (temporary.test(name)) return true;
      if (!rules.dotFiles && !isDir && dotFile.test(name)) return true;
      if (regexes.length === 0) return false;
      const subject = sersyncSubject(path);
      for (const rule of regexes) if (rule.regex.test(subject)) return true;
      return false;
    },
  };
}

/**
 * The string sersync2 matches its filter regexes against at runtime (SPEC §2.4a): the bare name at the root,
 * `/dir/.../name` deeper down. sersync-ts uses this one form for directories too, also at start-up.
 */
export function sersyncSubject(path: RelPath): string {
  return path.includes('/') ? `/${path}` : path;
}

/** A base-name glob (`*`, `?`, `[...]`) as an anchored RegExp over one path component. */
function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${globBody(glob)}$`);
}

/** The RegExp source of a base-name glob, unanchored. */
function globBody(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      out += glob.slice(i, end + 1);
      i = end;
    } else out += c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
  }
  return out;
}

/**
 * Turns the regex shapes people actually write into an rsync pattern with the same meaning on sersync2's subject
 * strings, or null. Recognised: `(.*)\.ext`, `.*\.ext`, `.*suffix` (any depth, ends with), `^name`, `name`,
 * `^name/*` (the top-level entry), `/a/b` (that nested path). `/name` matches no subject at all (a top-level
 * entry's is `name`; the config warns), yet it becomes `/name`: every run then leaves the top-level entry alone,
 * which is what was meant, and `--delete` stays off whatever the remote holds there. Everything else needs a walk.
 */
export function regexToRsyncPattern(source: string): string | null {
  let s = source;
  if (s.startsWith('^')) s = s.slice(1);
  if (s.endsWith('$') && !s.endsWith('\\$')) s = s.slice(0, -1);
  // `info/*` means "info" followed by any number of slashes: the entry itself.
  if (s.endsWith('/*')) s = s.slice(0, -2);
  const anyPrefix = /^(?:\(\.\*\)|\.\*)/.exec(s);
  const rest = anyPrefix ? s.slice(anyPrefix[0].length) : s;
  const literal = unescapeRegexLiteral(rest);
  if (literal === null || literal === '' || /[*?[\]\\]/.test(literal)) return null;
  if (anyPrefix) {
    // `.*\.gz` matches any subject ending in ".gz"; the subject's last component is the name, so unless the
    // suffix holds a slash this is exactly rsync's `*.gz` (base name, any depth).
    return literal.includes('/') ? null : `*${literal}`;
  }
  // A literal without a slash matches only the root-level subject `name`; with a leading slash, that nested path.
  if (!literal.includes('/')) return `/${literal}`;
  if (literal.startsWith('/') && !literal.endsWith('/')) return literal;
  return null;
}

/** `\.` → `.`; null when the text holds regex syntax other than escaped punctuation. */
function unescapeRegexLiteral(text: string): string | null {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined || /[A-Za-z0-9]/.test(next)) return null;
      out += next;
      i++;
    } else if ('.*+?()[]{}|^$'.includes(c)) return null;
    else out += c;
  }
  return out;
}
