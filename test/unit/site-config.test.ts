import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/parse-config.ts';
import { sameSiteConfig, siteConfigOf } from '../../src/config/site-config.ts';
import type { Config } from '../../src/config/model.ts';

const site = (watch: string, module: string) => `<localpath watch="${watch}"><remote ip="10.0.0.2" name="${module}"/></localpath>`;
const parse = (sites: string[], head = ''): Config =>
  parseConfig(Buffer.from(`<head>${head}<sersync>\n${sites.join('\n')}\n</sersync></head>`), 'conf.xml', { cwd: '/' });
/** The config that site `watch` of `config` runs with. */
const of = (config: Config, watch: string): Config => {
  const s = config.sites.find((x) => x.watch === watch);
  assert.ok(s, watch);
  return siteConfigOf(config, s);
};

test('siteConfigOf: the shared settings with one site as watch and remotes', () => {
  const config = parse([site('/a', 'ma'), site('/b', 'mb')], '<tuning quietMs="250"/>');
  const b = of(config, '/b');
  assert.deepEqual([b.watch, b.remotes.map((r) => r.id), b.sites.length, b.tuning.quietMs], ['/b', ['10.0.0.2::mb'], 1, 250]);
  assert.ok(Object.isFrozen(b));
});

test('sameSiteConfig: a site that only moved in the file, or a new status port, is the same; a remote or a shared setting changed is not', () => {
  const before = parse([site('/a', 'ma'), site('/b', 'mb'), site('/c', 'mc')]);
  const dropped = parse([site('/a', 'ma'), site('/c', 'mc')], '<host hostip="127.0.0.1" port="9000"/>');
  assert.equal(sameSiteConfig(of(before, '/c'), of(dropped, '/c')), true);
  assert.equal(sameSiteConfig(of(before, '/a'), of(dropped, '/a')), true);
  const remoteChanged = parse([site('/a', 'other'), site('/c', 'mc')]);
  assert.equal(sameSiteConfig(of(before, '/a'), of(remoteChanged, '/a')), false);
  const sharedChanged = parse([site('/a', 'ma'), site('/c', 'mc')], '<tuning quietMs="250"/>');
  assert.equal(sameSiteConfig(of(before, '/c'), of(sharedChanged, '/c')), false);
});
