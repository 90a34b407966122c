/**
 * Child process for test/inline-faults.test.ts: inline regions (faults: 'inline') in
 * scenarios that, on failure, hang or kill a process, so they must not run inside ava's
 * worker. Every page read back is checked byte for byte (helpers/swap-pattern.ts).
 *
 *   states DIR       main thread, then a Worker: pages written in every kind, read back
 *                    while eviction runs (staged, stored, same-filled, swap file in DIR,
 *                    never-written zero pages), with GCs forced in between
 *   signals          the main thread and a Worker fault while SIGUSR2 and SIGWINCH keep
 *                    arriving and short child processes end (SIGCHLD)
 *   truncated SO     loads SO, a tiny addon that touches a truncated file mapping: the
 *                    process must die of SIGBUS as it would without tmem
 *   kill-bus         process.kill(pid, 'SIGBUS'): dies of SIGBUS as without tmem
 *   dispatcher-gone  the dispatcher Worker ends while a Worker faults on evicted pages
 *                    and the main thread touches one after it has exited: SIGBUS, never
 *                    a hang
 *   fork             child processes started while a Worker faults; eviction after the
 *                    fork (pages shared copy-on-write) and every byte read back
 *   close-faulting   two Workers fault on a region that is closed under them: no crash,
 *                    no hang, the process ends normally
 *   clean-write      pages read back from the pool (mapped write-protected: CLEAN), then
 *                    written, by the main thread and by a Worker: every write goes through
 *
 * Progress goes to stderr with write(2); the test reads it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { spawnSync, spawn } from 'node:child_process';
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { open, attachRegion, type Swap, type SharedRegion } from '../../lib';
import { PAGE, fillPage, pageMismatch, describeMismatch } from './swap-pattern';

const say = (s: string): void => {
  fs.writeSync(2, `${isMainThread ? 'child' : 'worker'}: ${s}\n`);
};

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Every 5th page is never written (it must read as zeros); the others hold page p at version v. */
const untouched = (p: number): boolean => p % 5 === 4;

function writeAll(bytes: Uint8Array, pages: number, version: number, first = 0, step = 1): void {
  for (let p = first; p < pages; p += step) {
    if (!untouched(p)) fillPage(bytes, p * PAGE, p, version);
    if (p % 64 === 0) gc();
  }
}

/** Checks every byte of pages first, first+step, ... in the given order; returns the count of bad pages (said). */
function checkAll(bytes: Uint8Array, pages: number, version: number, reverse = false, first = 0, step = 1): number {
  let bad = 0;
  const order: number[] = [];
  for (let p = first; p < pages; p += step) order.push(p);
  if (reverse) order.reverse();
  for (const p of order) {
    if (untouched(p)) {
      for (let i = 0; i < PAGE; i++) {
        if (bytes[p * PAGE + i] !== 0) {
          if (bad++ < 5) say(`BAD page ${p} byte ${i}: ${bytes[p * PAGE + i]}, want 0 (never written)`);
          break;
        }
      }
    } else {
      const at = pageMismatch(bytes, p * PAGE, p, version);
      if (at >= 0 && bad++ < 5) say(`BAD ${describeMismatch(bytes, p * PAGE, p, version, at)}`);
    }
    if (p % 64 === 0) gc();
  }
  return bad;
}

/** A Worker running this file, and its first message (listened for at once: an unheard message is lost). */
function startWorker(data: unknown): { w: Worker; msg: Promise<unknown> } {
  const w = new Worker(__filename, { workerData: data });
  const msg = new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  return { w, msg };
}

const faultsLine = (swap: Swap): string => JSON.stringify(swap.stats().faults);

async function states(dir: string): Promise<void> {
  const swap = await open({
    residentLimit: '256KiB',
    poolLimit: '1MiB',
    faults: 'inline',
    swapFile: { path: dir, size: '8MiB' },
  });
  const pages = 512;
  const region = swap.region(pages * PAGE);
  say(`region inline ${region.inline}`);
  const bytes = new Uint8Array(region.buffer);
  writeAll(bytes, pages, 1);
  let bad = checkAll(bytes, pages, 1, true); // the last evicted are staged: second chance
  await region.evict();
  bad += checkAll(bytes, pages, 1);
  say(`main thread: bad pages ${bad}; faults ${faultsLine(swap)}`);
  // A Worker on its own region of the same swap.
  const other = swap.region(pages * PAGE);
  const { w, msg } = startWorker({ mode: 'states', shared: other.share(), pages });
  const m = (await msg) as { bad: number };
  await other.evict();
  const wb = new Uint8Array(other.buffer);
  const mainBad = checkAll(wb, pages, 2);
  say(`worker: bad pages ${m.bad}; main thread after evict: bad ${mainBad}`);
  await w.terminate();
  const s = swap.stats();
  say(`faults ${JSON.stringify(s.faults)} swapIns ${s.swapFile?.swapIns}`);
  await swap.close();
  say(`done bad ${bad + m.bad + mainBad}`);
}

function workerStates(shared: SharedRegion, pages: number): void {
  const bytes = new Uint8Array(attachRegion(shared));
  writeAll(bytes, pages, 2);
  let bad = checkAll(bytes, pages, 2, true);
  bad += checkAll(bytes, pages, 2);
  parentPort!.postMessage({ bad });
}

/** Faults on every page of `bytes` (odd or even pages), checked, `rounds` times. */
function faultRounds(bytes: Uint8Array, pages: number, rounds: number, first: number): number {
  let bad = 0;
  for (let round = 0; round < rounds; round++) {
    writeAll(bytes, pages, 10 + round, first, 2);
    bad += checkAll(bytes, pages, 10 + round, round % 2 === 1, first, 2);
  }
  return bad;
}

async function signals(): Promise<void> {
  let usr2 = 0,
    winch = 0,
    chld = 0;
  process.on('SIGUSR2', () => usr2++);
  process.on('SIGWINCH', () => winch++);
  const swap = await open({ residentLimit: '128KiB', faults: 'inline' });
  const pages = 256;
  const region = swap.region(pages * PAGE);
  const bytes = new Uint8Array(region.buffer);
  // A Worker sends signals to the whole process, while another faults.
  const stopSab = new SharedArrayBuffer(4);
  const sender = new Worker(
    `const { workerData } = require('node:worker_threads');
     const stop = new Int32Array(workerData);
     while (Atomics.load(stop, 0) === 0) {
       process.kill(process.pid, 'SIGUSR2');
       process.kill(process.pid, 'SIGWINCH');
       Atomics.wait(stop, 0, 0, 1);
     }`,
    { eval: true, workerData: stopSab },
  );
  const faulter = startWorker({ mode: 'rounds', shared: region.share(), pages, rounds: 4, first: 1 });
  const kids: Promise<void>[] = [];
  for (let i = 0; i < 4; i++) {
    kids.push(
      new Promise((resolve) => {
        const c = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
        c.once('exit', () => {
          chld++;
          resolve();
        });
      }),
    );
  }
  const bad = faultRounds(bytes, pages, 4, 0);
  const m = (await faulter.msg) as { bad: number };
  await Promise.all(kids);
  Atomics.store(new Int32Array(stopSab), 0, 1);
  await new Promise((resolve) => sender.once('exit', resolve));
  await new Promise((resolve) => setTimeout(resolve, 50)); // let the last signals reach their listeners
  say(`signals: SIGUSR2 ${usr2}, SIGWINCH ${winch}, children ${chld}`);
  say(`done bad ${bad + m.bad}; faults ${faultsLine(swap)}`);
  await swap.close();
}

function workerRounds(shared: SharedRegion, pages: number, rounds: number, first: number): void {
  const bytes = new Uint8Array(attachRegion(shared));
  parentPort!.postMessage({ bad: faultRounds(bytes, pages, rounds, first) });
}

async function truncated(so: string): Promise<void> {
  const swap = await open({ residentLimit: '128KiB', faults: 'inline' });
  const region = swap.region('1MiB');
  const bytes = new Uint8Array(region.buffer);
  writeAll(bytes, 256, 1);
  await region.evict();
  say(`inline region served: bad ${checkAll(bytes, 256, 1)}`);
  say('loading the addon that touches a truncated mapping');
  try {
    process.dlopen({ exports: {} }, so);
  } catch (e) {
    say(`dlopen failed: ${(e as Error).message}`);
    process.exitCode = 4;
    return;
  }
  say('survived the bus error');
  process.exitCode = 3;
}

async function killBus(): Promise<void> {
  const swap = await open({ residentLimit: '128KiB', faults: 'inline' });
  const region = swap.region('256KiB');
  const bytes = new Uint8Array(region.buffer);
  writeAll(bytes, 64, 1);
  say(`inline region served: bad ${checkAll(bytes, 64, 1)}`);
  say('sending SIGBUS to itself');
  process.kill(process.pid, 'SIGBUS');
  await new Promise((resolve) => setTimeout(resolve, 2000));
  say('survived SIGBUS');
  process.exitCode = 3;
}

async function dispatcherGone(): Promise<void> {
  const swap = await open({ residentLimit: '128KiB', faults: 'inline' });
  const pages = 256;
  const region = swap.region(pages * PAGE);
  const bytes = new Uint8Array(region.buffer);
  writeAll(bytes, pages, 1);
  await region.evict();
  const faulter = startWorker({ mode: 'rounds', shared: region.share(), pages, rounds: 1000, first: 1 });
  await new Promise((resolve) => setTimeout(resolve, 100)); // the Worker is faulting now
  const worker = (swap as unknown as { worker: Worker }).worker;
  say('terminating the dispatcher');
  void faulter;
  // Once it has exited, nothing serves a fault natively either (its regions left the native
  // table with it): the touch is forwarded, and nobody serves forwards any more.
  await worker.terminate();
  const v = bytes[0 * PAGE + 5]; // evicted page 0
  say(`read ${v}: the deadman did not fire`);
  process.exitCode = 3;
}

async function forkMode(): Promise<void> {
  const swap = await open({ residentLimit: '256KiB', faults: 'inline' });
  const pages = 256;
  const region = swap.region(pages * PAGE);
  const bytes = new Uint8Array(region.buffer);
  writeAll(bytes, pages, 1);
  const faulter = startWorker({ mode: 'rounds', shared: region.share(), pages, rounds: 3, first: 1 });
  let ok = 0;
  for (let i = 0; i < 3; i++) {
    const r = spawnSync(process.execPath, ['-e', 'process.exit(7)']);
    if (r.status === 7) ok++;
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Resident pages are shared copy-on-write with the children now: evicting them unshares.
  const evicted = await region.evict();
  let bad = checkAll(bytes, pages, 1, false, 0, 2);
  const m = (await faulter.msg) as { bad: number };
  bad += m.bad;
  await region.evict();
  bad += checkAll(bytes, pages, 1, true, 0, 2);
  bad += checkAll(bytes, pages, 12, false, 1, 2); // the Worker's last round (version 10 + 2)
  const s = swap.stats();
  say(`children ok ${ok}, evicted ${evicted}, unshared ${s.unsharedPages}`);
  say(`done bad ${bad}; faults ${faultsLine(swap)}`);
  await swap.close();
}

async function closeFaulting(): Promise<void> {
  const swap = await open({ residentLimit: '128KiB', faults: 'inline' });
  const pages = 256;
  const region = swap.region(pages * PAGE);
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const ws = [0, 1].map((first) => startWorker({ mode: 'loop', shared: region.share(), pages, first, stop }));
  await Promise.all(ws.map((w) => w.msg)); // attached and faulting
  const done = ws.map(
    ({ w }) =>
      new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  say('closing the region under the Workers');
  await region.close();
  await new Promise((resolve) => setTimeout(resolve, 100));
  Atomics.store(stop, 0, 1);
  const rs = (await Promise.all(done)) as { rounds: number }[];
  say(`workers done: rounds ${rs.map((r) => r.rounds).join(', ')}`);
  await swap.close();
  say('done');
}

function workerLoop(shared: SharedRegion, pages: number, first: number, stop: Int32Array): void {
  const bytes = new Uint8Array(attachRegion(shared));
  let rounds = 0;
  let sum = 0;
  parentPort!.postMessage({ started: true });
  while (Atomics.load(stop, 0) === 0) {
    for (let p = first; p < pages; p += 2) {
      bytes[p * PAGE + (rounds & 4095)] = rounds & 0xff;
      sum += bytes[p * PAGE];
    }
    rounds++;
  }
  parentPort!.postMessage({ rounds, sum });
}

/**
 * Reads every page of `bytes` after an evict (served from the pool write-protected, CLEAN),
 * then writes every one (a write-protect fault, which the SIGBUS handler cannot tell from a
 * missing one) and checks all: bad pages.
 */
async function readThenWrite(bytes: Uint8Array, pages: number, evict: () => Promise<void>): Promise<number> {
  writeAll(bytes, pages, 20);
  await evict();
  let bad = checkAll(bytes, pages, 20);
  writeAll(bytes, pages, 21);
  bad += checkAll(bytes, pages, 21, true);
  return bad;
}

async function cleanWrite(): Promise<void> {
  const swap = await open({ residentLimit: '256KiB', poolLimit: '4MiB', faults: 'inline' });
  const pages = 256;
  const region = swap.region(pages * PAGE);
  const bad = await readThenWrite(new Uint8Array(region.buffer), pages, async () => {
    await region.evict();
  });
  const before = swap.stats().faults.writeProtect;
  say(`main thread: bad pages ${bad}; faults ${faultsLine(swap)}`);
  const other = swap.region(pages * PAGE);
  const { w, msg } = startWorker({ mode: 'clean-write', shared: other.share(), pages });
  // The Worker writes, then asks for the evict it reads back after.
  const first = (await msg) as { written: boolean };
  if (!first.written) throw new Error('the Worker did not write');
  await other.evict();
  w.postMessage('evicted');
  const m = await new Promise<{ bad: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await w.terminate();
  say(`worker: bad pages ${m.bad}; writeProtect faults ${before} then ${swap.stats().faults.writeProtect}`);
  await swap.close();
  say(`done bad ${bad + m.bad}`);
}

function workerCleanWrite(shared: SharedRegion, pages: number): void {
  const bytes = new Uint8Array(attachRegion(shared));
  void readThenWrite(bytes, pages, async () => {
    parentPort!.postMessage({ written: true });
    await new Promise<void>((resolve) => {
      parentPort!.once('message', () => resolve());
    });
  }).then((bad) => parentPort!.postMessage({ bad }));
}

async function main(): Promise<void> {
  if (!isMainThread) {
    const d = workerData as {
      mode: string;
      shared: SharedRegion;
      pages: number;
      rounds: number;
      first: number;
      stop: Int32Array;
    };
    if (d.mode === 'states') workerStates(d.shared, d.pages);
    else if (d.mode === 'rounds') workerRounds(d.shared, d.pages, d.rounds, d.first);
    else if (d.mode === 'loop') workerLoop(d.shared, d.pages, d.first, d.stop);
    else if (d.mode === 'clean-write') workerCleanWrite(d.shared, d.pages);
    return;
  }
  const mode = process.argv[2];
  if (mode === 'states') await states(process.argv[3]);
  else if (mode === 'signals') await signals();
  else if (mode === 'truncated') await truncated(path.resolve(process.argv[3]));
  else if (mode === 'kill-bus') await killBus();
  else if (mode === 'dispatcher-gone') await dispatcherGone();
  else if (mode === 'fork') await forkMode();
  else if (mode === 'close-faulting') await closeFaulting();
  else if (mode === 'clean-write') await cleanWrite();
  else {
    say(`unknown mode ${mode}`);
    process.exitCode = 2;
  }
}

main().catch((e) => {
  say(`failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
