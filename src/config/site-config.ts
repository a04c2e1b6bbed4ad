import type { Config, SiteConfig } from './model.ts';

/**
 * The config one site runs with: the shared settings, with this site's watch root and remotes, so that everything
 * built from a Config (the site plan, lanes, plugins, `--check`) serves one `<localpath>` unchanged.
 */
export function siteConfigOf(config: Config, site: SiteConfig): Config {
  return Object.freeze({ ...config, watch: site.watch, remotes: site.remotes, sites: Object.freeze([site]) });
}

/**
 * Whether two configs run a site the same way: all but the status endpoint, the warnings and where things stand in
 * the file (a site that moved down because another was dropped above it is the same site).
 */
export function sameSiteConfig(a: Config, b: Config): boolean {
  const { host: _ha, warnings: _wa, ...restA } = a;
  const { host: _hb, warnings: _wb, ...restB } = b;
  return JSON.stringify(restA, regexSource) === JSON.stringify(restB, regexSource);
}

function regexSource(key: string, value: unknown): unknown {
  if (key === 'line') return undefined;
  return value instanceof RegExp ? `/${value.source}/${value.flags}` : value;
}
