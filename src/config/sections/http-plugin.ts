import { type ConfigNode, attr, child, where } from '../config-node.ts';
import { el } from '../element-spec.ts';
import type { HttpPluginConfig } from '../model.ts';
import type { ValueReader } from '../value-reader.ts';
import { readPluginWatch } from './plugin-watch.ts';

/**
 * The http plugin was never compiled into sersync2 2.5.x, so its XML is sersync-ts's own, shaped like the socket
 * plugin's: `<plugin name="http"><localpath watch="/dir"><deshost url="http://host:port/path"/></localpath></plugin>`.
 */
export const HTTP_PLUGIN_SPEC = el('plugin', ['name'], [el('localpath', ['watch'], [el('deshost', ['url'])])]);

export function readHttpPlugin(block: ConfigNode, enabled: boolean, values: ValueReader): HttpPluginConfig {
  const lp = child(block, 'localpath');
  const watch = readPluginWatch(lp, enabled, values);
  const host = child(lp, 'deshost');
  const url = (attr(host, 'url') ?? '').trim();
  if (url === '') {
    const at = host ?? lp ?? block;
    values.problems.report(
      enabled,
      at.el.line,
      host === undefined ? where(at) : where(host, 'url'),
      host === undefined ? 'no <deshost url="http://host:port/path"/>' : 'missing url',
    );
  } else if (host !== undefined && !/^https?:$/.test(URL.parse(url)?.protocol ?? '')) {
    values.problems.report(enabled, host.el.line, where(host, 'url'), 'expected an http:// or https:// URL');
  }
  return { watch, url };
}
