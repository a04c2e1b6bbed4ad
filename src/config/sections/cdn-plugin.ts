import { fromUtf8 } from '../../core/paths.ts';
import { type ConfigNode, attr, child, where } from '../config-node.ts';
import { SHIPPED } from '../defaults.ts';
import { el } from '../element-spec.ts';
import type { RefreshCdnPluginConfig } from '../model.ts';
import { regexProblem } from '../regex-list.ts';
import { PORT, type ValueReader } from '../value-reader.ts';
import { readPluginWatch } from './plugin-watch.ts';

/** `<plugin name="refreshCDN"><localpath watch><cdninfo .../><sendurl base/><regexurl regex match/></localpath>`. */
export const CDN_PLUGIN_SPEC = el(
  'plugin',
  ['name'],
  [
    el(
      'localpath',
      ['watch'],
      [el('cdninfo', ['domainname', 'port', 'username', 'passwd']), el('sendurl', ['base']), el('regexurl', ['regex', 'match'])],
    ),
  ],
);

export function readCdnPlugin(block: ConfigNode, enabled: boolean, values: ValueReader): RefreshCdnPluginConfig {
  const p = values.problems;
  const lp = child(block, 'localpath');
  const watch = readPluginWatch(lp, enabled, values);
  const info = child(lp, 'cdninfo');
  const sendurl = child(lp, 'sendurl');
  const regexurl = child(lp, 'regexurl');
  // sersync2 refuses the plugin when any of these is missing or empty.
  const required = (node: ConfigNode | undefined, tag: string, key: string): string => {
    const value = attr(node, key) ?? '';
    if (value === '') {
      const at = node === undefined ? (lp ?? block) : node;
      p.report(
        enabled,
        at.el.line,
        node === undefined ? where(at) : where(node, key),
        node === undefined ? `no <${tag} ${key}="...">` : `missing ${key}`,
      );
    }
    return value;
  };
  const domainName = required(info, 'cdninfo', 'domainname');
  const portRaw = required(info, 'cdninfo', 'port');
  const port = portRaw === '' ? SHIPPED.cdnPort : values.number(info, 'port', SHIPPED.cdnPort, PORT, values.reportIf(enabled));
  const username = required(info, 'cdninfo', 'username');
  const password = required(info, 'cdninfo', 'passwd');
  const sendUrlBase = required(sendurl, 'sendurl', 'base');
  const regexEnabled = values.bool(regexurl, 'regex', false);
  const match = regexEnabled ? required(regexurl, 'regexurl', 'match') : (attr(regexurl, 'match') ?? '');
  if (regexEnabled && match !== '' && regexurl !== undefined) {
    // Used with regex_search (unanchored) on the absolute path; only checked here, the plugin compiles it.
    const problem = regexProblem(values.utf8 ? fromUtf8(match) : match);
    if (problem !== null) p.report(enabled, regexurl.el.line, where(regexurl, 'match'), `invalid regular expression: ${problem}`);
  }
  return { watch, domainName, port, username, password, sendUrlBase, regex: { enabled: regexEnabled, match } };
}
