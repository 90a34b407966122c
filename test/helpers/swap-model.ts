/**
 * Model-based checking of a whole swap (shared by test/swap-model.test.ts and
 * bench/soak-swap.ts): generated sequences of writes, reads, evictions,
 * flushes, region creation and closing, run against a real swap (real faults,
 * real eviction, pool, swap file, idle pass) and against a model that is one
 * Uint8Array per region. Every read compares every byte of what it touched.
 *
 * A command makes a child process (fork, then exec), after which the pages resident at that
 * moment can no longer be moved by UFFDIO_MOVE until written (README "Child processes").
 *
 * Commands name regions and pages by plain integers taken modulo what is live
 * when they run, so any shrunk subsequence is still a valid program.
 *
 * Region kinds: 'anon' (swap.region), 'ro' (swap.mapFile, read-only: the file
 * is the model's starting point; writes are private and never reach the file)
 * and 'rw' (writable mapping: the file on disk must equal the model after
 * flush() and close()). A writable mapping is only written below the file's
 * end: bytes past EOF in its last page have no defined fate (the file cannot
 * hold them, cleancache may or may not).
 */
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, type OpenOptions, type Region, type FileRegion, type Swap, type SwapStats } from '../../lib';
import { withTimeout } from './harness';
import { PAGE, fillPage as fillPatternPage, kindOf as patternKind, mix } from './swap-pattern';

/**
 * Kind 4, "words": JSON-like text from a seeded generator, which lz4 compresses to about half
 * and zstd at a high level noticeably better (the idle pass's recompression has work to do;
 * swap-pattern's text kind is a repeated motif that both squeeze alike).
 */
export const KIND_WORDS = 4;
const WORDS = ['{"id":', '"name":"', 'alpha', 'beta', 'gamma', '"tags":[', '],', 'delta', 'epsilon', '}', ',', '"x":'];

/** Kind of page p at version v: swap-pattern's four kinds, plus words for a quarter of the text pages. */
export function kindOf(p: number, v: number): number {
  const k = patternKind(p, v);
  return k === 3 && (mix(v, p) & 3) === 0 ? KIND_WORDS : k;
}

/** Writes page p at version v of `kind` into dst[off..off+4096). */
export function fillPage(dst: Uint8Array, off: number, p: number, v: number, kind: number): void {
  if (kind !== KIND_WORDS) {
    fillPatternPage(dst, off, p, v, kind);
    return;
  }
  let x = mix(p, v) | 1;
  let o = off;
  const end = off + PAGE;
  while (o < end) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const w = WORDS[(x >>> 8) % WORDS.length] + String((x >>> 16) % 997);
    for (let i = 0; i < w.length && o < end; i++) dst[o++] = w.charCodeAt(i);
  }
}

export type RegionKind = 'anon' | 'ro' | 'rw';

export type Cmd =
  /** Writes a whole page of region r: kind 0 zero, 1 same-filled, 2 random, 3 text (helpers/swap-pattern.ts), 4 words. */
  | { t: 'write'; r: number; p: number; kind: number; v: number }
  /** Writes a few bytes into a page (a read-modify of whatever state the page is in). */
  | { t: 'poke'; r: number; p: number; off: number; bytes: number[] }
  /** Writes n consecutive pages from p (wrapping), kinds mixed by kindOf(page, v): pressure on residency and the pool. */
  | { t: 'fill'; r: number; p: number; n: number; v: number }
  | { t: 'read'; r: number; p: number }
  | { t: 'readAll'; r: number }
  /** region.evict(), awaited. */
  | { t: 'evict'; r: number }
  /** A page write, then region.evict() at once. */
  | { t: 'writeEvict'; r: number; p: number; kind: number; v: number }
  /** region.evict() not awaited: the whole region is read and checked while the dispatcher evicts it. */
  | { t: 'evictRead'; r: number }
  | { t: 'create'; kind: RegionKind; pages: number; tail: number; seed: number }
  | { t: 'close'; r: number }
  /**
   * region(r).evict(), then region(r2).close() (r2 may be r) while it runs: sent after the
   * evict request and `spin` ms of busy main thread (the dispatcher shares its CPU).
   */
  | { t: 'evictClose'; r: number; r2: number; spin: number }
  /** flush() of a writable file region (the file must equal the model); a read-only one must be unchanged. */
  | { t: 'flush'; r: number }
  /** A pause: 60 ms (background eviction, write-back) or 1100 ms (long enough for an idle pass). */
  | { t: 'wait'; ms: number }
  /**
   * A child process (spawnSync: fork, then exec): every page resident now is shared
   * copy-on-write from here on, until written, and UFFDIO_MOVE refuses it.
   */
  | { t: 'spawn' };

export interface ModelInput {
  init: Extract<Cmd, { t: 'create' }>[];
  cmds: Cmd[];
}

export interface ModelConfig {
  name: string;
  /** open() options; swapFile is filled in per run when `swapFile` is set. */
  open: Omit<OpenOptions, 'swapFile'>;
  /** Swap file size; the path is a directory (O_TMPFILE) or a file in the run's directory. */
  swapFile?: { size: string; asDirectory: boolean };
  /** region.evict() must leave no page of the region resident (nothing can be refused). */
  evictEmpties: boolean;
  /** The config fills its swap file on purpose: ioErrors ("the swap file is full") may count. */
  expectIoErrors?: boolean;
  /** Include waits (60 ms, sometimes 1100 ms for the idle pass) among the commands. */
  waits?: boolean;
}

export const CONFIGS: ModelConfig[] = [
  {
    name: 'residentLimit 64KiB, big pool, lz4/zsmalloc',
    open: { residentLimit: '64KiB', poolLimit: '16MiB', compressor: 'lz4', allocator: 'zsmalloc' },
    evictEmpties: true,
  },
  {
    // Regions stay resident: evict() has many pages to push, and polls for faults and requests
    // (a close() sent with it) every 16 pages.
    name: 'residentLimit 1MiB (regions stay resident until evicted), zstd/zbud',
    open: { residentLimit: '1MiB', poolLimit: '4MiB', compressor: 'zstd', allocator: 'zbud' },
    evictEmpties: true,
  },
  {
    name: 'poolLimit 64KiB without a swap file, zstd/zbud (stores refused, pages stay resident)',
    open: { residentLimit: '64KiB', poolLimit: '64KiB', compressor: 'zstd', allocator: 'zbud' },
    evictEmpties: false,
  },
  {
    name: 'poolLimit 128KiB + 2MiB swap file (directory), lz4/zbud, idle after 50 ms',
    open: {
      residentLimit: '64KiB',
      poolLimit: '128KiB',
      compressor: 'lz4',
      allocator: 'zbud',
      idle: { after: 50, budget: 1000 },
    },
    swapFile: { size: '2MiB', asDirectory: true },
    evictEmpties: true,
    waits: true,
  },
  {
    name: "poolLimit 256KiB + 2MiB swap file (file), zstd/zsmalloc, idle after 50 ms, writeback 'idle'",
    open: {
      residentLimit: '64KiB',
      poolLimit: '256KiB',
      compressor: 'zstd',
      allocator: 'zsmalloc',
      idle: { after: 50, budget: 1000, writeback: 'idle' },
    },
    swapFile: { size: '2MiB', asDirectory: false },
    evictEmpties: true,
    waits: true,
  },
  {
    name: 'poolLimit 64KiB + 32KiB swap file that fills up, lz4/zsmalloc',
    open: { residentLimit: '64KiB', poolLimit: '64KiB', compressor: 'lz4', allocator: 'zsmalloc' },
    swapFile: { size: '32KiB', asDirectory: true },
    evictEmpties: false,
    expectIoErrors: true,
  },
];

const MAX_LIVE = 5;
const R = fc.nat({ max: 7 });
const Pg = fc.nat({ max: 127 });
const kindArb = fc.nat({ max: KIND_WORDS });
const vArb = fc.nat({ max: 0xffff });

export const createArb = fc.record({
  t: fc.constant('create' as const),
  kind: fc.constantFrom<RegionKind>('anon', 'anon', 'ro', 'rw'),
  pages: fc.integer({ min: 8, max: 64 }),
  tail: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: PAGE - 1 })),
  seed: vArb,
});

/** The command arbitrary; `waits` adds pauses: 60 ms, and rarely 1100 ms (an idle pass needs a second). */
export function cmdArb(waits: boolean): fc.Arbitrary<Cmd> {
  // Weights out of about 80: the long wait is about 1 command in 80.
  const arbs: fc.WeightedArbitrary<Cmd>[] = [
    { weight: 16, arbitrary: fc.record({ t: fc.constant('write' as const), r: R, p: Pg, kind: kindArb, v: vArb }) },
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant('fill' as const),
        r: R,
        p: Pg,
        n: fc.integer({ min: 2, max: 48 }),
        v: vArb,
      }),
    },
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant('poke' as const),
        r: R,
        p: Pg,
        off: fc.nat({ max: PAGE - 1 }),
        bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 16 }),
      }),
    },
    { weight: 12, arbitrary: fc.record({ t: fc.constant('read' as const), r: R, p: Pg }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('readAll' as const), r: R }) },
    { weight: 6, arbitrary: fc.record({ t: fc.constant('evict' as const), r: R }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('writeEvict' as const), r: R, p: Pg, kind: kindArb, v: vArb }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('evictRead' as const), r: R }) },
    { weight: 2, arbitrary: createArb },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('close' as const), r: R }) },
    {
      weight: 2,
      arbitrary: fc.record({ t: fc.constant('evictClose' as const), r: R, r2: R, spin: fc.constantFrom(0, 0.3, 1, 2) }),
    },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('flush' as const), r: R }) },
    { weight: 3, arbitrary: fc.constant({ t: 'spawn' as const }) },
  ];
  if (waits) {
    arbs.push({ weight: 4, arbitrary: fc.constant({ t: 'wait' as const, ms: 60 }) });
    arbs.push({ weight: 1, arbitrary: fc.constant({ t: 'wait' as const, ms: 1100 }) });
  }
  return fc.oneof(...arbs);
}

export function inputArb(cfg: ModelConfig, maxCommands: number): fc.Arbitrary<ModelInput> {
  return fc.record({
    init: fc.array(createArb, { minLength: 1, maxLength: 3 }),
    cmds: fc.noBias(fc.array(cmdArb(!!cfg.waits), { maxLength: maxCommands, size: 'max' })),
  });
}

/** Runs a synchronous step that may fault, bounded (the Watchdog's guard). */
export type Guard = <T>(what: string, fn: () => T) => T;

/** What one run saw, for the summaries. */
export interface RunSummary {
  steps: number;
  regions: number;
  final: SwapStats;
}

interface Live {
  no: number; // creation number, for messages
  kind: RegionKind;
  region: Region;
  model: Uint8Array;
  /** rw: the file's length; writes stay below it. ro: the file's original contents. */
  fileSize: number;
  file?: string;
  original?: Buffer;
  touched: Set<number>;
}

const ASYNC_MS = 10000;
/** TMEM_MODEL_TRACE=1: each run's regions and each command on stderr before it runs (for a crash). */
const TRACE = process.env.TMEM_MODEL_TRACE === '1';

function describe(c: Cmd): string {
  return JSON.stringify(c);
}

/** First differing byte of got vs want, as a message, or undefined. */
function firstDiff(got: Uint8Array, want: Uint8Array, base = 0): string | undefined {
  if (Buffer.from(got.buffer, got.byteOffset, got.length).equals(want)) return undefined;
  if (got.length !== want.length) return `length ${got.length}, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      let n = 0;
      for (let j = i; j < want.length; j++) if (got[j] !== want[j]) n++;
      const at = base + i;
      return `page ${Math.floor(at / PAGE)} byte ${at % PAGE}: got ${got[i]}, want ${want[i]} (${n} bytes differ from there)`;
    }
  }
  return undefined;
}

function fileContents(pages: number, size: number, seed: number): Buffer {
  const b = Buffer.alloc(pages * PAGE);
  for (let p = 0; p < pages; p++) fillPage(b, p * PAGE, p, seed, kindOf(p, seed));
  b.fill(0, size);
  return b;
}

/**
 * Runs `input` on a fresh swap opened with `cfg` (temporary files in `dir`);
 * throws on the first difference from the model or broken invariant.
 */
export async function runSwapModel(
  cfg: ModelConfig,
  input: ModelInput,
  dir: string,
  guard: Guard,
): Promise<RunSummary> {
  const options: OpenOptions = { ...cfg.open };
  if (cfg.swapFile)
    options.swapFile = { path: cfg.swapFile.asDirectory ? dir : path.join(dir, 'swapfile'), size: cfg.swapFile.size };
  if (TRACE) fs.writeSync(2, `run: ${cfg.name}: ${JSON.stringify(input.init)}\n`);
  const swap = await withTimeout(open(options), ASYNC_MS, 'open()');
  const live: Live[] = [];
  let created = 0;
  let step = -1;
  let current = 'init';
  const fail = (msg: string): never => {
    throw new Error(`[${cfg.name}] step ${step} ${current}: ${msg}`);
  };
  const bytesOf = (l: Live): Uint8Array => new Uint8Array(l.region.buffer);
  const pick = (r: number): Live | undefined => (live.length === 0 ? undefined : live[r % live.length]);

  const create = (c: Extract<Cmd, { t: 'create' }>): void => {
    if (live.length >= MAX_LIVE) return;
    const no = created++;
    if (c.kind === 'anon') {
      const region = swap.region(c.pages * PAGE);
      live.push({ no, kind: 'anon', region, model: new Uint8Array(c.pages * PAGE), fileSize: 0, touched: new Set() });
      return;
    }
    const size = c.pages * PAGE - c.tail;
    const data = fileContents(c.pages, size, c.seed);
    const file = path.join(dir, `file-${no}`);
    fs.writeFileSync(file, data.subarray(0, size));
    const region = swap.mapFile(file, { writable: c.kind === 'rw' });
    if (region.fileSize !== size || region.size !== c.pages * PAGE)
      fail(`mapFile sizes ${region.fileSize}/${region.size}, want ${size}/${c.pages * PAGE}`);
    live.push({
      no,
      kind: c.kind,
      region,
      model: new Uint8Array(data),
      fileSize: size,
      file,
      original: c.kind === 'ro' ? data.subarray(0, size) : undefined,
      touched: new Set(),
    });
  };

  const checkPage = (l: Live, p: number): void => {
    l.touched.add(p);
    const got = guard(`${cfg.name}: step ${step} read region ${l.no} page ${p}`, () =>
      bytesOf(l).slice(p * PAGE, (p + 1) * PAGE),
    );
    const bad = firstDiff(got, l.model.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE);
    if (bad) fail(`region ${l.no} (${l.kind}): ${bad}`);
  };
  const checkAll = (l: Live, what: string): void => {
    for (let p = 0; p < l.model.length / PAGE; p++) l.touched.add(p);
    const got = guard(`${cfg.name}: step ${step} ${what} region ${l.no}`, () => bytesOf(l).slice());
    const bad = firstDiff(got, l.model);
    if (bad) fail(`${what}: region ${l.no} (${l.kind}): ${bad}`);
  };
  /** The file on disk: rw equals the model below EOF, ro is what it was. */
  const checkFile = (l: Live, what: string): void => {
    if (l.kind === 'anon') return;
    const disk = fs.readFileSync(l.file!);
    const want = l.kind === 'rw' ? l.model.subarray(0, l.fileSize) : l.original!;
    const bad = firstDiff(disk, want);
    if (bad) fail(`${what}: file of region ${l.no} (${l.kind}) on disk: ${bad}`);
  };
  const writePage = (l: Live, p: number, kind: number, v: number): void => {
    const page = new Uint8Array(PAGE);
    fillPage(page, 0, p, v, kind);
    // A writable file is written below EOF only.
    const len = l.kind === 'rw' ? Math.min(PAGE, l.fileSize - p * PAGE) : PAGE;
    const src = page.subarray(0, len);
    l.touched.add(p);
    guard(`${cfg.name}: step ${step} write region ${l.no} page ${p}`, () => bytesOf(l).set(src, p * PAGE));
    l.model.set(src, p * PAGE);
  };
  const checkEvicted = (l: Live, n: number): void => {
    const pages = l.model.length / PAGE;
    if (!(n >= 0 && n <= pages)) fail(`evict() returned ${n} for a region of ${pages} pages`);
    if (cfg.evictEmpties) {
      const rs = l.region.stats();
      if (rs.residentPages !== 0)
        fail(
          `after evict() region ${l.no} still has ${rs.residentPages} resident pages (nothing should be refused here)`,
        );
    }
  };
  const closeLive = async (l: Live, what: string): Promise<void> => {
    live.splice(live.indexOf(l), 1);
    await withTimeout(l.region.close(), ASYNC_MS, `${what} region ${l.no}`);
    checkFile(l, what);
  };

  let failure: { error: unknown } | undefined;
  try {
    for (const c of input.init) create(c);
    for (step = 0; step < input.cmds.length; step++) {
      const c = input.cmds[step];
      current = describe(c);
      if (TRACE) fs.writeSync(2, `  step ${step}: ${current}\n`);
      if (c.t === 'create') {
        create(c);
        continue;
      }
      if (c.t === 'wait') {
        await new Promise((resolve) => setTimeout(resolve, c.ms));
        continue;
      }
      if (c.t === 'spawn') {
        const child = spawnSync('true');
        if (child.status !== 0) fail(`the child exited with ${String(child.status)} (${String(child.error)})`);
        continue;
      }
      const l = pick(c.r);
      if (!l) continue;
      const pages = l.model.length / PAGE;
      switch (c.t) {
        case 'write':
          writePage(l, c.p % pages, c.kind, c.v);
          break;
        case 'fill':
          for (let i = 0; i < Math.min(c.n, pages); i++) {
            const p = (c.p + i) % pages;
            writePage(l, p, kindOf(p, c.v), c.v);
          }
          break;
        case 'writeEvict': {
          writePage(l, c.p % pages, c.kind, c.v);
          checkEvicted(l, await withTimeout(l.region.evict(), ASYNC_MS, 'evict()'));
          break;
        }
        case 'poke': {
          const p = c.p % pages;
          let pos = p * PAGE + Math.min(c.off, PAGE - c.bytes.length);
          let n = c.bytes.length;
          if (l.kind === 'rw' && pos + n > l.fileSize) {
            pos = Math.max(p * PAGE, l.fileSize - n);
            n = Math.min(n, l.fileSize - pos);
          }
          const src = Uint8Array.from(c.bytes.slice(0, n));
          l.touched.add(p);
          guard(`${cfg.name}: step ${step} poke region ${l.no} page ${p}`, () => {
            const b = bytesOf(l);
            for (let i = 0; i < n; i++) b[pos + i] = src[i];
          });
          l.model.set(src, pos);
          break;
        }
        case 'read':
          checkPage(l, c.p % pages);
          break;
        case 'readAll':
          checkAll(l, 'readAll');
          break;
        case 'evict':
          checkEvicted(l, await withTimeout(l.region.evict(), ASYNC_MS, 'evict()'));
          break;
        case 'evictRead': {
          const pending = l.region.evict();
          pending.catch(() => undefined);
          await new Promise((resolve) => setImmediate(resolve)); // the evict request is sent
          checkAll(l, 'read during evict()');
          const n = await withTimeout(pending, ASYNC_MS, 'evict() during a read');
          if (!(n >= 0 && n <= pages)) fail(`evict() returned ${n} for a region of ${pages} pages`);
          break;
        }
        case 'close':
          await closeLive(l, 'close()');
          break;
        case 'evictClose': {
          const other = pick(c.r2)!;
          const ev = l.region.evict();
          ev.catch(() => undefined);
          live.splice(live.indexOf(other), 1);
          await new Promise((resolve) => setImmediate(resolve)); // the evict request is sent
          const t0 = performance.now();
          while (performance.now() - t0 < c.spin) {
            /* let the dispatcher get going */
          }
          const cl = other.region.close();
          const [e, x] = await withTimeout(Promise.allSettled([ev, cl]), ASYNC_MS, 'evict() and close() together');
          if (x.status === 'rejected') fail(`close() of region ${other.no} rejected: ${String(x.reason)}`);
          // evict() of the region being closed may resolve or reject; of another region it must resolve.
          if (other !== l && e.status === 'rejected') fail(`evict() of region ${l.no} rejected: ${String(e.reason)}`);
          if (e.status === 'fulfilled' && !(e.value >= 0 && e.value <= pages)) fail(`evict() returned ${e.value}`);
          checkFile(other, 'close() during evict()');
          break;
        }
        case 'flush': {
          const n = await withTimeout((l.region as FileRegion).flush?.() ?? Promise.resolve(0), ASYNC_MS, 'flush()');
          if (l.kind !== 'rw' && n !== 0) fail(`flush() of a ${l.kind} region returned ${n}`);
          checkFile(l, 'flush()');
          break;
        }
      }
    }
    step = input.cmds.length;
    current = 'final check';
    for (const l of live) checkAll(l, 'final check');
    await checkStats(swap, live, cfg, fail);
  } catch (error) {
    failure = { error };
  }
  // Close everything (writable files are flushed by close), then the files and the leak checks.
  let final: SwapStats | undefined;
  try {
    await withTimeout(swap.close(), ASYNC_MS, 'swap.close()');
    final = swap.stats();
  } catch (error) {
    failure ??= { error };
  }
  if (failure) throw failure.error;
  current = 'after swap.close()';
  for (const l of live) checkFile(l, 'swap.close()');
  const s = final!;
  const leaks = [
    ['residentPages', s.residentPages],
    ['stagedPages', s.stagedPages],
    ['storedPages', s.storedPages],
    ['samePages', s.samePages],
    ['swapFile.pages', s.swapFile?.pages ?? 0],
    ['idle.pages', s.idle.pages],
  ].filter(([, v]) => v !== 0);
  if (leaks.length > 0) fail(`gauges not back to 0: ${leaks.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return { steps: input.cmds.length, regions: created, final: s };
}

/**
 * Invariants of stats() at the end of a run (all regions read back, no request in flight):
 * every anonymous page touched is in exactly one place (resident, pool, same-filled, swap
 * file), file pages may also have left for the file or cleancache; staged pages are resident
 * pages, idle pages stored ones; the regions' resident pages add up to the swap's; no checksum
 * error; no I/O error unless the config fills its swap file; swap-cached pages are resident;
 * compressionRatio >= 1 (0 with empty pools); hugePages within the pool's objects; dirtyPages
 * only in writable file mappings.
 *
 * The dispatcher may still be evicting (the final reads faulted pages in) and moves its
 * counters one at a time, after it wakes the faulting thread: a snapshot can be torn. So the
 * figures are sampled until they hold together (or 3 s pass), and the last sample is judged.
 */
async function checkStats(swap: Swap, live: Live[], cfg: ModelConfig, fail: (m: string) => never): Promise<void> {
  let anon = 0,
    all = 0;
  for (const l of live) {
    all += l.touched.size;
    if (l.kind === 'anon') anon += l.touched.size;
  }
  const problems = (): string[] => {
    const s = swap.stats();
    const out: string[] = [];
    const placed = s.residentPages + s.storedPages + s.samePages + (s.swapFile?.pages ?? 0);
    const where = `resident ${s.residentPages} + stored ${s.storedPages} + same ${s.samePages} + swap file ${s.swapFile?.pages ?? 0} = ${placed}`;
    if (placed < anon) out.push(`${where} < ${anon} anonymous pages touched`);
    if (placed > all) out.push(`${where} > ${all} pages touched`);
    if (s.idle.pages > s.storedPages)
      out.push(`idle.pages ${s.idle.pages} > storedPages ${s.storedPages} (idle pages are stored pages)`);
    if (s.stagedPages > s.residentPages) out.push(`stagedPages ${s.stagedPages} > residentPages ${s.residentPages}`);
    if (s.swapFile && s.swapFile.checksumErrors !== 0)
      out.push(`swap file checksum errors: ${s.swapFile.checksumErrors}`);
    if (s.swapFile && s.swapFile.ioErrors !== 0 && !cfg.expectIoErrors)
      out.push(`swap file I/O errors: ${s.swapFile.ioErrors}`);
    if (s.swapFile && s.swapFile.pages + s.swapFile.cached > s.swapFile.slots)
      out.push(`swap file pages ${s.swapFile.pages} + cached ${s.swapFile.cached} > slots ${s.swapFile.slots}`);
    if (s.swapFile && s.swapFile.cached > s.residentPages)
      out.push(`swap file cached ${s.swapFile.cached} > residentPages ${s.residentPages} (cached pages are resident)`);
    if (s.swapFile && s.faults.swapFile !== s.swapFile.swapIns)
      out.push(`faults.swapFile ${s.faults.swapFile} != swapFile.swapIns ${s.swapFile.swapIns}`);
    if (s.compressedBytes > 0 ? !(s.compressionRatio >= 1) : s.compressionRatio !== 0)
      out.push(`compressionRatio ${s.compressionRatio} with ${s.compressedBytes} compressed bytes`);
    if (s.hugePages < 0 || s.hugePages > s.storedPages + s.cleanCopies)
      out.push(`hugePages ${s.hugePages} not within the pool's ${s.storedPages} + ${s.cleanCopies} objects`);
    if (s.cleanCopies > s.residentPages) out.push(`cleanCopies ${s.cleanCopies} > residentPages ${s.residentPages}`);
    if (s.unevictablePages !== 0) out.push(`unevictablePages ${s.unevictablePages}: nothing pins region pages here`);
    let regionPages = 0;
    for (const l of live) {
      const rs = l.region.stats();
      if (rs.residentPages < 0 || rs.storedPages < 0 || rs.samePages < 0 || rs.dirtyPages < 0)
        out.push(`region ${l.no} gauges negative: ${JSON.stringify(rs)}`);
      if (l.kind !== 'rw' && rs.dirtyPages !== 0)
        out.push(
          `region ${l.no} (${l.kind}) has dirtyPages ${rs.dirtyPages}: only a writable file mapping owes pages to its file`,
        );
      regionPages += rs.residentPages;
    }
    if (regionPages !== s.residentPages)
      out.push(`region residentPages sum to ${regionPages}, swap says ${s.residentPages}`);
    return out;
  };
  const end = Date.now() + 3000;
  let last = problems();
  while (last.length > 0 && Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    last = problems();
  }
  if (last.length > 0) fail(last.join('; '));
}

/**
 * Runs `run` and, the first time it throws, writes the error and the input to stderr at once:
 * shrinking a run that hangs until its timeouts can outlast the test's time limit, and the
 * first failure is then the only trace of it.
 */
export function reportFirstFailure(): <T>(input: ModelInput, run: () => Promise<T>) => Promise<T> {
  let reported = false;
  return async (input, run) => {
    try {
      return await run();
    } catch (e) {
      if (!reported) {
        reported = true;
        fs.writeSync(
          2,
          `swap model: first failure: ${e instanceof Error ? e.message : String(e)}\n  input: ${JSON.stringify(input)}\n`,
        );
      }
      throw e;
    }
  };
}

/** Aggregate figures over runs, for a summary line. */
export class Totals {
  runs = 0;
  steps = 0;
  regions = 0;
  readonly sums: Record<string, number> = {};
  add(r: RunSummary): void {
    this.runs++;
    this.steps += r.steps;
    this.regions += r.regions;
    const s = r.final;
    const add = (k: string, v: number | undefined): void => {
      this.sums[k] = (this.sums[k] ?? 0) + (v ?? 0);
    };
    add('faults.pool', s.faults.pool);
    add('faults.same', s.faults.same);
    add('faults.staged', s.faults.staged);
    add('faults.file', s.faults.file);
    add('faults.wp', s.faults.writeProtect);
    add('cleancache.hits', s.cleancache.hits);
    add('evictions', s.evictions);
    add('refused', s.refused.poolLimit + s.refused.alloc);
    add('huge', s.hugePages);
    add('swap.writtenBack', s.swapFile?.writtenBack);
    add('swap.swapIns', s.swapFile?.swapIns);
    add('swap.readaheadHits', s.swapFile?.readaheadHits);
    add('swap.ioErrors', s.swapFile?.ioErrors);
    add('idle.recompressed', s.idle.recompressed);
    add('idle.noGain', s.idle.noGain);
    add('idle.writtenBack', s.idle.writtenBack);
    add('fileWrites', s.fileWrites);
  }
  line(): string {
    const nz = Object.entries(this.sums)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    return `${this.runs} runs, ${this.steps} commands, ${this.regions} regions; ${nz}`;
  }
}
