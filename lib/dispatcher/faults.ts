/**
 * The fault path: one page fault in, the page installed (UFFDIO_COPY, MOVE,
 * ZEROPAGE), per state of the faulting page (pagestate.ts).
 *
 *   events   Float64Array, 64 events of EVENT_SLOTS words from uffd.read()
 *            [type, flags, address, ...] per event (lib/native.ts)
 *   serveFault(addr, flags) by state:
 *     write-protect fault   CLEAN -> ACTIVE (its clean copy dropped); else a stale wake
 *     NEVER    anon: zero page (read) or a zeroed copy (write); file: files.ts
 *     STORED   decode from the pool and copy in (read of anon: write-protected, the
 *              pool copy kept: CLEAN)
 *     SAME     the fill word (zero: the shared zero page on read)
 *     STAGED   moved back from its slot (read of a clean one: copied write-protected)
 *     SWAPPED  read from the swap file (swapIn)
 *     REMOTE   fetched from the remote store (remote.ts), checked; else as SWAPPED;
 *              READING while its reply is on the way (other faults are served meanwhile)
 *     READING  waits for the file read in flight
 *     ACTIVE, CLEAN   served already by another thread's fault: wake
 *   retries  faults the kernel said EAGAIN to, or on a page BUSY elsewhere
 *            (retryAddr/retryFlags), served again on the next loop turn
 *   hist     per batch: the mean service time of its faults
 *   placement  each fault's thread id goes to follow() (placement.ts)
 *   forwarded  a fault on an inline region's forward area: inline.ts
 */
import * as fs from 'node:fs';
import { EVENT_SLOTS, PAGEFAULT_FLAG_WP, PAGEFAULT_FLAG_WRITE, UFFD_EVENT_PAGEFAULT, COPY_WP } from '../native';
import { PAGE } from '../compress';
import * as P from './protocol';
import {
  G,
  hist,
  uffd,
  backends,
  codec,
  objBuf,
  pageBuf,
  pageWords,
  zeroPage,
  nativeDecode,
  EAGAIN,
  EEXIST,
} from './env';
import {
  NEVER,
  ACTIVE,
  CLEAN,
  STAGED,
  STORED,
  SAME,
  SWAPPED,
  READING,
  BUSY,
  REMOTE,
  STAGED_CLEAN,
  KEPT_SLOT,
  isFast,
  claim,
  publish,
} from './pagestate';
import { findRegion, type RegionState } from './regions';
import { stagingBytes, slotKept, slotRegion, queueRelease, unstage, unstaged } from './staging';
import { becomeResident, fifoPush } from './reclaim';
import { readAhead } from './readahead';
import { storedLeaves, dropPoolCopy, dropCleanCopy } from './pool';
import { swap, swapUsable } from './writeback';
import { fileFault, nextEpoch } from './files';
import { drainRequests, batch } from './requests';
import { SwapFileError } from '../swapfile';
import { follow } from './placement';
import { serveForwarded } from './inline';
import { startFetch } from './remote';
import { threaded, readEvents } from './native-faults';

/** The events buffer uffd.read() fills. */
export const events = new Float64Array(64 * EVENT_SLOTS);

/** Resolves one fault. Returns false if the kernel said EAGAIN (retry later). */
export function serveFault(addr: number, flags: number): boolean {
  let r = findRegion(addr);
  if (!r) {
    if (serveForwarded(addr)) return true; // an inline region's fault, forwarded (inline.ts)
    drainRequests(); // a region added just now
    r = findRegion(addr);
    if (!r) {
      if (serveForwarded(addr)) return true;
      // Not ours (any more): wake the thread so it sees the unregistered range.
      try {
        uffd.wake(addr, PAGE);
      } catch {
        /* range gone */
      }
      return true;
    }
  }
  const page = (addr - r.base) / PAGE;
  const st = r.state[page];
  const write = (flags & PAGEFAULT_FLAG_WRITE) !== 0;

  if (flags & PAGEFAULT_FLAG_WP) {
    if (st === CLEAN) {
      uffd.writeProtect(addr, PAGE, false);
      publish(r.state, page, ACTIVE);
      if (r.isFile && r.spec.writable) r.stats[P.R_DIRTY]++;
      dropCleanCopy(r, page);
    } else {
      uffd.wake(addr, PAGE); // stale: the page moved; the thread retries and faults as missing
    }
    G[P.G_FAULTS_WP]++; // last: whoever sees it counted sees the page's new state too
    return true;
  }

  // A page in a fast state is claimed (BUSY) while it is served (pagestate.ts); a fault
  // on a page BUSY elsewhere, or one that changed before the claim, is retried.
  if (st === BUSY || (isFast(st, r.isFile) && !claim(r.state, page, st))) return false;
  let res: number;
  switch (st) {
    case NEVER:
      if (r.isFile) return fileFault(r, page, addr, write);
      if (write) res = uffd.copy(addr, zeroPage, 0, 0);
      else res = uffd.zeropage(addr, PAGE);
      if (res < 0) return unclaim(r, page, st, res);
      G[P.G_FAULTS_ZERO]++;
      r.stats[P.R_FAULTS_ZERO]++;
      becomeResident(r, page, ACTIVE);
      return true;
    case STORED: {
      // A file region's stored page is a private change to a read-only
      // mapping: CLEAN there means "the file has it", which it does not.
      const keep = !write && !r.isFile;
      if (nativeDecode) {
        // One native call: decode straight from the arena, copy in.
        const fsw = backends.frontswap;
        const n = fsw.view(r.id, page);
        if (n < 0) throw new Error(`tmem: region ${r.id} page ${page} is missing from the pool`);
        res = uffd.copyObject(addr, fsw.viewBytes, fsw.viewOffset, n, keep ? COPY_WP : 0);
      } else {
        const n = backends.frontswap.load(r.id, page, objBuf);
        if (n < 0) throw new Error(`tmem: region ${r.id} page ${page} is missing from the pool`);
        codec.decompress(objBuf, 0, n, pageBuf, 0);
        res = uffd.copy(addr, pageBuf, 0, keep ? COPY_WP : 0);
      }
      if (res < 0) return unclaim(r, page, st, res);
      G[P.G_FAULTS_POOL]++;
      r.stats[P.R_FAULTS_POOL]++;
      storedLeaves(r, page);
      if (!keep) {
        dropPoolCopy(r, page);
        becomeResident(r, page, ACTIVE);
      } else {
        becomeResident(r, page, CLEAN); // the compressed copy stays: evicting it again is free
      }
      if (!r.isFile) readAhead(r, page);
      return true;
    }
    case SAME: {
      if (r.aux[page] === 0 && !write) {
        res = uffd.zeropage(addr, PAGE); // a zero page: map the shared one
      } else {
        pageWords.fill(r.aux[page]);
        res = uffd.copy(addr, pageBuf, 0, 0);
      }
      if (res < 0) return unclaim(r, page, st, res);
      G[P.G_FAULTS_SAME]++;
      r.stats[P.R_FAULTS_SAME]++;
      G[P.G_SAME]--;
      r.stats[P.R_SAME]--;
      becomeResident(r, page, ACTIVE);
      if (!r.isFile) readAhead(r, page);
      return true;
    }
    case STAGED: {
      const a = r.aux[page];
      const slot = a & 0x7fffffff;
      const clean = (a & STAGED_CLEAN) !== 0;
      if (clean && !write) {
        // Read of a clean page: copy it in already write-protected (one atomic
        // step: no write can slip in unseen) and keep its clean copy. MOVE
        // would map it writable, and a writeProtect() after it comes too late.
        res = uffd.copy(addr, stagingBytes, slot * PAGE, COPY_WP);
        if (res < 0) return unclaim(r, page, st, res);
        queueRelease(slot);
        r.aux[page] = slotKept[slot] >= 0 ? (KEPT_SLOT | slotKept[slot]) >>> 0 : 0;
        publish(r.state, page, CLEAN);
      } else {
        res = unstage(addr, slot);
        if (res < 0) {
          if (res === EAGAIN) return unclaim(r, page, st, res);
          throw new Error(`tmem: moving staged page back failed with errno ${-res}`);
        }
        // Mapped writable now: dirty. An anon page's kept copy is stale.
        r.aux[page] = slotKept[slot] >= 0 ? (KEPT_SLOT | slotKept[slot]) >>> 0 : 0;
        if (clean) dropCleanCopy(r, page);
        publish(r.state, page, ACTIVE);
      }
      slotKept[slot] = -1;
      slotRegion[slot] = -1;
      unstaged();
      G[P.G_FAULTS_STAGED]++;
      r.stats[P.R_FAULTS_STAGED]++;
      G[P.G_SECOND_CHANCE]++;
      fifoPush(r, page); // second chance: back to the tail
      return true;
    }
    case SWAPPED:
      return swapIn(r, page, addr, write);
    case REMOTE:
      // Its GETDEL goes out and this thread serves other faults until the reply is in
      // (remote.ts pollFetch(), bounded by remote.timeout); anything but a checked value:
      // the swap file. False (retried) while another remote fault is in flight.
      return startFetch(r, page, addr, write);
    case READING: {
      // Another thread faulted on a page being read: the copy at completion wakes it too.
      const rd = r.reads.get(page);
      if (rd && write) rd.write = true;
      return true;
    }
    default:
      // ACTIVE or CLEAN: another thread faulted on the same page and was served.
      uffd.wake(addr, PAGE);
      return true;
  }
}

/** The kernel did not install the page (res < 0): the claim ends, the page unchanged; false for EAGAIN (retry). */
function unclaim(r: RegionState, page: number, st: number, res: number): boolean {
  publish(r.state, page, st);
  return res !== EAGAIN;
}

/**
 * A fault on a page in the swap file: read, check, copy in. A read of an anon
 * page keeps its slot (the kernel's swap cache) and maps the page write-protected:
 * until a write-protect fault says it was written, evicting it again writes
 * nothing. As the kernel does (vm_swap_full), slots are kept only while the file
 * is at most half full (and not failing writes); a write, or a fuller file, frees
 * the slot at once.
 */
export function swapIn(r: RegionState, page: number, addr: number, write: boolean, fromRemote = false): boolean {
  const slot = r.aux[page];
  const sequential = r.lastSwapIn === page - 1;
  // fromRemote: pageBuf already holds the page, from the remote store (checked there).
  if (!fromRemote) {
    let ok: boolean;
    try {
      ok = swap!.read(slot, pageBuf, 0, sequential);
    } catch (e) {
      if (!(e instanceof SwapFileError)) throw e; // a bug, not an I/O error: the dispatcher fails, loudly
      G[P.G_SWAP_IO_ERRORS]++;
      return unrecoverable(r, page, addr, (e as Error).message);
    }
    if (!ok) {
      G[P.G_SWAP_CSUM_ERRORS]++;
      return unrecoverable(r, page, addr, `${swap!.checkName} mismatch in swap file slot ${slot}`);
    }
  }
  // A file region's swapped page is a private change: CLEAN there would mean "the file has it".
  const keep = !write && !r.isFile && 2 * swap!.usedCount <= swap!.slots && swapUsable();
  const res = uffd.copy(addr, pageBuf, 0, keep ? COPY_WP : 0);
  if (res < 0) return res !== -11;
  r.lastSwapIn = page;
  if (keep) {
    G[P.G_SWAP_CACHED]++;
    becomeResident(r, page, CLEAN, (KEPT_SLOT | slot) >>> 0);
  } else {
    swap!.freeSlot(slot);
    G[P.G_SWAP_PAGES] = swap!.usedCount;
    becomeResident(r, page, ACTIVE);
  }
  G[P.G_SWAP_READAHEAD_HITS] = swap!.readaheadHits;
  if (fromRemote) {
    r.stats[P.R_FAULTS_REMOTE]++;
    G[P.G_FAULTS_REMOTE]++;
    return true;
  }
  r.stats[P.R_FAULTS_SWAP]++;
  G[P.G_SWAP_INS]++; // last: whoever sees it counted sees the page's slot and state too
  return true;
}

/**
 * A page that cannot be restored: never hand back wrong bytes. Say which page
 * on stderr (synchronously: the process may die next) and poison it, so the
 * faulting thread gets SIGBUS at that address.
 */
export function unrecoverable(r: RegionState, page: number, addr: number, why: string): boolean {
  fs.writeSync(
    2,
    `tmem: region ${r.id} page ${page} cannot be restored: ${why}; raising SIGBUS in the faulting thread\n`,
  );
  const res = uffd.poison(addr, PAGE);
  if (res < 0 && res !== EEXIST) process.abort();
  return true;
}

// ---- retries and batches --------------------------------------------------------------

// Unbounded: a fault left off the list would leave its thread blocked for good.
let retryAddr: number[] = [];
let retryFlags: number[] = [];
/** `count`: faults waiting in the retry list. */
export const retries = { count: 0 };

/** Queues a fault to be served again on the next loop turn (the kernel said EAGAIN, or the page was BUSY). */
export function pushRetry(addr: number, flags: number): void {
  retryAddr.push(addr);
  retryFlags.push(flags);
  retries.count = retryAddr.length;
}

/** Serves the first n events of `events`. */
export function serveBatch(n: number): void {
  const t0 = performance.now();
  nextEpoch();
  batch.depth++;
  for (let i = 0; i < n; i++) {
    const k = i * EVENT_SLOTS;
    if (events[k] !== UFFD_EVENT_PAGEFAULT) continue;
    if (!threaded) follow(events[k + 3]); // else the fault thread follows the faulting threads
    if (!serveFault(events[k + 2], events[k + 1])) pushRetry(events[k + 2], events[k + 1]);
  }
  batch.depth--;
  const us = ((performance.now() - t0) * 1000) / n;
  hist[P.bucketOf(us)] += n;
}

/** Serves the faults pending now without waiting (eviction of a whole region polls with it). */
export function serveAvailableFaults(): void {
  const n = readEvents(events, 0);
  if (n > 0) serveBatch(n);
  else if (n < 0) drainRequests();
}

/** Serves the retry list once; faults refused again stay on it. */
export function retryPending(): void {
  const addrs = retryAddr,
    flags = retryFlags;
  retryAddr = [];
  retryFlags = [];
  retries.count = 0;
  for (let i = 0; i < addrs.length; i++) {
    G[P.G_RETRIES]++;
    if (!serveFault(addrs[i], flags[i])) pushRetry(addrs[i], flags[i]);
  }
}
