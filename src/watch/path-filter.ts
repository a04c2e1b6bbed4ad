import type { Config, FilterRegex } from '../config/model.ts';
import { baseName, fromUtf8, type RelPath } from '../core/paths.ts';

/**
 * Which paths never reach a remote: one matcher for the watcher (events, directories not to watch) and the same
 * rules as rsync filter arguments for the runs the daemon starts, so the two cannot disagree.
 *
 * Temporary files: sersync2 drops events of `4913` and `*~`; sersync-ts adds the usual editor and
 * download leftovers (EXTRA_TEMPORARY_GLOBS, `<tuning tempGlobs>` replaces them). Their events are dropped and every
 * run excludes them, so a new directory (sent recursively) never carries a half-written `video.part`. Full syncs
 * exclude them too: the rsync runner takes one filter list for every kind of run, and the rules after it (the walk's
 * excludes, the mount-point protection) must not be cleared, so a full sync cannot tell them apart; `tempGlobs=""` is
 * how a site with real `*.part` files gets them to the mirrors.
 * Each glob matches a base name, valid both as an rsync pattern without a slash and, compiled below, for events.
 */
export const SERSYNC2_TEMPORARY_GLOBS: readonly string[] = [
  '4913', // vim's write test
  '*~', // vim and emacs backups
];

export const EXTRA_TEMPORARY_GLOBS: readonly string[] = [
  '.*.sw[a-px]', // vim swap files (.swp, .swo, ... and .swx)
  '.#*', // emacs lock links
  '#*#', // emacs autosave
  '.goutputstream-*', // GIO/GNOME atomic-save temporaries
  '.~lock.*#', // LibreOffice locks
  '*.part', // Firefox, wget, KDE partial downloads
  '*.crdownload', // Chromium partial downloads
];

/**
 * sersync2 skips events of every non-directory whose name starts with '.' (off by default in
 * sersync-ts, `<tuning dotFiles="false">` restores it). An event rule only, as in sersync2: directory and full syncs
 * carry dot-files, so it has no rsync filter, and the remote's `.htaccess` is right again after the next full sync.
 */
const DOT_FILE_GLOB = '.*';

export interface PathFilterRules {
  readonly dotFiles: boolean;
  readonly regexes: readonly FilterRegex[];
  /** The extra temporary-file globs (default EXTRA_TEMPORARY_GLOBS); sersync2's own two always apply. */
  readonly tempGlobs?: readonly string[];
}

export interface PathFilter {
  /**
   * True when the path must never be synced (or, for a directory, watched). A directory is tested in both of
   * sersync2's forms: the event form (`name`, `/dir/name`) and the form of its start-up walk
   * (`dir/name/`), so `^data/cache/*` keeps `data/cache` out whether it existed at start or came later.
   */
  isExcluded(path: RelPath, isDir: boolean): boolean;
  /** rsync filter arguments of real-time runs (update, delete): temporaries, then the operator's filter. */
  readonly rsyncFilters: readonly string[];
  /**
   * ...and of full syncs: the operator's filter only. Temporaries are a real-time rule (as in sersync2, whose full
   * syncs excluded nothing of them), so a real file named `x.part` reaches the mirrors with the next full sync.
   */
  readonly fullSyncFilters: readonly string[];
  readonly untranslated: readonly FilterRegex[];
}

/** The rules a config sets: the one place the daemon, `--check` and `-m` take them from. */
export function filterRulesOf(config: Config): PathFilterRules {
  return {
    dotFiles: config.tuning.dotFiles,
    regexes: config.filter.enabled ? config.filter.excludes : [],
    tempGlobs: config.tuning.tempGlobs,
  };
}

export function createPathFilter(rules: PathFilterRules): PathFilter {
  const temporaryGlobs = [...SERSYNC2_TEMPORARY_GLOBS, ...(rules.tempGlobs ?? EXTRA_TEMPORARY_GLOBS)];
  // One alternation, not one RegExp per glob: this runs for every event of a burst.
  const temporary = new RegExp(`^(?:${temporaryGlobs.map((g) => globBody(fromUtf8(g))).join('|')})$`);
  const dotFile = globToRegExp(DOT_FILE_GLOB);
  const regexes = rules.regexes;
  const translated: string[] = [];
  const untranslated: FilterRegex[] = [];
  for (const rule of regexes) {
    const pattern = regexToRsyncPattern(rule.source);
    if (pattern === null) untranslated.push(rule);
    else translated.push(`--filter=-p ${pattern}`);
  }
  // Perishable (`-p`): a directory removed here is removed on the remote even when it holds an excluded file there,
  // as sersync2's delete commands (which had no excludes) removed it; elsewhere excluded files stay untouched.
  const rsyncFilters = [...temporaryGlobs.map((g) => `--filter=-p ${g}`), ...translated];
  return {
    rsyncFilters,
    fullSyncFilters: translated,
    untranslated,
    isExcluded(path, isDir) {
      const name = baseName(path);
      if (temporary.test(name)) return true;
      if (!rules.dotFiles && !isDir && dotFile.test(name)) return true;
      if (regexes.length === 0) return false;
      const subject = sersyncSubject(path);
      const walkSubject = isDir ? `${path}/` : null;
      for (const rule of regexes) {
        if (rule.regex.test(subject) || (walkSubject !== null && rule.regex.test(walkSubject))) return true;
      }
      return false;
    },
  };
}

/**
 * The string sersync2 matches its filter regexes against for an event: the bare name at the root,
 * `/dir/.../name` deeper down. Its start-up walk tests directories as `dir/.../name/` instead (§2.4b).
 */
export function sersyncSubject(path: RelPath): string {
  return path.includes('/') ? `/${path}` : path;
}

/** Why a glob cannot be a temporary-file rule, or null: it must be one base-name glob rsync reads the same way. */
export function tempGlobProblem(glob: string): string | null {
  if (glob.includes('/')) return 'holds "/", but these globs match one name';
  if (/\\|\*\*/.test(glob)) return 'holds "\\" or "**", which rsync reads differently';
  let open = false;
  for (const c of glob) {
    if (c === '[') {
      if (open) return 'has a "[" inside "[...]"';
      open = true;
    } else if (c === ']') open = false;
  }
  return open ? 'has an unclosed "["' : null;
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
 * strings (an event's `name` or `/dir/name`, a directory's `dir/name/` at start-up), or null when it needs a walk.
 * Recognised: `(.*)\.ext`, `.*suffix` (any depth, ends with: `*suffix`), `^name` and `^name/*` (the top-level entry:
 * `/name`), `^dir/sub/*` and `^dir/sub/` (only a directory's start-up form matches: `/dir/sub/`, directories only),
 * `/a/b` (that nested path). `/name` matches no subject at all (a top-level entry's is `name`; the config warns), yet
 * it becomes `/name`: every run then leaves the top-level entry alone, which is what was meant.
 */
export function regexToRsyncPattern(source: string): string | null {
  let s = source;
  if (s.startsWith('^')) s = s.slice(1);
  if (s.endsWith('$') && !s.endsWith('\\$')) s = s.slice(0, -1);
  // `info/*` means "info" followed by any number of slashes: the entry itself, or a directory's start-up form.
  const entry = s.endsWith('/*');
  if (entry) s = s.slice(0, -2);
  const anyPrefix = /^(?:\(\.\*\)|\.\*)/.exec(s);
  const rest = anyPrefix ? s.slice(anyPrefix[0].length) : s;
  const literal = unescapeRegexLiteral(rest);
  if (literal === null || literal === '' || /[*?[\]\\]/.test(literal)) return null;
  if (anyPrefix) {
    // `.*\.gz` matches any subject ending in ".gz": the last component, so rsync's `*.gz` (base name, any depth).
    if (!literal.includes('/')) return `*${literal}`;
    // `.*cache/`: only a directory's start-up form ends with a slash.
    return !entry && literal.indexOf('/') === literal.length - 1 ? `*${literal}` : null;
  }
  // A leading slash is the event form of a nested path; no start-up form starts with one.
  if (literal.startsWith('/')) return literal.endsWith('/') ? null : literal;
  if (!literal.includes('/')) return `/${literal}`;
  // `dir/sub/*`, `dir/sub/`: no event subject matches (nested ones start with "/"), a directory's start-up form does.
  if (entry || literal.endsWith('/')) {
    const dir = literal.replace(/\/+$/, '');
    return dir.includes('//') ? null : `/${dir}/`;
  }
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
