/**
 * tmem's side of the sequential read-back scenario of `tmem bench`: a region
 * holding the corpus is evicted (every page in the pool or same-filled), then
 * read front to back, each page copied whole into a 4 KiB buffer; wall time
 * per page. The same loop over the corpus itself (plain, resident memory) is
 * the reference; the kernel's zram sequential swap-in of the same pages
 * (kernel_swapin's read-back round, the same 4 KiB copies) is the baseline.
 * residentLimit is above the region: nothing is evicted while reading.
 */
import { DEFAULT_FAULT_MODE } from '../options';
import { open } from '../swap';
import type { Corpus } from './heap-corpus';
import { badPages, settle } from './measure';
import type { Progress } from './progress';

const PAGE = 4096;

export interface ReadbackOptions {
  corpus: Corpus;
  compressor: 'lz4' | 'zstd';
  allocator: 'zsmalloc' | 'zbud';
  pin: boolean;
  /** open()'s `faults` (default: open()'s default). */
  faults?: 'dispatcher' | 'thread' | 'inline';
  progress: Progress;
}

export interface ReadbackRun {
  /** us per page of the read-back of the evicted region. */
  usPerPage: number;
  /** us per page of the same loop over plain memory. */
  plainUsPerPage: number;
  faults: { pool: number; same: number; staged: number; zero: number };
  badPages: number;
}

/** Copies every page of `view` front to back into a scratch page; ns of the loop. */
function readAll(view: Uint8Array, pages: number): number {
  const scratch = new Uint8Array(PAGE);
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let p = 0; p < pages; p++) {
    scratch.set(view.subarray(p * PAGE, p * PAGE + PAGE));
    sink += scratch[1];
  }
  const t1 = process.hrtime.bigint();
  if (sink === -1) process.stderr.write('');
  return Number(t1 - t0);
}

/** The read-back (see the file header). */
export async function tmemReadback(o: ReadbackOptions): Promise<ReadbackRun> {
  const { corpus, progress } = o;
  const pages = corpus.pages;
  const bytes = pages * PAGE;
  const chunk = 16 * 2 ** 20;
  const swap = await open({
    residentLimit: bytes + 1024 * PAGE,
    poolLimit: Math.max(chunk, Math.ceil(bytes / chunk) * chunk),
    compressor: o.compressor,
    allocator: o.allocator,
    pin: o.pin,
    faults: o.faults ?? DEFAULT_FAULT_MODE,
  });
  try {
    progress.start('read-back: warm-up', 0);
    {
      const wp = Math.min(pages, 512);
      const w = swap.region(wp * PAGE);
      const wv = new Uint8Array(w.buffer);
      wv.set(corpus.data.subarray(0, wp * PAGE));
      await w.evict();
      readAll(wv, wp);
      readAll(corpus.data, wp);
      await w.close();
    }
    const region = swap.region(bytes);
    const view = new Uint8Array(region.buffer);
    progress.start(`read-back: fill + evict ${pages} pages`, 0);
    view.set(corpus.data);
    await region.evict();
    const s0 = swap.stats();
    if (s0.residentPages !== 0) throw new Error(`after evict(): ${s0.residentPages} pages still resident`);
    progress.start('read-back: sequential copy of every page', 0);
    const ns = readAll(view, pages);
    await settle();
    const s1 = swap.stats();
    const plain = readAll(corpus.data, pages);
    progress.end(`${(ns / pages / 1000).toFixed(2)} us/page`);
    const bad = badPages(view, corpus.data, pages);
    await region.close();
    const r3 = (x: number): number => Math.round(x * 1000) / 1000;
    return {
      usPerPage: r3(ns / pages / 1000),
      plainUsPerPage: Math.round((plain / pages / 1000) * 10000) / 10000,
      faults: {
        pool: s1.faults.pool - s0.faults.pool,
        same: s1.faults.same - s0.faults.same,
        staged: s1.faults.staged - s0.faults.staged,
        zero: s1.faults.zero - s0.faults.zero,
      },
      badPages: bad,
    };
  } finally {
    await swap.close();
  }
}
