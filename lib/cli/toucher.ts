/**
 * A faulting thread of `tmem bench --threads N` and of the threads scenario:
 * attaches the region the main thread shared (attachRegion(region.share())),
 * moves itself to its CPU when given one, waits for the start signal,
 * reads one byte of each page of its share of the order, timing each touch
 * with process.hrtime.bigint(), and posts the times (ns) back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { attachRegion, type SharedRegion } from '../swap';
import { native } from '../native';

export interface ToucherData {
  shared: SharedRegion;
  /** Page indexes to touch, in order. */
  order: Uint32Array;
  /** Int32Array over it: [0] start flag. */
  ctl: SharedArrayBuffer;
  /** The CPU this thread runs on (sched_setaffinity of this thread only), or none: inherited. */
  cpu?: number;
}

const d = workerData as ToucherData;
if (d.cpu !== undefined) native.setAffinity([d.cpu]);
const view = new Uint8Array(attachRegion(d.shared));
const ctl = new Int32Array(d.ctl);
const lat = new Float64Array(d.order.length);
// Warm the timing loop's code on a page that is not part of the region (no fault).
const scratch = new Uint8Array(4096 * 4);
let sink = 0;
for (let k = 0; k < 2000; k++) {
  const t0 = process.hrtime.bigint();
  sink += scratch[(k & 3) * 4096 + 1];
  lat[k % lat.length] = Number(process.hrtime.bigint() - t0);
}
parentPort!.postMessage({ type: 'ready' });
Atomics.wait(ctl, 0, 0);
const order = d.order;
for (let k = 0; k < order.length; k++) {
  const off = order[k] * 4096 + 1;
  const t0 = process.hrtime.bigint();
  sink += view[off];
  const t1 = process.hrtime.bigint();
  lat[k] = Number(t1 - t0);
}
parentPort!.postMessage({ type: 'done', lat, sink }, [lat.buffer]);
