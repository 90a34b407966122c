/**
 * The public API of lib/swap.ts with real faults: incompressible and
 * same-filled pages through the pool, clean pages evicted without
 * recompression and made dirty again by a write-protect fault, argument
 * checking, and the stats' consistency.
 *
 * The file's other test sets are swap-integrity (concurrent writers under
 * eviction, pool full), swap-file (mapFile / cleancache) and swap-lifecycle
 * (exit, close, dispatcher death, in child processes).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { open, type SwapStats } from '../lib';
import { Watchdog, statsWhen, withTimeout } from './helpers/harness';
import { PAGE, fillPage, KIND_TEXT, KIND_SAME } from './helpers/swap-pattern';

const watchdog = new Watchdog();
/** Runs a synchronous step that faults; the process dies if it is not done within 10 s. */
const touch = <T>(what: string, fn: () => T): T => watchdog.guard(what, 10000, fn);

const samePage = (a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean =>
  Buffer.from(a.buffer, a.byteOffset + aOff, PAGE).equals(Buffer.from(b.buffer, b.byteOffset + bOff, PAGE));

/** Large enough that nothing is evicted unless a test asks (region.evict()). */
const NO_PRESSURE = { residentLimit: '64MiB', poolLimit: '16MiB' } as const;

test('an incompressible page is evicted (stored raw) and reads back', async (t) => {
  const swap = await withTimeout(open(NO_PRESSURE), 10000, 'open()');
  try {
    const region = swap.region(4 * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const model = randomBytes(4 * PAGE);
    touch('write random pages', () => bytes.set(model));
    const n = await withTimeout(region.evict(), 10000, 'region.evict()');
    t.is(n, 4);
    const s = swap.stats();
    t.is(s.hugePages, 4, 'random pages do not compress: stored raw');
    t.is(s.storedPages, 4);
    t.is(region.stats().residentPages, 0);
    t.true(
      touch('read back', () => Buffer.from(region.buffer).equals(model)),
      'every byte reads back',
    );
    t.is((await statsWhen(swap, (x) => x.faults.pool === 4)).faults.pool, 4);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('eviction takes neighbouring pages out in runs (evictionRunPages), through residentLimit and by region.evict(); every byte reads back', async (t) => {
  const swap = await withTimeout(open({ residentLimit: '1MiB', poolLimit: '16MiB' }), 10000, 'open()');
  try {
    const pages = 2048; // 8 MiB written front to back through a 1 MiB resident limit
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    touch('write', () => {
      for (let p = 0; p < pages; p++) fillPage(bytes, p * PAGE, p, 1, KIND_TEXT);
    });
    const s1 = await statsWhen(swap, (x) => x.evictions > 0 && x.residentBytes <= x.budget.residentLimit, 20000);
    t.true(s1.evictionRunPages > 0, `evictions ${s1.evictions}, of them in runs ${s1.evictionRunPages}`);
    const n = await withTimeout(region.evict(), 10000, 'region.evict()');
    t.true(n > 0);
    const s2 = swap.stats();
    t.true(s2.evictionRunPages > s1.evictionRunPages, 'region.evict() of resident neighbours: runs too');
    t.is(region.stats().residentPages, 0);
    const want = new Uint8Array(PAGE);
    let bad = -1;
    touch('read back', () => {
      for (let p = 0; p < pages && bad < 0; p++) {
        fillPage(want, 0, p, 1, KIND_TEXT);
        if (!samePage(bytes, p * PAGE, want, 0)) bad = p;
      }
    });
    t.is(bad, -1, 'every byte reads back');
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('clean pages read back through residentLimit are evicted in batches (evictionCleanBatched), some written meanwhile; every byte reads back', async (t) => {
  const swap = await withTimeout(open({ residentLimit: '1MiB', poolLimit: '16MiB' }), 10000, 'open()');
  try {
    const pages = 2048; // 8 MiB through a 1 MiB resident limit
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    touch('write', () => {
      for (let p = 0; p < pages; p++) fillPage(bytes, p * PAGE, p, 1, KIND_TEXT);
    });
    await withTimeout(region.evict(), 10000, 'region.evict()');
    const before = swap.stats();
    // Read in a shuffled order: each page comes back from the pool write-protected, its
    // compressed copy kept (clean), and the pages read before it are evicted meanwhile.
    const order = Array.from({ length: pages }, (_, i) => i);
    for (let i = pages - 1; i > 0; i--) {
      const j = randomBytes(4).readUInt32LE() % (i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const want = new Uint8Array(PAGE);
    let bad = -1;
    touch('read in a shuffled order, every 7th page rewritten', () => {
      for (const p of order) {
        fillPage(want, 0, p, 1, KIND_TEXT);
        if (!samePage(bytes, p * PAGE, want, 0) && bad < 0) bad = p;
        if (p % 7 === 0) fillPage(bytes, p * PAGE, p, 2, KIND_TEXT); // dirty again: stored anew
      }
    });
    t.is(bad, -1, 'every byte read back');
    const s = await statsWhen(swap, (x) => x.residentBytes <= x.budget.residentLimit, 20000);
    const batched = s.evictionCleanBatched - before.evictionCleanBatched;
    t.true(batched > 0, `evictions ${s.evictions - before.evictions}, clean ones in batches ${batched}`);
    t.true(s.evictionsWithoutCompression - before.evictionsWithoutCompression >= batched);
    await withTimeout(region.evict(), 10000, 'region.evict()');
    touch('read back', () => {
      for (let p = 0; p < pages && bad < 0; p++) {
        fillPage(want, 0, p, p % 7 === 0 ? 2 : 1, KIND_TEXT);
        if (!samePage(bytes, p * PAGE, want, 0)) bad = p;
      }
    });
    t.is(bad, -1, 'every byte reads back after the batches, the rewritten pages with their new bytes');
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('same-filled and zero pages are kept as one word and read back', async (t) => {
  const swap = await withTimeout(open(NO_PRESSURE), 10000, 'open()');
  try {
    const region = swap.region(8 * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const model = new Uint8Array(8 * PAGE);
    for (let p = 0; p < 8; p += 2) fillPage(model, p * PAGE, p, 0, KIND_SAME); // odd pages stay zero
    touch('write pages', () => bytes.set(model));
    await withTimeout(region.evict(), 10000, 'region.evict()');
    const s = swap.stats();
    t.is(s.samePages, 8, `same-filled pages, zeros included: ${JSON.stringify(s)}`);
    t.is(s.storedPages, 0);
    t.is(s.compressedBytes, 0, 'nothing went to the allocator');
    t.true(touch('read back', () => samePage(bytes, 0, model, 0) && Buffer.from(region.buffer).equals(model)));
    const after = await statsWhen(swap, (x) => x.faults.same === 8 && x.samePages === 0);
    t.is(after.faults.same, 8);
    t.is(after.samePages, 0);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('clean pages: evicted again without compression; a write makes them dirty and they are compressed again', async (t) => {
  const swap = await withTimeout(open(NO_PRESSURE), 10000, 'open()');
  try {
    const pages = 16;
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const model = new Uint8Array(pages * PAGE);
    for (let p = 0; p < pages; p++) fillPage(model, p * PAGE, p, 0, KIND_TEXT);
    touch('fill', () => bytes.set(model));
    t.is(await withTimeout(region.evict(), 10000, 'evict'), pages);
    const s0 = swap.stats();
    t.is(s0.storedPages, pages);
    t.is(s0.evictionsWithoutCompression, 0);

    // Read page 3: a pool fault; the page is mapped write-protected, its compressed copy kept.
    t.true(touch('read page 3', () => samePage(bytes, 3 * PAGE, model, 3 * PAGE)));
    const s1 = await statsWhen(swap, (x) => x.faults.pool === s0.faults.pool + 1 && x.residentPages === 1);
    t.is(s1.faults.pool, s0.faults.pool + 1);
    t.is(s1.faults.writeProtect, s0.faults.writeProtect, 'a read is not a write');
    t.is(region.stats().residentPages, 1);
    t.is(region.stats().dirtyPages, 0);

    // Evict it again: no compression, no store.
    await withTimeout(region.evict(), 10000, 'evict');
    const s2 = swap.stats();
    t.is(
      s2.evictionsWithoutCompression,
      s1.evictionsWithoutCompression + 1,
      'the clean page was dropped, not recompressed',
    );
    t.is(s2.evictions, s1.evictions + 1);
    t.is(s2.compressedBytes, s1.compressedBytes, 'the pool holds the same objects');
    t.is(s2.storedPages, pages);

    // Read it again (the kept copy), then write one byte: a write-protect fault makes it dirty.
    t.true(touch('read page 3 again', () => samePage(bytes, 3 * PAGE, model, 3 * PAGE)));
    const s2b = await statsWhen(swap, (x) => x.faults.pool === s2.faults.pool + 1);
    t.is(s2b.faults.pool, s2.faults.pool + 1, 'the kept copy was loaded');
    touch('write one byte of page 3', () => {
      bytes[3 * PAGE + 100] ^= 0xff;
    });
    model[3 * PAGE + 100] ^= 0xff;
    const s3 = await statsWhen(swap, (x) => x.faults.writeProtect === s2.faults.writeProtect + 1);
    t.is(s3.faults.writeProtect, s2.faults.writeProtect + 1, 'the write hit a write-protect fault');
    t.is(region.stats().dirtyPages, 0, 'dirtyPages counts pages owed to a file: none in an anonymous region');
    t.is(
      touch('read the written byte', () => bytes[3 * PAGE + 100]),
      model[3 * PAGE + 100],
    );

    // The next eviction must compress it again (the old copy is stale).
    await withTimeout(region.evict(), 10000, 'evict');
    const s4 = swap.stats();
    t.is(s4.evictionsWithoutCompression, s3.evictionsWithoutCompression, 'a dirty page is not dropped as clean');
    t.is(s4.evictions, s3.evictions + 1);
    t.is(s4.storedPages, pages);
    t.true(
      touch('read page 3 after the dirty eviction', () => samePage(bytes, 3 * PAGE, model, 3 * PAGE)),
      'the new bytes came back',
    );
    t.is((await statsWhen(swap, (x) => x.faults.pool === s4.faults.pool + 1)).faults.pool, s4.faults.pool + 1);
    t.true(
      touch('read all', () => Buffer.from(region.buffer).equals(model)),
      'every byte of every page',
    );

    // A page written while resident but never read since (write fault on a stored page): also recompressed.
    touch('write page 5 without reading it', () => bytes.fill(7, 5 * PAGE, 5 * PAGE + 64));
    model.fill(7, 5 * PAGE, 5 * PAGE + 64);
    await withTimeout(region.evict(), 10000, 'evict');
    t.true(touch('read all again', () => Buffer.from(region.buffer).equals(model)));
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('bad options to open() throw TypeError/RangeError naming the option', async (t) => {
  const cases: Array<[unknown, new (...a: never[]) => Error, RegExp]> = [
    [{ residentLimit: 'abc' }, RangeError, /residentLimit/],
    [{ residentLimit: -1 }, RangeError, /residentLimit/],
    [{ residentLimit: 1.5 }, RangeError, /residentLimit/],
    [{ residentLimit: Number.NaN }, RangeError, /residentLimit/],
    [{ residentLimit: {} }, TypeError, /residentLimit/],
    [{ residentLimit: 4096 }, RangeError, /residentLimit/],
    [{ poolLimit: '1KiB' }, RangeError, /poolLimit/],
    [{ poolLimit: {} }, TypeError, /poolLimit/],
    [{ compressor: 'gzip' }, RangeError, /compressor/],
    [{ allocator: 'x' }, RangeError, /allocator/],
    [{ lowWatermark: 2 }, RangeError, /lowWatermark/],
    [{ acceptThreshold: 0 }, RangeError, /acceptThreshold/],
    [{ pin: 'yes' }, TypeError, /pin/],
    [{ stagingSize: '4KiB' }, RangeError, /stagingSize/],
    [{ userModeOnly: 'sometimes' }, TypeError, /userModeOnly/],
    [{ faultSpin: '50us' }, TypeError, /faultSpin must be a number/],
    [{ faultSpin: -1 }, RangeError, /faultSpin must be a whole number of microseconds from 0 to 10000, got -1/],
    [{ faultSpin: 2.5 }, RangeError, /faultSpin/],
    [{ faultSpin: 10001 }, RangeError, /faultSpin/],
    [{ faultSpin: Number.NaN }, RangeError, /faultSpin/],
    [{ residentlimit: '4MiB' }, TypeError, /unknown option 'residentlimit'/],
    ['4MiB', TypeError, /options/],
  ];
  for (const [options, type, message] of cases) {
    const what = JSON.stringify(options);
    const opened = withTimeout(open(options as never), 5000, `open(${what})`);
    opened.then(
      (s) => s.close(),
      () => undefined,
    ); // a swap that opened by mistake is closed again
    await t.throwsAsync(opened, { instanceOf: type, message }, `open(${what})`);
  }
});

test('bad arguments to region() and mapFile() throw errors naming the argument', async (t) => {
  const swap = await withTimeout(open(NO_PRESSURE), 10000, 'open()');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-swap-'));
  try {
    t.throws(() => swap.region(0), { instanceOf: RangeError, message: /size/ });
    t.throws(() => swap.region(-4096), { instanceOf: RangeError, message: /size/ });
    t.throws(() => swap.region(4096.5), { instanceOf: RangeError, message: /size/ });
    t.throws(() => swap.region('lots'), { instanceOf: RangeError, message: /size/ });
    t.throws(() => swap.region({} as never), { instanceOf: TypeError, message: /size/ });
    t.throws(() => swap.region(undefined as never), { instanceOf: TypeError, message: /size/ });

    t.throws(() => swap.mapFile(''), { instanceOf: TypeError, message: /file/ });
    t.throws(() => swap.mapFile(42 as never), { instanceOf: TypeError, message: /file/ });
    const missing = path.join(dir, 'missing');
    const e = t.throws<NodeJS.ErrnoException>(() => swap.mapFile(missing));
    t.is(e?.code, 'ENOENT');
    t.true(e?.message.includes(missing), 'the fs error names the path');
    t.throws(() => swap.mapFile(dir), { instanceOf: TypeError, message: /regular file/ });
    // Refused before it is opened, writable or not (file-regions-reliability.test.ts has the other kinds).
    const wd = t.throws(() => swap.mapFile(dir, { writable: true }), {
      instanceOf: TypeError,
      message: /regular file/,
    }) as NodeJS.ErrnoException;
    t.is(wd?.code, 'ERR_TMEM_NOT_REGULAR_FILE');
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '');
    t.throws(() => swap.mapFile(empty), { instanceOf: RangeError, message: /empty/ });
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    t.throws(() => swap.mapFile(file, { writable: 'yes' as never }), { instanceOf: TypeError, message: /writable/ });
    t.throws(() => swap.mapFile(file, null as never), { instanceOf: TypeError, message: /options/ });

    // None of that left a region behind, and the swap still works.
    const r = swap.region(PAGE);
    touch('use a region after bad calls', () => {
      new Uint8Array(r.buffer)[10] = 5;
    });
    t.is(
      touch('read it', () => new Uint8Array(r.buffer)[10]),
      5,
    );
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Every leaf of the stats is a finite number (or the one boolean, the budget's words). */
function checkNumbers(t: import('ava').ExecutionContext, o: object, at = 'stats'): void {
  for (const [k, v] of Object.entries(o)) {
    if (k === 'swapFile' && v === undefined) continue; // only with a swap file
    if (k === 'remote' && v === undefined) continue; // only with a remote tier
    if (k === 'shared' && v === undefined) continue; // only with a shared pool
    if (at === 'stats.budget' && k === 'cgroup' && v === undefined) continue; // only in a memory cgroup
    if (at === 'stats.budget.cgroup' && v === null) continue; // no limit, or not read yet
    if (v !== null && typeof v === 'object') checkNumbers(t, v as object, `${at}.${k}`);
    else if (k === 'userModeOnly') t.is(typeof v, 'boolean', `${at}.${k}`);
    else if (at === 'stats.budget' && (k === 'mode' || k === 'pressureCause')) t.is(typeof v, 'string', `${at}.${k}`);
    else
      t.true(
        typeof v === 'number' && Number.isFinite(v) && v >= 0,
        `${at}.${k} is a non-negative number: ${String(v)}`,
      );
  }
}

async function settle(read: () => SwapStats, ms: number): Promise<SwapStats> {
  const end = Date.now() + ms;
  let s = read();
  while (Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const n = read();
    if (n.evictions === s.evictions) return n; // eviction has stopped (under the low watermark)
    s = n;
  }
  return read();
}

test('stats: numbers, consistent with each other and with what was touched; latency after faults', async (t) => {
  const swap = await withTimeout(open({ residentLimit: '1MiB', poolLimit: '64MiB' }), 10000, 'open()');
  try {
    const fresh = swap.stats();
    checkNumbers(t, fresh);
    t.is(fresh.residentPages, 0);
    t.is(fresh.latency.count, 0);
    t.is(fresh.compressionRatio, 0);

    const region = swap.region('4MiB');
    const bytes = new Uint8Array(region.buffer);
    const touched = 768; // 3MiB of the 4MiB; the last 256 pages are never touched
    const model = new Uint8Array(touched * PAGE);
    for (let p = 0; p < touched; p++) fillPage(model, p * PAGE, p, 0);
    touch('write 768 pages', () => bytes.set(model));
    const s = await settle(() => swap.stats(), 3000);
    checkNumbers(t, s);
    const rs = region.stats();
    checkNumbers(t, rs);

    t.true(s.residentPages <= touched, `resident ${s.residentPages} <= touched ${touched}`);
    t.true(s.residentPages <= 256 + 16, `eviction keeps about residentLimit: ${s.residentPages}`);
    t.is(s.residentBytes, s.residentPages * PAGE);
    t.is(
      s.residentPages + s.storedPages + s.samePages,
      touched,
      'every touched page is resident, stored or same-filled',
    );
    t.is(s.logicalBytes, (s.storedPages + s.samePages) * PAGE);
    t.true(s.samePages > 0 && s.storedPages > 0 && s.hugePages > 0, JSON.stringify(s));
    t.true(s.hugePages <= s.storedPages);
    t.true(
      s.compressedBytes > 0 && s.poolBytes >= s.compressedBytes,
      `pool ${s.poolBytes} >= objects ${s.compressedBytes}`,
    );
    t.true(Math.abs(s.compressionRatio - (s.storedPages * PAGE) / s.compressedBytes) < 1e-9);
    t.true(s.evictions >= s.storedPages + s.samePages);
    t.is(s.faults.zero, touched, 'each page faulted once as a zero page');
    t.is(s.refused.poolLimit + s.refused.alloc, 0);

    t.is(rs.size, 4 * 2 ** 20);
    t.is(rs.residentPages, s.residentPages, "one region: its figures are the swap's");
    t.is(rs.storedPages, s.storedPages);
    t.is(rs.samePages, s.samePages);
    t.is(rs.faults.zero, touched);
    t.is(rs.evictions, s.evictions);

    t.true(s.latency.count >= touched, `every fault is in the histogram: ${s.latency.count}`);
    t.true(
      s.latency.p50 > 0 &&
        s.latency.p50 <= s.latency.p90 &&
        s.latency.p90 <= s.latency.p99 &&
        s.latency.p99 <= s.latency.p999,
      JSON.stringify(s.latency),
    );

    t.true(touch('read back', () => Buffer.from(region.buffer, 0, model.length).equals(model)));
    t.true(touch('untouched pages read zero', () => new Uint8Array(region.buffer, model.length).every((b) => b === 0)));
    // The read-back brought pages in (and read ahead), so background eviction runs
    // again: compare the swap's and the region's figures once it has stopped.
    let after = swap.stats();
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => setTimeout(r, 10));
      const next = swap.stats();
      if (next.evictions === after.evictions && next.storedPages === after.storedPages) break;
      after = next;
    }
    t.true(after.faults.pool > 0 && after.faults.same > 0, JSON.stringify(after.faults));
    t.true(after.latency.count > s.latency.count);
    t.is(after.storedPages, region.stats().storedPages);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});
