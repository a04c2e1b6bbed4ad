import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The compatibility corpus (test/fixtures/config/corpus): confxml.xml files as they are found on servers (sersync2's
 * shipped file, the seed's example, tutorial copies, CRLF, Latin-1, quirky values). Next to each `x.xml`, `x.expect`
 * lists one substring per warning, in the order `--check` prints them, `note: …` for each of its notes (where
 * sersync-ts does something differently with a valid value, such as dropping -u; notes are no warnings, so
 * `--strict` passes them), and `kept-out: a/b, c` for the directories `--check` says the filter keeps out (the test
 * creates data/cache and upload/tmp in the watch directory).
 */
export const CORPUS = path.join(import.meta.dirname, '..', 'fixtures', 'config', 'corpus');

export interface CorpusPlaces {
  readonly watch: string;
  readonly mirror: string;
  readonly passwordFile: string;
}

export const CORPUS_DIRS = ['data/cache', 'data/keep', 'upload/tmp'];

export const corpusFiles = (): string[] =>
  readdirSync(CORPUS)
    .filter((f) => f.endsWith('.xml'))
    .sort();

/** The corpus file with its server paths pointed at test directories, byte for byte otherwise (Latin-1 too). */
export function placeCorpusFile(name: string, dir: string, places: CorpusPlaces): string {
  const text = readFileSync(path.join(CORPUS, name)).toString('latin1');
  const placed = text
    .replaceAll('/opt/tongbu', places.watch)
    .replaceAll('@MIRROR@', places.mirror)
    .replace(/passwordfile="[^"]*"/gi, `passwordfile="${places.passwordFile}"`);
  const file = path.join(dir, name);
  writeFileSync(file, Buffer.from(placed, 'latin1'));
  return file;
}

export interface CorpusExpectation {
  readonly warnings: readonly string[];
  /** The notes `--check` prints, each without its `note: ` prefix. */
  readonly notes: readonly string[];
  /** What `--check` lists as kept out, or null when the file has no filter. */
  readonly keptOut: string | null;
}

export function corpusExpectation(name: string): CorpusExpectation {
  const lines = readFileSync(path.join(CORPUS, name.replace(/\.xml$/, '.expect')), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const kept = lines.find((l) => l.startsWith('kept-out: '));
  return {
    warnings: lines.filter((l) => !l.startsWith('kept-out: ') && !l.startsWith('note: ')),
    notes: lines.filter((l) => l.startsWith('note: ')).map((l) => l.slice('note: '.length)),
    keptOut: kept === undefined ? null : kept.slice('kept-out: '.length),
  };
}

/**
 * The corpus file made runnable here: placed as above, every `<remote>` turned into the local mirror, and the
 * status port and failLog (retry queue) made the test's own when given, so it runs beside other daemons on this
 * machine; without them the file keeps its own (the copies of one config that an operator runs side by side).
 */
export function runnableCorpusFile(name: string, dir: string, places: CorpusPlaces & { port?: number; stateDir?: string }): string {
  const file = placeCorpusFile(name, dir, places);
  let runnable = readFileSync(file)
    .toString('latin1')
    .replace(/<remote\b[^>]*?\/?>(?:\s*<\/remote>)?/gi, `<remote name="${places.mirror}"/>`);
  if (places.port !== undefined) runnable = runnable.replace(/(<host\b[^>]*?\bport=")[^"]*"/i, `$1${places.port}"`);
  if (places.stateDir !== undefined)
    runnable = runnable.replace(/(<failLog\b[^>]*?\bpath=")[^"]*"/i, `$1${places.stateDir}/rsync_fail_log.sh"`);
  writeFileSync(file, Buffer.from(runnable, 'latin1'));
  return file;
}
