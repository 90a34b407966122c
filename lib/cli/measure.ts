/**
 * tmem's side of the latency scenarios of `tmem bench`:
 *
 *   zero      a fresh region; one byte of every page read once (UFFDIO_ZEROPAGE)
 *   pool      the corpus copied into a region, `await region.evict()` (every page
 *             compressed into the pool or kept as a same-filled word), every page
 *             touched once
 *   swapfile  the same with a 64 KiB pool over a swap file: evicted pages are
 *             refused by the full pool and written to the file; the page cache is
 *             dropped (root) so that the touches read the disk, as the kernel's do
 *
 * Touches follow the --pattern order and are timed one by one in the faulting
 * thread (hrtime pair around a one-byte read); with --threads N, N Workers
 * attached with attachRegion(region.share()) each touch an interleaved share of
 * the order, started together. residentLimit is above the region: nothing is
 * evicted while touches are timed. Every page is checked afterwards.
 * Also: plainFirstTouch(), the kernel's own first touch of anonymous memory.
 */
import { DEFAULT_FAULT_MODE } from '../options';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { open, type Swap, type SwapStats } from '../swap';
import type { Corpus } from './heap-corpus';
import { shuffled } from './samples';
import type { Pattern } from './args';
import type { Progress } from './progress';
import type { ToucherData } from './toucher';

const PAGE = 4096;

export interface TouchRun {
  /** Touch times, ns, in touch order (threads concatenated). */
  ns: Float64Array;
  /** Faults of the timed touches by source. */
  faults: { zero: number; pool: number; same: number; staged: number; file: number };
  evictionsDuringTouches: number;
  badPages: number;
  threads: number;
  /** swapfile: whether the page cache was dropped before the touches, or why not. */
  cold?: boolean;
  coldNote?: string;
  /** Dispatcher service time percentiles over the run (stats().latency), us. */
  service: { p50: number; p99: number };
}

export interface MeasureOptions {
  corpus: Corpus;
  pattern: Pattern;
  seed: number;
  compressor: 'lz4' | 'zstd';
  allocator: 'zsmalloc' | 'zbud';
  pin: boolean;
  /** open()'s `faults` (default: open()'s default). */
  faults?: 'dispatcher' | 'thread' | 'inline';
  threads: number;
  /** With threads > 1: Worker w runs on cpus[w % cpus.length] (default: the affinity it inherits). */
  cpus?: number[];
  /** Directory for the swap file (swapfile scenario). */
  dir: string;
  progress: Progress;
  label: string;
}

/**
 * Page order of the timed touches. zipfian: the order in which a Zipf(0.99)
 * workload first reaches each page (weighted sampling without replacement,
 * Efraimidis-Spirakis, over a random popularity ranking): hot pages early.
 */
export function touchOrder(pattern: Pattern, pages: number, seed: number): Uint32Array {
  if (pattern === 'sequential') return Uint32Array.from({ length: pages }, (_, i) => i);
  const perm = shuffled(pages, seed);
  if (pattern === 'random') return perm;
  let s = (seed * 2654435761) >>> 0 || 1;
  const u = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  // perm[r] is the page of popularity rank r; key = -ln(U) * (r+1)^0.99, ascending.
  const keys = new Float64Array(pages);
  for (let r = 0; r < pages; r++) keys[r] = -Math.log(u()) * Math.pow(r + 1, 0.99);
  const ranks = Uint32Array.from({ length: pages }, (_, i) => i).sort((a, b) => keys[a] - keys[b]);
  const out = new Uint32Array(pages);
  for (let k = 0; k < pages; k++) out[k] = perm[ranks[k]];
  return out;
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

export async function settle(): Promise<void> {
  // The dispatcher counts a fault after UFFDIO_COPY woke the thread (with faults: 'thread', when
  // it drains the fault thread's records): let it finish the last one.
  await new Promise((resolve) => setTimeout(resolve, 200));
}

/** Times one-byte reads of `order` in this thread, ticking the progress bar between chunks. */
export function touchHere(view: Uint8Array, order: Uint32Array, progress: Progress): Float64Array {
  const n = order.length;
  const lat = new Float64Array(n);
  const chunk = 2048;
  let sink = 0;
  for (let c = 0; c < n; c += chunk) {
    const e = Math.min(n, c + chunk);
    for (let k = c; k < e; k++) {
      const off = order[k] * PAGE + 1;
      const t0 = process.hrtime.bigint();
      sink += view[off];
      const t1 = process.hrtime.bigint();
      lat[k] = Number(t1 - t0);
    }
    progress.update(e);
  }
  if (sink === -1) process.stderr.write('');
  return lat;
}

/** Times the touches in `threads` Workers over attachRegion(region.share()). */
export async function touchInWorkers(
  shared: ReturnType<import('../swap').Region['share']>,
  order: Uint32Array,
  threads: number,
  progress: Progress,
  cpus?: number[],
): Promise<Float64Array> {
  const ctl = new SharedArrayBuffer(8);
  const workers: Worker[] = [];
  const done: Promise<Float64Array>[] = [];
  const ready: Promise<void>[] = [];
  for (let w = 0; w < threads; w++) {
    const mine: number[] = [];
    for (let k = w; k < order.length; k += threads) mine.push(order[k]);
    const data: ToucherData = {
      shared,
      order: Uint32Array.from(mine),
      ctl,
      ...(cpus && cpus.length > 0 ? { cpu: cpus[w % cpus.length] } : {}),
    };
    const worker = new Worker(path.join(__dirname, 'toucher.js'), { workerData: data });
    workers.push(worker);
    let readyResolve!: () => void;
    ready.push(new Promise<void>((r) => (readyResolve = r)));
    done.push(
      new Promise<Float64Array>((resolve, reject) => {
        worker.on('message', (m: { type: string; lat?: Float64Array }) => {
          if (m.type === 'ready') readyResolve();
          else if (m.type === 'done') resolve(m.lat as Float64Array);
        });
        worker.once('error', reject);
        worker.once('exit', (code) =>
          reject(new Error(`faulting Worker ${w} exited (code ${code}) before it was done`)),
        );
      }),
    );
  }
  try {
    await Promise.race([Promise.all(ready), Promise.all(done)]);
    const flag = new Int32Array(ctl);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    let finished = 0;
    const parts = await Promise.all(
      done.map((p) =>
        p.then((x) => {
          finished += x.length;
          progress.update(finished);
          return x;
        }),
      ),
    );
    const all = new Float64Array(order.length);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return all;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

export function badPages(view: Uint8Array, expect: Uint8Array | null, pages: number): number {
  const a = Buffer.from(view.buffer, view.byteOffset, pages * PAGE);
  const zero = Buffer.alloc(PAGE);
  let bad = 0;
  for (let p = 0; p < pages; p++) {
    const ok = expect
      ? a.compare(expect, p * PAGE, (p + 1) * PAGE, p * PAGE, (p + 1) * PAGE) === 0
      : a.compare(zero, 0, PAGE, p * PAGE, (p + 1) * PAGE) === 0;
    if (!ok) bad++;
  }
  return bad;
}

/** sync + drop the page cache; null when done, else why not. */
function dropCaches(): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'not root: cannot drop the page cache, the swap file pages were read warm (from the page cache)';
  try {
    execFileSync('sync', [], { timeout: 60_000 });
    fs.writeFileSync('/proc/sys/vm/drop_caches', '1');
    return null;
  } catch (e) {
    return `cannot drop the page cache (${(e as Error).message.split('\n')[0]}): the swap file pages were read warm`;
  }
}

/** One latency scenario of tmem (see the file header). */
export async function tmemLatency(kind: 'zero' | 'pool' | 'swapfile', o: MeasureOptions): Promise<TouchRun> {
  const { corpus, progress } = o;
  const pages = corpus.pages;
  const bytes = pages * PAGE;
  const swapfile = kind === 'swapfile';
  const chunk = 16 * 2 ** 20;
  fs.mkdirSync(o.dir, { recursive: true });
  const swap: Swap = await open({
    residentLimit: bytes + 1024 * PAGE,
    poolLimit: swapfile ? '64KiB' : Math.max(chunk, Math.ceil(bytes / chunk) * chunk),
    compressor: o.compressor,
    allocator: o.allocator,
    pin: o.pin,
    faults: o.faults ?? DEFAULT_FAULT_MODE,
    ...(swapfile
      ? { stagingSize: '4MiB', swapFile: { path: o.dir, size: (Math.ceil(pages * 1.1) + 1024) * PAGE } }
      : {}),
  });
  try {
    // Warm-up (JIT of the fault and evict paths on both threads), not reported.
    const wp = Math.min(pages, 512);
    progress.start(`${o.label}: warm-up`, 0);
    {
      const w = swap.region(wp * PAGE);
      const wv = new Uint8Array(w.buffer);
      let x = 0;
      if (kind !== 'zero') {
        wv.set(corpus.data.subarray(0, wp * PAGE));
        await w.evict();
      }
      for (let p = 0; p < wp; p++) x += wv[p * PAGE + 1];
      if (x === -1) process.stderr.write('');
      await w.close();
    }
    const region = swap.region(bytes);
    const view = new Uint8Array(region.buffer);
    let cold: boolean | undefined;
    let coldNote: string | undefined;
    if (kind !== 'zero') {
      progress.start(`${o.label}: fill + evict ${pages} pages`, 0);
      view.set(corpus.data);
      await region.evict();
      const s = swap.stats();
      if (s.residentPages !== 0) throw new Error(`after evict(): ${s.residentPages} pages still resident`);
      if (swapfile) {
        const why = dropCaches();
        cold = why === null;
        coldNote = why ?? undefined;
      }
    }
    const order = touchOrder(o.pattern, pages, o.seed + 11);
    const st0 = swap.stats();
    progress.start(`${o.label}: touch (${o.pattern}${o.threads > 1 ? `, ${o.threads} threads` : ''})`, pages);
    const ns =
      o.threads > 1
        ? await touchInWorkers(region.share(), order, o.threads, progress, o.cpus)
        : touchHere(view, order, progress);
    await settle();
    const st1 = swap.stats();
    const f0 = faultsOf(st0),
      f1 = faultsOf(st1);
    const bad = badPages(view, kind === 'zero' ? null : corpus.data, pages);
    await region.close();
    return {
      ns,
      faults: {
        zero: f1.zero - f0.zero,
        pool: f1.pool - f0.pool,
        same: f1.same - f0.same,
        staged: f1.staged - f0.staged,
        file: f1.file - f0.file,
      },
      evictionsDuringTouches: st1.evictions - st0.evictions,
      badPages: bad,
      threads: o.threads,
      cold,
      coldNote,
      service: { p50: st1.latency.p50, p99: st1.latency.p99 },
    };
  } finally {
    await swap.close();
  }
}

/**
 * The kernel's own first touch of anonymous memory, no userfaultfd: a fresh
 * large ArrayBuffer (calloc'd, mmap'd lazily) read page by page in `order`.
 */
export function plainFirstTouch(pages: number, order: Uint32Array): Float64Array {
  const view = new Uint8Array(new ArrayBuffer(pages * PAGE));
  const lat = new Float64Array(order.length);
  let sink = 0;
  for (let k = 0; k < order.length; k++) {
    const off = order[k] * PAGE + 1;
    const t0 = process.hrtime.bigint();
    sink += view[off];
    const t1 = process.hrtime.bigint();
    lat[k] = Number(t1 - t0);
  }
  if (sink === -1) process.stderr.write('');
  return lat;
}

/** Default directory of swap files. */
export function defaultSwapDir(): string {
  return os.tmpdir();
}
