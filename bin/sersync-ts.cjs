#!/usr/bin/env node
// Plain old JavaScript on purpose: an old Node must be able to parse this file to print one clear line.
'use strict';
var need = [22, 22];
var have = process.versions.node.split('.').map(Number);
if (have[0] < need[0] || (have[0] === need[0] && have[1] < need[1])) {
  process.stderr.write('sersync-ts: needs Node.js >= ' + need.join('.') + ', this is ' + process.version + '\n');
  process.exit(69);
}
var path = require('path');
var url = require('url');
var entry = url.pathToFileURL(path.join(__dirname, '..', 'dist', 'cli', 'main.js')).href;
// import() is wrapped so that Node versions without it still parse this file.
new Function('u', 'return import(u)')(entry).then(
  function (m) {
    return m.main(process.argv.slice(2)).then(function (code) {
      process.exitCode = code;
      // Pending handles (watchers, timers) are closed by main; exit explicitly so a stray one cannot keep us alive.
      setImmediate(function () { process.exit(code); });
    });
  },
  function (err) {
    process.stderr.write('sersync-ts: cannot load ' + entry + ': ' + (err && err.message) + ' (run npm run build)\n');
    process.exit(70);
  }
);
