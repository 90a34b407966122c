/**
 * zswap write-back to the swap file (lib/swapfile.ts).
 *
 * A page the pool refuses (full, or it does not compress) goes to the file
 * instead of staying resident, and while the pool is over its accept
 * threshold its oldest entries are written back to the file (zswap's
 * shrinker). Both go through one write-back batch, written with one pwrite
 * per contiguous run of slots before the dispatcher polls again.
 *
 *   batch   wbBuf  [page 0][page 1] ... [page WB-1]   the bytes to write
 *           wbOwner / wbPage   region id and page of each entry
 *           wbFrom             the staging slot it came from (kept, slotDeferred, until
 *                              settled), or -1: it comes from the pool (decoded)
 *           wbIdle             1 when the idle pass queued it (counted in G_IDLE_WRITEBACK once written)
 *   wb      count (entries queued), backoffUntil (after an I/O error, ms), lastError
 *
 * Every page in the batch is claimed (BUSY, pagestate.ts) until it is settled:
 * written -> SWAPPED (aux = file slot), the slot or pool object freed;
 * failed -> a staged page goes back resident, a pool page stays stored.
 */
import { PAGE } from '../compress';
import * as P from './protocol';
import { G, opts, codec, objBuf, backends } from './env';
import { STORED, SWAPPED, ACTIVE, TIME_MASK, claim, publish } from './pagestate';
import { byId, type RegionState } from './regions';
import { stagingBytes, slotDeferred, flushReleases, unstage, unstaged } from './staging';
import { storedFifo, storedPush, fifoPush, evicted, DEFERRED, REFUSED } from './reclaim';
import { dropPoolCopy, storedLeaves, poolState } from './pool';
import { SwapFile, SwapFileError } from '../swapfile';
import { queueObject, queuePage, written, flushRemote } from './remote';

/** The swap file tier, when configured. */
export const swap =
  opts.swapFileFd >= 0 ? new SwapFile(opts.swapFileFd, opts.swapFileSize, opts.swapFileEncrypt) : undefined;
if (swap) G[P.G_SWAP_SLOTS] = swap.slots;

/** Entries in one write-back batch. */
export const WB = 32;
const wbBuf = new Uint8Array(WB * PAGE);
const wbOwner = new Int32Array(WB);
const wbPage = new Uint32Array(WB);
const wbFrom = new Int32Array(WB); // staging slot, or -1: the page comes from the pool
const wbIdle = new Uint8Array(WB); // 1: queued by the idle pass (idle.writtenBack counts it once written)
const runOut = new Int32Array(1);
export const wb = {
  count: 0,
  backoffUntil: 0,
  lastError: '',
  /** The shrinker is writing back (the loop polls without waiting meanwhile). */
  shrinking: false,
  shrinkRounds: 0,
};

export function swapUsable(): boolean {
  return swap !== undefined && swap.free > 0 && (wb.backoffUntil === 0 || performance.now() >= wb.backoffUntil);
}

/** Queues a staged page for the swap file (frontswap refused it). */
export function toSwapFile(r: RegionState, page: number, off: number, slot: number): number {
  if (!swapUsable()) return REFUSED;
  if (wb.count === WB) flushWriteback();
  wbBuf.set(stagingBytes.subarray(off, off + PAGE), wb.count * PAGE);
  queuePage(wb.count, stagingBytes, off); // the remote tier sends it compressed
  wbOwner[wb.count] = r.id;
  wbPage[wb.count] = page;
  wbFrom[wb.count] = slot;
  wbIdle[wb.count] = 0;
  slotDeferred[slot] = 1;
  wb.count++;
  return DEFERRED;
}

/**
 * Queues a stored page (claimed: BUSY; its object loaded in objBuf) for the swap file; settled by flushWriteback().
 * `idle`: queued by the idle pass (counted as an idle write-back once written).
 */
export function queuePoolWriteback(r: RegionState, page: number, len: number, idle = false): void {
  if (wb.count === WB) flushWriteback();
  codec.decompress(objBuf, 0, len, wbBuf, wb.count * PAGE);
  queueObject(wb.count, objBuf, len); // the remote tier sends the compressed object
  wbOwner[wb.count] = r.id;
  wbPage[wb.count] = page;
  wbFrom[wb.count] = -1;
  wbIdle[wb.count] = idle ? 1 : 0;
  wb.count++;
}

/** zswap's shrinker: writes the oldest pool entries back to the swap file. */
function writebackFromPool(max: number): number {
  let n = 0;
  while (n < max && storedFifo.shift()) {
    const r = byId.get(storedFifo.outRegion);
    const page = storedFifo.outPage;
    if (!r || r.closed || r.seq[page] !== storedFifo.outStamp || !claim(r.state, page, STORED)) continue;
    const len = backends.frontswap.load(r.id, page, objBuf);
    if (len < 0) {
      publish(r.state, page, STORED);
      continue;
    }
    queuePoolWriteback(r, page, len); // BUSY until settled
    n++;
  }
  flushWriteback();
  return n;
}

/** Writes the batch: one pwrite per run of free slots; settles every entry. */
export function flushWriteback(): void {
  let i = 0;
  while (i < wb.count) {
    const n = swap!.allocRun(wb.count - i, runOut);
    if (n === 0) {
      settleFailed(i, wb.count - i, 'the swap file is full');
      break;
    }
    try {
      swap!.writeRun(runOut[0], i === 0 ? wbBuf : wbBuf.subarray(i * PAGE), n, wbOwner, wbPage, i);
    } catch (e) {
      swap!.release(runOut[0], n);
      if (!(e instanceof SwapFileError)) throw e; // a bug, not an I/O error: not counted as one
      settleFailed(i, n, e.message);
      i += n;
      continue;
    }
    for (let k = 0; k < n; k++) settleWritten(i + k, runOut[0] + k);
    i += n;
  }
  for (let k = 0; k < wb.count; k++) if (wbFrom[k] >= 0) slotDeferred[wbFrom[k]] = 0;
  wb.count = 0;
  G[P.G_SWAP_PAGES] = swap ? swap.usedCount : 0;
  flushReleases();
  flushRemote(); // the pages written from the pool go to the remote store too (writethrough)
}

function settleWritten(k: number, fileSlot: number): void {
  const r = byId.get(wbOwner[k]);
  const page = wbPage[k];
  const from = wbFrom[k];
  if (!r || r.closed) {
    swap!.freeSlot(fileSlot);
    return;
  }
  if (from >= 0) {
    evicted(r, from);
  } else {
    dropPoolCopy(r, page);
    storedLeaves(r, page);
  }
  r.aux[page] = fileSlot;
  publish(r.state, page, SWAPPED); // ends the claim the page was queued under
  G[P.G_SWAP_WRITEBACK]++;
  if (wbIdle[k]) G[P.G_IDLE_WRITEBACK]++;
  written(k, r, page, fileSlot);
}

function settleFailed(from: number, n: number, why: string): void {
  G[P.G_SWAP_IO_ERRORS]++;
  wb.backoffUntil = performance.now() + 1000;
  wb.lastError = why;
  for (let k = from; k < from + n; k++) {
    const r = byId.get(wbOwner[k]);
    const slot = wbFrom[k];
    const page = wbPage[k];
    if (!r || r.closed) continue;
    if (slot < 0) {
      // From the pool: it stays there, and stays a candidate for the next write-back. Its
      // flags stay (IDLE_SEEN: it is counted idle already; NO_GAIN), with a new stored time.
      const flags = r.aux[page] & ~TIME_MASK;
      storedPush(r, page);
      r.aux[page] = (r.aux[page] | flags) >>> 0;
      publish(r.state, page, STORED);
      continue;
    }
    // The page goes back where it was, resident: nothing is lost.
    const res = unstage(r.base + page * PAGE, slot);
    if (res !== PAGE)
      throw new Error(`tmem: could not return page ${page} of region ${r.id} after a swap file error (errno ${-res})`);
    unstaged();
    publish(r.state, page, ACTIVE);
    fifoPush(r, page);
  }
}

/** While the pool is over its accept threshold, write its oldest entries back (a slice). */
export function shrinkSlice(): boolean {
  if (!swapUsable() || storedFifo.length === 0) return false;
  const used = backends.poolBytes();
  if (used < (opts.poolLimitBytes * opts.acceptThresholdPercent) / 100) return false;
  writebackFromPool(8);
  if (++wb.shrinkRounds % 16 === 0) backends.compact();
  return true;
}

/** The loop's shrinker step: runs while the pool refuses stores (zswap's accept threshold). */
export function shrinkStep(): void {
  wb.shrinking = swap !== undefined && poolState.refusing && shrinkSlice();
}
