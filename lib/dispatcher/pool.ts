/**
 * The persistent pool (frontswap) as eviction sees it: the accounting of the
 * pages it holds and the zswap accept threshold.
 *
 *   a STORED page      one pool object (region id, page); G_STORED, R_STORED;
 *                      counted idle (G_IDLE) once aux has IDLE_SEEN
 *   RegionState.flags  RAW: its object is stored raw (G_HUGE)
 *   a CLEAN anon page  keeps its pool object (or its swap slot, KEPT_SLOT): evicting
 *                      it again costs nothing; a write drops the copy (dropCleanCopy)
 *   accept threshold   poolFull(): over poolLimitBytes the pool refuses stores until
 *                      it is back under acceptThresholdPercent of it (poolState.refusing)
 */
import { isRaw, PAGE } from '../compress';
import * as P from './protocol';
import { G, opts, backends } from './env';
import { STORED, IDLE_SEEN, KEPT_SLOT, SLOT_MASK, publish } from './pagestate';
import { RAW, type RegionState } from './regions';
import { storedPush } from './reclaim';
import { swap } from './writeback';

/** `refusing`: zswap's accept-threshold hysteresis (refuse until below the threshold). */
export const poolState = { refusing: false };

/**
 * A stored page leaves the pool's counts (its object is dropped or replaced by the caller).
 * `aux`: its aux word as a STORED page (given when the page has left the state already).
 */
export function storedLeaves(r: RegionState, page: number, aux = r.aux[page]): void {
  if (aux & IDLE_SEEN) G[P.G_IDLE]--;
  G[P.G_STORED]--;
  r.stats[P.R_STORED]--;
}

/** The page was written: its compressed copy is stale (frontswap_invalidate_page). */
export function dropPoolCopy(r: RegionState, page: number): void {
  backends.frontswap.invalidatePage(r.id, page);
  poolObjectGone(r, page);
}

/** The page's object in the persistent pool is now `len` bytes long (hugePages counts the raw ones). */
export function poolObjectIs(r: RegionState, page: number, len: number): void {
  const raw = isRaw(len) ? RAW : 0;
  G[P.G_HUGE] += (raw - (r.flags[page] & RAW)) / RAW;
  r.flags[page] = (r.flags[page] & ~RAW) | raw;
}

/** The page has no object in the persistent pool any more. */
export function poolObjectGone(r: RegionState, page: number): void {
  if (r.flags[page] & RAW) G[P.G_HUGE]--;
  r.flags[page] &= ~RAW;
}

/**
 * A clean page (r.aux[page] as a CLEAN page's) is written or gone: its copy is
 * stale. Anon: the kept swap file slot is freed, else the pool's copy dropped;
 * a file page's copy is the file itself. `aux`: that word when the page's own aux is no
 * longer it (a served record of the native path: left as it is).
 */
export function dropCleanCopy(r: RegionState, page: number, aux?: number): void {
  const a = aux ?? r.aux[page];
  if (aux === undefined) r.aux[page] = 0;
  if (a & KEPT_SLOT) {
    swap!.freeSlot(a & SLOT_MASK);
    G[P.G_SWAP_PAGES] = swap!.usedCount;
    G[P.G_SWAP_CACHED]--;
  } else if (!r.isFile) {
    dropPoolCopy(r, page);
  }
}

/** A clean anon page's kept pool copy is now the page (it left residency): frontswap holds it. */
export function cleanCopyStored(r: RegionState, page: number): void {
  storedPush(r, page); // its aux: the store time
  publish(r.state, page, STORED);
  G[P.G_STORED]++;
  r.stats[P.R_STORED]++;
  G[P.G_EVICT_NO_COMPRESS]++;
}

/** A page just stored (its object `len` bytes): counted in the pool. */
export function nowStored(r: RegionState, page: number, len: number): void {
  poolObjectIs(r, page, len);
  storedPush(r, page); // its aux: the store time
  publish(r.state, page, STORED);
  G[P.G_STORED]++;
  r.stats[P.R_STORED]++;
}

/** zswap's max_pool_percent with accept_thr_percent hysteresis. */
export function poolFull(): boolean {
  const used = backends.poolBytes();
  if (poolState.refusing) {
    if (used >= (opts.poolLimitBytes * opts.acceptThresholdPercent) / 100) return true;
    poolState.refusing = false;
    G[P.G_POOL_ACCEPT_COUNT]++; // for the main thread's 'poolAccepting' event
  }
  if (used + 2 * PAGE > opts.poolLimitBytes) {
    poolState.refusing = true;
    G[P.G_POOL_FULL_COUNT]++; // for the main thread's 'poolFull' event
    return true;
  }
  return false;
}
