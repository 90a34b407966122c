/**
 * The fault-latency benchmark's dispatcher: a Worker that serves every MISSING
 * fault with UFFDIO_COPY of one ready page, the JS twin of
 * bench/native/uffd_min_handler.cc.
 *
 * The loop is kept as tight as JS allows: a blocking read(ev, -1) into a
 * preallocated Float64Array, one copy() per fault from one prepared page,
 * no allocation per fault. It pins itself to workerData.cpu (if >= 0) before
 * it says it is ready, and stops when woken with wakeReader().
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native, PAGE_SIZE, UFFD_EVENT_PAGEFAULT, UffdDescriptor } from '../../lib/native';

const EAGAIN = -11;

export interface CopyServerData {
  descriptor: UffdDescriptor;
  /** CPU to pin this thread to; -1 leaves it free. */
  cpu: number;
}

const data = workerData as CopyServerData;
const uffd = native.Uffd.attach(data.descriptor);
if (data.cpu >= 0) native.setAffinity([data.cpu]);
const page = new Uint8Array(PAGE_SIZE);
for (let i = 0; i < PAGE_SIZE; i++) page[i] = 0x5a ^ (i & 0xff); // the contents uffd_min_handler copies
const ev = new Float64Array(4 * 64);

uffd.armDeadman('bench copy-server');
parentPort!.postMessage({ type: 'ready', tid: native.gettid(), cpu: native.currentCpu() });

let served = 0;
let retries = 0;
let failures = 0;
for (;;) {
  const n = uffd.read(ev, -1);
  if (n < 0) break; // wakeReader(): the benchmark is over
  for (let k = 0; k < n; k++) {
    if (ev[4 * k] !== UFFD_EVENT_PAGEFAULT) continue;
    const address = ev[4 * k + 2];
    let r = uffd.copy(address, page);
    while (r === EAGAIN) {
      retries++;
      r = uffd.copy(address, page);
    }
    if (r === PAGE_SIZE) served++;
    else failures++;
  }
}
uffd.disarmDeadman();
parentPort!.postMessage({ type: 'done', served, retries, failures });
