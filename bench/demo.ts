/**
 * `npm run demo`.
 *
 * As root on a host with a memory cgroup controller: a Node process in a memory cgroup made
 * for it (--limit, default 256MiB) with --data (default twice the limit) of service data
 * (JSON logs and records, a quarter zero pages: bench/helpers/log-pages.ts). First in plain
 * ArrayBuffers: the kernel kills it. Then in a tmem region opened with no size option at all:
 * the budget comes from the cgroup, the process lives, every byte is checked, and the demo
 * shows the budget and where the bytes went. The cgroup is removed at the end.
 *
 * Elsewhere (or with --no-cgroup): a region four times a resident limit, filled with data
 * that looks like a Node service's heap (bench/corpus.ts), read back and checked byte for
 * byte, then the swap's figures. Exits 1 if any byte differs or the tmem process dies.
 *
 * Usage: node dist/bench/demo.js [--limit 256MiB] [--data 512MiB] [--no-cgroup]
 *                                [--resident 32MiB] [--region 128MiB]
 */
import * as path from 'node:path';
import { open } from '../lib/swap';
import { parseSize } from '../lib/size';
import { makeCorpus, PAGE_KINDS } from './corpus';
import { makeMemcg, memcgRoot, spawnInMemcg } from './helpers/memcg';

const PAGE = 4096;
const MiB = 2 ** 20;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const mib = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;

interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
  peak: number;
  oomKills: number;
}

/** Runs the budget child (bench/helpers/budget-child.ts) in a new cgroup, echoing its progress with `prefix`. */
function inCgroup(mode: string, limit: number, data: number): Promise<ChildEnd> {
  const cg = makeMemcg(`tmem-demo-${mode}-${process.pid}`, limit);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawnInMemcg(cg, [path.join(__dirname, 'helpers', 'budget-child.js'), mode, String(data)], 900_000);
    let stderr = '';
    let line = '';
    child.stdout!.resume();
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderr += d;
      line += d;
      let nl;
      while ((nl = line.indexOf('\n')) >= 0) {
        const l = line.slice(0, nl);
        line = line.slice(nl + 1);
        if (!l.startsWith('result:') && !l.startsWith('tmem: budget')) console.log(`  | ${l}`);
      }
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const end = { code, signal, stderr, ms: performance.now() - t0, peak: cg.peak(), oomKills: cg.oomKills() };
      cg.remove();
      resolve(end);
    });
  });
}

async function cgroupDemo(version: number): Promise<void> {
  const limit = parseSize(arg('--limit', '256MiB'), '--limit');
  const data = Math.floor(parseSize(arg('--data', String(2 * limit)), '--data') / PAGE) * PAGE;
  console.log(`tmem demo: a Node process in a memory cgroup (v${version}) of ${mib(limit)}, with ${mib(data)} of data`);
  console.log('(JSON logs and records, a quarter zero pages; every byte is checked after writing)\n');

  console.log('1. plain ArrayBuffers');
  const plain = await inCgroup('plain', limit, data);
  console.log(
    plain.signal === 'SIGKILL'
      ? `   killed by the kernel (SIGKILL, oom_kill ${plain.oomKills}) after ${(plain.ms / 1000).toFixed(1)} s, peak ${mib(plain.peak)}\n`
      : `   ended with ${plain.signal ?? `code ${plain.code}`} (peak ${mib(plain.peak)})\n`,
  );

  console.log('2. the same data in a tmem region: open() with no size option, the budget comes from the cgroup');
  const run = await inCgroup('tmem', limit, data);
  const m = /result: (.*)/.exec(run.stderr);
  if (run.signal || run.code !== 0 || !m) {
    console.log(
      `   FAILED: ${run.signal ?? `code ${run.code}`}, oom_kill ${run.oomKills}\n${run.stderr.split('\n').slice(-8).join('\n')}`,
    );
    process.exitCode = 1;
    return;
  }
  const r = JSON.parse(m[1]) as {
    bytes: number;
    writeMs: number;
    readMs: number;
    warnings: number;
    residentBytes: number;
    poolBytes: number;
    storedPages: number;
    samePages: number;
    compressionRatio: number;
    budget: {
      bytes: number;
      residentLimit: number;
      poolLimit: number;
      metadataBytes: number;
      outsideBytes: number;
      marginBytes: number;
      pressure: number;
      notHeld: number;
    };
  };
  const b = r.budget;
  console.log(
    `   alive, every byte verified (written in ${(r.writeMs / 1000).toFixed(1)} s, read back in ${(r.readMs / 1000).toFixed(1)} s)\n`,
  );
  console.log('summary');
  console.log(
    `  cgroup limit         ${mib(limit)}; peak usage ${mib(run.peak)} with tmem (plain: ${mib(plain.peak)}, killed)`,
  );
  console.log(`  data                 ${mib(r.bytes)} (${(r.bytes / limit).toFixed(1)}x the limit)`);
  console.log(
    `  the budget           ${mib(b.bytes)} = limit - ${mib(b.outsideBytes)} used outside tmem - ${mib(b.marginBytes)} margin`,
  );
  console.log(`    resident pages     ${mib(r.residentBytes)} (limit now ${mib(b.residentLimit)})`);
  console.log(
    `    pool               ${mib(r.poolBytes)} (limit now ${mib(b.poolLimit)}) holding ${r.storedPages} pages, ${mib(r.storedPages * PAGE)} (ratio ${r.compressionRatio.toFixed(2)})`,
  );
  console.log(`    same-filled        ${r.samePages} pages, ${mib(r.samePages * PAGE)} kept as one word each`);
  console.log(`    metadata           ${mib(b.metadataBytes)} (page state, index)`);
  console.log(
    `  budget not held      ${b.notHeld} times${r.warnings > 0 ? ' (a TMEM_BUDGET_EXCEEDED warning said why)' : ''}; pressure at the end ${b.pressure}`,
  );
  console.log(`  time                 ${(run.ms / 1000).toFixed(1)} s in all`);
}

async function main(): Promise<void> {
  const where = memcgRoot();
  if (!process.argv.includes('--no-cgroup')) {
    if ('version' in where) return cgroupDemo(where.version);
    console.log(`(no cgroup demo: ${where.reason}; showing a region four times its resident limit instead)\n`);
  }
  return regionDemo();
}

async function regionDemo(): Promise<void> {
  const residentLimit = parseSize(arg('--resident', '32MiB'), '--resident');
  const regionBytes = parseSize(arg('--region', '128MiB'), '--region');
  const pages = Math.ceil(regionBytes / PAGE);
  const t0 = performance.now();

  // 4096 distinct pages of corpus, tiled over the region; each page carries its
  // own index in its first 4 bytes so a page served at the wrong place is caught.
  const src = makeCorpus(Math.min(4096, pages), 7);
  const kinds = [0, 0, 0, 0];
  for (let p = 0; p < pages; p++) kinds[src.kinds[p % src.pages]]++;
  const fillPage = (out: Uint8Array, p: number): void => {
    const q = p % src.pages;
    out.set(src.data.subarray(q * PAGE, (q + 1) * PAGE), p * PAGE);
    if (src.kinds[q] !== 0) {
      // zero pages stay zero
      out[p * PAGE] = p & 0xff;
      out[p * PAGE + 1] = (p >>> 8) & 0xff;
      out[p * PAGE + 2] = (p >>> 16) & 0xff;
      out[p * PAGE + 3] = (p >>> 24) & 0xff;
    }
  };

  console.log(`tmem demo: a ${mib(regionBytes)} region with a ${mib(residentLimit)} resident limit`);
  const swap = await open({ residentLimit, poolLimit: Math.max(64 * MiB, regionBytes) });
  const region = swap.region(regionBytes);
  const view = new Uint8Array(region.buffer);

  console.log(`writing ${pages} pages (${PAGE_KINDS.map((k, i) => `${kinds[i]} ${k}`).join(', ')}) ...`);
  let t = performance.now();
  for (let p = 0; p < pages; p++) fillPage(view, p);
  const s1 = swap.stats();
  console.log(
    `  done in ${((performance.now() - t) / 1000).toFixed(2)} s; ${mib(s1.residentBytes)} resident, ` +
      `${s1.evictions} pages evicted so far (cold pages are compressed while you write)`,
  );

  console.log('reading every byte back and checking it ...');
  t = performance.now();
  const expected = new Uint8Array(PAGE * 64);
  let bad = 0,
    firstBad = -1;
  for (let p0 = 0; p0 < pages; p0 += 64) {
    const n = Math.min(64, pages - p0);
    for (let k = 0; k < n; k++) {
      const q = (p0 + k) % src.pages;
      expected.set(src.data.subarray(q * PAGE, (q + 1) * PAGE), k * PAGE);
      if (src.kinds[q] !== 0) {
        const p = p0 + k;
        expected[k * PAGE] = p & 0xff;
        expected[k * PAGE + 1] = (p >>> 8) & 0xff;
        expected[k * PAGE + 2] = (p >>> 16) & 0xff;
        expected[k * PAGE + 3] = (p >>> 24) & 0xff;
      }
    }
    const got = Buffer.from(view.buffer, p0 * PAGE, n * PAGE);
    if (got.compare(expected, 0, n * PAGE) !== 0) {
      for (let k = 0; k < n; k++) {
        if (got.compare(expected, k * PAGE, (k + 1) * PAGE, k * PAGE, (k + 1) * PAGE) !== 0) {
          bad++;
          if (firstBad < 0) firstBad = p0 + k;
        }
      }
    }
  }
  const readSec = (performance.now() - t) / 1000;
  const bytes = pages * PAGE;
  if (bad > 0) {
    console.log(`verification FAILED: ${bad} of ${pages} pages differ (first: page ${firstBad})`);
  } else {
    console.log(`verified ${bytes} bytes: OK (${readSec.toFixed(2)} s)`);
  }

  const s = swap.stats();
  const f = s.faults;
  console.log('\nsummary');
  console.log(`  region (logical)     ${mib(bytes)}`);
  console.log(
    `  resident now         ${mib(s.residentBytes)} (limit ${mib(residentLimit)}; ${s.stagedPages} pages staged)`,
  );
  console.log(
    `  out of residency     ${mib(s.logicalBytes)} = ${s.storedPages} pages compressed + ${s.samePages} same-filled`,
  );
  console.log(
    `  pool                 ${mib(s.poolBytes)} of arena for ${mib(s.compressedBytes)} compressed ` +
      `(compression ratio ${s.compressionRatio.toFixed(2)}, ${s.hugePages} huge pages stored raw)`,
  );
  console.log(
    `  faults               ${f.zero} zero, ${f.pool} from the pool, ${f.same} same-filled, ` +
      `${f.staged} second chance (staged), ${f.writeProtect} write-protect`,
  );
  console.log(
    `  fault service time   p50 ${s.latency.p50} us, p90 ${s.latency.p90} us, p99 ${s.latency.p99} us, ` +
      `p99.9 ${s.latency.p999} us (in the dispatcher, ${s.latency.count} faults)`,
  );
  console.log(
    `  evictions            ${s.evictions} (${s.evictionsWithoutCompression} without recompression: clean pages ` +
      `whose compressed copy was kept); refused: ${s.refused.poolLimit} pool limit, ${s.refused.alloc} allocator`,
  );

  await region.close();
  await swap.close();
  console.log(`\ndone in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (bad > 0) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
