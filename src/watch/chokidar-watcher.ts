import type { Stats } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import { fromBytes, fromUtf8, joinRel, toBuffer, type RelPath } from '../core/paths.ts';
import type { WatchEvent, WatchOptions, Watcher } from './watcher.ts';

/**
 * chokidar 6 behind the Watcher interface. chokidar hands out UTF-8 strings; a name that is not valid UTF-8 is
 * mapped back to its real bytes from chokidar's raw event (see below).
 */
export class ChokidarWatcher implements Watcher {
  #fsw: FSWatcher | null = null;
  #dirs = 0;

  async start(root: string, sink: (event: WatchEvent) => void, options: WatchOptions): Promise<void> {
    const rel = (abs: string): RelPath => fromUtf8(relative(root, abs).split(sep).join('/'));
    const fsw = watch(root, {
      ignoreInitial: true,
      followSymlinks: false,
      atomic: false,
      ignorePermissionErrors: true,
      ignored: (abs: string, stats?: Stats) => {
        if (abs === root) return false;
        // chokidar often asks without stats (ancestors, new paths) and does not ask again: then only what is
        // excluded as a directory too (a rule for files only, like sersync2's dot-file rule, must not stop a dot
        // directory from being watched); emit() applies the file rules to file events.
        return options.isIgnored(rel(abs), stats ? stats.isDirectory() : true);
      },
    });
    this.#fsw = fsw;
    const emit = (kind: 'file' | 'dir', op: 'add' | 'change' | 'unlink', abs: string) => {
      const path = rel(abs);
      if (options.isIgnored(path, kind === 'dir')) return;
      sink(kind === 'dir' ? { kind, op: op === 'change' ? 'add' : op, path } : { kind, op, path });
    };
    // chokidar drops names that are not valid UTF-8 (they arrive with U+FFFD, and lstat on that fails), but its raw
    // event still names the directory: find the real byte names there; if none is left, sync the directory.
    fsw.on('raw', (_event: string, name: unknown, details: unknown) => {
      const dirAbs = (details as { watchedPath?: string } | undefined)?.watchedPath;
      if (typeof name !== 'string' || !name.includes('\uFFFD') || typeof dirAbs !== 'string') return;
      const dir = dirAbs === root ? '' : rel(dirAbs);
      void namesMatching(root, dir, name).then((real) => {
        if (real.length === 0) sink({ kind: 'dir', op: 'changed', path: dir });
        for (const path of real) if (!options.isIgnored(path, false)) sink({ kind: 'file', op: 'change', path });
      });
    });
    fsw.on('add', (p) => emit('file', 'add', p));
    fsw.on('change', (p) => emit('file', 'change', p));
    fsw.on('unlink', (p) => emit('file', 'unlink', p));
    fsw.on('addDir', (p) => {
      this.#dirs++;
      if (p !== root) emit('dir', 'add', p);
    });
    fsw.on('unlinkDir', (p) => {
      this.#dirs = Math.max(0, this.#dirs - 1);
      if (p === root) sink({ kind: 'lost', reason: 'the watch root was removed' });
      else emit('dir', 'unlink', p);
    });
    fsw.on('error', (err: unknown) => {
      sink({ kind: 'lost', reason: `watcher error: ${(err as Error)?.message ?? String(err)}`, cause: err });
    });
    await new Promise<void>((resolve) => fsw.once('ready', () => resolve()));
    // chokidar counts the initial directories through addDir only when ignoreInitial is off.
    this.#dirs = Object.keys(fsw.getWatched()).length;
  }

  watchCount(): number {
    return this.#dirs;
  }

  async close(): Promise<void> {
    await this.#fsw?.close();
    this.#fsw = null;
    this.#dirs = 0;
  }
}

/** Real byte names in `dir` whose UTF-8 reading is `decoded`. */
async function namesMatching(root: string, dir: RelPath, decoded: string): Promise<RelPath[]> {
  try {
    const names = await readdir(Buffer.concat([Buffer.from(root), toBuffer(dir === '' ? '' : `/${dir}`)]), { encoding: 'buffer' });
    return names.filter((n) => n.toString('utf8') === decoded).map((n) => joinRel(dir, fromBytes(n)));
  } catch {
    return [];
  }
}
