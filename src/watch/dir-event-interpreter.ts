import { type BigIntStats, type Dirent, lstatSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { baseName, displayPath, fromBytes, joinRel, type RelPath } from '../core/paths.ts';
import type { DirEntry, DirEventSink } from './dir-entry.ts';
import type { DirEventHint } from './dir-watch-backend.ts';
import { MovePairs } from './move-pairs.ts';
import type { PathChecks } from './path-checks.ts';
import type { WatchedTree } from './watched-tree.ts';

/**
 * What a watched directory's event means. Most are reported at once: a 'change' of an entry, and with the native
 * reader's hint any non-directory created, moved or removed (the lane lstats every path when the batch goes anyway).
 * The rest (directories, and every 'rename' on fs.watch, which gives no type) go to PathChecks for one lstat.
 */
export class DirEventInterpreter implements DirEventSink {
  readonly #tree: WatchedTree;
  readonly #checks: PathChecks;
  readonly #moves = new MovePairs();

  constructor(tree: WatchedTree, checks: PathChecks) {
    this.#tree = tree;
    this.#checks = checks;
  }

  event(entry: DirEntry, type: 'rename' | 'change', name: Buffer | null, hint: DirEventHint | null): void {
    const tree = this.#tree;
    const dir = entry.path;
    if (tree.dirs.get(dir) !== entry) return; // a closed or replaced watcher
    const ownName = dir === '' ? tree.rootName : baseName(dir);
    if (name === null && hint?.self !== true) {
      void this.#rescan(dir, entry);
      return;
    }
    const bytes = name === null ? ownName : fromBytes(name);
    // libuv names a watch's own events (IN_DELETE_SELF, IN_MOVE_SELF, IN_ATTRIB on itself) after the directory, and
    // reports them as 'rename' (IN_ISDIR is set). Such an event cannot be told from one about a child of the same name.
    // The native reader says which it is (hint.self) and is treated the same way, so both backends behave alike.
    const self = hint !== null ? hint.self || bytes === ownName : bytes === ownName;
    const path = joinRel(dir, bytes);
    const checks = this.#checks;
    // A 'change' (IN_MODIFY, IN_ATTRIB) names an entry that exists and was not just created, renamed or removed:
    // those come as 'rename'. If it is no watched directory it is a file (or a directory whose own 'rename' is
    // being looked at), and the lane lstats every path when the batch goes anyway, so it needs no lstat here. (An
    // unreadable directory is looked at: a chmod may have made it watchable.)
    // This saves three of the four lstat calls a copied file cost (create, modify, chmod, utimes).
    // (With the native reader's hint, a directory that is not watched, say after ENOSPC, is looked at: it may be
    // watchable now.)
    const movedFrom = tree.pairMoves && hint?.cookie !== undefined && !self ? this.#pairMove(path, hint) : null;
    const unwatchedDir = hint?.isDir === true && !tree.dirs.has(path);
    if (type !== 'rename' && !self && !unwatchedDir && !checks.has(path) && !tree.unreadable.has(path)) {
      if (tree.dirs.has(path) || tree.isIgnored(path, false)) return;
      tree.emit(hint?.how ? { kind: 'file', op: 'change', path, how: hint.how } : { kind: 'file', op: 'change', path });
      return;
    }
    // The native backend says what a 'rename' was: a non-directory created, moved in, removed or moved away needs
    // no lstat either (the batch looks at the disk), unless the name was a watched directory a moment ago.
    if (hint !== null && !hint.isDir && !self && !checks.has(path) && !tree.dirs.has(path) && !tree.unreadable.has(path)) {
      if (tree.isIgnored(path, false)) return;
      if (hint.gone) tree.emit({ kind: 'file', op: 'unlink', path });
      else if (movedFrom !== null) tree.emit({ kind: 'rename', op: 'move', path, from: movedFrom, isDir: false });
      else
        tree.emit({
          kind: 'file',
          op: 'change',
          path,
          how: hint.how === 'create' ? this.#createdHow(path, entry) : (hint.how ?? 'create'),
        });
      return;
    }
    checks.add(path, dir, entry, type === 'rename', self);
  }

  error(entry: DirEntry, err: unknown): void {
    const tree = this.#tree;
    const path = entry.path;
    if (tree.dirs.get(path) !== entry) return;
    tree.unwatchTree(path);
    tree.emit({
      kind: 'lost',
      reason: `watching ${displayPath(path) || '.'} failed: ${err instanceof Error ? err.message : String(err)}`,
      cause: err,
    });
  }

  /**
   * One half of a move (see MovePairs). The old name is kept unless it is ignored (no removal is reported for it
   * then, so the new name is no rename). For the new name: the old one, or null; a directory's is kept until its walk
   * reports it.
   */
  #pairMove(path: RelPath, hint: DirEventHint): RelPath | null {
    const cookie = hint.cookie as number;
    if (hint.gone) {
      if (this.#tree.isIgnored(path, hint.isDir)) return null;
      this.#moves.movedFrom(cookie, path, hint.isDir);
      if (hint.isDir) {
        // A directory's removal waits for its IN_MOVED_TO, which comes in the same turn (InotifyInstance holds a
        // move's first half for it): claimed by the walk of the new name, both are reported then; else now.
        this.#tree.movesFrom.set(path, false);
        queueMicrotask(() => {
          if (this.#tree.movesFrom.get(path) === false) this.#checks.moveEnded(path);
        });
      }
      return null;
    }
    const from = this.#moves.movedTo(cookie, hint.isDir);
    if (from !== null && hint.isDir && !this.#tree.isIgnored(path, true)) this.#checks.movedDir(path, from);
    return from;
  }

  /**
   * A non-directory was created: a regular file being written ('create': a close-write follows), or something that
   * gets none ('link': a symlink, a hard link to an existing file, a FIFO or device). One lstat, synchronous on the
   * root's own device.
   */
  #createdHow(path: RelPath, dir: DirEntry): 'create' | 'link' {
    // Below another mount point an lstat could block on a hung file system: sent at once, as before.
    if (dir.dev !== this.#tree.root?.dev) return 'link';
    try {
      const st: BigIntStats = lstatSync(this.#tree.abs(path), { bigint: true });
      return st.isFile() && st.nlink === 1n ? 'create' : 'link';
    } catch {
      return 'create';
    }
  }

  /** A watcher event without a name: report the directory for a recursive sync and reconcile its subdirectories. */
  async #rescan(dir: RelPath, entry: DirEntry): Promise<void> {
    const tree = this.#tree;
    let listing: Dirent<Buffer>[] | null;
    try {
      listing = await readdir(tree.abs(dir), { withFileTypes: true, encoding: 'buffer' });
    } catch {
      listing = null; // gone: its parent reports that
    }
    if (tree.dirs.get(dir) !== entry) return;
    if (listing !== null) {
      const present = new Set<string>();
      for (const dirent of listing) {
        if (!dirent.isDirectory()) continue;
        const name = fromBytes(dirent.name);
        present.add(name);
        if (entry.children?.has(name) !== true) this.#checks.add(joinRel(dir, name), dir, entry, true, false);
      }
      for (const name of entry.children ?? []) {
        if (!present.has(name)) this.#checks.add(joinRel(dir, name), dir, entry, true, false);
      }
    }
    tree.emit({ kind: 'dir', op: 'add', path: dir });
  }
}
