/**
 * `unshare --user --map-root-user node inotify-watch-limit.ts N FILE ARGS...`: runs FILE with at most N inotify
 * watches. The limit is this user namespace's own (/proc/sys/user/max_inotify_watches), so the test lowers nothing
 * on the machine, and FILE cannot raise it: fs.inotify.max_user_watches is read-only inside the namespace.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const [limit, file, ...args] = process.argv.slice(2);
if (!limit || !file) throw new Error('usage: inotify-watch-limit.ts N FILE [ARGS...]');
writeFileSync('/proc/sys/user/max_inotify_watches', `${limit}\n`);
const child = spawn(file, args, { stdio: 'inherit' });
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
