import { isIPv6 } from 'node:net';
import path from 'node:path';
import { type ConfigNode, attr, child, children, pluginBlock, where } from '../config-node.ts';
import { el } from '../element-spec.ts';
import type { PluginName, Remote, SiteConfig } from '../model.ts';
import type { ValueReader } from '../value-reader.ts';
import type { PluginBlocks } from './plugins.ts';

/** `<sersync><localpath watch><remote ip name/>...</localpath>`: what is watched and where it goes. */
export const LOCALPATH_SPEC = el('localpath', ['watch'], [el('remote', ['ip', 'name'], [], true)], true);

/**
 * The watch directory: `<sersync><localpath watch>`, or with `-m NAME` the plugin's own `<localpath watch>` when it
 * has one (the command plugin has none). Null, with an error, when there is none to watch.
 */
export function readWatch(
  head: ConfigNode,
  sersync: ConfigNode | undefined,
  standalone: PluginName | null,
  blocks: PluginBlocks,
  values: ValueReader,
): string | null {
  const p = values.problems;
  if (standalone !== null && standalone !== 'command') {
    const own = blocks[standalone];
    if (own !== null && own.watch !== null) {
      const block = pluginBlock(head, standalone);
      const lp = child(block, 'localpath');
      if (lp !== undefined) values.checkOnDisk('watchDirectory', own.watch, lp, 'watch');
      return own.watch;
    }
  }
  if (sersync === undefined) {
    p.error(
      head.el.line,
      '<head>',
      'no <sersync> element; add <sersync><localpath watch="/dir"><remote ip="host" name="module"/></localpath></sersync>',
    );
    return null;
  }
  const lp = child(sersync, 'localpath');
  if (lp === undefined) {
    p.error(sersync.el.line, where(sersync), 'no <localpath watch="/dir"> element, so there is nothing to watch');
    return null;
  }
  return readLocalpathWatch(lp, values);
}

/** One `<localpath watch>`: absolute, without a trailing slash; null (with an error) when missing or `/`. */
function readLocalpathWatch(lp: ConfigNode, values: ValueReader): string | null {
  const p = values.problems;
  const raw = attr(lp, 'watch');
  if (raw === undefined || raw === '') {
    p.error(lp.el.line, where(lp, 'watch'), 'the watch directory is missing; write watch="/absolute/dir"');
    return null;
  }
  const resolved = values.absolute(lp, 'watch', raw);
  if (resolved === '/') {
    p.error(lp.el.line, where(lp, 'watch'), 'watching / is not supported (sersync2 refused it too); name a directory');
    return null;
  }
  values.checkOnDisk('watchDirectory', resolved, lp, 'watch');
  return resolved;
}

/**
 * Every `<sersync><localpath>` as a site (an extension: sersync2 read only the first). `first` is the first one's
 * watch directory as readWatch read it. Two roots that are the same or nested are an error: the inner tree would be
 * synced twice, by two lanes that know nothing of each other.
 */
export function readSites(
  sersync: ConfigNode | undefined,
  first: string,
  ssh: boolean,
  values: ValueReader,
  /** `-m command`: the command runs for every root, and no rsync needs remotes. */
  commandAlone = false,
): SiteConfig[] {
  const p = values.problems;
  const nodes = children(sersync, 'localpath');
  const sites: SiteConfig[] = [];
  const kept: { lp: ConfigNode; watch: string }[] = [];
  for (const [i, lp] of nodes.entries()) {
    const watch = i === 0 ? first : (readLocalpathWatch(lp, values) ?? '');
    const clash = watch === '' ? undefined : sites.find((s) => s.watch !== '' && (isInside(watch, s.watch) || isInside(s.watch, watch)));
    if (clash !== undefined) {
      const how = clash.watch === watch ? 'the same directory as' : isInside(watch, clash.watch) ? 'inside' : 'around';
      p.error(
        lp.el.line,
        where(lp, 'watch'),
        `${how} the <localpath watch="${clash.watch}"> of line ${clash.line}; its files would be synced twice, give each directory one <localpath>`,
      );
      continue;
    }
    sites.push({ watch, remotes: [], line: lp.el.line });
    kept.push({ lp, watch });
  }
  // Remotes are read once every root is known: a local mirror inside another site's root would be synced again by
  // that site, and two such mirrors would feed each other without end.
  for (const [i, { lp, watch }] of kept.entries()) {
    const others = kept.filter((_, j) => j !== i).map((k) => k.watch);
    sites[i] = { watch, remotes: readRemotes(lp, watch, ssh, commandAlone, values, others), line: lp.el.line };
  }
  const extra = sites.slice(1);
  if (extra.length > 0) {
    const lp = nodes[1] as ConfigNode;
    p.warn(
      lp.el.line,
      where(lp),
      commandAlone
        ? `several <localpath>: sersync2 -m command watched only the first; sersync-ts runs the command for them all, also ${extra.map((s) => s.watch).join(', ')}`
        : `several <localpath>: sersync2 synced only the first and ignored the others; sersync-ts syncs them all, also ${extra.map((s) => s.watch).join(', ')}`,
    );
  }
  return sites;
}

/** The `<remote>` list: rsync daemon modules, ssh destinations (with `<ssh start="true">`) or local mirrors. */
export function readRemotes(
  lp: ConfigNode | undefined,
  watch: string,
  ssh: boolean,
  optional: boolean,
  values: ValueReader,
  otherRoots: readonly string[] = [],
): Remote[] {
  const p = values.problems;
  const remotes: Remote[] = [];
  if (lp === undefined) return remotes;
  const nodes = children(lp, 'remote');
  for (const node of nodes) {
    const ip = (attr(node, 'ip') ?? '').trim();
    const name = (attr(node, 'name') ?? '').trim();
    const line = node.el.line;
    const at = where(node);
    if (name === '') {
      p.error(
        line,
        at,
        'empty name; write the rsync module (the remote path with ssh), or an absolute directory without ip for a local mirror',
      );
      continue;
    }
    let remote: Remote;
    if (ip === '') {
      if (!path.isAbsolute(name)) {
        p.error(
          line,
          where(node, 'name'),
          'no ip, and the name is not an absolute directory; write ip="host" for an rsync daemon, or name="/abs/dir" for a local mirror',
        );
        continue;
      }
      const dest = path.resolve(name);
      if (dest === '/') {
        p.error(line, where(node, 'name'), 'mirroring into / is refused');
        continue;
      }
      if (watch !== '' && (isInside(dest, watch) || isInside(watch, dest))) {
        p.error(
          line,
          where(node, 'name'),
          `the mirror and the watch directory ${watch} contain one another; the mirror would sync into itself or delete the source`,
        );
        continue;
      }
      const other = otherRoots.find((root) => root !== '' && (isInside(dest, root) || isInside(root, dest)));
      if (other !== undefined) {
        p.error(
          line,
          where(node, 'name'),
          `the mirror and the <localpath watch="${other}"> of another site contain one another; that site would sync the mirror again (or delete it)`,
        );
        continue;
      }
      values.checkOnDisk('directory', dest, node, 'name');
      remote = { kind: 'local', ip: '', name: dest, id: dest, line };
    } else {
      let bad = false;
      for (const [key, value] of [
        ['ip', ip],
        ['name', name],
      ] as const) {
        if (value.startsWith('-')) {
          p.error(line, where(node, key), 'starts with "-", so rsync would read it as an option');
          bad = true;
        }
      }
      if (ip.includes(':') && !/^(?:[^@]*@)?\[[^\]]*\]$/.test(ip)) {
        // sersync2 wrote `2001:db8::1::module`, which rsync cannot parse; brackets are the nearest thing that works.
        const user = ip.slice(0, ip.lastIndexOf('@') + 1);
        const host = ip.slice(user.length);
        const withPort = /^(\[[^\]]*\]|[^:]+):(\d*)$/.exec(host);
        if (isIPv6(host)) {
          p.warn(line, where(node, 'ip'), `an IPv6 address without brackets; sersync-ts connects to ${user}[${host}]`);
        } else if (withPort !== null) {
          // `10.0.0.2:873` would become `10.0.0.2:873::module`, which no rsync parses (sersync2's neither).
          p.error(
            line,
            where(node, 'ip'),
            `a port in ip: rsync's ${ssh ? 'host:path' : 'host::module'} form has no port; write ip="${user}${withPort[1]}" and set the port with <rsync><userDefinedPort start="true" port="${withPort[2] || (ssh ? '22' : '873')}"/>`,
          );
          bad = true;
        } else {
          p.error(line, where(node, 'ip'), 'an IPv6 address must be written in brackets, e.g. ip="[2001:db8::1]"');
          bad = true;
        }
      }
      if (bad) continue;
      remote = ssh ? { kind: 'ssh', ip, name, id: `${ip}:${name}`, line } : { kind: 'daemon', ip, name, id: `${ip}::${name}`, line };
    }
    if (remotes.some((r) => r.id === remote.id)) {
      p.warn(line, at, `the same destination as an earlier <remote> (${remote.id}), ignored`);
      continue;
    }
    remotes.push(remote);
  }
  if (nodes.length === 0 && !optional) {
    p.error(lp.el.line, where(lp), 'no <remote>; add <remote ip="host" name="module"/> inside <localpath>');
  }
  return remotes;
}

export function isInside(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith('/') ? outer : `${outer}/`);
}
