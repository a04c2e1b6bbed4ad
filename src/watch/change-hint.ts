import type { ChangeHint } from '../aggregate/aggregator.ts';
import type { InotifyToggles } from '../config/model.ts';
import type { RelPath } from '../core/paths.ts';
import { plainEventOf } from './move-pairs.ts';
import type { WatchEvent } from './watcher.ts';

/**
 * sersync2's eight inotify toggles, applied to what a Node watcher can tell apart. A Node watcher sees neither
 * close_write nor the difference between create, modify and moved_to, so those four count together; removals
 * count when <delete> is on. Symlinks, hard links and special files always count: they never get a
 * close_write, which is why sersync2 skips them until a full sync. See README "inotify toggles".
 */
export function changeHintFor(
  event: Exclude<WatchEvent, { kind: 'lost' }>,
  toggles: InotifyToggles,
): { path: RelPath; hint: ChangeHint } | null {
  // As in sersync2, only <delete> makes removals reach the remote: with it off, its moveFrom commands carried no
  // --delete and did nothing. A Node watcher cannot tell a move away from a delete, so <moveFrom> adds nothing.
  if (event.kind === 'rename') return changeHintFor(plainEventOf(event), toggles);
  const removals = toggles.delete;
  const writes = toggles.createFile || toggles.closeWrite || toggles.modify || toggles.moveTo;
  if (event.kind === 'dir') {
    if (event.op === 'changed') return { path: event.path, hint: { tree: true, removed: false, created: false, deletes: removals } };
    if (event.op === 'unlink') return removals ? { path: event.path, hint: { tree: true, removed: true, created: false } } : null;
    // createFolder off: the new directory is not synced as a whole; files written into it later still are.
    return toggles.createFolder || toggles.moveTo ? { path: event.path, hint: { tree: true, removed: false, created: true } } : null;
  }
  if (event.op === 'unlink') return removals ? { path: event.path, hint: { tree: false, removed: true, created: false } } : null;
  // With every write toggle off only links and special files would count; a Node watcher cannot tell them apart
  // from regular files at event time, so the choice is all or nothing: honour the operator's "off".
  if (!writes) return null;
  return { path: event.path, hint: { tree: false, removed: false, created: event.op === 'add' } };
}
