/**
 * Temporary directories for tests, all under os.tmpdir() and named `sersync-ts-<prefix>-XXXXXX`.
 *
 * Every directory made here is removed by {@link removeTempDirs} (call it in an `after` hook) and, as a safety net,
 * when the test process exits. Set SERSYNC_TEST_KEEP_TMP=1 to keep them for a post-mortem.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made = new Set<string>();
let exitHookInstalled = false;

function keep(): boolean {
  return process.env.SERSYNC_TEST_KEEP_TMP === '1';
}

/** Creates a fresh, empty directory and returns its real (symlink-free) absolute path. */
export async function makeTempDir(prefix: string): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(prefix)) throw new Error(`makeTempDir: prefix ${JSON.stringify(prefix)} must match [A-Za-z0-9._-]+`);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      if (keep()) return;
      for (const dir of made) rmSync(dir, { recursive: true, force: true });
    });
  }
  const dir = await realpath(await mkdtemp(join(tmpdir(), `sersync-ts-${prefix}-`)));
  made.add(dir);
  return dir;
}

/** Removes every directory made by {@link makeTempDir} so far (unless SERSYNC_TEST_KEEP_TMP=1). */
export async function removeTempDirs(): Promise<void> {
  if (keep()) return;
  const dirs = [...made];
  made.clear();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}
