/**
 * Cheap probes for "has the destination caught up with the source yet?", cheap enough to run every 200 ms while
 * a daemon syncs 20k files on a 2-core machine: a synchronous directory walk that only counts entries (~30 ms for
 * the man tree), and a stat-level manifest comparison (~150 ms) once the counts agree. Neither reads contents:
 * after a probe says yes, the caller confirms with test/helpers/trees.ts compareTrees (bytes, ~4 s for the man
 * tree), untimed.
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

function walk(root: string, rel: string, onEntry: (rel: string, isDir: boolean) => void): void {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(rel ? `${root}/${rel}` : root, { withFileTypes: true });
  } catch {
    // Missing, or removed while we walk (rsync deleting): counts as empty.
    return;
  }
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    const isDir = e.isDirectory();
    onEntry(r, isDir);
    if (isDir) walk(root, r, onEntry);
  }
}

/** Entries below root (root itself not counted); 0 when root does not exist. */
export function countEntries(root: string): number {
  let n = 0;
  walk(root, '', () => n++);
  return n;
}

/**
 * One line per entry: type, mode, and for files size and mtime (whole seconds). Symlink targets and sizes are
 * left out (an rsync daemon strips leading slashes of absolute targets), as are directory mtimes (syncing into a
 * directory changes its mtime) — compareTrees checks what this skips.
 */
export function manifest(root: string): Map<string, string> {
  const out = new Map<string, string>();
  walk(root, '', (rel) => {
    try {
      const st = lstatSync(`${root}/${rel}`);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.set(rel, 'l');
      else if (st.isDirectory()) out.set(rel, `d ${mode}`);
      else out.set(rel, `${st.isFile() ? 'f' : 'o'} ${mode} ${st.size} ${Math.floor(st.mtimeMs / 1000)}`);
    } catch {
      // Vanished between readdir and lstat.
    }
  });
  return out;
}

/** The first difference between two manifests, or undefined when they agree. */
export function manifestDiff(a: Map<string, string>, b: Map<string, string>): string | undefined {
  if (a.size !== b.size) return `${a.size} entries != ${b.size}`;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined) return `${k}: only in source`;
    if (w !== v) return `${k}: ${v} != ${w}`;
  }
  return undefined;
}

export interface SyncWait {
  /**
   * performance.now() when the trees became identical: the exit of the last transfer process seen before the probe
   * that found them in agreement, or the end of that probe when no transfer was seen; undefined on timeout.
   */
  at: number | undefined;
  polls: number;
  /** What the last probe saw, for a timeout message. */
  last: string;
}

/** How often the probe looks whether a transfer process is still running (cheap: one /proc read). */
const BUSY_POLL_MS = 20;

/**
 * Polls until dest holds as many entries as src and their manifests agree. `stop` is checked every poll (a
 * process that died); its message ends the wait. While `busy()` (the daemon has an rsync child), the trees are not
 * walked: a walk of a 24k-entry tree every poll took a good part of one of this machine's two cores from the very
 * transfer it timed, which the reference never had to share. The trees become identical when the last transfer
 * before the agreeing probe ended, so that moment, seen to within BUSY_POLL_MS, is the result.
 */
export async function waitTreesAgree(
  src: string,
  dest: string,
  opts: { intervalMs: number; timeoutMs: number; stop?: () => string | undefined; busy?: () => boolean },
): Promise<SyncWait> {
  const deadline = performance.now() + opts.timeoutMs;
  // The source does not change while we wait; its manifest is taken once, when the counts first agree.
  const srcCount = countEntries(src);
  let srcManifest: Map<string, string> | undefined;
  let polls = 0;
  let last = '';
  let busyEndedAt: number | undefined;
  let wasBusy = false;
  for (;;) {
    const stopped = opts.stop?.();
    if (stopped) return { at: undefined, polls, last: `${last}; ${stopped}` };
    if (performance.now() >= deadline) return { at: undefined, polls, last };
    if (opts.busy?.()) {
      wasBusy = true;
      last = 'a transfer is running';
      await sleep(BUSY_POLL_MS);
      continue;
    }
    if (wasBusy) busyEndedAt = performance.now();
    wasBusy = false;
    polls++;
    const n = countEntries(dest);
    if (n === srcCount) {
      srcManifest ??= manifest(src);
      const diff = manifestDiff(srcManifest, manifest(dest));
      if (diff === undefined) return { at: busyEndedAt ?? performance.now(), polls, last: 'in agreement' };
      last = `counts agree (${n}) but ${diff}`;
    } else {
      last = `${n} of ${srcCount} entries`;
    }
    // Poll the cheap busy check meanwhile, so that the next transfer's end is seen as precisely.
    const until = performance.now() + opts.intervalMs;
    while (performance.now() < until && !opts.busy?.()) await sleep(BUSY_POLL_MS);
  }
}

/**
 * Polls every `intervalMs` until dest is a copy of src (same bytes, mode, mtime in whole seconds); returns
 * performance.now() at that poll, or undefined on timeout.
 */
export async function waitFileCopied(
  src: string,
  dest: string,
  opts: { intervalMs: number; timeoutMs: number; stop?: () => string | undefined },
): Promise<number | undefined> {
  const want = readFileSync(src);
  const st = lstatSync(src);
  const mtime = Math.floor(st.mtimeMs / 1000);
  const mode = st.mode & 0o7777;
  const deadline = performance.now() + opts.timeoutMs;
  for (;;) {
    try {
      const d = lstatSync(dest);
      if (
        d.size === want.length &&
        Math.floor(d.mtimeMs / 1000) === mtime &&
        (d.mode & 0o7777) === mode &&
        readFileSync(dest).equals(want)
      ) {
        return performance.now();
      }
    } catch {
      // Not there yet.
    }
    if (opts.stop?.() || performance.now() >= deadline) return undefined;
    await sleep(opts.intervalMs);
  }
}
