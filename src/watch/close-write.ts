import type { ChangeHint } from '../aggregate/aggregator.ts';
import type { InotifyToggles } from '../config/model.ts';
import type { Clock } from '../core/clock.ts';
import { displayPath, type RelPath } from '../core/paths.ts';
import { changeHintFor } from './change-hint.ts';
import { plainEventOf } from './move-pairs.ts';
import type { WatchEvent } from './watcher.ts';

/**
 * sersync2's toggles with close-write semantics: with its shipped ones (`closeWrite` on, `modify` off) a file is
 * sent once it is closed after writing, moved in, or created as something that is never written (a link, a FIFO);
 * a file still open for writing is not sent, so mirrors never serve half an upload. `modify` on sends on every write
 * (collapsed by the aggregator), as before. The toggles mean what they meant, with sersync2's bugs fixed:
 * `createFile` sends a file when it is created, `moveTo` when moved in, links and special files always count.
 *
 * Two bounds keep anything from waiting forever: a file that stays open for writing (a log that is never closed) is
 * sent every OPEN_WRITE_BOUND_MS, with a log line; and where the watcher cannot tell a write from a close
 * (fs.watch, chokidar), a written file is sent once it has had no event for STABLE_MS (an approximation).
 */

/** A file open for writing this long is sent anyway, and again after as long. */
export const OPEN_WRITE_BOUND_MS = 30_000;
/** Without close-write events: a file is taken as complete after this long without an event. */
export const STABLE_MS = 1000;
/**
 * ...and those files go together once no file has had an event for STABLE_MS (a copy is over), or once the oldest
 * has waited this long: sent one by one as each became quiet, a copy would cost one rsync run per sweep.
 */
export const APPROXIMATE_MAX_WAIT_MS = 5000;
const SWEEP_MS = 250;

interface Writing {
  since: number;
  lastAt: number;
  /** No close-write will tell its end (fs.watch, chokidar): complete once quiet for STABLE_MS. */
  readonly approximate: boolean;
  /** What goes to the remotes once it is due (a new directory is a recursive entry). */
  hint: ChangeHint;
}

export interface CloseWriteDeps {
  readonly clock: Clock;
  /** A file that is due without an event of its own: complete by the approximation, or open too long. */
  readonly onDue: (path: RelPath, hint: ChangeHint) => void;
  readonly onStillOpen?: (path: RelPath, seconds: number) => void;
  /**
   * Whether the watcher reports close-writes (the native reader); asked per event, since the backend is known only
   * once the watcher has started. Without them, new directories wait with the files (a copy goes in few runs).
   */
  readonly seesCloseWrite: () => boolean;
}

const UPDATE: ChangeHint = { tree: false, removed: false, created: false };

export class CloseWriteFilter {
  readonly #toggles: InotifyToggles;
  readonly #deps: CloseWriteDeps;
  readonly #writing = new Map<RelPath, Writing>();
  #timer: unknown = null;
  /** When a file last had an event that cannot be told from a close (fs.watch, chokidar). */
  #lastApproximateAt = 0;

  constructor(toggles: InotifyToggles, deps: CloseWriteDeps) {
    this.#toggles = toggles;
    this.#deps = deps;
  }

  /** Files seen being written and not yet complete. */
  get openFiles(): number {
    return this.#writing.size;
  }

  /** What the event means for the remotes now, or null (ignored, or waiting for the file to be complete). */
  change(event: Exclude<WatchEvent, { kind: 'lost' }>): { path: RelPath; hint: ChangeHint } | null {
    const t = this.#toggles;
    if (event.kind === 'rename') {
      // The new name counts as what it would have been without the pairing (moveTo, createFolder); the rename only
      // tells the lanes which old name the remote may copy it from.
      const plain = this.change(plainEventOf(event));
      return plain === null ? null : { path: plain.path, hint: { ...plain.hint, renamedFrom: event.from } };
    }
    if (event.kind === 'dir') {
      if (event.op === 'unlink' && this.#writing.size > 0) this.#forgetBelow(event.path);
      const change = changeHintFor(event, t);
      if (change === null || event.op === 'unlink' || t.modify || this.#deps.seesCloseWrite()) return change;
      // No longer "created" once held: a transfer may carry it meanwhile (see Aggregator.transferStarted).
      this.#open(event.path, true, { ...change.hint, created: false });
      return null;
    }
    if (event.op === 'unlink') {
      this.#writing.delete(event.path);
      return changeHintFor(event, t);
    }
    // modify on: every write counts at once, as sersync2 did with IN_MODIFY.
    if (t.modify) return changeHintFor(event, t);
    const path = event.path;
    switch (event.how) {
      case 'create':
        this.#open(path, false);
        return t.createFile ? changeHintFor(event, t) : null;
      case 'write':
        this.#open(path, false);
        return null;
      case 'attrib':
        // A chmod of a file still being written waits for its close-write.
        return this.#writing.has(path) ? null : changeHintFor(event, t);
      case 'closeWrite':
        this.#writing.delete(path);
        return t.closeWrite || t.createFile ? changeHintFor(event, t) : null;
      case 'moveTo':
        this.#writing.delete(path);
        return t.moveTo ? changeHintFor(event, t) : null;
      case 'link':
        return changeHintFor(event, t);
      default: {
        // fs.watch or chokidar: a write cannot be told from a close.
        const change = changeHintFor(event, t);
        if (change === null) return null;
        this.#open(path, true, { ...change.hint, created: false });
        return null;
      }
    }
  }

  /** Events may have been lost (a full sync follows, which sends these files as they are): forget them. */
  reset(): void {
    this.#writing.clear();
  }

  /** The files still open for writing (not sent yet, owed once complete). */
  openPaths(): RelPath[] {
    return [...this.#writing.keys()];
  }

  dispose(): void {
    if (this.#timer !== null) this.#deps.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  #open(path: RelPath, approximate: boolean, hint: ChangeHint = UPDATE): void {
    const now = this.#deps.clock.now();
    const was = this.#writing.get(path);
    if (approximate) this.#lastApproximateAt = now;
    if (was) {
      was.lastAt = now;
      if (hint.tree) was.hint = hint;
    } else this.#writing.set(path, { since: now, lastAt: now, approximate, hint });
    this.#arm();
  }

  #arm(): void {
    if (this.#timer !== null || this.#writing.size === 0) return;
    this.#timer = this.#deps.clock.setTimeout(() => {
      this.#timer = null;
      this.#sweep();
      this.#arm();
    }, SWEEP_MS);
  }

  #sweep(): void {
    const now = this.#deps.clock.now();
    const allQuiet = now - this.#lastApproximateAt >= STABLE_MS;
    for (const [path, w] of this.#writing) {
      if (w.approximate && now - w.lastAt >= STABLE_MS && (allQuiet || now - w.since >= APPROXIMATE_MAX_WAIT_MS)) {
        this.#writing.delete(path);
        this.#deps.onDue(path, w.hint);
      } else if (now - w.since >= OPEN_WRITE_BOUND_MS) {
        // Open (or written to, without a close-write to see) this long: sent as it is now. A file with no event
        // since the last bound is taken as complete (its close-write was lost, say in an overflow).
        this.#deps.onStillOpen?.(path, (now - w.since) / 1000);
        if (now - w.lastAt >= OPEN_WRITE_BOUND_MS) this.#writing.delete(path);
        else w.since = now;
        this.#deps.onDue(path, w.hint);
      }
    }
  }

  #forgetBelow(dir: RelPath): void {
    const prefix = `${dir}/`;
    for (const path of this.#writing.keys()) if (path.startsWith(prefix)) this.#writing.delete(path);
  }
}

/** For the log: a file sent while still open for writing. */
export function stillOpenMessage(path: RelPath, seconds: number): string {
  return `${displayPath(path)} has been open for writing for ${seconds.toFixed(0)} s: sending it as it is now (it is sent again once closed)`;
}
