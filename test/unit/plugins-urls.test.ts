import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/parse-config.ts';
import type { RefreshCdnPluginConfig } from '../../src/config/model.ts';
import { fromUtf8 } from '../../src/core/paths.ts';
import { cdnPurgeUrl, cdnUrlRules } from '../../src/plugins/cdn-plugin.ts';
import { httpPluginBody, inotifyMask } from '../../src/plugins/http-plugin.ts';
import { encodePathBytes, formEncodeBytes } from '../../src/plugins/http-send.ts';

function cdnConfig(localpath: string): { cfg: RefreshCdnPluginConfig; watch: string } {
  const xml = `<head><sersync><localpath watch="/data/www"><remote ip="h" name="m"/></localpath>
<plugin start="true" name="refreshCDN"/></sersync>
<plugin name="refreshCDN">${localpath}</plugin></head>`;
  const config = parseConfig(Buffer.from(xml), 'test.xml');
  assert.ok(config.plugins.refreshCDN);
  return { cfg: config.plugins.refreshCDN, watch: config.watch };
}

const SHIPPED_CDN = `<localpath watch="/data0/htdocs/cms.xoyo.com/site/">
  <cdninfo domainname="ccms.chinacache.com" port="80" username="xxxx" passwd="xxxx"/>
  <sendurl base="http://pic.xoyo.com/cms"/>
  <regexurl regex="false" match="cms.xoyo.com/site([/a-zA-Z0-9]*).xoyo.com/images"/>
</localpath>`;

test('refreshCDN, regex off: base + the path without the plugin watch (trailing slash of watch stripped)', () => {
  const { cfg, watch } = cdnConfig(SHIPPED_CDN);
  const rules = cdnUrlRules(cfg, watch);
  assert.equal(cdnPurgeUrl('/data0/htdocs/cms.xoyo.com/site/a/b.jpg', false, rules), 'http://pic.xoyo.com/cms/a/b.jpg');
  assert.equal(cdnPurgeUrl('/data0/htdocs/cms.xoyo.com/site/a', true, rules), 'http://pic.xoyo.com/cms/a/', 'a directory ends in /');
});

test('refreshCDN, regex off: a path outside the plugin watch falls back to the sync watch, else no URL', () => {
  const { cfg, watch } = cdnConfig(SHIPPED_CDN);
  const rules = cdnUrlRules(cfg, watch);
  assert.equal(cdnPurgeUrl('/data/www/x.css', false, rules), 'http://pic.xoyo.com/cms/x.css');
  assert.equal(cdnPurgeUrl('/elsewhere/x.css', false, rules), null);
  assert.equal(cdnPurgeUrl('/data/wwwx/x.css', false, rules), null, 'a prefix of a name is not a parent directory');
});

test('refreshCDN, regex on: base + group 1 + what follows the match; no match, no URL', () => {
  const { cfg, watch } = cdnConfig(SHIPPED_CDN.replace('regex="false"', 'regex="true"'));
  const rules = cdnUrlRules(cfg, watch);
  // The example the shipped config was written for: /site/<sub>.xoyo.com/images/... → base/<sub>/...
  assert.equal(
    cdnPurgeUrl('/data0/htdocs/cms.xoyo.com/site/jx3.xoyo.com/images/index.html', false, rules),
    'http://pic.xoyo.com/cms/jx3/index.html',
  );
  assert.equal(
    cdnPurgeUrl('/data0/htdocs/cms.xoyo.com/site/jx3.xoyo.com/images/news', true, rules),
    'http://pic.xoyo.com/cms/jx3/news/',
  );
  assert.equal(cdnPurgeUrl('/data0/htdocs/cms.xoyo.com/site/other/x.html', false, rules), null);
});

test('refreshCDN, regex on: the match is searched, not anchored, and a regex without a group adds nothing', () => {
  const { cfg, watch } = cdnConfig(`<localpath watch="/w">
  <cdninfo domainname="cache" port="80" username="u" passwd="p"/>
  <sendurl base="http://cdn.example.com"/>
  <regexurl regex="true" match="/static"/></localpath>`);
  const rules = cdnUrlRules(cfg, watch);
  assert.equal(cdnPurgeUrl('/w/site/static/app.js', false, rules), 'http://cdn.example.com/app.js');
});

test('refreshCDN: names URLs cannot hold raw are percent-encoded byte by byte', () => {
  const { cfg, watch } = cdnConfig(SHIPPED_CDN);
  const rules = cdnUrlRules(cfg, watch);
  const root = '/data0/htdocs/cms.xoyo.com/site';
  assert.equal(cdnPurgeUrl(`${root}/a b#1?.jpg`, false, rules), 'http://pic.xoyo.com/cms/a%20b%231%3F.jpg');
  assert.equal(cdnPurgeUrl(`${root}/100%.png`, false, rules), 'http://pic.xoyo.com/cms/100%25.png');
  assert.equal(cdnPurgeUrl(fromUtf8(`${root}/café.png`), false, rules), 'http://pic.xoyo.com/cms/caf%C3%A9.png');
  const latin1 = `${root}/caf${String.fromCharCode(0xe9)}.png`; // not valid UTF-8 on disk
  assert.equal(cdnPurgeUrl(latin1, false, rules), 'http://pic.xoyo.com/cms/caf%E9.png');
});

test('http plugin: the mask sersync2 would have reported', () => {
  assert.equal(inotifyMask({ path: '/w/f', isDir: false, deleted: false }), 0x8);
  assert.equal(inotifyMask({ path: '/w/d', isDir: true, deleted: false }), 0x40000100);
  assert.equal(inotifyMask({ path: '/w/f', isDir: false, deleted: true }), 0x200);
  assert.equal(inotifyMask({ path: '/w/d', isDir: true, deleted: true }), 0x40000200);
});

test('http plugin: the form body, encoded byte by byte', () => {
  assert.equal(
    httpPluginBody({ path: '/data/www/a b&c=d.txt', isDir: false, deleted: false }, '/data/www'),
    'watchroot=%2Fdata%2Fwww&isdir=0&inotifyPath=%2Fdata%2Fwww%2Fa+b%26c%3Dd.txt&mask=8',
  );
  const body = httpPluginBody({ path: `/w/${String.fromCharCode(0xff)}`, isDir: true, deleted: true }, '/w');
  assert.equal(body, 'watchroot=%2Fw&isdir=1&inotifyPath=%2Fw%2F%FF&mask=1073742336');
  // A receiver decoding the form as UTF-8 gets the original text of a UTF-8 name.
  const utf8 = new URLSearchParams(httpPluginBody({ path: fromUtf8('/w/日本.txt'), isDir: false, deleted: false }, '/w'));
  assert.equal(utf8.get('inotifyPath'), '/w/日本.txt');
});

test('byte-wise encoders leave what is safe and encode every other byte', () => {
  assert.equal(encodePathBytes("/a-b_c.d~e/!$&'()*+,;=:@"), "/a-b_c.d~e/!$&'()*+,;=:@");
  assert.equal(encodePathBytes('\x00\n %"<>\\^`{|}'), '%00%0A%20%25%22%3C%3E%5C%5E%60%7B%7C%7D');
  assert.equal(formEncodeBytes('a*b-c.d_e f/+'), 'a*b-c.d_e+f%2F%2B');
});
