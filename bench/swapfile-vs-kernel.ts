/**
 * Swap file tier: tmem's fault latency on pages that live in its swap file,
 * against the kernel's own swap-in from a swap file on the same filesystem,
 * same page contents, same run. Also the write-back throughput (pages/s going
 * to the file) against the kernel's pageout.
 *
 *   (a) kernel: build-cmake/bench/native/kernel_swapin --backend swapfile
 *       --dir DIR --corpus FILE (`npm run build:native`; root). The kernel's
 *       swap I/O bypasses the page cache: every random touch reads the disk.
 *   (b) tmem: open({ poolLimit: 64KiB, swapFile: { path: DIR/..., size } })
 *       with residentLimit above the region, so that nothing is evicted
 *       behind the benchmark's back; the corpus is copied in, then
 *       `await region.evict()` pushes every page out: the pool refuses them
 *       (it is full after a few dozen), they go to the file (zero pages are
 *       kept as same-filled words, as the kernel keeps them in its zeromap).
 *       evict() is timed: write-back pages/s. Then every page is touched once
 *       in random order, each touch timed with hrtime.bigint():
 *         warm   right after the write-back (the file's pages are in the page cache)
 *         cold   after sync + `echo 1 > /proc/sys/vm/drop_caches` (root): the
 *                fair comparison with the kernel, whose swap-in reads the disk
 *         seq    cold again, in sequential order (tmem readahead: 8 slots)
 *       Every page is compared with the corpus after each pass.
 *
 * Figures are touch latencies in microseconds over all pages (the kernel's
 * `random` figure is over all swapped pages too, zero pages included), and
 * for tmem also over the pages that came from the file. ratio = tmem cold
 * random p50 / kernel random p50; the target is <= 1.3.
 *
 * Measured (2 vCPUs, kernel 6.18, ext4 on a virtio disk with read_ahead_kb 8192,
 * 20000 pages, three runs): kernel random p50 72-78 us (every touch a major
 * fault); tmem cold random p50 10.3-11.2 us (ratio 0.14-0.15), warm 10.4-10.8 us;
 * tmem cold touches whose pread really read the disk (about 7600 of the 16000
 * file touches) p50 82-96 us, 1.15-1.24x the kernel's major fault.
 * Why cold tmem beats the kernel overall: tmem reads its file through the page
 * cache, and evict() writes neighbouring pages into neighbouring slots, so the
 * file's own readahead (page_cache_sync_ra sees the cached history of a stream)
 * brings in whole runs of slots: half the "cold" file touches find their slot
 * cached (p50 10.4 us = fault service ~7 us + pread from the cache ~0.95 us +
 * CRC-32 of 4 KiB ~0.73 us + copy). The kernel's swap-in bypasses the page cache
 * and its swap readahead shrinks to one page on random access. Touches that do
 * read the disk cost the kernel's I/O plus the fault service, and often a larger
 * read (the readahead window). The flip side: written-back pages sit in the page
 * cache (reclaimable, but counted in a memory cgroup) until the kernel drops them.
 * Write-back: 85-123k pages/s (8-12 us/page) for evict() against the kernel's
 * 3.6-4.5 us/page MADV_PAGEOUT submission (asynchronous writes); the first pass
 * is the slowest (ext4 allocates the file's blocks).
 *
 * Usage: node dist/bench/swapfile-vs-kernel.js [--pages N] [--dir DIR] [--seed S]
 *        [--kernel PATH] [--no-kernel]
 * DIR (default: the OS temp directory) must be on a filesystem that supports
 * swap files (ext4, xfs; not tmpfs) for the kernel run. Last line: JSON.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open } from '../lib';
import { makeCorpus } from './corpus';
import * as P from '../lib/dispatcher/protocol';
import {
  eachOption,
  nativeBenchProgram,
  runJsonProgram,
  shuffled,
  summarize as summarizeAll,
  summaryLine,
  type Summary,
} from './helpers/stats';

const PAGE = 4096;

interface Options {
  pages: number;
  dir: string;
  seed: number;
  kernel: string;
  runKernel: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    pages: 20000,
    dir: os.tmpdir(),
    seed: 1,
    kernel: nativeBenchProgram('kernel_swapin'),
    runKernel: true,
  };
  eachOption(argv, 'bench/swapfile-vs-kernel.ts', (a, next) => {
    if (a === '--pages') o.pages = Number(next());
    else if (a === '--dir') o.dir = next();
    else if (a === '--seed') o.seed = Number(next());
    else if (a === '--kernel') o.kernel = next();
    else if (a === '--no-kernel') o.runKernel = false;
    else return false;
    return true;
  });
  if (!(Number.isInteger(o.pages) && o.pages >= 64)) throw new Error('--pages must be an integer >= 64');
  return o;
}

/** Percentiles (nearest rank) of nanosecond samples, in microseconds; null when there are none. */
function summarize(ns: ArrayLike<number>): Summary | null {
  return ns.length === 0 ? null : summarizeAll(ns);
}

function line(name: string, s: Summary | null | undefined): string {
  return summaryLine(name, s, 30);
}

interface KernelResult {
  random?: Summary & { majflt: number; major_p50: number };
  sequential?: Summary & { majflt: number; major_p50: number };
  pageout_us_per_page?: number;
  error?: string;
}

function runKernel(o: Options, corpusFile: string): KernelResult {
  if (!o.runKernel) return { error: 'skipped (--no-kernel)' };
  if (!fs.existsSync(o.kernel)) return { error: `${o.kernel} is missing: run \`npm run build:native\`` };
  const { r, last } = runJsonProgram(
    o.kernel,
    ['--backend', 'swapfile', '--dir', o.dir, '--corpus', corpusFile, '--seed', String(o.seed)],
    {
      timeout: 300_000,
      killSignal: 'SIGTERM',
    },
  );
  if (r.status !== 0 || !last.startsWith('{')) {
    return {
      error:
        `kernel_swapin failed (status ${r.status}, signal ${r.signal}): ${(r.stdout ?? '').slice(-400)} ${r.stderr ?? ''}`.trim(),
    };
  }
  return JSON.parse(last) as KernelResult;
}

/** Bytes this process has had read from storage (/proc/self/io read_bytes); -1 if unavailable. */
const ioBuf = Buffer.alloc(512);
let ioFd = -2;
function readBytes(): number {
  if (ioFd === -2) {
    try {
      ioFd = fs.openSync('/proc/self/io', 'r');
    } catch {
      ioFd = -1;
    }
  }
  if (ioFd < 0) return -1;
  const n = fs.readSync(ioFd, ioBuf, 0, ioBuf.length, 0);
  const m = /read_bytes: (\d+)/.exec(ioBuf.toString('latin1', 0, n));
  return m ? Number(m[1]) : -1;
}

/** sync, then drop the page cache; false (with why) when not permitted. */
function dropCaches(): string | null {
  try {
    execFileSync('sync', [], { timeout: 60_000 });
    fs.writeFileSync('/proc/sys/vm/drop_caches', '1');
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

interface Pass {
  all: Summary | null;
  /** Touches served from the swap file. */
  file: Summary | null;
  /** Touches served from the swap file whose pread went to the disk (read_bytes grew). */
  fileDisk: Summary | null;
  /** Touches served from the swap file out of the page cache (the file's own readahead, or warm). */
  fileCached: Summary | null;
  other: Summary | null;
  /** Pages the process read from storage during the pass. */
  diskPages: number;
  faults: { file: number; pool: number; same: number; zero: number; staged: number };
  readaheadHits: number;
  badPages: number;
  dispatcherP50: number;
}

interface WriteBack {
  pages: number;
  ms: number;
  pagesPerSec: number;
  usPerPage: number;
}

async function runTmem(
  o: Options,
  corpus: Uint8Array,
): Promise<{
  writeback: WriteBack[];
  warm: Pass;
  cold: Pass | null;
  seq: Pass | null;
  dropError: string | null;
  swapFileStats: unknown;
}> {
  const pages = corpus.length / PAGE;
  const swapPath = path.join(o.dir, `tmem-bench-swapfile.${process.pid}.swap`);
  const swap = await open({
    residentLimit: Math.max(16, Math.ceil(pages * 1.25)) * PAGE,
    poolLimit: '64KiB',
    stagingSize: '4MiB',
    swapFile: { path: swapPath, size: Math.ceil(pages * 1.1) * PAGE },
  });
  try {
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    bytes.set(corpus);

    const writeback: WriteBack[] = [];
    const pushOut = async (): Promise<void> => {
      const before = swap.stats().swapFile!.writtenBack;
      const t0 = process.hrtime.bigint();
      await region.evict();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const n = swap.stats().swapFile!.writtenBack - before;
      writeback.push({
        pages: n,
        ms: Math.round(ms * 10) / 10,
        pagesPerSec: Math.round(n / (ms / 1000)),
        usPerPage: Math.round(((ms * 1000) / n) * 100) / 100,
      });
    };

    const touchAll = (order: Uint32Array): Pass => {
      const s0 = swap.stats();
      const lat = new Float64Array(pages);
      const src = new Uint8Array(pages); // 1: served from the file out of the page cache, 2: from the file with disk I/O
      const io0 = readBytes();
      let io = io0;
      let sink = 0;
      const G = swap._statsBuffer(); // the shared counters: no allocation between touches
      let fileFaults = G[P.G_SWAP_INS];
      for (let k = 0; k < pages; k++) {
        const off = order[k] * PAGE + 1;
        const t0 = process.hrtime.bigint();
        sink += bytes[off];
        const t1 = process.hrtime.bigint();
        lat[k] = Number(t1 - t0);
        const f = G[P.G_SWAP_INS];
        if (f !== fileFaults) {
          const now = readBytes();
          src[k] = now > io ? 2 : 1;
          io = now;
          fileFaults = f;
        }
      }
      if (sink === -1) console.log('');
      const s1 = swap.stats();
      let bad = 0;
      const all = Buffer.from(region.buffer);
      for (let p = 0; p < pages; p++)
        if (all.compare(corpus, p * PAGE, (p + 1) * PAGE, p * PAGE, (p + 1) * PAGE) !== 0) bad++;
      const fileLat: number[] = [],
        diskLat: number[] = [],
        cachedLat: number[] = [],
        otherLat: number[] = [];
      for (let k = 0; k < pages; k++) {
        (src[k] ? fileLat : otherLat).push(lat[k]);
        if (src[k] === 2) diskLat.push(lat[k]);
        else if (src[k] === 1) cachedLat.push(lat[k]);
      }
      return {
        all: summarize(lat),
        file: summarize(fileLat),
        fileDisk: summarize(diskLat),
        fileCached: summarize(cachedLat),
        other: summarize(otherLat),
        diskPages: io0 < 0 ? -1 : Math.round((readBytes() - io0) / PAGE),
        faults: {
          file: s1.swapFile!.swapIns - s0.swapFile!.swapIns,
          pool: s1.faults.pool - s0.faults.pool,
          same: s1.faults.same - s0.faults.same,
          zero: s1.faults.zero - s0.faults.zero,
          staged: s1.faults.staged - s0.faults.staged,
        },
        readaheadHits: s1.swapFile!.readaheadHits - s0.swapFile!.readaheadHits,
        badPages: bad,
        dispatcherP50: s1.latency.p50,
      };
    };

    await pushOut();
    const warm = touchAll(shuffled(pages, o.seed + 1));
    await pushOut();
    const dropError = dropCaches();
    const cold = dropError ? null : touchAll(shuffled(pages, o.seed + 2));
    let seq: Pass | null = null;
    if (!dropError) {
      await pushOut();
      dropCaches();
      seq = touchAll(Uint32Array.from({ length: pages }, (_, i) => i));
    }
    const swapFileStats = swap.stats().swapFile;
    await region.close();
    return { writeback, warm, cold, seq, dropError, swapFileStats };
  } finally {
    await swap.close();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(o.dir, { recursive: true });
  const corpus = makeCorpus(o.pages, o.seed);
  const corpusFile = path.join(o.dir, `tmem-bench-corpus.${process.pid}.bin`);
  fs.writeFileSync(corpusFile, corpus.data);
  let kernel: KernelResult;
  try {
    kernel = runKernel(o, corpusFile);
  } finally {
    fs.rmSync(corpusFile, { force: true });
  }
  const tmem = await runTmem(o, corpus.data);

  console.log(
    `swap file in ${o.dir}, ${o.pages} pages (bench/corpus.ts seed ${o.seed}), cpu ${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
  );
  console.log('\ntouch latency of pages swapped out to a file (us):');
  if (kernel.error) console.log(`kernel: ${kernel.error}`);
  console.log(line('kernel random', kernel.random));
  console.log(line('kernel sequential', kernel.sequential));
  console.log(line('tmem cold random, all', tmem.cold?.all));
  console.log(line('tmem cold random, from file', tmem.cold?.file));
  console.log(line('  of which read the disk', tmem.cold?.fileDisk));
  console.log(line('  of which in the page cache', tmem.cold?.fileCached));
  console.log(line('tmem cold random, other', tmem.cold?.other));
  console.log(line('tmem warm random, all', tmem.warm.all));
  console.log(line('tmem warm random, from file', tmem.warm.file));
  console.log(line('tmem cold sequential, all', tmem.seq?.all));
  console.log(line('  from file, read the disk', tmem.seq?.fileDisk));
  if (tmem.dropError) console.log(`cold passes skipped: cannot drop the page cache: ${tmem.dropError}`);
  console.log('\nwrite-back to the file (region.evict() of every page):');
  for (const w of tmem.writeback)
    console.log(`  ${w.pages} pages in ${w.ms} ms: ${w.pagesPerSec} pages/s, ${w.usPerPage} us/page`);
  if (kernel.pageout_us_per_page) {
    console.log(
      `  kernel MADV_PAGEOUT to its swap file: ${kernel.pageout_us_per_page} us/page (submission; the writes complete asynchronously)`,
    );
  }
  const passes = { warm: tmem.warm, cold: tmem.cold, seq: tmem.seq };
  for (const [k, p] of Object.entries(passes)) {
    if (p) {
      console.log(
        `${k}: faults ${JSON.stringify(p.faults)}, tmem readahead hits ${p.readaheadHits}, pages read from disk ${p.diskPages}, ` +
          `file touches that read the disk ${p.fileDisk?.n ?? 0}, wrong pages ${p.badPages}`,
      );
    }
  }

  const kp50 = kernel.random?.p50;
  const ratio = (x: number | undefined): number | null => (kp50 && x ? Math.round((x / kp50) * 100) / 100 : null);
  const result = {
    bench: 'swapfile-vs-kernel',
    pages: o.pages,
    kernel: kernel.error
      ? { error: kernel.error }
      : {
          random: kernel.random,
          sequential: kernel.sequential,
          pageout_us_per_page: kernel.pageout_us_per_page,
          pageout_pages_per_s: kernel.pageout_us_per_page ? Math.round(1e6 / kernel.pageout_us_per_page) : null,
        },
    tmem: {
      cold_random: tmem.cold,
      warm_random: tmem.warm,
      cold_sequential: tmem.seq,
      writeback: tmem.writeback,
      swapFile: tmem.swapFileStats,
      drop_caches_error: tmem.dropError,
    },
    ratio_p50_cold: ratio(tmem.cold?.all?.p50),
    ratio_p50_cold_file_only: ratio(tmem.cold?.file?.p50),
    ratio_p50_cold_disk_reads:
      kernel.random?.major_p50 && tmem.cold?.fileDisk
        ? Math.round((tmem.cold.fileDisk.p50 / kernel.random.major_p50) * 100) / 100
        : null,
    ratio_p50_warm: ratio(tmem.warm.all?.p50),
    target: 1.3,
    met: (() => {
      const r = ratio(tmem.cold?.all?.p50);
      return r === null ? null : r <= 1.3;
    })(),
    wrong_pages: tmem.warm.badPages + (tmem.cold?.badPages ?? 0) + (tmem.seq?.badPages ?? 0),
  };
  console.log(JSON.stringify(result));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
