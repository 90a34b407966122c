/**
 * The public API never leaves a promise unsettled, checks every option in open(), restores
 * thread placement in any close order, handles ArrayBuffers over 4 GiB without aborting,
 * reserves its pool arena only after the dispatcher's isolate exists (so `ulimit -v` gives
 * an error naming poolLimit, not a V8 abort), keeps region buffers
 * out of transfer lists, and gives every error a `code` (issue 9, items 4, 6, 8, 12, 13, 15).
 *
 * Scenarios that end a process when they fail run in helpers/api-child.ts, under a
 * SIGKILL hang guard.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import { constants as bufferConstants } from 'node:buffer';
import { open } from '../lib';
import { type ChildResult, runNodeChild, withTimeout } from './helpers/harness';

const CHILD = path.join(__dirname, 'helpers', 'api-child.js');
const show = (r: ChildResult): string => `code ${r.code}, signal ${r.signal}, ${r.ms} ms; stderr:\n${r.stderr}`;

test('item 4: swap.close() twice at once: both promises settle and the code after them runs', async (t) => {
  const r = await runNodeChild(CHILD, ['close-twice'], 60000);
  t.is(r.signal, null, show(r));
  t.is(r.code, 0, show(r));
  for (let round = 0; round < 4; round++)
    t.regex(
      r.stderr,
      new RegExp(`round ${round}: first close settled\n.*round ${round}: second close settled`, 's'),
      show(r),
    );
  t.regex(r.stderr, /after close\n.*exiting with 0/s, show(r));
});

test('item 4: the dispatcher ending under a live swap rejects pending and later calls with ERR_TMEM_DISPATCHER_GONE', async (t) => {
  const r = await runNodeChild(CHILD, ['gone'], 60000);
  t.is(r.signal, null, show(r));
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /evict: Error ERR_TMEM_DISPATCHER_GONE: tmem: the dispatcher exited unexpectedly/, show(r));
  t.regex(r.stderr, /region: Error ERR_TMEM_DISPATCHER_GONE/, show(r));
  t.regex(r.stderr, /close: Error ERR_TMEM_DISPATCHER_GONE/, show(r));
  t.regex(r.stderr, /after close\n.*exiting with 0/s, show(r));
});

test('item 4: options the dispatcher used to find out about are checked in open(), with upper bounds', async (t) => {
  const bad: [object, RegExp][] = [
    [{ stagingSize: '65TiB' }, /stagingSize must be at most 1GiB/],
    [{ stagingSize: '5GiB' }, /stagingSize must be at most 1GiB/],
    [{ swapFile: { path: '.', size: '100TiB' } }, /swapFile\.size must be at most 1TiB/],
    [{ residentLimit: '65TiB' }, /residentLimit must be at most 64TiB/],
    [{ poolLimit: '17GiB' }, /poolLimit must be at most 16GiB/],
    [{ idle: { after: 2 ** 40 } }, /idle\.after/],
    [{ idle: { budget: 2 ** 30 } }, /idle\.budget/],
  ];
  for (const [o, message] of bad) {
    await t.throwsAsync(
      withTimeout(open(o), 30000, 'open()'),
      { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE', message },
      JSON.stringify(o),
    );
  }
});

test('item 13: unknown keys in idle and swapFile, open([]), null options are refused with codes', async (t) => {
  const cases: [unknown, string, typeof TypeError | typeof RangeError, RegExp][] = [
    [{ idle: { afer: 50 } }, 'ERR_INVALID_ARG_VALUE', TypeError, /unknown key in idle: 'afer'; accepted: after, /],
    [
      { swapFile: { path: '.', size: '1MiB', sise: 1 } },
      'ERR_INVALID_ARG_VALUE',
      TypeError,
      /unknown key in swapFile: 'sise'/,
    ],
    [{ swapFile: { path: '.' } }, 'ERR_INVALID_ARG_TYPE', TypeError, /swapFile\.size must be given/],
    [{ residentLimt: '1MiB' }, 'ERR_INVALID_ARG_VALUE', TypeError, /unknown option 'residentLimt'/],
    [[], 'ERR_INVALID_ARG_TYPE', TypeError, /options must be an object .*got an array/],
    [null, 'ERR_INVALID_ARG_TYPE', TypeError, /options must be an object/],
    [{ idle: [] }, 'ERR_INVALID_ARG_TYPE', TypeError, /idle must be an object/],
    [{ swapFile: null }, 'ERR_INVALID_ARG_TYPE', TypeError, /swapFile must be an object/],
    [{ lowWatermark: null }, 'ERR_INVALID_ARG_TYPE', TypeError, /lowWatermark must be a number .*got null/],
    [{ compressor: null }, 'ERR_INVALID_ARG_TYPE', TypeError, /compressor must be 'lz4' or 'zstd', got null/],
    [{ compressor: 'lzo' }, 'ERR_INVALID_ARG_VALUE', RangeError, /compressor must be 'lz4' or 'zstd', got 'lzo'/],
    [{ allocator: null }, 'ERR_INVALID_ARG_TYPE', TypeError, /allocator/],
    [{ pin: null }, 'ERR_INVALID_ARG_TYPE', TypeError, /pin must be a boolean/],
    [{ residentLimit: null }, 'ERR_INVALID_ARG_TYPE', TypeError, /residentLimit must be a number of bytes/],
    [{ residentLimit: 'lots' }, 'ERR_OUT_OF_RANGE', RangeError, /residentLimit must be a size like/],
    [{ lowWatermark: 1.5 }, 'ERR_OUT_OF_RANGE', RangeError, /lowWatermark must be a fraction/],
    [{ idle: { writeback: null } }, 'ERR_INVALID_ARG_TYPE', TypeError, /idle\.writeback/],
    [{ idle: { recompress: null } }, 'ERR_INVALID_ARG_TYPE', TypeError, /idle\.recompress must be a boolean/],
    [{ statsSocket: 1 }, 'ERR_INVALID_ARG_TYPE', TypeError, /statsSocket must be a boolean/],
    [{ userModeOnly: null }, 'ERR_INVALID_ARG_TYPE', TypeError, /userModeOnly/],
  ];
  for (const [o, code, instanceOf, message] of cases) {
    await t.throwsAsync(
      withTimeout(open(o as never), 30000, 'open()'),
      { instanceOf, code, message },
      JSON.stringify(o),
    );
  }
});

test('codes on every API error: bad sizes, use after close, bad share()', async (t) => {
  const swap = await withTimeout(open({ residentLimit: '1MiB', pin: false }), 30000, 'open()');
  t.throws(() => swap.region(0), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => swap.region('2 apples'), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => swap.region({} as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => swap.mapFile(''), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => swap.mapFile(__filename, { writeable: true } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /writeable/,
  });
  const { attachRegion } = await import('../lib');
  t.throws(() => attachRegion(null as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => attachRegion({ id: 1, address: 4096 * 16, size: 4096 }), {
    instanceOf: RangeError,
    code: 'ERR_OUT_OF_RANGE',
    message: /open tmem region/,
  });
  const r = swap.region('64KiB');
  await withTimeout(r.close(), 30000, 'region.close()');
  t.throws(() => r.buffer, { code: 'ERR_TMEM_CLOSED' });
  t.throws(() => r.share(), { code: 'ERR_TMEM_CLOSED' });
  await t.throwsAsync(r.evict(), { code: 'ERR_TMEM_CLOSED' });
  {
    await using scoped = swap.region('64KiB');
    new Uint8Array(scoped.buffer)[0] = 1;
  }
  await withTimeout(swap.close(), 30000, 'swap.close()');
  t.throws(() => swap.region(4096), { code: 'ERR_TMEM_CLOSED', message: /swap is closed/ });
  t.throws(() => swap.mapFile(__filename), { code: 'ERR_TMEM_CLOSED' });
  await t.notThrowsAsync(swap.close());
});

test('await using closes a swap and its regions at the end of the scope', async (t) => {
  let region;
  let swapRef;
  {
    await using swap = await withTimeout(open({ residentLimit: '1MiB', pin: false }), 30000, 'open()');
    swapRef = swap;
    region = swap.region('64KiB');
    new Uint8Array(region.buffer)[5] = 5;
  }
  t.true(region.closed);
  t.throws(() => swapRef.region(4096), { code: 'ERR_TMEM_CLOSED' });
});

test("pin: true changes no program thread's affinity: the main thread and Workers (started before or while open, faulting or not) keep theirs", async (t) => {
  if (os.cpus().length < 2) {
    t.pass('one CPU: affinity cannot be told apart');
    return;
  }
  const r = await runNodeChild(CHILD, ['affinity'], 60000);
  t.is(r.code, 0, show(r));
  const all = /affinity before: ([\d,]+)/.exec(r.stderr)?.[1];
  t.truthy(all, show(r));
  t.true(all!.includes(','), `the child starts on every CPU\n${show(r)}`);
  t.true(r.stderr.includes(`a Worker before open: ${all}\n`), show(r));
  for (const order of ['opened', 'reverse']) {
    for (const what of [
      'the early Worker after its faults',
      'while open',
      'a Worker started while open',
      'after one close',
      'after both',
    ]) {
      t.true(r.stderr.includes(`${order}: ${what}: ${all}\n`), `${order}: ${what}: every CPU still\n${show(r)}`);
    }
  }
});

test('item 15: a region buffer in a postMessage transfer list throws ERR_TMEM_UNTRANSFERABLE naming share()', async (t) => {
  const swap = await withTimeout(open({ residentLimit: '1MiB', pin: false }), 30000, 'open()');
  t.teardown(() => swap.close());
  const region = swap.region('64KiB');
  const buf = region.buffer;
  const bytes = new Uint8Array(buf);
  bytes[0] = 1;
  const { port1, port2 } = new MessageChannel();
  t.teardown(() => {
    port1.close();
    port2.close();
  });
  const err = { instanceOf: TypeError, code: 'ERR_TMEM_UNTRANSFERABLE', message: /share\(\).*attachRegion\(\)/s };
  t.throws(() => port1.postMessage(buf, [buf]), err);
  t.throws(() => port1.postMessage({ buf }, { transfer: [buf] } as never), err);
  t.is(buf.byteLength, 64 * 1024, 'the region keeps its buffer');
  // Worker.postMessage goes through the same check; share() + attachRegion() is the way.
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads');
    const { attachRegion } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))});
    parentPort.once('message', (shared) => {
      const b = new Uint8Array(attachRegion(shared));
      for (let i = 0; i < b.length; i += 4096) b[i] = 0xab;
      try { parentPort.postMessage('x', [b.buffer]); } catch (e) { parentPort.postMessage(e.code); return; }
      parentPort.postMessage('transferred');
    });`,
    { eval: true },
  );
  t.teardown(() => worker.terminate());
  t.throws(() => worker.postMessage(buf, [buf]), err);
  const reply = new Promise((resolve) => worker.once('message', resolve));
  worker.postMessage(region.share());
  t.is(
    await withTimeout(reply, 30000, 'worker reply'),
    'ERR_TMEM_UNTRANSFERABLE',
    'attachRegion buffers are guarded too',
  );
  for (let i = 0; i < bytes.length; i += 4096) t.is(bytes[i], 0xab, `the Worker's write at ${i} reached the region`);
});

test('item 6: regions over 4 GiB work where Node.js allows it, else ERR_OUT_OF_RANGE before anything is created; never an abort', async (t) => {
  const r = await runNodeChild(CHILD, ['big'], 60000);
  t.is(r.signal, null, show(r));
  t.is(r.code, 0, show(r));
  if (bufferConstants.MAX_LENGTH < 16 * 2 ** 30) {
    // Node.js 20: external ArrayBuffers stop at 4 GiB.
    t.regex(r.stderr, /native buffer: RangeError ERR_OUT_OF_RANGE: .*napi_create_external_arraybuffer/, show(r));
    t.regex(
      r.stderr,
      /region: RangeError ERR_OUT_OF_RANGE: region size is 16GiB: more than the 4GiB .*buffer\.constants\.MAX_LENGTH/,
      show(r),
    );
    t.regex(r.stderr, /mapFile: RangeError ERR_OUT_OF_RANGE: file .* is 5GiB/, show(r));
  } else {
    t.regex(r.stderr, /native buffer: 8589934592/, show(r));
    t.regex(r.stderr, /region buffer: 17179869184/, show(r));
    t.regex(r.stderr, /region read back: 90,91,92/, show(r));
    t.regex(r.stderr, /mapFile buffer: 5368709120/, show(r));
  }
  t.regex(r.stderr, /small region: 0 wrong bytes/, show(r));
  t.regex(r.stderr, /after close\n.*exiting with 0/s, show(r));
});

/** Runs the child under `ulimit -v kib`; SIGKILL after timeoutMs. */
function underUlimit(kib: number, mode: string, timeoutMs: number, ...args: string[]): Promise<ChildResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `ulimit -v ${kib} && exec "$0" "$@"`, process.execPath, CHILD, mode, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stderr, ms: Date.now() - started }));
  });
}

test('item 8: under ulimit -v, open() either works or fails naming poolLimit; a smaller pool then works; never a V8 abort', async (t) => {
  // 3 GB of address space: Node.js (~0.8 GB) and the dispatcher's isolate (~0.8 GB) fit, a
  // 1 GiB arena next to them may not. Before, the arena was reserved before the Worker
  // started, and V8 aborted the process reserving the Worker's code range.
  const dflt = await underUlimit(3_000_000, 'pool', 60000);
  t.is(dflt.signal, null, show(dflt));
  t.is(dflt.code, 0, show(dflt));
  t.regex(
    dflt.stderr,
    /pool: 0 wrong bytes|open: Error ERR_TMEM_ADDRESS_SPACE: .*\(poolLimit\).*ulimit -v.*lower poolLimit/,
    show(dflt),
  );
  const small = await underUlimit(3_000_000, 'pool', 60000, '256MiB');
  t.is(small.signal, null, show(small));
  t.regex(small.stderr, /pool: 0 wrong bytes, stored \d+ pages/, show(small));
  t.regex(small.stderr, /after close\n.*exiting with 0/s, show(small));
});

test('item 8: with less address space, open() rejects with a tmem error naming poolLimit or the limit', async (t) => {
  const r = await underUlimit(2_500_000, 'pool', 60000);
  t.is(r.signal, null, show(r));
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /open: Error (ERR_TMEM_ADDRESS_SPACE: .*poolLimit|ERR_TMEM_DISPATCHER_GONE: .*ulimit -v)/, show(r));
});
