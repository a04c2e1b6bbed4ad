import { type ConfigNode, attr, child, where } from '../config-node.ts';
import { SHIPPED } from '../defaults.ts';
import { el } from '../element-spec.ts';
import type { CommandPluginConfig } from '../model.ts';
import { readRegexList } from '../regex-list.ts';
import type { ValueReader } from '../value-reader.ts';

/** `<plugin name="command"><param prefix suffix ignoreError/><filter start><include expression/>...`. */
export const COMMAND_PLUGIN_SPEC = el(
  'plugin',
  ['name'],
  [el('param', ['prefix', 'suffix', 'ignoreError']), el('filter', ['start'], [el('include', ['expression'], [], true)])],
);

export function readCommandPlugin(block: ConfigNode, enabled: boolean, values: ValueReader): CommandPluginConfig {
  const param = child(block, 'param');
  const words = (key: 'prefix' | 'suffix'): string[] => values.words(param, key, attr(param, key) ?? SHIPPED.command[key], enabled) ?? [];
  const prefix = words('prefix');
  const suffix = words('suffix');
  const ignoreError = values.bool(param, 'ignoreError', SHIPPED.command.ignoreError);
  const filterNode = child(block, 'filter');
  const filterEnabled = values.bool(filterNode, 'start', false);
  const includes = filterEnabled ? readRegexList(values, filterNode, 'include', enabled) : [];
  if (enabled && filterEnabled && includes.length === 0 && filterNode !== undefined) {
    values.problems.warn(filterNode.el.line, where(filterNode), 'on, but without any <include expression>: the command never runs');
  }
  return { prefix, suffix, ignoreError, filter: { enabled: filterEnabled, includes } };
}
