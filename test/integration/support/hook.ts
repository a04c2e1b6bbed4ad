import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A command-plugin hook that records each run (SERSYNC_EVENT, SERSYNC_ISDIR, then its arguments) in a file of its
 * own; `runs()` reads the complete records.
 */
export async function recordingHook(dir: string): Promise<{ script: string; runs: () => Promise<string[][]> }> {
  const recDir = join(dir, 'runs');
  await mkdir(recDir);
  const script = join(dir, 'record.sh');
  await writeFile(
    script,
    `#!/bin/sh\nout=$(mktemp "${recDir}/run.XXXXXX")\nprintf '%s\\0' "$SERSYNC_EVENT" "$SERSYNC_ISDIR" "$@" > "$out"\n`,
  );
  await chmod(script, 0o755);
  const runs = async () => {
    const out: string[][] = [];
    for (const f of (await readdir(recDir)).sort()) {
      const text = await readFile(join(recDir, f), 'utf8');
      if (text.endsWith('\0')) out.push(text.slice(0, -1).split('\0'));
    }
    return out;
  };
  return { script, runs };
}
