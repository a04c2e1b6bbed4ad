import { type ConfigNode, child, where } from '../config-node.ts';
import { SHIPPED_TOGGLES } from '../defaults.ts';
import { el } from '../element-spec.ts';
import type { InotifyToggles } from '../model.ts';
import type { ValueReader } from '../value-reader.ts';

const TOGGLES = Object.keys(SHIPPED_TOGGLES) as (keyof InotifyToggles)[];

/** `<inotify><delete start/>...</inotify>`: which events are synced. */
export const INOTIFY_SPEC = el(
  'inotify',
  [],
  TOGGLES.map((t) => el(t, ['start'])),
);

export function readInotify(node: ConfigNode | undefined, values: ValueReader): InotifyToggles {
  const t = {} as Record<keyof InotifyToggles, boolean>;
  for (const key of TOGGLES) t[key] = values.bool(child(node, key), 'start', SHIPPED_TOGGLES[key]);
  if (Object.values(t).every((on) => !on) && node !== undefined) {
    values.problems.warn(node.el.line, where(node), 'every event is off, so nothing is synced in real time (only -r and crontab)');
  }
  return t;
}
