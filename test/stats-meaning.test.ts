/**
 * What the stats fields mean (issue 9, item 17), each against what was done:
 * hugePages is a current count (raw objects in the persistent pool: it falls
 * when they leave); compressionRatio counts the pool's objects in pages and
 * bytes alike, kept clean copies included, so it never falls below 1;
 * faults.swapFile is the swap file's share of the faults, each fault counted
 * once over all sources; dirtyPages counts pages owed to a file, none in an
 * anonymous region.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { open, type SwapStats } from '../lib';
import { Watchdog, statsWhen, tempDir, withTimeout } from './helpers/harness';
import { PAGE, fillPage, KIND_TEXT } from './helpers/swap-pattern';

const watchdog = new Watchdog();
const touch = <T>(what: string, fn: () => T): T => watchdog.guard(what, 15000, fn);
const NO_PRESSURE = { residentLimit: '64MiB', poolLimit: '16MiB' } as const;
const faultSum = (s: SwapStats): number => {
  const f = s.faults;
  return f.zero + f.pool + f.same + f.staged + f.file + f.cleancache + f.swapFile;
};
const ratioOk = (s: SwapStats): boolean =>
  s.compressedBytes === 0
    ? s.compressionRatio === 0
    : Math.abs(s.compressionRatio - ((s.storedPages + s.cleanCopies + s.cleancache.pages) * PAGE) / s.compressedBytes) <
        1e-9 && s.compressionRatio >= 1;

test('hugePages is a current count: raw pool objects, falling as they leave', async (t) => {
  const swap = await withTimeout(open(NO_PRESSURE), 10000, 'open()');
  try {
    const pages = 64;
    const region = swap.region(2 * pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const model = new Uint8Array(2 * pages * PAGE);
    model.set(randomBytes(pages * PAGE)); // pages 0..63 do not compress
    for (let p = pages; p < 2 * pages; p++) fillPage(model, p * PAGE, p, 0, KIND_TEXT);
    touch('fill', () => bytes.set(model));
    await withTimeout(region.evict(), 10000, 'evict');
    t.is(swap.stats().hugePages, pages, 'the random pages are stored raw');
    // Write half of them: their pool objects are dropped.
    touch('write 32 raw pages', () => {
      for (let p = 0; p < pages / 2; p++) bytes[p * PAGE] ^= 1;
    });
    for (let p = 0; p < pages / 2; p++) model[p * PAGE] ^= 1;
    const s = await statsWhen(swap, (x) => x.hugePages === pages / 2);
    t.is(s.hugePages, pages / 2, 'the written pages left the pool');
    t.true(s.hugePages <= s.storedPages + s.cleanCopies, 'huge pages are pool objects');
    t.true(
      touch('read back', () => Buffer.from(region.buffer).equals(model)),
      'every byte',
    );
    await region.close();
    t.is((await statsWhen(swap, (x) => x.hugePages === 0)).hugePages, 0, 'close() leaves none');
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('compressionRatio counts kept clean copies in pages as in bytes: never below 1', async (t) => {
  const swap = await withTimeout(open(NO_PRESSURE), 10000, 'open()');
  try {
    const pages = 64;
    const region = swap.region(pages * PAGE);
    const model = new Uint8Array(pages * PAGE);
    for (let p = 0; p < pages; p++) fillPage(model, p * PAGE, p, 0, KIND_TEXT);
    touch('fill', () => new Uint8Array(region.buffer).set(model));
    await withTimeout(region.evict(), 10000, 'evict');
    const s0 = swap.stats();
    t.true(ratioOk(s0) && s0.compressionRatio > 1, `after evict: ${s0.compressionRatio}`);
    t.is(s0.cleanCopies, 0);
    // Read every page: each comes back write-protected, its compressed copy kept.
    t.true(
      touch('read back', () => Buffer.from(region.buffer).equals(model)),
      'every byte',
    );
    const s1 = await statsWhen(swap, (x) => x.faults.pool === pages && x.storedPages === 0);
    t.is(s1.storedPages, 0);
    t.is(s1.cleanCopies, pages, 'every page resident with its copy kept');
    t.true(
      ratioOk(s1),
      `ratio ${s1.compressionRatio} from ${s1.storedPages}+${s1.cleanCopies} pages, ${s1.compressedBytes} bytes`,
    );
    t.is(s1.compressionRatio, s0.compressionRatio, 'the same objects: the same ratio');
    // Write half: their copies go, the ratio still describes what the pool holds.
    touch('write half', () => {
      const b = new Uint8Array(region.buffer);
      for (let p = 0; p < pages; p += 2) b[p * PAGE + 1] ^= 1;
    });
    const s2 = await statsWhen(swap, (x) => x.cleanCopies === pages / 2);
    t.is(s2.cleanCopies, pages / 2);
    t.true(ratioOk(s2), `ratio ${s2.compressionRatio}`);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('faults.swapFile: the swap file is a fault source, each fault counted once', async (t) => {
  const dir = tempDir(t, 'tmem-stats-');
  const swap = await withTimeout(
    open({ residentLimit: '64MiB', swapFile: { path: dir, size: '8MiB' } }),
    10000,
    'open()',
  );
  try {
    const pages = 128;
    const region = swap.region(pages * PAGE);
    const model = randomBytes(pages * PAGE);
    touch('fill', () => new Uint8Array(region.buffer).set(model));
    const s0 = await statsWhen(swap, (x) => x.faults.zero === pages);
    t.is(faultSum(s0), pages, 'first touches: zero faults only');
    await withTimeout(region.evict(), 10000, 'evict');
    t.true(
      touch('read back', () => Buffer.from(region.buffer).equals(model)),
      'every byte',
    );
    const s1 = await statsWhen(swap, (x) => x.faults.swapFile === pages);
    t.is(s1.faults.swapFile, pages, 'every page came from the swap file');
    t.is(s1.swapFile!.swapIns, s1.faults.swapFile);
    t.is(region.stats().faults.swapFile, pages, 'and the region says so too');
    t.is(faultSum(s1), 2 * pages, 'each page in counted once');
    const rf = region.stats().faults;
    t.is(
      rf.zero + rf.pool + rf.same + rf.staged + rf.file + rf.cleancache + rf.swapFile,
      faultSum(s1),
      'the region counts the same faults by the same sources',
    );
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('dirtyPages counts pages owed to a file: none in an anonymous region', async (t) => {
  const swap = await withTimeout(open(NO_PRESSURE), 10000, 'open()');
  try {
    const region = swap.region(8 * PAGE);
    const model = new Uint8Array(8 * PAGE);
    for (let p = 0; p < 8; p++) fillPage(model, p * PAGE, p, 0, KIND_TEXT);
    touch('fill', () => new Uint8Array(region.buffer).set(model));
    await withTimeout(region.evict(), 10000, 'evict');
    t.true(touch('read', () => Buffer.from(region.buffer).equals(model)));
    touch('write every page', () => {
      const b = new Uint8Array(region.buffer);
      for (let p = 0; p < 8; p++) b[p * PAGE] ^= 1;
    });
    const s = await statsWhen(swap, (x) => x.faults.writeProtect === 8);
    t.is(s.faults.writeProtect, 8, 'clean pages were written');
    t.is(region.stats().dirtyPages, 0);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});
