/*
 * Arena: 4 KiB page frames in SharedArrayBuffer chunks, shared by every Worker it is handed to.
 *
 * Growth model (the "pre-size" choice): all chunk SharedArrayBuffers up to the configured
 * limit are created when the arena is created. Linux commits a page of a SAB only when it is
 * first touched, so an untouched chunk costs address space, not memory. A chunk becomes
 * *active* (the arena "grows") when the allocator first hands out one of its frames, and is
 * *released* again when its last frame is freed: `onRelease(chunk, 0, framesPerChunk)` is
 * called so that a native `madvise(MADV_DONTNEED)` can give the memory back. `trim()` does the
 * same for runs of free frames inside active chunks. Because every thread holds the same SAB
 * objects from the handle, a chunk added after `attach()` is visible everywhere at once, with no
 * message; the price is that no thread can drop a chunk's SAB reference (its memory is returned
 * through `onRelease` instead, and this instance drops nothing it could later need).
 *
 * Layout of the control SAB (Int32 words):
 *
 *   0        16                       16 + 8*maxChunks
 *   +--------+------------------------+-------------------------------------------------+
 *   | header | chunk table            | per chunk: free bitmap (W words), dirty bitmap   |
 *   +--------+------------------------+-------------------------------------------------+
 *   header:      MAGIC, LOCK, FRAMES_PER_CHUNK, MAX_CHUNKS, USED, ACTIVE, PEAK, DIRTY,
 *                RELEASES, HINT
 *   chunk entry: STATE (0 released/untouched, 1 active), USED frames, SCAN hint (word)
 *   free bit 1 = frame is free; dirty bit 1 = frame was handed out since its last release
 *
 *   frame number (pfn) = chunk * framesPerChunk + frame in chunk
 *   byte address       = bytes[chunk][(pfn % framesPerChunk) * 4096]
 *
 * Invariants (all under LOCK): USED = sum of chunk USED = number of clear free bits in active
 * chunks; a released chunk has all free bits set and no dirty bits; onRelease is called with
 * LOCK held, so no frame in the released range can be handed out until madvise returned.
 */

import { lock, unlock } from './tmem/lock';

/** Size of a page frame in bytes. */
export const FRAME_SIZE = 4096;
/** log2(FRAME_SIZE). */
export const FRAME_SHIFT = 12;

const MAGIC = 0x41524e41; // 'ARNA'
const H_MAGIC = 0,
  H_LOCK = 1,
  H_FPC = 2,
  H_MAXCH = 3,
  H_USED = 4,
  H_ACTIVE = 5,
  H_PEAK = 6,
  H_DIRTY = 7,
  H_RELEASES = 8,
  H_HINT = 9;
const HDR = 16;
const CH_WORDS = 8;
const C_STATE = 0,
  C_USED = 1,
  C_SCAN = 2;

/** Structured-cloneable description of an arena; pass it to a Worker and call `Arena.attach`. */
export interface ArenaHandle {
  readonly control: SharedArrayBuffer;
  readonly chunks: readonly SharedArrayBuffer[];
}

/** Options of `Arena.create`. */
export interface ArenaOptions {
  /** Upper bound of the arena in bytes (rounded up to whole chunks). Default 256 MiB. */
  maxBytes?: number;
  /** Chunk size in bytes, a power of two from 128 KiB to 1 GiB. Default 16 MiB. */
  chunkBytes?: number;
}

/** Figures of `Arena.stats()`. */
export interface ArenaStats {
  /** Frames handed out now. */
  usedFrames: number;
  /** Highest `usedFrames` seen. */
  peakFrames: number;
  /** Chunks holding at least one frame. */
  activeChunks: number;
  /** Frames touched since their last release (an upper bound of memory committed). */
  dirtyFrames: number;
  /** Calls made to `onRelease`. */
  releases: number;
  /** Frames the arena can hold at most. */
  maxFrames: number;
}

/**
 * A pool of 4 KiB frames over SharedArrayBuffer chunks; one instance per thread, all sharing
 * the state in the control SAB.
 */
export class Arena {
  /** Byte view of each chunk, indexed by chunk number. */
  readonly bytes: Uint8Array[];
  /** Int32 view of each chunk, indexed by chunk number. */
  readonly words: Int32Array[];
  /** Frames per chunk (a power of two). */
  readonly framesPerChunk: number;
  /** log2(framesPerChunk). */
  readonly chunkShift: number;
  /** Number of chunks. */
  readonly maxChunks: number;
  /** Frames the arena can hold at most. */
  readonly maxFrames: number;
  /**
   * Called with the arena lock held when frames go back to the OS: a wholly free chunk, or a
   * run of free frames found by `trim()`. Hook `madvise(MADV_DONTNEED)` here.
   */
  onRelease?: (chunkIndex: number, frameOffset: number, frameCount: number) => void;

  private readonly ctl: Int32Array;
  private readonly bmWords: number;
  private readonly handleObj: ArenaHandle;

  private constructor(handle: ArenaHandle) {
    const ctl = new Int32Array(handle.control);
    if (ctl[H_MAGIC] !== MAGIC) throw new TypeError('handle: not an arena handle (bad magic)');
    this.ctl = ctl;
    this.handleObj = handle;
    this.framesPerChunk = ctl[H_FPC];
    this.chunkShift = 31 - Math.clz32(this.framesPerChunk);
    this.maxChunks = ctl[H_MAXCH];
    this.maxFrames = this.framesPerChunk * this.maxChunks;
    this.bmWords = this.framesPerChunk >>> 5;
    if (handle.chunks.length !== this.maxChunks) {
      throw new TypeError(`handle: expected ${this.maxChunks} chunk buffers, got ${handle.chunks.length}`);
    }
    this.bytes = handle.chunks.map((s) => new Uint8Array(s));
    this.words = handle.chunks.map((s) => new Int32Array(s));
  }

  /**
   * Create an arena. Chunks are reserved now and committed by the OS only when touched.
   */
  static create(opts: ArenaOptions = {}): Arena {
    const chunkBytes = opts.chunkBytes ?? 16 << 20;
    if (
      !Number.isInteger(chunkBytes) ||
      chunkBytes < 128 << 10 ||
      chunkBytes > 1 << 30 ||
      (chunkBytes & (chunkBytes - 1)) !== 0
    ) {
      throw new RangeError(`chunkBytes: expected a power of two from 131072 to 1073741824, got ${chunkBytes}`);
    }
    const maxBytes = opts.maxBytes ?? 256 << 20;
    if (typeof maxBytes !== 'number' || !(maxBytes >= FRAME_SIZE) || maxBytes > 2 ** 44) {
      throw new RangeError(`maxBytes: expected a number of bytes from 4096 to 2^44, got ${maxBytes}`);
    }
    const fpc = chunkBytes / FRAME_SIZE;
    const maxChunks = Math.ceil(maxBytes / chunkBytes);
    const bm = fpc >>> 5;
    const control = new SharedArrayBuffer((HDR + maxChunks * CH_WORDS + maxChunks * bm * 2) * 4);
    const ctl = new Int32Array(control);
    ctl[H_FPC] = fpc;
    ctl[H_MAXCH] = maxChunks;
    for (let c = 0; c < maxChunks; c++) {
      const base = HDR + maxChunks * CH_WORDS + c * bm * 2;
      ctl.fill(-1, base, base + bm);
    }
    const chunks: SharedArrayBuffer[] = [];
    for (let c = 0; c < maxChunks; c++) chunks.push(new SharedArrayBuffer(chunkBytes));
    Atomics.store(ctl, H_MAGIC, MAGIC);
    return new Arena({ control, chunks });
  }

  /**
   * Open, in this thread, an arena created elsewhere from its `handle()`.
   */
  static attach(handle: ArenaHandle): Arena {
    if (
      handle === null ||
      typeof handle !== 'object' ||
      !(handle.control instanceof SharedArrayBuffer) ||
      !Array.isArray(handle.chunks)
    ) {
      throw new TypeError('handle: expected { control: SharedArrayBuffer, chunks: SharedArrayBuffer[] }');
    }
    return new Arena(handle);
  }

  /** The structured-cloneable handle for `postMessage` / `workerData`. */
  handle(): ArenaHandle {
    return this.handleObj;
  }

  private freeBase(c: number): number {
    return HDR + this.maxChunks * CH_WORDS + c * this.bmWords * 2;
  }

  /** Chunk number of frame `pfn`. */
  chunkOf(pfn: number): number {
    return pfn >>> this.chunkShift;
  }

  /** Byte offset of frame `pfn` inside its chunk. */
  offsetOf(pfn: number): number {
    return (pfn & (this.framesPerChunk - 1)) << FRAME_SHIFT;
  }

  /**
   * Allocate one frame; returns its frame number, or -1 when the arena is at its limit.
   */
  alloc(): number {
    return this.allocRun(1);
  }

  /**
   * Allocate `n` (1..32) frames that are contiguous in one chunk; returns the first frame
   * number, or -1 if no such run exists even after activating a new chunk.
   */
  allocRun(n: number): number {
    const ctl = this.ctl;
    lock(ctl, H_LOCK);
    try {
      const hint = ctl[H_HINT];
      for (let k = 0; k < this.maxChunks; k++) {
        const c = (hint + k) % this.maxChunks;
        const ce = HDR + c * CH_WORDS;
        if (ctl[ce + C_STATE] === 0 || this.framesPerChunk - ctl[ce + C_USED] < n) continue;
        const pfn = this.takeRun(c, n);
        if (pfn >= 0) {
          ctl[H_HINT] = c;
          return pfn;
        }
      }
      for (let c = 0; c < this.maxChunks; c++) {
        const ce = HDR + c * CH_WORDS;
        if (ctl[ce + C_STATE] !== 0) continue;
        ctl[ce + C_STATE] = 1;
        ctl[ce + C_SCAN] = 0;
        ctl[H_ACTIVE]++;
        const pfn = this.takeRun(c, n);
        ctl[H_HINT] = c;
        return pfn;
      }
      return -1;
    } finally {
      unlock(ctl, H_LOCK);
    }
  }

  /** Find and take a run of n free frames in chunk c (lock held). */
  private takeRun(c: number, n: number): number {
    const ctl = this.ctl;
    const fb = this.freeBase(c);
    const db = fb + this.bmWords;
    const ce = HDR + c * CH_WORDS;
    const start = ctl[ce + C_SCAN];
    const W = this.bmWords;
    for (let k = 0; k < W; k++) {
      const w = (start + k) % W;
      const bits = ctl[fb + w];
      if (bits === 0) continue;
      let runs = bits;
      for (let j = 1; j < n && runs !== 0; j++) runs &= bits >>> j;
      if (runs === 0) continue;
      const bit = 31 - Math.clz32(runs & -runs);
      const mask = n === 32 ? -1 : ((1 << n) - 1) << bit;
      ctl[fb + w] = bits & ~mask;
      const newlyDirty = mask & ~ctl[db + w];
      ctl[db + w] |= mask;
      ctl[H_DIRTY] += popcount(newlyDirty);
      ctl[ce + C_USED] += n;
      ctl[H_USED] += n;
      if (ctl[H_USED] > ctl[H_PEAK]) ctl[H_PEAK] = ctl[H_USED];
      ctl[ce + C_SCAN] = w;
      return (c << this.chunkShift) + (w << 5) + bit;
    }
    return -1;
  }

  /**
   * Return frame `pfn` to the arena. A chunk whose last frame comes back is released.
   */
  free(pfn: number): void {
    this.freeRun(pfn, 1);
  }

  /**
   * Return `n` frames starting at `pfn` (all in one chunk) to the arena.
   */
  freeRun(pfn: number, n: number): void {
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.maxFrames) {
      throw new RangeError(`pfn: expected a frame number from 0 to ${this.maxFrames - 1}, got ${pfn}`);
    }
    const ctl = this.ctl;
    const c = pfn >>> this.chunkShift;
    lock(ctl, H_LOCK);
    try {
      const fb = this.freeBase(c);
      const f0 = pfn & (this.framesPerChunk - 1);
      if (f0 + n > this.framesPerChunk) throw new RangeError(`n: run of ${n} frames crosses a chunk`);
      for (let f = f0; f < f0 + n; f++) {
        if ((ctl[fb + (f >>> 5)] >>> (f & 31)) & 1) {
          throw new RangeError(`pfn: frame ${(c << this.chunkShift) + f} is already free`);
        }
      }
      for (let f = f0; f < f0 + n; f++) ctl[fb + (f >>> 5)] |= 1 << (f & 31);
      const ce = HDR + c * CH_WORDS;
      ctl[ce + C_USED] -= n;
      ctl[H_USED] -= n;
      if (ctl[ce + C_USED] === 0) this.releaseChunk(c);
    } finally {
      unlock(ctl, H_LOCK);
    }
  }

  private releaseChunk(c: number): void {
    const ctl = this.ctl;
    const ce = HDR + c * CH_WORDS;
    const db = this.freeBase(c) + this.bmWords;
    let dirty = 0;
    for (let w = 0; w < this.bmWords; w++) {
      dirty += popcount(ctl[db + w]);
      ctl[db + w] = 0;
    }
    ctl[H_DIRTY] -= dirty;
    ctl[ce + C_STATE] = 0;
    ctl[H_ACTIVE]--;
    ctl[H_RELEASES]++;
    if (this.onRelease) this.onRelease(c, 0, this.framesPerChunk);
  }

  /**
   * Give back to the OS every run of free frames touched since its last release, calling
   * `onRelease` once per run. Returns the number of frames released.
   */
  trim(): number {
    const ctl = this.ctl;
    let total = 0;
    lock(ctl, H_LOCK);
    try {
      for (let c = 0; c < this.maxChunks; c++) {
        if (ctl[HDR + c * CH_WORDS + C_STATE] === 0) continue;
        const fb = this.freeBase(c);
        const db = fb + this.bmWords;
        let runStart = -1;
        for (let f = 0; f <= this.framesPerChunk; f++) {
          const rel = f < this.framesPerChunk && ((ctl[fb + (f >>> 5)] & ctl[db + (f >>> 5)]) >>> (f & 31)) & 1;
          if (rel && runStart < 0) runStart = f;
          else if (!rel && runStart >= 0) {
            for (let g = runStart; g < f; g++) ctl[db + (g >>> 5)] &= ~(1 << (g & 31));
            ctl[H_DIRTY] -= f - runStart;
            ctl[H_RELEASES]++;
            total += f - runStart;
            if (this.onRelease) this.onRelease(c, runStart, f - runStart);
            runStart = -1;
          }
        }
      }
    } finally {
      unlock(ctl, H_LOCK);
    }
    return total;
  }

  /** Frames handed out now. */
  usedFrames(): number {
    return Atomics.load(this.ctl, H_USED);
  }

  /** Frames touched since their last release (committed memory), without building stats(). */
  dirtyFrames(): number {
    return Atomics.load(this.ctl, H_DIRTY);
  }

  /** Current figures (read without the lock: each is exact, together they are a snapshot). */
  stats(): ArenaStats {
    const c = this.ctl;
    return {
      usedFrames: Atomics.load(c, H_USED),
      peakFrames: Atomics.load(c, H_PEAK),
      activeChunks: Atomics.load(c, H_ACTIVE),
      dirtyFrames: Atomics.load(c, H_DIRTY),
      releases: Atomics.load(c, H_RELEASES),
      maxFrames: this.maxFrames,
    };
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/**
 * Copy `len` bytes of `src` from `srcOff` into the arena at frame `pfn`, byte `off` (the range
 * must lie in one chunk). Allocates nothing.
 */
export function copyIn(arena: Arena, pfn: number, off: number, src: Uint8Array, srcOff: number, len: number): void {
  const c = pfn >>> arena.chunkShift;
  const at = ((pfn & (arena.framesPerChunk - 1)) << FRAME_SHIFT) + off;
  const dst = arena.bytes[c];
  if (srcOff === 0 && len === src.length) {
    dst.set(src, at);
    return;
  }
  for (let i = 0; i < len; i++) dst[at + i] = src[srcOff + i];
}

let lastBuf: ArrayBufferLike | null = null;
let lastI32: Int32Array | null = null;

/**
 * Copy `len` bytes from the arena at frame `pfn`, byte `off` (one chunk) into `dst` at `dstOff`.
 * Word copies when both sides are 4-byte aligned; allocates nothing when `dst`'s buffer is the
 * same as in the previous call.
 */
export function copyOut(arena: Arena, pfn: number, off: number, dst: Uint8Array, dstOff: number, len: number): void {
  const c = pfn >>> arena.chunkShift;
  const at = ((pfn & (arena.framesPerChunk - 1)) << FRAME_SHIFT) + off;
  const d = dst.byteOffset + dstOff;
  if (((at | d) & 3) === 0 && len >= 64) {
    const buf = dst.buffer;
    if (buf !== lastBuf) {
      lastBuf = buf;
      lastI32 = new Int32Array(buf, 0, buf.byteLength >>> 2);
    }
    const dw = lastI32 as Int32Array;
    const sw = arena.words[c];
    const n = len >>> 2;
    const s0 = at >>> 2,
      d0 = d >>> 2;
    for (let i = 0; i < n; i++) dw[d0 + i] = sw[s0 + i];
    const src = arena.bytes[c];
    for (let i = n << 2; i < len; i++) dst[dstOff + i] = src[at + i];
    return;
  }
  const src = arena.bytes[c];
  for (let i = 0; i < len; i++) dst[dstOff + i] = src[at + i];
}
