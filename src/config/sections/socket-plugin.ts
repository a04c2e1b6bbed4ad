import { type ConfigNode, attr, child, children, where } from '../config-node.ts';
import { el } from '../element-spec.ts';
import type { SocketPluginConfig } from '../model.ts';
import { PORT, type ValueReader } from '../value-reader.ts';
import { readPluginWatch } from './plugin-watch.ts';

/** `<plugin name="socket"><localpath watch><deshost ip port/>...</localpath></plugin>`. */
export const SOCKET_PLUGIN_SPEC = el('plugin', ['name'], [el('localpath', ['watch'], [el('deshost', ['ip', 'port'], [], true)])]);

export function readSocketPlugin(block: ConfigNode, enabled: boolean, values: ValueReader): SocketPluginConfig {
  const p = values.problems;
  const lp = child(block, 'localpath');
  const watch = readPluginWatch(lp, enabled, values);
  const hosts: { ip: string; port: number }[] = [];
  for (const node of children(lp, 'deshost')) {
    const ip = (attr(node, 'ip') ?? '').trim();
    if (ip === '') {
      p.report(enabled, node.el.line, where(node, 'ip'), 'missing host address');
      continue;
    }
    let ok = true;
    const port = values.number(node, 'port', 0, PORT, (n, key, msg) => {
      ok = false;
      p.report(enabled, n.el.line, where(n, key), msg);
    });
    if (attr(node, 'port') === undefined) {
      ok = false;
      p.report(enabled, node.el.line, where(node), 'missing port');
    }
    if (ok) hosts.push({ ip, port });
  }
  if (enabled && hosts.length === 0) {
    const at = lp ?? block;
    p.error(at.el.line, where(at), 'no usable <deshost ip="..." port="..."/>; the socket plugin has nowhere to send');
  }
  return { watch, hosts };
}
