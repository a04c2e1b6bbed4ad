import { type ConfigNode, attr, pluginBlock, where } from '../config-node.ts';
import { type ElementSpec, el } from '../element-spec.ts';
import type { CommandPluginConfig, Config, HttpPluginConfig, PluginName, RefreshCdnPluginConfig, SocketPluginConfig } from '../model.ts';
import type { ValueReader } from '../value-reader.ts';
import { CDN_PLUGIN_SPEC, readCdnPlugin } from './cdn-plugin.ts';
import { COMMAND_PLUGIN_SPEC, readCommandPlugin } from './command-plugin.ts';
import { HTTP_PLUGIN_SPEC, readHttpPlugin } from './http-plugin.ts';
import { readSocketPlugin, SOCKET_PLUGIN_SPEC } from './socket-plugin.ts';

export const PLUGIN_NAMES: readonly PluginName[] = ['command', 'socket', 'refreshCDN', 'http'];

/** `<sersync><plugin start name/>`: which plugin runs after each sync. */
export const PLUGIN_CHOICE_SPEC = el('plugin', ['start', 'name']);

/** The `<plugin name="NAME">` blocks under `<head>`, by name. */
export const PLUGIN_BLOCK_SPECS: Readonly<Record<PluginName, ElementSpec>> = {
  command: COMMAND_PLUGIN_SPEC,
  socket: SOCKET_PLUGIN_SPEC,
  refreshCDN: CDN_PLUGIN_SPEC,
  http: HTTP_PLUGIN_SPEC,
};

export type PluginBlocks = {
  command: CommandPluginConfig | null;
  socket: SocketPluginConfig | null;
  refreshCDN: RefreshCdnPluginConfig | null;
  http: HttpPluginConfig | null;
};

export function readPluginChoice(node: ConfigNode | undefined, values: ValueReader): Config['plugin'] {
  const enabled = values.bool(node, 'start', false);
  const name = attr(node, 'name') ?? 'command';
  if (isPluginName(name)) return { enabled, name };
  if (node !== undefined) {
    values.problems.report(
      enabled,
      node.el.line,
      where(node, 'name'),
      'unknown plugin; expected command, socket, refreshCDN or http (exact case)',
    );
  }
  // Already reported; `enabled: false` keeps a second complaint about a missing command block away.
  return { enabled: false, name: 'command' };
}

/**
 * Every plugin block there is, each checked strictly when its plugin is the active one and leniently otherwise.
 * `choice` is `<sersync><plugin>`, blamed when the active plugin has no block.
 */
export function readPluginBlocks(
  head: ConfigNode,
  active: PluginName | null,
  choice: ConfigNode | undefined,
  values: ValueReader,
): PluginBlocks {
  const blocks: PluginBlocks = { command: null, socket: null, refreshCDN: null, http: null };
  for (const name of PLUGIN_NAMES) {
    const block = pluginBlock(head, name);
    const enabled = active === name;
    if (block === undefined) {
      if (enabled) {
        const at = choice ?? head;
        values.problems.error(at.el.line, where(at), `no <plugin name="${name}"> block under <head>; the plugin needs one`);
      }
      continue;
    }
    if (name === 'command') blocks.command = readCommandPlugin(block, enabled, values);
    else if (name === 'socket') blocks.socket = readSocketPlugin(block, enabled, values);
    else if (name === 'refreshCDN') blocks.refreshCDN = readCdnPlugin(block, enabled, values);
    else blocks.http = readHttpPlugin(block, enabled, values);
  }
  return blocks;
}

function isPluginName(name: string): name is PluginName {
  return (PLUGIN_NAMES as readonly string[]).includes(name);
}
