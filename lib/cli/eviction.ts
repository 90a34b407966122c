/**
 * The eviction scenario of `tmem bench` (and of bench/swap-vs-zram.ts, which
 * imports it from here): region.evict() throughput on freshly written corpus
 * pages, and the memory each evicted page costs (density). Also the corpus
 * file the kernel baselines read the same pages from, and the Swap these
 * pool scenarios open (everything fits: nothing is evicted behind the
 * measurement).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open, type Swap } from '../swap';
import type { Corpus } from './heap-corpus';

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

/**
 * Bytes of the store's metadata allocated up front (index of pages, object
 * records, per-pool zpool metadata): SharedArrayBuffers sized from poolLimit,
 * independent of how many pages are stored. Bench-only introspection.
 */
function storeMetadataBytes(swap: Swap): { indexBytes: number; zpoolMetaBytes: number } {
  const h = (
    swap as unknown as { store?: { store: { handle(): { control: SharedArrayBuffer; metas: SharedArrayBuffer[] } } } }
  ).store;
  if (!h) return { indexBytes: 0, zpoolMetaBytes: 0 };
  const hd = h.store.handle();
  return { indexBytes: hd.control.byteLength, zpoolMetaBytes: hd.metas.reduce((a, m) => a + m.byteLength, 0) };
}

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

export function regionBytes(c: Corpus): number {
  return c.pages * PAGE;
}

export async function openFor(o: TmemOptions): Promise<Swap> {
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

export function badPagesOf(view: Uint8Array, corpus: Corpus): number {
  const a = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  const b = Buffer.from(corpus.data.buffer, corpus.data.byteOffset, corpus.data.byteLength);
  let bad = 0;
  for (let p = 0; p < corpus.pages; p++)
    if (a.compare(b, p * PAGE, (p + 1) * PAGE, p * PAGE, (p + 1) * PAGE) !== 0) bad++;
  return bad;
}

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
      if (s.residentPages !== 0 || s.stagedPages !== 0)
        throw new Error(`after evict(): ${s.residentPages} pages resident, ${s.stagedPages} staged`);
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
