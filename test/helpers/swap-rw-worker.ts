/**
 * Worker for the integrity tests: attaches a region shared by the test's main
 * thread (attachRegion(region.share())) and runs a {@link Writer} over it,
 * then posts its {@link WriterReport}. Its faults are served by the same
 * dispatcher as the main thread's.
 *
 * workerData: { shared, seq (SharedArrayBuffer of the seqlock versions),
 * index, writers, seed, ops }
 */
import { parentPort, workerData } from 'node:worker_threads';
import { attachRegion, type SharedRegion } from '../../lib';
import { Writer } from './swap-pattern';

interface Data {
  shared: SharedRegion;
  seq: SharedArrayBuffer;
  index: number;
  writers: number;
  seed: number;
  ops: number;
}

const d = workerData as Data;
const bytes = new Uint8Array(attachRegion(d.shared));
const w = new Writer(bytes, new Int32Array(d.seq), d.index, d.writers, d.seed);
// Slices keep the thread responsive to terminate() between them.
const slice = 250;
function step(done: number): void {
  if (done >= d.ops) {
    parentPort!.postMessage(w.finish());
    return;
  }
  const n = Math.min(slice, d.ops - done);
  w.run(n);
  setImmediate(step, done + n);
}
step(0);
