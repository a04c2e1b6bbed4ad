import type { ConfigNode } from '../config-node.ts';
import { el } from '../element-spec.ts';
import type { Config } from '../model.ts';
import { readRegexList } from '../regex-list.ts';
import type { ValueReader } from '../value-reader.ts';

/** `<filter start><exclude expression/>...</filter>`: the realtime excludes, regexes as in sersync2. */
export const FILTER_SPEC = el('filter', ['start'], [el('exclude', ['expression'], [], true)]);

export function readFilter(node: ConfigNode | undefined, values: ValueReader): Config['filter'] {
  const enabled = values.bool(node, 'start', false);
  // Like sersync2, the expressions of a disabled filter are not read at all.
  const excludes = enabled ? readRegexList(values, node, 'exclude', true) : [];
  return { enabled, excludes };
}
