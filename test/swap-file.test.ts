/**
 * File regions (swap.mapFile, the cleancache front-end) with real faults:
 * a mapping reads back equal to the file (zeros past EOF in the last page);
 * clean pages evicted come back from cleancache or the file; a writable
 * mapping's writes reach the file on flush(), eviction and close() without
 * changing its length; private writes to a read-only mapping survive eviction
 * (frontswap keeps them) and never reach the file.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { open } from '../lib';
import { Watchdog, statsWhen, tempDir as tempDirFor, withTimeout } from './helpers/harness';
import { PAGE, fillPage, KIND_TEXT } from './helpers/swap-pattern';

const watchdog = new Watchdog();
/** Runs a synchronous step that faults; the process dies if it is not done within 10 s. */
const touch = <T>(what: string, fn: () => T): T => watchdog.guard(what, 10000, fn);

/** A temp directory per test, removed afterwards. */
const tempDir = (t: ExecutionContext): string => tempDirFor(t, 'tmem-file-');

/** File contents: compressible and random pages alternating, `size` bytes (not a page multiple). */
function contents(size: number): Buffer {
  const b = Buffer.alloc(Math.ceil(size / PAGE) * PAGE);
  for (let p = 0; p < b.length / PAGE; p++) {
    if (p % 3 === 2) randomBytes(PAGE).copy(b, p * PAGE);
    else fillPage(b, p * PAGE, p, 0, KIND_TEXT);
  }
  return b.subarray(0, size);
}

function writeFile(dir: string, name: string, data: Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, data);
  return file;
}

const view = (ab: ArrayBuffer, off: number, len: number): Buffer => Buffer.from(ab, off, len);

test('mapFile reads back equal to the file; bytes past EOF in the last page are zero', async (t) => {
  const dir = tempDir(t);
  const size = 5 * PAGE + 1234;
  const data = contents(size);
  const file = writeFile(dir, 'f', data);
  const swap = await withTimeout(open({ residentLimit: '64MiB' }), 10000, 'open()');
  try {
    const r = swap.mapFile(file);
    t.is(r.fileSize, size);
    t.is(r.size, 6 * PAGE);
    t.is(r.path, file);
    t.false(r.writable);
    t.is(r.buffer.byteLength, 6 * PAGE);
    t.true(
      touch('read the mapping', () => view(r.buffer, 0, size).equals(data)),
      'every byte of the file',
    );
    t.true(
      touch('read past EOF', () => new Uint8Array(r.buffer, size).every((b) => b === 0)),
      'zeros past EOF',
    );
    const s = await statsWhen(swap, (x) => x.faults.file === 6);
    t.is(s.faults.file, 6, 'one file read per page');
    t.is(s.cleancache.misses, 6);
    t.is(r.stats().faults.file, 6);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('clean file pages evicted under a small residentLimit come back from cleancache or the file', async (t) => {
  const dir = tempDir(t);
  const size = 300 * PAGE + 777;
  const data = contents(size);
  const file = writeFile(dir, 'f', data);
  const swap = await withTimeout(open({ residentLimit: '256KiB', poolLimit: '64MiB' }), 10000, 'open()');
  try {
    const r = swap.mapFile(file);
    for (let round = 0; round < 3; round++) {
      t.true(
        touch(`read round ${round}`, () => view(r.buffer, 0, size).equals(data)),
        `round ${round}: every byte`,
      );
      t.true(touch(`zeros round ${round}`, () => new Uint8Array(r.buffer, size).every((b) => b === 0)));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await withTimeout(r.evict(), 10000, 'evict()');
    t.true(
      touch('read after evict()', () => view(r.buffer, 0, size).equals(data)),
      'every byte after evict()',
    );
    const s = await statsWhen(swap, (x) => x.cleancache.hits + x.faults.file >= 4 * 301);
    t.true(s.evictions > 0, `clean pages were evicted: ${JSON.stringify(s)}`);
    t.true(s.cleancache.puts > 0, `compressible clean pages went to cleancache: ${JSON.stringify(s.cleancache)}`);
    t.true(s.cleancache.hits > 0, `some came back from cleancache: ${JSON.stringify(s.cleancache)}`);
    t.true(s.cleancache.hits + s.faults.file >= 4 * 301, `every pass faulted every page in: ${JSON.stringify(s)}`);
    t.is(s.fileWrites, 0, 'a read-only mapping writes nothing');
    t.true(fs.readFileSync(file).equals(data), 'the file is unchanged');
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('writable mapping: flush() writes the changes, the file keeps its length; eviction and close() write too', async (t) => {
  const dir = tempDir(t);
  const size = 40 * PAGE + 333;
  const model = Buffer.from(contents(size));
  const file = writeFile(dir, 'f', model);
  const swap = await withTimeout(open({ residentLimit: '64MiB' }), 10000, 'open()');
  try {
    const r = swap.mapFile(file, { writable: true });
    t.true(r.writable);
    const b = new Uint8Array(r.buffer);
    // Writes into pages never read (write faults), pages read first (write-protect faults), and the last partial page.
    touch('read some pages', () => {
      for (let p = 0; p < 40; p += 4) t.is(b[p * PAGE + 5], model[p * PAGE + 5]);
    });
    const patch = (off: number, bytes: Uint8Array): void => {
      touch(`write at ${off}`, () => b.set(bytes, off));
      model.set(bytes, off);
    };
    patch(0, Buffer.from('hello, tmem'));
    patch(4 * PAGE + 100, randomBytes(3000));
    patch(7 * PAGE - 10, randomBytes(20)); // across a page boundary
    patch(size - 50, randomBytes(50)); // up to EOF
    touch('write past EOF', () => b.fill(0xee, size, size + 100)); // beyond the file: never written to it
    const wrote = await withTimeout(r.flush(), 10000, 'flush()');
    t.true(wrote >= 5, `dirty pages were written: ${wrote}`);
    t.is(fs.statSync(file).size, size, 'the length did not change');
    t.true(fs.readFileSync(file).equals(model), 'the file holds exactly what was written');
    t.is(await withTimeout(r.flush(), 10000, 'flush() again'), 0, 'nothing dirty after a flush');
    t.true(touch('the mapping still reads right', () => view(r.buffer, 0, size).equals(model)));

    // Written after the flush, then evicted: the eviction writes them back.
    patch(10 * PAGE, randomBytes(PAGE));
    patch(20 * PAGE + 1, Buffer.from([1, 2, 3]));
    await withTimeout(r.evict(), 10000, 'evict()');
    t.true(fs.readFileSync(file).equals(model), 'eviction wrote the dirty pages');
    t.true(touch('re-read after evict', () => view(r.buffer, 0, size).equals(model)));

    // Written, then closed without flush(): close() flushes.
    patch(30 * PAGE + 7, randomBytes(100));
    patch(2 * PAGE, Buffer.from('closing'));
    await withTimeout(r.close(), 10000, 'region.close()');
    t.is(fs.statSync(file).size, size, 'the length did not change');
    t.true(fs.readFileSync(file).equals(model), 'close() wrote the dirty pages');
    const s = swap.stats();
    t.true(s.fileWrites >= 9, `file writes counted: ${s.fileWrites}`);
    t.true(s.faults.writeProtect > 0, 'writes to clean pages went through write-protect faults');
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('writable mapping: swap.close() flushes its open file regions', async (t) => {
  const dir = tempDir(t);
  const size = 3 * PAGE + 5;
  const model = Buffer.from(contents(size));
  const file = writeFile(dir, 'f', model);
  const swap = await withTimeout(open({ residentLimit: '64MiB' }), 10000, 'open()');
  let closed = false;
  try {
    const r = swap.mapFile(file, { writable: true });
    const bytes = randomBytes(size - 10);
    touch('write', () => new Uint8Array(r.buffer).set(bytes, 5));
    model.set(bytes, 5);
    await withTimeout(swap.close(), 10000, 'swap.close()');
    closed = true;
    t.true(r.closed);
    t.true(fs.readFileSync(file).equals(model), 'swap.close() wrote the dirty pages');
  } finally {
    if (!closed) await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('read-only mapping: private writes survive eviction (frontswap), a re-read and a second eviction; the file is unchanged', async (t) => {
  const dir = tempDir(t);
  const size = 8 * PAGE + 100;
  const data = contents(size);
  const file = writeFile(dir, 'f', data);
  const swap = await withTimeout(open({ residentLimit: '64MiB' }), 10000, 'open()');
  try {
    const r = swap.mapFile(file);
    const b = new Uint8Array(r.buffer);
    const model = Buffer.from(data);
    const priv = [
      { off: 1 * PAGE, bytes: randomBytes(PAGE) }, // incompressible
      { off: 3 * PAGE + 10, bytes: Buffer.from('a private change to a read-only mapping') },
      { off: 5 * PAGE, bytes: Buffer.alloc(PAGE, 0x5a) }, // same-filled
      { off: 8 * PAGE, bytes: randomBytes(100) }, // the partial last page
    ];
    touch('private writes', () => {
      for (const w of priv) b.set(w.bytes, w.off);
    });
    for (const w of priv) model.set(w.bytes, w.off);

    for (let round = 0; round < 3; round++) {
      await t.notThrowsAsync(withTimeout(r.evict(), 10000, 'evict()'), `evict() round ${round}`);
      const lost = touch(`read round ${round}`, () =>
        priv.filter((w) => !view(r.buffer, w.off, w.bytes.length).equals(w.bytes)),
      );
      t.deepEqual(
        lost.map((w) => w.off),
        [],
        `round ${round}: private writes lost (offsets)`,
      );
      t.true(
        touch(`read all round ${round}`, () => view(r.buffer, 0, size).equals(model)),
        `round ${round}: every byte`,
      );
      t.true(fs.readFileSync(file).equals(data), `round ${round}: the file is unchanged`);
    }
    t.is(swap.stats().fileWrites, 0);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});
