#!/usr/bin/env node
/**
 * Part of the build (`prepare`): copies Chart.js's minified UMD build (a
 * devDependency, MIT, its licence banner kept) to dist/lib/cli/vendor/, where
 * `tmem bench --report` inlines it into the page. Services that use tmem so
 * never install chart.js; the bench report still needs no network.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
let src;
try {
  src = path.join(path.dirname(require.resolve('chart.js', { paths: [root] })), 'chart.umd.min.js');
} catch {
  console.error(
    'vendor-chartjs: chart.js is not installed (a devDependency: run `npm install` in the tmem repository)',
  );
  process.exit(1);
}
const dir = path.join(root, 'dist', 'lib', 'cli', 'vendor');
fs.mkdirSync(dir, { recursive: true });
fs.copyFileSync(src, path.join(dir, 'chart.umd.min.js'));
fs.copyFileSync(path.join(path.dirname(src), '..', 'LICENSE.md'), path.join(dir, 'chart.js.LICENSE.md'));
