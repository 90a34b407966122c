/**
 * The baselines of `tmem bench`, run as child processes (their last stdout line
 * is JSON):
 *
 *   build-cmake/bench/native/uffd_min_handler   the minimal C userfaultfd handler
 *   build-cmake/bench/native/kernel_swapin      the kernel's zram / swap file pageout, swap-in and
 *                                               sequential read-back; with --steady-limit-pages
 *                                               the fill and steady state in a memory cgroup (root)
 *
 * When the programs are missing they are built with cmake (the targets only)
 * into a user cache directory, never into the package (node_modules may be
 * read-only, and is replaced on every install):
 *
 *   $XDG_CACHE_HOME/tmem/baselines-<version>   (default ~/.cache/tmem/...)
 *
 * A developer's `npm run build:native` (build-cmake/bench/native in the
 * repository) is used when it is there. When building is not possible every
 * baseline says so, with the command to run.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Summary } from './samples';

/** The package root (holds package.json and bench/native). */
export function packageRoot(): string {
  let d = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(d, 'package.json')) && fs.existsSync(path.join(d, 'lib'))) return d;
    d = path.dirname(d);
  }
  return path.resolve(__dirname, '..', '..', '..');
}

const PROGRAMS = ['uffd_min_handler', 'kernel_swapin'];

function packageVersion(): string {
  try {
    return (
      (JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ??
      '0'
    );
  } catch {
    return '0';
  }
}

/** Where `tmem bench` builds its baselines: $XDG_CACHE_HOME/tmem (or ~/.cache/tmem)/baselines-<version>. */
export function cacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'tmem', `baselines-${packageVersion()}`);
}

/** Newest modification time of the baseline sources (bench/native), ms; 0 when they are not in the package. */
function sourcesMtime(): number {
  const dir = path.join(packageRoot(), 'bench', 'native');
  try {
    return Math.max(0, ...fs.readdirSync(dir).map((f) => fs.statSync(path.join(dir, f)).mtimeMs));
  } catch {
    return 0;
  }
}

/** The programs are all in `dir` and none is older than its sources. */
function upToDate(dir: string): boolean {
  const src = sourcesMtime();
  return PROGRAMS.every((p) => {
    try {
      return fs.statSync(path.join(dir, p)).mtimeMs >= src;
    } catch {
      return false;
    }
  });
}

/**
 * The folder holding the baseline programs: the repository's build-cmake when
 * built there from the current sources, else the cache.
 */
export function binDir(): string {
  const dev = path.join(packageRoot(), 'build-cmake', 'bench', 'native');
  if (upToDate(dev)) return dev;
  return path.join(cacheDir(), 'build', 'bench_native');
}

/**
 * Makes sure the baseline programs exist, building them with cmake into
 * cacheDir() if needed. Returns null when they are there, else why they are
 * not (with what to run).
 */
export function ensureBaselinePrograms(say: (s: string) => void): string | null {
  const dir = binDir();
  if (upToDate(dir)) return null;
  // Missing, or older than their sources (a cache built by an earlier tmem): cmake rebuilds what changed.
  const missing = PROGRAMS.filter((p) => !fs.existsSync(path.join(dir, p)));
  if (missing.length === 0) missing.push(...PROGRAMS.map((p) => `${p} (out of date)`));
  const root = packageRoot();
  const sources = path.join(root, 'bench', 'native');
  const how = 'install cmake and a C++17 compiler (Debian: apt-get install cmake g++) and run `tmem bench` again';
  if (!fs.existsSync(path.join(sources, 'CMakeLists.txt'))) {
    return `baseline programs not built (${missing.join(', ')}) and their sources are not in this package`;
  }
  const cmake = spawnSync('cmake', ['--version'], { encoding: 'utf8' });
  if (cmake.error || cmake.status !== 0) {
    return `baseline programs not built (${missing.join(', ')}) and cmake is not installed: ${how}`;
  }
  const cache = cacheDir();
  say(`baseline programs missing (${missing.join(', ')}): building them with cmake in ${cache} ...`);
  // bench/native is a subdirectory project: a two-line top level pulls it in.
  const top = path.join(cache, 'src');
  fs.mkdirSync(top, { recursive: true });
  fs.writeFileSync(
    path.join(top, 'CMakeLists.txt'),
    'cmake_minimum_required(VERSION 3.16)\nproject(tmem_baselines CXX)\n' +
      `add_subdirectory(${JSON.stringify(sources)} bench_native)\n`,
  );
  const build = path.join(cache, 'build');
  const steps: string[][] = [
    ['-S', top, '-B', build, '-DCMAKE_BUILD_TYPE=Release'],
    ['--build', build, '-j2', '--target', ...PROGRAMS],
  ];
  for (const args of steps) {
    const r = spawnSync('cmake', args, { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) {
      const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' | ');
      return `baseline programs not built: cmake ${args[0]} failed (${tail}); ${how}`;
    }
  }
  const out = path.join(build, 'bench_native');
  const still = PROGRAMS.filter((p) => !fs.existsSync(path.join(out, p)));
  return still.length === 0
    ? null
    : `baseline programs not built (${still.join(', ')} missing after cmake in ${cache})`;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[], timeoutMs: number): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ status: null, signal: null, stdout, stderr: stderr + e.message });
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

function lastJson(r: ChildResult): Record<string, unknown> | null {
  const lines = r.stdout.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  if (!last.startsWith('{')) return null;
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function why(r: ChildResult, name: string): string {
  const text = `${r.stderr}\n${r.stdout}`
    .trim()
    .split('\n')
    .filter((l) => l.trim().length > 0);
  return `${name} failed (status ${r.status}${r.signal ? `, signal ${r.signal}` : ''}): ${text.slice(-1)[0] ?? 'no output'}`;
}

export type Quantiles = Omit<Summary, 'max'> & { max?: number };
export interface MinHandlerResult {
  skipped?: string;
  mode?: 'same_cpu' | 'cross_cpu';
  summary?: Quantiles;
}

/** uffd_min_handler in one mode (same CPU when tmem is pinned, else cross CPU), random order. */
export async function minHandler(
  pages: number,
  seed: number,
  mode: 'same_cpu' | 'cross_cpu',
): Promise<MinHandlerResult> {
  const bin = path.join(binDir(), 'uffd_min_handler');
  if (!fs.existsSync(bin)) return { skipped: `${bin} is missing: run \`npm run build:native\`` };
  const r = await run(
    bin,
    [
      mode === 'same_cpu' ? '--same-cpu' : '--cross-cpu',
      '--pages',
      String(pages),
      '--warmup',
      String(Math.min(2000, pages)),
      '--seed',
      String(seed),
    ],
    120_000,
  );
  const j = lastJson(r);
  if (r.status !== 0 || !j) {
    const text = `${r.stderr}`;
    if (/userfaultfd unavailable/.test(text))
      return {
        skipped: `the minimal C handler cannot open a userfaultfd (${text.trim().split('\n')[0]}): run as root, or set vm.unprivileged_userfaultfd=1`,
      };
    return { skipped: why(r, 'uffd_min_handler') };
  }
  const s = j[mode] as Quantiles | null;
  if (!s) return { skipped: `uffd_min_handler measured no ${mode.replace('_', ' ')} case (only one CPU allowed?)` };
  return { mode, summary: s };
}

export interface KernelPass extends Quantiles {
  majflt: number;
  major_p50?: number;
}
export interface KernelResult {
  skipped?: string;
  backend?: 'zram' | 'swapfile';
  algorithm?: string;
  pages?: number;
  swappedOut?: number;
  random?: KernelPass;
  sequential?: KernelPass;
  pageoutUsPerPage?: number;
  pageoutPagesPerSecond?: number;
  bytesPerPage?: number;
  bytesPerZramPage?: number;
  zramPagesStored?: number;
  /** Sequential read-back of the swapped-out pages (4 KiB copies, front to back), us per page; and of the same pages resident. */
  readback?: { pages: number; usPerPage: number; plainUsPerPage: number };
}

/** kernel_swapin --backend zram|swapfile on the corpus file (root). */
export async function kernelSwapin(o: {
  backend: 'zram' | 'swapfile';
  corpusFile: string;
  algorithm?: string;
  dir?: string;
  seed: number;
}): Promise<KernelResult> {
  const label = o.backend === 'zram' ? 'the kernel zram baseline' : 'the kernel swap file baseline';
  if (!isRoot())
    return {
      skipped: `not root: ${label} needs root (swapon${o.backend === 'zram' ? ', zram hot_add' : ''}); run as root to measure it`,
    };
  if (o.backend === 'zram' && !fs.existsSync('/sys/class/zram-control')) {
    return {
      skipped: `no zram on this kernel (/sys/class/zram-control is missing; modprobe zram): ${label} not measured`,
    };
  }
  const bin = path.join(binDir(), 'kernel_swapin');
  if (!fs.existsSync(bin)) return { skipped: `${bin} is missing: run \`npm run build:native\`` };
  const args = ['--backend', o.backend, '--corpus', o.corpusFile, '--seed', String(o.seed)];
  if (o.algorithm) args.push('--algorithm', o.algorithm);
  if (o.dir) args.push('--dir', o.dir);
  const r = await run(bin, args, 300_000);
  const j = lastJson(r);
  if (r.status === 2)
    return {
      skipped: `${label} not available here: ${`${r.stderr}\n${r.stdout}`.trim().split('\n').filter(Boolean).pop()}`,
    };
  if (r.status !== 0 || !j) return { skipped: why(r, `kernel_swapin --backend ${o.backend}`) };
  const us = j.pageout_us_per_page as number;
  return {
    backend: o.backend,
    algorithm: j.algorithm as string,
    pages: j.pages as number,
    swappedOut: j.swapped_out as number,
    random: j.random as KernelPass,
    sequential: j.sequential as KernelPass,
    pageoutUsPerPage: us,
    pageoutPagesPerSecond: us > 0 ? Math.round(1e6 / us) : undefined,
    bytesPerPage: j.bytes_per_page as number | undefined,
    bytesPerZramPage: j.bytes_per_zram_page as number | undefined,
    zramPagesStored: j.zram_pages_stored as number | undefined,
    ...(j.readback ? { readback: readbackOf(j.readback as Record<string, number>) } : {}),
  };
}

function readbackOf(r: Record<string, number>): KernelResult['readback'] {
  return { pages: r.pages, usPerPage: r.us_per_page, plainUsPerPage: r.plain_us_per_page };
}

export interface KernelSteadyResult {
  skipped?: string;
  algorithm?: string;
  /** How the limit was set: 'v1 memory.limit_in_bytes' or 'v2 memory.max'. */
  cgroup?: string;
  limitPages?: number;
  /** The cgroup's limit: what the toucher had charged before the fill + limitPages pages. */
  limitBytes?: number;
  /** The corpus written into a fresh mapping in the cgroup, MiB/s. */
  fillMiBs?: number;
  /** Every page touched once in random order, each timed (us). */
  steady?: KernelPass;
}

/**
 * kernel_swapin --backend zram --steady-limit-pages N on the corpus file
 * (root): the fill and the random touches in a memory cgroup holding N pages,
 * created and removed by the program, zram the swap device.
 */
export async function kernelSteady(o: {
  corpusFile: string;
  limitPages: number;
  algorithm?: string;
  seed: number;
}): Promise<KernelSteadyResult> {
  const label = 'the kernel steady-state baseline (zram + a memory cgroup)';
  if (!isRoot())
    return {
      skipped: `not root: ${label} needs root (swapon, zram hot_add, a memory cgroup); run as root to measure it`,
    };
  if (!fs.existsSync('/sys/class/zram-control'))
    return {
      skipped: `no zram on this kernel (/sys/class/zram-control is missing; modprobe zram): ${label} not measured`,
    };
  const bin = path.join(binDir(), 'kernel_swapin');
  if (!fs.existsSync(bin)) return { skipped: `${bin} is missing: run \`npm run build:native\`` };
  const args = [
    '--backend',
    'zram',
    '--corpus',
    o.corpusFile,
    '--seed',
    String(o.seed),
    '--steady-limit-pages',
    String(o.limitPages),
  ];
  if (o.algorithm) args.push('--algorithm', o.algorithm);
  const r = await run(bin, args, 300_000);
  const j = lastJson(r);
  if (r.status === 2)
    return {
      skipped: `${label} not available here: ${`${r.stderr}\n${r.stdout}`.trim().split('\n').filter(Boolean).pop()}`,
    };
  if (r.status !== 0 || !j || j.mode !== 'steady') return { skipped: why(r, 'kernel_swapin --steady-limit-pages') };
  return {
    algorithm: j.algorithm as string,
    cgroup: j.cgroup as string,
    limitPages: j.limit_pages as number,
    limitBytes: j.limit_bytes as number,
    fillMiBs: j.fill_mib_s as number,
    steady: j.steady as KernelPass,
  };
}
