// Builds native/build/Release/inotify.node with the node-gyp that npm bundles, against the machine's Node headers
// (/usr/include/node here; the addon uses only N-API, so headers of any Node >= 12 fit the project's own Node 24).
// Run by `npm test`, `npm run demo`, and when the npm package is installed. Without a compiler or headers it says so
// and exits 0: sersync-ts then watches with fs.watch (more memory, no overflow detection), and the unit test that
// expects the addon fails unless SERSYNC_NATIVE_INOTIFY_OPTIONAL=1.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'Release', 'inotify.node');
const source = join(here, 'inotify.c');
if (process.platform !== 'linux') process.exit(0);
if (existsSync(out) && statSync(out).mtimeMs >= statSync(source).mtimeMs) process.exit(0);

const candidates = [
  process.env.npm_config_node_gyp,
  process.env.npm_execpath && join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
].filter((p) => p && existsSync(p));
const COST = 'the daemon will watch with fs.watch instead: about 2 KB more memory per directory, and inotify queue overflows go unnoticed';
if (candidates.length === 0) warnAndExit(`node-gyp not found: the native inotify reader is not built.\n${COST}`);
const nodedir = ['/usr', '/usr/local'].find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
const args = [candidates[0], 'rebuild', '--directory', here, ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 300_000 });
if (r.status !== 0 || !existsSync(out)) {
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n');
  warnAndExit(`building the native inotify reader failed (it needs make, g++ and python3; then npm rebuild sersync-ts).\n${COST}\n${tail}`);
}
console.error('sersync-ts: built the native inotify reader (native/build/Release/inotify.node)');

/** npm shows an install script's output only when it fails: at install, say it on the terminal too, if any. */
function warnAndExit(message) {
  const text = `${message.split('\n').map((l) => `sersync-ts: ${l}`).join('\n')}\n`;
  process.stderr.write(text);
  if (process.env.npm_lifecycle_event === 'install' && !process.stderr.isTTY) {
    try {
      writeFileSync('/dev/tty', text);
    } catch {
      // No terminal (CI, a pipe): stderr is all there is.
    }
  }
  process.exit(0);
}
