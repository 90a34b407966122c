/**
 * The swap file tier (open({ swapFile })) under real faults: a region ten
 * times residentLimit over a tiny pool, so that refused and incompressible
 * pages go to the file; every byte checked after a fill, random-order reads,
 * a partial rewrite, region.evict(); the file's mode and lifetime; a file on a
 * filesystem too small for it (ENOSPC: pages stay resident, nothing lost); a
 * corrupted slot (the faulting thread dies of SIGBUS, never sees wrong bytes);
 * option validation.
 *
 * Every synchronous step that touches region memory runs under the watchdog
 * (helpers/harness.ts): a fault nobody serves kills the process instead of
 * hanging the suite. Children run with a timeout and SIGKILL.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open, type OpenOptions, type Swap, type SwapStats } from '../lib';
import { type ChildResult, Watchdog, runNodeChild, tempDir as tempDirFor, withTimeout } from './helpers/harness';
import { PAGE, PageChecker, fillPage, kindOf, shuffled } from './helpers/swapfile-pattern';
import { mountSmallFs } from './helpers/swapfile-mount';
import { openSwapFilePath } from './helpers/swapfile-fd';
import { CHILD_PAGES, touchOrder } from './helpers/swapfile-corrupt-child';

const watchdog = new Watchdog();
/** Runs a synchronous step that faults; the process dies if it takes longer than `ms`. */
const touch = <T>(what: string, fn: () => T, ms = 15000): T => watchdog.guard(what, ms, fn);
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const seed = Number(process.env.TMEM_SEED) || Date.now() & 0x7fffffff;
const SLICE = 128;

const tempDir = (t: ExecutionContext, prefix = 'tmem-swapfile-'): string => tempDirFor(t, prefix);

/** Writes `pages` (in that order) at their versions, in guarded slices. */
async function writePages(
  bytes: Uint8Array,
  pages: ArrayLike<number>,
  versions: Int32Array,
  what: string,
): Promise<void> {
  for (let i0 = 0; i0 < pages.length; i0 += SLICE) {
    touch(`${what}: write ${i0}..`, () => {
      for (let i = i0; i < Math.min(pages.length, i0 + SLICE); i++) {
        const p = pages[i];
        fillPage(bytes, p * PAGE, p, versions[p], seed);
      }
    });
    await tick();
  }
}

/** Reads every page of `order` and compares all its bytes; returns descriptions of the first wrong ones. */
async function checkPages(
  bytes: Uint8Array,
  order: ArrayLike<number>,
  versions: Int32Array,
  what: string,
): Promise<string[]> {
  const check = new PageChecker(seed);
  const wrong: string[] = [];
  let count = 0;
  for (let i0 = 0; i0 < order.length; i0 += SLICE) {
    touch(`${what}: check ${i0}..`, () => {
      for (let i = i0; i < Math.min(order.length, i0 + SLICE); i++) {
        const p = order[i];
        const at = check.mismatch(bytes, p, versions[p]);
        if (at >= 0) {
          count++;
          if (wrong.length < 8) wrong.push(check.describe(bytes, p, versions[p], at));
        }
      }
    });
    await tick();
  }
  if (count > wrong.length) wrong.push(`... ${count} wrong pages in all`);
  return wrong;
}

const fileStats = (s: SwapStats): string =>
  JSON.stringify({ ...s.swapFile, resident: s.residentPages, stored: s.storedPages, refused: s.refused });

/**
 * The round trip: fill a region of `pages` pages, read it all back in random
 * order, rewrite a third, read back again, evict() and read back once more.
 * `during` runs while the swap is open (checks on the file).
 */
async function roundTrip(
  t: ExecutionContext,
  options: OpenOptions,
  pages: number,
  during?: (swap: Swap) => void,
): Promise<SwapStats> {
  t.log(`seed ${seed} (TMEM_SEED=${seed} reproduces the contents and orders)`);
  const swap = await withTimeout(open(options), 10000, 'open()');
  try {
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const versions = new Int32Array(pages);
    let random = 0;
    for (let p = 0; p < pages; p++) if (kindOf(p, 0, seed) === 'random') random++;
    t.true(random > pages / 4, `incompressible pages in the mix: ${random}`);

    const all = Uint32Array.from({ length: pages }, (_, i) => i);
    await writePages(bytes, all, versions, 'fill');
    const afterFill = swap.stats();
    t.true(afterFill.swapFile!.writtenBack > 0, `pages went to the file during the fill: ${fileStats(afterFill)}`);
    during?.(swap);

    t.deepEqual(
      await checkPages(bytes, shuffled(pages, seed ^ 1), versions, 'read back'),
      [],
      'every byte after the fill, random order',
    );

    // Rewrite a third of the pages, in random order, to version 1.
    const rewrite = shuffled(pages, seed ^ 2).subarray(0, Math.floor(pages / 3));
    for (const p of rewrite) versions[p] = 1;
    await writePages(bytes, rewrite, versions, 'rewrite');
    t.deepEqual(
      await checkPages(bytes, shuffled(pages, seed ^ 3), versions, 'read back after rewrite'),
      [],
      'every byte after rewriting a third',
    );

    const evicted = await withTimeout(region.evict(), 20000, 'region.evict()');
    t.true(evicted > 0, 'evict() pushed pages out');
    t.deepEqual(
      await checkPages(bytes, shuffled(pages, seed ^ 4), versions, 'read back after evict()'),
      [],
      'every byte after region.evict()',
    );

    const s = swap.stats();
    t.log(`swap file: ${fileStats(s)}`);
    t.true(s.swapFile!.writtenBack > 0 && s.swapFile!.swapIns > 0, `the data went through the file: ${fileStats(s)}`);
    t.true(s.swapFile!.pages <= s.swapFile!.slots);
    t.is(s.swapFile!.checksumErrors, 0);
    await withTimeout(region.close(), 10000, 'region.close()');
    t.is(swap.stats().swapFile!.pages, 0, 'closing the region freed its slots');
    return s;
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
}

// residentLimit 2MiB: the staging ring is then exactly the staging target, the
// case where a slot waiting in the write-back batch was once handed out again.
const BASE: OpenOptions = { residentLimit: '2MiB', poolLimit: '256KiB' };
const PAGES = 10 * 512; // ten times residentLimit

test.serial(
  'swap file in a directory (O_TMPFILE): 10x residentLimit, random-order reads, rewrite, evict: no loss',
  async (t) => {
    const dir = tempDir(t);
    const s = await roundTrip(t, { ...BASE, swapFile: { path: dir, size: '64MiB' } }, PAGES, () => {
      t.deepEqual(fs.readdirSync(dir), [], 'the O_TMPFILE swap file has no name in the directory');
    });
    t.is(s.swapFile!.ioErrors, 0);
    t.is(s.swapFile!.slots, 16384);
    t.deepEqual(fs.readdirSync(dir), [], 'nothing left in the directory');
  },
);

test.serial(
  'swap file at a path: created 0600, unlinked while open (no name on disk), never past size, nothing left on close',
  async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'tmem.swap');
    const size = 32 * 2 ** 20;
    let sizeWhileOpen = -1;
    const s = await roundTrip(t, { ...BASE, swapFile: { path: file, size } }, PAGES, () => {
      t.false(fs.existsSync(file), 'the name is gone as soon as open() returned');
      t.deepEqual(fs.readdirSync(dir), []);
      const st = fs.statSync(openSwapFilePath(file));
      t.is(st.mode & 0o777, 0o600, `swap file mode ${(st.mode & 0o777).toString(8)}`);
      t.true(st.isFile());
      t.is(st.nlink, 0, 'no link to it anywhere');
      sizeWhileOpen = st.size;
      t.true(st.size > 0 && st.size <= size, `file size ${st.size} within swapFile.size`);
    });
    t.true(sizeWhileOpen >= 0);
    t.is(s.swapFile!.ioErrors, 0);
    t.deepEqual(fs.readdirSync(dir), [], 'nothing left in the directory');
  },
);

test.serial(
  'incompressible pages only, 4x residentLimit, three random-order read passes: every page from the file, no loss',
  async (t) => {
    // Every evicted page waits in the write-back batch (DEFERRED) while its staging slot is
    // already off the ring; random reads leave second-chance holes in the ring. Together they
    // once made the dispatcher hand out a slot still holding a deferred page and spin forever.
    const dir = tempDir(t);
    const swap = await withTimeout(
      open({ residentLimit: '4MiB', poolLimit: '256KiB', swapFile: { path: dir, size: '64MiB' } }),
      10000,
      'open()',
    );
    try {
      const pages = 4096;
      const region = swap.region(pages * PAGE);
      const bytes = new Uint8Array(region.buffer);
      const check = new PageChecker(seed);
      touch('fill', () => {
        for (let p = 0; p < pages; p++) fillPage(bytes, p * PAGE, p, 0, seed, 'random');
      });
      for (let pass = 0; pass < 3; pass++) {
        const order = shuffled(pages, seed ^ (0x100 + pass));
        const wrong = touch(`random read pass ${pass}`, () => {
          const out: string[] = [];
          for (const p of order) {
            const at = check.mismatch(bytes, p, 0, 'random');
            if (at >= 0 && out.length < 8) out.push(check.describe(bytes, p, 0, at, 'random'));
          }
          return out;
        });
        t.deepEqual(wrong, [], `every byte, pass ${pass}`);
        await tick();
      }
      const s = swap.stats();
      t.log(`swap file: ${fileStats(s)}, second chances ${s.secondChance}`);
      t.true(s.swapFile!.swapIns > pages, `most reads came from the file: ${fileStats(s)}`);
      t.is(s.swapFile!.checksumErrors, 0);
      await withTimeout(region.close(), 10000, 'region.close()');
    } finally {
      await withTimeout(swap.close(), 10000, 'swap.close()');
    }
  },
);

test.serial('ENOSPC: a swap file larger than its filesystem; pages stay resident, every byte reads back', async (t) => {
  const reasons: string[] = [];
  const small = mountSmallFs(os.tmpdir(), 2 ** 20, reasons);
  if (!small) {
    t.log(`cannot mount a small filesystem here, skipping: ${reasons.join('; ')}`);
    t.pass();
    return;
  }
  t.teardown(() => small.unmount());
  t.log(`swap file on ${small.how}`);
  const file = path.join(small.dir, 'tmem.swap');
  // resident 1MiB + pool 256KiB + a 1MiB filesystem, for an 8MiB region.
  const swap = await withTimeout(
    open({
      residentLimit: '1MiB',
      poolLimit: '256KiB',
      swapFile: { path: file, size: '16MiB' },
    }),
    10000,
    'open()',
  );
  try {
    const pages = 2048;
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const versions = new Int32Array(pages);
    await writePages(
      bytes,
      Uint32Array.from({ length: pages }, (_, i) => i),
      versions,
      'fill',
    );
    t.deepEqual(
      await checkPages(bytes, shuffled(pages, seed ^ 5), versions, 'read back'),
      [],
      'every byte after the fill',
    );
    const full = swap.stats();
    t.true(full.swapFile!.ioErrors > 0, `writes failed with ENOSPC: ${fileStats(full)}`);
    // Swap-ins freed slots that already have blocks in the file: once the back-off after the
    // error is over (1 s), write-back must use them rather than keep failing further out.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await withTimeout(region.evict(), 20000, 'region.evict()');
    const again = swap.stats();
    t.log(`evict() after the back-off: ${fileStats(again)}`);
    // Pages read back keep their slots (swap cache) and go back to them with no write;
    // slots freed by writes are reused: either way the file holds pages again.
    t.true(
      again.swapFile!.pages > full.swapFile!.pages,
      `the file takes pages again after ENOSPC, in its slots with blocks: before ${fileStats(full)}, after ${fileStats(again)}`,
    );
    t.deepEqual(
      await checkPages(bytes, shuffled(pages, seed ^ 8), versions, 'read back after evict()'),
      [],
      'every byte after evict()',
    );
    const rewrite = shuffled(pages, seed ^ 6).subarray(0, pages / 2);
    for (const p of rewrite) versions[p] = 1;
    await writePages(bytes, rewrite, versions, 'rewrite');
    t.deepEqual(
      await checkPages(bytes, shuffled(pages, seed ^ 7), versions, 'read back after rewrite'),
      [],
      'every byte after a rewrite',
    );
    const s = swap.stats();
    t.log(`swap file: ${fileStats(s)}`);
    t.true(s.swapFile!.ioErrors > 0, `writes failed with ENOSPC: ${fileStats(s)}`);
    t.true(s.swapFile!.writtenBack > 0, 'what fitted went to the file');
    t.true(s.swapFile!.swapIns > 0, 'and came back from it');
    t.true(s.residentPages > 256, 'pages the file could not take stayed resident');
    t.true(fs.statSync(openSwapFilePath(file)).size <= 2 ** 20 + PAGE * 64, 'the file is bounded by its filesystem');
    await withTimeout(region.close(), 10000, 'region.close()');
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

function runChild(args: string[], ms: number): Promise<ChildResult> {
  return runNodeChild(path.join(__dirname, 'helpers', 'swapfile-corrupt-child.js'), args, ms);
}

for (const order of ['seq', 'random'] as const) {
  test(`a corrupted slot of a plain swap file (encrypt: false): SIGBUS at that page with "checksum mismatch", never wrong bytes (${order} touches)`, async (t) => {
    const dir = tempDir(t);
    const childSeed = (seed ^ (order === 'seq' ? 11 : 13)) | 0;
    const r = await runChild([dir, order, String(childSeed), 'plain-flip'], 30000);
    const tail = r.stderr
      .split('\n')
      .filter((l) => !l.startsWith('ok '))
      .join('\n');
    t.log(tail);
    t.false(r.stderr.includes('WRONG BYTES'), 'no page read back wrong');
    t.is(r.signal, 'SIGBUS', `the child died of SIGBUS (code ${r.code}, signal ${r.signal})`);
    const m = /tmem: region (\d+) page (\d+) cannot be restored: checksum mismatch in swap file slot (\d+)/.exec(
      r.stderr,
    );
    t.truthy(m, 'stderr names the region, the page and the slot');
    const announced = /child: region (\d+),/.exec(r.stderr);
    t.truthy(announced);
    if (!m || !announced) return;
    t.is(m[1], announced[1], "the region named is the child's");
    // Pages were checked in a known order: every page before the named one read back right,
    // and the named page is the one being touched when the child died.
    const oks = [...r.stderr.matchAll(/^ok (\d+)$/gm)].map((x) => Number(x[1]));
    const expected = touchOrder(order, childSeed);
    t.deepEqual(oks, Array.from(expected.subarray(0, oks.length)), 'pages read back in order before the bad one');
    t.true(oks.length < CHILD_PAGES);
    t.is(Number(m[2]), expected[oks.length], 'the page named is the page whose touch died');
  });
}

test('swapFile option validation: TypeError / RangeError naming swapFile.path or swapFile.size, nothing created', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'never');
  const bad: Array<[unknown, typeof TypeError | typeof RangeError, RegExp]> = [
    [{}, TypeError, /swapFile\.path/],
    [{ path: '' }, TypeError, /swapFile\.path/],
    [{ path: 42, size: '1MiB' }, TypeError, /swapFile\.path/],
    [{ path: file }, TypeError, /swapFile\.size/],
    [{ path: file, size: 'x' }, RangeError, /swapFile\.size/],
    [{ path: file, size: '12 parsecs' }, RangeError, /swapFile\.size/],
    [{ path: file, size: 0 }, RangeError, /swapFile\.size/],
    [{ path: file, size: 4095 }, RangeError, /swapFile\.size/],
    [{ path: file, size: -4096 }, RangeError, /swapFile\.size/],
    [{ path: file, size: 1.5 }, RangeError, /swapFile\.size/],
    [null, TypeError, /swapFile/],
    ['/tmp', TypeError, /swapFile/],
  ];
  for (const [swapFile, type, message] of bad) {
    const err = await t.throwsAsync(
      open({ residentLimit: '1MiB', swapFile } as unknown as OpenOptions),
      { instanceOf: type, message },
      `swapFile: ${JSON.stringify(swapFile)}`,
    );
    t.log(`${JSON.stringify(swapFile)} -> ${err?.name}: ${err?.message}`);
  }
  t.false(fs.existsSync(file), 'no file was created by a rejected open()');
});
