import type { RelPath } from '../core/paths.ts';

/** How often paths that could not be read are looked at again. */
const UNREADABLE_RETRY_MS = 30_000;

/**
 * Paths skipped because they could not be watched, listed or looked at (EACCES, EPERM, EIO …): each is said once
 * (`onUnreadable`), looked at again every UNREADABLE_RETRY_MS (`retry`) until it can be read or is gone.
 */
export class UnreadablePaths {
  readonly #paths = new Set<RelPath>();
  readonly #onUnreadable: ((path: RelPath, cause: unknown) => void) | undefined;
  readonly #retry: (path: RelPath) => void;
  #timer: ReturnType<typeof setInterval> | null = null;

  constructor(onUnreadable: ((path: RelPath, cause: unknown) => void) | undefined, retry: (path: RelPath) => void) {
    this.#onUnreadable = onUnreadable;
    this.#retry = retry;
  }

  get size(): number {
    return this.#paths.size;
  }

  has(path: RelPath): boolean {
    return this.#paths.has(path);
  }

  list(): RelPath[] {
    return [...this.#paths];
  }

  add(path: RelPath, err: unknown): void {
    if (this.#paths.has(path)) return;
    this.#paths.add(path);
    this.#onUnreadable?.(path, err);
    this.#timer ??= setInterval(() => this.#retryAll(), UNREADABLE_RETRY_MS);
    this.#timer.unref();
  }

  /** It could be read, or it is gone. */
  delete(path: RelPath): void {
    if (this.#paths.size > 0) this.#paths.delete(path);
  }

  /** A directory is gone or no longer watched: it and everything below it. */
  deleteTree(path: RelPath): void {
    if (this.#paths.size === 0) return;
    const prefix = `${path}/`;
    for (const p of this.#paths) if (p === path || p.startsWith(prefix)) this.#paths.delete(p);
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
  }

  #retryAll(): void {
    if (this.#paths.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
      return;
    }
    for (const path of this.#paths) this.#retry(path);
  }
}
