#!/usr/bin/env node
/**
 * `npm run prebuilds` (and `prepack`; not `prebuild`, which npm would run before every `npm run build`): builds the prebuilt addons that the
 * package ships, with prebuildify, into prebuilds/linux-<arch>/tmem.glibc.node.
 * node-gyp-build loads them at run time (lib/native.ts), so that installing the
 * package needs no compiler, python or network.
 *
 *   node scripts/prebuild.js            linux-x64, and linux-arm64 when Debian's
 *                                       cross compiler aarch64-linux-gnu-g++ is on PATH
 *   node scripts/prebuild.js x64 arm64  just those (an arch without its compiler fails)
 *
 * One N-API build serves every Node version (NAPI_VERSION in binding.gyp).
 * Each arch is built in a scratch copy of the sources: node-gyp rebuild there
 * leaves this tree's build/ (the developer's own build, which node-gyp-build
 * prefers) alone, and an arm64 build never lands in build/Release.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');

/** What each arch builds with: node-gyp's --arch, the compilers and strip. */
const TOOLCHAINS = {
  x64: { cross: 'x86_64-linux-gnu-' },
  arm64: { cross: 'aarch64-linux-gnu-' },
};

function onPath(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

function toolchain(arch) {
  const t = TOOLCHAINS[arch];
  if (!t) throw new Error(`prebuild: unknown arch '${arch}' (known: ${Object.keys(TOOLCHAINS).join(', ')})`);
  if (arch === process.arch) return { env: {}, strip: 'strip', native: true };
  const cxx = `${t.cross}g++`;
  if (!onPath(cxx)) return null;
  return {
    env: { CC: `${t.cross}gcc`, CXX: cxx, LINK: cxx, AR: `${t.cross}ar` },
    strip: `${t.cross}strip`,
    native: false,
  };
}

function build(arch, tc) {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `tmem-prebuild-${arch}-`));
  try {
    fs.copyFileSync(path.join(root, 'binding.gyp'), path.join(scratch, 'binding.gyp'));
    fs.copyFileSync(path.join(root, 'package.json'), path.join(scratch, 'package.json'));
    fs.cpSync(path.join(root, 'native'), path.join(scratch, 'native'), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(scratch, 'node_modules'), 'dir');
    const bin = require.resolve('prebuildify/bin.js', { paths: [root] });
    // The running Node's headers (N-API is the same for every version): no download.
    const args = [
      bin,
      '--napi',
      '--target',
      process.versions.node,
      '--strip',
      '--strip-bin',
      tc.strip,
      '--tag-libc',
      '--arch',
      arch,
      '--out',
      root,
      scratch,
    ];
    console.log(`prebuild: linux-${arch}${tc.native ? '' : ` (cross: ${tc.env.CXX})`}`);
    const env = { ...process.env, ...tc.env };
    const nodedir = path.resolve(process.execPath, '..', '..');
    if (fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = nodedir;
    const r = spawnSync(process.execPath, args, { stdio: 'inherit', env });
    if (r.status !== 0)
      throw new Error(`prebuild: prebuildify for linux-${arch} failed (exit ${r.status ?? r.signal})`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

function main() {
  if (process.platform !== 'linux') throw new Error('prebuild: tmem builds its addons on Linux only');
  const asked = process.argv.slice(2);
  const arches = asked.length ? asked : Object.keys(TOOLCHAINS);
  for (const arch of arches) {
    const tc = toolchain(arch);
    if (!tc) {
      const msg = `prebuild: no cross compiler for linux-${arch} (${TOOLCHAINS[arch].cross}g++; Debian: apt-get install g++-${TOOLCHAINS[arch].cross.slice(0, -1).replace(/_/g, '-')})`;
      if (asked.length) throw new Error(msg);
      console.log(`${msg}: skipped`);
      continue;
    }
    build(arch, tc);
  }
  for (const dir of fs.readdirSync(path.join(root, 'prebuilds'))) {
    for (const f of fs.readdirSync(path.join(root, 'prebuilds', dir))) {
      const st = fs.statSync(path.join(root, 'prebuilds', dir, f));
      console.log(`prebuild: prebuilds/${dir}/${f} ${st.size} bytes`);
    }
  }
}

try {
  main();
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
