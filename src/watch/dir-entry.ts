import type { BigIntStats } from 'node:fs';
import type { RelPath } from '../core/paths.ts';
import type { DirEventHint, DirWatchListener, DirWatchToken } from './dir-watch-backend.ts';

/** Where a watched directory's events go (DirEventInterpreter). */
export interface DirEventSink {
  event(entry: DirEntry, type: 'rename' | 'change', name: Buffer | null, hint: DirEventHint | null): void;
  error(entry: DirEntry, err: unknown): void;
}

/**
 * One watched directory, and the listener its backend calls. Only directories have state; files never do. A class,
 * so that its listener methods live on the prototype: on a 1M-file tree a closure or two per directory was tens of MB.
 */
export class DirEntry implements DirWatchListener {
  readonly sink: DirEventSink;
  readonly path: RelPath;
  /** Identity of the directory when it was watched, to notice a directory replaced under the same name. */
  readonly ino: bigint;
  readonly dev: bigint;
  /** Inode numbers are reused at once on ext4 (rmdir a; mkdir a gives the same one); birth time tells them apart. */
  readonly birth: bigint;
  token: DirWatchToken = -1;
  /** Names of watched subdirectories, so that removing a subtree does not scan the whole map. */
  children: Set<string> | null = null;

  constructor(sink: DirEventSink, path: RelPath, st: BigIntStats) {
    this.sink = sink;
    this.path = path;
    this.ino = st.ino;
    this.dev = st.dev;
    this.birth = st.birthtimeNs;
  }

  event(type: 'rename' | 'change', name: Buffer | null, hint: DirEventHint | null): void {
    this.sink.event(this, type, name, hint);
  }

  error(err: unknown): void {
    this.sink.error(this, err);
  }
}

/** The same directory, not another one that got its inode number. */
export function sameDir(entry: DirEntry, st: BigIntStats): boolean {
  return entry.ino === st.ino && entry.dev === st.dev && entry.birth === st.birthtimeNs;
}
