import path from 'node:path';
import { tempGlobProblem } from '../../watch/path-filter.ts';
import { type ConfigNode, attr, where } from '../config-node.ts';
import { TUNING_DEFAULTS } from '../defaults.ts';
import { el } from '../element-spec.ts';
import type { Tuning } from '../model.ts';
import type { ValueRange, ValueReader } from '../value-reader.ts';

/** `<tuning .../>`: sersync-ts's own knobs; sersync2 had no such element. */
export const TUNING_SPEC = el('tuning', [
  'dotFiles',
  'tempGlobs',
  'quietMs',
  'maxWaitMs',
  'maxChildrenPerDir',
  'maxPendingPaths',
  'watcher',
  'stateDir',
  'progressMs',
  'maxDelete',
]);

const DAY_MS = 86_400_000;
const COUNT: ValueRange = { min: 1, max: 1_000_000_000, expect: 'expected a whole number > 0' };

export function readTuning(node: ConfigNode | undefined, values: ValueReader): Tuning {
  if (node === undefined) return TUNING_DEFAULTS;
  const p = values.problems;
  const d = TUNING_DEFAULTS;
  const bad = values.reportIf(true);
  const quietMs = values.number(node, 'quietMs', d.quietMs, { min: 0, max: DAY_MS, expect: 'expected whole milliseconds >= 0' }, bad);
  const maxWaitMs = values.number(node, 'maxWaitMs', d.maxWaitMs, { min: 1, max: DAY_MS, expect: 'expected whole milliseconds > 0' }, bad);
  if (maxWaitMs < quietMs) p.error(node.el.line, where(node, 'maxWaitMs'), `must not be less than quietMs (${quietMs})`);
  const watcherRaw = attr(node, 'watcher') ?? d.watcher;
  let watcher = d.watcher;
  if (watcherRaw === 'chokidar' || watcherRaw === 'dirs') watcher = watcherRaw;
  else p.error(node.el.line, where(node, 'watcher'), 'expected "chokidar" or "dirs"');
  const stateRaw = attr(node, 'stateDir') ?? '';
  let stateDir: string | null = null;
  if (stateRaw !== '') {
    if (path.isAbsolute(stateRaw)) stateDir = path.resolve(stateRaw);
    else p.error(node.el.line, where(node, 'stateDir'), 'expected an absolute directory');
  }
  return {
    dotFiles: values.bool(node, 'dotFiles', d.dotFiles),
    tempGlobs: readTempGlobs(node, values),
    quietMs,
    maxWaitMs,
    maxChildrenPerDir: values.number(node, 'maxChildrenPerDir', d.maxChildrenPerDir, COUNT, bad),
    maxPendingPaths: values.number(node, 'maxPendingPaths', d.maxPendingPaths, COUNT, bad),
    watcher,
    stateDir,
    progressMs: values.number(
      node,
      'progressMs',
      d.progressMs,
      { min: 100, max: DAY_MS, expect: 'expected whole milliseconds >= 100' },
      bad,
    ),
    maxDelete: attr(node, 'maxDelete') === undefined ? null : values.number(node, 'maxDelete', 0, COUNT, bad),
  };
}

/** `tempGlobs="*.part *.crdownload"`: the extra temporary-file globs, separated by blanks; "" clears them. */
function readTempGlobs(node: ConfigNode, values: ValueReader): readonly string[] {
  const raw = attr(node, 'tempGlobs');
  if (raw === undefined) return TUNING_DEFAULTS.tempGlobs;
  const globs: string[] = [];
  for (const glob of raw.split(/\s+/).filter(Boolean)) {
    const problem = tempGlobProblem(glob);
    if (problem === null) globs.push(glob);
    else values.problems.warn(node.el.line, where(node, 'tempGlobs'), `"${glob}" ${problem}; ignored`);
  }
  return globs;
}
