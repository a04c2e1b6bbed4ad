import { EXTRA_TEMPORARY_GLOBS } from '../watch/path-filter.ts';
import type { InotifyToggles, Tuning } from './model.ts';

/** sersync2's shipped <inotify> toggles: closeWrite, moveFrom, moveTo, createFolder and delete on. */
export const SHIPPED_TOGGLES: InotifyToggles = Object.freeze({
  delete: true,
  createFolder: true,
  createFile: false,
  closeWrite: true,
  moveFrom: true,
  moveTo: true,
  attrib: false,
  modify: false,
});

/** sersync2's shipped confxml.xml (test/fixtures/config/shipped-confxml.xml): what a missing element or attribute means. */
export const SHIPPED = {
  host: { ip: 'localhost', port: 8008 },
  inotify: SHIPPED_TOGGLES,
  commonParams: '-artuz',
  auth: { users: 'root', passwordFile: '/etc/rsync.pas' },
  port: 874,
  timeoutSeconds: 100,
  failLog: { path: '/tmp/rsync_fail_log.sh', minutes: 60, minutesWhenEmpty: 120 },
  crontabMinutes: 600,
  command: { prefix: '/bin/sh', suffix: '', ignoreError: true },
  cdnPort: 80,
} as const;

/** sersync-ts's own `<tuning>`, when the element is left out. */
export const TUNING_DEFAULTS: Tuning = {
  dotFiles: true,
  tempGlobs: EXTRA_TEMPORARY_GLOBS,
  quietMs: 100,
  maxWaitMs: 2000,
  maxChildrenPerDir: 100,
  maxPendingPaths: 20000,
  watcher: 'dirs',
  stateDir: null,
  progressMs: 10_000,
  maxDelete: null,
};
