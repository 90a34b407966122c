/**
 * Per-fault p50 by thread placement (issue 12, "every thread served at its own CPU"):
 * pool faults (pages filled, evicted, then read once each in a random order, one timed touch
 * per page: a sequential order would be served by the pool's readahead, not by faults).
 *
 *   pinned-app   the old `pin: true`: main thread bound to one CPU before open(), the
 *                dispatcher inheriting it (emulated: setAffinity, then open({ pin: false }))
 *   following    open({ pin: true }): nothing bound; the dispatcher follows the faulting thread
 *   worker-other a Worker bound (by itself) to the other CPU faults, with the dispatcher
 *                following (pin: true) and bound to the main thread's CPU (pinned-app)
 *
 * Usage: node dist/bench/placement-latency.js [pages]   (prints JSON; ratios are what count)
 */
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { open, type SharedRegion } from '../lib';
import { native } from '../lib/native';

const PAGE = 4096;
const pages = Number(process.argv[2] ?? 4096);
/** The touch order: a fixed random permutation (seeded), the same for every placement. */
const order = ((): number[] => {
  const o = Array.from({ length: pages }, (_, i) => i);
  let seed = 1;
  for (let i = pages - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [o[i], o[j]] = [o[j], o[i]];
  }
  return o;
})();

function touchAll(buf: ArrayBuffer): number[] {
  const b = new Uint8Array(buf);
  const lat: number[] = [];
  let sum = 0;
  for (const p of order) {
    const t0 = process.hrtime.bigint();
    sum += b[p * PAGE];
    lat.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  if (sum < 0) throw new Error('unreachable');
  return lat;
}
const p50 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function prepared(
  pin: boolean,
): Promise<{ close: () => Promise<void>; buffer: ArrayBuffer; share: () => SharedRegion }> {
  const swap = await open({ residentLimit: `${pages * 2 * PAGE}`, pin });
  const region = swap.region(pages * PAGE);
  const b = new Uint8Array(region.buffer);
  for (let p = 0; p < pages; p++) b.fill((p * 7) & 255, p * PAGE, p * PAGE + 2048); // compressible, not same-filled
  await region.evict();
  return { close: () => swap.close(), buffer: region.buffer, share: () => region.share() };
}

async function inWorker(shared: SharedRegion, cpu: number): Promise<number[]> {
  const w = new Worker(
    `
    const { workerData, parentPort } = require('node:worker_threads');
    const { native } = require(workerData.lib + '/native.js');
    const { attachRegion } = require(workerData.lib);
    native.setAffinity([workerData.cpu]);
    const b = new Uint8Array(attachRegion(workerData.shared));
    const lat = [];
    let sum = 0;
    for (const p of workerData.order) {
      const t0 = process.hrtime.bigint();
      sum += b[p * 4096];
      lat.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    parentPort.postMessage(lat);`,
    { eval: true, workerData: { shared, cpu, order, lib: `${__dirname}/../lib` } },
  );
  const lat = await new Promise<number[]>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await w.terminate();
  return lat;
}

async function main(): Promise<void> {
  const all = native.getAffinity();
  const cpus = os.cpus().length;
  const here = native.currentCpu();
  const other = (here + 1) % cpus;
  const out: Record<string, number> = {};
  // pinned-app (the old pin: true)
  native.setAffinity([here]);
  let s = await prepared(false);
  out.pinnedAppMain = p50(touchAll(s.buffer));
  await s.close();
  s = await prepared(false);
  native.setAffinity(all);
  if (cpus > 1) out.pinnedAppWorkerOtherCpu = p50(await inWorker(s.share(), other));
  await s.close();
  // following (the new pin: true)
  s = await prepared(true);
  out.followingMain = p50(touchAll(s.buffer));
  await s.close();
  if (cpus > 1) {
    s = await prepared(true);
    out.followingWorkerOtherCpu = p50(await inWorker(s.share(), other));
    await s.close();
  }
  console.log(
    JSON.stringify({
      pages,
      cpus,
      p50us: out,
      ratios: {
        followingMainOverPinnedMain: out.followingMain / out.pinnedAppMain,
        followingWorkerOverPinnedMain: out.followingWorkerOtherCpu / out.pinnedAppMain,
        pinnedWorkerOtherOverPinnedMain: out.pinnedAppWorkerOtherCpu / out.pinnedAppMain,
      },
    }),
  );
}
void main();
