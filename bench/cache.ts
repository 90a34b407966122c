/*
 * swap.cache() against a plain Map of the same objects and against lru-cache (issue 13).
 *
 *   node --expose-gc dist/bench/cache.js [entries=1000000] [residentLimit=64MiB]
 *
 * Each store runs in a fresh child process (so that heap and RSS are its own): the same N
 * objects (small records: ids, names, an e-mail, numbers, a Date, three tags, a nested
 * address, about 300 bytes as v8.serialize writes them) are set under string keys, then
 * reported:
 *
 *   set/s       entries set per second (making the object included, the same for every store)
 *   heap B/e    V8 heap used after a full GC, minus before the fill, per entry
 *   off-heap B/e  memory outside the V8 heap the JS side holds per entry: for Map and lru-cache
 *               the growth of ArrayBuffer and external memory, for tmem the index's typed arrays
 *               (cache.stats().indexBytes; V8 counts the regions' and the pool's buffers at
 *               their full virtual size, which says nothing of the memory they use: see RSS)
 *   RSS B/e     resident set growth per entry (for tmem: resident region pages, the pool, the
 *               index; a Map keeps everything on the heap)
 *   get hot     µs per get() of a random key among the first 100,000 (a working set that fits
 *               in residentLimit, read once before: its pages resident), median and p99 of batches
 *   get cold    tmem only: µs per get() right after cache.evict(), each key's pages in the pool
 *               (faults per get counted from the swap's stats)
 *
 * Gets are timed in batches of 1000 random keys (one clock read per batch: the figure is a
 * per-get mean over the batch). Cold gets: evict, then one batch of 200 random keys, repeated.
 * Measure on a quiet machine: other processes' load distorts every figure.
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import { LRUCache } from 'lru-cache';
import { open } from '../lib';

interface Result {
  store: string;
  entries: number;
  setPerSec: number;
  heapPerEntry: number;
  offHeapPerEntry: number;
  rssPerEntry: number;
  getHotP50: number;
  getHotP99: number;
  getColdP50?: number;
  getColdP99?: number;
  faultsPerColdGet?: number;
  cache?: unknown;
  swap?: unknown;
}

/** Entries in the hot working set of the hot get figure. */
const HOT = 100_000;

const WORDS = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma'.split(
  ' ',
);

function obj(i: number): object {
  const w = (k: number): string => WORDS[(i * 7 + k * 13) % WORDS.length];
  return {
    id: i,
    name: `${w(1)} ${w(2)} ${i}`,
    email: `user${i}@example.com`,
    score: (i % 1000) / 7,
    active: i % 3 === 0,
    created: new Date(1.7e12 + i * 1000),
    tags: [w(3), w(4), w(5)],
    address: { street: `${i % 999} ${w(6)} street`, city: w(7), zip: String(10000 + (i % 90000)) },
  };
}

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
};

function rssBytes(): number {
  return process.memoryUsage().rss;
}

function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

function timeGets(get: (k: string) => unknown, n: number, batches: number, batch: number): number[] {
  // Keys drawn from the first n entries.
  const out: number[] = [];
  let seed = 12345;
  for (let b = 0; b < batches; b++) {
    const keys: string[] = [];
    for (let i = 0; i < batch; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      keys.push(`key:${seed % n}`);
    }
    const t0 = process.hrtime.bigint();
    for (const k of keys) if (get(k) === undefined) throw new Error(`missing ${k}`);
    out.push(Number(process.hrtime.bigint() - t0) / 1000 / batch);
  }
  return out;
}

async function child(store: string, n: number, residentLimit: string): Promise<Result> {
  gc();
  const heap0 = process.memoryUsage();
  const rss0 = rssBytes();
  let set: (k: string, v: object) => void;
  let get: (k: string) => unknown;
  let extra: () => Promise<Partial<Result>> = () => Promise.resolve({});
  let cacheStats: () => { indexBytes: number } = () => ({ indexBytes: 0 });
  if (store === 'map') {
    const m = new Map<string, object>();
    set = (k, v) => m.set(k, v);
    get = (k) => m.get(k);
  } else if (store === 'lru-cache') {
    const m = new LRUCache<string, object>({ max: n });
    set = (k, v) => m.set(k, v);
    get = (k) => m.get(k);
  } else {
    const swap = await open({ residentLimit });
    const c = swap.cache<object>();
    set = (k, v) => c.set(k, v);
    get = (k) => c.get(k);
    cacheStats = () => c.stats();
    extra = async () => {
      const cold: number[] = [];
      let faults = 0,
        gets = 0;
      for (let r = 0; r < 10; r++) {
        await c.evict();
        const f0 = swap.stats().faults;
        cold.push(...timeGets(get, n, 1, 200));
        const f1 = swap.stats().faults;
        faults += f1.pool + f1.same + f1.staged + f1.swapFile - (f0.pool + f0.same + f0.staged + f0.swapFile);
        gets += 200;
      }
      // The dispatcher counts a fault right after resolving it: let it catch up.
      await new Promise((r) => setTimeout(r, 300));
      return {
        getColdP50: percentile(cold, 0.5),
        getColdP99: percentile(cold, 0.99),
        faultsPerColdGet: faults / gets,
        cache: c.stats(),
        swap: (({ residentBytes, poolBytes, compressionRatio, storedPages }) => ({
          residentBytes,
          poolBytes,
          compressionRatio,
          storedPages,
        }))(swap.stats()),
      };
    };
  }
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) set(`key:${i}`, obj(i));
  const setSec = Number(process.hrtime.bigint() - t0) / 1e9;
  gc();
  const heap1 = process.memoryUsage();
  const rss1 = rssBytes();
  // Hot: a working set that fits in residentLimit (the first HOT entries, ~20 MiB of tmem
  // pages), read once to bring it in, then timed.
  const hotKeys = Math.min(n, HOT);
  for (let i = 0; i < hotKeys; i++) get(`key:${i}`);
  const hot = timeGets(get, hotKeys, 100, 1000);
  const more = await extra();
  return {
    store,
    entries: n,
    setPerSec: Math.round(n / setSec),
    heapPerEntry: Math.round((heap1.heapUsed - heap0.heapUsed) / n),
    offHeapPerEntry: Math.round(
      store === 'tmem'
        ? cacheStats().indexBytes / n
        : (heap1.external + heap1.arrayBuffers - heap0.external - heap0.arrayBuffers) / n,
    ),
    rssPerEntry: Math.round((rss1 - rss0) / n),
    getHotP50: percentile(hot, 0.5),
    getHotP99: percentile(hot, 0.99),
    ...more,
  };
}

async function main(): Promise<void> {
  const [a0, a1, a2, a3] = process.argv.slice(2);
  if (a0 === '--child') {
    const r = await child(a1, Number(a2), a3);
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  }
  const n = Number(a0 ?? 1_000_000);
  const residentLimit = a1 ?? '64MiB';
  const load = os.loadavg()[0];
  console.log(
    `swap.cache() vs Map vs lru-cache: ${n} entries, tmem residentLimit ${residentLimit}, load average ${load.toFixed(1)}` +
      (load >= 3 ? ' (over 3: other processes distort these figures)' : ''),
  );
  const rows: Result[] = [];
  for (const store of ['map', 'lru-cache', 'tmem']) {
    const r = spawnSync(process.execPath, ['--expose-gc', __filename, '--child', store, String(n), residentLimit], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    });
    if (r.status !== 0) throw new Error(`${store}: exit ${r.status} ${r.signal}: ${r.stderr}`);
    rows.push(JSON.parse(r.stdout.trim().split('\n').pop()!) as Result);
  }
  const f = (x: number | undefined, d = 2): string => (x === undefined ? '-' : x.toFixed(d));
  console.log(
    'store       set/s     heap B/e  off-heap B/e  RSS B/e  get hot p50/p99 µs  get cold p50/p99 µs  faults/cold get',
  );
  for (const r of rows) {
    console.log(
      `${r.store.padEnd(10)} ${String(r.setPerSec).padStart(8)} ${String(r.heapPerEntry).padStart(9)} ${String(r.offHeapPerEntry).padStart(13)} ` +
        `${String(r.rssPerEntry).padStart(8)}  ${`${f(r.getHotP50)} / ${f(r.getHotP99)}`.padStart(18)}  ` +
        `${`${f(r.getColdP50)} / ${f(r.getColdP99)}`.padStart(19)}  ${f(r.faultsPerColdGet)}`,
    );
  }
  const t = rows.find((r) => r.store === 'tmem');
  if (t) console.log(`tmem: cache ${JSON.stringify(t.cache)}\n      swap ${JSON.stringify(t.swap)}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
