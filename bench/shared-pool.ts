/*
 * Shared pools (Xen tmem) against private ones, in the same run on the same file.
 *
 *   node dist/bench/shared-pool.js [--workers N] [--mib M] [--passes P] [--resident-limit S]
 *
 * N node:cluster workers (default 4) each map one M MiB file (default 256) read-only and read
 * every page of it in their own random order, P times (default 1), under a small residentLimit
 * (default 4MiB): every read faults and evicts. Run twice, once with a private swap per worker
 * and once with `shared` (one segment for the group), then reported:
 *
 *   memory     the private pools' bytes summed over the workers, against the shared segment's
 *              bytes in use (header, index and the part of the ring written)
 *   fault      each worker's per-fault p50 and p99 (the whole touch as the program sees it,
 *              eviction included), median over workers
 *   baseline   a 4 KiB pread of a random page of the same file from the page cache, in this
 *              process, after the runs: what a miss costs at least, beside the fault's round trip
 *
 * Every byte is checked in both runs (bench/helpers/shared-member.ts); a wrong byte fails the run.
 * With 2 vCPUs and 4 workers the workers compete for CPUs, in both runs alike.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PAGE, writeSharedFile } from './helpers/shared-file';
import type { MemberResult } from './helpers/shared-member';

const MiB = 2 ** 20;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const workers = Number(arg('--workers', '4'));
const mib = Number(arg('--mib', '256'));
const passes = Number(arg('--passes', '1'));
const residentLimit = arg('--resident-limit', '4MiB');
const MEMBER = path.join(__dirname, 'helpers', 'shared-member.js');

function runCluster(cfg: object): MemberResult[] {
  const r = spawnSync(process.execPath, [MEMBER, 'cluster'], {
    env: { ...process.env, TMEM_SHARED_CFG: JSON.stringify(cfg) },
    encoding: 'utf8',
    timeout: 900_000,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * MiB,
  });
  if (r.status !== 0) throw new Error(`cluster run exited ${r.status ?? r.signal}: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { workers: MemberResult[] };
  for (const w of out.workers) if (w.wrongPages !== 0) throw new Error(`worker ${w.pid}: ${w.wrongPages} wrong pages`);
  return out.workers;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function preadP50(file: string, pages: number): number {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(PAGE);
  const n = Math.min(pages, 20000);
  const lat = new Float64Array(n);
  let x = 12345;
  try {
    for (let k = 0; k < n; k++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const p = (x >>> 0) % pages;
      const t = performance.now();
      fs.readSync(fd, buf, 0, PAGE, p * PAGE);
      lat[k] = performance.now() - t;
    }
  } finally {
    fs.closeSync(fd);
  }
  return median(Array.from(lat)) * 1000;
}

function main(): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-bench-shared-'));
  try {
    const file = path.join(dir, 'data');
    const pages = (mib * MiB) / PAGE;
    writeSharedFile(file, pages);
    const base = { file, pages, workers, passes, residentLimit, poolLimit: `${Math.max(64, mib * 2)}MiB` };
    const size = `${Math.max(16, Math.ceil(mib * 0.75))}MiB`; // LZ4 takes this file to about a third

    const priv = runCluster(base);
    const shared = runCluster({ ...base, shared: { name: `bench-${process.pid}`, size } });
    const preadUs = preadP50(file, pages);

    const privBytes = priv.reduce((s, w) => s + w.stats.poolBytes, 0);
    const s = shared[0].stats.shared!;
    const row = (what: string, p: number, sh: number, unit: string): string =>
      `${what.padEnd(34)} ${p.toFixed(1).padStart(10)} ${sh.toFixed(1).padStart(10)} ${unit.padEnd(4)} ${(sh / p).toFixed(2).padStart(6)}`;
    const p50 = (ws: MemberResult[]): number => median(ws.map((w) => w.p50us));
    const p99 = (ws: MemberResult[]): number => median(ws.map((w) => w.p99us));
    console.log(`${workers} workers, ${mib} MiB file, ${passes} pass(es), residentLimit ${residentLimit}`);
    console.log(`${''.padEnd(34)} ${'private'.padStart(10)} ${'shared'.padStart(10)}      ${'ratio'.padStart(6)}`);
    console.log(row('memory of the pools (all workers)', privBytes / MiB, s.usedBytes / MiB, 'MiB'));
    console.log(row('fault p50 (median of workers)', p50(priv), p50(shared), 'µs'));
    console.log(row('fault p99 (median of workers)', p99(priv), p99(shared), 'µs'));
    console.log(
      `shared: ${s.group.storedPages} pages stored, ${shared[0].audit?.duplicates ?? '?'} twice (audit), ${s.group.hits} hits, ` +
        `${s.group.misses} misses, ${s.group.puts} puts, lock taken over ${s.group.lockSteals} times`,
    );
    console.log(
      `baseline: 4 KiB pread from the page cache, p50 ${preadUs.toFixed(1)} µs; shared fault p50 / pread ${(p50(shared) / preadUs).toFixed(1)}`,
    );
    console.log(
      JSON.stringify({
        workers,
        mib,
        passes,
        residentLimit,
        memory: { privateBytes: privBytes, sharedBytes: s.usedBytes, ratio: s.usedBytes / privBytes },
        faultP50us: { private: p50(priv), shared: p50(shared), ratio: p50(shared) / p50(priv) },
        faultP99us: { private: p99(priv), shared: p99(shared), ratio: p99(shared) / p99(priv) },
        preadP50us: preadUs,
        group: s.group,
        audit: shared[0].audit,
      }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
