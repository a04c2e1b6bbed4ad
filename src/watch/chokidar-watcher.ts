import type { Stats } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import { fromBytes, fromUtf8, joinRel, parentOf, baseName, toBuffer, type RelPath } from '../core/paths.ts';
import type { WatchEvent, WatchOptions, Watcher } from './watcher.ts';

/**
 * chokidar 6 behind the Watcher interface. chokidar hands out UTF-8 strings; a name that is not valid UTF-8 arrives
 * with U+FFFD in it. Such an event is mapped back to the real byte names by listing the parent directory as bytes;
 * if none matches any more (the file is gone), the parent directory is reported instead, so it is synced with its
 * deletions.
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
        // Without stats chokidar asks again with them; a directory-only rule must not guess.
        return options.isIgnored(rel(abs), stats?.isDirectory() ?? false);
      },
    });
    this.#fsw = fsw;
    const emit = (kind: 'file' | 'dir', op: 'add' | 'change' | 'unlink', abs: string) => {
      const path = rel(abs);
      if (!path.includes('\u00ef\u00bf\u00bd')) {
        sink(kind === 'dir' ? { kind, op: op === 'change' ? 'add' : op, path } : { kind, op, path });
        return;
      }
      void resolveMangled(root, path).then((real) => {
        if (real.length === 0) sink({ kind: 'dir', op: 'add', path: parentOf(path) });
        for (const p of real) sink(kind === 'dir' ? { kind, op: op === 'change' ? 'add' : op, path: p } : { kind, op, path: p });
      });
    };
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

/** Real byte names in the parent directory whose UTF-8 reading equals the mangled name. */
async function resolveMangled(root: string, mangled: RelPath): Promise<RelPath[]> {
  const dir = parentOf(mangled);
  const wanted = Buffer.from(baseName(mangled), 'latin1').toString('utf8');
  try {
    const names = await readdir(Buffer.concat([Buffer.from(root), toBuffer(dir === '' ? '' : `/${dir}`)]), { encoding: 'buffer' });
    return names.filter((n) => n.toString('utf8') === wanted).map((n) => joinRel(dir, fromBytes(n)));
  } catch {
    return [];
  }
}
