/*
 * Memory the store touches beyond its pool frames, per stored page.
 *
 *   node dist/bench/store-density.js [pattern=dense|spread|all] [N,N,...] [limitMiB,limitMiB,...]
 *
 * Each (pool limit, N) runs in a fresh child process: build and compress a corpus (bench/corpus.ts,
 * LZ4 through lz4-napi with its 4-byte length dropped, a codec byte in front, raw pages of 4096
 * bytes for what does not compress under 3072 bytes, same-filled pages skipped like the
 * dispatcher does), read the process's anonymous memory, create the store exactly as
 * lib/dispatcher/backends.ts does (arena maxBytes = poolLimit, 16 MiB chunks, maxPools 4,
 * maxPages = frames * 6, a persistent zsmalloc pool and an ephemeral zbud pool), put N pages
 * (9 of 10 into the persistent pool as frontswap does: object = region, index = page offset;
 * 1 of 10 into the ephemeral pool as cleancache does: object = file, index = file page), and
 * read anonymous memory again. Reported:
 *
 *   stored     pages the pools hold (a full pool refuses the rest)
 *   growth     anonymous memory growth (/proc/self/smaps_rollup Anonymous)
 *   pool       arena bytes the pools hold (poolStats poolBytes)
 *   B/page     (growth - pool) / stored: index + allocator metadata + fixed costs, per page.
 *              Noisy at small N: pool counts whole frames while zsmalloc has touched only the
 *              part of a new zspage it wrote (and the V8 heap moves by a few 100 KiB)
 *   meta/page  the same without the noise: a second run touches every arena frame right after
 *              creating the store and counts only the mappings the store's SharedArrayBuffers
 *              were given (not the V8 heap or malloc arenas): what creating the store touched
 *              plus what the puts touched, per stored page. Buffers under glibc's mmap
 *              threshold (the arena control, ~70 KiB at 1 GiB, and the stats cells, 16 KiB)
 *              live in the malloc heap and are not in it
 *   fixed      what creating the store touched in its own mappings (in meta/page)
 *   put/page   meta/page without `fixed`: what storing touched, per page
 *   index/page the radix index's share: nodes ever taken * node bytes / stored (exact)
 *
 * Patterns: dense = consecutive page offsets in each region / file; spread = offsets scattered
 * at random over a range 4 times the pages stored (a quarter of a region evicted).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { makeCorpus } from './corpus';
import { createStore } from '../lib/dispatcher/backends';
import type { DispatcherOptions } from '../lib/dispatcher/protocol';

const MiB = 1 << 20;

function anonBytes(): number {
  try {
    const m = /^Anonymous:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    /* fall back to status */
  }
  const m = /^RssAnon:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no RssAnon in /proc/self/status');
  return Number(m[1]) * 1024;
}

/** A mapping of /proc/self/smaps: [lo, hi) and its anonymous bytes. */
interface Vma {
  lo: number;
  hi: number;
  anon: number;
  name: string;
}

function vmas(): Vma[] {
  const out: Vma[] = [];
  for (const b of readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+[ \t]*(.*)$/m.exec(b);
    const an = /^Anonymous:\s+(\d+) kB/m.exec(b);
    if (head)
      out.push({
        lo: parseInt(head[1], 16),
        hi: parseInt(head[2], 16),
        anon: an ? Number(an[1]) * 1024 : 0,
        name: head[3],
      });
  }
  return out;
}

/**
 * The address ranges mapped between two snapshots (the store's SharedArrayBuffers: glibc maps
 * each one above its mmap threshold on its own; the malloc heap is left out).
 */
function newRanges(before: Vma[], after: Vma[]): [number, number][] {
  const out: [number, number][] = [];
  for (const v of after) {
    if (v.name !== '') continue;
    let lo = v.lo;
    for (const u of before) {
      if (u.hi <= lo || u.lo >= v.hi) continue;
      if (u.lo > lo) out.push([lo, u.lo]);
      lo = Math.max(lo, u.hi);
    }
    if (lo < v.hi) out.push([lo, v.hi]);
  }
  return out;
}

/** Anonymous bytes of the mappings that hold any of `ranges` (merged neighbours included). */
function anonOver(vs: Vma[], ranges: [number, number][]): number {
  let sum = 0;
  for (const v of vs) if (ranges.some(([lo, hi]) => lo < v.hi && hi > v.lo)) sum += v.anon;
  return sum;
}

/** Collect garbage and give background threads time to free what it released. */
async function settle(gc: () => void): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Row {
  limit: number;
  n: number;
  stored: number;
  growth: number;
  pool: number;
  indexBytes: number;
  /** Anonymous bytes the store's own mappings gained, arena frames left out (pretouch runs). */
  meta: number;
  /** The part of `meta` that creating the store touched. */
  fixed: number;
}

async function child(limitBytes: number, n: number, pattern: string, pretouch: boolean): Promise<Row> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run the child with --expose-gc');
  // corpus, compressed once up front into one buffer (the put loop allocates nothing)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lz4 = require('lz4-napi') as { compressSync(b: Buffer): Buffer };
  const K = 4096;
  const corpus = makeCorpus(K, 7);
  const blob = new Uint8Array(K * 4097);
  const offs = new Int32Array(K),
    lens = new Int32Array(K);
  let m = 0,
    at = 0;
  const w = new Int32Array(corpus.data.buffer);
  for (let i = 0; i < K; i++) {
    let same = true;
    for (let j = i * 1024 + 1; j < (i + 1) * 1024 && same; j++) same = w[j] === w[i * 1024];
    if (same) continue;
    const page = Buffer.from(corpus.data.buffer, i * 4096, 4096);
    const out = lz4.compressSync(page);
    const c = out.length - 4;
    offs[m] = at;
    if (c <= 3072) {
      blob[at] = 1;
      blob.set(out.subarray(4), at + 1);
      lens[m] = c + 1;
    } else {
      blob.set(page, at);
      lens[m] = 4096;
    }
    at += lens[m];
    m++;
  }
  const views = Array.from({ length: m }, (_, k) => blob.subarray(offs[k], offs[k] + lens[k]));
  // offsets of the spread pattern: a random permutation prefix over 4x the pages (no duplicates)
  const span = pattern === 'spread' ? 4 : 1;
  const perm = new Int32Array(65536 * span);
  for (let i = 0; i < perm.length; i++) perm[i] = i;
  let seed = 12345;
  for (let i = perm.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) | 0;
    const j = (seed >>> 1) % (i + 1);
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  // warm the JIT on another store (kept alive: freeing it would move the reading) so that
  // compiling the hot path is not counted
  const warm = createStore({ poolLimitBytes: 4 * MiB, allocator: 'zsmalloc' } as DispatcherOptions);
  {
    for (let i = 0; i < 3000; i++) {
      const k = i % m;
      warm.store.put(
        i % 10 === 9 ? warm.handle.cleancachePool : warm.handle.frontswapPool,
        1 + (i >>> 10),
        0,
        0,
        i,
        views[k],
        lens[k],
      );
    }
  }
  await settle(gc);
  const v0 = vmas();
  const before = anonBytes();
  const { store, handle } = createStore({ poolLimitBytes: limitBytes, allocator: 'zsmalloc' } as DispatcherOptions);
  const v1 = vmas();
  const ranges = newRanges(v0, v1);
  // what the mappings now holding the store held before (neighbours glibc merged them with)
  const base = v0
    .filter((u) => v1.some((v) => u.lo >= v.lo && u.hi <= v.hi && ranges.some(([lo, hi]) => lo < v.hi && hi > v.lo)))
    .reduce((x, u) => x + u.anon, 0);
  const fixed = anonOver(v1, ranges) - base;
  let touched = 0,
    t1 = 0;
  if (pretouch) {
    // commit every arena frame now (a write faults a page in whatever it writes), so that
    // only what is not the arena grows from here
    const created = anonBytes();
    for (const b of store.arena.bytes) for (let o = 0; o < b.length; o += 4096) b[o] = 0;
    await settle(gc);
    touched = anonBytes() - created;
    t1 = anonOver(vmas(), ranges);
  }
  const fs = handle.frontswapPool,
    cc = handle.cleancachePool;
  let fsi = 0,
    cci = 0;
  for (let i = 0; i < n; i++) {
    const k = i % m;
    const src = views[k];
    if (i % 10 === 9) {
      const j = cci++;
      // files of 256 pages
      const idx = span === 1 ? j & 255 : perm[(j & 255) * span + ((j >>> 8) & (span - 1))] & 1023;
      store.put(cc, 1 + (j >>> 8), 0, 0, idx, src, lens[k]);
    } else {
      const j = fsi++;
      // regions of 65536 pages (256 MiB)
      const idx = span === 1 ? j & 65535 : perm[j & 65535];
      store.put(fs, 1 + (j >>> 16), 0, 0, idx, src, lens[k]);
    }
  }
  await settle(gc);
  const after = anonBytes();
  const t2 = anonOver(vmas(), ranges);
  const a = store.poolStats(fs),
    b = store.poolStats(cc);
  const row = {
    limit: limitBytes,
    n,
    stored: a.pages + b.pages,
    growth: after - before - touched,
    pool: a.poolBytes + b.poolBytes,
    indexBytes: store.indexStats().touchedNodes * store.indexStats().nodeBytes,
    meta: pretouch ? fixed + t2 - t1 : NaN,
    fixed,
  };
  // Keep everything alive until after the reading. Freeing a large buffer (the corpus) would also
  // raise glibc's mmap threshold above the arena's 16 MiB chunks, which then come from the brk heap,
  // where calloc clears the top pad of each (~130 KiB per chunk touched at creation).
  if (views.length === 0 || perm.length === 0 || corpus.pages === 0) console.log(store.handle(), warm.handle);
  return row;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const r = await child(
      Number(process.argv[3]),
      Number(process.argv[4]),
      process.argv[5],
      process.argv[6] === 'pretouch',
    );
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const which = process.argv[2] ?? 'all';
  const patterns = which === 'all' ? ['dense', 'spread'] : [which];
  for (const p of patterns)
    if (p !== 'dense' && p !== 'spread') throw new RangeError(`pattern: expected dense, spread or all, got ${p}`);
  const ns = (process.argv[3] ?? '2000,20000,200000').split(',').map(Number);
  const limits = (process.argv[4] ?? '64,1024').split(',').map((x) => Number(x) * MiB);
  const run = (limit: number, n: number, pattern: string, pretouch: boolean): Row => {
    const args = [
      '--expose-gc',
      __filename,
      '--child',
      String(limit),
      String(n),
      pattern,
      pretouch ? 'pretouch' : 'plain',
    ];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Row;
  };
  const kb = (x: number) => (x / 1024).toFixed(0).padStart(8);
  const f = (x: number) => x.toFixed(1).padStart(8);
  let worst = 0;
  for (const pattern of patterns) {
    console.log(`pattern ${pattern}`);
    console.log(
      '     limit       N   stored  growth KiB  pool KiB    B/page  meta/page  fixed KiB  put/page  index/page',
    );
    for (const limit of limits) {
      for (const n of ns) {
        const r = run(limit, n, pattern, false);
        const m = run(limit, n, pattern, true);
        const per = (r.growth - r.pool) / Math.max(1, r.stored);
        const meta = m.meta / Math.max(1, m.stored);
        if (pattern === 'dense') worst = Math.max(worst, meta);
        console.log(
          `  ${(limit / MiB + ' MiB').padStart(8)} ${String(n).padStart(7)} ${String(r.stored).padStart(8)} ${kb(r.growth)}    ${kb(r.pool)}  ${f(per)}   ${f(meta)}   ${kb(m.fixed)}  ${f((m.meta - m.fixed) / Math.max(1, m.stored))}    ${f(m.indexBytes / Math.max(1, m.stored))}`,
        );
      }
    }
  }
  if (patterns.includes('dense')) {
    console.log(
      `target (dense): <= 16 B of index + metadata per stored page at every N: ${worst <= 16 ? 'met' : 'MISSED'} (worst meta/page ${worst.toFixed(1)} B)`,
    );
  }
}

void main();
