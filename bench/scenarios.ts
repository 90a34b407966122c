/**
 * Benchmark scenarios of tmem's dispatcher against the kernel, as importable
 * functions (bench/swap-vs-zram.ts prints them; a CLI can reuse them):
 *
 *   poolFaultLatency(opts)   fault-from-pool latency, random and sequential order
 *   evictionThroughput(opts) region.evict() pages/s on freshly written pages, and
 *                            the memory cost per stored page (density)
 *   zramBaseline(opts)       build-cmake/bench/native/kernel_swapin --backend zram
 *                            on the same pages (a corpus file), as a child process
 *
 * Every function takes the same Corpus (lib/cli/heap-corpus.ts);
 * writeCorpusFile() puts it in a temporary file for the kernel baseline.
 * evictionThroughput and writeCorpusFile live in lib/cli/eviction.ts (`tmem
 * bench` runs them) and are re-exported here.
 */
import * as fs from 'node:fs';
import type { Swap, SwapStats } from '../lib/swap';
import { openFor, badPagesOf, regionBytes, type TmemOptions } from '../lib/cli/eviction';
import { bucketLow, HIST_BUCKETS } from '../lib/dispatcher/protocol';
import { PAGE_KINDS } from './corpus';
import { nativeBenchProgram, runJsonProgram, shuffled, summarize, type Summary } from './helpers/stats';

export {
  evictionThroughput,
  writeCorpusFile,
  removeCorpusFile,
  type EvictionResult,
  type Density,
  type TmemOptions,
} from '../lib/cli/eviction';

const PAGE = 4096;

// ---- introspection of a Swap (bench only) ---------------------------------------

/** The dispatcher's service-time histogram (the SAB stats().latency is computed from). */
function histOf(swap: Swap): Float64Array {
  return (swap as unknown as { hist: Float64Array }).hist;
}

/** Service-time percentiles (us, bucket upper bounds as stats().latency) of the faults between two snapshots. */
function histDelta(
  before: Float64Array,
  after: Float64Array,
): { count: number; p50: number; p90: number; p99: number; p999: number } {
  const d = new Float64Array(HIST_BUCKETS);
  let total = 0;
  for (let i = 0; i < HIST_BUCKETS; i++) {
    d[i] = after[i] - before[i];
    total += d[i];
  }
  const at = (q: number): number => {
    if (total === 0) return 0;
    let acc = 0;
    for (let i = 0; i < HIST_BUCKETS; i++) {
      acc += d[i];
      if (acc >= q * total) return Math.round(bucketLow(i + 1) * 100) / 100;
    }
    return bucketLow(HIST_BUCKETS);
  };
  return { count: total, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999) };
}

// ---- tmem: fault from the pool -------------------------------------------------------

export interface PassResult {
  order: 'random' | 'sequential';
  /** Touch latency measured in the app thread (hrtime pair around a one-byte read), us. */
  touch: Summary;
  /** The same, by page kind of the corpus (zero pages are same-filled in tmem). */
  byKind: Record<string, Summary>;
  /** Dispatcher service time of these faults (its histogram, bucket bounds), us. */
  service: { count: number; p50: number; p90: number; p99: number; p999: number };
  /** Faults of the pass by source (differences of stats().faults). */
  faults: { pool: number; same: number; staged: number; zero: number };
  /** Pages whose contents differ from the corpus after the pass. */
  badPages: number;
}

export interface PoolFaultResult {
  pages: number;
  pin: boolean;
  residentLimitPages: number;
  random: PassResult;
  sequential: PassResult;
  /** Evictions that happened during the measured touches (must be 0). */
  evictionsDuringTouches: number;
}

function faultCounts(s: SwapStats): { pool: number; same: number; staged: number; zero: number } {
  return { pool: s.faults.pool, same: s.faults.same, staged: s.faults.staged, zero: s.faults.zero };
}

/**
 * Fills a region with the corpus, evicts it (every page in the pool, or
 * same-filled), then touches one byte of every page, timing each touch; once
 * in random order, then (after evicting again) in sequential order.
 */
export async function poolFaultLatency(o: TmemOptions): Promise<PoolFaultResult> {
  const { corpus } = o;
  const seed = o.seed ?? 12345;
  const swap = await openFor(o);
  try {
    // Warm-up (JIT of both threads' fault and evict paths), not reported.
    const wp = Math.min(corpus.pages, o.warmupPages ?? 512);
    if (wp > 0) {
      const w = swap.region(wp * PAGE);
      const wv = new Uint8Array(w.buffer);
      wv.set(corpus.data.subarray(0, wp * PAGE));
      await w.evict();
      let x = 0;
      for (let p = 0; p < wp; p++) x += wv[p * PAGE + 1];
      if (x === -1) console.log('');
      await w.close();
    }
    const region = swap.region(regionBytes(corpus));
    const view = new Uint8Array(region.buffer);
    view.set(corpus.data);
    const passes: PassResult[] = [];
    let evictionsDuring = 0;
    for (const order of ['random', 'sequential'] as const) {
      await region.evict();
      const st0 = swap.stats();
      if (st0.residentPages !== 0 || st0.storedPages + st0.samePages !== corpus.pages) {
        throw new Error(
          `after evict(): ${st0.residentPages} resident, ${st0.storedPages} stored + ${st0.samePages} same of ${corpus.pages}`,
        );
      }
      const idx =
        order === 'random' ? shuffled(corpus.pages, seed) : Uint32Array.from({ length: corpus.pages }, (_, i) => i);
      const lat = new Float64Array(corpus.pages);
      const h0 = Float64Array.from(histOf(swap));
      let sink = 0;
      for (let k = 0; k < idx.length; k++) {
        const off = idx[k] * PAGE + 1;
        const t0 = process.hrtime.bigint();
        sink += view[off];
        const t1 = process.hrtime.bigint();
        lat[k] = Number(t1 - t0);
      }
      // The dispatcher counts a fault after UFFDIO_COPY woke us: let it finish the last one.
      await new Promise((resolve) => setTimeout(resolve, 20));
      const h1 = Float64Array.from(histOf(swap));
      const st1 = swap.stats();
      evictionsDuring += st1.evictions - st0.evictions;
      const f0 = faultCounts(st0),
        f1 = faultCounts(st1);
      const byKind: Record<string, Summary> = {};
      for (let kind = 0; kind < PAGE_KINDS.length; kind++) {
        const xs: number[] = [];
        for (let k = 0; k < idx.length; k++) if (corpus.kinds[idx[k]] === kind) xs.push(lat[k]);
        if (xs.length > 0) byKind[PAGE_KINDS[kind]] = summarize(xs);
      }
      if (sink === -1) console.log('');
      passes.push({
        order,
        touch: summarize(lat),
        byKind,
        service: histDelta(h0, h1),
        faults: {
          pool: f1.pool - f0.pool,
          same: f1.same - f0.same,
          staged: f1.staged - f0.staged,
          zero: f1.zero - f0.zero,
        },
        badPages: badPagesOf(view, corpus),
      });
    }
    await region.close();
    return {
      pages: corpus.pages,
      pin: o.pin ?? true,
      residentLimitPages: Math.floor((regionBytes(corpus) + 1024 * PAGE) / PAGE),
      random: passes[0],
      sequential: passes[1],
      evictionsDuringTouches: evictionsDuring,
    };
  } finally {
    await swap.close();
  }
}

// ---- the kernel: zram -------------------------------------------------------------------------

export interface ZramResult {
  /** Why the baseline was not measured (not root, binary missing, zram unavailable). */
  skipped?: string;
  algorithm?: string;
  pages?: number;
  swappedOut?: number;
  /** kernel_swapin prints no max. */
  random?: Omit<Summary, 'max'> & { majflt: number };
  sequential?: Omit<Summary, 'max'> & { majflt: number };
  pageoutUsPerPage?: number;
  /** Pages out per second of MADV_PAGEOUT (1e6 / pageoutUsPerPage). */
  pageoutPagesPerSecond?: number;
  /** mm_stat mem_used_total delta / pages swapped out (zero pages included, see README). */
  bytesPerPage?: number;
  bytesPerZramPage?: number;
  zramPagesStored?: number;
  mmStat?: Record<string, number>;
  raw?: unknown;
}

/** Default path of the kernel_swapin binary (`npm run build:native`). */
export function defaultKernelSwapin(): string {
  return nativeBenchProgram('kernel_swapin');
}

/** Runs kernel_swapin --backend zram --corpus FILE as a child; needs root. */
export function zramBaseline(o: { corpusFile: string; binary?: string; algorithm?: string }): ZramResult {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return { skipped: 'not root: the zram baseline needs root (swapon, zram hot_add); run as root to measure it' };
  }
  const bin = o.binary ?? defaultKernelSwapin();
  if (!fs.existsSync(bin)) return { skipped: `${bin} is missing: run \`npm run build:native\`` };
  const { r, last } = runJsonProgram(
    bin,
    ['--backend', 'zram', '--algorithm', o.algorithm ?? 'lz4', '--corpus', o.corpusFile],
    {
      timeout: 300_000,
    },
  );
  if (r.status === 2) return { skipped: `kernel_swapin: ${(r.stdout + r.stderr).trim().split('\n').pop()}` };
  if (!last.startsWith('{')) {
    return { skipped: `kernel_swapin failed (status ${r.status}, signal ${r.signal}): ${r.stderr.trim()}` };
  }
  const j = JSON.parse(last) as {
    algorithm: string;
    pages: number;
    swapped_out: number;
    pageout_us_per_page: number;
    random: Summary & { majflt: number };
    sequential: Summary & { majflt: number };
    bytes_per_page: number;
    bytes_per_zram_page: number;
    zram_pages_stored: number;
    mm_stat: Record<string, number>;
  };
  const pick = (s: Summary & { majflt: number }): Omit<Summary, 'max'> & { majflt: number } => ({
    p50: s.p50,
    p90: s.p90,
    p99: s.p99,
    p999: s.p999,
    mean: s.mean,
    n: s.n,
    majflt: s.majflt,
  });
  if (r.status !== 0) {
    return { skipped: `kernel_swapin exited with status ${r.status} (wrong contents or nothing swapped out)`, raw: j };
  }
  return {
    algorithm: j.algorithm,
    pages: j.pages,
    swappedOut: j.swapped_out,
    random: pick(j.random),
    sequential: pick(j.sequential),
    pageoutUsPerPage: j.pageout_us_per_page,
    pageoutPagesPerSecond: Math.round(1e6 / j.pageout_us_per_page),
    bytesPerPage: j.bytes_per_page,
    bytesPerZramPage: j.bytes_per_zram_page,
    zramPagesStored: j.zram_pages_stored,
    mmStat: j.mm_stat,
    raw: j,
  };
}
