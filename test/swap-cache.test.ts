/**
 * The swap file's swap cache (issue 9, item 16): a page read back from the swap
 * file keeps its slot and comes back write-protected, as the kernel's swap cache
 * keeps a swapped-in page's slot until the page is written. Evicting it again
 * writes nothing; a write frees the slot and the next eviction writes the page.
 * Slots are kept only while the file is at most half full (the kernel's
 * vm_swap_full rule). Counted by swapFile.writtenBack (each page written to the
 * file counts), every byte checked.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { open, type SwapStats } from '../lib';
import { Watchdog, statsWhen, tempDir, withTimeout } from './helpers/harness';

const PAGE = 4096;
const watchdog = new Watchdog();
const touch = <T>(what: string, fn: () => T): T => watchdog.guard(what, 15000, fn);
const file = (s: SwapStats): string =>
  JSON.stringify({
    ...s.swapFile,
    resident: s.residentPages,
    stored: s.storedPages,
    noCompress: s.evictionsWithoutCompression,
  });

test('pages only read since their swap-in are evicted again without a swap file write', async (t) => {
  const dir = tempDir(t, 'tmem-swapcache-');
  const swap = await withTimeout(
    open({ residentLimit: '64MiB', swapFile: { path: dir, size: '16MiB' } }),
    10000,
    'open()',
  );
  try {
    const pages = 256;
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const model = randomBytes(pages * PAGE); // incompressible: the pool sends them to the file
    touch('fill', () => bytes.set(model));
    t.is(await withTimeout(region.evict(), 20000, 'evict'), pages);
    const s0 = swap.stats();
    t.is(s0.swapFile!.writtenBack, pages, `every page written once: ${file(s0)}`);
    t.is(s0.swapFile!.pages, pages);

    for (let cycle = 1; cycle <= 3; cycle++) {
      t.true(
        touch(`read back, cycle ${cycle}`, () => Buffer.from(region.buffer).equals(model)),
        `every byte, cycle ${cycle}`,
      );
      const r = await statsWhen(swap, (x) => x.swapFile!.swapIns === cycle * pages && x.swapFile!.cached === pages);
      t.is(r.swapFile!.swapIns, cycle * pages, 'each read came from the file');
      t.is(r.swapFile!.cached, pages, `resident and still in the file: ${file(r)}`);
      t.is(r.swapFile!.pages, 0, 'no page is only in the file');
      t.is(await withTimeout(region.evict(), 20000, 'evict'), pages);
      const e = swap.stats();
      t.is(e.swapFile!.writtenBack, pages, `cycle ${cycle}: nothing written again: ${file(e)}`);
      t.is(e.swapFile!.cached, 0);
      t.is(e.swapFile!.pages, pages);
      t.is(e.evictionsWithoutCompression, cycle * pages);
    }

    // A write frees the page's slot: its next eviction writes it (and only it).
    touch('write page 5', () => {
      bytes[5 * PAGE + 9] ^= 0x5a;
    });
    model[5 * PAGE + 9] ^= 0x5a;
    const w = await statsWhen(swap, (x) => x.swapFile!.pages === pages - 1);
    t.is(w.swapFile!.pages, pages - 1, `page 5 left the file: ${file(w)}`);
    t.true(
      touch('read all', () => Buffer.from(region.buffer).equals(model)),
      'every byte after the write',
    );
    await withTimeout(region.evict(), 20000, 'evict');
    const f = swap.stats();
    t.is(f.swapFile!.writtenBack, pages + 1, `only the written page was written again: ${file(f)}`);
    t.true(
      touch('read all again', () => Buffer.from(region.buffer).equals(model)),
      'every byte at the end',
    );
    await region.close();
    const c = await statsWhen(swap, (x) => x.swapFile!.cached === 0 && x.swapFile!.pages === 0);
    t.is(c.swapFile!.cached, 0, 'close() frees kept slots');
    t.is(c.swapFile!.bytes, 0);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('a swap file more than half full keeps no slot (vm_swap_full): read pages are written again, nothing lost', async (t) => {
  const dir = tempDir(t, 'tmem-swapcache-');
  const swap = await withTimeout(
    open({ residentLimit: '64MiB', swapFile: { path: dir, size: '1MiB' } }),
    10000,
    'open()',
  );
  try {
    const pages = 200; // of 256 slots
    const region = swap.region(pages * PAGE);
    const model = randomBytes(pages * PAGE);
    touch('fill', () => new Uint8Array(region.buffer).set(model));
    await withTimeout(region.evict(), 20000, 'evict');
    t.is(swap.stats().swapFile!.writtenBack, pages);
    t.true(touch('read back', () => Buffer.from(region.buffer).equals(model)));
    await statsWhen(swap, (x) => x.swapFile!.swapIns === pages);
    // Read again: stats() reads `cached` before `swapIns`, and the dispatcher counts a swap-in's
    // kept slot just before the swap-in, so the call that first sees every swap-in may still
    // miss the last kept slot.
    const r = swap.stats();
    // Reads free slots as they go: once the file is at most half full, slots are kept again.
    const notKept = pages - (256 / 2 + 1);
    t.true(r.swapFile!.cached <= pages - notKept, `the first ${notKept} reads kept no slot: ${file(r)}`);
    await withTimeout(region.evict(), 20000, 'evict');
    t.is(
      swap.stats().swapFile!.writtenBack,
      pages + (pages - r.swapFile!.cached),
      'the pages without a kept slot were written again',
    );
    t.true(
      touch('read back again', () => Buffer.from(region.buffer).equals(model)),
      'every byte',
    );
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});
