/**
 * Worker for the direct I/O test (test/fork.test.ts): reads file pages with
 * O_DIRECT straight into the pages of a shared region, over and over, while the
 * main thread evicts the region. During each read the kernel holds the
 * destination page pinned (the device writes it directly), and eviction must
 * not take it: a page dropped or moved then would lose the bytes being read.
 *
 * workerData: { shared, file, pages (of the region), filePages, rounds, last
 * (SharedArrayBuffer: Int32 per region page, the file page read into it last) }
 */
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { attachRegion, type SharedRegion } from '../../lib';

interface Data {
  shared: SharedRegion;
  file: string;
  pages: number;
  filePages: number;
  rounds: number;
  last: SharedArrayBuffer;
}

const d = workerData as Data;
const buf = attachRegion(d.shared);
const last = new Int32Array(d.last);
const fd = fs.openSync(d.file, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
let reads = 0;
for (let round = 0; round < d.rounds; round++) {
  for (let p = 0; p < d.pages; p++) {
    const k = (round * 7 + p * 3) % d.filePages;
    const n = fs.readSync(fd, new Uint8Array(buf, p * 4096, 4096), 0, 4096, k * 4096);
    if (n !== 4096) throw new Error(`short O_DIRECT read: ${n}`);
    Atomics.store(last, p, k);
    reads++;
  }
}
fs.closeSync(fd);
parentPort!.postMessage(reads);
