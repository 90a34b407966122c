/*
 * Store benchmark: put/get throughput of the tmem core per zpool driver on an lz4-compressed
 * page corpus, and space efficiency (compressed bytes stored / arena bytes held).
 *
 *   node dist/bench/store.js [pages=100000]
 *
 * Pages that lz4 cannot shrink below 4096 bytes are stored raw (4096 bytes). Each driver runs in
 * a persistent pool (nothing is evicted), region id 1, page index = corpus page. After the first
 * pass a third of the pages is flushed at random and the pool compacted, to show fragmentation.
 * Prints a table, then one JSON line with every figure.
 */

import { compressSync } from 'lz4-napi';
import { Store } from '../lib/tmem';
import { Zbud } from '../lib/zpool/zbud';
import { makeCorpus, PAGE_KINDS } from './corpus';

const pages = Number(process.argv[2] ?? 100000);
if (!Number.isInteger(pages) || pages < 1)
  throw new RangeError(`pages: expected a positive integer, got ${process.argv[2]}`);

const corpus = makeCorpus(pages, 42);
const comp: Uint8Array[] = [];
let compBytes = 0;
const t0 = process.hrtime.bigint();
for (let i = 0; i < pages; i++) {
  const page = Buffer.from(corpus.data.buffer, corpus.data.byteOffset + i * 4096, 4096);
  const c = compressSync(page);
  const b = c.length < 4096 ? new Uint8Array(c.buffer, c.byteOffset, c.length) : new Uint8Array(page);
  comp.push(b);
  compBytes += b.length;
}
const compressNs = Number(process.hrtime.bigint() - t0) / pages;

function rate(n: number, ns: bigint): number {
  return Math.round(n / (Number(ns) / 1e9));
}

interface Row {
  driver: string;
  putOps: number;
  getOps: number;
  efficiency: number;
  afterChurn: number;
  frames: number;
  objectsPerFrame: number;
  minObjectsPerFrame?: number;
  maxObjectsPerFrame?: number;
}
const rows: Row[] = [];
for (const driver of ['zsmalloc', 'zbud']) {
  const s = Store.create({
    arena: { maxBytes: Math.ceil(pages * 4096 * 1.1) + (64 << 20) },
    maxPages: pages + 1024,
    maxObjects: 1024,
  });
  const pool = s.createPool({ persistent: true, driver });
  const dst = new Uint8Array(4096);
  // warm up the JIT on a few pages of another object
  for (let i = 0; i < Math.min(2000, pages); i++) {
    s.put(pool, 2, 0, 0, i, comp[i], comp[i].length);
    s.get(pool, 2, 0, 0, i, dst);
  }
  s.flushObject(pool, 2, 0, 0);
  let t = process.hrtime.bigint();
  for (let i = 0; i < pages; i++)
    if (!s.put(pool, 1, 0, 0, i, comp[i], comp[i].length)) throw new Error(`put ${i} refused`);
  const putOps = rate(pages, process.hrtime.bigint() - t);
  const st = s.poolStats(pool);
  const efficiency = st.bytes / st.poolBytes;
  const zs = s.zpool(pool).stats();
  t = process.hrtime.bigint();
  let sum = 0;
  for (let i = 0; i < pages; i++) sum += s.get(pool, 1, 0, 0, i, dst);
  const getOps = rate(pages, process.hrtime.bigint() - t);
  if (sum !== compBytes) throw new Error(`got ${sum} bytes back, stored ${compBytes}`);
  for (let i = 0; i < pages; i += 997) {
    const n = s.get(pool, 1, 0, 0, i, dst);
    for (let j = 0; j < n; j++) if (dst[j] !== comp[i][j]) throw new Error(`page ${i} differs at ${j}`);
  }
  const row: Row = {
    driver,
    putOps,
    getOps,
    efficiency: +efficiency.toFixed(4),
    afterChurn: 0,
    frames: zs.frames,
    objectsPerFrame: +(zs.objects / zs.frames).toFixed(3),
  };
  if (driver === 'zbud') {
    (s.zpool(pool) as Zbud).check(); // throws unless every frame holds 1 or 2 objects
    const b = zs as unknown as { buddied: number; unbuddied: number };
    row.minObjectsPerFrame = b.unbuddied > 0 ? 1 : 2;
    row.maxObjectsPerFrame = b.buddied > 0 ? 2 : 1;
  }
  let x = 12345;
  for (let i = 0; i < pages; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    if ((x >>> 0) % 3 === 0) s.flushPage(pool, 1, 0, 0, i);
  }
  s.zpool(pool).compact();
  const st2 = s.poolStats(pool);
  row.afterChurn = +(st2.bytes / st2.poolBytes).toFixed(4);
  rows.push(row);
  s.destroyPool(pool);
}

const kinds = PAGE_KINDS.map(
  (k, i) => `${k} ${((corpus.kinds.filter((x) => x === i).length / pages) * 100).toFixed(1)}%`,
).join(', ');
console.log(
  `corpus: ${pages} pages (${kinds}); lz4 ratio ${((pages * 4096) / compBytes).toFixed(2)}; compress ${(compressNs / 1000).toFixed(1)} us/page`,
);
console.log('driver    | put ops/s | get ops/s | efficiency | after 1/3 flushed + compact | frames  | objs/frame');
for (const r of rows) {
  console.log(
    `${r.driver.padEnd(9)} | ${String(r.putOps).padStart(9)} | ${String(r.getOps).padStart(9)} | ${r.efficiency.toFixed(4).padStart(10)} | ${r.afterChurn.toFixed(4).padStart(27)} | ${String(r.frames).padStart(7)} | ${r.objectsPerFrame}` +
      (r.minObjectsPerFrame !== undefined ? ` (min ${r.minObjectsPerFrame}, max ${r.maxObjectsPerFrame})` : ''),
  );
}
const zsm = rows.find((r) => r.driver === 'zsmalloc') as Row;
const zb = rows.find((r) => r.driver === 'zbud') as Row;
console.log(
  `targets: zsmalloc efficiency >= 0.97: ${zsm.efficiency >= 0.97 ? 'met' : 'MISSED'}; zbud 1..2 objects per frame: ${zb.minObjectsPerFrame! >= 1 && zb.maxObjectsPerFrame! <= 2 ? 'met' : 'MISSED'}`,
);
console.log(
  JSON.stringify({
    bench: 'store',
    pages,
    compressedBytes: compBytes,
    lz4Ratio: +((pages * 4096) / compBytes).toFixed(3),
    drivers: rows,
  }),
);
