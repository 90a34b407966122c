/**
 * zram's idle handling with real faults: idle stored pages are recompressed
 * with zstd when that saves space, pages nothing helps are marked and never
 * tried again, and with a swap file idle pages are written back to it. Every
 * byte is read back afterwards.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { open, type Swap, type SwapStats } from '../lib';
import { Watchdog, statsWhen } from './helpers/harness';
import { mountSmallFs } from './helpers/swapfile-mount';

const PAGE = 4096;
const watchdog = new Watchdog();

/** Text-like pages (lz4 gains, zstd at level 9 gains more) and `randomPages` incompressible ones. */
function content(pages: number, randomPages: number): Buffer {
  const b = Buffer.alloc(pages * PAGE);
  const words = ['{"id":', '"name":"', 'alpha', 'beta', 'gamma', '"tags":[', '],', 'delta', 'epsilon', '}'];
  let x = 12345;
  for (let p = 0; p < pages - randomPages; p++) {
    let o = p * PAGE;
    const end = o + PAGE;
    while (o < end) {
      x = (x * 1103515245 + 12345) >>> 0;
      const w = words[x % words.length] + String(x % 997);
      o += b.write(w, o, Math.min(w.length, end - o), 'latin1');
    }
  }
  randomBytes(randomPages * PAGE).copy(b, (pages - randomPages) * PAGE);
  return b;
}

const until = (swap: Swap, ok: (s: SwapStats) => boolean, ms: number): Promise<SwapStats> =>
  statsWhen(swap, ok, ms, 20);

test('idle pages are recompressed with zstd when it saves space; incompressible ones are marked once and never retried', async (t) => {
  const pages = 256,
    random = 32;
  const swap = await open({ residentLimit: '4MiB', poolLimit: '16MiB', idle: { after: 150, budget: 10000 } });
  try {
    const region = swap.region(pages * PAGE);
    const want = content(pages, random);
    const bytes = new Uint8Array(region.buffer);
    watchdog.guard('fill', 10000, () => bytes.set(want));
    t.is(await region.evict(), pages);
    const before = swap.stats();
    t.is(before.storedPages, pages);
    const s1 = await until(swap, (s) => s.idle.recompressed + s.idle.noGain >= pages, 5000);
    t.is(s1.idle.recompressed, pages - random, 'every text page was recompressed');
    t.is(s1.idle.noGain, random, 'every random page was tried once and marked');
    t.true(s1.idle.bytesSaved > 0);
    t.true(
      s1.compressedBytes < before.compressedBytes,
      `compressed bytes fell: ${before.compressedBytes} -> ${s1.compressedBytes}`,
    );
    t.is(s1.compressedBytes, before.compressedBytes - s1.idle.bytesSaved);
    // Another idle period: the marked pages are visited again but not retried.
    await new Promise((r) => setTimeout(r, 1500));
    const s2 = swap.stats();
    t.is(s2.idle.noGain, random, 'no page is retried');
    t.is(s2.idle.recompressed, pages - random, 'zstd pages are not recompressed again');
    watchdog.guard('read back', 10000, () =>
      t.true(Buffer.from(bytes.buffer, 0, pages * PAGE).equals(want), 'every byte reads back'),
    );
    // Counters move right after the faulting thread is woken: wait for the last one.
    t.is((await until(swap, (x) => x.faults.pool === pages, 2000)).faults.pool, pages);
  } finally {
    await swap.close();
  }
});

test("idle.writeback 'idle' with a swap file: idle pages go to the file and read back", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-idle-'));
  const pages = 200;
  const swap = await open({
    residentLimit: '4MiB',
    poolLimit: '16MiB',
    swapFile: { path: dir, size: '4MiB' },
    idle: { after: 150, budget: 10000, recompress: false, writeback: 'idle' },
  });
  try {
    const region = swap.region(pages * PAGE);
    const want = content(pages, 10);
    const bytes = new Uint8Array(region.buffer);
    watchdog.guard('fill', 10000, () => bytes.set(want));
    await region.evict();
    // idle.writtenBack counts a page when the pass queues it; the batch is written at the end of
    // the pass (later with an encrypted file): wait for the file to hold what was counted.
    const s = await until(
      swap,
      (x) => x.idle.writtenBack >= pages - 10 && x.swapFile!.pages >= x.idle.writtenBack + 10,
      5000,
    );
    t.true(s.idle.writtenBack >= pages - 10, `idle pages written back: ${s.idle.writtenBack}`);
    t.is(
      s.swapFile!.pages,
      s.idle.writtenBack + 10,
      'the random pages went to the file at eviction, the rest when idle',
    );
    t.is(s.storedPages, 0, 'nothing idle is left in the pool');
    watchdog.guard('read back', 10000, () =>
      t.true(Buffer.from(bytes.buffer, 0, pages * PAGE).equals(want), 'every byte reads back'),
    );
    t.true((await until(swap, (x) => x.swapFile!.swapIns >= pages - 10, 2000)).swapFile!.swapIns >= pages - 10);
  } finally {
    await swap.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.serial(
  "idle.writeback 'idle' onto a full filesystem: pages that could not be written stay stored, counted idle once",
  async (t) => {
    const reasons: string[] = [];
    const small = mountSmallFs(os.tmpdir(), 2 ** 20, reasons);
    if (!small) {
      t.log(`cannot mount a small filesystem here, skipping: ${reasons.join('; ')}`);
      t.pass();
      return;
    }
    t.teardown(() => small.unmount());
    // 1,024 idle pages for a file that has room for fewer than 256: most write-backs fail
    // (ENOSPC), those pages stay in the pool and are visited again by later passes.
    const pages = 1024;
    const swap = await open({
      residentLimit: '1MiB',
      poolLimit: '32MiB',
      swapFile: { path: path.join(small.dir, 'tmem.swap'), size: '16MiB' },
      idle: { after: 100, budget: 10000, recompress: false, writeback: 'idle' },
    });
    try {
      const region = swap.region(pages * PAGE);
      const want = content(pages, 0);
      const bytes = new Uint8Array(region.buffer);
      watchdog.guard('fill', 20000, () => bytes.set(want));
      await region.evict();
      const first = await until(swap, (x) => x.swapFile!.ioErrors > 0, 10000);
      t.true(first.swapFile!.ioErrors > 0, 'the filesystem filled');
      // Passes after the back-off visit the pages left in the pool again: each must stay counted
      // once (the counter crept up by the pages of every failed batch at each pass).
      let worst = 0;
      for (let i = 0; i < 30; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const s = swap.stats();
        worst = Math.max(worst, s.idle.pages - s.storedPages);
        t.true(
          s.idle.writtenBack <= s.swapFile!.writtenBack,
          `idle write-backs counted once written: ${JSON.stringify(s.idle)}`,
        );
      }
      t.true(worst <= 0, `idle pages never exceed the stored pages (by ${worst})`);
      const s = swap.stats();
      t.log(`idle ${JSON.stringify(s.idle)}, swap file ${JSON.stringify(s.swapFile)}`);
      t.true(
        s.idle.writtenBack > 0 && s.swapFile!.pages > 0,
        `what fitted went to the file: ${JSON.stringify(s.idle)} file ${JSON.stringify(s.swapFile)}`,
      );
      watchdog.guard('read back', 20000, () =>
        t.true(Buffer.from(bytes.buffer, 0, pages * PAGE).equals(want), 'every byte reads back'),
      );
    } finally {
      await swap.close();
    }
  },
);

test('idle option validation names the field', async (t) => {
  await t.throwsAsync(open({ idle: { after: -1 } }), { instanceOf: RangeError, message: /idle\.after/ });
  await t.throwsAsync(open({ idle: { writeback: 'all' as never } }), {
    instanceOf: RangeError,
    message: /idle\.writeback/,
  });
  await t.throwsAsync(open({ idle: { recompressLevel: 30 } }), {
    instanceOf: RangeError,
    message: /idle\.recompressLevel/,
  });
  await t.throwsAsync(open({ idle: { budget: 0 } }), { instanceOf: RangeError, message: /idle\.budget/ });
  await t.throwsAsync(open({ idle: 'soon' as never }), { instanceOf: TypeError, message: /idle/ });
});
