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
 */

export interface DeletionVerdict {
  /** Hold every deletion (the root looks unmounted, gone or empty). */
  readonly all: boolean;
  /** Hold the deletions at or below these paths (mount points that are none now). */
  readonly below: readonly RelPath[];
  /** Why, for the log and /status; '' when nothing is held. */
  readonly reason: string;
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

  private constructor(root: string, probe: DeviceProbe) {
    this.#root = root;
    this.#rootBytes = fromUtf8(root);
    this.#probe = probe;
  }

  static async create(root: string, probe: DeviceProbe = realProbe): Promise<DeletionGuard> {
    const guard = new DeletionGuard(root, probe);
    await guard.release();
    return guard;
  }

  /** A directory of the tree on another device than its parent (from the watcher's walk). */
  noteMountPoint(path: RelPath): void {
    this.#mounts.add(path);
  }

  get mountPoints(): readonly RelPath[] {
    return [...this.#mounts];
  }

  async check(): Promise<DeletionVerdict> {
    const root = this.#root;
    const dev = await this.#probe.device(toBuffer(this.#rootBytes));
    if (dev === null) return held(`watch root ${root} is gone or not a directory`);
    const mounted = await this.#isMountPoint(this.#rootBytes, dev);
    if (dev !== this.#rootDev && !(this.#rootWasMount && mounted)) {
      return held(`watch root ${root} is on another device than at start (an unmounted disk?)`);
    }
    if (this.#rootWasMount && !mounted) return held(`watch root ${root} is no longer a mount point (an unmounted disk?)`);
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

/** Whether a deletion of `path` must wait, by this verdict. */
export function isHeld(verdict: DeletionVerdict, path: RelPath): boolean {
  return verdict.all || verdict.below.some((m) => path === m || path.startsWith(`${m}/`));
}
