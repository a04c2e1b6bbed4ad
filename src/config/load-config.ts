import { constants, type Stats } from 'node:fs';
import { access, lstat, open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { errorCode, ExitCode, SersyncError } from '../core/errors.ts';
import type { Config } from './model.ts';
import { configTooLarge, MAX_CONFIG_BYTES } from './config-text.ts';
import { analyzeConfig, type ParseOptions } from './parse-config.ts';
import { isInside } from './sections/localpath.ts';

/**
 * Reads and validates confxml.xml, then checks what the config names on disk: the watch directory, local mirror
 * directories and, for rsync daemons with auth, the password file. `file` is the path as the user gave it (`-o`);
 * messages name it that way. Throws SersyncError CONFIG_MISSING (exit 66) when the file cannot be read, and
 * CONFIG_INVALID (exit 78) listing every problem otherwise.
 */
export async function loadConfig(file: string, options: ParseOptions = {}): Promise<Config> {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const bytes = await readConfigFile(file, path.resolve(cwd, file));
  const { config, problems, diskChecks } = analyzeConfig(bytes, file, { ...options, cwd });
  for (const check of diskChecks) {
    const message =
      check.kind === 'passwordFile'
        ? await passwordFileProblem(check.path)
        : await directoryProblem(check.path, check.kind === 'watchDirectory');
    if (message !== null) problems.error(check.line, check.where, message);
  }
  for (const clash of await overlappingRealRoots(config)) problems.error(clash.line, '<sersync><localpath watch>', clash.message);
  problems.throwIfAny();
  return config;
}

/**
 * Site roots written as different paths that are the same directory, or nested, once symbolic links are followed
 * (the parser compares them as written): the inner tree would be synced twice.
 */
async function overlappingRealRoots(config: Config): Promise<{ line: number; message: string }[]> {
  if (config.sites.length < 2) return [];
  const real = await Promise.all(config.sites.map((s) => realpath(s.watch).catch(() => null)));
  const out: { line: number; message: string }[] = [];
  for (const [j, site] of config.sites.entries()) {
    const b = real[j];
    const i = real.findIndex((a, k) => k < j && a && b && (isInside(a, b) || isInside(b, a)));
    const other = config.sites[i];
    if (b === null || b === undefined || other === undefined) continue;
    const how = real[i] === b ? 'the same directory as' : isInside(b, real[i] as string) ? 'inside' : 'around';
    out.push({
      line: site.line,
      message: `${site.watch} is ${b} once symbolic links are followed: ${how} the <localpath watch="${other.watch}"> of line ${other.line}; its files would be synced twice, give each directory one <localpath>`,
    });
  }
  return out;
}

function missing(message: string, cause?: unknown): SersyncError {
  return new SersyncError('CONFIG_MISSING', message, { exitCode: ExitCode.NoInput, cause });
}

async function readConfigFile(file: string, abs: string): Promise<Buffer> {
  const hint = 'pass the config file with -o FILE (default: confxml.xml in the current directory)';
  let st: Stats;
  try {
    st = await stat(abs);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT') {
      const dangling = await lstat(abs).then(
        (l) => l.isSymbolicLink(),
        () => false,
      );
      throw missing(
        dangling
          ? `config file ${file} is a symbolic link to a file that does not exist; fix the link or ${hint}`
          : `config file ${file} does not exist; ${hint}`,
        err,
      );
    }
    if (code === 'ENOTDIR') throw missing(`config file ${file}: a part of the path is not a directory; ${hint}`, err);
    throw missing(`config file ${file} cannot be read (${code ?? String(err)}); check the path and its permissions`, err);
  }
  if (st.isDirectory()) throw missing(`config file ${file} is a directory, not a file; ${hint}`);
  if (!st.isFile()) throw missing(`config file ${file} is not a regular file (a pipe or device?); ${hint}`);
  if (st.size > MAX_CONFIG_BYTES) throw configTooLarge(file, st.size);

  // O_NONBLOCK: should the path be swapped for a FIFO after the stat, opening it must not wait for a writer.
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(abs, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw missing(`config file ${file} cannot be read (${errorCode(err) ?? String(err)}); check its permissions`, err);
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) throw missing(`config file ${file} is not a regular file; ${hint}`);
    // Read at most one byte past the limit, so a file that grew since the stat is caught without loading it all.
    const buf = Buffer.alloc(Math.min(opened.size, MAX_CONFIG_BYTES) + 1);
    let length = 0;
    while (length < buf.length) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > MAX_CONFIG_BYTES) throw configTooLarge(file, Math.max(opened.size, length));
    return buf.subarray(0, length);
  } catch (err) {
    if (err instanceof SersyncError) throw err;
    throw missing(`config file ${file} cannot be read (${errorCode(err) ?? String(err)})`, err);
  } finally {
    await handle.close();
  }
}

async function directoryProblem(dir: string, watched: boolean): Promise<string | null> {
  try {
    const st = await stat(dir);
    return st.isDirectory() ? null : `${dir} is not a directory; fix the path`;
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      // sersync2 printed "inotify_add_watch error" here and then sat idle, syncing nothing, with no exit code to see.
      const why = watched ? ', so there is nothing to watch (sersync2 started anyway and never synced)' : '';
      return `directory does not exist${why}; create it or fix the path`;
    }
    return `directory cannot be checked (${code ?? String(err)})`;
  }
}

/** rsync's own rules for --password-file (authenticate.c), checked now rather than failing every sync later. */
async function passwordFileProblem(file: string): Promise<string | null> {
  let st: Stats;
  try {
    st = await stat(file);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return `password file ${file} does not exist; create it (one line, the password; chmod 600) or fix the path`;
    }
    return `password file ${file} cannot be checked (${code ?? String(err)})`;
  }
  if (!st.isFile()) return `password file ${file} is not a regular file`;
  try {
    await access(file, constants.R_OK);
  } catch {
    return `password file ${file} is not readable by this user`;
  }
  if ((st.mode & 0o006) !== 0) {
    return `password file ${file} is accessible by other users, which rsync refuses; run chmod 600 ${file}`;
  }
  if (process.getuid?.() === 0 && st.uid !== 0) {
    return `password file ${file} must be owned by root when running as root (rsync's rule); run chown root ${file}`;
  }
  return null;
}
