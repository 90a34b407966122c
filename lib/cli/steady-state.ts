/**
 * tmem's side of the steady-state and fill scenarios of `tmem bench`: the
 * state a program using tmem lives in, at its residentLimit, where every new
 * fault pushes a page out.
 *
 *   residentLimit = pages / 8 (at least 16 pages, open()'s minimum)
 *
 *   fill    the corpus written into a fresh region of `pages` pages (8 x the
 *           residentLimit of new data): first touches and eviction as it goes;
 *           wall time of the write, MiB/s
 *   steady  then every page touched once in random order, each touch timed in
 *           the faulting thread (one-byte read): 7/8 of them fault from the
 *           pool while the dispatcher evicts to stay under the limit
 *
 * Every page is checked against the corpus afterwards. The kernel's side
 * (kernel_swapin --steady-limit-pages: the same writes and touches in a memory
 * cgroup of the same number of pages, zram swap) is in baselines.ts.
 */
import { DEFAULT_FAULT_MODE } from '../options';
import { open, type SwapStats } from '../swap';
import type { Corpus } from './heap-corpus';
import { badPages, settle, touchHere, touchOrder, type TouchRun } from './measure';
import type { Progress } from './progress';

const PAGE = 4096;

export interface SteadyOptions {
  corpus: Corpus;
  seed: number;
  compressor: 'lz4' | 'zstd';
  allocator: 'zsmalloc' | 'zbud';
  pin: boolean;
  /** open()'s `faults` (default: open()'s default). */
  faults?: 'dispatcher' | 'thread' | 'inline';
  progress: Progress;
}

export interface SteadyRun {
  /** residentLimit, pages. */
  limitPages: number;
  /** Fill: MiB/s of the write of the whole region, and the evictions it caused. */
  fillMiBs: number;
  fillEvictions: number;
  /** Steady touches, ns, in touch order. */
  ns: Float64Array;
  faults: TouchRun['faults'];
  evictionsDuringTouches: number;
  /** Staging area of the swap, pages (evicted pages kept uncompressed for a second chance). */
  stagingPages: number;
  badPages: number;
}

/** residentLimit of the steady-state scenario, pages: 1/8 of the region, at least 16. */
export function steadyLimitPages(pages: number): number {
  return Math.max(16, Math.floor(pages / 8));
}

function faultsOf(s: SwapStats): TouchRun['faults'] {
  return {
    zero: s.faults.zero,
    pool: s.faults.pool,
    same: s.faults.same,
    staged: s.faults.staged,
    file: s.swapFile?.swapIns ?? 0,
  };
}

/** The fill, then the steady-state touches (see the file header). */
export async function tmemSteady(o: SteadyOptions): Promise<SteadyRun> {
  const { corpus, progress } = o;
  const pages = corpus.pages;
  const bytes = pages * PAGE;
  const limitPages = steadyLimitPages(pages);
  const chunk = 16 * 2 ** 20;
  const swap = await open({
    residentLimit: limitPages * PAGE,
    poolLimit: Math.max(chunk, Math.ceil((bytes * 1.25) / chunk) * chunk),
    compressor: o.compressor,
    allocator: o.allocator,
    pin: o.pin,
    faults: o.faults ?? DEFAULT_FAULT_MODE,
  });
  try {
    // Warm-up (JIT of the fault and eviction paths of both threads), not reported.
    progress.start(`steady state: warm-up`, 0);
    {
      const wp = Math.min(pages, Math.max(512, 2 * limitPages));
      const w = swap.region(wp * PAGE);
      const wv = new Uint8Array(w.buffer);
      wv.set(corpus.data.subarray(0, wp * PAGE));
      let x = 0;
      for (let p = 0; p < wp; p++) x += wv[p * PAGE + 1];
      if (x === -1) process.stderr.write('');
      await w.close();
    }
    await settle();
    const region = swap.region(bytes);
    const view = new Uint8Array(region.buffer);
    progress.start(`fill: ${pages} pages through a residentLimit of ${limitPages}`, 0);
    const s0 = swap.stats();
    const t0 = process.hrtime.bigint();
    view.set(corpus.data);
    const t1 = process.hrtime.bigint();
    const fillMiBs = bytes / 2 ** 20 / (Number(t1 - t0) / 1e9);
    progress.end(`${fillMiBs.toFixed(1)} MiB/s`);
    await settle();
    const st0 = swap.stats();
    const order = touchOrder('random', pages, o.seed + 11);
    progress.start(`steady state: touch (random, residentLimit ${limitPages} pages)`, pages);
    const ns = touchHere(view, order, progress);
    await settle();
    const st1 = swap.stats();
    const f0 = faultsOf(st0),
      f1 = faultsOf(st1);
    const bad = badPages(view, corpus.data, pages);
    await region.close();
    return {
      limitPages,
      fillMiBs: Math.round(fillMiBs * 100) / 100,
      fillEvictions: st0.evictions - s0.evictions,
      ns,
      faults: {
        zero: f1.zero - f0.zero,
        pool: f1.pool - f0.pool,
        same: f1.same - f0.same,
        staged: f1.staged - f0.staged,
        file: f1.file - f0.file,
      },
      evictionsDuringTouches: st1.evictions - st0.evictions,
      stagingPages: Math.min(8192, Math.max(64, Math.floor(limitPages / 8))), // open()'s default stagingSize
      badPages: bad,
    };
  } finally {
    await swap.close();
  }
}
