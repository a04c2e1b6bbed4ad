// Builds native/build/Release/inotify.node with the node-gyp that npm bundles, against the machine's Node headers
// (/usr/include/node here; the addon uses only N-API, so headers of any Node >= 12 fit the project's own Node 24).
// Run by `npm test` and `npm run demo`. Without a compiler or headers it says so and exits 0: sersync-ts then
// watches with fs.watch (more memory, no overflow detection), and the unit test that expects the addon fails
// unless SERSYNC_NATIVE_INOTIFY_OPTIONAL=1.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
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
if (candidates.length === 0) {
  console.error('sersync-ts: node-gyp not found: the native inotify reader is not built; fs.watch is used instead');
  process.exit(0);
}
const nodedir = ['/usr', '/usr/local'].find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
const args = [candidates[0], 'rebuild', '--directory', here, ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 300_000 });
if (r.status !== 0 || !existsSync(out)) {
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n');
  console.error(`sersync-ts: building the native inotify reader failed; fs.watch is used instead\n${tail}`);
  process.exit(0);
}
console.error('sersync-ts: built the native inotify reader (native/build/Release/inotify.node)');
