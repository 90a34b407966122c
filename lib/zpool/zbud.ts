/*
 * zbud: at most two compressed objects ("buddies") per 4 KiB frame, after the kernel's
 * mm/zbud.c (written from its documented design, not its code).
 *
 * A frame is cut into 64 chunks of 64 B. The first buddy is placed from the left end, the
 * last buddy ends at the right end; the space between them is free. Unlike the kernel, no
 * header is kept inside the frame (all metadata is in the meta SAB), so all 64 chunks hold data
 * and two objects of up to 2048 B each fit in one frame.
 *
 *   frame: | first buddy (FIRST chunks) ->       free       <- last buddy (LAST chunks) |
 *          0                                                                        4096
 *
 * Meta SharedArrayBuffer (Int32 words), so every Worker opening the pool sees the same state:
 *
 *   +--------+----------------------------+--------------------------------------------+
 *   | header | unbuddied list heads [64]  | zbud page records, maxPages x 16 words      |
 *   | 64 w   | index = free chunks 1..63  | PFN FIRST LAST FSIZE LSIZE LRU_PREV LRU_NEXT|
 *   |        |                            | BUD_PREV BUD_NEXT BUD_LIST FT0 FT1 LT0 LT1   |
 *   +--------+----------------------------+--------------------------------------------+
 *   handle = page record * 2 + (0 first | 1 last) + 1
 *
 * Invariants (under ALLOC): a page record in use holds one or two objects, never zero (an
 * emptied frame goes back to the arena at once) and never more than two; a page with exactly
 * one object is on the unbuddied list indexed by its free chunks (64 - used chunks) unless that
 * is 0; a page with two objects is on no unbuddied list; every page in use is on the LRU list,
 * most recently allocated at the head. Allocation takes the unbuddied page with the fewest free
 * chunks that still fit (best fit), else a new frame.
 *
 * Reclaim (`shrink`): walk the LRU from the tail; for each object call `evict(handle, tag0,
 * tag1)` with the tags the owner set by `setTag` (untagged objects are skipped); when it
 * returns true the owner has dropped the object and zbud frees it; a frame whose objects all go
 * is returned to the arena. Lock order: ALLOC -> (owner locks taken in evict) -> arena lock.
 */

import { Arena, FRAME_SIZE, copyIn, copyOut } from '../arena';
import { lock, unlock } from '../tmem/lock';
import type { Zpool, ZpoolDriver, ZpoolHandle, ZpoolOptions, ZpoolStats, EvictFn } from './index';
import { checkSize, positiveInt } from './common';

const MAGIC = 0x5a425544; // 'ZBUD'
const H_MAGIC = 0,
  H_ALLOC = 1,
  H_PFREE = 2,
  H_PBUMP = 3,
  H_FRAMES = 4,
  H_OBJECTS = 5,
  H_MAXP = 6,
  H_MAXF = 7,
  H_LRU_HEAD = 8,
  H_LRU_TAIL = 9,
  H_EVICTED = 10,
  H_RECLAIMED = 11,
  H_REFUSED = 12,
  H_BUDDIED = 13;
const H_BYTES_F64 = 16;
const HDR = 64;
/** Bytes per zbud chunk. */
export const ZBUD_CHUNK = 64;
const NCHUNKS = FRAME_SIZE / ZBUD_CHUNK; // 64
const UNB = HDR;
const PR = UNB + NCHUNKS;
const PW = 16;
const P_PFN = 0,
  P_FIRST = 1,
  P_LAST = 2,
  P_FSIZE = 3,
  P_LSIZE = 4,
  P_LPREV = 5,
  P_LNEXT = 6,
  P_BPREV = 7,
  P_BNEXT = 8,
  P_BLIST = 9,
  P_FT0 = 10,
  P_FT1 = 11,
  P_LT0 = 12,
  P_LT1 = 13,
  P_LIVE = 14;

/** One thread's view of a zbud pool. */
export class Zbud implements Zpool {
  readonly driver = 'zbud';
  readonly arena: Arena;
  evict?: EvictFn;
  mapBytes: Uint8Array;
  mapOffset = 0;
  private readonly m: Int32Array;
  private readonly f: Float64Array;
  private readonly meta: SharedArrayBuffer;

  constructor(arena: Arena, meta: SharedArrayBuffer, init: boolean, opts: ZpoolOptions) {
    this.arena = arena;
    this.meta = meta;
    this.m = new Int32Array(meta);
    this.f = new Float64Array(meta, 0, HDR / 2);
    this.mapBytes = arena.bytes[0];
    const m = this.m;
    if (init) {
      m[H_MAXP] = Math.min(arena.maxFrames, 0x3fffffff);
      m[H_MAXF] = positiveInt('maxFrames', opts.maxFrames ?? arena.maxFrames);
      this.clearState();
      Atomics.store(m, H_MAGIC, MAGIC);
    } else if (Atomics.load(m, H_MAGIC) !== MAGIC) {
      throw new TypeError('handle: meta buffer is not a zbud pool');
    }
  }

  private clearState(): void {
    const m = this.m;
    m[H_PFREE] = -1;
    m[H_PBUMP] = 0;
    m[H_FRAMES] = 0;
    m[H_OBJECTS] = 0;
    m[H_LRU_HEAD] = -1;
    m[H_LRU_TAIL] = -1;
    m[H_BUDDIED] = 0;
    m[H_EVICTED] = 0;
    m[H_RECLAIMED] = 0;
    m[H_REFUSED] = 0;
    this.f[H_BYTES_F64] = 0;
    m.fill(-1, UNB, UNB + NCHUNKS);
  }

  // ---- lists (ALLOC held) ----
  private lruDel(p: number): void {
    const m = this.m,
      r = PR + p * PW;
    const prev = m[r + P_LPREV],
      next = m[r + P_LNEXT];
    if (prev >= 0) m[PR + prev * PW + P_LNEXT] = next;
    else m[H_LRU_HEAD] = next;
    if (next >= 0) m[PR + next * PW + P_LPREV] = prev;
    else m[H_LRU_TAIL] = prev;
  }

  private lruPush(p: number): void {
    const m = this.m,
      r = PR + p * PW;
    const head = m[H_LRU_HEAD];
    m[r + P_LPREV] = -1;
    m[r + P_LNEXT] = head;
    if (head >= 0) m[PR + head * PW + P_LPREV] = p;
    else m[H_LRU_TAIL] = p;
    m[H_LRU_HEAD] = p;
  }

  private budDel(p: number): void {
    const m = this.m,
      r = PR + p * PW;
    const l = m[r + P_BLIST];
    if (l < 0) return;
    const prev = m[r + P_BPREV],
      next = m[r + P_BNEXT];
    if (prev >= 0) m[PR + prev * PW + P_BNEXT] = next;
    else m[UNB + l] = next;
    if (next >= 0) m[PR + next * PW + P_BPREV] = prev;
    m[r + P_BLIST] = -1;
  }

  private budAdd(p: number, freeChunks: number): void {
    const m = this.m,
      r = PR + p * PW;
    const head = m[UNB + freeChunks];
    m[r + P_BLIST] = freeChunks;
    m[r + P_BPREV] = -1;
    m[r + P_BNEXT] = head;
    if (head >= 0) m[PR + head * PW + P_BPREV] = p;
    m[UNB + freeChunks] = p;
  }

  /** Allocate `size` (1..4096) bytes; returns a handle, or 0 when the pool or arena is full. */
  malloc(size: number): number {
    checkSize(size);
    const chunks = (size + ZBUD_CHUNK - 1) >>> 6;
    const m = this.m;
    lock(m, H_ALLOC);
    try {
      let p = -1;
      if (chunks < NCHUNKS) {
        for (let i = chunks; i < NCHUNKS; i++) {
          if (m[UNB + i] >= 0) {
            p = m[UNB + i];
            break;
          }
        }
      }
      let side: number;
      if (p >= 0) {
        const r = PR + p * PW;
        this.budDel(p);
        this.lruDel(p);
        side = m[r + P_FIRST] === 0 ? 0 : 1;
        m[H_BUDDIED]++;
      } else {
        if (m[H_FRAMES] >= m[H_MAXF]) {
          m[H_REFUSED]++;
          return 0;
        }
        p = m[H_PFREE];
        if (p < 0 && m[H_PBUMP] >= m[H_MAXP]) {
          m[H_REFUSED]++;
          return 0;
        }
        const pfn = this.arena.alloc();
        if (pfn < 0) {
          m[H_REFUSED]++;
          return 0;
        }
        if (p >= 0) m[H_PFREE] = m[PR + p * PW + P_LNEXT];
        else p = m[H_PBUMP]++;
        const r = PR + p * PW;
        m[r + P_PFN] = pfn;
        m[r + P_FIRST] = 0;
        m[r + P_LAST] = 0;
        m[r + P_FSIZE] = 0;
        m[r + P_LSIZE] = 0;
        m[r + P_BLIST] = -1;
        m[r + P_LIVE] = 1;
        m[H_FRAMES]++;
        side = 0;
      }
      const r = PR + p * PW;
      if (side === 0) {
        m[r + P_FIRST] = chunks;
        m[r + P_FSIZE] = size;
        m[r + P_FT0] = -1;
        m[r + P_FT1] = -1;
      } else {
        m[r + P_LAST] = chunks;
        m[r + P_LSIZE] = size;
        m[r + P_LT0] = -1;
        m[r + P_LT1] = -1;
      }
      const used = m[r + P_FIRST] + m[r + P_LAST];
      if ((m[r + P_FIRST] === 0 || m[r + P_LAST] === 0) && used < NCHUNKS) this.budAdd(p, NCHUNKS - used);
      this.lruPush(p);
      m[H_OBJECTS]++;
      this.f[H_BYTES_F64] += size;
      return p * 2 + side + 1;
    } finally {
      unlock(m, H_ALLOC);
    }
  }

  /** Record of a live handle, validated; sets nothing. */
  private rec(handle: number): number {
    const p = (handle - 1) >>> 1;
    const r = PR + p * PW;
    if (
      !Number.isInteger(handle) ||
      handle < 1 ||
      p >= this.m[H_PBUMP] ||
      this.m[r + P_LIVE] !== 1 ||
      this.m[r + (((handle - 1) & 1) === 0 ? P_FIRST : P_LAST)] === 0
    ) {
      throw new RangeError(`handle: expected a live zbud handle, got ${handle}`);
    }
    return r;
  }

  /** Free one buddy (ALLOC held, handle valid). */
  private freeLocked(handle: number): void {
    const m = this.m;
    const p = (handle - 1) >>> 1,
      r = PR + p * PW;
    let size: number;
    if (((handle - 1) & 1) === 0) {
      size = m[r + P_FSIZE];
      m[r + P_FIRST] = 0;
      m[r + P_FSIZE] = 0;
    } else {
      size = m[r + P_LSIZE];
      m[r + P_LAST] = 0;
      m[r + P_LSIZE] = 0;
    }
    m[H_OBJECTS]--;
    this.f[H_BYTES_F64] -= size;
    this.budDel(p);
    const used = m[r + P_FIRST] + m[r + P_LAST];
    if (used === 0) {
      this.lruDel(p);
      this.arena.free(m[r + P_PFN]);
      m[r + P_LIVE] = 0;
      m[H_FRAMES]--;
      m[r + P_LNEXT] = m[H_PFREE];
      m[H_PFREE] = p;
    } else {
      m[H_BUDDIED]--;
      this.budAdd(p, NCHUNKS - used);
    }
  }

  /** Free an object; throws RangeError for a handle that is not live. */
  free(handle: number): void {
    const m = this.m;
    lock(m, H_ALLOC);
    try {
      this.rec(handle);
      this.freeLocked(handle);
    } finally {
      unlock(m, H_ALLOC);
    }
  }

  /** Requested size of a live object. */
  size(handle: number): number {
    const r = this.rec(handle);
    return this.m[r + (((handle - 1) & 1) === 0 ? P_FSIZE : P_LSIZE)];
  }

  /** Frame and byte offset of a live object: sets mapBytes/mapOffset; returns its size. */
  locate(handle: number): number {
    const m = this.m;
    const r = this.rec(handle);
    const pfn = m[r + P_PFN];
    const a = this.arena;
    const first = ((handle - 1) & 1) === 0;
    this.mapBytes = a.bytes[pfn >>> a.chunkShift];
    this.mapOffset = a.offsetOf(pfn) + (first ? 0 : FRAME_SIZE - m[r + P_LAST] * ZBUD_CHUNK);
    return m[r + (first ? P_FSIZE : P_LSIZE)];
  }

  /** Copy `len` bytes of `src` from `srcOff` into the object. */
  write(handle: number, src: Uint8Array, srcOff: number, len: number): void {
    const m = this.m;
    const r = this.rec(handle);
    const first = ((handle - 1) & 1) === 0;
    const size = m[r + (first ? P_FSIZE : P_LSIZE)];
    if (!(len >= 0 && len <= size) || !(srcOff >= 0) || srcOff + len > src.length) {
      throw new RangeError(`len: expected 0..${size} bytes inside src, got srcOff ${srcOff} len ${len}`);
    }
    copyIn(this.arena, m[r + P_PFN], first ? 0 : FRAME_SIZE - m[r + P_LAST] * ZBUD_CHUNK, src, srcOff, len);
  }

  /** Copy the object into `dst` at `dstOff`; returns its size. */
  read(handle: number, dst: Uint8Array, dstOff: number): number {
    const m = this.m;
    const r = this.rec(handle);
    const first = ((handle - 1) & 1) === 0;
    const size = m[r + (first ? P_FSIZE : P_LSIZE)];
    if (!(dstOff >= 0) || dstOff + size > dst.length)
      throw new RangeError(`dst: needs ${size} bytes from dstOff ${dstOff}`);
    copyOut(this.arena, m[r + P_PFN], first ? 0 : FRAME_SIZE - m[r + P_LAST] * ZBUD_CHUNK, dst, dstOff, size);
    return size;
  }

  /** View of the object (always contiguous, zero-copy). */
  map(handle: number): Uint8Array {
    const len = this.locate(handle);
    return this.mapBytes.subarray(this.mapOffset, this.mapOffset + len);
  }

  /** End a `map` (nothing to do: objects never move). */
  unmap(handle: number): void {
    this.rec(handle);
  }

  /** zbud objects never move: no-op. */
  pin(): void {
    /* nothing moves */
  }
  /** No-op. */
  unpin(): void {
    /* nothing moves */
  }

  /** Tag an object with two owner words, passed to `evict` on reclaim (-1 = untagged). */
  setTag(handle: number, tag0: number, tag1: number): void {
    const r = this.rec(handle);
    const first = ((handle - 1) & 1) === 0;
    Atomics.store(this.m, r + (first ? P_FT1 : P_LT1), tag1);
    Atomics.store(this.m, r + (first ? P_FT0 : P_LT0), tag0);
  }

  /**
   * Reclaim up to `pages` frames from the LRU tail through `evict`; returns frames freed.
   * Frames whose objects cannot all be evicted go back to the LRU head.
   */
  shrink(pages: number): number {
    if (!Number.isInteger(pages) || pages < 0)
      throw new RangeError(`pages: expected a non-negative integer, got ${pages}`);
    const m = this.m;
    const ev = this.evict;
    if (!ev) return 0;
    lock(m, H_ALLOC);
    let freed = 0;
    try {
      let tries = m[H_FRAMES];
      while (freed < pages && tries-- > 0) {
        const p = m[H_LRU_TAIL];
        if (p < 0) break;
        const r = PR + p * PW;
        for (let side = 0; side < 2; side++) {
          if (m[r + (side === 0 ? P_FIRST : P_LAST)] === 0) continue;
          const t0 = Atomics.load(m, r + (side === 0 ? P_FT0 : P_LT0));
          const t1 = Atomics.load(m, r + (side === 0 ? P_FT1 : P_LT1));
          if (t0 < 0) continue;
          const h = p * 2 + side + 1;
          if (ev(h, t0, t1)) {
            m[H_EVICTED]++;
            this.freeLocked(h);
            if (m[r + P_LIVE] === 0) break;
          }
        }
        if (m[r + P_LIVE] === 0) {
          freed++;
          m[H_RECLAIMED]++;
        } else {
          this.lruDel(p);
          this.lruPush(p);
        }
      }
    } finally {
      unlock(m, H_ALLOC);
    }
    return freed;
  }

  /** zbud does not compact; returns 0. */
  compact(): number {
    return 0;
  }

  /** Arena bytes held. */
  totalSize(): number {
    return Atomics.load(this.m, H_FRAMES) * FRAME_SIZE;
  }

  /** Set the most frames this pool may hold. */
  setMaxFrames(n: number): void {
    Atomics.store(this.m, H_MAXF, positiveInt('n', n));
  }

  /** Figures: frames with two objects (buddied) and one (unbuddied), evictions. */
  stats(): ZpoolStats {
    const m = this.m;
    lock(m, H_ALLOC);
    try {
      return {
        driver: 'zbud',
        objects: m[H_OBJECTS],
        bytesStored: this.f[H_BYTES_F64],
        frames: m[H_FRAMES],
        totalBytes: m[H_FRAMES] * FRAME_SIZE,
        buddied: m[H_BUDDIED],
        unbuddied: m[H_FRAMES] - m[H_BUDDIED],
        evicted: m[H_EVICTED],
        reclaimedFrames: m[H_RECLAIMED],
        refused: m[H_REFUSED],
      };
    } finally {
      unlock(m, H_ALLOC);
    }
  }

  /** Check the invariants (tests): every live frame holds 1 or 2 objects and list membership is right. */
  check(): void {
    const m = this.m;
    lock(m, H_ALLOC);
    try {
      let frames = 0,
        objs = 0,
        two = 0;
      for (let p = 0; p < m[H_PBUMP]; p++) {
        const r = PR + p * PW;
        if (m[r + P_LIVE] !== 1) continue;
        frames++;
        const n = (m[r + P_FIRST] > 0 ? 1 : 0) + (m[r + P_LAST] > 0 ? 1 : 0);
        if (n < 1 || n > 2) throw new Error(`zbud: frame record ${p} holds ${n} objects`);
        if (m[r + P_FIRST] + m[r + P_LAST] > NCHUNKS) throw new Error(`zbud: frame record ${p} overfull`);
        const free = NCHUNKS - m[r + P_FIRST] - m[r + P_LAST];
        const want = n === 1 && free > 0 ? free : -1;
        if (m[r + P_BLIST] !== want)
          throw new Error(`zbud: frame record ${p} on unbuddied list ${m[r + P_BLIST]}, want ${want}`);
        objs += n;
        if (n === 2) two++;
      }
      if (frames !== m[H_FRAMES] || objs !== m[H_OBJECTS] || two !== m[H_BUDDIED]) {
        throw new Error(`zbud: counters frames ${m[H_FRAMES]}/${frames} objects ${m[H_OBJECTS]}/${objs}`);
      }
      let n = 0;
      for (let p = m[H_LRU_HEAD]; p >= 0; p = m[PR + p * PW + P_LNEXT]) n++;
      if (n !== frames) throw new Error(`zbud: LRU holds ${n} of ${frames} frames`);
    } finally {
      unlock(m, H_ALLOC);
    }
  }

  /** Free every object and frame. */
  reset(): void {
    const m = this.m;
    lock(m, H_ALLOC);
    try {
      for (let p = 0; p < m[H_PBUMP]; p++) {
        const r = PR + p * PW;
        if (m[r + P_LIVE] === 1) this.arena.free(m[r + P_PFN]);
      }
      m.fill(0, PR, PR + m[H_PBUMP] * PW);
      this.clearState();
    } finally {
      unlock(m, H_ALLOC);
    }
  }

  /** Handle for `attachZpool`. */
  handle(): ZpoolHandle {
    return { driver: 'zbud', meta: this.meta };
  }
}

/** The zbud zpool driver. */
export const zbudDriver: ZpoolDriver = {
  name: 'zbud',
  metaBytes: (arena) => (PR + Math.min(arena.maxFrames, 0x3fffffff) * PW) * 4,
  open: (arena, meta, init, opts) => new Zbud(arena, meta, init, opts),
};
