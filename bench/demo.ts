/**
 * `npm run demo`: a region four times the resident limit, filled with data
 * that looks like a Node service's heap (JSON text, binary records, zero
 * pages, from bench/corpus.ts), read back and checked byte for byte, then
 * the swap's figures. Exits 1 if any byte differs.
 *
 * Usage: node dist/bench/demo.js [--resident 32MiB] [--region 128MiB]
 */
import { open } from '../lib/swap';
import { parseSize } from '../lib/size';
import { makeCorpus, PAGE_KINDS } from './corpus';

const PAGE = 4096;
const MiB = 2 ** 20;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const mib = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;

async function main(): Promise<void> {
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
