/**
 * Tests of the raw binding (lib/native.ts over native/binding.cc), apart from
 * the high-level API. Real faults, no mocks: a fault-server Worker
 * (helpers/fault-server.ts) serves a uffd opened here while this thread
 * touches pages, and every byte that comes back is compared.
 *
 * Nothing may hang the suite: waits on Workers and children have timeouts,
 * and each synchronous step that faults runs under a watchdog that kills the
 * process if nobody serves the fault (helpers/watchdog.ts).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { compressSync } from 'lz4-napi';
import {
  native,
  COPY_WP,
  MADV_DONTNEED,
  PAGEFAULT_FLAG_WP,
  PAGEFAULT_FLAG_WRITE,
  PAGE_SIZE,
  REGISTER_MODE_MISSING,
  REGISTER_MODE_WP,
  UFFD_EVENT_PAGEFAULT,
  FEATURE_MOVE,
  FEATURE_THREAD_ID,
  FEATURE_POISON,
} from '../lib/native';
import {
  ACTION_MOVE_FROM,
  ACTION_PATTERN,
  ACTION_PATTERN_WP,
  ACTION_ZERO,
  fillPattern,
  firstPatternMismatch,
} from './helpers/fault-protocol';
import {
  type ChildResult,
  FaultServer,
  LoggedEvent,
  Watchdog,
  runNodeChild,
  startFaultServer,
  withTimeout,
} from './helpers/harness';

const watchdog = new Watchdog();
/** Runs a step that faults; the process dies (test fails) if it is not served within 5 s. */
const touch = <T>(what: string, fn: () => T): T => watchdog.guard(what, 5000, fn);

const mainTid = native.gettid();

function assertNoErrors(t: import('ava').ExecutionContext, server: FaultServer): void {
  t.is(server.errorCount(), 0, `fault-server errors: ${server.errors.join('; ')}`);
}

function onlyFault(t: import('ava').ExecutionContext, events: LoggedEvent[], address: number): LoggedEvent {
  t.is(events.length, 1, `expected one event, got ${JSON.stringify(events)}`);
  const ev = events[0];
  t.is(ev.kind, UFFD_EVENT_PAGEFAULT);
  t.is(ev.address, address);
  t.is(ev.tid, mainTid, 'the event names the thread that faulted');
  return ev;
}

/** Every byte of a page compared with the pattern; one assertion. */
function assertPattern(
  t: import('ava').ExecutionContext,
  bytes: Uint8Array,
  offset: number,
  address: number,
  what: string,
): void {
  t.is(firstPatternMismatch(bytes, offset, address), -1, `${what}: first byte that differs from the pattern`);
}

test('probe() reports the features tmem relies on; the uffd negotiates THREAD_ID, MOVE, POISON', (t) => {
  const p = native.probe();
  t.true(p.fullMode);
  for (const bit of [FEATURE_THREAD_ID, FEATURE_MOVE, FEATURE_POISON]) t.truthy(p.features & bit);
  t.true(p.featureNames.includes('THREAD_ID') && p.featureNames.includes('MOVE'));
  // UFFDIO_API answers with the fd's own ioctls; COPY, MOVE, ... are per range (UFFDIO_REGISTER's answer).
  t.deepEqual(p.ioctlNames, ['REGISTER', 'UNREGISTER', 'API']);
  const uffd = new native.Uffd(1);
  const d = uffd.describe();
  t.is(d.fd, uffd.fd);
  t.false(d.userModeOnly);
  for (const bit of [FEATURE_THREAD_ID, FEATURE_MOVE, FEATURE_POISON]) t.truthy(d.features & bit);
  uffd.close();
});

test('the binding loads in a Worker', async (t) => {
  const nativeJs = path.join(__dirname, '..', 'lib', 'native.js');
  const w = new Worker(
    `const { parentPort } = require('node:worker_threads');
     const { native } = require(${JSON.stringify(nativeJs)});
     const u = new native.Uffd();
     const r = new native.Region(u, 4096);
     parentPort.postMessage({ uffd: typeof native.Uffd, tid: native.gettid(), size: r.buffer.byteLength });
     r.close(); u.close();`,
    { eval: true },
  );
  const exited = new Promise<number>((resolve) => w.once('exit', resolve));
  const m = await withTimeout(
    new Promise<{ uffd: string; tid: number; size: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    }),
    5000,
    'Worker loading the addon',
  );
  t.is(m.uffd, 'function');
  t.not(m.tid, mainTid);
  t.is(m.size, 4096);
  t.is(await withTimeout(exited, 5000, 'Worker exit'), 0);
});

test.serial('a Worker serves zero-page, copy and write faults of the main thread', async (t) => {
  const uffd = new native.Uffd(1);
  const region = new native.Region(uffd, 8 * PAGE_SIZE);
  const bytes = new Uint8Array(region.buffer);
  const base = region.address;
  const server = await startFaultServer(uffd);
  try {
    t.not(server.tid, mainTid);

    server.setAction(ACTION_ZERO);
    const z = touch('read of page 0 (zeropage)', () => bytes[17]);
    t.is(z, 0);
    let ev = onlyFault(t, server.takeEvents(), base);
    t.is(ev.flags & PAGEFAULT_FLAG_WRITE, 0, 'a read fault');
    t.true(
      bytes.subarray(0, PAGE_SIZE).every((b) => b === 0),
      'zero page',
    );
    // A write to the zero page is the kernel's own copy-on-write: no uffd event.
    touch('write to the zero page', () => {
      bytes[5] = 9;
    });
    t.deepEqual(server.takeEvents(), []);
    t.is(bytes[5], 9);

    server.setAction(ACTION_PATTERN);
    touch('read of page 1 (copy)', () => bytes[PAGE_SIZE + 1234]);
    ev = onlyFault(t, server.takeEvents(), base + PAGE_SIZE);
    t.is(ev.flags & PAGEFAULT_FLAG_WRITE, 0);
    assertPattern(t, bytes, PAGE_SIZE, base + PAGE_SIZE, 'page 1');

    touch('write to page 2 (copy)', () => {
      bytes[2 * PAGE_SIZE + 5] = 0xab;
    });
    ev = onlyFault(t, server.takeEvents(), base + 2 * PAGE_SIZE);
    t.is(ev.flags & PAGEFAULT_FLAG_WRITE, PAGEFAULT_FLAG_WRITE, 'a write fault says so');
    const expected = new Uint8Array(PAGE_SIZE);
    fillPattern(expected, 0, base + 2 * PAGE_SIZE);
    expected[5] = 0xab;
    t.deepEqual(bytes.slice(2 * PAGE_SIZE, 3 * PAGE_SIZE), expected, 'the write landed on the copied page');

    // The last page through a different view; pages already present fault no more.
    const tail = new DataView(region.buffer, 7 * PAGE_SIZE);
    touch('read of page 7', () => tail.getUint32(100));
    onlyFault(t, server.takeEvents(), base + 7 * PAGE_SIZE);
    assertPattern(t, bytes, 7 * PAGE_SIZE, base + 7 * PAGE_SIZE, 'page 7');
    for (const p of [0, 1, 2, 7]) touch(`re-read page ${p}`, () => bytes[p * PAGE_SIZE]);
    t.deepEqual(server.takeEvents(), []);
    assertNoErrors(t, server);
  } finally {
    t.is(await server.stop(), 0);
    region.close();
    uffd.close();
  }
});

test.serial(
  'copy onto a page that is already there (EEXIST) counts as success and leaves the page alone',
  async (t) => {
    const uffd = new native.Uffd(1);
    const region = new native.Region(uffd, 2 * PAGE_SIZE);
    const bytes = new Uint8Array(region.buffer);
    const server = await startFaultServer(uffd);
    try {
      server.setAction(ACTION_PATTERN);
      touch('read of page 0', () => bytes[0]);
      const other = new Uint8Array(PAGE_SIZE).fill(0x11);
      t.is(uffd.copy(region.address, other), PAGE_SIZE);
      assertPattern(t, bytes, 0, region.address, 'page 0 after a second copy');
      // Resolving a page nobody faulted on is fine too: it is simply there afterwards.
      t.is(uffd.copy(region.address + PAGE_SIZE, other), PAGE_SIZE);
      t.true(touch('read of page 1', () => bytes.subarray(PAGE_SIZE).every((b) => b === 0x11)));
      t.is(server.takeEvents().length, 1);
      assertNoErrors(t, server);
    } finally {
      t.is(await server.stop(), 0);
      region.close();
      uffd.close();
    }
  },
);

test.serial(
  'write-protect: a page copied in with COPY_WP faults on write; the Worker unprotects it and the write lands',
  async (t) => {
    const uffd = new native.Uffd(1);
    const region = new native.Region(uffd, 4 * PAGE_SIZE, REGISTER_MODE_MISSING | REGISTER_MODE_WP);
    const bytes = new Uint8Array(region.buffer);
    const addr = region.address + PAGE_SIZE;
    const server = await startFaultServer(uffd);
    try {
      server.setAction(ACTION_PATTERN_WP);
      touch('read of page 1 (copy, left write-protected)', () => bytes[PAGE_SIZE + 3]);
      let ev = onlyFault(t, server.takeEvents(), addr);
      t.is(ev.flags & (PAGEFAULT_FLAG_WP | PAGEFAULT_FLAG_WRITE), 0, 'a MISSING read fault');
      assertPattern(t, bytes, PAGE_SIZE, addr, 'page 1');

      touch('write to the protected page', () => {
        bytes[PAGE_SIZE + 100] = 0x5a;
      });
      ev = onlyFault(t, server.takeEvents(), addr);
      t.is(ev.flags & PAGEFAULT_FLAG_WP, PAGEFAULT_FLAG_WP, 'a WP fault');
      t.is(ev.flags & PAGEFAULT_FLAG_WRITE, PAGEFAULT_FLAG_WRITE);
      const expected = new Uint8Array(PAGE_SIZE);
      fillPattern(expected, 0, addr);
      expected[100] = 0x5a;
      t.deepEqual(bytes.slice(PAGE_SIZE, 2 * PAGE_SIZE), expected, 'the write landed and nothing else changed');

      touch('second write (unprotected now)', () => {
        bytes[PAGE_SIZE + 101] = 0x5b;
      });
      t.deepEqual(server.takeEvents(), []);

      // Protect again from the main thread: the next write faults again.
      uffd.writeProtect(addr, PAGE_SIZE, true);
      touch('write after writeProtect(true)', () => {
        bytes[PAGE_SIZE + 102] = 0x5c;
      });
      ev = onlyFault(t, server.takeEvents(), addr);
      t.is(ev.flags & PAGEFAULT_FLAG_WP, PAGEFAULT_FLAG_WP);
      expected[101] = 0x5b;
      expected[102] = 0x5c;
      t.deepEqual(bytes.slice(PAGE_SIZE, 2 * PAGE_SIZE), expected);
      assertNoErrors(t, server);
    } finally {
      t.is(await server.stop(), 0);
      region.close();
      uffd.close();
    }
  },
);

test.serial(
  'MOVE: a page moved out to a staging region faults as missing and is moved back with identical bytes',
  async (t) => {
    const uffd = new native.Uffd(1);
    const region = new native.Region(uffd, 4 * PAGE_SIZE);
    const staging = new native.Region(uffd, PAGE_SIZE);
    const bytes = new Uint8Array(region.buffer);
    const addr = region.address + PAGE_SIZE;
    const server = await startFaultServer(uffd);
    try {
      server.setAction(ACTION_PATTERN);
      touch('write to page 1', () => {
        bytes[PAGE_SIZE + 77] = 0xee;
      });
      t.is(server.takeEvents().length, 1);
      const before = bytes.slice(PAGE_SIZE, 2 * PAGE_SIZE);
      t.is(before[77], 0xee);

      t.is(uffd.move(staging.address, addr, PAGE_SIZE), PAGE_SIZE, 'moved out');
      t.deepEqual(new Uint8Array(staging.buffer).slice(), before, 'the staging page holds the page');
      t.deepEqual(server.takeEvents(), []);

      server.setAction(ACTION_MOVE_FROM, staging.address);
      const v = touch('read of the moved-out page', () => bytes[PAGE_SIZE + 77]);
      const ev = onlyFault(t, server.takeEvents(), addr);
      t.is(ev.flags & (PAGEFAULT_FLAG_WP | PAGEFAULT_FLAG_WRITE), 0, 'faults as MISSING');
      t.is(v, 0xee);
      t.deepEqual(bytes.slice(PAGE_SIZE, 2 * PAGE_SIZE), before, 'moved back: identical bytes');
      // The staging page is a hole again: moving from it finds nothing (-ENOENT).
      t.is(uffd.move(region.address + 2 * PAGE_SIZE, staging.address, PAGE_SIZE), -2);
      assertNoErrors(t, server);
    } finally {
      t.is(await server.stop(), 0);
      staging.close();
      region.close();
      uffd.close();
    }
  },
);

interface WriteFixture {
  region: InstanceType<typeof native.Region>;
  file: string;
  fd: number;
  server: FaultServer;
}

/**
 * A 2-page region of a new Uffd(mode) served with ACTION_PATTERN, and an empty
 * temporary file open for writing; `fn` writes page 1 of the region to it with
 * write(2). Everything is closed and removed afterwards.
 */
async function withWriteFixture(
  t: import('ava').ExecutionContext,
  mode: number,
  fn: (f: WriteFixture) => void,
): Promise<void> {
  const uffd = new native.Uffd(mode);
  t.is(uffd.describe().userModeOnly, mode === 2);
  const region = new native.Region(uffd, 2 * PAGE_SIZE);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-native-')), 'page');
  const fd = fs.openSync(file, 'w+');
  const server = await startFaultServer(uffd);
  try {
    server.setAction(ACTION_PATTERN);
    fn({ region, file, fd, server });
    assertNoErrors(t, server);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(path.dirname(file), { recursive: true });
    t.is(await server.stop(), 0);
    region.close();
    uffd.close();
  }
}

test.serial(
  'kernel-mode access: write(2) from a missing page of a full-mode region waits for the Worker',
  async (t) => {
    await withWriteFixture(t, 1, ({ region, file, fd, server }) => {
      const n = touch('fs.writeSync from a missing page', () =>
        fs.writeSync(fd, new Uint8Array(region.buffer, PAGE_SIZE, PAGE_SIZE)),
      );
      t.is(n, PAGE_SIZE);
      onlyFault(t, server.takeEvents(), region.address + PAGE_SIZE);
      const written = fs.readFileSync(file);
      t.is(written.length, PAGE_SIZE);
      assertPattern(t, written, 0, region.address + PAGE_SIZE, 'file contents');
    });
  },
);

test.serial(
  'user-mode-only limitation: write(2) from a missing page fails with EFAULT (user touches still fault)',
  async (t) => {
    await withWriteFixture(t, 2, ({ region, fd, server }) => {
      const err = touch('fs.writeSync from a missing page (user-mode-only)', () =>
        t.throws(() => fs.writeSync(fd, new Uint8Array(region.buffer, PAGE_SIZE, PAGE_SIZE))),
      );
      t.is((err as NodeJS.ErrnoException | undefined)?.code, 'EFAULT');
      t.deepEqual(server.takeEvents(), [], 'the kernel-mode fault never reached the uffd');
      t.is(fs.fstatSync(fd).size, 0);
      // The same page touched from user mode is served as usual.
      touch('read of the page from user mode', () => new Uint8Array(region.buffer)[PAGE_SIZE]);
      onlyFault(t, server.takeEvents(), region.address + PAGE_SIZE);
      assertPattern(t, new Uint8Array(region.buffer), PAGE_SIZE, region.address + PAGE_SIZE, 'page 1');
    });
  },
);

// ---- shutdown and the deadman, in child processes ------------------------------------

// Children normally end in 0.2 s; the generous timeout only matters on a
// machine that is busy with other work. A child that hangs is SIGKILLed and
// its stderr (progress lines) shows where it stopped.
function runChild(mode: string, timeoutMs = 20_000): Promise<ChildResult> {
  return runNodeChild(path.join(__dirname, 'helpers', 'shutdown-child.js'), [mode], timeoutMs);
}

test('shutdown: a Worker blocked in read(ev, -1) returns on wakeReader() and the process exits 0', async (t) => {
  const r = await runChild('wake');
  t.is(r.signal, null, `killed (timeout?) after ${r.ms} ms; stderr:\n${r.stderr}`);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /page 0 served/);
  t.regex(r.stderr, /worker exited with 0/);
});

// Four at once: the Worker is woken while Node is already terminating it, and
// under load it may still call into the addon then. That once aborted the
// process ('terminate called after throwing an instance of Napi::Error').
test('shutdown: an unref()ed Worker woken from process.on("exit") lets the process exit 0 (4 children at once)', async (t) => {
  const results = await Promise.all([0, 1, 2, 3].map(() => runChild('unref')));
  for (const r of results) {
    t.is(r.signal, null, `killed after ${r.ms} ms; stderr:\n${r.stderr}`);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stderr, /exit handler: waking the reader/);
  }
});

test('deadman: the dispatcher dies with the deadman armed; a touch of a missing page raises SIGBUS, never hangs', async (t) => {
  const r = await runChild('deadman');
  t.is(r.signal, 'SIGBUS', `code ${r.code} after ${r.ms} ms; stderr:\n${r.stderr}`);
  t.regex(r.stderr, /tmem: the fault dispatcher is gone \(test\)/);
  t.notRegex(r.stderr, /the deadman did not fire/);
});

// ---- lifetime ---------------------------------------------------------------------------

test('Region.close() detaches the ArrayBuffer; closed regions and uffds refuse further calls clearly', (t) => {
  const uffd = new native.Uffd();
  const region = new native.Region(uffd, 4 * PAGE_SIZE);
  t.false(region.closed);
  t.is(region.size, 4 * PAGE_SIZE);
  t.is(region.address % PAGE_SIZE, 0);
  const ab = region.buffer;
  t.is(ab, region.buffer, 'the same ArrayBuffer while it lives');
  t.is(ab.byteLength, 4 * PAGE_SIZE);
  const view = new Uint8Array(ab);
  const addr = region.address;
  uffd.zeropage(addr, PAGE_SIZE); // resolved ahead of any fault: no Worker needed
  t.is(view[0], 0);

  region.close();
  t.true(region.closed);
  t.is(ab.byteLength, 0, 'detached');
  t.is(view.length, 0);
  t.throws(() => region.buffer, { message: /region is closed/ });
  t.notThrows(() => region.close(), 'close() twice is fine');
  const page = new Uint8Array(PAGE_SIZE);
  t.throws(() => uffd.copy(addr, page), { instanceOf: RangeError, message: /dst .*not inside an open tmem region/ });
  t.throws(() => uffd.zeropage(addr, PAGE_SIZE), { instanceOf: RangeError, message: /dst/ });
  t.throws(() => uffd.move(addr, addr + PAGE_SIZE, PAGE_SIZE), { instanceOf: RangeError, message: /dst/ });
  t.throws(() => uffd.writeProtect(addr, PAGE_SIZE, true), { instanceOf: RangeError, message: /address/ });
  t.throws(() => native.madvise(new Float64Array([addr, PAGE_SIZE]), 1, MADV_DONTNEED), {
    instanceOf: RangeError,
    message: /ranges\[0\]/,
  });

  t.false(uffd.closed);
  uffd.close();
  t.true(uffd.closed);
  t.is(uffd.fd, -1);
  t.notThrows(() => uffd.close());
  t.throws(() => uffd.read(new Float64Array(4), 0), { message: /userfaultfd is closed/ });
  t.throws(() => uffd.describe(), { message: /userfaultfd is closed/ });
  t.throws(() => uffd.wakeReader(), { message: /userfaultfd is closed/ });
  t.throws(() => uffd.armDeadman(), { message: /userfaultfd is closed/ });
  t.throws(() => new native.Region(uffd, PAGE_SIZE), { message: /userfaultfd is closed/ });
});

test('closing the uffd before its region: the region still closes and detaches', (t) => {
  const uffd = new native.Uffd();
  const region = new native.Region(uffd, PAGE_SIZE);
  const ab = region.buffer;
  uffd.close();
  t.notThrows(() => region.close());
  t.true(region.closed);
  t.is(ab.byteLength, 0);
});

test('an out-of-region address is named in hex in the error', (t) => {
  const uffd = new native.Uffd();
  const region = new native.Region(uffd, PAGE_SIZE);
  const a = region.address;
  region.close();
  const err = t.throws(() => uffd.copy(a, new Uint8Array(PAGE_SIZE)), { instanceOf: RangeError });
  t.true(err?.message.includes(`(0x${a.toString(16)})`), err?.message);
  uffd.close();
});

test('copy() takes its source as any ArrayBufferView, a DataView included', (t) => {
  const uffd = new native.Uffd();
  const region = new native.Region(uffd, 2 * PAGE_SIZE);
  try {
    const backing = new ArrayBuffer(3 * PAGE_SIZE);
    new Uint8Array(backing).fill(0x42, PAGE_SIZE, 2 * PAGE_SIZE);
    t.is(uffd.copy(region.address, new DataView(backing, PAGE_SIZE, PAGE_SIZE)), PAGE_SIZE);
    t.true(new Uint8Array(region.buffer, 0, PAGE_SIZE).every((b) => b === 0x42));
    t.throws(() => uffd.copy(region.address + PAGE_SIZE, new DataView(backing, 0, 100)), {
      instanceOf: RangeError,
      message: /src/,
    });
  } finally {
    region.close();
    uffd.close();
  }
});

// ---- arguments are checked before any syscall -----------------------------------------

test('bad arguments throw TypeError/RangeError naming the argument', (t) => {
  const uffd = new native.Uffd();
  const region = new native.Region(uffd, 2 * PAGE_SIZE);
  const a = region.address;
  const page = new Uint8Array(PAGE_SIZE);
  const bad = (fn: () => unknown, instanceOf: typeof TypeError | typeof RangeError, message: RegExp) =>
    t.throws(fn, { instanceOf, message }, String(fn));
  try {
    // Uffd
    bad(() => new native.Uffd(3), RangeError, /mode/);
    bad(() => new native.Uffd('1' as unknown as number), TypeError, /mode/);
    bad(() => new native.Uffd(0, -1), RangeError, /features/);
    bad(() => native.Uffd.attach(5 as unknown as never), TypeError, /descriptor/);
    bad(() => native.Uffd.attach({ ...uffd.describe(), fd: 1 << 20 }), RangeError, /descriptor\.fd/);
    bad(() => native.Uffd.attach({} as never), TypeError, /descriptor\.fd/);
    bad(() => native.Uffd.attach({ ...uffd.describe(), ioctls: '3' } as never), TypeError, /descriptor\.ioctls/);
    bad(
      () => native.Uffd.attach({ ...uffd.describe(), userModeOnly: 0 } as never),
      TypeError,
      /descriptor\.userModeOnly/,
    );
    // Region
    bad(() => new native.Region({} as never, PAGE_SIZE), TypeError, /uffd/);
    bad(() => new native.Region(uffd, '4096' as unknown as number), TypeError, /size/);
    bad(() => new native.Region(uffd, undefined as unknown as number), TypeError, /size/);
    bad(() => new native.Region(uffd, 0), RangeError, /size/);
    bad(() => new native.Region(uffd, -PAGE_SIZE), RangeError, /size/);
    bad(() => new native.Region(uffd, PAGE_SIZE + 1), RangeError, /size.*4096/);
    bad(() => new native.Region(uffd, 1.5 * PAGE_SIZE), RangeError, /size/);
    bad(() => new native.Region(uffd, NaN), RangeError, /size/);
    bad(() => new native.Region(uffd, 2 ** 46 + PAGE_SIZE), RangeError, /size/);
    bad(() => new native.Region(uffd, PAGE_SIZE, 4), RangeError, /mode/);
    bad(() => new native.Region(uffd, PAGE_SIZE, 0), RangeError, /mode/);
    // copy
    bad(() => uffd.copy(a + 1, page), RangeError, /dst.*aligned/);
    bad(() => uffd.copy(-PAGE_SIZE, page), RangeError, /dst/);
    bad(() => uffd.copy('0' as unknown as number, page), TypeError, /dst/);
    bad(() => uffd.copy(PAGE_SIZE * 16, page), RangeError, /dst .*not inside an open tmem region/);
    bad(() => uffd.copy(a + region.size, page), RangeError, /dst/);
    bad(
      () => uffd.copy(a + PAGE_SIZE, new Uint8Array(2 * PAGE_SIZE), 0, 0, 2 * PAGE_SIZE),
      RangeError,
      /dst .*past the end/,
    );
    bad(() => uffd.copy(a, page, 0, 0, 2 * PAGE_SIZE), RangeError, /src/);
    bad(() => uffd.copy(a, 'page' as unknown as Uint8Array), TypeError, /src/);
    bad(() => uffd.copy(a, page, PAGE_SIZE), RangeError, /srcOffset/);
    bad(() => uffd.copy(a, page, -1), RangeError, /srcOffset/);
    bad(() => uffd.copy(a, page, 0, -1), RangeError, /flags/);
    bad(() => uffd.copy(a, new Uint8Array(2 * PAGE_SIZE), 0, 0, 100), RangeError, /length/);
    // zeropage, move, wake, writeProtect, poison
    bad(() => uffd.zeropage(a, 100), RangeError, /length/);
    bad(() => uffd.zeropage(a, 0), RangeError, /length/);
    bad(() => uffd.zeropage(a, 3 * PAGE_SIZE), RangeError, /dst .*past the end/);
    bad(() => uffd.move(a, a + 1, PAGE_SIZE), RangeError, /src/);
    bad(() => uffd.move(a + 1, a, PAGE_SIZE), RangeError, /dst/);
    bad(() => uffd.move(a, a + PAGE_SIZE, 3 * PAGE_SIZE), RangeError, /past the end/);
    bad(() => uffd.wake(a, 5), RangeError, /length/);
    bad(() => uffd.writeProtect(a, PAGE_SIZE, 'yes' as unknown as boolean), TypeError, /protect/);
    bad(() => uffd.writeProtect(a + 7, PAGE_SIZE, true), RangeError, /address/);
    bad(() => uffd.poison(a, 0), RangeError, /length/);
    // read
    bad(() => uffd.read(new Uint8Array(32) as unknown as Float64Array, 0), TypeError, /out/);
    bad(() => uffd.read([0, 0, 0, 0] as unknown as Float64Array, 0), TypeError, /out/);
    bad(() => uffd.read(new Float64Array(3), 0), RangeError, /out/);
    bad(() => uffd.read(new Float64Array(4), -2), RangeError, /timeoutMs/);
    bad(() => uffd.read(new Float64Array(4), 1.5), RangeError, /timeoutMs/);
    bad(() => uffd.read(new Float64Array(4), 'x' as unknown as number), TypeError, /timeoutMs/);
    // free functions
    bad(() => native.setAffinity([]), RangeError, /cpus/);
    bad(() => native.setAffinity(0 as unknown as number[]), TypeError, /cpus/);
    bad(() => native.setAffinity([-1]), RangeError, /cpus\[0\]/);
    bad(() => native.setAffinity([0, 1.5]), RangeError, /cpus\[1\]/);
    bad(() => native.setAffinity([0, '1' as unknown as number]), TypeError, /cpus\[1\]/);
    bad(() => native.setAffinity([4096]), RangeError, /cpus\[0\]/);
    bad(() => native.madvise([a, PAGE_SIZE] as unknown as Float64Array, 1, MADV_DONTNEED), TypeError, /ranges/);
    bad(() => native.madvise(new Float64Array([a + 1, PAGE_SIZE]), 1, MADV_DONTNEED), RangeError, /ranges\[0\]/);
    bad(
      () => native.madvise(new Float64Array([a, PAGE_SIZE, a, 3 * PAGE_SIZE]), 2, MADV_DONTNEED),
      RangeError,
      /ranges\[1\]/,
    );
    bad(() => native.madvise(new Float64Array([a, PAGE_SIZE]), 2, MADV_DONTNEED), RangeError, /count/);
    bad(() => native.madvise(new Float64Array([a, PAGE_SIZE]), 1, 99), RangeError, /advice/);
    bad(() => native.threadCpu(0), RangeError, /tid/);
    bad(() => native.threadCpu('1' as unknown as number), TypeError, /tid/);
    bad(() => native.lz4Decompress('x' as unknown as Uint8Array, 0, 1, page, 0), TypeError, /src/);
    bad(() => native.lz4Decompress(page, 0, 1, 'x' as unknown as Uint8Array, 0), TypeError, /dst/);
    bad(() => native.lz4Decompress(page, 4090, 10, page, 0), RangeError, /srcOffset\/srcLength/);
    bad(() => native.lz4Decompress(page, 0, 0, page, 0), RangeError, /srcLength/);
    bad(() => native.lz4Decompress(page, 0, 10, page, PAGE_SIZE + 1), RangeError, /dstOffset/);
    // None of it changed anything: the uffd and region still work.
    t.is(uffd.zeropage(a, PAGE_SIZE), PAGE_SIZE);
    t.is(new Uint8Array(region.buffer)[0], 0);
  } finally {
    region.close();
    uffd.close();
  }
});

test('mapped() counts the pages mapped now (mincore): a page a MOVE took counts where it went', (t) => {
  const uffd = new native.Uffd();
  const region = new native.Region(uffd, 4 * PAGE_SIZE);
  try {
    const a = region.address;
    t.is(native.mapped(a, 4 * PAGE_SIZE), 0, 'nothing mapped before a fault');
    const page = new Uint8Array(PAGE_SIZE).fill(7);
    t.is(uffd.copy(a, page), PAGE_SIZE);
    t.is(uffd.copy(a + 2 * PAGE_SIZE, page), PAGE_SIZE);
    t.is(native.mapped(a, 4 * PAGE_SIZE), 2);
    t.is(native.mapped(a + PAGE_SIZE, PAGE_SIZE), 0);
    t.is(uffd.move(a + 3 * PAGE_SIZE, a + 2 * PAGE_SIZE, PAGE_SIZE), PAGE_SIZE);
    t.is(native.mapped(a + 2 * PAGE_SIZE, PAGE_SIZE), 0, 'gone from where it was');
    t.is(native.mapped(a + 3 * PAGE_SIZE, PAGE_SIZE), 1, 'mapped where it went');
    t.is(uffd.move(a + 3 * PAGE_SIZE, a, PAGE_SIZE), -17, 'a MOVE onto a mapped page: EEXIST, nothing moved');
    t.is(native.mapped(a, PAGE_SIZE), 1);
    for (const [addr, len] of [
      [a + 1, PAGE_SIZE],
      [a, 100],
      [a, 0],
      [a, 8 * PAGE_SIZE],
      [a + 4 * PAGE_SIZE, PAGE_SIZE],
      [4096, PAGE_SIZE],
    ]) {
      t.throws(() => native.mapped(addr, len), { instanceOf: RangeError, message: /address/ }, `${addr - a}, ${len}`);
    }
    t.throws(() => native.mapped('x' as unknown as number, PAGE_SIZE), { instanceOf: TypeError, message: /address/ });
  } finally {
    region.close();
    uffd.close();
  }
});

test('a failed syscall surfaces with code, errno and syscall', (t) => {
  const uffd = new native.Uffd();
  const region = new native.Region(uffd, PAGE_SIZE); // MISSING only, no WP
  try {
    const err = t.throws<NodeJS.ErrnoException>(() => uffd.writeProtect(region.address, PAGE_SIZE, true));
    t.is(err.syscall, 'ioctl(UFFDIO_WRITEPROTECT)');
    t.is(typeof err.code, 'string');
    t.is(
      err.errno,
      (os.constants.errno as Record<string, number>)[err.code as string],
      `${err.code} is errno ${err.errno}`,
    );
    t.regex(err.message, /^ioctl\(UFFDIO_WRITEPROTECT\) failed: E[A-Z]+ \(/);
    t.false(err instanceof RangeError || err instanceof TypeError);

    const api = t.throws<NodeJS.ErrnoException>(() => new native.Uffd(0, 2 ** 40));
    t.is(api.syscall, 'ioctl(UFFDIO_API)');
    t.is(api.errno, (os.constants.errno as Record<string, number>)[api.code as string]);
    t.regex(api.message, /kernel lacks userfaultfd features/);

    // Protecting a WP-registered page works, so the error above is about the registration.
    const wp = new native.Region(uffd, PAGE_SIZE, REGISTER_MODE_MISSING | REGISTER_MODE_WP);
    uffd.copy(wp.address, new Uint8Array(PAGE_SIZE), 0, COPY_WP);
    t.notThrows(() => uffd.writeProtect(wp.address, PAGE_SIZE, false));
    wp.close();
  } finally {
    region.close();
    uffd.close();
  }
});

test('a region of another uffd is refused by name; an attached (non-owning) Uffd resolves faults and may create regions', (t) => {
  const u1 = new native.Uffd();
  const u2 = new native.Uffd();
  const r1 = new native.Region(u1, PAGE_SIZE);
  try {
    t.throws(() => u2.copy(r1.address, new Uint8Array(PAGE_SIZE)), {
      instanceOf: RangeError,
      message: /dst lies in a region registered with another userfaultfd/,
    });
    const attached = native.Uffd.attach(u1.describe());
    t.is(attached.fd, u1.fd);
    t.is(attached.copy(r1.address, new Uint8Array(PAGE_SIZE).fill(3)), PAGE_SIZE, 'an attached Uffd resolves faults');
    t.is(new Uint8Array(r1.buffer)[4095], 3);
    const r2 = new native.Region(attached, PAGE_SIZE);
    t.is(u1.zeropage(r2.address, PAGE_SIZE), PAGE_SIZE, 'registered with the same userfaultfd');
    r2.close();
    attached.close(); // non-owning: the fd stays open
    t.true(attached.closed);
    t.false(u1.closed);
    t.is(u1.read(new Float64Array(4), 0), 0, 'the fd still works');
  } finally {
    r1.close();
    u1.close();
    u2.close();
  }
});

// ---- threads and CPUs ---------------------------------------------------------------------

test('gettid, threadCpu, currentCpu and (get|set)Affinity agree', (t) => {
  const before = native.getAffinity();
  t.true(before.length >= 1);
  try {
    native.setAffinity([before[0]]);
    t.deepEqual(native.getAffinity(), [before[0]]);
    t.is(native.currentCpu(), before[0]);
    t.is(native.threadCpu(native.gettid()), before[0]);
    t.is(native.gettid(), process.pid, 'the main thread is the thread-group leader');
    t.is(native.threadCpu(2 ** 31 - 1), -1, 'no such thread');
  } finally {
    native.setAffinity(before);
  }
});

// ---- lz4 ---------------------------------------------------------------------------------

test('lz4Decompress decodes the block of lz4-napi compressSync (after its 4-byte length)', (t) => {
  t.true(native.lz4Available);
  const page = new Uint8Array(PAGE_SIZE);
  fillPattern(page, 0, 0x12345000);
  page.fill(0, 1000, 3000); // something to compress
  const packed = compressSync(Buffer.from(page));
  t.is(packed.readUInt32LE(0), PAGE_SIZE, 'lz4-napi prefixes the length');
  t.true(packed.length < PAGE_SIZE);
  const out = new Uint8Array(2 * PAGE_SIZE).fill(0xcc);
  t.is(native.lz4Decompress(packed, 4, packed.length - 4, out, PAGE_SIZE), PAGE_SIZE);
  t.deepEqual(out.subarray(PAGE_SIZE), page);
  t.true(
    out.subarray(0, PAGE_SIZE).every((b) => b === 0xcc),
    'nothing written before dstOffset',
  );

  // Into a SharedArrayBuffer, from an ArrayBuffer.
  const sab = new SharedArrayBuffer(PAGE_SIZE);
  const ab = packed.buffer.slice(packed.byteOffset, packed.byteOffset + packed.length);
  t.is(native.lz4Decompress(ab, 4, packed.length - 4, sab, 0), PAGE_SIZE);
  t.deepEqual(new Uint8Array(sab), page);

  // Corrupt data, or too little room, is an error, never an overrun.
  const junk = new Uint8Array(64).fill(0xff);
  t.throws(() => native.lz4Decompress(junk, 0, 64, out, 0), { message: /lz4 block is malformed/ });
  t.throws(() => native.lz4Decompress(packed, 4, packed.length - 4, out, PAGE_SIZE + 100), { message: /malformed/ });
});
