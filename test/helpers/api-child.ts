/**
 * Child process for test/api-reliability.test.ts: scenarios that, on failure, end a
 * process (a promise that never settles lets it exit 0 skipping the code after await; a
 * double free aborts it) and so must not run inside ava's worker.
 *
 *   close-twice   swap.close() twice at once: both settle, the code after them runs.
 *   affinity      two swaps with pin: true, faults from the main thread and a Worker: no
 *                 thread's affinity changes (reported while open and after the closes).
 *   gone          the dispatcher Worker ends under a live swap: pending and later calls
 *                 reject with ERR_TMEM_DISPATCHER_GONE, close() releases everything.
 *   big           regions over 4 GiB: they work where Node.js allows it, else a RangeError
 *                 (ERR_OUT_OF_RANGE) before anything is created; never an abort.
 *   pool [limit]  opens a swap (poolLimit `limit`, default 1 GiB), stores 32 MiB and reads
 *                 it back (run under `ulimit -v`).
 *
 * Progress goes to stderr with write(2); the test reads it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import type { Worker } from 'node:worker_threads';
import { open } from '../../lib';
import { native } from '../../lib/native';

const say = (s: string): void => {
  fs.writeSync(2, `child: ${s}\n`);
};
const code = (e: unknown): string =>
  `${(e as Error).constructor.name} ${(e as { code?: string }).code}: ${(e as Error).message}`;

async function closeTwice(): Promise<void> {
  // Several rounds: the second close() used to send a stop the stopped dispatcher never
  // answered, depending on how the two interleaved.
  for (let round = 0; round < 4; round++) {
    const swap = await open({ pin: false });
    const a = swap.region('2MiB');
    new Uint8Array(a.buffer).fill(7);
    swap.region('1MiB');
    const first = swap.close();
    const second = swap.close();
    await first;
    say(`round ${round}: first close settled`);
    await second;
    say(`round ${round}: second close settled`);
  }
  say('after close');
}

/**
 * No program thread's affinity changes: the main thread, a Worker started before open() and
 * one started after it report their affinity while two swaps (pin: true, the dispatcher
 * following the faulting threads) are open and their pages fault from the main thread and
 * from the first Worker, and after both closed, in the order opened or in reverse.
 */
async function affinity(): Promise<void> {
  const all = os.cpus().map((_, i) => i);
  native.setAffinity(all); // start from every CPU, whatever the parent was pinned to
  say(`affinity before: ${native.getAffinity().join(',')}`);
  const { Worker } = await import('node:worker_threads');
  const lib = JSON.stringify(path.join(__dirname, '..', '..', 'lib'));
  // A Worker that, on each message, touches the pages of the region it is given (if any) and
  // replies with its affinity.
  const early = new Worker(
    `const { parentPort } = require('node:worker_threads');
    const { native } = require(${lib} + '/native.js');
    const { attachRegion } = require(${lib});
    parentPort.on('message', (m) => {
      if (m && m.shared) {
        const b = new Uint8Array(attachRegion(m.shared));
        for (let i = 0; i < b.length; i += 4096) b[i] = (b[i] + 1) & 255;
      }
      parentPort.postMessage(native.getAffinity());
    });`,
    { eval: true },
  );
  const ask = (m: unknown): Promise<number[]> =>
    new Promise((resolve, reject) => {
      early.once('message', resolve);
      early.once('error', reject);
      early.postMessage(m);
    });
  say(`a Worker before open: ${(await ask(null)).join(',')}`);
  for (const order of ['opened', 'reverse']) {
    const a = await open({ residentLimit: '1MiB', pin: true });
    const b = await open({ residentLimit: '1MiB', pin: true });
    for (const swap of [a, b]) {
      const region = swap.region('4MiB'); // 1024 pages past a 256-page residentLimit: eviction runs too
      const bytes = new Uint8Array(region.buffer);
      for (let round = 0; round < 2; round++)
        for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (bytes[i] + 1) & 255;
      say(`${order}: the early Worker after its faults: ${(await ask({ shared: region.share() })).join(',')}`);
      for (let i = 0; i < bytes.length; i += 4096) {
        if (bytes[i] !== 3) throw new Error(`page ${i / 4096} reads ${bytes[i]}, not 3`);
      }
    }
    say(`${order}: while open: ${native.getAffinity().join(',')}`);
    const inWorker = await new Promise<number[]>((resolve, reject) => {
      const w = new Worker(
        `const { parentPort } = require('node:worker_threads');
        const { native } = require(${lib} + '/native.js');
        parentPort.postMessage(native.getAffinity());`,
        { eval: true },
      );
      w.once('message', resolve);
      w.once('error', reject);
    });
    say(`${order}: a Worker started while open: ${inWorker.join(',')}`);
    const [first, second] = order === 'opened' ? [a, b] : [b, a];
    await first.close();
    say(`${order}: after one close: ${native.getAffinity().join(',')}`);
    await second.close();
    say(`${order}: after both: ${native.getAffinity().join(',')}`);
  }
  await early.terminate();
}

async function gone(): Promise<void> {
  const swap = await open({ residentLimit: '1MiB', pin: false });
  const region = swap.region('64KiB');
  const worker = (swap as unknown as { worker: Worker }).worker;
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  void worker.terminate(); // the dispatcher ends while region() and evict() are pending
  const pending = region.evict();
  try {
    await pending;
    say('evict: resolved');
  } catch (e) {
    say(`evict: ${code(e)}`);
  }
  say(`dispatcher exit ${await exited}`);
  try {
    swap.region(4096);
    say('region: ok');
  } catch (e) {
    say(`region: ${code(e)}`);
  }
  try {
    await swap.close();
    say('close: resolved');
  } catch (e) {
    say(`close: ${code(e)}`);
  }
  say('after close');
}

async function big(): Promise<void> {
  const max = bufferConstants.MAX_LENGTH;
  say(`node ${process.versions.node}, buffer.constants.MAX_LENGTH ${max}`);
  // The native layer alone: a buffer over 4 GiB is created or refused, never a double free.
  const uffd = new native.Uffd(0);
  const raw = new native.Region(uffd, 8 * 2 ** 30, 3);
  uffd.close(); // no dispatcher here: the region reads as zeros
  try {
    say(`native buffer: ${raw.buffer.byteLength}`);
  } catch (e) {
    say(`native buffer: ${code(e)}`);
  }
  raw.close();

  const swap = await open({ residentLimit: '4MiB', pin: false });
  const size = 16 * 2 ** 30;
  try {
    const r = swap.region(size);
    const bytes = new Uint8Array(r.buffer);
    say(`region buffer: ${bytes.byteLength}`);
    const offsets = [0, 5 * 2 ** 30 + 123, size - 1];
    offsets.forEach((o, i) => {
      bytes[o] = 0x5a + i;
    });
    await r.evict();
    const back = offsets.map((o) => bytes[o]);
    say(`region read back: ${back.join(',')}`);
    await r.close();
  } catch (e) {
    say(`region: ${code(e)}`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-big-'));
  try {
    const file = path.join(dir, 'sparse');
    fs.writeFileSync(file, 'x');
    fs.truncateSync(file, 5 * 2 ** 30);
    const f = swap.mapFile(file);
    say(`mapFile buffer: ${f.buffer.byteLength}`);
    await f.close();
  } catch (e) {
    say(`mapFile: ${code(e)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // The swap is intact: a small region round-trips.
  const small = swap.region('1MiB');
  const b = new Uint8Array(small.buffer);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7) & 0xff;
  await small.evict();
  let bad = 0;
  for (let i = 0; i < b.length; i++) if (b[i] !== ((i * 7) & 0xff)) bad++;
  say(`small region: ${bad} wrong bytes`);
  await swap.close();
  say('after close');
}

async function pool(): Promise<void> {
  let swap;
  try {
    const poolLimit = process.argv[3]; // undefined: the default, 1GiB
    swap = await open({ pin: false, residentLimit: '4MiB', ...(poolLimit ? { poolLimit } : {}) });
  } catch (e) {
    say(`open: ${code(e)}`);
    return;
  }
  const r = swap.region('32MiB');
  const b = new Uint8Array(r.buffer);
  for (let i = 0; i < b.length; i += 512) b[i] = (i >>> 9) & 0xff;
  await r.evict();
  let bad = 0;
  for (let i = 0; i < b.length; i += 512) if (b[i] !== ((i >>> 9) & 0xff)) bad++;
  const s = swap.stats();
  say(`pool: ${bad} wrong bytes, stored ${s.storedPages + s.samePages} pages, pool ${s.poolBytes} bytes`);
  await swap.close();
  say('after close');
}

const modes: Record<string, () => Promise<void>> = { 'close-twice': closeTwice, affinity, gone, big, pool };
const run = modes[process.argv[2]];
if (!run) throw new Error(`unknown mode ${process.argv[2]}`);
run().then(
  () => say('exiting with 0'),
  (e) => {
    say(`failed: ${(e as Error).stack}`);
    process.exitCode = 1;
  },
);
