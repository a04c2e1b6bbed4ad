import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import type { Remote } from '../../src/config/model.ts';
import type { ProcessResult, ProcessRunner, RunOptions } from '../../src/sync/process-runner.ts';
import type { CommandContext } from '../../src/sync/rsync-command.ts';
import { SshMaster } from '../../src/sync/ssh-master.ts';
import { makeTempDir } from '../helpers/tmp.ts';
import { FakeClock } from './support/fake-clock.ts';
import { PLAIN_RSYNC } from './support/rsync-fixtures.ts';

const remote: Remote = { kind: 'ssh', ip: '10.0.0.2', name: '/srv/www', id: '10.0.0.2:/srv/www', line: 1 };

function context(base: string | null, options: string[] = []): CommandContext {
  return {
    watch: '/data/www',
    remote,
    rsync: { ...PLAIN_RSYNC, ssh: { enabled: true, options } },
    deletes: true,
    filters: [],
    defaultTimeoutSeconds: 600,
    sshSocketBase: base,
  };
}

/** A runner whose ssh masters run until aborted or until the test ends them with `exit(code)`. */
class ScriptedSsh implements ProcessRunner {
  readonly calls: { args: readonly string[]; end: (r: Partial<ProcessResult>) => void }[] = [];
  run(_file: string, args: readonly string[], opts: RunOptions = {}): Promise<ProcessResult> {
    return new Promise((resolve) => {
      const end = (r: Partial<ProcessResult>) => resolve({ stdout: '', stderr: '', durationMs: 0, ...r });
      if (args.includes('-O')) return end({ exitCode: 0 });
      opts.signal?.addEventListener('abort', () => end({ signal: 'SIGTERM' }));
      this.calls.push({ args, end });
    });
  }
  get masters() {
    return this.calls;
  }
}

const tick = () => new Promise((r) => setImmediate(r));
/** Lets the master's file system steps (readdir, unlink) run until `done` holds; real I/O, so no fixed tick count. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !done(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(done(), 'the master did not get there');
}

function recordingLog() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg) };
}

test('no master where the runs share no connection: not ssh, no socket path, <ssh options> with Control…', () => {
  const deps = { runner: new ScriptedSsh(), clock: new FakeClock(), log: pino({ level: 'silent' }) };
  assert.equal(SshMaster.for(context(null), deps), null);
  assert.equal(SshMaster.for(context('/st/ssh-0123', ['-o', 'ControlPath=/x']), deps), null);
  assert.equal(SshMaster.for({ ...context('/st/ssh-0123'), remote: { ...remote, kind: 'daemon' } }, deps), null);
});

test('a master opens at start, the runs join its socket, it reopens with a growing pause and closes at stop', async () => {
  const dir = await makeTempDir('ssh-master-');
  const runner = new ScriptedSsh();
  const clock = new FakeClock();
  const { log, warnings } = recordingLog();
  const master = SshMaster.for(context(join(dir, 'ssh-0123456789abcdef')), { runner, clock, log, pid: 4242 });
  assert.ok(master);
  assert.match(master.socket, /\/ssh-0123456789abcdef-39u-[0-9a-f]{8}$/);
  assert.equal(master.contextFor(context(null)).sshControlPath, master.socket);
  master.start();
  await until(() => !(runner.masters.length === 0));
  assert.equal(runner.masters.length, 1);
  const args = runner.masters[0]?.args ?? [];
  assert.ok(args.includes(`ControlPath=${master.socket}`) && args.includes('-N') && args.at(-1) === '10.0.0.2');

  // The connection drops at once: retried after 2 s, then 4 s; one warning for the streak.
  runner.masters[0]?.end({ exitCode: 255, stderr: 'ssh: connect to host 10.0.0.2 port 22: Connection refused\n' });
  await until(() => clock.pendingTimers === 1);
  assert.equal(runner.masters.length, 1);
  clock.advance(1999);
  await tick();
  assert.equal(runner.masters.length, 1, 'not before 2 s');
  clock.advance(1);
  await until(() => !(runner.masters.length === 1));
  assert.equal(runner.masters.length, 2);
  runner.masters[1]?.end({ exitCode: 255, stderr: 'Connection refused\n' });
  await until(() => clock.pendingTimers === 1);
  clock.advance(3999);
  await tick();
  assert.equal(runner.masters.length, 2, 'the second pause is longer');
  clock.advance(1);
  await until(() => !(runner.masters.length === 2));
  assert.equal(runner.masters.length, 3);
  assert.equal(warnings().length, 1);
  assert.match(
    warnings()[0] ?? '',
    /shared ssh connection to 10\.0\.0\.2:\/srv\/www ended \(exit 255: ssh: connect to host .*refused\); rsync runs connect on their own/,
  );

  // One that held for minutes and then dropped: warned again, and the pause starts over at 2 s.
  clock.advance(120_000);
  runner.masters[2]?.end({ exitCode: 255, stderr: 'Timeout, server not responding.\n' });
  await until(() => clock.pendingTimers === 1);
  assert.equal(warnings().length, 2);
  clock.advance(2000);
  await until(() => !(runner.masters.length === 3));
  assert.equal(runner.masters.length, 4);

  await master.stop();
  assert.equal(clock.pendingTimers, 0);
  assert.equal(runner.masters.length, 4, 'a stopped master is not reopened');
});

test('a stop during the pause between two tries ends it at once', async () => {
  const dir = await makeTempDir('ssh-master-');
  const runner = new ScriptedSsh();
  const clock = new FakeClock();
  const master = SshMaster.for(context(join(dir, 'ssh-0123456789abcdef')), { runner, clock, log: pino({ level: 'silent' }) });
  assert.ok(master);
  master.start();
  await until(() => !(runner.masters.length === 0));
  runner.masters[0]?.end({ exitCode: 255 });
  await until(() => clock.pendingTimers === 1);
  assert.equal(clock.pendingTimers, 1);
  await master.stop();
  assert.equal(clock.pendingTimers, 0);
  assert.equal(runner.masters.length, 1);
});

test("masters left by a daemon that is gone are told to exit; a running daemon's and this one's are left alone", async () => {
  const dir = await makeTempDir('ssh-master-');
  const base = join(dir, 'ssh-0123456789abcdef');
  const gone = `${base}-${(1001).toString(36)}-aaaa`;
  const running = `${base}-${(1002).toString(36)}-bbbb`;
  const mine = `${base}-${(1003).toString(36)}-cccc`;
  const otherSite = join(dir, `ssh-fedcba9876543210-${(1001).toString(36)}-dddd`);
  for (const f of [gone, running, mine, otherSite]) await writeFile(f, '');
  const runner = new ScriptedSsh();
  const exits: string[][] = [];
  const recording: ProcessRunner = {
    run: (file, args, opts) => {
      if (args.includes('-O')) exits.push([...args]);
      return runner.run(file, args, opts);
    },
  };
  const master = SshMaster.for(context(base), {
    runner: recording,
    clock: new FakeClock(),
    log: pino({ level: 'silent' }),
    pid: 1003,
    alive: (pid) => pid === 1002,
  });
  assert.ok(master);
  master.start();
  await until(() => !(runner.masters.length === 0));
  assert.equal(exits.length, 1);
  assert.ok(exits[0]?.includes(`ControlPath=${gone}`) && exits[0]?.includes('exit') && exits[0]?.at(-1) === '10.0.0.2');
  assert.ok(exits[0]?.includes('ControlMaster=no') && !exits[0]?.includes('ControlMaster=yes'), 'asked as a client');
  const left = await readdir(dir);
  assert.ok(!left.includes(gone.slice(dir.length + 1)), 'the leftover socket is removed');
  for (const f of [running, mine, otherSite]) assert.ok(left.includes(f.slice(dir.length + 1)), f);
  await master.stop();
});
