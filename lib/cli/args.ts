/**
 * Command-line parsing for `tmem bench` and `tmem stats`.
 *
 * Every mistake is a UsageError naming the option and what it accepts; the
 * CLI prints it and exits with code 2. Options take `--name value` or
 * `--name=value`.
 */
import { DEFAULT_FAULT_MODE, FAULT_MODES } from '../options';
import { parseRedisUrl } from '../remote/options';

/** A bad command line: printed as `tmem: <message>`, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command = 'bench',
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export const SCENARIOS = [
  'zero',
  'pool',
  'swapfile',
  'eviction',
  'density',
  'steady',
  'fill',
  'threads',
  'readback',
  'remote',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const PATTERNS = ['sequential', 'random', 'zipfian'] as const;
export type Pattern = (typeof PATTERNS)[number];

export interface BenchOptions {
  quick: boolean;
  pages: number;
  /** Corpus spec: a generator name, a mix 'json=60,zero=40', or a file path. */
  corpus: string;
  pattern: Pattern;
  /** Compressors of the pool scenario (both by default); the first is used by eviction and density. */
  compressors: ('lz4' | 'zstd')[];
  allocator: 'zsmalloc' | 'zbud';
  pin: boolean;
  /** Who serves the faults of the tmem scenarios' regions (open()'s `faults`). */
  faults: 'dispatcher' | 'thread' | 'inline';
  /** `--fault-spin US`: open()'s faultSpin in every scenario (null: its default). */
  faultSpin: number | null;
  threads: number;
  scenarios: ScenarioName[];
  seed: number;
  rounds: number;
  /** Directory for swap files (the kernel's needs a filesystem that supports them: ext4, xfs). */
  dir: string | null;
  /** `--remote URL`: the remote scenario uses this Redis server instead of starting one. */
  remote: string | null;
  /** Run the baseline programs (default true). */
  baselines: boolean;
  json: boolean;
  report: string | null;
  help: boolean;
}

export interface StatsOptions {
  pid: number;
  once: boolean;
  json: boolean;
  interval: number;
  count: number | null;
  /** `--audit`: scan each shared pool's index (as the pool's user) for what it holds and pages stored twice. */
  audit: boolean;
  help: boolean;
}

const BENCH_FLAGS: Record<string, 'flag' | 'value'> = {
  '--quick': 'flag',
  '--pages': 'value',
  '--corpus': 'value',
  '--pattern': 'value',
  '--compressor': 'value',
  '--allocator': 'value',
  '--pin': 'flag',
  '--no-pin': 'flag',
  '--faults': 'value',
  '--fault-spin': 'value',
  '--threads': 'value',
  '--scenarios': 'value',
  '--scenario': 'value',
  '--seed': 'value',
  '--rounds': 'value',
  '--dir': 'value',
  '--no-baselines': 'flag',
  '--remote': 'value',
  '--json': 'flag',
  '--report': 'value',
  '--help': 'flag',
  '-h': 'flag',
};

const STATS_FLAGS: Record<string, 'flag' | 'value'> = {
  '--once': 'flag',
  '--json': 'flag',
  '--interval': 'value',
  '--count': 'value',
  '--audit': 'flag',
  '--help': 'flag',
  '-h': 'flag',
};

/** Splits argv into [option, value] pairs and positionals, checking names against `flags`. */
function tokenize(
  argv: string[],
  flags: Record<string, 'flag' | 'value'>,
  command: string,
): { opts: [string, string | null][]; positional: string[] } {
  const opts: [string, string | null][] = [];
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('-') || a === '-') {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    const kind = flags[name];
    if (kind === undefined) {
      throw new UsageError(
        `unknown option '${name}' for 'tmem ${command}'; accepted: ${Object.keys(flags)
          .filter((f) => f !== '-h')
          .join(', ')}`,
        command,
      );
    }
    if (kind === 'flag') {
      if (eq > 0) throw new UsageError(`option '${name}' takes no value`, command);
      opts.push([name, null]);
    } else if (eq > 0) {
      opts.push([name, a.slice(eq + 1)]);
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`option '${name}' needs a value`, command);
      opts.push([name, argv[++i]]);
    }
  }
  return { opts, positional };
}

function intOf(name: string, v: string, min: number, max: number, command: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`option '${name}' must be an integer from ${min} to ${max}, got '${v}'`, command);
  }
  return n;
}

function oneOf<T extends string>(name: string, v: string, accepted: readonly T[], command: string): T {
  if (!(accepted as readonly string[]).includes(v)) {
    throw new UsageError(`option '${name}' must be one of ${accepted.join(', ')}; got '${v}'`, command);
  }
  return v as T;
}

export const DEFAULT_PAGES = 20000;
export const QUICK_PAGES = 4000;

export function parseBenchArgs(argv: string[]): BenchOptions {
  const { opts, positional } = tokenize(argv, BENCH_FLAGS, 'bench');
  if (positional.length > 0)
    throw new UsageError(`unexpected argument '${positional[0]}' for 'tmem bench' (it takes options only)`);
  const o: BenchOptions = {
    quick: false,
    pages: 0,
    corpus: 'mix',
    pattern: 'random',
    compressors: ['lz4', 'zstd'],
    allocator: 'zsmalloc',
    pin: true,
    faults: DEFAULT_FAULT_MODE,
    faultSpin: null,
    threads: 1,
    scenarios: SCENARIOS.filter((s) => s !== 'remote'), // remote: only when asked for (it starts a redis-server)
    seed: 1,
    rounds: 0,
    dir: null,
    remote: null,
    baselines: true,
    json: false,
    report: null,
    help: false,
  };
  let pages: number | null = null;
  let listed = false;
  let rounds: number | null = null;
  for (const [name, v] of opts) {
    const val = v as string;
    switch (name) {
      case '--quick':
        o.quick = true;
        break;
      case '--pages':
        pages = intOf(name, val, 64, 4_000_000, 'bench');
        break;
      case '--corpus':
        if (val.length === 0)
          throw new UsageError(
            `option '--corpus' needs a generator (mix, json, text, binary, zero, random), a mix such as json=60,zero=40, or a file`,
          );
        o.corpus = val;
        break;
      case '--pattern':
        o.pattern = oneOf(name, val, PATTERNS, 'bench');
        break;
      case '--compressor':
        o.compressors = [oneOf(name, val, ['lz4', 'zstd'] as const, 'bench')];
        break;
      case '--allocator':
        o.allocator = oneOf(name, val, ['zsmalloc', 'zbud'] as const, 'bench');
        break;
      case '--pin':
        o.pin = true;
        break;
      case '--no-pin':
        o.pin = false;
        break;
      case '--faults':
        o.faults = oneOf(name, val, FAULT_MODES, 'bench');
        break;
      case '--fault-spin':
        o.faultSpin = intOf(name, val, 0, 10000, 'bench');
        break;
      case '--threads':
        o.threads = intOf(name, val, 1, 64, 'bench');
        break;
      case '--scenarios':
      case '--scenario': {
        const list = val
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0);
        if (list.length === 0)
          throw new UsageError(`option '${name}' needs a comma-separated list of ${SCENARIOS.join(', ')}`);
        for (const s of list) {
          if (!(SCENARIOS as readonly string[]).includes(s)) {
            throw new UsageError(`option '${name}': unknown scenario '${s}'; accepted: ${SCENARIOS.join(', ')}`);
          }
        }
        o.scenarios = SCENARIOS.filter((s) => list.includes(s));
        listed = true;
        break;
      }
      case '--remote':
        try {
          parseRedisUrl(val, "option '--remote'");
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        o.remote = val;
        break;
      case '--seed':
        o.seed = intOf(name, val, 0, 2 ** 31 - 1, 'bench');
        break;
      case '--rounds':
        rounds = intOf(name, val, 1, 100, 'bench');
        break;
      case '--dir':
        if (val.length === 0) throw new UsageError(`option '--dir' needs a directory`);
        o.dir = val;
        break;
      case '--no-baselines':
        o.baselines = false;
        break;
      case '--json':
        o.json = true;
        break;
      case '--report':
        if (val.length === 0 || val.startsWith('-'))
          throw new UsageError(`option '--report' needs an output file name such as report.html, got '${val}'`);
        o.report = val;
        break;
      case '--help':
      case '-h':
        o.help = true;
        break;
    }
  }
  o.pages = pages ?? (o.quick ? QUICK_PAGES : DEFAULT_PAGES);
  o.rounds = rounds ?? (o.quick ? 1 : 3);
  if (o.remote !== null && !listed)
    o.scenarios = ['remote']; // a server named: its scenario, unless others are listed
  else if (o.remote !== null && !o.scenarios.includes('remote'))
    throw new UsageError(`option '--remote' is for the remote scenario: add it to --scenarios`);
  return o;
}

export function parseStatsArgs(argv: string[]): StatsOptions {
  const { opts, positional } = tokenize(argv, STATS_FLAGS, 'stats');
  const o: StatsOptions = {
    pid: 0,
    once: false,
    json: false,
    interval: 1000,
    count: null,
    audit: false,
    help: false,
  };
  for (const [name, v] of opts) {
    const val = v as string;
    if (name === '--once') o.once = true;
    else if (name === '--json') o.json = true;
    else if (name === '--interval') o.interval = intOf(name, val, 100, 3_600_000, 'stats');
    else if (name === '--count') o.count = intOf(name, val, 1, 1e9, 'stats');
    else if (name === '--audit') o.audit = true;
    else o.help = true;
  }
  if (o.help) return o;
  if (positional.length !== 1) {
    throw new UsageError(
      positional.length === 0
        ? `'tmem stats' needs the pid of a program started with TMEM_STATS=1`
        : `'tmem stats' takes one pid, got ${positional.join(' ')}`,
      'stats',
    );
  }
  o.pid = intOf('<pid>', positional[0], 1, 2 ** 22, 'stats');
  return o;
}

export const BENCH_HELP = `Usage: tmem bench [options]

Measures tmem's fault service and its pools against the kernel on this host, in
one run, on the same page contents; prints a table (or JSON) and can write an
HTML report with plots.

Scenarios (--scenarios a,b,c, or --scenario a; default: all)
  zero       first touch of never-written pages (zero page)   vs the minimal C userfaultfd handler
  pool       fault from the compressed pool, lz4 and zstd      vs kernel zram swap-in
  swapfile   fault from tmem's swap file (cold page cache)     vs kernel swap-in from a swap file
  eviction   region.evict() pages/s (compress + store)         vs kernel MADV_PAGEOUT to zram
  density    memory per evicted page                           vs zram (mm_stat mem_used_total)
  steady     random touches at residentLimit = 1/8 of the pages, eviction running
                                                               vs kernel zram swap-in in a memory cgroup
                                                                  holding 1/8 of the pages
                                                               target: p50 <= 1.5x, p99 <= 2x
  fill       writing 8 x residentLimit of new data, MiB/s      vs the kernel writing it in that cgroup
                                                               target: at least the kernel's
  threads    2 Workers on 2 CPUs faulting on one region        vs one thread, same CPU (tmem)
                                                               target: p50 <= 1.3x
  readback   sequential read-back of an evicted region         vs zram sequential swap-in; plain memory
                                                               target: at least 2x faster than zram
  (pool: target p50 <= 1.3x zram; eviction: at least the kernel's pages/s)

Options
  --quick                  small run (${QUICK_PAGES} pages, 1 round), under ~30 s
  --pages N                pages per scenario (default ${DEFAULT_PAGES}; 64..4000000)
  --corpus SPEC            page contents: mix (default: 20% zero, 45% json, 32% binary,
                           3% random), json (alias text), binary, zero, random, a mix
                           such as json=60,zero=40, or a FILE of your own pages
  --pattern P              order of the timed touches: random (default), sequential,
                           zipfian (hot pages first, Zipf s=0.99 over a random ranking)
  --compressor C           lz4 or zstd (default: the pool scenario runs both; lz4 elsewhere)
  --allocator A            zsmalloc (default) or zbud
  --pin / --no-pin         the dispatcher follows the faulting threads' CPU (default --pin)
  --faults MODE            who serves the faults of tmem's regions in every scenario
                           that faults (zero, pool, swapfile, steady, fill, threads,
                           readback): thread (default, as open(): the native fault
                           thread), dispatcher (every fault in the dispatcher's JS) or
                           inline (the faulting thread, SIGBUS); baselines stay as
                           they are
  --fault-spin US          open()'s faultSpin in every scenario: microseconds the fault
                           thread polls after a fault before it sleeps (default 50)
  --threads N              faulting threads: N Workers touch the region through
                           attachRegion(region.share()) (default 1: the main thread)
  --rounds N               eviction rounds (default 3, --quick 1)
  --seed S                 corpus and order seed (default 1)
  --dir DIR                where swap files go (default: the OS temp directory; the
                           kernel baseline needs ext4/xfs, not tmpfs)
  --no-baselines           skip the C and kernel baselines
  --remote URL             the remote scenario against this Redis server (redis://host:port)
                           instead of one it starts on a loopback port; alone, runs only it
  --json                   one JSON document on stdout instead of the table
  --report FILE.html       also write a self-contained HTML report with plots
  -h, --help               this text

Baselines need root (zram, swapon) and the programs of 'npm run build:native'
(built with cmake on first use when missing). Figures are microseconds per touch
of one byte, timed in the faulting thread; ratio = tmem / baseline.
Exit codes: 0 done, 1 a scenario failed or read back wrong data, 2 bad options.
`;

export const STATS_HELP = `Usage: tmem stats <pid> [--once] [--json] [--interval MS] [--count N] [--audit]

Watches the swaps of a running program started with TMEM_STATS=1 (or
open({ statsSocket: true })): resident, pool and swap file sizes, compression
ratio and faults per second (from successive samples), refreshed every second.

  --once          print one sample and exit (faults/s needs two samples: not shown)
  --json          JSON: one document with --once, else one JSON line per sample
  --interval MS   time between samples (default 1000)
  --count N       stop after N samples
  --audit         scan each shared pool's index (1/16 of its segment) for the pages
                  it holds and pages stored twice; run as the program's user
  -h, --help      this text
`;

export const MAIN_HELP = `Usage: tmem <command> [options]

Commands
  bench            fault latency, eviction throughput and density against the kernel
                   (tmem bench --help)
  stats <pid>      watch a running program's pools (tmem stats --help)
  remote gc <url>  delete the Redis keys of swaps whose process died (tmem remote --help)
  help [command]   this text, or a command's

tmem: transcendent memory for Node.js (userfaultfd regions, compressed pools, swap file).
`;
