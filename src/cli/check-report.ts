import { opendir } from 'node:fs/promises';
import type { Config, PluginName } from '../config/model.ts';
import { displayPath, fromBytes, fromUtf8, joinRel, type RelPath, toBuffer } from '../core/paths.ts';
import {
  planDelete,
  planFull,
  planUpdate,
  type RsyncInvocation,
  sshMasterArgs,
  sshSocketBase,
  UPDATE_FLAG_NOTE,
  withoutUpdateFlag,
} from '../sync/rsync-command.ts';
import { standaloneRoots } from '../plugins/standalone.ts';
import { CRONTAB_KEPT_NOTE, crontabKeptDespiteFilter, planSite, type SitePlan } from '../sync/site-plan.ts';
import { siteConfigOf } from '../config/site-config.ts';
import type { PathFilter } from '../watch/path-filter.ts';

/** How deep `--check` looks for directories the filter keeps out, and how many directories it lists at most. */
const KEPT_OUT_DEPTH = 3;
const KEPT_OUT_SCAN_LIMIT = 20_000;

/**
 * `--check`: what the config means, as a person reads it: warnings, the directories the filter keeps out, then each
 * remote's exact rsync argv, from the SitePlan the daemon runs its lanes from; with several `<localpath>`, each site. With `module` (-m), what that runs:
 * the plugin alone on its directory, no rsync. `defaultTimeoutSeconds`: see planSite.
 */
export async function checkReport(
  config: Config,
  opts: { initialSync: boolean; defaultTimeoutSeconds?: number; module?: PluginName | null },
): Promise<string> {
  const module = opts.module ?? null;
  const plans =
    config.sites.length > 1 && module === null
      ? config.sites.map((s) => planSite(siteConfigOf(config, s), opts.defaultTimeoutSeconds))
      : [planSite(config, opts.defaultTimeoutSeconds)];
  const first = plans[0] as SitePlan;
  const lines: string[] = [`config ${config.file}: valid`];
  for (const w of config.warnings) lines.push(`warning: ${w}`);
  for (const r of first.filter.untranslated) {
    lines.push(
      `note: filter regex ${JSON.stringify(r.source)} has no rsync pattern: directory and full syncs walk the tree and exclude matching paths by name`,
    );
  }
  if (withoutUpdateFlag(config.rsync.commonParams).dropped) lines.push(UPDATE_FLAG_NOTE);
  if (module === null && crontabKeptDespiteFilter(config)) lines.push(`note: ${CRONTAB_KEPT_NOTE}`);
  const shared = [
    `realtime deletions: ${config.inotify.delete ? 'on' : 'off (<delete start="false">)'}; dot-files: ${config.tuning.dotFiles ? 'synced' : 'skipped (sersync2 rule)'}`,
    `temporary files, not synced in real time; full syncs carry them (<tuning tempGlobs> sets all but 4913 and *~): 4913 *~ ${config.tuning.tempGlobs.join(' ')}`.trimEnd(),
    `batches: quiet ${config.tuning.quietMs} ms, at most ${config.tuning.maxWaitMs} ms; crontab: ${crontab(config, module)}`,
  ];
  if (plans.length > 1) {
    // Several <localpath>: what they share once, then each site with its remotes.
    lines.push(
      `sites: ${plans.length} <localpath>, each with its own remotes; filter, rsync, crontab, failLog and plugin are shared`,
      ...shared,
    );
    for (const [i, plan] of plans.entries()) {
      lines.push('', `site ${i + 1} of ${plans.length}:`, ...(await watchLines(plan.root, plan)));
      lines.push(...remoteLines(plan, opts.initialSync));
    }
    return lines.join('\n');
  }
  if (module !== null) {
    const roots = standaloneRoots(config, module);
    for (const root of roots) lines.push(...(await watchLines(root, first)));
    lines.push(
      ...shared,
      '',
      `-m ${module}: the plugin alone on ${roots.join(', ')}, told each batch; no rsync, no retry queue, no crontab`,
    );
    return lines.join('\n');
  }
  lines.push(...(await watchLines(first.root, first)), ...shared);
  lines.push(...remoteLines(first, opts.initialSync));
  return lines.join('\n');
}

/** The watch root, and the directories the filter keeps out of it. */
async function watchLines(root: string, { config, filter }: SitePlan): Promise<string[]> {
  const lines = [`watch: ${root}`];
  if (config.filter.enabled && config.filter.excludes.length > 0) {
    const out = await keptOut(root, filter);
    const shown = out.dirs.map((d) => displayPath(d)).join(', ');
    const more = out.truncated ? ` (stopped looking after ${KEPT_OUT_SCAN_LIMIT} directories)` : '';
    lines.push(
      `directories the filter keeps out (not watched, not synced; first ${KEPT_OUT_DEPTH} levels): ${shown === '' ? 'none' : shown}${more}`,
    );
  }
  return lines;
}

/** Each remote's exact rsync argv: a full sync and sample batches. */
function remoteLines(plan: SitePlan, initialSync: boolean): string[] {
  const lines: string[] = [];
  for (const { remote, context } of plan.remotes) {
    lines.push('', `remote ${remote.id} (${remote.kind}):`);
    // The daemon's shared ssh connection (SshMaster): its socket's name ends in the daemon's pid and a nonce.
    const base = sshSocketBase(context);
    const socket = base === null ? null : `${base}-<pid>-<nonce>`;
    const ctx = socket === null ? context : { ...context, sshControlPath: socket };
    if (socket !== null) {
      lines.push(
        '  ssh connection kept open while the daemon runs, joined by every run:',
        `    ${['ssh', ...sshMasterArgs(ctx, socket)].map(quote).join(' ')}`,
      );
    }
    const full = planFull(ctx, plan.fullSyncFilters);
    lines.push(`  full sync${initialSync ? ' (-r, crontab, recovery)' : ' (crontab, recovery)'}:`, `    ${show(full)}`);
    lines.push('  sample batch, update run:', `    ${show(planUpdate(ctx, ['index.html', 'img/logo.png']))}`);
    const withDir = planUpdate(ctx, ['index.html', 'img/new-dir'], [], new Set(['img/new-dir']));
    lines.push('  sample batch with a new directory, update run:', `    ${show(withDir)}`);
    lines.push('  sample batch, delete run:', `    ${show(planDelete(ctx, [{ path: 'old/page.html', tree: true }]))}`);
  }
  return lines;
}

function crontab(config: Config, module: PluginName | null): string {
  if (module !== null) return 'off (-m)';
  return config.crontab.enabled ? `every ${config.crontab.scheduleMinutes} min ±25%` : 'off';
}

/** Existing directories the filter keeps out, breadth first: an excluded one is listed, not descended. */
async function keptOut(watch: string, filter: PathFilter): Promise<{ dirs: RelPath[]; truncated: boolean }> {
  const root = fromUtf8(watch);
  const dirs: RelPath[] = [];
  let level: RelPath[] = [''];
  let scanned = 0;
  for (let depth = 1; depth <= KEPT_OUT_DEPTH && level.length > 0; depth++) {
    const next: RelPath[] = [];
    for (const dir of level) {
      let handle: Awaited<ReturnType<typeof opendir>>;
      try {
        handle = await opendir(toBuffer(dir === '' ? root : `${root}/${dir}`) as unknown as string, {
          encoding: 'buffer' as BufferEncoding,
        });
      } catch {
        continue; // unreadable or gone: the daemon says so when it walks
      }
      for await (const entry of handle) {
        if (!entry.isDirectory()) continue;
        const path = joinRel(dir, fromBytes(entry.name as unknown as Buffer));
        if (filter.isExcluded(path, true)) dirs.push(path);
        else next.push(path);
        if (++scanned >= KEPT_OUT_SCAN_LIMIT) return { dirs, truncated: true };
      }
    }
    level = next;
  }
  return { dirs: dirs.sort(), truncated: false };
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
