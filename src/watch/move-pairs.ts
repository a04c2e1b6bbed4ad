import type { RelPath } from '../core/paths.ts';
import type { WatchEvent } from './watcher.ts';

type RenameEvent = Extract<WatchEvent, { kind: 'rename' }>;

/**
 * Pairs inotify's two halves of a move by their cookie. The kernel queues IN_MOVED_TO right after its IN_MOVED_FROM
 * (both on this one inotify descriptor), so only a few recent halves need keeping; a half whose partner never comes
 * (moved out of the tree) drops out after MAX_OPEN_MOVES others, and the move in is then a plain create.
 */
export class MovePairs {
  /** Insertion order is age: the oldest is dropped first. */
  readonly #open = new Map<number, { readonly path: RelPath; readonly isDir: boolean }>();

  /** The old name of a move (IN_MOVED_FROM), reported as a removal. */
  movedFrom(cookie: number, path: RelPath, isDir: boolean): void {
    this.#open.delete(cookie);
    this.#open.set(cookie, { path, isDir });
    if (this.#open.size > MAX_OPEN_MOVES) this.#open.delete(this.#open.keys().next().value as number);
  }

  /** The old name of the move that ends at this IN_MOVED_TO, or null (moved in from outside the tree). */
  movedTo(cookie: number, isDir: boolean): RelPath | null {
    const from = this.#open.get(cookie);
    if (from === undefined) return null;
    this.#open.delete(cookie);
    return from.isDir === isDir ? from.path : null;
  }
}

/** Halves of moves kept waiting for their partner. */
export const MAX_OPEN_MOVES = 64;

/** What a rename is at its new name for whoever does not pair moves: a new directory, or a file moved in. */
export function plainEventOf(event: RenameEvent): Exclude<WatchEvent, { kind: 'lost' | 'rename' }> {
  return event.isDir ? { kind: 'dir', op: 'add', path: event.path } : { kind: 'file', op: 'change', path: event.path, how: 'moveTo' };
}
