import { type ConfigNode, attr, where } from '../config-node.ts';
import { SHIPPED } from '../defaults.ts';
import { el } from '../element-spec.ts';
import type { Config } from '../model.ts';
import type { ValueReader } from '../value-reader.ts';

/** `<sersync><failLog path timeToExecute>`: sersync2's retry script; sersync-ts keeps its retry queue there. */
export const FAIL_LOG_SPEC = el('failLog', ['path', 'timeToExecute']);

export function readFailLog(node: ConfigNode | undefined, values: ValueReader): Config['failLog'] {
  let file = attr(node, 'path') ?? SHIPPED.failLog.path;
  if (file === '' && node !== undefined) {
    values.problems.warn(
      node.el.line,
      where(node, 'path'),
      `empty (sersync2 then ran /bin/sh on its terminal); using ${SHIPPED.failLog.path}`,
    );
    file = SHIPPED.failLog.path;
  }
  if (node !== undefined) file = values.absolute(node, 'path', file);
  const raw = attr(node, 'timeToExecute');
  let retryCapMinutes: number = SHIPPED.failLog.minutes;
  if (raw !== undefined && node !== undefined) {
    if (raw.trim() === '') retryCapMinutes = SHIPPED.failLog.minutesWhenEmpty;
    else {
      // sersync2: atoi(value) minutes; at 0 or less it replayed its failLog at every idle minute.
      retryCapMinutes = values.minutes(node, 'timeToExecute', raw, {
        atMostZero: 1,
        meaning: 'sersync2 replayed its failLog every idle minute',
      });
    }
  }
  return { path: file, retryCapMinutes };
}
