/**
 * Mapped files under hostile conditions (issue 9): a write(2) into the mapped
 * file from region memory (deadlock), paths that are not regular files, full
 * filesystems on write-back and close(), and files changed by someone else.
 * Scenarios that hung or crashed tmem run in a child process
 * (helpers/file-region-child.ts) with a generous hang guard; the ENOSPC ones
 * need root to mount a small tmpfs and are skipped (with the reason) without.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { open } from '../lib';
import { type ChildResult, Watchdog, runNodeChild, tempDir as tempDirFor, withTimeout } from './helpers/harness';
import { mountSmallFs, type SmallFs } from './helpers/swapfile-mount';

const PAGE = 4096;
const CHILD = path.join(__dirname, 'helpers', 'file-region-child.js');
const HANG_GUARD_MS = 45000; // under ava's 60 s timeout
const watchdog = new Watchdog();
const touch = <T>(what: string, fn: () => T): T => watchdog.guard(what, 10000, fn);
const tempDir = (t: ExecutionContext): string => tempDirFor(t, 'tmem-filerel-');

function child(t: ExecutionContext, args: string[]): Promise<ChildResult> {
  return runNodeChild(CHILD, args, HANG_GUARD_MS).then((r) => {
    t.log(r.stderr.trim());
    return r;
  });
}

function passed(t: ExecutionContext, r: ChildResult): void {
  t.is(r.signal, null, `the child was not killed (a hang is SIGKILLed after ${HANG_GUARD_MS} ms): ${r.stderr}`);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /child: done/);
}

function smallFs(t: ExecutionContext, bytes: number): SmallFs | null {
  const reasons: string[] = [];
  const small = mountSmallFs(os.tmpdir(), bytes, reasons);
  if (!small) {
    t.log(`cannot mount a small filesystem here, skipping: ${reasons.join('; ')}`);
    return null;
  }
  t.teardown(() => small.unmount());
  return small;
}

test('item 2: fs.writeSync into a mapped file from non-resident region memory, with dirty pages being written back, does not deadlock; every byte is in the file', async (t) => {
  const r = await child(t, ['deadlock', tempDir(t)]);
  passed(t, r);
});

test.serial('item 2: the same on tmpfs', async (t) => {
  const small = smallFs(t, 64 * 2 ** 20);
  if (!small) return t.pass();
  const r = await child(t, ['deadlock', small.dir]);
  passed(t, r);
});

test('item 3: mapFile of a FIFO, a socket, a device or a directory is refused at once with ERR_TMEM_NOT_REGULAR_FILE', async (t) => {
  const r = await child(t, ['not-regular', tempDir(t)]);
  passed(t, r);
});

test.serial(
  'item 5: after close() of a writable mapping failed with ENOSPC, the region stays usable, a retried close() writes it, and a new region at its address is served',
  async (t) => {
    const small = smallFs(t, 2 * 2 ** 20);
    if (!small) return t.pass();
    const r = await child(t, ['close-enospc', small.dir, path.join(small.dir, 'filler')]);
    passed(t, r);
  },
);

test.serial(
  'item 7: ENOSPC on write-back keeps the dirty pages, counts fileWriteErrors, flush() rejects with ENOSPC and succeeds once there is room',
  async (t) => {
    const small = smallFs(t, 2 * 2 ** 20);
    if (!small) return t.pass();
    const r = await child(t, ['wb-enospc', small.dir, path.join(small.dir, 'filler')]);
    passed(t, r);
  },
);

test('item 14: a file changed by someone else: truncated pages read as zeros, cleancache never serves a page older than the file, flush() never re-extends a truncated file, a grown file keeps its mapped size', async (t) => {
  const dir = tempDir(t);
  const swap = await withTimeout(open({ residentLimit: '64MiB', poolLimit: '64MiB' }), 10000, 'open()');
  try {
    const text = (salt: string, pages: number): Buffer =>
      Buffer.from(`${salt} `.repeat(Math.ceil((pages * PAGE) / (salt.length + 1)))).subarray(0, pages * PAGE);

    // Changed in place by another writer (same size): the evicted page comes back new, not from cleancache.
    const a = path.join(dir, 'changed');
    fs.writeFileSync(a, text('old', 8));
    const ra = swap.mapFile(a);
    t.true(touch('read', () => Buffer.from(ra.buffer).equals(text('old', 8))));
    await withTimeout(ra.evict(), 10000, 'evict()');
    t.true(swap.stats().cleancache.puts >= 8, 'the clean pages went to cleancache');
    fs.writeFileSync(a, text('new', 8));
    t.true(
      touch('re-read', () => Buffer.from(ra.buffer).equals(text('new', 8))),
      'the pages the file has now, not the evicted ones',
    );

    // Truncated under the mapping: pages past the new end read as zeros (no SIGBUS).
    await withTimeout(ra.evict(), 10000, 'evict()');
    fs.truncateSync(a, 3 * PAGE);
    const after = touch('read truncated', () => Buffer.from(ra.buffer));
    t.true(after.subarray(0, 3 * PAGE).equals(text('new', 3)), 'what is left of the file');
    t.true(
      after.subarray(3 * PAGE).every((x) => x === 0),
      'zeros past the new end',
    );
    await withTimeout(ra.close(), 10000, 'close()');

    // A writable mapping's dirty pages past a truncation are dropped: flush() never re-extends the file.
    const b = path.join(dir, 'truncated');
    fs.writeFileSync(b, text('bbb', 8));
    const rb = swap.mapFile(b, { writable: true });
    const patch = randomBytes(100);
    touch('write', () => {
      new Uint8Array(rb.buffer).set(patch, 6 * PAGE);
      new Uint8Array(rb.buffer).set(patch, 10);
    });
    fs.truncateSync(b, 2 * PAGE);
    await withTimeout(rb.flush(), 10000, 'flush()');
    t.is(fs.statSync(b).size, 2 * PAGE, 'the file keeps the size it was truncated to');
    const want = Buffer.from(text('bbb', 2));
    patch.copy(want, 10);
    t.true(fs.readFileSync(b).equals(want), 'the dirty page inside the file was written');
    await withTimeout(rb.close(), 10000, 'close()');

    // Grown: the mapping keeps the size it was mapped with; bytes past it read as zero.
    const c = path.join(dir, 'grown');
    const size = 2 * PAGE + 100;
    fs.writeFileSync(c, text('ccc', 3).subarray(0, size));
    const rc = swap.mapFile(c);
    fs.appendFileSync(c, Buffer.alloc(3 * PAGE, 0x41));
    t.is(rc.fileSize, size);
    t.is(rc.buffer.byteLength, 3 * PAGE);
    const g = touch('read grown', () => Buffer.from(rc.buffer));
    t.true(g.subarray(0, size).equals(text('ccc', 3).subarray(0, size)));
    t.true(
      g.subarray(size).every((x) => x === 0),
      'bytes past the mapped size read as zero',
    );
    await withTimeout(rc.close(), 10000, 'close()');
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});
