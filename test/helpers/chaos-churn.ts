/**
 * The churn of a chaos run: a model of the watched tree, and operations on the real tree chosen from the model with
 * a seeded random source, one after the other. Every choice is made from the model, never from what the disk shows,
 * so a seed always gives the same operations in the same order; only how many run in a given time varies.
 *
 * What the churn does not do, because no inotify watcher can see it (so a mirror could not follow, by any design):
 * - change a file in place (write, append, truncate, chmod, utimes) while it has another hard link: the kernel
 *   reports the change only in the directory of the name that was used;
 * - chmod or utimes a directory: sersync-ts syncs directory attributes only with a full sync (dir-watcher.ts);
 * - give a file the same size and mtime as the remote copy it replaces: rsync's quick check would skip it, so every
 *   rewrite changes the size, and a rename onto a file of the same size is not made.
 * Names matching the built-in temporary-file rules (src/watch/path-filter.ts) are never made; the marker file
 * `.chaos-keep` at the root is never touched (an empty root makes sersync-ts hold deletions, by design).
 */
import { writeFileSync } from 'node:fs';
import { appendFile, chmod, link, mkdir, rename, rm, symlink, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import type { SeededRandom } from './chaos-random.ts';
import { runProcess } from './processes.ts';
import { oddNames } from './trees.ts';

type Node = { kind: 'file'; ino: number; size: number } | { kind: 'dir' } | { kind: 'link'; target: Buffer };

/** Operation names, as counted in a run's report. */
export const CHURN_OPS = [
  'create',
  'overwrite',
  'append',
  'truncate',
  'moveFile',
  'atomicSave',
  'remove',
  'mkdirDeep',
  'renameDir',
  'moveDir',
  'removeDir',
  'recreateDir',
  'replaceType',
  'symlink',
  'hardlink',
  'chmod',
  'utimes',
  'oddName',
  'cpBurst',
  'flurry',
] as const;
export type ChurnOp = (typeof CHURN_OPS)[number];

export interface ChurnOptions {
  /** The watched directory (it must exist and hold only what this churn made). */
  readonly root: string;
  /** An empty directory outside the watched tree for the `cp -a` sources. */
  readonly staging: string;
  /** Entries the tree tends towards; past it removals win. Default 3000. */
  readonly targetEntries?: number;
  /** How many of the last operations `recent()` keeps. Default 2000. */
  readonly recentLimit?: number;
}

const MARKER = '.chaos-keep';
const SLASH = 0x2f;
const MAX_DEPTH = 10;
const MODES = [0o644, 0o600, 0o640, 0o755, 0o444, 0o664];
const OLD_TIME_FROM = Date.UTC(2001, 0, 1) / 1000;
const OLD_TIME_SPAN = 20 * 365 * 86_400;
const ABSOLUTE_TARGETS = [
  Buffer.from('/etc/hostname'),
  Buffer.from('/nonexistent/abs target'),
  Buffer.from([0x2f, 0x74, 0xff, 0x0a, 0x78]),
];
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A path held as latin1 text (one char per byte), so every byte string is a distinct key and '/' stays '/'. */
type Key = string;

const bytesOf = (key: Key) => Buffer.from(key, 'latin1');
const parentKey = (key: Key) => key.slice(0, Math.max(0, key.lastIndexOf('/')));
const baseKey = (key: Key) => key.slice(key.lastIndexOf('/') + 1);
const joinKey = (dir: Key, name: Key) => (dir === '' ? name : `${dir}/${name}`);
const depthOf = (key: Key) => (key === '' ? 0 : key.split('/').length);
const within = (key: Key, dir: Key) => dir === '' || key === dir || key.startsWith(`${dir}/`);

function validUtf8(key: Key): boolean {
  try {
    utf8.decode(bytesOf(key));
    return true;
  } catch {
    return false;
  }
}

/** A path for a message: JSON-quoted when valid UTF-8, else with \xNN escapes. */
export function showKey(key: Key): string {
  if (key === '') return '(root)';
  if (validUtf8(key)) return JSON.stringify(bytesOf(key).toString('utf8'));
  return `"${[...key].map((c) => (c >= ' ' && c < '\x7f' && c !== '"' && c !== '\\' ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)).join('')}"`;
}

/** Sizes: mostly small, some tens of KB, a few up to 1 MB. */
function sizeFrom(rng: SeededRandom): number {
  const r = rng.next();
  if (r < 0.7) return rng.int(0, 2048);
  if (r < 0.97) return rng.int(2049, 65_536);
  return rng.int(65_537, 1 << 20);
}

function differentSize(rng: SeededRandom, old: number): number {
  const size = sizeFrom(rng);
  return size === old ? size + 1 : size;
}

export class ChaosChurn {
  readonly #rng: SeededRandom;
  readonly #rootBytes: Buffer;
  readonly #staging: string;
  readonly #target: number;
  readonly #nodes = new Map<Key, Node>([['', { kind: 'dir' }]]);
  /** Inode number (of the model) → number of names. */
  readonly #linkCounts = new Map<number, number>();
  #nextIno = 0;
  #nextName = 0;
  #lists: { dirs: Key[]; files: Key[]; others: Key[] } | null = null;
  readonly #counts = Object.fromEntries(CHURN_OPS.map((op) => [op, 0])) as Record<ChurnOp, number>;
  #done = 0;
  /** The last operations, newest last, for a failure report. */
  readonly #recent: string[] = [];
  readonly #recentLimit: number;

  constructor(rng: SeededRandom, opts: ChurnOptions) {
    this.#rng = rng;
    this.#rootBytes = Buffer.from(opts.root);
    this.#staging = opts.staging;
    this.#target = opts.targetEntries ?? 3000;
    this.#recentLimit = opts.recentLimit ?? 2000;
  }

  /** Writes the marker file that keeps the root from ever being empty. */
  async prepare(): Promise<void> {
    await writeFile(this.#abs(MARKER), 'never touched by the chaos churn\n');
  }

  get operations(): number {
    return this.#done;
  }

  counts(): Readonly<Record<ChurnOp, number>> {
    return { ...this.#counts };
  }

  /** Entries in the model (the root and the marker not counted). */
  get entries(): number {
    return this.#nodes.size - 1;
  }

  recent(): readonly string[] {
    return this.#recent;
  }

  /** Chooses and performs the next operation; resolves once it is done on disk. */
  async step(): Promise<void> {
    const op = this.#chooseOp();
    const what = (await this.#perform(op)) ?? (await this.#perform('create'));
    if (what === null) throw new Error(`chaos churn: operation ${op} found nothing to do, not even a create`);
    this.#record(what.op, what.text);
  }

  /**
   * One `flurry` operation: `min`-`max` new files written at once, in a tight loop, as a tar extraction does. The
   * chaos run puts a big one right before a SIGTERM and a SIGHUP, so that the daemon holds many unchecked events
   * when the signal comes.
   */
  flurry(min = 20, max = 80): void {
    this.#record('flurry', this.#flurry(min, max));
  }

  #record(op: ChurnOp, text: string): void {
    this.#done++;
    this.#counts[op]++;
    this.#recent.push(`#${this.#done} ${op} ${text}`);
    if (this.#recent.length > this.#recentLimit) this.#recent.splice(0, this.#recent.length - this.#recentLimit);
  }

  #flurry(min = 20, max = 80): string {
    const writes: [Key, Buffer][] = [];
    const count = this.#rng.int(min, max);
    for (let i = 0; i < count; i++) {
      const key = joinKey(this.#pickDir(), this.#newName('y'));
      const size = this.#rng.int(0, 8192);
      writes.push([key, this.#rng.bytes(size)]);
      this.#add(key, this.#newFile(size));
    }
    // Synchronous on purpose: all of them land within a millisecond or two, faster than a watcher reads them.
    for (const [key, data] of writes) writeFileSync(this.#abs(key), data);
    return `${count} files at once: ${writes.map(([key]) => showKey(key)).join(', ')}`;
  }

  #chooseOp(): ChurnOp {
    const n = this.entries;
    const big = n > this.#target;
    const small = n < this.#target / 10;
    return this.#rng.weighted<ChurnOp>({
      create: big ? 4 : 14,
      overwrite: 10,
      append: 6,
      truncate: 3,
      moveFile: 8,
      atomicSave: 4,
      remove: big ? 20 : 7,
      mkdirDeep: big ? 1 : 5,
      renameDir: 3,
      moveDir: 3,
      removeDir: big ? 12 : 2,
      recreateDir: 1,
      replaceType: 1,
      symlink: 4,
      hardlink: 3,
      chmod: 3,
      utimes: 3,
      oddName: 3,
      cpBurst: big ? 0 : small ? 2 : 0.4,
      flurry: big ? 0 : 1,
    });
  }

  async #perform(op: ChurnOp): Promise<{ op: ChurnOp; text: string } | null> {
    const text = await this.#run(op);
    return text === null ? null : { op, text };
  }

  async #run(op: ChurnOp): Promise<string | null> {
    const rng = this.#rng;
    switch (op) {
      case 'create': {
        const key = joinKey(this.#pickDir(), this.#newName('f'));
        const size = sizeFrom(rng);
        await this.#writeNew(key, size);
        return `${showKey(key)} ${size} B`;
      }
      case 'oddName': {
        const dir = this.#pickDir();
        const key = joinKey(dir, this.#oddName(dir));
        if (rng.chance(0.8)) {
          const size = sizeFrom(rng);
          await this.#writeNew(key, size);
          return `file ${showKey(key)} ${size} B`;
        }
        await mkdir(this.#abs(key));
        this.#add(key, { kind: 'dir' });
        return `dir ${showKey(key)}`;
      }
      case 'overwrite': {
        const key = this.#pickSingleLinkFile();
        if (key === null) return null;
        const node = this.#file(key);
        const size = differentSize(rng, node.size);
        await writeFile(this.#abs(key), rng.bytes(size));
        node.size = size;
        return `${showKey(key)} ${size} B`;
      }
      case 'append': {
        const key = this.#pickSingleLinkFile();
        if (key === null) return null;
        const node = this.#file(key);
        const extra = rng.int(1, 4096);
        await appendFile(this.#abs(key), rng.bytes(extra));
        node.size += extra;
        return `${showKey(key)} +${extra} B`;
      }
      case 'truncate': {
        const key = this.#pickSingleLinkFile((n) => n.size > 0);
        if (key === null) return null;
        const node = this.#file(key);
        const size = rng.int(0, node.size - 1);
        await truncate(this.#abs(key), size);
        node.size = size;
        return `${showKey(key)} to ${size} B`;
      }
      case 'chmod': {
        const key = this.#pickSingleLinkFile();
        if (key === null) return null;
        const mode = rng.pick(MODES);
        await chmod(this.#abs(key), mode);
        return `${showKey(key)} ${mode.toString(8)}`;
      }
      case 'utimes': {
        const key = this.#pickSingleLinkFile();
        if (key === null) return null;
        const when = OLD_TIME_FROM + rng.int(0, OLD_TIME_SPAN) + rng.int(0, 999) / 1000;
        await utimes(this.#abs(key), when, when);
        return `${showKey(key)} ${new Date(when * 1000).toISOString()}`;
      }
      case 'atomicSave': {
        const key = this.#pickSingleLinkFile();
        if (key === null) return null;
        const node = this.#file(key);
        const tmp = joinKey(parentKey(key), this.#newName('save', '.tmp'));
        const size = differentSize(rng, node.size);
        await writeFile(this.#abs(tmp), rng.bytes(size));
        await rename(this.#abs(tmp), this.#abs(key));
        this.#dropName(key);
        this.#add(key, this.#newFile(size));
        return `${showKey(key)} via ${showKey(tmp)} ${size} B`;
      }
      case 'moveFile': {
        const from = this.#pickNonDir();
        if (from === null) return null;
        const dir = this.#pickDir();
        const node = this.#nodes.get(from) as Node;
        let to = joinKey(dir, this.#newName('m'));
        if (rng.chance(0.2)) {
          // Onto an existing file of that directory: the rename replaces it.
          const victims = this.#lists_().files.filter((k) => parentKey(k) === dir && k !== from && this.#replaceable(node, k));
          if (victims.length > 0) to = rng.pick(victims);
        }
        await rename(this.#abs(from), this.#abs(to));
        if (this.#nodes.has(to)) this.#dropName(to);
        this.#nodes.delete(from);
        this.#add(to, node);
        return `${showKey(from)} -> ${showKey(to)}`;
      }
      case 'remove': {
        const key = this.#pickNonDir();
        if (key === null) return null;
        await unlink(this.#abs(key));
        this.#dropName(key);
        return showKey(key);
      }
      case 'mkdirDeep': {
        const parent = this.#pickDir((k) => depthOf(k) < MAX_DEPTH - 5);
        let key = parent;
        const levels = rng.int(1, 5);
        for (let i = 0; i < levels; i++) key = joinKey(key, this.#newName('d'));
        await mkdir(this.#abs(key), { recursive: true });
        for (let k = key; k !== parent; k = parentKey(k)) this.#add(k, { kind: 'dir' });
        if (rng.chance(0.6)) await this.#writeNew(joinKey(key, this.#newName('f')), sizeFrom(rng));
        return `${showKey(key)} (${levels} levels)`;
      }
      case 'renameDir': {
        const from = this.#pickDir((k) => k !== '');
        if (from === '') return null;
        const to = joinKey(parentKey(from), this.#newName('r'));
        await rename(this.#abs(from), this.#abs(to));
        this.#moveSubtree(from, to);
        return `${showKey(from)} -> ${showKey(to)}`;
      }
      case 'moveDir': {
        const from = this.#pickDir((k) => k !== '');
        if (from === '') return null;
        const height = this.#heightOf(from);
        const into = this.#pickDir((k) => !within(k, from) && k !== parentKey(from) && depthOf(k) + height < MAX_DEPTH);
        if (within(into, from) || into === parentKey(from)) return null;
        const name = baseKey(from);
        const to = joinKey(into, this.#nodes.has(joinKey(into, name)) ? this.#newName('v') : name);
        await rename(this.#abs(from), this.#abs(to));
        this.#moveSubtree(from, to);
        return `${showKey(from)} into ${showKey(into)} as ${showKey(to)}`;
      }
      case 'removeDir': {
        const key = this.#pickDir((k) => k !== '');
        if (key === '') return null;
        const gone = this.#subtree(key).length;
        await rm(this.#abs(key), { recursive: true });
        this.#dropSubtree(key);
        return `${showKey(key)} (${gone} entries)`;
      }
      case 'recreateDir': {
        const key = this.#pickDir((k) => k !== '');
        if (key === '') return null;
        await rm(this.#abs(key), { recursive: true });
        this.#dropSubtree(key);
        await mkdir(this.#abs(key));
        this.#add(key, { kind: 'dir' });
        await this.#writeNew(joinKey(key, this.#newName('f')), sizeFrom(rng));
        return showKey(key);
      }
      case 'replaceType': {
        const candidates = [...this.#lists_().files, ...this.#lists_().dirs.filter((k) => k !== '')];
        if (candidates.length === 0) return null;
        const key = rng.pick(candidates);
        if (this.#nodes.get(key)?.kind === 'dir') {
          await rm(this.#abs(key), { recursive: true });
          this.#dropSubtree(key);
          await this.#writeNew(key, sizeFrom(rng));
          return `dir ${showKey(key)} -> file`;
        }
        await unlink(this.#abs(key));
        this.#dropName(key);
        await mkdir(this.#abs(key));
        this.#add(key, { kind: 'dir' });
        await this.#writeNew(joinKey(key, this.#newName('f')), sizeFrom(rng));
        return `file ${showKey(key)} -> dir`;
      }
      case 'symlink': {
        const dir = this.#pickDir();
        const key = joinKey(dir, this.#newName('l'));
        const kind = rng.weighted({ file: 3, dir: 2, dangling: 2, absolute: 1 });
        let target: Buffer;
        if (kind === 'absolute') target = rng.pick(ABSOLUTE_TARGETS);
        else if (kind === 'dangling') target = Buffer.from(`nowhere/${this.#newName('x')}`);
        else {
          const pool = kind === 'file' ? this.#lists_().files : this.#lists_().dirs;
          const to = pool.length > 0 ? rng.pick(pool) : '';
          target = bytesOf(posix.relative(`/${dir}`, `/${to}`) || '.');
        }
        await symlink(target, this.#abs(key));
        this.#add(key, { kind: 'link', target });
        return `${showKey(key)} -> ${showKey(target.toString('latin1'))} (${kind})`;
      }
      case 'hardlink': {
        const files = this.#lists_().files;
        if (files.length === 0) return null;
        const from = rng.pick(files);
        const key = joinKey(this.#pickDir(), this.#newName('h'));
        await link(this.#abs(from), this.#abs(key));
        const node = this.#file(from);
        this.#linkCounts.set(node.ino, (this.#linkCounts.get(node.ino) ?? 0) + 1);
        this.#nodes.set(key, node);
        this.#lists = null;
        return `${showKey(key)} = ${showKey(from)}`;
      }
      case 'cpBurst':
        return this.#cpBurst();
      case 'flurry':
        return this.#flurry();
    }
  }

  /** Builds a small tree outside the watched one and copies it in with one `cp -a` (argv, no shell). */
  async #cpBurst(): Promise<string | null> {
    const rng = this.#rng;
    const dest = this.#pickDir((k) => validUtf8(k) && depthOf(k) < MAX_DEPTH - 4);
    const name = this.#newName('cp');
    const source = bytesOf(joinKey('', name)).toString('utf8');
    const made: [Key, Node][] = [];
    const dirs: Key[] = [''];
    const dirCount = rng.int(1, 8);
    for (let i = 0; i < dirCount; i++) {
      const key = joinKey(rng.pick(dirs.filter((d) => depthOf(d) < 3)), this.#newName('d'));
      dirs.push(key);
      made.push([key, { kind: 'dir' }]);
    }
    const stagingRoot = Buffer.from(posix.join(this.#staging, source));
    const inStaging = (key: Key) => (key === '' ? stagingRoot : Buffer.concat([stagingRoot, Buffer.from('/'), bytesOf(key)]));
    await mkdir(stagingRoot);
    for (const [key] of made) await mkdir(inStaging(key));
    const fileCount = rng.int(10, 150);
    for (let i = 0; i < fileCount; i++) {
      const dir = rng.pick(dirs);
      const key = joinKey(dir, rng.chance(0.05) ? this.#oddName(dir, (k) => made.some(([m]) => m === k)) : this.#newName('f'));
      if (rng.chance(0.08)) {
        const target = Buffer.from(rng.chance(0.5) ? `../${this.#newName('x')}` : '/etc/hostname');
        await symlink(target, inStaging(key));
        made.push([key, { kind: 'link', target }]);
        continue;
      }
      const size = rng.chance(0.9) ? rng.int(0, 4096) : sizeFrom(rng);
      await writeFile(inStaging(key), rng.bytes(size));
      made.push([key, { kind: 'file', ino: -1, size }]);
    }
    const destKey = joinKey(dest, name);
    const r = await runProcess('cp', ['-a', stagingRoot.toString('utf8'), this.#abs(destKey).toString('utf8')]);
    if (r.code !== 0) throw new Error(`chaos churn: cp -a into ${showKey(destKey)} failed (exit ${r.code}): ${r.stderr}`);
    await rm(stagingRoot, { recursive: true });
    this.#add(destKey, { kind: 'dir' });
    for (const [key, node] of made) this.#add(joinKey(destKey, key), node.kind === 'file' ? this.#newFile(node.size) : node);
    return `${made.length + 1} entries as ${showKey(destKey)}`;
  }

  #abs(key: Key): Buffer {
    return key === '' ? this.#rootBytes : Buffer.concat([this.#rootBytes, Buffer.from([SLASH]), bytesOf(key)]);
  }

  #lists_(): { dirs: Key[]; files: Key[]; others: Key[] } {
    if (this.#lists === null) {
      const lists: { dirs: Key[]; files: Key[]; others: Key[] } = { dirs: [], files: [], others: [] };
      for (const [key, node] of this.#nodes) {
        if (node.kind === 'dir') lists.dirs.push(key);
        else if (node.kind === 'file') lists.files.push(key);
        else lists.others.push(key);
      }
      this.#lists = lists;
    }
    return this.#lists;
  }

  #pickDir(ok: (key: Key) => boolean = () => true): Key {
    const dirs = this.#lists_().dirs.filter(ok);
    return dirs.length === 0 ? '' : this.#rng.pick(dirs);
  }

  #pickSingleLinkFile(ok: (node: { size: number }) => boolean = () => true): Key | null {
    const files = this.#lists_().files.filter((k) => {
      const node = this.#file(k);
      return this.#linkCounts.get(node.ino) === 1 && ok(node);
    });
    return files.length === 0 ? null : this.#rng.pick(files);
  }

  #pickNonDir(): Key | null {
    const { files, others } = this.#lists_();
    const all = files.length + others.length;
    if (all === 0) return null;
    const i = this.#rng.int(0, all - 1);
    return (i < files.length ? files[i] : others[i - files.length]) as Key;
  }

  /** A rename of `node` onto file `key` that neither rsync's quick check nor rename(2)'s same-inode rule hides. */
  #replaceable(node: Node, key: Key): boolean {
    const victim = this.#file(key);
    return node.kind !== 'file' || (node.ino !== victim.ino && node.size !== victim.size);
  }

  #file(key: Key): { kind: 'file'; ino: number; size: number } {
    const node = this.#nodes.get(key);
    if (node?.kind !== 'file') throw new Error(`chaos churn: model has no file ${showKey(key)}`);
    return node;
  }

  #newName(prefix: string, suffix = ''): Key {
    return `${prefix}${this.#nextName++}${suffix}`;
  }

  /** One of the hostile names for directory `dir`, made unique with a counter when it is taken there. */
  #oddName(dir: Key, taken: (key: Key) => boolean = (key) => this.#nodes.has(key)): Key {
    const name = this.#rng.pick(oddNames).toString('latin1');
    return taken(joinKey(dir, name)) ? `${name}-${this.#nextName++}` : name;
  }

  #newFile(size: number): Node {
    const ino = this.#nextIno++;
    this.#linkCounts.set(ino, 1);
    return { kind: 'file', ino, size };
  }

  async #writeNew(key: Key, size: number): Promise<void> {
    await writeFile(this.#abs(key), this.#rng.bytes(size));
    this.#add(key, this.#newFile(size));
  }

  #add(key: Key, node: Node): void {
    this.#nodes.set(key, node);
    this.#lists = null;
  }

  /** Forgets one non-directory name (its inode loses a link). */
  #dropName(key: Key): void {
    const node = this.#nodes.get(key);
    if (node?.kind === 'file') {
      const left = (this.#linkCounts.get(node.ino) ?? 1) - 1;
      if (left > 0) this.#linkCounts.set(node.ino, left);
      else this.#linkCounts.delete(node.ino);
    }
    this.#nodes.delete(key);
    this.#lists = null;
  }

  #subtree(dir: Key): Key[] {
    const prefix = `${dir}/`;
    return [...this.#nodes.keys()].filter((k) => k === dir || k.startsWith(prefix));
  }

  #heightOf(dir: Key): number {
    const base = depthOf(dir);
    return Math.max(...this.#subtree(dir).map((k) => depthOf(k) - base));
  }

  #dropSubtree(dir: Key): void {
    for (const key of this.#subtree(dir)) {
      if (this.#nodes.get(key)?.kind === 'dir') this.#nodes.delete(key);
      else this.#dropName(key);
    }
    this.#lists = null;
  }

  #moveSubtree(from: Key, to: Key): void {
    for (const key of this.#subtree(from)) {
      const node = this.#nodes.get(key) as Node;
      this.#nodes.delete(key);
      this.#nodes.set(to + key.slice(from.length), node);
    }
    this.#lists = null;
  }
}
