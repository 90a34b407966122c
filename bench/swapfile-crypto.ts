/**
 * What encrypting the swap file costs on the swap-in path, in one run:
 *
 *   (a) per 4 KiB page, on the dispatcher's own code (lib/swapfile.ts):
 *       CRC-32 of a page (node:zlib crc32) against SwapFile.read() of a slot
 *       from the page cache, plain (pread + CRC-32) and encrypted
 *       (pread + AES-256-GCM open), and the write side (writeRun of 32 pages);
 *       GC runs counted during each loop (node:crypto makes a Decipheriv and a
 *       4 KiB output Buffer per open: they show up as young-generation GCs);
 *   (b) through real faults: a swap with a swap file (encrypt false / true,
 *       alternately, twice each), incompressible pages pushed out with
 *       region.evict(), then every page touched once in random order, each
 *       touch timed with hrtime (mean, p50, p99) beside the dispatcher's own
 *       fault latency histogram.
 *
 * Prints a table and one JSON line; ratios are encrypted / plain. On a shared
 * host the figures move with the load of other processes: compare within a run.
 *
 * Usage: node dist/bench/swapfile-crypto.js [--dir DIR] [--pages N] [--reads N]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { open } from '../lib';
import { SLOT, SwapFile, openSwapFile } from '../lib/swapfile';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const dir = arg('--dir', os.tmpdir());
const PAGES = Number(arg('--pages', '4096'));
const READS = Number(arg('--reads', '20000'));

let gcs = 0;
new PerformanceObserver((l) => {
  gcs += l.getEntries().length;
}).observe({ entryTypes: ['gc'] });

function xorshiftFill(b: Uint8Array, seed: number): void {
  const w = new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  let x = seed | 1;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x >>> 0;
  }
}

interface Loop {
  nsPerOp: number;
  gcs: number;
}
async function loop(n: number, f: (i: number) => void): Promise<Loop> {
  for (let i = 0; i < Math.min(2000, n); i++) f(i);
  await new Promise((r) => setImmediate(r)); // let the observer flush
  const g0 = gcs;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  await new Promise((r) => setImmediate(r));
  return { nsPerOp: ns, gcs: gcs - g0 };
}

async function perPage(): Promise<Record<string, Loop>> {
  const slots = 1024;
  const page = new Uint8Array(SLOT);
  xorshiftFill(page, 1);
  const out: Record<string, Loop> = {};
  out.crc32 = await loop(READS, () => {
    crc32(page);
  });
  for (const encrypt of [false, true]) {
    const { fd } = openSwapFile(dir);
    try {
      const f = new SwapFile(fd, slots * SLOT, encrypt);
      const batch = new Uint8Array(32 * SLOT);
      xorshiftFill(batch, 2);
      const owners = new Int32Array(32).fill(1);
      const pages = Uint32Array.from({ length: 32 }, (_, i) => i);
      const run = new Int32Array(1);
      for (let s = 0; s < slots; s += 32) {
        if (f.allocRun(32, run) !== 32) throw new Error('allocRun');
        f.writeRun(run[0], batch, 32, owners, pages, 0);
      }
      const dst = new Uint8Array(SLOT);
      let bad = 0;
      out[encrypt ? 'read encrypted' : 'read plain'] = await loop(READS, (i) => {
        if (!f.read((i * 7919) % slots, dst, 0, false)) bad++;
      });
      if (bad) throw new Error(`${bad} reads failed their check`);
      // The write side: rewrite slots in runs of 32 (free them first).
      out[encrypt ? 'writeRun/page encrypted' : 'writeRun/page plain'] = await loop(Math.max(10, READS / 320), (i) => {
        const first = (i * 32) % slots;
        f.release(first, 32);
        if (f.allocRun(32, run) !== 32) throw new Error('allocRun');
        f.writeRun(run[0], batch, 32, owners, pages, 0);
      });
      out[encrypt ? 'writeRun/page encrypted' : 'writeRun/page plain'].nsPerOp /= 32;
    } finally {
      fs.closeSync(fd);
    }
  }
  return out;
}

interface Faults {
  encrypt: boolean;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  dispatcherP50Us: number;
  dispatcherP99Us: number;
  fromFile: number;
  wrong: number;
}
async function throughFaults(encrypt: boolean): Promise<Faults> {
  const swap = await open({
    residentLimit: '1MiB',
    poolLimit: '64KiB',
    pin: true,
    swapFile: { path: dir, size: (PAGES + 1024) * SLOT, encrypt },
  });
  try {
    const region = swap.region(PAGES * SLOT);
    const bytes = new Uint8Array(region.buffer);
    for (let p = 0; p < PAGES; p++) xorshiftFill(bytes.subarray(p * SLOT, (p + 1) * SLOT), p + 11);
    await region.evict();
    const before = swap.stats();
    const order = Uint32Array.from({ length: PAGES }, (_, i) => i);
    let x = 12345;
    for (let i = PAGES - 1; i > 0; i--) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const j = (x >>> 0) % (i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const times = new Float64Array(PAGES);
    const words = new Uint32Array(region.buffer);
    let sink = 0;
    for (let i = 0; i < PAGES; i++) {
      const p = order[i];
      const t0 = process.hrtime.bigint();
      sink ^= words[p * (SLOT / 4) + 1]; // the fault
      times[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    const s = swap.stats(); // before the check below, which faults every page again
    // Check every byte afterwards.
    const ref = new Uint8Array(SLOT);
    let wrong = 0;
    for (let p = 0; p < PAGES; p++) {
      xorshiftFill(ref, p + 11);
      const got = bytes.subarray(p * SLOT, (p + 1) * SLOT);
      for (let k = 0; k < SLOT; k++)
        if (got[k] !== ref[k]) {
          wrong++;
          break;
        }
    }
    const sorted = Array.from(times).sort((a, b) => a - b);
    const mean = sorted.reduce((a, b) => a + b, 0) / PAGES;
    void sink;
    await region.close();
    return {
      encrypt,
      meanUs: mean,
      p50Us: sorted[Math.floor(PAGES / 2)],
      p99Us: sorted[Math.floor(PAGES * 0.99)],
      dispatcherP50Us: s.latency.p50,
      dispatcherP99Us: s.latency.p99,
      fromFile: s.swapFile!.swapIns - before.swapFile!.swapIns,
      wrong,
    };
  } finally {
    await swap.close();
  }
}

async function main(): Promise<void> {
  const per = await perPage();
  const faults: Faults[] = [];
  for (const e of [false, true, false, true]) faults.push(await throughFaults(e));
  const f = (x: number): string => x.toFixed(2);
  console.log('per 4 KiB page                 ns/op     GCs in loop');
  for (const [k, v] of Object.entries(per))
    console.log(`  ${k.padEnd(28)} ${v.nsPerOp.toFixed(0).padStart(7)} ${String(v.gcs).padStart(8)}`);
  console.log(
    `  ratio read encrypted / plain: ${f(per['read encrypted'].nsPerOp / per['read plain'].nsPerOp)}; AES-GCM open vs CRC-32 alone: ` +
      `${f((per['read encrypted'].nsPerOp - per['read plain'].nsPerOp + per.crc32.nsPerOp) / per.crc32.nsPerOp)}`,
  );
  console.log('swap-in through real faults (us)   mean    p50    p99   dispatcher p50/p99  from file  wrong');
  for (const r of faults) {
    console.log(
      `  encrypt ${String(r.encrypt).padEnd(24)} ${f(r.meanUs).padStart(6)} ${f(r.p50Us).padStart(6)} ${f(r.p99Us).padStart(6)}   ${r.dispatcherP50Us}/${r.dispatcherP99Us}`.padEnd(
        75,
      ) +
        `${r.fromFile}`.padStart(6) +
        `${r.wrong}`.padStart(7),
    );
  }
  const med = (e: boolean, k: 'meanUs' | 'p50Us'): number =>
    faults.filter((r) => r.encrypt === e).reduce((a, r) => a + r[k], 0) / 2;
  const ratio = {
    readPerPage: per['read encrypted'].nsPerOp / per['read plain'].nsPerOp,
    swapInMean: med(true, 'meanUs') / med(false, 'meanUs'),
    swapInP50: med(true, 'p50Us') / med(false, 'p50Us'),
  };
  console.log(
    `ratios encrypted / plain: read ${f(ratio.readPerPage)}, swap-in mean ${f(ratio.swapInMean)}, swap-in p50 ${f(ratio.swapInP50)}`,
  );
  console.log(JSON.stringify({ perPage: per, faults, ratio }));
  if (faults.some((r) => r.wrong > 0)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
