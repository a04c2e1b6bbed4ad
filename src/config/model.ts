/**
 * The typed, frozen Config that confxml.xml becomes. Every field has sersync2's shipped default (defaults.ts, taken
 * from test/fixtures/config/shipped-confxml.xml) when its element or attribute is missing. Times are converted to the unit named in the field.
 */

/** A `<filter><exclude expression>` (or command plugin `<include>`) regex, compiled once, anchored (boost regex_match semantics). */
export interface FilterRegex {
  /** The expression as written in the file. */
  readonly source: string;
  /** `^(?:source)$`, compiled over byte strings (src/core/paths.ts): non-ASCII literals are matched as UTF-8 bytes. */
  readonly regex: RegExp;
  readonly line: number;
}

export interface InotifyToggles {
  readonly delete: boolean;
  readonly createFolder: boolean;
  readonly createFile: boolean;
  readonly closeWrite: boolean;
  readonly moveFrom: boolean;
  readonly moveTo: boolean;
  readonly attrib: boolean;
  readonly modify: boolean;
}

export type RemoteKind = 'daemon' | 'ssh' | 'local';

export interface Remote {
  /** daemon: `[user@]ip::name`; ssh: `[user@]ip:name`; local (extension, no ip): `name` is an absolute directory. */
  readonly kind: RemoteKind;
  readonly ip: string;
  readonly name: string;
  /** A short unique label for logs, metrics and the retry queue: `ip::name`, `ip:name` or the local path. */
  readonly id: string;
  readonly line: number;
}

/** One `<sersync><localpath>`: a watch root and its remotes. Everything else in the config is shared by all sites. */
export interface SiteConfig {
  /** Absolute, without a trailing slash. */
  readonly watch: string;
  readonly remotes: readonly Remote[];
  /** The `<localpath>` element's line. */
  readonly line: number;
}

export interface RsyncSettings {
  /** commonParams@params split into argv words as sh would (quotes and backslashes, no expansion). */
  readonly commonParams: readonly string[];
  readonly auth: { readonly enabled: boolean; readonly users: string; readonly passwordFile: string };
  readonly port: { readonly enabled: boolean; readonly port: number };
  readonly timeout: { readonly enabled: boolean; readonly seconds: number };
  /**
   * `<ssh start options>`: options (extension) are extra words for the ssh command that rsync runs, e.g.
   * `-p 2222 -i /root/.ssh/mirror`; with userDefinedPort on, the port becomes `ssh -p PORT`.
   */
  readonly ssh: { readonly enabled: boolean; readonly options: readonly string[] };
}

export interface CommandPluginConfig {
  readonly prefix: readonly string[];
  readonly suffix: readonly string[];
  readonly ignoreError: boolean;
  readonly filter: { readonly enabled: boolean; readonly includes: readonly FilterRegex[] };
}

export interface SocketPluginConfig {
  readonly watch: string | null;
  readonly hosts: readonly { readonly ip: string; readonly port: number }[];
}

export interface RefreshCdnPluginConfig {
  readonly watch: string | null;
  readonly domainName: string;
  readonly port: number;
  readonly username: string;
  readonly password: string;
  readonly sendUrlBase: string;
  readonly regex: { readonly enabled: boolean; readonly match: string };
}

export interface HttpPluginConfig {
  readonly watch: string | null;
  readonly url: string;
}

export type PluginName = 'command' | 'socket' | 'refreshCDN' | 'http';

/** Extensions of sersync-ts, in `<head><tuning .../></head>`; sersync2 ignores the element. */
export interface Tuning {
  /** Sync dot-files in real time (default true). false restores sersync2's rule: non-directories named `.*` skip. */
  readonly dotFiles: boolean;
  /**
   * Temporary-file globs besides sersync2's own (`4913`, `*~`): their events are dropped, and runs that follow
   * events exclude them; full syncs carry them. Default: watch/path-filter.ts EXTRA_TEMPORARY_GLOBS.
   */
  readonly tempGlobs: readonly string[];
  /** A batch goes once its changes have been quiet this long. */
  readonly quietMs: number;
  /** ...and never later than this while writes go on. */
  readonly maxWaitMs: number;
  /** A directory with more changed children than this is synced as the directory. */
  readonly maxChildrenPerDir: number;
  /** More pending paths than this (per remote) becomes a full sync. */
  readonly maxPendingPaths: number;
  readonly watcher: 'chokidar' | 'dirs';
  /** Where the retry queue and the instance lock live; default: see src/recovery/state-dir.ts. */
  readonly stateDir: string | null;
  /** How often a running full sync logs its progress (a terminal gets a live line besides). */
  readonly progressMs: number;
  /** rsync's --max-delete for runs that delete: reaching it holds deletions until the operator releases them. */
  readonly maxDelete: number | null;
}

export interface Config {
  /** Absolute path of the config file. */
  readonly file: string;
  readonly host: { readonly ip: string; readonly port: number };
  readonly debug: boolean;
  readonly xfs: boolean;
  readonly filter: { readonly enabled: boolean; readonly excludes: readonly FilterRegex[] };
  readonly inotify: InotifyToggles;
  /** The first `<sersync><localpath watch>` (with -m, the plugin's own when it has one), absolute, without a trailing slash. */
  readonly watch: string;
  /** The first site's remotes. */
  readonly remotes: readonly Remote[];
  /**
   * Every `<sersync><localpath>` (an extension; sersync2 read only the first), the first being `watch` and `remotes`.
   * With -m, every one for the command plugin, else only the one watched. siteConfigOf (site-config.ts) gives the config one site runs with.
   */
  readonly sites: readonly SiteConfig[];
  readonly rsync: RsyncSettings;
  /** `<failLog path timeToExecute>`: where the retry queue lives, and the longest wait between retries. */
  readonly failLog: { readonly path: string; readonly retryCapMinutes: number };
  readonly crontab: {
    readonly enabled: boolean;
    readonly scheduleMinutes: number;
    readonly filter: { readonly enabled: boolean; readonly excludes: readonly string[] };
  };
  /** `<sersync><plugin start name>`: the plugin run after each synced batch. */
  readonly plugin: { readonly enabled: boolean; readonly name: PluginName };
  readonly plugins: {
    readonly command: CommandPluginConfig | null;
    readonly socket: SocketPluginConfig | null;
    readonly refreshCDN: RefreshCdnPluginConfig | null;
    readonly http: HttpPluginConfig | null;
  };
  readonly tuning: Tuning;
  /** Everything odd but accepted, one line each, `file:line: <path>: message`. */
  readonly warnings: readonly string[];
}
