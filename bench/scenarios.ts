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
 * Every function takes the same Corpus (bench/corpus.ts); writeCorpusFile()
 * puts it in a temporary file for the kernel baseline.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open, type Swap, type SwapStats } from '../lib/swap';
import { bucketLow, HIST_BUCKETS } from '../lib/dispatcher/protocol';
import { PAGE_KINDS, type Corpus } from './corpus';
import { nativeBenchProgram, runJsonProgram, shuffled, summarize, type Summary } from './helpers/stats';

const PAGE = 4096;

/** Writes the corpus pages to a new temporary file; returns its path. The caller removes it. */
export function writeCorpusFile(corpus: Corpus): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-corpus-'));
  const file = path.join(dir, 'corpus.bin');
  fs.writeFileSync(file, corpus.data);
  return file;
}

/** Removes a file made by writeCorpusFile and its directory. */
export function removeCorpusFile(file: string): void {
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
}

// ---- introspection of a Swap (bench only) ---------------------------------------

/** The dispatcher's service-time histogram (the SAB stats().latency is computed from). */
function histOf(swap: Swap): Float64Array {
  return (swap as unknown as { hist: Float64Array }).hist;
}

/** Service-time percentiles (us, bucket upper bounds as stats().latency) of the faults between two snapshots. */
function histDelta(before: Float64Array, after: Float64Array): { count: number; p50: number; p90: number; p99: number; p999: number } {
  const d = new Float64Array(HIST_BUCKETS);
  let total = 0;
  for (let i = 0; i < HIST_BUCKETS; i++) { d[i] = after[i] - before[i]; total += d[i]; }
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

/**
 * Bytes of the store's metadata allocated up front (index of pages, object
 * records, per-pool zpool metadata): SharedArrayBuffers sized from poolLimit,
 * independent of how many pages are stored. Bench-only introspection.
 */
function storeMetadataBytes(swap: Swap): { indexBytes: number; zpoolMetaBytes: number } {
  const h = (swap as unknown as { store?: { store: { handle(): { control: SharedArrayBuffer; metas: SharedArrayBuffer[] } } } }).store;
  if (!h) return { indexBytes: 0, zpoolMetaBytes: 0 };
  const hd = h.store.handle();
  return { indexBytes: hd.control.byteLength, zpoolMetaBytes: hd.metas.reduce((a, m) => a + m.byteLength, 0) };
}

// ---- tmem: fault from the pool -------------------------------------------------------

export interface TmemOptions {
  corpus: Corpus;
  /** Pin the app thread and the dispatcher on one CPU (default true, as open()). */
  pin?: boolean;
  compressor?: 'lz4' | 'zstd';
  allocator?: 'zsmalloc' | 'zbud';
  /** Pages filled, evicted and touched once before measuring, as kernel_swapin's warm-up (default 512). */
  warmupPages?: number;
  /** poolLimit in bytes (default: the region size rounded up to 16 MiB). */
  poolLimit?: number;
  seed?: number;
}

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

function regionBytes(c: Corpus): number {
  return c.pages * PAGE;
}

async function openFor(o: TmemOptions): Promise<Swap> {
  const bytes = regionBytes(o.corpus);
  const chunk = 16 * 2 ** 20;
  return open({
    // Room for the whole region and more: nothing is evicted while touches are measured.
    residentLimit: bytes + 1024 * PAGE,
    poolLimit: o.poolLimit ?? Math.max(chunk, Math.ceil(bytes / chunk) * chunk),
    compressor: o.compressor ?? 'lz4',
    allocator: o.allocator ?? 'zsmalloc',
    pin: o.pin ?? true,
  });
}

function badPagesOf(view: Uint8Array, corpus: Corpus): number {
  const a = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  const b = Buffer.from(corpus.data.buffer, corpus.data.byteOffset, corpus.data.byteLength);
  let bad = 0;
  for (let p = 0; p < corpus.pages; p++) if (a.compare(b, p * PAGE, (p + 1) * PAGE, p * PAGE, (p + 1) * PAGE) !== 0) bad++;
  return bad;
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
        throw new Error(`after evict(): ${st0.residentPages} resident, ${st0.storedPages} stored + ${st0.samePages} same of ${corpus.pages}`);
      }
      const idx = order === 'random' ? shuffled(corpus.pages, seed) : Uint32Array.from({ length: corpus.pages }, (_, i) => i);
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
      const f0 = faultCounts(st0), f1 = faultCounts(st1);
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
        faults: { pool: f1.pool - f0.pool, same: f1.same - f0.same, staged: f1.staged - f0.staged, zero: f1.zero - f0.zero },
        badPages: badPagesOf(view, corpus),
      });
    }
    await region.close();
    return {
      pages: corpus.pages, pin: o.pin ?? true, residentLimitPages: Math.floor((regionBytes(corpus) + 1024 * PAGE) / PAGE),
      random: passes[0], sequential: passes[1], evictionsDuringTouches: evictionsDuring,
    };
  } finally {
    await swap.close();
  }
}

// ---- tmem: eviction throughput and density -----------------------------------------------

export interface EvictionResult {
  pages: number;
  rounds: number;
  /** Per round: pages evicted / wall time of `await region.evict()`. */
  pagesPerSecond: number[];
  /** Best and median round, pages/s; us per page of the median. */
  best: number;
  median: number;
  usPerPage: number;
  /** Figures of the last round right after evict(). */
  storedPages: number;
  samePages: number;
  hugePages: number;
  poolBytes: number;
  compressedBytes: number;
  compressionRatio: number;
  /** Memory per evicted page, bytes (see density in the result). */
  density: Density;
  badPages: number;
}

export interface Density {
  /** Pages evicted (stored + same-filled): the denominator of every figure below. */
  pages: number;
  /** poolBytes / pages: arena frames the pool occupies (as zram's mem_used_total). */
  poolOnly: number;
  /**
   * (poolBytes + index entries + dispatcher state) / pages, where index entries =
   * 12 B per stored page at the table's design load 0.8 (15 B), dispatcher state =
   * 9 B per region page (state u8, aux u32, seq i32). Used for the density ratio.
   */
  withMetadata: number;
  /**
   * Measured: growth of the process's anonymous memory (smaps_rollup) from
   * before the region was created to after evict() (no page resident), / pages.
   * Includes the pool, the index and zpool metadata as far as touched, the
   * dispatcher's state, and anything else the store touched. Used for the
   * density ratio; null where /proc/self/smaps_rollup is unreadable.
   */
  processAnon: number | null;
  /** Index and zpool metadata SABs allocated up front for this poolLimit, bytes (not per page). */
  indexBytesAllocated: number;
  zpoolMetaBytesAllocated: number;
}

/** Anonymous memory of this process (smaps_rollup), bytes; null if unreadable. */
function anonBytes(): number | null {
  try {
    const m = /^Anonymous:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/smaps_rollup', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Fresh region per round, filled with the corpus (every page written, dirty),
 * then `await region.evict()` timed: compression + store of every page.
 */
export async function evictionThroughput(o: TmemOptions & { rounds?: number }): Promise<EvictionResult> {
  const { corpus } = o;
  const rounds = o.rounds ?? 3;
  const rates: number[] = [];
  let last: Omit<EvictionResult, 'pagesPerSecond' | 'best' | 'median' | 'usPerPage' | 'rounds'> | undefined;
  for (let round = 0; round < rounds; round++) {
    const swap = await openFor(o);
    try {
      const anon0 = anonBytes();
      const region = swap.region(regionBytes(corpus));
      const view = new Uint8Array(region.buffer);
      view.set(corpus.data);
      const t0 = process.hrtime.bigint();
      const n = await region.evict();
      const dt = Number(process.hrtime.bigint() - t0) / 1e9;
      if (n !== corpus.pages) throw new Error(`evict() returned ${n}, expected ${corpus.pages}`);
      rates.push(n / dt);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const anon1 = anonBytes();
      const s = swap.stats();
      if (s.residentPages !== 0 || s.stagedPages !== 0) throw new Error(`after evict(): ${s.residentPages} pages resident, ${s.stagedPages} staged`);
      const meta = storeMetadataBytes(swap);
      const pages = s.storedPages + s.samePages;
      const indexPerStored = (12 / 0.8) * s.storedPages;
      const dispatcherState = 9 * corpus.pages;
      last = {
        pages: corpus.pages,
        storedPages: s.storedPages,
        samePages: s.samePages,
        hugePages: s.hugePages,
        poolBytes: s.poolBytes,
        compressedBytes: s.compressedBytes,
        compressionRatio: +s.compressionRatio.toFixed(3),
        density: {
          pages,
          poolOnly: +(s.poolBytes / pages).toFixed(1),
          withMetadata: +((s.poolBytes + indexPerStored + dispatcherState) / pages).toFixed(1),
          processAnon: anon0 === null || anon1 === null ? null : +((anon1 - anon0) / pages).toFixed(1),
          indexBytesAllocated: meta.indexBytes,
          zpoolMetaBytesAllocated: meta.zpoolMetaBytes,
        },
        badPages: round === rounds - 1 ? badPagesOf(view, corpus) : 0,
      };
      await region.close();
    } finally {
      await swap.close();
    }
  }
  const sorted = [...rates].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return {
    ...last!,
    rounds,
    pagesPerSecond: rates.map((r) => Math.round(r)),
    best: Math.round(sorted[sorted.length - 1]),
    median: Math.round(median),
    usPerPage: +(1e6 / median).toFixed(2),
  };
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
  const { r, last } = runJsonProgram(bin, ['--backend', 'zram', '--algorithm', o.algorithm ?? 'lz4', '--corpus', o.corpusFile], {
    timeout: 300_000,
  });
  if (r.status === 2) return { skipped: `kernel_swapin: ${(r.stdout + r.stderr).trim().split('\n').pop()}` };
  if (!last.startsWith('{')) {
    return { skipped: `kernel_swapin failed (status ${r.status}, signal ${r.signal}): ${r.stderr.trim()}` };
  }
  const j = JSON.parse(last) as {
    algorithm: string; pages: number; swapped_out: number; pageout_us_per_page: number;
    random: Summary & { majflt: number }; sequential: Summary & { majflt: number };
    bytes_per_page: number; bytes_per_zram_page: number; zram_pages_stored: number; mm_stat: Record<string, number>;
  };
  const pick = (s: Summary & { majflt: number }): Omit<Summary, 'max'> & { majflt: number } => ({
    p50: s.p50, p90: s.p90, p99: s.p99, p999: s.p999, mean: s.mean, n: s.n, majflt: s.majflt,
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
