import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toBuffer, type RelPath } from '../core/paths.ts';
import { literalPattern } from './rsync-command.ts';

/** A private file of rsync exclude rules for one run; remove() it once the run is over (idempotent). */
export interface ExcludeFile {
  readonly path: string;
  remove(): Promise<void>;
}

/**
 * The paths the regex walk found (excluded-walk.ts), as rsync `--exclude-from` rules: one literal pattern anchored at
 * the transfer root per path, written from the names' bytes and NUL-separated (every run that reads the file carries
 * `--from0` before it, see rsync-command.ts). On argv, tens of thousands of them overflowed the kernel's argument
 * limit (E2BIG), and a byte string passed as an argument is re-encoded as UTF-8, so a non-ASCII name never matched.
 * The file lives in a fresh directory of its own (mkdtemp: mode 0700, a name nobody can guess), is created with
 * O_EXCL and mode 0600: the list names what the operator keeps off the remotes.
 */
export async function writeExcludeFile(paths: readonly RelPath[]): Promise<ExcludeFile | null> {
  if (paths.length === 0) return null;
  const dir = await mkdtemp(join(tmpdir(), 'sersync-ts-excludes-'));
  const path = join(dir, 'excludes');
  const parts: Buffer[] = [];
  for (const p of paths) parts.push(toBuffer(literalPattern(`/${p}`)), NUL);
  try {
    await writeFile(path, Buffer.concat(parts), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}

const NUL = Buffer.from([0]);
