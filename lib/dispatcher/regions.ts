/**
 * The regions the dispatcher serves, and their per-page state.
 *
 *   RegionState (one per region, by id in `byId`, by address in `regions`)
 *     spec            the RegionSpec from the main thread (address, size, kind, ...)
 *     state[pages]    Uint8   page state, over a SharedArrayBuffer (pagestate.ts)
 *     aux[pages]      Uint32  the state's word, over a SharedArrayBuffer (pagestate.ts)
 *     seq[pages]      Int32   FIFO stamp: a FIFO entry is live iff it carries this stamp
 *     flags[pages]    Uint8   RAW (its pool object is stored raw: G_HUGE),
 *                             ASIDE (set aside by eviction: G_UNEVICTABLE)
 *     stats           Float64Array over the region's R_* counters (shared with the main thread)
 *     file regions:   FileIo handle, reads/writes in flight, write errors, generations
 *
 *   regions[]   sorted by base address (binary search; lookup.last caches the last hit)
 *
 * releaseRegion() is frontswap's invalidate_area / cleancache's invalidate_inode:
 * every staged page, pool object and swap slot of the region goes.
 */
import * as fs from 'node:fs';
import { PAGE } from '../compress';
import * as P from './protocol';
import { G, backends } from './env';
import {
  ACTIVE,
  CLEAN,
  STORED,
  SAME,
  SWAPPED,
  REMOTE,
  READING,
  BUSY,
  KEPT_SLOT,
  SLOT_MASK,
  pageStateArrays,
  isFast,
} from './pagestate';
import { S, ring, slotRegion, slotKept, queueRelease, flushReleases } from './staging';
import { residency } from './reclaim';
import { storedLeaves } from './pool';
import { swap, wb, flushWriteback } from './writeback';
import { rekey } from './shared';
import { fileIo, forgetReads } from './files';
import { regionGone as remoteRegionGone } from './remote';
import { nativeAdd, nativeRemove } from './native-faults';

/** RegionState.flags */
export const RAW = 1,
  ASIDE = 2;

/** A file page being read on the FileIo reader thread (state READING). */
export interface ReadJob {
  id: number;
  r: RegionState;
  page: number;
  write: boolean;
}

export class RegionState {
  readonly pages: number;
  readonly state: Uint8Array;
  readonly aux: Uint32Array;
  readonly seq: Int32Array;
  /** Per page: RAW (its persistent pool object is stored raw, counted in G_HUGE), ASIDE (counted in G_UNEVICTABLE). */
  readonly flags: Uint8Array;
  readonly stats: Float64Array;
  closed = false;
  lastSwapIn = -2;
  /** Pool readahead (readahead.ts): the page a sequential run faults on next, and the window. */
  raNext = -1;
  raWindow = 0;
  // Mapped files only:
  /** FileIo handle of the file (a dup of spec.fd). */
  file = -1;
  /** preadv2(RWF_NOWAIT) works on this file: page-cache hits are read inline. */
  nowait = true;
  /** page -> the newest write job of that page still in flight. */
  readonly inflight = new Map<number, number>();
  /** page -> its read in flight (state READING). */
  readonly reads = new Map<number, ReadJob>();
  /** Write-backs that failed, and the last failure. */
  writeErrors = 0;
  lastWriteError?: { errno: number; syscall: string };
  /** After a failed write-back, eviction leaves the dirty pages alone until then (ms). */
  writeBackoffUntil = 0;
  /** The file's generation (FileIo.generation) that cleancache's pages belong to, and when it was checked. */
  gen = 0;
  genEpoch = -1;
  /** The generation each resident page was read at: only a page as new as the file goes to cleancache. */
  readonly loadGen: Uint32Array;
  /** The file's key in the shared pool (shared.ts), 0/0 when its pages stay private. */
  shareLo = 0;
  shareHi = 0;
  constructor(readonly spec: P.RegionSpec) {
    this.pages = spec.size / PAGE;
    const { state, aux } = pageStateArrays(this.pages);
    this.state = state;
    this.aux = aux;
    this.seq = new Int32Array(this.pages);
    this.flags = new Uint8Array(this.pages);
    this.stats = new Float64Array(spec.stats);
    this.loadGen = new Uint32Array(spec.kind === 'file' ? this.pages : 0);
  }
  get base(): number {
    return this.spec.address;
  }
  get id(): number {
    return this.spec.id;
  }
  get isFile(): boolean {
    return this.spec.kind === 'file';
  }
  /** What native code needs to serve this region's fast pages (pagestate.ts). */
  share(): RegionShare {
    return {
      id: this.id,
      base: this.base,
      pages: this.pages,
      isFile: this.isFile,
      state: this.state.buffer as SharedArrayBuffer,
      aux: this.aux.buffer as SharedArrayBuffer,
    };
  }
}

/** A region's page state as native code sees it: state (1 byte per page) and aux (1 word per page) SharedArrayBuffers. */
export interface RegionShare {
  id: number;
  base: number;
  pages: number;
  isFile: boolean;
  state: SharedArrayBuffer;
  aux: SharedArrayBuffer;
}

/** Every open region, sorted by base address. */
export const regions: RegionState[] = [];
export const byId = new Map<number, RegionState>();
const lookup: { last: RegionState | undefined } = { last: undefined };

/** The region holding `addr`, if any. */
export function findRegion(addr: number): RegionState | undefined {
  const l = lookup.last;
  if (l && addr >= l.base && addr < l.base + l.spec.size && !l.closed) return l;
  // regions[] is sorted by base address: binary search for the last base <= addr.
  let lo = 0,
    hi = regions.length - 1,
    found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (regions[mid].base <= addr) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (found < 0) return undefined;
  const r = regions[found];
  if (addr >= r.base + r.spec.size) return undefined;
  lookup.last = r;
  return r;
}

/** Adds a region (addRegion): a region it overlaps that was never released is forgotten first. */
export function addRegion(spec: P.RegionSpec): RegionState {
  dropOverlapping(spec);
  const r = new RegionState(spec);
  if (r.isFile) {
    r.file = fileIo().openFile(spec.fd!);
    r.gen = fileIo().generation(r.file);
    rekey(r, () => fileIo().identityKey(r.file));
  }
  let at = regions.length;
  while (at > 0 && regions[at - 1].base > r.base) at--;
  regions.splice(at, 0, r); // kept sorted by base address
  byId.set(r.id, r);
  nativeAdd(r);
  return r;
}

/** Frees a region: its staged pages and pool entries go (frontswap invalidate_area, cleancache invalidate_inode). */
export function releaseRegion(r: RegionState): void {
  nativeRemove(r); // first: no native thread serves its pages once this returns
  if (wb.count > 0) flushWriteback(); // its pages queued there are claimed (BUSY) until settled
  // Staged pages of this region are dropped with their slots.
  for (let i = 0, slot = ring.head; i < ring.used; i++, slot = (slot + 1) % S) {
    if (slotRegion[slot] === r.id) {
      slotRegion[slot] = -1;
      if (slotKept[slot] >= 0) {
        swap!.freeSlot(slotKept[slot]);
        G[P.G_SWAP_CACHED]--;
        slotKept[slot] = -1;
      }
      ring.staged--;
      residency.resident--;
      queueRelease(slot);
    }
  }
  flushReleases();
  for (let page = 0; page < r.pages; page++) {
    const st = claimForRelease(r, page);
    if (r.flags[page] & RAW) G[P.G_HUGE]--; // invalidateArea below drops every pool object
    if (r.flags[page] & ASIDE) G[P.G_UNEVICTABLE]--;
    if (st === ACTIVE || st === CLEAN) {
      residency.resident--;
      if (st === CLEAN && r.aux[page] & KEPT_SLOT) {
        swap!.freeSlot(r.aux[page] & SLOT_MASK);
        G[P.G_SWAP_CACHED]--;
      }
    } else if (st === STORED) storedLeaves(r, page);
    else if (st === SAME) G[P.G_SAME]--;
    else if (st === SWAPPED || st === REMOTE) swap!.freeSlot(r.aux[page]);
    else if (st === READING && !r.isFile) swap!.freeSlot(r.aux[page]); // a remote fault in flight (remote.ts)
  }
  remoteRegionGone(r); // its REMOTE pages' keys

  G[P.G_SWAP_PAGES] = swap ? swap.usedCount : 0;
  G[P.G_RESIDENT] = residency.resident;
  G[P.G_STAGED] = ring.staged;
  // frontswap's invalidate_area / cleancache's invalidate_inode
  backends.frontswap.invalidateArea(r.id);
  if (r.isFile) {
    backends.cleancache.invalidateInode(r.id);
    // Reads still in flight finish on their own and are dropped (r.closed); the
    // descriptor FileIo holds is closed when the last of them is done.
    if (r.file >= 0) fileIo().closeFile(r.file);
    forgetReads(r);
  }
  r.closed = true;
  byId.delete(r.id);
  regions.splice(regions.indexOf(r), 1);
  if (lookup.last === r) lookup.last = undefined;
}

/**
 * The state of a page of a region being released; a fast page is left BUSY (claimed for
 * good), so no native thread serves it again. A page BUSY now is being served by a native
 * thread (for a few microseconds): wait for it.
 */
function claimForRelease(r: RegionState, page: number): number {
  for (let spins = 0; ; spins++) {
    const st = Atomics.load(r.state, page);
    if (st === BUSY) {
      if (spins > 1e8)
        throw new Error(`tmem: region ${r.id} page ${page} stayed claimed (BUSY) while the region was released`);
      continue;
    }
    if (!isFast(st, r.isFile) || Atomics.compareExchange(r.state, page, st, BUSY) === st) return st;
  }
}

/** A new region overlaps one that was never released (its memory was unmapped without a close): forget the old one. */
function dropOverlapping(spec: P.RegionSpec): void {
  for (const old of [...regions]) {
    if (old.base < spec.address + spec.size && spec.address < old.base + old.spec.size) {
      fs.writeSync(
        2,
        `tmem: region ${old.id} was unmapped without being closed; region ${spec.id} now uses its memory\n`,
      );
      releaseRegion(old);
    }
  }
}

/** Every open region's page state as native code needs it (RegionState.share()). */
export function regionShares(): RegionShare[] {
  return regions.map((r) => r.share());
}
