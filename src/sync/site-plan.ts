import type { Config, Remote } from '../config/model.ts';
import { type CommandContext, commandContextFor } from './rsync-command.ts';
import { createPathFilter, filterRulesOf, type PathFilter } from '../watch/path-filter.ts';

/** When `<timeout>` is off, rsync still gets an I/O timeout: a transfer that moves no data this long is stuck. */
export const DEFAULT_IO_TIMEOUT_SECONDS = 300;

/**
 * One watch root and what is built from its config once: the path filter, each remote's rsync context and the
 * excludes every full sync adds. The daemon runs lanes from it, `--check` prints it, `-m` takes its filter, so what
 * `--check` shows is what runs. One `<localpath>` is one site (siteConfigOf gives its config);
 * a daemon serves every one (sersync2 read only the first).
 */
export interface SitePlan {
  readonly config: Config;
  readonly root: string;
  readonly filter: PathFilter;
  readonly remotes: readonly { readonly remote: Remote; readonly context: CommandContext }[];
  /** `<crontabfilter>` as rsync excludes, added to every full sync (crontab, -r, recovery). */
  readonly fullSyncFilters: readonly string[];
}

/** `defaultTimeoutSeconds` is changeable for tests only: the daemon and `--check` take the default. */
export function planSite(config: Config, defaultTimeoutSeconds = DEFAULT_IO_TIMEOUT_SECONDS): SitePlan {
  const filter = createPathFilter(filterRulesOf(config));
  return {
    config,
    root: config.watch,
    filter,
    remotes: config.remotes.map((remote) => ({ remote, context: commandContextFor(config, remote, filter, defaultTimeoutSeconds) })),
    fullSyncFilters:
      config.crontab.enabled && config.crontab.filter.enabled ? config.crontab.filter.excludes.map((e) => `--exclude=${e}`) : [],
  };
}

/**
 * sersync2 switched its crontab off when the realtime filter was on and `<crontabfilter>` gave no pattern, since its
 * full syncs carried no filter then. sersync-ts's full syncs always carry the filter, so the crontab stays on: a
 * difference worth a note, not a warning (nothing is wrong with such a config).
 */
export function crontabKeptDespiteFilter(config: Config): boolean {
  return (
    config.crontab.enabled && config.filter.enabled && config.filter.excludes.length > 0 && config.crontab.filter.excludes.length === 0
  );
}

export const CRONTAB_KEPT_NOTE =
  'the realtime <filter> is on and <crontabfilter> has no <exclude>: sersync2 turned the crontab off here; sersync-ts keeps it, and its full syncs exclude what the filter excludes';
