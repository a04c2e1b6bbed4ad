/**
 * Paths inside the daemon are "byte strings": every char is one byte of the file name (latin1), so a name that is
 * not valid UTF-8 survives from the watcher to rsync's stdin unchanged. A RelPath is relative to the watch root,
 * '/'-separated, without a leading or trailing slash; '' is the root itself. Convert only at the edges: names from
 * the file system (fromBytes, fromUtf8), paths to fs calls and rsync's stdin (toBuffer), text for people (displayPath).
 */
export type RelPath = string;

/** A UTF-8 JS string (as most APIs hand out) → byte string. */
export function fromUtf8(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** Raw bytes of a name or path → byte string. */
export function fromBytes(bytes: Buffer): string {
  return bytes.toString('latin1');
}

export function toBuffer(bytePath: string): Buffer {
  return Buffer.from(bytePath, 'latin1');
}

/** For logs and messages: invalid UTF-8 shows as U+FFFD, which is fine for people and never used as a path. */
export function displayPath(bytePath: string): string {
  return Buffer.from(bytePath, 'latin1').toString('utf8');
}

export function parentOf(path: RelPath): RelPath {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

export function baseName(path: RelPath): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinRel(dir: RelPath, name: string): RelPath {
  return dir === '' ? name : `${dir}/${name}`;
}
