import { type BigIntStats, lstat as lstatCallback, type Stats } from 'node:fs';

/**
 * lstat through the callback API: on the event path (a copied file costs one) it takes about half the CPU of
 * `fs/promises` lstat, measured here over 24k files (57–73 ms user against 103–136 ms).
 */
export function lstatFast(path: Buffer, opts: { bigint: true }): Promise<BigIntStats>;
export function lstatFast(path: Buffer): Promise<Stats>;
export function lstatFast(path: Buffer, opts?: { bigint: true }): Promise<Stats | BigIntStats> {
  return new Promise((resolve, reject) => {
    lstatCallback(path, { bigint: opts?.bigint ?? false }, (err, st) => (err ? reject(err) : resolve(st)));
  });
}
