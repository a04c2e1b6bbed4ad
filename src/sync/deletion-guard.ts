import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { displayPath, fromUtf8, toBuffer, type RelPath } from '../core/paths.ts';

/**
 * Mass-delete safety that knows about mounts (mutagen's halt, per mount point). A mirror is what the public sees,
 * so a deletion that only a missing disk could explain is held and reported, never propagated:
 * - the watch root gone, empty, or on another device than at start (an unmounted disk that left a stray file in
 *   its mount point): every deletion is held;
 * - a directory of the tree that was a mount point and is none now (a disk mounted at `uploads/` unmounted):
 *   deletions at and below it are held; updates go on.
 * A remount (the same path a mount point again, whatever its device number) makes it healthy again. release()
 * takes the present state as the new normal (the operator's "yes, delete").
 *
 * Which of these were mount points is kept in a small file beside the retry queue, so a restart (or a crash and its
 * full sync) while a disk is unmounted does not take the unmounted state as normal. Device numbers are not kept:
 * they may change across a reboot.
 */

/** What a restart must remember: the mount points the tree relied on. */
interface Remembered {
  readonly rootWasMount: boolean;
  readonly mountPoints: readonly RelPath[];
}

export interface DeletionVerdict {
  /** Hold every deletion (the root looks unmounted, gone or empty). */
  readonly all: boolean;
  /** Hold the deletions at or below these paths (mount points that are none now). */
  readonly below: readonly RelPath[];
  /** Why, for the log and /status; '' when nothing is held. */
  readonly reason: string;
  /**
   * The root is gone, on another device or no longer the mount point it was: what lies there now may be stale
   * (the directory under an unmounted disk), so nothing is sent from it either. Absent means false.
   */
  readonly rootSuspect?: boolean;
}

/** The disk as the guard sees it; changeable for tests. */
export interface DeviceProbe {
  /** Device of the directory at `abs` (following links), or null when it is not one. */
  device(abs: Buffer): Promise<bigint | null>;
  isEmpty(abs: Buffer): Promise<boolean>;
}

const realProbe: DeviceProbe = {
  async device(abs) {
    try {
      const st = await stat(abs, { bigint: true });
      return st.isDirectory() ? st.dev : null;
    } catch {
      return null;
    }
  },
  async isEmpty(abs) {
    try {
      return (await readdir(abs)).length === 0;
    } catch {
      return true;
    }
  },
};

export const NOTHING_HELD: DeletionVerdict = { all: false, below: [], reason: '' };

export class DeletionGuard {
  readonly #root: string;
  /** The root as a byte string (src/core/paths.ts). */
  readonly #rootBytes: string;
  readonly #probe: DeviceProbe;
  #rootDev: bigint | null = null;
  #rootWasMount = false;
  /** The operator released a hold while the root was empty: it may stay empty (until it has content again). */
  #emptyAllowed = false;
  /** Mount points inside the tree, as the watcher found them (relative paths). */
  readonly #mounts = new Set<RelPath>();
  /** Where the mount points are remembered across restarts; null: not at all (tests, --check). */
  #file: string | null;

  private constructor(root: string, probe: DeviceProbe, file: string | null) {
    this.#root = root;
    this.#rootBytes = fromUtf8(root);
    this.#probe = probe;
    this.#file = file;
  }

  static async create(root: string, opts: { file?: string | null; probe?: DeviceProbe } = {}): Promise<DeletionGuard> {
    const guard = new DeletionGuard(root, opts.probe ?? realProbe, opts.file ?? null);
    // An empty root at start is not taken as normal: a disk that failed to mount at boot looks just like it.
    await guard.#baseline();
    // Nor is a mount point that the last run knew and that is none now.
    const remembered = guard.#remembered();
    if (remembered !== null) {
      guard.#rootWasMount ||= remembered.rootWasMount;
      for (const path of remembered.mountPoints) guard.#mounts.add(path);
    }
    guard.#remember();
    return guard;
  }

  /** A directory of the tree on another device than its parent (from the watcher's walk). */
  noteMountPoint(path: RelPath): void {
    if (this.#mounts.has(path)) return;
    this.#mounts.add(path);
    this.#remember();
  }

  /** Notes `path` if it is a mount point now and was not known (a disk mounted after the start); true if so. */
  async noteIfMounted(path: RelPath): Promise<boolean> {
    if (this.#mounts.has(path) || !(await this.#mounted(path))) return false;
    this.noteMountPoint(path);
    return true;
  }

  /** Remembers the mount points in this file from now on (the site's retry queue was re-keyed by a reload). */
  rememberIn(file: string): void {
    this.#file = file;
    this.#remember();
  }

  get mountPoints(): readonly RelPath[] {
    return [...this.#mounts];
  }

  async check(): Promise<DeletionVerdict> {
    const root = this.#root;
    const dev = await this.#probe.device(toBuffer(this.#rootBytes));
    if (dev === null) return suspect(`watch root ${root} is gone or not a directory`);
    const mounted = await this.#isMountPoint(this.#rootBytes, dev);
    if (dev !== this.#rootDev && !(this.#rootWasMount && mounted)) {
      return suspect(`watch root ${root} is on another device than at start (an unmounted disk?)`);
    }
    if (this.#rootWasMount && !mounted) return suspect(`watch root ${root} is no longer a mount point (an unmounted disk?)`);
    if (await this.#probe.isEmpty(toBuffer(this.#rootBytes))) {
      if (!this.#emptyAllowed) return held(`watch root ${root} is empty or unreadable (an unmounted disk?)`);
    } else this.#emptyAllowed = false;
    const below: RelPath[] = [];
    for (const path of this.#mounts) if (!(await this.#mounted(path))) below.push(path);
    if (below.length === 0) return NOTHING_HELD;
    return {
      all: false,
      below,
      reason: `${below.map(displayPath).join(', ')} ${below.length === 1 ? 'was a mount point and is' : 'were mount points and are'} none now (an unmounted disk?)`,
    };
  }

  /** Takes the present state as normal: the root's device now, and only the mount points that are mounted now. */
  async release(): Promise<void> {
    this.#emptyAllowed = await this.#probe.isEmpty(toBuffer(this.#rootBytes));
    await this.#baseline();
    this.#remember();
  }

  #remembered(): Remembered | null {
    if (this.#file === null) return null;
    try {
      const data = JSON.parse(readFileSync(this.#file, 'utf8')) as Partial<Remembered> & { root?: string };
      if (data.root !== this.#root || !Array.isArray(data.mountPoints)) return null;
      return { rootWasMount: data.rootWasMount === true, mountPoints: data.mountPoints.filter((p) => typeof p === 'string') };
    } catch {
      return null;
    }
  }

  /** Best effort: a full state disk must not stop the guard (the in-memory state still holds). */
  #remember(): void {
    if (this.#file === null) return;
    const data = { root: this.#root, rootWasMount: this.#rootWasMount, mountPoints: [...this.#mounts] };
    try {
      writeFileSync(`${this.#file}.tmp`, `${JSON.stringify(data)}\n`, { mode: 0o600 });
      renameSync(`${this.#file}.tmp`, this.#file);
    } catch {
      // Kept in memory; written again at the next change.
    }
  }

  async #baseline(): Promise<void> {
    this.#rootDev = await this.#probe.device(toBuffer(this.#rootBytes));
    this.#rootWasMount = this.#rootDev !== null && (await this.#isMountPoint(this.#rootBytes, this.#rootDev));
    for (const path of this.#mounts) if (!(await this.#mounted(path))) this.#mounts.delete(path);
  }

  /** Each mount point of the tree, and whether something is mounted there now. */
  async mountStates(): Promise<Map<RelPath, boolean>> {
    const out = new Map<RelPath, boolean>();
    for (const path of this.#mounts) out.set(path, await this.#mounted(path));
    return out;
  }

  /** Whether something is mounted at this path of the tree now. */
  async #mounted(path: RelPath): Promise<boolean> {
    const abs = `${this.#rootBytes}/${path}`;
    const dev = await this.#probe.device(toBuffer(abs));
    return dev !== null && (await this.#isMountPoint(abs, dev));
  }

  /** `abs` (a byte string) is on another device than its parent directory. */
  async #isMountPoint(abs: string, dev: bigint): Promise<boolean> {
    const up = await this.#probe.device(toBuffer(dirname(abs)));
    return up !== null && up !== dev;
  }
}

function held(reason: string): DeletionVerdict {
  return { all: true, below: [], reason };
}

function suspect(reason: string): DeletionVerdict {
  return { all: true, below: [], reason, rootSuspect: true };
}

/** Whether a deletion of `path` must wait, by this verdict. */
export function isHeld(verdict: DeletionVerdict, path: RelPath): boolean {
  return verdict.all || verdict.below.some((m) => path === m || path.startsWith(`${m}/`));
}
