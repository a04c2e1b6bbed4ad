import { type ConfigNode, attr, where } from '../config-node.ts';
import type { ValueReader } from '../value-reader.ts';

/** A plugin block's own `<localpath watch>`; null when it has none. */
export function readPluginWatch(lp: ConfigNode | undefined, enabled: boolean, values: ValueReader): string | null {
  const raw = attr(lp, 'watch');
  if (lp === undefined || raw === undefined || raw === '') {
    if (lp !== undefined) values.problems.report(enabled, lp.el.line, where(lp, 'watch'), 'missing watch directory');
    return null;
  }
  return values.absolute(lp, 'watch', raw);
}
