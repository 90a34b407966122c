/**
 * Readahead from the pool (lib/dispatcher/readahead.ts) with real faults: a sequential
 * read-back of an evicted region (stored and same-filled pages) brings pages in ahead of the faults (poolReadahead counts
 * them), every byte reads back, the pages come in clean (write-protected, pool copy kept) and a
 * later write to one of them is seen (write-protect fault) and survives another eviction; a
 * read-back that is never sequential reads nothing ahead.
 */
import test from 'ava';
import { open } from '../lib';
import { Watchdog, statsWhen, withTimeout } from './helpers/harness';
import { PAGE, fillPage, KIND_TEXT, KIND_RANDOM, KIND_SAME } from './helpers/swap-pattern';

const watchdog = new Watchdog();
const touch = <T>(what: string, fn: () => T): T => watchdog.guard(what, 10000, fn);
const NO_PRESSURE = { residentLimit: '64MiB', poolLimit: '16MiB' } as const;

const samePage = (a: Uint8Array, b: Uint8Array, p: number): boolean =>
  Buffer.from(a.buffer, a.byteOffset + p * PAGE, PAGE).equals(Buffer.from(b.buffer, b.byteOffset + p * PAGE, PAGE));

test('a sequential read-back of stored and same-filled pages reads ahead; every byte is right; stored pages come in clean', async (t) => {
  const swap = await withTimeout(open(NO_PRESSURE), 10000, 'open()');
  try {
    const pages = 256;
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const model = new Uint8Array(pages * PAGE);
    const kind = (p: number) => (p % 17 === 5 ? KIND_RANDOM : p % 11 === 3 ? KIND_SAME : KIND_TEXT);
    let same = 0;
    for (let p = 0; p < pages; p++) {
      fillPage(model, p * PAGE, p, 0, kind(p));
      if (kind(p) === KIND_SAME) same++;
    }
    touch('fill', () => bytes.set(model));
    t.is(await withTimeout(region.evict(), 10000, 'evict'), pages);
    const s0 = swap.stats();
    t.is(s0.storedPages, pages - same);
    t.is(s0.samePages, same);
    t.is(s0.poolReadahead, 0);
    for (let p = 0; p < pages; p++)
      t.true(
        touch(`read page ${p}`, () => samePage(bytes, model, p)),
        `page ${p}`,
      );
    const s1 = await statsWhen(
      swap,
      (x) => x.faults.pool === s0.faults.pool + pages - same && x.faults.same === s0.faults.same + same,
    );
    t.is(s1.faults.pool - s0.faults.pool, pages - same, 'faults.pool counts every page loaded from the pool');
    t.is(s1.faults.same - s0.faults.same, same, 'faults.same likewise');
    t.is(s1.storedPages, 0);
    t.is(s1.samePages, 0);
    t.true(s1.poolReadahead > pages / 2, `most pages were read ahead: ${s1.poolReadahead}`);
    t.is(s1.faults.writeProtect, s0.faults.writeProtect, 'reads are not writes');
    t.is(s1.cleanCopies, pages - same, 'every stored page came in clean: write-protected, its pool copy kept');
    t.is(region.stats().residentPages, pages);

    // A write to a stored page that was read ahead is seen, and survives another eviction.
    const w = 200;
    t.is(kind(w), KIND_TEXT);
    touch('write a read-ahead page', () => {
      bytes[w * PAGE + 7] ^= 0xff;
      model[w * PAGE + 7] ^= 0xff;
    });
    const s2 = await statsWhen(swap, (x) => x.faults.writeProtect === s1.faults.writeProtect + 1);
    t.is(s2.faults.writeProtect, s1.faults.writeProtect + 1);
    t.is(s2.cleanCopies, pages - same - 1, 'the written page dropped its pool copy');
    await withTimeout(region.evict(), 10000, 'evict again');
    const s3 = swap.stats();
    t.is(
      s3.evictionsWithoutCompression - s2.evictionsWithoutCompression,
      pages - same - 1,
      'clean pages were dropped, not recompressed',
    );
    t.true(
      touch('read back again', () => Buffer.from(region.buffer).equals(Buffer.from(model.buffer))),
      'every byte reads back',
    );
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('a read-back that is never sequential reads nothing ahead', async (t) => {
  const swap = await withTimeout(open(NO_PRESSURE), 10000, 'open()');
  try {
    const pages = 128;
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const model = new Uint8Array(pages * PAGE);
    for (let p = 0; p < pages; p++) fillPage(model, p * PAGE, p, 1, KIND_TEXT);
    touch('fill', () => bytes.set(model));
    await withTimeout(region.evict(), 10000, 'evict');
    const s0 = swap.stats();
    // even pages, then odd pages: no fault follows its predecessor page
    for (let p = 0; p < pages; p += 2) t.true(touch(`read page ${p}`, () => samePage(bytes, model, p)));
    for (let p = 1; p < pages; p += 2) t.true(touch(`read page ${p}`, () => samePage(bytes, model, p)));
    const s1 = await statsWhen(swap, (x) => x.faults.pool === s0.faults.pool + pages);
    t.is(s1.poolReadahead, 0);
    t.is(s1.faults.pool - s0.faults.pool, pages);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});
