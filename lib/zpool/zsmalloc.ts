/*
 * zsmalloc: a size-class allocator for compressed pages on the shared Arena, after the
 * kernel's mm/zsmalloc.c (written from its documented design, not its code).
 *
 * Size classes run from 32 B to 4096 B in 16 B steps (255 classes). For each class the number
 * of frames chained into one *zspage* (1..8) is the one that wastes least of the zspage; classes
 * that end up with the same geometry (frames per zspage, objects per zspage) are merged into
 * the largest of them, so e.g. every size above ~3.3 KiB shares the 4096 B "huge" class where
 * each object owns a whole frame (raw storage of pages too big to gain).
 *
 * A zspage's frames are taken as one contiguous run when the arena has one, so most objects
 * that straddle a frame boundary are still contiguous in memory and `locate`/`map` are
 * zero-copy; otherwise the straddling object is copied through the pool's scratch buffer.
 *
 *   zspage of class 1168 B, 2 frames (7 objects, 8192 - 7*1168 = 16 B wasted):
 *   frame pfn[0]                         frame pfn[1]
 *   +-------+-------+-------+-------+----+---+-------+-------+-------+--+
 *   | obj 0 | obj 1 | obj 2 | obj 3 (straddles)  | obj 4 | obj 5 | obj 6 |  |
 *   +-------+-------+-------+-------+----+---+-------+-------+-------+--+
 *   A free object holds, in its first 4 bytes, the index of the next free object of its
 *   zspage (-1 ends the list); objects past BUMP were never used and hold nothing.
 *
 * All metadata is in one meta SharedArrayBuffer (Int32 words), so every Worker that opens
 * the pool sees the same state:
 *
 *   +--------+----------------------+------------+-------------------------+----------------+
 *   | header | class table          | size->class| zspage table            | handle table   |
 *   | 64 w   | 255 x 32 w           | 256 w      | maxZspages x 20 w       | maxHandles x 2 |
 *   +--------+----------------------+------------+-------------------------+----------------+
 *   class:  SIZE PPZ OPZ HUGE INUSE ZSPAGES . . | GROUP heads [0..11]
 *   zspage: CLASS INUSE FREEHEAD BUMP GROUP PREV NEXT NFRAMES | PFN[8] | CONTIG
 *   handle: LOC = zspage * 1024 + object index (or next free handle), SIZE (0 = free)
 *
 * Fullness groups: a zspage with INUSE objects out of OPZ is in group 1 + floor(10*INUSE/OPZ)
 * (1..10) or in group 11 (FULL); an empty zspage is freed at once. malloc takes an object from
 * the fullest non-full zspage of its class, which packs objects and leaves sparse zspages to
 * drain; `compact()` moves objects from the emptiest zspages into the fullest and frees the
 * emptied ones. Handles add one level of indirection, so a move only rewrites LOC.
 *
 * Locks: ALLOC (mutex) guards every metadata word; MIGRATE (rwlock) is taken for writing by
 * compaction and reset, for reading around every access to object bytes (read/write/locate via
 * pin/unpin), so that an object never moves under a reader. Order: ALLOC -> MIGRATE ->
 * arena lock.
 *
 * Invariants (under ALLOC): class INUSE = sum of INUSE of its zspages; every zspage is on
 * exactly the group list GROUP of its class; FRAMES = sum of NFRAMES; a live handle's LOC
 * names a zspage of the class of its SIZE and an object not on the free list.
 */

import { Arena, FRAME_SIZE, FRAME_SHIFT, copyIn, copyOut } from '../arena';
import { lock, unlock, readLock, readUnlock, writeLock, writeUnlock } from '../tmem/lock';
import type { Zpool, ZpoolDriver, ZpoolHandle, ZpoolOptions, ZpoolStats, EvictFn } from './index';
import { checkSize, positiveInt } from './common';

const MAGIC = 0x5a534d41; // 'ZSMA'
const H_MAGIC = 0,
  H_ALLOC = 1,
  H_MIGRATE = 2,
  H_HFREE = 3,
  H_HBUMP = 4,
  H_ZFREE = 5,
  H_ZBUMP = 6,
  H_FRAMES = 7,
  H_OBJECTS = 8,
  H_MAXH = 9,
  H_MAXZ = 10,
  H_MAXF = 11,
  H_COMPACTIONS = 12,
  H_COMPACTED = 13,
  H_REFUSED = 14;
const H_BYTES_F64 = 24; // Float64 index (header words 48..49): bytes stored
const HDR = 64;

/** Smallest class size. */
export const ZS_MIN_ALLOC = 32;
/** Step between class sizes. */
export const ZS_CLASS_DELTA = 16;
/** Most frames chained into one zspage. */
export const ZS_MAX_PAGES_PER_ZSPAGE = 8;
const NCLASS = (FRAME_SIZE - ZS_MIN_ALLOC) / ZS_CLASS_DELTA + 1; // 255
const CW = 32;
const C_SIZE = 0,
  C_PPZ = 1,
  C_OPZ = 2,
  C_HUGE = 3,
  C_INUSE = 4,
  C_ZSPAGES = 5,
  C_GROUP = 8;
const NGROUP = 12,
  G_FULL = 11;
const CLS = HDR;
const S2C = CLS + NCLASS * CW;
const ZSB = S2C + 256;
const ZW = 20;
const Z_CLASS = 0,
  Z_INUSE = 1,
  Z_FREEHEAD = 2,
  Z_BUMP = 3,
  Z_GROUP = 4,
  Z_PREV = 5,
  Z_NEXT = 6,
  Z_NFRAMES = 7,
  Z_PFN = 8,
  Z_CONTIG = 16;
const OBJ_BITS = 10;
const OBJ_MASK = (1 << OBJ_BITS) - 1;

/** Frames per zspage that waste least for `size` (the kernel's get_pages_per_zspage). */
export function pagesPerZspage(size: number): number {
  let best = 1,
    bestUsed = 0;
  for (let i = 1; i <= ZS_MAX_PAGES_PER_ZSPAGE; i++) {
    const z = i * FRAME_SIZE;
    const used = (z - (z % size)) / z;
    if (used > bestUsed + 1e-12) {
      bestUsed = used;
      best = i;
    }
  }
  return best;
}

function sizes(arena: Arena, opts: ZpoolOptions) {
  const maxZ = Math.min(arena.maxFrames, 1 << (31 - OBJ_BITS));
  const maxH = Math.min(opts.maxObjects ?? arena.maxFrames * 32, 0x3fffffff);
  return { maxZ, maxH, words: ZSB + maxZ * ZW + maxH * 2 };
}

/** One thread's view of a zsmalloc pool. */
export class Zsmalloc implements Zpool {
  readonly driver = 'zsmalloc';
  readonly arena: Arena;
  evict?: EvictFn;
  mapBytes: Uint8Array;
  mapOffset = 0;
  private readonly m: Int32Array;
  private readonly f: Float64Array;
  private readonly meta: SharedArrayBuffer;
  private readonly scratch = new Uint8Array(FRAME_SIZE);
  private readonly HT: number;
  private mappedCopy = -1;
  private readonly fpcMask: number;

  constructor(arena: Arena, meta: SharedArrayBuffer, init: boolean, opts: ZpoolOptions) {
    this.arena = arena;
    this.meta = meta;
    this.m = new Int32Array(meta);
    this.f = new Float64Array(meta, 0, HDR / 2);
    this.mapBytes = this.scratch;
    this.fpcMask = arena.framesPerChunk - 1;
    const m = this.m;
    if (init) {
      const { maxZ, maxH } = sizes(arena, opts);
      m[H_MAXZ] = maxZ;
      m[H_MAXH] = maxH;
      m[H_MAXF] = positiveInt('maxFrames', opts.maxFrames ?? arena.maxFrames);
      this.formatClasses();
      this.clearState();
      Atomics.store(m, H_MAGIC, MAGIC);
    } else if (Atomics.load(m, H_MAGIC) !== MAGIC) {
      throw new TypeError('handle: meta buffer is not a zsmalloc pool');
    }
    this.HT = ZSB + m[H_MAXZ] * ZW;
  }

  private formatClasses(): void {
    const m = this.m;
    m.fill(0, CLS, S2C + 256);
    let prev = -1;
    for (let i = NCLASS - 1; i >= 0; i--) {
      const size = ZS_MIN_ALLOC + i * ZS_CLASS_DELTA;
      const ppz = pagesPerZspage(size);
      const opz = Math.floor((ppz * FRAME_SIZE) / size);
      if (prev >= 0 && m[CLS + prev * CW + C_PPZ] === ppz && m[CLS + prev * CW + C_OPZ] === opz) {
        m[S2C + i] = prev; // merged into the larger class of the same geometry
        continue;
      }
      const c = CLS + i * CW;
      m[c + C_SIZE] = size;
      m[c + C_PPZ] = ppz;
      m[c + C_OPZ] = opz;
      m[c + C_HUGE] = ppz === 1 && opz === 1 ? 1 : 0;
      m[S2C + i] = i;
      prev = i;
    }
  }

  private clearState(): void {
    const m = this.m;
    m[H_HFREE] = -1;
    m[H_HBUMP] = 0;
    m[H_ZFREE] = -1;
    m[H_ZBUMP] = 0;
    m[H_FRAMES] = 0;
    m[H_OBJECTS] = 0;
    m[H_REFUSED] = 0;
    this.f[H_BYTES_F64] = 0;
    for (let i = 0; i < NCLASS; i++) {
      const c = CLS + i * CW;
      m[c + C_INUSE] = 0;
      m[c + C_ZSPAGES] = 0;
      for (let g = 0; g < NGROUP; g++) m[c + C_GROUP + g] = -1;
    }
  }

  /** Class number used for objects of `size` bytes. */
  classOf(size: number): number {
    return this.m[S2C + (size <= ZS_MIN_ALLOC ? 0 : (size - ZS_MIN_ALLOC + ZS_CLASS_DELTA - 1) >>> 4)];
  }

  // ---- fullness group lists (ALLOC held) ----
  private groupOf(z: number, cls: number): number {
    const inuse = this.m[z + Z_INUSE],
      opz = this.m[CLS + cls * CW + C_OPZ];
    return inuse >= opz ? G_FULL : 1 + Math.floor((inuse * 10) / opz);
  }

  private listDel(z: number, cls: number): void {
    const m = this.m;
    const prev = m[z + Z_PREV],
      next = m[z + Z_NEXT];
    if (prev >= 0) m[ZSB + prev * ZW + Z_NEXT] = next;
    else m[CLS + cls * CW + C_GROUP + m[z + Z_GROUP]] = next;
    if (next >= 0) m[ZSB + next * ZW + Z_PREV] = prev;
  }

  private listAdd(z: number, zid: number, cls: number, g: number): void {
    const m = this.m;
    const h = CLS + cls * CW + C_GROUP + g;
    m[z + Z_GROUP] = g;
    m[z + Z_PREV] = -1;
    m[z + Z_NEXT] = m[h];
    if (m[h] >= 0) m[ZSB + m[h] * ZW + Z_PREV] = zid;
    m[h] = zid;
  }

  private regroup(z: number, zid: number, cls: number): void {
    const g = this.groupOf(z, cls);
    if (g !== this.m[z + Z_GROUP]) {
      this.listDel(z, cls);
      this.listAdd(z, zid, cls, g);
    }
  }

  // ---- object addressing: the free-list link in a free object's first word ----
  private readLink(z: number, off: number): number {
    const pfn = this.m[z + Z_PFN + (off >>> FRAME_SHIFT)];
    const a = this.arena;
    return a.words[pfn >>> a.chunkShift][(((pfn & this.fpcMask) << FRAME_SHIFT) + (off & (FRAME_SIZE - 1))) >>> 2];
  }

  private writeLink(z: number, off: number, v: number): void {
    const pfn = this.m[z + Z_PFN + (off >>> FRAME_SHIFT)];
    const a = this.arena;
    a.words[pfn >>> a.chunkShift][(((pfn & this.fpcMask) << FRAME_SHIFT) + (off & (FRAME_SIZE - 1))) >>> 2] = v;
  }

  // ---- zspages (ALLOC held) ----
  private newZspage(cls: number): number {
    const m = this.m;
    const c = CLS + cls * CW;
    const ppz = m[c + C_PPZ];
    if (m[H_FRAMES] + ppz > m[H_MAXF]) return -1;
    let zid = m[H_ZFREE];
    if (zid >= 0) m[H_ZFREE] = m[ZSB + zid * ZW + Z_NEXT];
    else {
      if (m[H_ZBUMP] >= m[H_MAXZ]) return -1;
      zid = m[H_ZBUMP]++;
    }
    const z = ZSB + zid * ZW;
    const a = this.arena;
    let contig: number;
    const run = ppz > 1 ? a.allocRun(ppz) : -1;
    if (run >= 0) {
      for (let i = 0; i < ppz; i++) m[z + Z_PFN + i] = run + i;
      contig = 1;
    } else {
      for (let i = 0; i < ppz; i++) {
        const p = a.alloc();
        if (p < 0) {
          for (let j = 0; j < i; j++) a.free(m[z + Z_PFN + j]);
          m[z + Z_NEXT] = m[H_ZFREE];
          m[H_ZFREE] = zid;
          m[z + Z_NFRAMES] = 0;
          return -1;
        }
        m[z + Z_PFN + i] = p;
      }
      contig = ppz === 1 ? 1 : 0;
    }
    m[z + Z_CLASS] = cls;
    m[z + Z_INUSE] = 0;
    m[z + Z_FREEHEAD] = -1;
    m[z + Z_BUMP] = 0;
    m[z + Z_NFRAMES] = ppz;
    m[z + Z_CONTIG] = contig;
    m[H_FRAMES] += ppz;
    m[c + C_ZSPAGES]++;
    this.listAdd(z, zid, cls, 1);
    return zid;
  }

  private freeZspage(z: number, zid: number, cls: number): void {
    const m = this.m;
    this.listDel(z, cls);
    const n = m[z + Z_NFRAMES];
    if (m[z + Z_CONTIG] && n > 1) this.arena.freeRun(m[z + Z_PFN], n);
    else for (let i = 0; i < n; i++) this.arena.free(m[z + Z_PFN + i]);
    m[H_FRAMES] -= n;
    m[CLS + cls * CW + C_ZSPAGES]--;
    m[z + Z_NFRAMES] = 0;
    m[z + Z_NEXT] = m[H_ZFREE];
    m[H_ZFREE] = zid;
  }

  /** Take a free object slot of zspage zid (not full). */
  private takeObj(zid: number, size: number): number {
    const m = this.m;
    const z = ZSB + zid * ZW;
    let obj = m[z + Z_FREEHEAD];
    if (obj >= 0) m[z + Z_FREEHEAD] = this.readLink(z, obj * size);
    else obj = m[z + Z_BUMP]++;
    m[z + Z_INUSE]++;
    return obj;
  }

  /** Return object slot obj of zspage zid; frees the zspage when it empties. */
  private putObj(zid: number, obj: number, cls: number, size: number): void {
    const m = this.m;
    const z = ZSB + zid * ZW;
    this.writeLink(z, obj * size, m[z + Z_FREEHEAD]);
    m[z + Z_FREEHEAD] = obj;
    m[CLS + cls * CW + C_INUSE]--;
    if (--m[z + Z_INUSE] === 0) this.freeZspage(z, zid, cls);
    else this.regroup(z, zid, cls);
  }

  /** Allocate `size` (1..4096) bytes; returns a handle, or 0 when the pool or arena is full. */
  malloc(size: number): number {
    checkSize(size);
    const m = this.m;
    lock(m, H_ALLOC);
    try {
      let h = m[H_HFREE];
      if (h < 0 && m[H_HBUMP] >= m[H_MAXH]) {
        m[H_REFUSED]++;
        return 0;
      }
      const cls = this.classOf(size);
      const c = CLS + cls * CW;
      let zid = -1;
      for (let g = G_FULL - 1; g >= 1; g--) {
        if (m[c + C_GROUP + g] >= 0) {
          zid = m[c + C_GROUP + g];
          break;
        }
      }
      if (zid < 0) zid = this.newZspage(cls);
      if (zid < 0) {
        m[H_REFUSED]++;
        return 0;
      }
      const obj = this.takeObj(zid, m[c + C_SIZE]);
      m[c + C_INUSE]++;
      this.regroup(ZSB + zid * ZW, zid, cls);
      if (h >= 0) m[H_HFREE] = m[this.HT + h * 2];
      else h = m[H_HBUMP]++;
      m[this.HT + h * 2] = zid * (OBJ_MASK + 1) + obj;
      m[this.HT + h * 2 + 1] = size;
      m[H_OBJECTS]++;
      this.f[H_BYTES_F64] += size;
      return h + 1;
    } finally {
      unlock(m, H_ALLOC);
    }
  }

  private entry(handle: number): number {
    const e = this.HT + (handle - 1) * 2;
    if (!Number.isInteger(handle) || handle < 1 || handle > this.m[H_HBUMP] || this.m[e + 1] <= 0) {
      throw new RangeError(`handle: expected a live zsmalloc handle, got ${handle}`);
    }
    return e;
  }

  /** Free an object; throws RangeError for a handle that is not live. */
  free(handle: number): void {
    const m = this.m;
    lock(m, H_ALLOC);
    try {
      const e = this.entry(handle);
      const loc = m[e],
        size = m[e + 1];
      const zid = loc >>> OBJ_BITS;
      const cls = m[ZSB + zid * ZW + Z_CLASS];
      this.putObj(zid, loc & OBJ_MASK, cls, m[CLS + cls * CW + C_SIZE]);
      m[e + 1] = 0;
      m[e] = m[H_HFREE];
      m[H_HFREE] = handle - 1;
      m[H_OBJECTS]--;
      this.f[H_BYTES_F64] -= size;
    } finally {
      unlock(m, H_ALLOC);
    }
  }

  /** Requested size of a live object. */
  size(handle: number): number {
    return this.m[this.entry(handle) + 1];
  }

  /** Hold off compaction while reading object bytes outside `read` (see `locate`). */
  pin(): void {
    readLock(this.m, H_MIGRATE);
  }
  /** End `pin`. */
  unpin(): void {
    readUnlock(this.m, H_MIGRATE);
  }

  /** Copy `len` bytes from `src` at `srcOff` into the object (caller owns the handle). */
  write(handle: number, src: Uint8Array, srcOff: number, len: number): void {
    const m = this.m;
    const e = this.entry(handle);
    if (!(len >= 0 && len <= m[e + 1]) || !(srcOff >= 0) || srcOff + len > src.length) {
      throw new RangeError(`len: expected 0..${m[e + 1]} bytes inside src, got srcOff ${srcOff} len ${len}`);
    }
    readLock(m, H_MIGRATE);
    try {
      this.copy(e, src, srcOff, len, true);
    } finally {
      readUnlock(m, H_MIGRATE);
    }
  }

  /** Copy the object into `dst` at `dstOff`; returns its size. */
  read(handle: number, dst: Uint8Array, dstOff: number): number {
    const m = this.m;
    const e = this.entry(handle);
    const len = m[e + 1];
    if (!(dstOff >= 0) || dstOff + len > dst.length)
      throw new RangeError(`dst: needs ${len} bytes from dstOff ${dstOff}`);
    readLock(m, H_MIGRATE);
    try {
      this.copy(e, dst, dstOff, len, false);
    } finally {
      readUnlock(m, H_MIGRATE);
    }
    return len;
  }

  /** Copy without locks (caller pinned). */
  readPinned(handle: number, dst: Uint8Array, dstOff: number): number {
    const e = this.HT + (handle - 1) * 2;
    const len = this.m[e + 1];
    this.copy(e, dst, dstOff, len, false);
    return len;
  }

  private copy(e: number, buf: Uint8Array, bufOff: number, len: number, toArena: boolean): void {
    const m = this.m;
    const loc = m[e];
    const z = ZSB + (loc >>> OBJ_BITS) * ZW;
    let off = (loc & OBJ_MASK) * m[CLS + m[z + Z_CLASS] * CW + C_SIZE];
    const a = this.arena;
    let done = 0;
    while (done < len) {
      const fi = off >>> FRAME_SHIFT;
      const inOff = off & (FRAME_SIZE - 1);
      const pfn = m[z + Z_PFN + fi];
      let n = FRAME_SIZE - inOff;
      // extend over following frames that are physically next in the same chunk
      for (
        let j = fi + 1;
        n < len - done &&
        j < m[z + Z_NFRAMES] &&
        m[z + Z_PFN + j] === pfn + (j - fi) &&
        ((pfn + (j - fi)) & this.fpcMask) !== 0;
        j++
      )
        n += FRAME_SIZE;
      if (n > len - done) n = len - done;
      if (toArena) copyIn(a, pfn, inOff, buf, bufOff + done, n);
      else copyOut(a, pfn, inOff, buf, bufOff + done, n);
      done += n;
      off += n;
    }
  }

  /** Allocation-free map; see `Zpool.locate`. Caller should `pin()` around it and the use. */
  locate(handle: number): number {
    const m = this.m;
    const e = this.entry(handle);
    const len = m[e + 1];
    const loc = m[e];
    const z = ZSB + (loc >>> OBJ_BITS) * ZW;
    const off = (loc & OBJ_MASK) * m[CLS + m[z + Z_CLASS] * CW + C_SIZE];
    const inOff = off & (FRAME_SIZE - 1);
    const pfn = m[z + Z_PFN + (off >>> FRAME_SHIFT)];
    const a = this.arena;
    if (inOff + len <= FRAME_SIZE || m[z + Z_CONTIG]) {
      this.mapBytes = a.bytes[pfn >>> a.chunkShift];
      this.mapOffset = ((pfn & this.fpcMask) << FRAME_SHIFT) + inOff;
      this.mappedCopy = -1;
    } else {
      this.copy(e, this.scratch, 0, len, false);
      this.mapBytes = this.scratch;
      this.mapOffset = 0;
      this.mappedCopy = handle;
    }
    return len;
  }

  /** View of the object; zero-copy when contiguous. Pins the pool until `unmap`. */
  map(handle: number): Uint8Array {
    readLock(this.m, H_MIGRATE);
    try {
      const len = this.locate(handle);
      return this.mapBytes.subarray(this.mapOffset, this.mapOffset + len);
    } catch (err) {
      readUnlock(this.m, H_MIGRATE);
      throw err;
    }
  }

  /** End a `map`: writes the scratch copy back if the object was not contiguous. */
  unmap(handle: number): void {
    try {
      if (this.mappedCopy === handle) {
        const e = this.entry(handle);
        this.copy(e, this.scratch, 0, this.m[e + 1], true);
        this.mappedCopy = -1;
      }
    } finally {
      readUnlock(this.m, H_MIGRATE);
    }
  }

  /** zsmalloc keeps no owner tags (it never evicts); accepted and ignored. */
  setTag(_handle: number, _tag0: number, _tag1: number): void {
    /* no eviction */
  }

  /** zsmalloc cannot evict: shrinking compacts. Returns frames freed. */
  shrink(_pages: number): number {
    return this.compact();
  }

  /**
   * Move objects from the emptiest zspages of each class into the fullest and free the
   * zspages that empty. Returns the frames freed.
   */
  compact(): number {
    const m = this.m;
    lock(m, H_ALLOC);
    writeLock(m, H_MIGRATE);
    let freed = 0;
    try {
      // one pass over the handle table gives each zspage's live objects
      const byZs = new Map<number, number[]>();
      const hb = m[H_HBUMP];
      for (let h = 0; h < hb; h++) {
        if (m[this.HT + h * 2 + 1] <= 0) continue;
        const zid = m[this.HT + h * 2] >>> OBJ_BITS;
        let l = byZs.get(zid);
        if (!l) byZs.set(zid, (l = []));
        l.push(h);
      }
      for (let cls = 0; cls < NCLASS; cls++) {
        const c = CLS + cls * CW;
        if (m[c + C_SIZE] === 0 || m[c + C_ZSPAGES] < 2) continue;
        const size = m[c + C_SIZE],
          opz = m[c + C_OPZ],
          ppz = m[c + C_PPZ];
        const list: number[] = [];
        for (let g = 1; g < G_FULL; g++) {
          for (let zid = m[c + C_GROUP + g]; zid >= 0; zid = m[ZSB + zid * ZW + Z_NEXT]) list.push(zid);
        }
        if (list.length < 2) continue;
        const inuse = (zid: number) => m[ZSB + zid * ZW + Z_INUSE];
        list.sort((x, y) => inuse(x) - inuse(y));
        let freeAbove = 0;
        for (let i = 1; i < list.length; i++) freeAbove += opz - inuse(list[i]);
        let d = list.length - 1;
        for (let s = 0; s < d; s++) {
          const src = list[s];
          const n = inuse(src);
          if (freeAbove < n) break;
          const hs = byZs.get(src) ?? [];
          for (const h of hs) {
            while (inuse(list[d]) >= opz) d--;
            if (d <= s) break;
            const dst = list[d];
            const e = this.HT + h * 2;
            const len = m[e + 1];
            this.copy(e, this.scratch, 0, len, false);
            const obj = this.takeObj(dst, size);
            const srcObj = m[e] & OBJ_MASK;
            m[e] = dst * (OBJ_MASK + 1) + obj;
            this.copy(e, this.scratch, 0, len, true);
            m[c + C_INUSE]++;
            this.regroup(ZSB + dst * ZW, dst, cls);
            let l = byZs.get(dst);
            if (!l) byZs.set(dst, (l = []));
            l.push(h);
            this.putObj(src, srcObj, cls, size);
            freeAbove--;
          }
          if (m[ZSB + src * ZW + Z_NFRAMES] === 0) freed += ppz;
          byZs.delete(src);
          if (s + 1 < d) freeAbove -= opz - inuse(list[s + 1]);
        }
      }
      m[H_COMPACTIONS]++;
      m[H_COMPACTED] += freed;
    } finally {
      writeUnlock(m, H_MIGRATE);
      unlock(m, H_ALLOC);
    }
    return freed;
  }

  /** Arena bytes held. */
  totalSize(): number {
    return Atomics.load(this.m, H_FRAMES) * FRAME_SIZE;
  }

  /** Set the most frames this pool may hold. */
  setMaxFrames(n: number): void {
    Atomics.store(this.m, H_MAXF, positiveInt('n', n));
  }

  /** Figures, including per-class objects, capacity and zspages. */
  stats(): ZpoolStats {
    const m = this.m;
    lock(m, H_ALLOC);
    try {
      const classes = [];
      for (let i = 0; i < NCLASS; i++) {
        const c = CLS + i * CW;
        if (m[c + C_SIZE] === 0 || m[c + C_ZSPAGES] === 0) continue;
        classes.push({
          size: m[c + C_SIZE],
          pagesPerZspage: m[c + C_PPZ],
          objsPerZspage: m[c + C_OPZ],
          huge: m[c + C_HUGE] === 1,
          objects: m[c + C_INUSE],
          zspages: m[c + C_ZSPAGES],
          capacity: m[c + C_ZSPAGES] * m[c + C_OPZ],
        });
      }
      return {
        driver: 'zsmalloc',
        objects: m[H_OBJECTS],
        bytesStored: this.f[H_BYTES_F64],
        frames: m[H_FRAMES],
        totalBytes: m[H_FRAMES] * FRAME_SIZE,
        refused: m[H_REFUSED],
        compactions: m[H_COMPACTIONS],
        pagesCompacted: m[H_COMPACTED],
        classes,
      };
    } finally {
      unlock(m, H_ALLOC);
    }
  }

  /** Free every object and zspage. */
  reset(): void {
    const m = this.m;
    lock(m, H_ALLOC);
    writeLock(m, H_MIGRATE);
    try {
      const zb = m[H_ZBUMP];
      for (let zid = 0; zid < zb; zid++) {
        const z = ZSB + zid * ZW;
        const n = m[z + Z_NFRAMES];
        if (n === 0) continue;
        if (m[z + Z_CONTIG] && n > 1) this.arena.freeRun(m[z + Z_PFN], n);
        else for (let i = 0; i < n; i++) this.arena.free(m[z + Z_PFN + i]);
        m[z + Z_NFRAMES] = 0;
      }
      m.fill(0, this.HT, this.HT + m[H_HBUMP] * 2);
      this.clearState();
    } finally {
      writeUnlock(m, H_MIGRATE);
      unlock(m, H_ALLOC);
    }
  }

  /** Handle for `attachZpool`. */
  handle(): ZpoolHandle {
    return { driver: 'zsmalloc', meta: this.meta };
  }
}

/** The zsmalloc zpool driver. */
export const zsmallocDriver: ZpoolDriver = {
  name: 'zsmalloc',
  metaBytes: (arena, opts) => sizes(arena, opts).words * 4,
  open: (arena, meta, init, opts) => new Zsmalloc(arena, meta, init, opts),
};
