// The single executable's entry (scripts/build-sea.mjs bundles it with dist/ into one CommonJS file); the npm
// package's entry is bin/sersync-ts.cjs.
import { main } from '../../dist/cli/main.js';
import { CHILD_ENV } from '../../dist/daemon/detach.js';

// `-d` outside systemd re-spawns `execPath argv[1] ...args`, as for `node script.js`. A single executable has no
// script: it gets its own path there (set here), and the detached child drops it again.
const args = process.argv.slice(process.env[CHILD_ENV] && process.argv[2] === process.execPath ? 3 : 2);
process.argv[1] = process.execPath;
main(args).then(
  (code) => {
    process.exitCode = code;
    // Pending handles (watchers, timers) are closed by main; exit explicitly so a stray one cannot keep us alive.
    setImmediate(() => process.exit(code));
  },
  (err) => {
    process.stderr.write(`sersync-ts: internal error: ${err?.message ?? err}\n`);
    process.exit(70);
  },
);
