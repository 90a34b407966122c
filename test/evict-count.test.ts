/**
 * region.evict() resolves with the number of the region's pages that left, each
 * counted once: a Worker reading the region at random while evict() runs faults
 * pages back in, and eviction at residentLimit may push the same page out again;
 * the count never exceeds the region's pages. Every byte is checked.
 */
import test from 'ava';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { open } from '../lib';
import { withTimeout } from './helpers/harness';

const PAGE = 4096;
const LIB = path.join(__dirname, '..', 'lib');

const READER = `
const { workerData, parentPort } = require('node:worker_threads');
const { attachRegion } = require(${JSON.stringify(LIB)});
const bytes = new Uint8Array(attachRegion(workerData.shared));
const stop = new Int32Array(workerData.stop);
const pages = bytes.length / ${PAGE};
let x = 1, wrong = 0, reads = 0;
parentPort.postMessage('ready');
while (Atomics.load(stop, 0) === 0) {
  x = (x * 1103515245 + 12345) >>> 0;
  const p = x % pages;
  if (bytes[p * ${PAGE} + 7] !== (p * 31 + 7) % 251) wrong++;
  reads++;
}
parentPort.postMessage({ wrong, reads });
`;

test('region.evict() counts each page once while another thread faults on the region', async (t) => {
  const pages = 64;
  const swap = await withTimeout(open({ residentLimit: '64KiB', poolLimit: '16MiB' }), 10000, 'open()');
  try {
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    for (let i = 0; i < bytes.length; i++) bytes[i] = ((i >> 12) * 31 + (i & 4095)) % 251;
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const w = new Worker(READER, { eval: true, workerData: { shared: region.share(), stop: stop.buffer } });
    const ready = new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      w.once('error', reject);
    });
    await withTimeout(ready, 20000, 'the reader Worker starting');
    const report = new Promise<{ wrong: number; reads: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    const counts: number[] = [];
    try {
      for (let i = 0; i < 40; i++) counts.push(await withTimeout(region.evict(), 20000, 'region.evict()'));
    } finally {
      Atomics.store(stop, 0, 1);
    }
    const r = await withTimeout(report, 20000, 'the reader Worker');
    await w.terminate();
    t.log(`evict() counts ${counts.join(' ')}; reader ${r.reads} reads`);
    t.true(
      counts.every((n) => n >= 0 && n <= pages),
      `every count within the region's ${pages} pages: ${counts.join(' ')}`,
    );
    t.is(r.wrong, 0, 'the reader saw every byte right');
    for (let i = 0; i < bytes.length; i++)
      if (bytes[i] !== ((i >> 12) * 31 + (i & 4095)) % 251) return t.fail(`byte ${i} differs`);
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});
