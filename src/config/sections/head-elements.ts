import { type ConfigNode, attr, where } from '../config-node.ts';
import { SHIPPED } from '../defaults.ts';
import { el } from '../element-spec.ts';
import type { Config } from '../model.ts';
import { PORT, type ValueReader } from '../value-reader.ts';

/** `<host hostip port>`: where the status endpoint listens. */
export const HOST_SPEC = el('host', ['hostip', 'port']);
/** `<debug start>` and `<fileSystem xfs>`: one switch each. */
export const DEBUG_SPEC = el('debug', ['start']);
export const FILE_SYSTEM_SPEC = el('fileSystem', ['xfs']);

export function readHost(node: ConfigNode | undefined, values: ValueReader): Config['host'] {
  const ip = attr(node, 'hostip') ?? SHIPPED.host.ip;
  const port = values.number(node, 'port', SHIPPED.host.port, PORT, (n, key, msg) =>
    values.problems.warn(n.el.line, where(n, key), `${msg}; the status endpoint uses ${SHIPPED.host.port}`),
  );
  return { ip, port };
}
