/**
 * Directory trees for sync tests: compare two trees entry by entry, generate a nested tree, and write files whose
 * names break naive shells, pattern matchers and UTF-8 decoders.
 *
 * Names are handled as bytes (Buffer) throughout, so a name holding a newline or invalid UTF-8 is compared exactly
 * rather than mangled into something that happens to match.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';

export interface CompareTreesOptions {
  /**
   * Also accept `x` in b for a target `/x` in a: an rsync daemon with `use chroot = no` strips the leading
   * slashes of absolute symlink targets even with `munge symlinks = no`.
   */
  absSymlinksStripped?: boolean;
  /** Ignore the mode and mtime of the two roots themselves (a module directory made by the harness, say). */
  ignoreRootAttrs?: boolean;
  /** Also compare directory mtimes (off by default: syncing into a directory changes its mtime). */
  compareDirMtime?: boolean;
  /** Names left out on both sides, at any depth (what the daemon's filter excludes). */
  ignoreNames?: readonly string[];
}

const SLASH = Buffer.from('/');
/** Entries compared in parallel per directory: enough to overlap I/O, few enough not to exhaust descriptors. */
const PARALLEL = 16;
/** Files up to this size are compared in memory; larger ones by streaming SHA-256. */
const IN_MEMORY_LIMIT = 1 << 20;

/** Renders a path held as bytes for a message: JSON-quoted when valid UTF-8, else with \xNN escapes. */
function showPath(rel: Buffer): string {
  if (rel.length === 0) return '(root)';
  try {
    return JSON.stringify(new TextDecoder('utf-8', { fatal: true }).decode(rel));
  } catch {
    let out = '';
    for (const byte of rel) {
      if (byte === 0x22 || byte === 0x5c) out += `\\${String.fromCharCode(byte)}`;
      else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
      else out += `\\x${byte.toString(16).padStart(2, '0')}`;
    }
    return `"${out}"`;
  }
}

function typeOf(st: BigIntStats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'char-device';
  if (st.isBlockDevice()) return 'block-device';
  return 'unknown';
}

async function lstatOrUndefined(path: Buffer): Promise<BigIntStats | undefined> {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    // An entry that vanished between readdir and lstat is simply absent.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function readdirOrEmpty(path: Buffer): Promise<Buffer[]> {
  try {
    return await readdir(path, { encoding: 'buffer' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function sha256(path: Buffer): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function sameContent(a: Buffer, b: Buffer, size: bigint): Promise<boolean> {
  if (size <= BigInt(IN_MEMORY_LIMIT)) {
    const [ca, cb] = await Promise.all([readFile(a), readFile(b)]);
    return ca.equals(cb);
  }
  const [ha, hb] = await Promise.all([sha256(a), sha256(b)]);
  return ha === hb;
}

function stripLeadingSlashes(target: Buffer): Buffer {
  let i = 0;
  while (i < target.length && target[i] === 0x2f) i++;
  return target.subarray(i);
}

function join(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 0 ? name : Buffer.concat([dir, SLASH, name]);
}

/**
 * Compares tree b (the destination) with tree a (the source) and returns one human-readable line per difference;
 * an empty array means identical. For every entry it compares the type, the mode bits (not for symlinks), the mtime
 * in whole seconds (files and symlinks; directories only with `compareDirMtime`), and then the size and bytes of
 * files or the target of symlinks. Owners are not compared.
 */
export async function compareTrees(a: string, b: string, opts: CompareTreesOptions = {}): Promise<string[]> {
  const rootA = Buffer.from(a);
  const rootB = Buffer.from(b);
  const at = (root: Buffer, rel: Buffer) => (rel.length === 0 ? root : Buffer.concat([root, SLASH, rel]));

  async function compareEntry(rel: Buffer): Promise<string[]> {
    const name = showPath(rel);
    const [sa, sb] = await Promise.all([lstatOrUndefined(at(rootA, rel)), lstatOrUndefined(at(rootB, rel))]);
    if (sa === undefined && sb === undefined) return rel.length === 0 ? [`${name}: both roots are missing`] : [];
    if (sa === undefined) return [`${name}: only in b`];
    if (sb === undefined) return [`${name}: only in a`];
    const ta = typeOf(sa);
    const tb = typeOf(sb);
    if (ta !== tb) return [`${name}: type ${ta} != ${tb}`];

    const diffs: string[] = [];
    const skipAttrs = rel.length === 0 && opts.ignoreRootAttrs === true;
    if (!skipAttrs) {
      // Symlink permissions are always 0777 on Linux and cannot be set; comparing them says nothing.
      if (ta !== 'symlink' && (sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) {
        diffs.push(`${name}: mode ${(sa.mode & 0o7777n).toString(8)} != ${(sb.mode & 0o7777n).toString(8)}`);
      }
      if (ta !== 'dir' || opts.compareDirMtime === true) {
        // Whole seconds: rsync keeps nanoseconds on Linux, but a receiver's file system may not.
        const ma = sa.mtimeNs / 1_000_000_000n;
        const mb = sb.mtimeNs / 1_000_000_000n;
        if (ma !== mb) diffs.push(`${name}: mtime ${ma} != ${mb} (${mb - ma} s)`);
      }
    }

    if (ta === 'file') {
      if (sa.size !== sb.size) diffs.push(`${name}: size ${sa.size} != ${sb.size}`);
      else if (!(await sameContent(at(rootA, rel), at(rootB, rel), sa.size))) diffs.push(`${name}: content differs`);
    } else if (ta === 'symlink') {
      const [la, lb] = await Promise.all([
        readlink(at(rootA, rel), { encoding: 'buffer' }),
        readlink(at(rootB, rel), { encoding: 'buffer' }),
      ]);
      const same = la.equals(lb) || (opts.absSymlinksStripped === true && stripLeadingSlashes(la).equals(lb));
      if (!same) diffs.push(`${name}: symlink target ${showPath(la)} != ${showPath(lb)}`);
    } else if (ta === 'dir') {
      const [na, nb] = await Promise.all([readdirOrEmpty(at(rootA, rel)), readdirOrEmpty(at(rootB, rel))]);
      // Key by latin1 so every byte sequence maps to a distinct string; sort by bytes for a stable report.
      const names = new Map<string, Buffer>();
      const ignored = new Set(opts.ignoreNames ?? []);
      for (const n of [...na, ...nb]) if (!ignored.has(n.toString('utf8'))) names.set(n.toString('latin1'), n);
      const children = [...names.values()].sort(Buffer.compare);
      for (let i = 0; i < children.length; i += PARALLEL) {
        const batch = children.slice(i, i + PARALLEL);
        const results = await Promise.all(batch.map((child) => compareEntry(join(rel, child))));
        for (const r of results) diffs.push(...r);
      }
    }
    return diffs;
  }

  return compareEntry(Buffer.alloc(0));
}

/** Deterministic bytes for file number `seed` (xorshift32), so contents differ from file to file. */
function contentFor(seed: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

/**
 * Writes a nested tree under `root` and returns the number of files written. There are `dirs` directories
 * (d0, d1, ...), chained up to `depth` levels deep (default 2) before starting again at the root, e.g. with depth 2:
 * d0, d0/d1, d2, d2/d3. The root and every directory get `filesPerDir` files (f0.dat, ...) of `size` bytes
 * (default 256) with distinct deterministic contents.
 */
export async function generateTree(
  root: string,
  opts: { dirs: number; filesPerDir: number; depth?: number; size?: number },
): Promise<number> {
  const depth = Math.max(1, opts.depth ?? 2);
  const size = opts.size ?? 256;
  const dirs: string[] = [root];
  let parent = root;
  let level = 0;
  for (let i = 0; i < opts.dirs; i++) {
    if (level >= depth) {
      parent = root;
      level = 0;
    }
    const dir = `${parent}/d${i}`;
    dirs.push(dir);
    parent = dir;
    level++;
  }
  let count = 0;
  for (const dir of dirs) {
    await mkdir(dir, { recursive: true });
    const writes: Promise<void>[] = [];
    for (let j = 0; j < opts.filesPerDir; j++) writes.push(writeFile(`${dir}/f${j}.dat`, contentFor(count++, size)));
    await Promise.all(writes);
  }
  return count;
}

/**
 * File names that break shells (`id`, $(x), a;b, ...), option parsers (-rf), rsync's files-from comments (#x, ;x),
 * rsync filter patterns (w[1].txt, q?.txt, a*b, back\slash), line-based protocols (a newline) and UTF-8 decoders
 * (the bytes 66 ff fe 2e 74). None contains a slash or a NUL, so each is a valid single name.
 */
export const oddNames: readonly Buffer[] = Object.freeze([
  Buffer.from('`id`'),
  Buffer.from('$(x)'),
  Buffer.from('a;b'),
  Buffer.from('-rf'),
  Buffer.from('#x'),
  Buffer.from(';x'),
  Buffer.from('w[1].txt'),
  Buffer.from('q?.txt'),
  Buffer.from('a*b'),
  Buffer.from('back\\slash'),
  Buffer.from('new\nline'),
  Buffer.from(`it's a "name"`),
  Buffer.from('x`touch PWNED`y'),
  Buffer.from('$(touch PWNED)'),
  Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x74]),
]);

/** Writes one file per entry of {@link oddNames} into `dir`, each holding its own name's bytes. */
export async function writeOddFiles(dir: string | Buffer): Promise<void> {
  const base = Buffer.isBuffer(dir) ? dir : Buffer.from(dir);
  await Promise.all(oddNames.map((name) => writeFile(Buffer.concat([base, SLASH, name]), name)));
}
