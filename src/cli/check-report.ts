import type { Config } from '../config/model.ts';
import { planDelete, planFull, planUpdate, type CommandContext, type RsyncInvocation, UPDATE_FLAG_NOTE, withoutUpdateFlag } from '../sync/rsync-command.ts';
import { createPathFilter } from '../watch/path-filter.ts';

/** `--check`: what the config means, as a person reads it: warnings, then each remote's exact rsync argv. */
export function checkReport(config: Config, opts: { initialSync: boolean; defaultTimeoutSeconds: number }): string {
  const filter = createPathFilter({ dotFiles: config.tuning.dotFiles, regexes: config.filter.enabled ? config.filter.excludes : [] });
  const lines: string[] = [`config ${config.file}: valid`];
  for (const w of config.warnings) lines.push(`warning: ${w}`);
  for (const r of filter.untranslated) {
    lines.push(`note: filter regex ${JSON.stringify(r.source)} has no rsync pattern: directory and full syncs walk the tree and exclude matching paths by name`);
  }
  if (withoutUpdateFlag(config.rsync.commonParams).dropped) lines.push(UPDATE_FLAG_NOTE);
  lines.push(`watch: ${config.watch}`);
  lines.push(`realtime deletions: ${config.inotify.delete ? 'on' : 'off (<delete start="false">)'}; dot-files: ${config.tuning.dotFiles ? 'synced' : 'skipped (sersync2 rule)'}`);
  lines.push(`batches: quiet ${config.tuning.quietMs} ms, at most ${config.tuning.maxWaitMs} ms; crontab: ${config.crontab.enabled ? `every ${config.crontab.scheduleMinutes} min ±25%` : 'off'}`);
  const crontabFilters =
    config.crontab.enabled && config.crontab.filter.enabled ? config.crontab.filter.excludes.map((e) => `--exclude=${e}`) : [];
  for (const remote of config.remotes) {
    const ctx: CommandContext = {
      watch: config.watch,
      remote,
      rsync: config.rsync,
      deletes: config.inotify.delete,
      filters: filter.rsyncFilters,
      defaultTimeoutSeconds: opts.defaultTimeoutSeconds,
    };
    lines.push('', `remote ${remote.id} (${remote.kind}):`);
    lines.push(`  full sync${opts.initialSync ? ' (-r, crontab, recovery)' : ' (crontab, recovery)'}:`, `    ${show(planFull(ctx, crontabFilters))}`);
    lines.push('  sample batch, update run:', `    ${show(planUpdate(ctx, ['index.html', 'img/logo.png']))}`);
    const withDir = planUpdate(ctx, ['index.html', 'img/new-dir'], [], new Set(['img/new-dir']));
    lines.push('  sample batch with a new directory, update run:', `    ${show(withDir)}`);
    lines.push('  sample batch, delete run:', `    ${show(planDelete(ctx, [{ path: 'old/page.html', tree: true }]))}`);
  }
  return lines.join('\n');
}

function show(run: RsyncInvocation): string {
  const argv = ['rsync', ...run.args].map(quote).join(' ');
  if (!run.input) return argv;
  const items = run.input.toString('utf8').split('\0').filter(Boolean);
  return `${argv}\n      stdin (NUL-separated): ${items.map((i) => JSON.stringify(i)).join(' ')}`;
}

/** For display only; nothing is ever run through a shell. */
function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
