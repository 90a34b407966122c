/**
 * Readahead from the pool, after the kernel's swap readahead: a sequential run
 * of faults on stored (or same-filled) pages of an anonymous region brings the
 * next such pages in ahead of the faults: stored pages decoded and copied in
 * write-protected (clean copies: their pool copies are kept, so evicting them
 * again costs nothing, and a write is seen as a write-protect fault),
 * same-filled pages refilled from their word (as their fault would).
 *
 *   fault on page p, STORED     p === r.raNext (the page after the last fault and
 *   or SAME
 *                               what was read ahead of it): sequential
 *     sequential                window = min(2 * window, MAX_WINDOW = 128) (first: 2)
 *     not sequential            window = 0 (no readahead)
 *   then pages p+1 .. p+min(window, room below residentLimit)
 *                               while each can be claimed from STORED or SAME
 *                               (pagestate.ts's BUSY protocol): STORED: a run of them decoded +
 *                               UFFDIO_COPY(WP) per CHUNK -> CLEAN; SAME: fill + COPY -> ACTIVE;
 *                               stops at the first page in another state (or BUSY)
 *   r.raNext = p + 1 + pages read ahead
 *
 * As the kernel's pswpin counts readahead, faults.pool (faults.same) counts
 * every page loaded from the pool (refilled), by a fault or ahead of one;
 * stats().poolReadahead counts those read ahead.
 */
import { COPY_WP } from '../native';
import { PAGE } from '../compress';
import * as P from './protocol';
import { G, uffd, backends, codec, objBuf, pageBuf, pageWords, opts } from './env';
import { STORED, SAME, CLEAN, ACTIVE, claim, publish } from './pagestate';
import type { RegionState } from './regions';
import { becomeResident, residency } from './reclaim';
import { storedLeaves } from './pool';

/**
 * Most pages read ahead of one fault (512 KiB). Measured on a sequential read-back of 20,000
 * evicted pages (2 vCPUs, idle): windows of 32 / 64 / 128 / 256 pages gave 6.9-7.5 / 6.3-6.5 /
 * 5.4-5.5 / 4.8-5.5 us per page; the window only grows while the faults stay sequential.
 */
export const MAX_WINDOW = 128;
/**
 * Pages per UFFDIO_COPY of a run. Each copy wakes the threads waiting on its pages, so a
 * thread reading along behind the readahead runs while the rest of the run is decoded:
 * chunks of 8 gave 7.1-7.2 us per page against 9.6-9.8 us for one DONTWAKE copy of 32.
 */
const CHUNK = 8;

/** Called after a fault on stored or same-filled page `page` of anon region `r` was served. */
export function readAhead(r: RegionState, page: number): void {
  if (page !== r.raNext) {
    r.raWindow = 0;
    r.raNext = page + 1;
    return;
  }
  r.raWindow = r.raWindow === 0 ? 2 : Math.min(2 * r.raWindow, MAX_WINDOW);
  let q = page + 1;
  // Only into the room below residentLimit: pages read ahead must never push resident
  // pages out (at the limit that would evict what was just read, and churn).
  const room = opts.residentLimitPages - residency.resident;
  if (room <= 0) return;
  const end = Math.min(r.pages, q + Math.min(r.raWindow, room));
  while (q < end) {
    const st = r.state[q];
    if (st === SAME) {
      if (!sameAhead(r, q)) break;
      q++;
      continue;
    }
    if (st !== STORED) break;
    const k = storedRunAhead(r, q, end);
    q += k;
    if (run.stopped) break;
  }
  r.raNext = q;
}

/** A same-filled page refilled ahead of its fault; false if it could not be (stop the run). */
function sameAhead(r: RegionState, q: number): boolean {
  if (!claim(r.state, q, SAME)) return false;
  pageWords.fill(r.aux[q]);
  if (uffd.copy(r.base + q * PAGE, pageBuf, 0, 0) < 0) {
    publish(r.state, q, SAME); // unclaimed as it was: its fault will serve it
    return false;
  }
  G[P.G_SAME]--;
  r.stats[P.R_SAME]--;
  becomeResident(r, q, ACTIVE);
  G[P.G_FAULTS_SAME]++;
  r.stats[P.R_FAULTS_SAME]++;
  G[P.G_POOL_READAHEAD]++; // last: whoever sees it counted sees the page resident
  return true;
}

/** The decoded pages of one run of stored pages, copied in with one UFFDIO_COPY. */
const runBuf = new Uint8Array(CHUNK * PAGE);
const run = { stopped: false };

/**
 * Brings in the run of stored pages q, q+1, .. (below `end`, at most CHUNK) that can
 * be claimed: each decoded into runBuf, then all of them copied in write-protected
 * with one UFFDIO_COPY that also wakes any thread already waiting on one of them. Returns the
 * pages brought in; run.stopped says the run ended on a page that must end the
 * readahead (not claimable, missing from the pool, or a copy that failed).
 */
function storedRunAhead(r: RegionState, q: number, end: number): number {
  run.stopped = false;
  let k = 0;
  for (; q + k < end && k < CHUNK; k++) {
    const p = q + k;
    if (r.state[p] !== STORED) break; // SAME or another state: the caller decides
    if (!claim(r.state, p, STORED)) {
      run.stopped = true;
      break;
    }
    const n = backends.frontswap.load(r.id, p, objBuf);
    if (n < 0) {
      publish(r.state, p, STORED);
      run.stopped = true;
      break;
    }
    codec.decompress(objBuf, 0, n, runBuf, k * PAGE);
  }
  if (k === 0) return 0;
  const base = r.base + q * PAGE;
  if (uffd.copy(base, runBuf, 0, COPY_WP, k * PAGE) < 0) {
    // EAGAIN or ESRCH part way: copy page by page (a page already copied answers
    // EEXIST, which counts as done) and give back the pages that did not go in.
    for (let i = 0; i < k; i++) {
      if (uffd.copy(base + i * PAGE, runBuf, i * PAGE, COPY_WP) >= 0) continue;
      for (let j = i; j < k; j++) publish(r.state, q + j, STORED);
      k = i;
      run.stopped = true;
      break;
    }
  }
  for (let i = 0; i < k; i++) {
    storedLeaves(r, q + i);
    becomeResident(r, q + i, CLEAN);
    G[P.G_FAULTS_POOL]++;
    r.stats[P.R_FAULTS_POOL]++;
    G[P.G_POOL_READAHEAD]++; // last: whoever sees it counted sees the page resident
  }
  return k;
}
