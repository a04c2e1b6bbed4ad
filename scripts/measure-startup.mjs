// Start-up to "watching" on an empty tree: the single file against the npm build (bin/ with the project's Node 24),
// alternating, N rounds each. Usage: node scripts/measure-startup.mjs [rounds]   (after npm run release)
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const rounds = Number(process.argv[2] ?? 10);
const node = realpathSync(join(root, 'node_modules', '.bin', 'node'));
const builds = {
  'single file': [join(root, 'release', `sersync-ts-${version}-linux-${process.arch}`)],
  'npm build': [node, join(root, 'bin', 'sersync-ts.cjs')],
};

const work = mkdtempSync(join(tmpdir(), 'sersync-ts-startup-'));
try {
  mkdirSync(join(work, 'src'));
  mkdirSync(join(work, 'dst'));
  const conf = join(work, 'confxml.xml');
  writeFileSync(
    conf,
    `<head version="2.5"><host hostip="127.0.0.1" port="${await freePort()}"/><sersync><localpath watch="${work}/src">` +
      `<remote name="${work}/dst"/></localpath><failLog path="${work}/state/fail.sh"/></sersync></head>\n`,
  );
  const times = Object.fromEntries(Object.keys(builds).map((k) => [k, []]));
  for (let i = 0; i < rounds; i++) {
    for (const [name, [file, ...args]] of Object.entries(builds)) times[name].push(await untilWatching(file, [...args, '-o', conf]));
  }
  for (const [name, t] of Object.entries(times)) {
    const sorted = [...t].sort((a, b) => a - b);
    console.log(`${name}: median ${sorted[Math.floor(sorted.length / 2)]} ms; all: ${t.join(', ')} ms`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

function untilWatching(file, args) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: '/usr/bin:/bin' } });
    let out = '';
    let ms = null;
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (ms === null && out.includes('"msg":"watching ')) {
        ms = Math.round(performance.now() - started);
        child.kill('SIGTERM');
      }
    });
    child.on('exit', () => (ms === null ? reject(new Error(`${file} exited before watching:\n${out}`)) : resolve(ms)));
  });
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
