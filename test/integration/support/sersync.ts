import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BackgroundProcess, type RunResult, runProcess, spawnBackground } from '../../helpers/processes.ts';
import { waitFor } from '../../helpers/wait.ts';

/** The real daemon as a child process (bin/ → dist/), as an operator runs it. */
export const BIN = join(import.meta.dirname, '..', '..', '..', 'bin', 'sersync-ts.cjs');

export interface RemoteSpec {
  ip?: string;
  name: string;
}

export interface ConfSpec {
  watch: string;
  remotes: RemoteSpec[];
  auth?: { users: string; passwordFile: string };
  port?: number;
  ssh?: { options: string };
  timeoutSeconds?: number;
  deleteOn?: boolean;
  failLog?: string;
  filterExcludes?: string[];
  /** `<commonParams params>`, default sersync2's `-artuz`. */
  commonParams?: string;
  crontab?: { minutes: number; excludes?: string[] };
  tuning?: Record<string, string | number | boolean>;
  /** `<host>`: where the status endpoint listens (default 127.0.0.1:8008, taken by whichever test daemon is first). */
  host?: { ip: string; port: number };
  /** `<sersync><plugin start="true" name>`; its block goes into `extra`. */
  plugin?: string;
  extra?: string;
  /** More `<localpath>` after the first (an extension: sersync2 read only the first). */
  moreSites?: { watch: string; remotes: RemoteSpec[] }[];
}

const attr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/** A sersync2-format confxml.xml for a test. */
export function confXml(c: ConfSpec): string {
  const remoteXml = (list: RemoteSpec[]) =>
    list.map((r) => `<remote ${r.ip ? `ip="${attr(r.ip)}" ` : ''}name="${attr(r.name)}"/>`).join('\n      ');
  const remotes = remoteXml(c.remotes);
  const moreSites = (c.moreSites ?? [])
    .map((s) => `\n    <localpath watch="${attr(s.watch)}">${remoteXml(s.remotes)}</localpath>`)
    .join('');
  const excludes = (c.filterExcludes ?? []).map((e) => `<exclude expression="${attr(e)}"/>`).join('');
  const cronEx = (c.crontab?.excludes ?? []).map((e) => `<exclude expression="${attr(e)}"/>`).join('');
  const tuning = Object.entries(c.tuning ?? {})
    .map(([k, v]) => `${k}="${attr(String(v))}"`)
    .join(' ');
  return `<?xml version="1.0" encoding="ISO-8859-1"?>
<head version="2.5">
  <host hostip="${attr(c.host?.ip ?? '127.0.0.1')}" port="${c.host?.port ?? 8008}"/>
  <debug start="false"/>
  <fileSystem xfs="false"/>
  <filter start="${excludes ? 'true' : 'false'}">${excludes}</filter>
  <inotify>
    <delete start="${c.deleteOn === false ? 'false' : 'true'}"/>
    <createFolder start="true"/><createFile start="false"/><closeWrite start="true"/>
    <moveFrom start="true"/><moveTo start="true"/><attrib start="false"/><modify start="false"/>
  </inotify>
  <sersync>
    <localpath watch="${attr(c.watch)}">
      ${remotes}
    </localpath>${moreSites}
    <rsync>
      <commonParams params="${attr(c.commonParams ?? '-artuz')}"/>
      <auth start="${c.auth ? 'true' : 'false'}" users="${attr(c.auth?.users ?? 'root')}" passwordfile="${attr(c.auth?.passwordFile ?? '/etc/rsync.pas')}"/>
      <userDefinedPort start="${c.port ? 'true' : 'false'}" port="${c.port ?? 874}"/>
      <timeout start="${c.timeoutSeconds ? 'true' : 'false'}" time="${c.timeoutSeconds ?? 100}"/>
      <ssh start="${c.ssh ? 'true' : 'false'}"${c.ssh ? ` options="${attr(c.ssh.options)}"` : ''}/>
    </rsync>
    <failLog path="${attr(c.failLog ?? '/tmp/rsync_fail_log.sh')}" timeToExecute="1"/>
    <crontab start="${c.crontab ? 'true' : 'false'}" schedule="${c.crontab?.minutes ?? 600}">
      <crontabfilter start="${cronEx ? 'true' : 'false'}">${cronEx}</crontabfilter>
    </crontab>
    <plugin start="${c.plugin ? 'true' : 'false'}" name="${attr(c.plugin ?? 'command')}"/>
  </sersync>
  ${tuning ? `<tuning ${tuning}/>` : ''}
  ${c.extra ?? ''}
</head>
`;
}

export async function writeConf(dir: string, c: ConfSpec): Promise<string> {
  const file = join(dir, 'confxml.xml');
  await writeFile(file, confXml(c));
  return file;
}

export interface SersyncProcess {
  readonly proc: BackgroundProcess;
  /** Parsed JSON log records so far. */
  records(): Record<string, unknown>[];
  waitForLog(pred: (r: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

let stateHome: string | null = null;

/**
 * Where test daemons keep their state unless a test says otherwise: a private directory of this test process, handed
 * over as systemd's StateDirectory= would (`$STATE_DIRECTORY`), so that tests run as root leave nothing in
 * /var/lib/sersync-ts. Removed when the test process exits.
 */
export function testStateDir(): string {
  if (stateHome === null) {
    const dir = mkdtempSync(join(tmpdir(), 'sersync-ts-state-'));
    stateHome = dir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return stateHome;
}

/** Starts `sersync-ts ARGS` and waits for its "watching" line. */
export async function startSersync(
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    waitReady?: boolean /** A command to run it through, e.g. setpriv as another user. */;
    via?: string[];
  } = {},
): Promise<SersyncProcess> {
  const [file, ...rest] = [...(opts.via ?? []), process.execPath, BIN, ...args] as [string, ...string[]];
  const proc = spawnBackground(file, rest, { env: { STATE_DIRECTORY: testStateDir(), ...process.env, ...opts.env } });
  const records = () =>
    proc
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  const waitForLog: SersyncProcess['waitForLog'] = (pred, what, timeoutMs = 20_000) =>
    waitFor(
      async () => {
        const hit = records().find(pred);
        if (hit) return hit;
        if (!proc.running()) throw new Error(`sersync-ts exited while waiting for ${what}:\n${proc.output()}`);
        return undefined;
      },
      { what: `${what}; output so far:\n${proc.output().slice(-3000)}`, timeoutMs },
    );
  const sp: SersyncProcess = {
    proc,
    records,
    waitForLog,
    stop: async (signal = 'SIGTERM') => (await proc.stop({ signal, timeoutMs: 20_000 })).code,
  };
  if (opts.waitReady !== false) {
    await waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('watching '), 'the "watching" log line');
  }
  return sp;
}

/** Runs `sersync-ts ARGS` to completion (for --check, errors). */
export function runSersync(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return runProcess(process.execPath, [BIN, ...args], {
    env: { STATE_DIRECTORY: testStateDir(), ...process.env, ...opts.env },
    timeoutMs: opts.timeoutMs ?? 30_000,
  });
}
