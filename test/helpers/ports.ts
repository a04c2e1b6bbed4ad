/**
 * Free TCP ports on 127.0.0.1 for the daemons a test starts.
 *
 * The port is free when this returns, but another process may take it before the caller binds it; the helpers that
 * bind one (rsync-daemon.ts, sshd.ts) retry with a new port when the bind fails.
 */
import { createServer } from 'node:net';

/** Returns a TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`freePort: unexpected server address ${String(address)}`));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
