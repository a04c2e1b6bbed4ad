// `npm run demo`: mirrors /tmp/sersync-ts-demo/source into /tmp/sersync-ts-demo/mirror with confxml.example.xml,
// makes a few changes so there is something to see, and keeps running until Ctrl-C.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = '/tmp/sersync-ts-demo';
const source = join(root, 'source');
const mirror = join(root, 'mirror');
const project = dirname(dirname(fileURLToPath(import.meta.url)));

rmSync(root, { recursive: true, force: true });
for (const d of [source, mirror, join(root, 'state')]) mkdirSync(d, { recursive: true });
writeFileSync(join(source, 'index.html'), '<h1>hello from sersync-ts</h1>\n');
mkdirSync(join(source, 'css'));
writeFileSync(join(source, 'css', 'site.css'), 'body { color: #333 }\n');

console.log(`demo: watching ${source}, mirroring into ${mirror}`);
console.log('demo: change files in the source in another terminal and watch the mirror; Ctrl-C stops.\n');
const daemon = spawn(process.execPath, [join(project, 'bin', 'sersync-ts.cjs'), '-r', '-o', join(project, 'confxml.example.xml')], {
  stdio: 'inherit',
});
const step = (ms, fn) => setTimeout(fn, ms).unref();
step(3000, () => {
  console.log('\ndemo: writing 200 files in a new directory, a dot-file and an odd name');
  mkdirSync(join(source, 'blog', '2026'), { recursive: true });
  for (let i = 0; i < 200; i++) writeFileSync(join(source, 'blog', '2026', `post-${i}.html`), `<p>post ${i}</p>\n`);
  writeFileSync(join(source, '.htaccess'), 'Options -Indexes\n');
  writeFileSync(join(source, '$(touch PWNED) `id`.txt'), 'no shell ever sees this name\n');
});
step(6000, () => {
  console.log('\ndemo: renaming a directory and deleting a file');
  renameSync(join(source, 'blog'), join(source, 'news'));
  rmSync(join(source, 'css', 'site.css'));
});
step(9000, () => console.log(`\ndemo: compare with: diff -r ${source} ${mirror} && echo identical`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => daemon.kill('SIGTERM'));
daemon.on('exit', (code) => process.exit(code ?? 0));
