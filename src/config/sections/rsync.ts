import path from 'node:path';
import { type ConfigNode, attr, child, where } from '../config-node.ts';
import { SHIPPED } from '../defaults.ts';
import { el } from '../element-spec.ts';
import type { Config, Remote } from '../model.ts';
import type { ValueRange, ValueReader } from '../value-reader.ts';
import { PORT } from '../value-reader.ts';

/** `<sersync><rsync>`: the options every rsync run gets; `<ssh options>` is sersync-ts's. */
export const RSYNC_SPEC = el(
  'rsync',
  [],
  [
    el('commonParams', ['params']),
    el('auth', ['start', 'users', 'passwordfile']),
    el('userDefinedPort', ['start', 'port']),
    el('timeout', ['start', 'time']),
    el('ssh', ['start', 'options']),
  ],
);

const SECONDS: ValueRange = { min: 1, max: 2147483647, expect: 'expected whole seconds > 0' };

/** `sshEnabled` is read before the remotes, which it turns into ssh destinations. */
export function readRsync(
  node: ConfigNode | undefined,
  sshNode: ConfigNode | undefined,
  sshEnabled: boolean,
  watch: string,
  remotes: readonly Remote[],
  values: ValueReader,
): Config['rsync'] {
  const p = values.problems;
  const paramsNode = child(node, 'commonParams');
  const rawParams = attr(paramsNode, 'params') ?? SHIPPED.commonParams;
  const commonParams = values.words(paramsNode, 'params', rawParams, true) ?? [];
  if (paramsNode !== undefined && commonParams.length === 0 && attr(paramsNode, 'params') !== undefined) {
    p.warn(
      paramsNode.el.line,
      where(paramsNode, 'params'),
      'empty: rsync then gets no -a or -r, so a new directory is sent without its contents (sersync2 did the same); the usual value is -artuz',
    );
  }

  const authNode = child(node, 'auth');
  const authEnabled = values.bool(authNode, 'start', false);
  const users = (attr(authNode, 'users') ?? SHIPPED.auth.users).trim();
  let passwordFile = attr(authNode, 'passwordfile') ?? SHIPPED.auth.passwordFile;
  if (authEnabled && authNode !== undefined) {
    if (users.startsWith('-')) {
      p.error(authNode.el.line, where(authNode, 'users'), 'starts with "-", so rsync would read the destination as an option');
    }
    if (passwordFile !== '' && !path.isAbsolute(passwordFile) && watch !== '') {
      // sersync2 ran every rsync as `cd <watch> && rsync ...`, so a relative password file was found there.
      passwordFile = path.resolve(watch, passwordFile);
    }
    if (passwordFile !== '' && sshEnabled) {
      p.warn(
        authNode.el.line,
        where(authNode, 'passwordfile'),
        'ignored with <ssh start="true">: rsync rejects --password-file over ssh (sersync2 passed it and every sync failed), so sersync-ts drops it',
      );
    } else if (passwordFile !== '' && remotes.some((r) => r.kind === 'daemon')) {
      values.checkOnDisk('passwordFile', passwordFile, authNode, 'passwordfile');
    }
  }

  const portNode = child(node, 'userDefinedPort');
  const portEnabled = values.bool(portNode, 'start', false);
  const port = values.number(portNode, 'port', SHIPPED.port, PORT, values.reportIf(portEnabled));

  const timeoutNode = child(node, 'timeout');
  const timeoutEnabled = values.bool(timeoutNode, 'start', false);
  let timeoutOn = timeoutEnabled;
  const seconds = values.number(timeoutNode, 'time', SHIPPED.timeoutSeconds, SECONDS, (n, key, message) => {
    if (!timeoutEnabled) {
      p.report(false, n.el.line, where(n, key), message);
      return;
    }
    // sersync2 passed the text to rsync: 0 turns rsync's I/O timeout off, anything else but seconds failed every sync.
    timeoutOn = false;
    p.warn(
      n.el.line,
      where(n, key),
      /^\s*0+\s*$/.test(attr(n, key) ?? '')
        ? '0 turns rsync\'s I/O timeout off; sersync-ts keeps its own default I/O timeout instead, as with start="false"'
        : 'expected whole seconds > 0 (rsync would refuse this and every sync fail); using the default I/O timeout, as with start="false"',
    );
  });

  const rawOptions = attr(sshNode, 'options');
  const sshOptions = rawOptions === undefined ? [] : (values.words(sshNode, 'options', rawOptions, sshEnabled) ?? []);

  return {
    commonParams,
    auth: { enabled: authEnabled, users, passwordFile },
    port: { enabled: portEnabled, port },
    timeout: { enabled: timeoutOn, seconds },
    ssh: { enabled: sshEnabled, options: sshOptions },
  };
}
