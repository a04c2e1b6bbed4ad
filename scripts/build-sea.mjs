// `npm run release`, first step: release/sersync-ts-<version>-linux-<arch>, one file that runs with no Node.js on the
// machine. A Node single executable application: dist/ bundled into one CommonJS file (esbuild), made into a blob by
// the project's own Node 24 with the native inotify reader as an asset, and injected into a copy of that same Node
// binary (postject). Expects `npm run build` to have run; fails loudly rather than ship a build without the reader.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import postject from 'postject';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
if (process.platform !== 'linux' || arch === undefined) fail(`builds for linux x64/arm64 only, not ${process.platform} ${process.arch}`);

const addon = join(root, 'native', 'build', 'Release', 'inotify.node');
if (!existsSync(addon) || statSync(addon).mtimeMs < statSync(join(root, 'native', 'inotify.c')).mtimeMs) {
  fail(`${addon} is missing or older than native/inotify.c: run npm run build (it needs make, g++ and python3)`);
}
// The Node that makes the blob must be the Node it is injected into: the `node` devDependency, whatever runs us.
const nodeBinary = realpathSync(join(root, 'node_modules', '.bin', 'node'));
const work = join(root, 'release', '.build');
const out = join(root, 'release', `sersync-ts-${version}-linux-${arch}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

// main.ts reads its version from ../../package.json next to dist/; the single file has no such file beside it.
const VERSION_READ = "readFileSync(new URL('../../package.json', import.meta.url), 'utf8')";
const inlineVersion = {
  name: 'inline-version',
  setup(b) {
    b.onLoad({ filter: /[\\/]dist[\\/]cli[\\/]main\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (text.split(VERSION_READ).length !== 2) fail(`${args.path}: expected the package.json read once, as ${VERSION_READ}`);
      return { contents: text.replace(VERSION_READ, JSON.stringify(JSON.stringify({ version }))), loader: 'js' };
    });
  },
};
const bundle = join(work, 'sersync-ts.cjs');
await build({
  entryPoints: [join(root, 'packaging', 'sea', 'main.mjs')],
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  outfile: bundle,
  plugins: [inlineVersion],
  logLevel: 'warning',
});

const blob = join(work, 'sersync-ts.blob');
const seaConfig = join(work, 'sea-config.json');
writeFileSync(
  seaConfig,
  JSON.stringify({
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    assets: { 'inotify.node': addon },
  }),
);
execFileSync(nodeBinary, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });

rmSync(out, { force: true });
copyFileSync(nodeBinary, out);
// The npm package's Node carries its symbol tables (about 18 MB); addons need only the dynamic one, which strip keeps.
try {
  execFileSync('strip', [out], { stdio: 'inherit' });
} catch (err) {
  console.error(`build-sea: strip failed or is missing (${err.message}); the file keeps its debug symbols`);
}
await postject.inject(out, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });

const said = execFileSync(out, ['--version'], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }).trim();
if (said !== `sersync-ts ${version} (native inotify reader)`) fail(`${out} --version says ${JSON.stringify(said)}`);
console.log(`build-sea: ${out} (${(statSync(out).size / 1e6).toFixed(1)} MB): ${said}`);

function fail(message) {
  console.error(`build-sea: ${message}`);
  process.exit(1);
}
