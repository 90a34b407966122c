/**
 * tmem as a dependency, as a new user gets it: the `npm pack` tarball installed
 * into an empty project from the local npm cache (offline), with a PATH that
 * holds node, npm and sh but no compiler, make or python. The prebuilt addon
 * must load, and a swap must round-trip a region (every byte checked) through
 * the pool (lz4 and zstd) and the swap file. Then `tmem bench`'s C baselines
 * must build into XDG_CACHE_HOME, not into node_modules.
 *
 * Slow (builds the prebuild, packs, installs twice): its own file, generous
 * hang guards.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command; SIGKILL after `timeoutMs` (a hang guard, not a time assertion). */
function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function must(r: Run, what: string): Run {
  if (r.code !== 0)
    throw new Error(`${what} failed (exit ${r.code ?? r.signal}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  return r;
}

/** A bin folder with symlinks to node, npm and sh only: no g++, cc, make or python. */
function bareBin(dir: string): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const npm = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  if (!npm) throw new Error('npm is not on PATH');
  const npmCli = fs.realpathSync(npm); // npm-cli.js: runs with whichever node is first on PATH
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(npmCli, path.join(bin, 'npm'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
  return bin;
}

interface LockEntry {
  dev?: boolean;
  [k: string]: unknown;
}

/**
 * The consumer's package-lock.json: tmem from the tarball, and tmem's runtime
 * dependencies pinned as tmem's own lockfile pins them (the npm cache holds
 * their tarballs after `npm ci`, but not the registry's package documents an
 * unlocked install would ask for; a user's lockfile works the same way).
 */
function writeConsumerLock(proj: string, tgz: string, integrity: string): void {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const rel = `file:${path.relative(proj, tgz)}`;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: { tmem: rel } },
    'node_modules/tmem': {
      version: pkg.version,
      resolved: rel,
      integrity,
      hasInstallScript: true,
      license: pkg.license,
      os: pkg.os,
      engines: pkg.engines,
      bin: pkg.bin,
      dependencies: pkg.dependencies,
      optionalDependencies: pkg.optionalDependencies,
      peerDependencies: pkg.peerDependencies,
      peerDependenciesMeta: pkg.peerDependenciesMeta,
    },
  };
  for (const [k, v] of Object.entries(lock.packages)) if (k !== '' && !v.dev) packages[k] = v;
  fs.writeFileSync(
    path.join(proj, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, dependencies: { tmem: rel } }),
  );
  fs.writeFileSync(
    path.join(proj, 'package-lock.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2),
  );
}

// The consumer: a plain CommonJS program of the empty project.
const CONSUMER = `
const { open } = require('tmem');
const crypto = require('node:crypto');
const assert = require('node:assert');

// A page pattern with compressible, incompressible and same-filled pages.
function fill(bytes, seed) {
  const pages = bytes.length / 4096;
  for (let p = 0; p < pages; p++) {
    const page = bytes.subarray(p * 4096, (p + 1) * 4096);
    if (p % 3 === 0) page.set(Buffer.from(crypto.createHash('sha512').update(seed + ':' + p).digest('hex').repeat(32)));
    else if (p % 3 === 1) crypto.randomFillSync(page);
    else page.fill((p + seed.length) & 0xff);
  }
}

async function roundTrip(options, label) {
  const swap = await open(options);
  try {
    const region = swap.region('4MiB');
    const bytes = new Uint8Array(region.buffer);
    fill(bytes, label);
    const want = Buffer.from(bytes); // a copy outside the region
    await region.evict();
    const s = swap.stats();
    assert.ok(s.evictions > 0, label + ': nothing was evicted');
    let bad = 0;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== want[i]) bad++;
    assert.strictEqual(bad, 0, label + ': ' + bad + ' bytes differ after the round trip');
    const f = swap.stats().faults;
    assert.ok(f.pool + f.same + f.file > 0, label + ': no page came back through a fault');
    if (options.swapFile) assert.ok(s.swapFile && s.swapFile.writtenBack > 0 && s.swapFile.ioErrors === 0, label + ': the swap file was not used: ' + JSON.stringify(s.swapFile));
    await region.close();
  } finally {
    await swap.close();
  }
}

(async () => {
  const addon = require.resolve('tmem/package.json');
  await roundTrip({ residentLimit: '1MiB', poolLimit: '64MiB' }, 'lz4');
  await roundTrip({ residentLimit: '1MiB', poolLimit: '64MiB', compressor: 'zstd' }, 'zstd');
  await roundTrip({ residentLimit: '1MiB', poolLimit: '256KiB', swapFile: { path: process.argv[2], size: '16MiB' } }, 'swapfile');
  // Package shape: internals are not importable, the entry points are.
  assert.throws(() => require('tmem/dist/lib/native'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
  assert.strictEqual(require('tmem/package.json').name, 'tmem');
  assert.throws(() => require('tmem/prometheus').register({ stats() { return {}; } }), { code: 'ERR_TMEM_NO_PROM_CLIENT' });
  assert.throws(() => require.resolve('chart.js'), { code: 'MODULE_NOT_FOUND' });
  assert.ok(require('tmem').probe().ok);
  let zstdNapi = 'absent';
  try { require('zstd-napi/binding'); zstdNapi = 'loaded'; } catch {}
  console.log(JSON.stringify({ ok: true, pkg: addon, zstdNapi }));
})().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
`;

test('the npm pack tarball installs offline with no compiler on PATH and round-trips a region', async (t) => {
  t.timeout(600_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-pkg-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // The prebuild for this machine, then the tarball (its files are what we ship).
  must(
    await run(process.execPath, [path.join(root, 'scripts', 'prebuild.js'), process.arch], {
      cwd: root,
      timeoutMs: 300_000,
    }),
    'npm run prebuilds',
  );
  const packed = must(
    await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], {
      cwd: root,
      timeoutMs: 120_000,
    }),
    'npm pack',
  );
  const info = (
    JSON.parse(packed.stdout) as {
      filename: string;
      integrity: string;
      size: number;
      unpackedSize: number;
      files: { path: string }[];
    }[]
  )[0];
  const files = info.files.map((f) => f.path);
  t.true(files.includes(`prebuilds/linux-${process.arch}/tmem.glibc.node`), 'ships the prebuilt addon');
  t.false(
    files.some((f) => f.startsWith('build/')),
    'no local build/ in the tarball',
  );
  t.false(
    files.some((f) => /^dist\/test\/|^test\//.test(f)),
    'no tests in the tarball',
  );
  t.false(
    files.some((f) => /\.png$/.test(f)),
    'no screenshots in the tarball',
  );
  t.true(files.includes('LICENSE') && files.includes('CHANGELOG.md'));
  t.true(files.includes('dist/lib/cli/vendor/chart.umd.min.js'), 'Chart.js inlined for the bench report');
  t.false(
    files.some((f) => f.startsWith('native/test/')),
    'no native tests',
  );
  const dts = fs.readFileSync(path.join(root, 'dist', 'lib', 'swap.d.ts'), 'utf8');
  t.false(/_start|_request|_abandon/.test(dts), 'no @internal members in the declarations');
  t.log(
    `tarball ${info.filename}: ${info.files.length} files, ${info.size} bytes packed, ${info.unpackedSize} unpacked`,
  );

  // An empty project, a PATH without compilers, the local npm cache only.
  const proj = path.join(tmp, 'consumer');
  fs.mkdirSync(proj);
  fs.writeFileSync(
    path.join(proj, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }),
  );
  const bin = bareBin(tmp);
  const env: NodeJS.ProcessEnv = {
    HOME: os.homedir(),
    PATH: bin,
    npm_config_cache: spawnSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8' }).stdout.trim(),
  };
  for (const tool of ['g++', 'cc', 'gcc', 'make', 'python3', 'python']) {
    t.is(spawnSync(tool, ['--version'], { env }).error?.message.includes('ENOENT'), true, `${tool} is not reachable`);
  }
  const tgz = path.join(tmp, info.filename);
  writeConsumerLock(proj, tgz, info.integrity);
  must(
    await run(
      path.join(bin, 'npm'),
      ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
      { cwd: proj, env, timeoutMs: 300_000 },
    ),
    'npm ci --offline --ignore-scripts',
  );
  t.false(fs.existsSync(path.join(proj, 'node_modules', 'tmem', 'build')), 'nothing was compiled');

  fs.writeFileSync(path.join(proj, 'consumer.js'), CONSUMER);
  const r = must(
    await run(path.join(bin, 'node'), ['consumer.js', path.join(tmp, 'swapfile')], {
      cwd: proj,
      env,
      timeoutMs: 180_000,
    }),
    'the consumer program',
  );
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { ok: boolean; zstdNapi: string };
  t.true(out.ok);
  t.log(`zstd-napi in the consumer: ${out.zstdNapi} (zstd went through the system libzstd)`);

  // Again with install scripts on: node-gyp-build finds the prebuild and compiles
  // nothing; zstd-napi (optional) cannot build here and must not fail the install.
  must(
    await run(path.join(bin, 'npm'), ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: proj,
      env,
      timeoutMs: 300_000,
    }),
    'npm ci --offline (scripts on)',
  );
  t.false(fs.existsSync(path.join(proj, 'node_modules', 'tmem', 'build')), 'the install script compiled nothing');
  must(
    await run(path.join(bin, 'node'), ['consumer.js', path.join(tmp, 'swapfile2')], {
      cwd: proj,
      env,
      timeoutMs: 180_000,
    }),
    'the consumer program (scripts on)',
  );

  // tmem bench's C baselines: built with cmake (full PATH) into XDG_CACHE_HOME, not into node_modules.
  const cache = path.join(tmp, 'cache');
  const installed = path.join(proj, 'node_modules', 'tmem');
  const script = `const b = require(${JSON.stringify(path.join(installed, 'dist', 'lib', 'cli', 'baselines.js'))});
    const why = b.ensureBaselinePrograms(() => {});
    console.log(JSON.stringify({ why, dir: b.binDir() }));`;
  const cmake = spawnSync('cmake', ['--version']);
  if (cmake.error) {
    t.log('cmake is not installed: the baselines build is not checked');
    return;
  }
  const b = must(
    await run(process.execPath, ['-e', script], {
      cwd: proj,
      env: { ...process.env, XDG_CACHE_HOME: cache },
      timeoutMs: 300_000,
    }),
    'building the bench baselines',
  );
  const res = JSON.parse(b.stdout.trim().split('\n').pop() ?? '{}') as { why: string | null; dir: string };
  t.is(res.why, null);
  t.true(res.dir.startsWith(path.join(cache, 'tmem') + path.sep), `baselines in the cache: ${res.dir}`);
  for (const prog of ['uffd_min_handler', 'kernel_swapin']) t.true(fs.existsSync(path.join(res.dir, prog)), prog);
  t.false(fs.existsSync(path.join(installed, 'build-cmake')), 'nothing built inside node_modules');
});
