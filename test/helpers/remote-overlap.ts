/**
 * A process for the remote tier's overlap test (test/remote-tier.test.ts): while a
 * Worker's fault on a remote page waits for a hung server, the dispatcher goes on
 * serving other faults.
 *
 *   argv[2]  JSON { url, dir, pages }
 *   -> 'evicted'          the region's pages are in the swap file and on the server; the
 *                         resident limit is raised (nothing is evicted, nor written back, after)
 *   <- 'go'               (the parent has SIGSTOPped the server meanwhile)
 *      a Worker reads every page (pages done: progress[0]); once it has stalled (its
 *      fault on a remote page waits for the server), this thread writes 256 pages of a
 *      new region (faults the dispatcher serves) and looks whether the Worker moved
 *   -> 'result' { stalledAt, servedWhileStalled, workerMovedMeanwhile, errorsMeanwhile, bad }
 */
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { attachRegion, open } from '../../lib';
import { fillPage } from './remote-child';

const PAGE = 4096;

function worker(): void {
  const { shared, progress, pages } = workerData as {
    shared: { id: number; address: number; size: number };
    progress: SharedArrayBuffer;
    pages: number;
  };
  const p = new Int32Array(progress);
  const u8 = new Uint8Array(attachRegion(shared));
  const exp = new Uint8Array(PAGE);
  for (let i = 0; i < pages; i++) {
    fillPage(exp, i, 1);
    const got = u8.subarray(i * PAGE, (i + 1) * PAGE);
    for (let k = 0; k < PAGE; k++) {
      if (got[k] !== exp[k]) {
        Atomics.add(p, 1, 1); // a wrong page
        break;
      }
    }
    Atomics.store(p, 0, i + 1);
  }
}

function send(m: unknown): Promise<void> {
  return new Promise((resolve) => process.send!(m, () => resolve()));
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2]) as { url: string; dir: string; pages: number };
  const swap = await open({
    residentLimit: '512KiB',
    poolLimit: '256KiB',
    swapFile: { path: a.dir, size: `${Math.ceil((a.pages * 2 * PAGE) / 2 ** 20)}MiB`, encrypt: false },
    remote: { url: a.url, timeout: 2500, repatriate: false },
  });
  const region = swap.region(a.pages * PAGE);
  const u8 = new Uint8Array(region.buffer);
  for (let p = 0; p < a.pages; p++) fillPage(u8.subarray(p * PAGE, (p + 1) * PAGE), p, 1);
  await region.evict();
  // Write-back runs while the pool is over its threshold: until the puts stop (at most 20 s).
  for (let i = 0, last = -1; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const n = swap.stats().remote!.puts;
    if (n === last && n > 0) break;
    last = n;
  }
  // No eviction from now on: the write-back's SETs (on the other connection) would wait for
  // the hung server too, for its deadline, and that is not what this test looks at.
  await swap.setLimits({ residentLimit: `${2 * a.pages * 4}KiB` });
  await send({ kind: 'evicted', stats: swap.stats() });
  await new Promise((resolve) => process.once('message', resolve));

  const progress = new SharedArrayBuffer(8);
  const p = new Int32Array(progress);
  const w = new Worker(__filename, { workerData: { shared: region.share(), progress, pages: a.pages } });
  const exited = new Promise((resolve) => w.once('exit', resolve));
  // Wait until the Worker stalls: no page done for 500 ms (its fault on a remote page waits).
  let last = -1;
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    const now = Atomics.load(p, 0);
    if (now === a.pages) break; // never stalled
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= 500) break;
  }
  const stalledAt = Atomics.load(p, 0);
  const errors0 = swap.stats().remote!.errors;
  // Faults the dispatcher must serve now: 256 pages of a new region, written.
  const other = swap.region(256 * PAGE);
  const o8 = new Uint8Array(other.buffer);
  for (let i = 0; i < 256; i++) o8[i * PAGE] = i + 1;
  let servedWhileStalled = 0;
  for (let i = 0; i < 256; i++) if (o8[i * PAGE] === ((i + 1) & 255)) servedWhileStalled++;
  const workerMovedMeanwhile = Atomics.load(p, 0) !== stalledAt;
  const errorsMeanwhile = swap.stats().remote!.errors - errors0;
  await exited;
  const bad = Atomics.load(p, 1);
  await other.close();
  await region.close();
  await swap.close();
  await send({ kind: 'result', stalledAt, servedWhileStalled, workerMovedMeanwhile, errorsMeanwhile, bad });
  process.exit(0);
}

if (isMainThread)
  main().catch((e: unknown) => {
    process.stderr.write(`remote-overlap: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
else worker();
