import type { Config, PluginName } from '../config/model.ts';
import { ExitCode, SersyncError } from '../core/errors.ts';
import { createCdnPlugin } from './cdn-plugin.ts';
import { createCommandPlugin } from './command-plugin.ts';
import { createHttpPlugin } from './http-plugin.ts';
import type { Plugin, PluginDeps } from './plugin.ts';
import { createSocketPlugin } from './socket-plugin.ts';

/**
 * The plugin `name` configured in `config.plugins[name]`. Throws when that block is missing; parseConfig already
 * refuses such a config when the plugin is enabled or chosen with -m.
 */
export function createPlugin(name: PluginName, config: Config, deps: PluginDeps): Plugin {
  switch (name) {
    case 'command':
      return createCommandPlugin(required(config.plugins.command, name), deps);
    case 'socket':
      return createSocketPlugin(required(config.plugins.socket, name), deps);
    case 'refreshCDN':
      return createCdnPlugin(required(config.plugins.refreshCDN, name), config.watch, deps);
    case 'http':
      return createHttpPlugin(required(config.plugins.http, name), config.watch, deps);
  }
}

function required<T>(block: T | null, name: PluginName): T {
  if (block === null) {
    throw new SersyncError('CONFIG_INVALID', `no <plugin name="${name}"> block under <head>; the plugin needs one`, {
      exitCode: ExitCode.Config,
    });
  }
  return block;
}
