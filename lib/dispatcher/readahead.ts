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
 *     sequential                window = min(2 * window, MAX_WINDOW) (first: 2)
 *     not sequential            window = 0 (no readahead)
 *   then pages p+1 .. p+window  while each can be claimed from STORED or SAME
 *                               (pagestate.ts's BUSY protocol): STORED: decode +
 *                               UFFDIO_COPY(WP, DONTWAKE) -> CLEAN; SAME: fill + COPY -> ACTIVE;
 *                               stops at the first page in another state (or BUSY)
 *   r.raNext = p + 1 + pages read ahead
 *
 * As the kernel's pswpin counts readahead, faults.pool (faults.same) counts
 * every page loaded from the pool (refilled), by a fault or ahead of one;
 * stats().poolReadahead counts those read ahead.
 */
import { COPY_DONTWAKE, COPY_WP } from '../native';
import { PAGE } from '../compress';
import * as P from './protocol';
import { G, uffd, backends, codec, objBuf, pageBuf, pageWords, nativeDecode } from './env';
import { STORED, SAME, CLEAN, ACTIVE, claim, publish } from './pagestate';
import type { RegionState } from './regions';
import { becomeResident } from './reclaim';
import { storedLeaves } from './pool';

/** Most pages read ahead of one fault. */
export const MAX_WINDOW = 32;

/** Called after a fault on stored or same-filled page `page` of anon region `r` was served. */
export function readAhead(r: RegionState, page: number): void {
  if (page !== r.raNext) {
    r.raWindow = 0;
    r.raNext = page + 1;
    return;
  }
  r.raWindow = r.raWindow === 0 ? 2 : Math.min(2 * r.raWindow, MAX_WINDOW);
  let q = page + 1;
  const end = Math.min(r.pages, q + r.raWindow);
  for (; q < end; q++) {
    const st = r.state[q];
    if ((st !== STORED && st !== SAME) || !claim(r.state, q, st)) break;
    if (st === SAME) {
      pageWords.fill(r.aux[q]);
      if (uffd.copy(r.base + q * PAGE, pageBuf, 0, COPY_DONTWAKE) < 0) {
        publish(r.state, q, SAME); // unclaimed as it was: its fault will serve it
        break;
      }
      G[P.G_SAME]--;
      r.stats[P.R_SAME]--;
      becomeResident(r, q, ACTIVE);
      G[P.G_FAULTS_SAME]++;
      r.stats[P.R_FAULTS_SAME]++;
    } else {
      if (!copyInAhead(r, q)) {
        publish(r.state, q, STORED);
        break;
      }
      storedLeaves(r, q);
      becomeResident(r, q, CLEAN);
      G[P.G_FAULTS_POOL]++;
      r.stats[P.R_FAULTS_POOL]++;
    }
    G[P.G_POOL_READAHEAD]++; // last: whoever sees it counted sees the page resident
  }
  r.raNext = q;
}

/** Decodes stored page q and copies it in write-protected; false if it could not be (stop the run). */
function copyInAhead(r: RegionState, q: number): boolean {
  const fsw = backends.frontswap;
  const addr = r.base + q * PAGE;
  let res: number;
  if (nativeDecode) {
    const n = fsw.view(r.id, q);
    if (n < 0) return false;
    res = uffd.copyObject(addr, fsw.viewBytes, fsw.viewOffset, n, COPY_WP | COPY_DONTWAKE);
  } else {
    const n = fsw.load(r.id, q, objBuf);
    if (n < 0) return false;
    codec.decompress(objBuf, 0, n, pageBuf, 0);
    res = uffd.copy(addr, pageBuf, 0, COPY_WP | COPY_DONTWAKE);
  }
  return res >= 0;
}
