import { type ConfigNode, attr, child, children, where } from '../config-node.ts';
import { SHIPPED } from '../defaults.ts';
import { el } from '../element-spec.ts';
import type { Config } from '../model.ts';
import type { ValueReader } from '../value-reader.ts';

/** `<sersync><crontab start schedule><crontabfilter start><exclude expression/>`: the periodic full sync. */
export const CRONTAB_SPEC = el(
  'crontab',
  ['start', 'schedule'],
  [el('crontabfilter', ['start'], [el('exclude', ['expression'], [], true)])],
);

/**
 * While the crontab is off its values are read but never warned about: sersync2 never used them, so a `schedule="0"`
 * there is no problem (and must not fail `--check --strict`).
 */
export function readCrontab(node: ConfigNode | undefined, values: ValueReader): Config['crontab'] {
  const enabled = values.bool(node, 'start', false);
  const rawSchedule = attr(node, 'schedule');
  // sersync2: atoi(value) minutes, and 0 or less (a word too) meant 600.
  const scheduleMinutes =
    rawSchedule === undefined || node === undefined
      ? SHIPPED.crontabMinutes
      : values.minutes(node, 'schedule', rawSchedule, { atMostZero: SHIPPED.crontabMinutes, meaning: 'as sersync2 did', quiet: !enabled });
  const filterNode = child(node, 'crontabfilter');
  const filterEnabled = enabled ? values.bool(filterNode, 'start', false) : attr(filterNode, 'start') === 'true';
  const excludes: string[] = [];
  if (filterEnabled && filterNode !== undefined) {
    // rsync patterns, not regexes: handed to rsync as --exclude=PATTERN, never compiled here.
    for (const ex of children(filterNode, 'exclude')) {
      const expr = attr(ex, 'expression') ?? '';
      if (expr.trim() === '') {
        if (enabled) values.problems.warn(ex.el.line, where(ex, 'expression'), 'empty pattern, ignored');
      } else excludes.push(expr);
    }
  }
  return { enabled, scheduleMinutes, filter: { enabled: filterEnabled, excludes } };
}
