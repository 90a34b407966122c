/**
 * The cache's allocator: places byte strings in tmem regions and reuses the space freed.
 *
 * Design (chosen so that allocating and freeing never touch region memory, which may be
 * cold: all metadata lives in typed arrays on this side, none in the regions):
 *
 * - The space is a sequence of chunks, each one tmem region of `chunkBytes`; it grows by
 *   adding a chunk when nothing free fits. Pages are numbered across chunks.
 * - Page runs with coalescing (a buddy-free "boundary tag" allocator, as TLSF): every run of
 *   pages, used or free, has its length at its first and last page (`runLen`, negative when
 *   free), so that a freed run merges with free neighbours in O(1). Free runs sit in one
 *   list per power of two of their length; a request takes the first run of the smallest
 *   list whose runs all fit, else searches the list below it, else adds a chunk. Runs never
 *   cross a chunk's end.
 * - Objects up to 8 KiB come from size classes (lib/cache/size-classes.ts), each carved
 *   from slabs (runs of 1..8 pages) with a bitmap of its slots. A class keeps a list of its
 *   slabs that have a free slot; a slab whose last object is freed goes back to the runs, so
 *   space moves between classes as the mix of sizes changes. Why size classes for small
 *   objects rather than one free list with coalescing at byte granularity: boundary tags
 *   per object would either live in the region (a free or an allocation would fault in
 *   cold neighbours) or cost a tag per 16 bytes here; slabs need 51 bytes of metadata per
 *   4 KiB page and no search.
 * - An object larger than a chunk gets a region of its own, closed when it is freed.
 *
 * A location is a number: the byte offset across chunks (>= 0), or -id for an object with
 * a region of its own.
 */
import type { Region, Swap } from '../swap';
import { BITMAP_WORDS, CLASS_PAGES, CLASS_SIZES, CLASS_SLOTS, MAX_SMALL, PAGE, classOf } from './size-classes';

const BUCKETS = 32;

/** Space figures of an allocator. */
export interface AllocatorStats {
  /** Bytes handed out, as rounded up (size class, whole pages). */
  allocatedBytes: number;
  /** Bytes of the regions that hold them (chunks and objects with a region of their own). */
  regionBytes: number;
  /** Regions in use. */
  regions: number;
}

export class RegionAllocator {
  readonly pagesPerChunk: number;
  private readonly chunks: Region[] = [];
  private readonly views: Uint8Array[] = [];
  private pages = 0;
  // Per page (numbered across chunks); see the header.
  private runLen = new Int32Array(0); // at a run's first and last page: +pages used, -pages free
  private owner = new Int32Array(0); // every page of a slab: its first page
  private slabClass = new Uint8Array(0); // a slab's first page: class + 1 (0: not a slab)
  private slabUsed = new Uint16Array(0); // a slab's first page: objects in it
  private next = new Int32Array(0); // links of the free-run lists, and of the partial-slab lists
  private prev = new Int32Array(0);
  private bitmap = new Uint32Array(0); // BITMAP_WORDS per page, used at a slab's first page
  private readonly freeRuns = new Int32Array(BUCKETS).fill(-1);
  private readonly partial = new Int32Array(CLASS_SIZES.length).fill(-1);
  private readonly own = new Map<number, { region: Region; view: Uint8Array }>();
  private nextOwn = 1;
  private allocated = 0;
  private ownBytes = 0;
  /** Called with each region this allocator stops using (to be closed). */
  private readonly release: (r: Region) => void;

  constructor(
    private readonly swap: Swap,
    readonly chunkBytes: number,
    release: (r: Region) => void,
  ) {
    this.pagesPerChunk = chunkBytes / PAGE;
    this.release = release;
  }

  /** Space figures. */
  stats(): AllocatorStats {
    return {
      allocatedBytes: this.allocated,
      regionBytes: this.chunks.length * this.chunkBytes + this.ownBytes,
      regions: this.chunks.length + this.own.size,
    };
  }

  /** The regions in use (chunks, then objects with a region of their own). */
  regions(): Region[] {
    return [...this.chunks, ...[...this.own.values()].map((o) => o.region)];
  }

  /** Bytes an object of `n` bytes takes. */
  static footprint(n: number, chunkBytes: number): number {
    if (n <= MAX_SMALL) return CLASS_SIZES[classOf(n)];
    if (n <= chunkBytes) return Math.ceil(n / PAGE) * PAGE;
    return Math.ceil(n / PAGE) * PAGE;
  }

  /** Space for `n` (>= 1) bytes; returns its location. May add a region (swap.region() errors propagate). */
  alloc(n: number): number {
    let loc: number;
    if (n <= MAX_SMALL) loc = this.allocSmall(classOf(n));
    else if (n <= this.chunkBytes) loc = this.allocRun(Math.ceil(n / PAGE)) * PAGE;
    else return this.allocOwn(n);
    this.allocated += RegionAllocator.footprint(n, this.chunkBytes);
    return loc;
  }

  /** Frees what alloc(n) returned at `loc`. */
  free(loc: number, n: number): void {
    if (loc < 0) {
      const o = this.own.get(-loc);
      if (!o) return;
      this.own.delete(-loc);
      this.ownBytes -= o.region.size;
      this.allocated -= o.region.size;
      this.release(o.region);
      return;
    }
    this.allocated -= RegionAllocator.footprint(n, this.chunkBytes);
    if (n <= MAX_SMALL) this.freeSmall(loc, classOf(n));
    else this.freeRun(loc / PAGE, Math.ceil(n / PAGE));
  }

  /** The `n` bytes at `loc`, as a view into the region (valid until that space is freed). */
  view(loc: number, n: number): Uint8Array {
    if (loc < 0) return this.own.get(-loc)!.view.subarray(0, n);
    const c = Math.floor(loc / this.chunkBytes);
    const off = loc - c * this.chunkBytes;
    return this.views[c].subarray(off, off + n);
  }

  /** Copies `bytes` to `loc + at`. */
  write(loc: number, at: number, bytes: Uint8Array): void {
    if (loc < 0) {
      this.own.get(-loc)!.view.set(bytes, at);
      return;
    }
    const c = Math.floor(loc / this.chunkBytes);
    this.views[c].set(bytes, loc - c * this.chunkBytes + at);
  }

  /** The byte at `loc + at`. */
  byteAt(loc: number, at: number): number {
    if (loc < 0) return this.own.get(-loc)!.view[at];
    const c = Math.floor(loc / this.chunkBytes);
    return this.views[c][loc - c * this.chunkBytes + at];
  }

  /** Lets every region go (each is handed to `release`) and starts empty. */
  reset(): void {
    for (const r of this.chunks) this.release(r);
    for (const o of this.own.values()) this.release(o.region);
    this.chunks.length = 0;
    this.views.length = 0;
    this.own.clear();
    this.pages = 0;
    this.allocated = 0;
    this.ownBytes = 0;
    this.freeRuns.fill(-1);
    this.partial.fill(-1);
    this.runLen = new Int32Array(0);
    this.owner = new Int32Array(0);
    this.slabClass = new Uint8Array(0);
    this.slabUsed = new Uint16Array(0);
    this.next = new Int32Array(0);
    this.prev = new Int32Array(0);
    this.bitmap = new Uint32Array(0);
  }

  private allocOwn(n: number): number {
    const region = this.swap.region(n);
    const id = this.nextOwn++;
    this.own.set(id, { region, view: new Uint8Array(region.buffer) });
    this.ownBytes += region.size;
    this.allocated += region.size;
    return -id;
  }

  private allocSmall(c: number): number {
    let h = this.partial[c];
    if (h < 0) {
      const k = CLASS_PAGES[c];
      h = this.allocRun(k);
      this.slabClass[h] = c + 1;
      this.slabUsed[h] = 0;
      for (let p = h; p < h + k; p++) this.owner[p] = h;
      // Bits past the last slot are set: never handed out.
      const slots = CLASS_SLOTS[c];
      for (let w = 0; w < BITMAP_WORDS; w++) {
        const first = w * 32;
        this.bitmap[h * BITMAP_WORDS + w] =
          first >= slots ? 0xffffffff : first + 32 <= slots ? 0 : (0xffffffff << (slots - first)) >>> 0;
      }
      this.linkPartial(c, h);
    }
    const base = h * BITMAP_WORDS;
    let w = 0;
    while (this.bitmap[base + w] === 0xffffffff) w++;
    const inv = ~this.bitmap[base + w];
    const bit = 31 - Math.clz32(inv & -inv);
    this.bitmap[base + w] |= 1 << bit;
    if (++this.slabUsed[h] === CLASS_SLOTS[c]) this.unlinkPartial(c, h);
    return h * PAGE + (w * 32 + bit) * CLASS_SIZES[c];
  }

  private freeSmall(loc: number, c: number): void {
    const h = this.owner[Math.floor(loc / PAGE)];
    const slot = (loc - h * PAGE) / CLASS_SIZES[c];
    const word = h * BITMAP_WORDS + (slot >>> 5);
    this.bitmap[word] &= ~(1 << (slot & 31));
    if (this.slabUsed[h]-- === CLASS_SLOTS[c]) this.linkPartial(c, h);
    if (this.slabUsed[h] === 0) {
      this.unlinkPartial(c, h);
      this.slabClass[h] = 0;
      this.freeRun(h, CLASS_PAGES[c]);
    }
  }

  private linkPartial(c: number, h: number): void {
    const first = this.partial[c];
    this.next[h] = first;
    this.prev[h] = -1;
    if (first >= 0) this.prev[first] = h;
    this.partial[c] = h;
  }

  private unlinkPartial(c: number, h: number): void {
    const n = this.next[h],
      p = this.prev[h];
    if (p >= 0) this.next[p] = n;
    else this.partial[c] = n;
    if (n >= 0) this.prev[n] = p;
  }

  /** A run of `k` pages (1 <= k <= pagesPerChunk); returns its first page. */
  private allocRun(k: number): number {
    const fits = ceilLog2(k);
    for (let b = fits; b < BUCKETS; b++) {
      if (this.freeRuns[b] >= 0) return this.take(this.freeRuns[b], k);
    }
    const below = fits - 1;
    if (below >= 0 && floorLog2(k) === below) {
      for (let h = this.freeRuns[below]; h >= 0; h = this.next[h]) if (-this.runLen[h] >= k) return this.take(h, k);
    }
    this.addChunk();
    return this.allocRun(k);
  }

  /** Takes `k` pages from the start of free run `h`; the rest stays free. */
  private take(h: number, k: number): number {
    const len = -this.runLen[h];
    this.unlinkFree(h);
    if (len > k) this.insertFree(h + k, len - k);
    this.runLen[h] = k;
    this.runLen[h + k - 1] = k;
    return h;
  }

  /** Frees the run of `k` pages at `h`, merged with free neighbours in its chunk. */
  private freeRun(h: number, k: number): void {
    let start = h,
      len = k;
    if (h % this.pagesPerChunk !== 0 && this.runLen[h - 1] < 0) {
      const l = -this.runLen[h - 1];
      start = h - l;
      this.unlinkFree(start);
      len += l;
    }
    const end = h + k;
    if (end % this.pagesPerChunk !== 0 && this.runLen[end] < 0) {
      len += -this.runLen[end];
      this.unlinkFree(end);
    }
    this.insertFree(start, len);
  }

  private insertFree(h: number, len: number): void {
    this.runLen[h] = -len;
    this.runLen[h + len - 1] = -len;
    const b = floorLog2(len);
    const first = this.freeRuns[b];
    this.next[h] = first;
    this.prev[h] = -1;
    if (first >= 0) this.prev[first] = h;
    this.freeRuns[b] = h;
  }

  private unlinkFree(h: number): void {
    const n = this.next[h],
      p = this.prev[h];
    if (p >= 0) this.next[p] = n;
    else this.freeRuns[floorLog2(-this.runLen[h])] = n;
    if (n >= 0) this.prev[n] = p;
  }

  private addChunk(): void {
    const region = this.swap.region(this.chunkBytes);
    const base = this.pages;
    const pages = base + this.pagesPerChunk;
    this.runLen = grow(this.runLen, pages, Int32Array);
    this.owner = grow(this.owner, pages, Int32Array);
    this.slabClass = grow(this.slabClass, pages, Uint8Array);
    this.slabUsed = grow(this.slabUsed, pages, Uint16Array);
    this.next = grow(this.next, pages, Int32Array);
    this.prev = grow(this.prev, pages, Int32Array);
    this.bitmap = grow(this.bitmap, pages * BITMAP_WORDS, Uint32Array);
    this.chunks.push(region);
    this.views.push(new Uint8Array(region.buffer));
    this.pages = pages;
    this.insertFree(base, this.pagesPerChunk);
  }
}

type Typed = Int32Array | Uint8Array | Uint16Array | Uint32Array;
function grow<T extends Typed>(a: T, n: number, C: new (n: number) => T): T {
  const b = new C(n);
  b.set(a);
  return b;
}

function floorLog2(n: number): number {
  return 31 - Math.clz32(n);
}

function ceilLog2(n: number): number {
  return n <= 1 ? 0 : 32 - Math.clz32(n - 1);
}
