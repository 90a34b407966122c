/*
 * zpool: one allocator API over zsmalloc and zbud, drivers registered by name (like the
 * kernel's mm/zpool.c).
 *
 * A pool's whole state lives in one "meta" SharedArrayBuffer (its layout is drawn in each
 * driver's header) plus the frames it holds in the shared Arena, so a pool created in one
 * thread is opened in another with `attachZpool(arena, pool.handle())`, and both see the same
 * objects. Handles are positive 31-bit integers; 0 means "refused".
 *
 * Object access mirrors the kernel's map/unmap: `write`/`read` copy, `map` returns a view that
 * is zero-copy when the object is contiguous in the arena and otherwise a copy in a per-pool
 * scratch buffer (write-back on `unmap`). `locate` is the allocation-free form of `map`.
 */

import { Arena } from '../arena';

/**
 * Called by a driver that reclaims (zbud) with its pool lock held, once per object of a frame
 * it wants back. Return true if the owner dropped every reference to `handle` (the driver then
 * frees it itself); false to keep the object. Must not call back into the same pool.
 */
export type EvictFn = (handle: number, tag0: number, tag1: number) => boolean;

/** Structured-cloneable description of a pool, for `attachZpool` in another thread. */
export interface ZpoolHandle {
  readonly driver: string;
  readonly meta: SharedArrayBuffer;
}

/** Common figures; drivers add their own fields. */
export interface ZpoolStats {
  /** Driver name. */
  driver: string;
  /** Live objects. */
  objects: number;
  /** Sum of the requested sizes of live objects. */
  bytesStored: number;
  /** Arena frames held. */
  frames: number;
  /** Arena bytes held (frames * 4096). */
  totalBytes: number;
  /** Driver-specific figures. */
  [k: string]: unknown;
}

/** Options of `createZpool`. */
export interface ZpoolOptions {
  /** Most frames this pool may hold (default: the arena's limit). */
  maxFrames?: number;
  /** Most live objects (zsmalloc handle table size; default 32 per arena frame). */
  maxObjects?: number;
  /** Meta buffer to use (at least `zpoolMetaBytes` long, zero-filled); default: a new one. */
  meta?: SharedArrayBuffer;
}

/** An allocator pool, one instance per thread over shared state. */
export interface Zpool {
  /** Driver name. */
  readonly driver: string;
  /** The arena the frames come from. */
  readonly arena: Arena;
  /** Called to reclaim objects (see `EvictFn`); per thread. */
  evict?: EvictFn;
  /** Allocate `size` (1..4096) bytes; returns a handle or 0 when refused. */
  malloc(size: number): number;
  /** Free an object. Throws RangeError if the handle is not live. */
  free(handle: number): void;
  /** Requested size of a live object. */
  size(handle: number): number;
  /** Copy `len` bytes of `src` from `srcOff` into the object (len <= its size). */
  write(handle: number, src: Uint8Array, srcOff: number, len: number): void;
  /** Copy the object into `dst` at `dstOff`; returns its size. */
  read(handle: number, dst: Uint8Array, dstOff: number): number;
  /**
   * Allocation-free map: returns the object size and sets `mapBytes`/`mapOffset` to where the
   * bytes are (arena chunk view when contiguous, else the scratch buffer). Valid until the next
   * call on this pool instance from this thread, or until the object is freed.
   */
  locate(handle: number): number;
  /** Buffer set by `locate`/`map`. */
  mapBytes: Uint8Array;
  /** Offset set by `locate`/`map`. */
  mapOffset: number;
  /** View of the object (zero-copy when contiguous); call `unmap` when done. */
  map(handle: number): Uint8Array;
  /** End a `map`; writes a scratch copy back when the object was not contiguous. */
  unmap(handle: number): void;
  /** Tag an object with two owner words, given back to `evict`. */
  setTag(handle: number, tag0: number, tag1: number): void;
  /** Give back up to `pages` frames (evicting through `evict` or compacting); returns frames freed. */
  shrink(pages: number): number;
  /** Move objects to free frames (zsmalloc); returns frames freed. */
  compact(): number;
  /** Arena bytes held by the pool. */
  totalSize(): number;
  /** Figures. */
  stats(): ZpoolStats;
  /** Free every object and frame; the pool is empty and usable afterwards. */
  reset(): void;
  /** Handle for `attachZpool`. */
  handle(): ZpoolHandle;
  /** Hold off object moves (compaction) while using bytes found by `locate`. */
  pin(): void;
  /** End `pin`. */
  unpin(): void;
  /** Set, for all threads, the most frames this pool may hold. */
  setMaxFrames(n: number): void;
}

/** A registered allocator. */
export interface ZpoolDriver {
  /** Name to register under. */
  readonly name: string;
  /** Bytes of meta SAB the driver needs for `arena` with `opts`. */
  metaBytes(arena: Arena, opts: ZpoolOptions): number;
  /** Open a pool over `meta`; `init` formats a zero-filled buffer. */
  open(arena: Arena, meta: SharedArrayBuffer, init: boolean, opts: ZpoolOptions): Zpool;
}

const drivers = new Map<string, ZpoolDriver>();

/** Register a driver under its name (replacing one of the same name). */
export function registerDriver(driver: ZpoolDriver): void {
  drivers.set(driver.name, driver);
}

/** Names of the registered drivers. */
export function driverNames(): string[] {
  return [...drivers.keys()];
}

function getDriver(name: string): ZpoolDriver {
  const d = typeof name === 'string' ? drivers.get(name) : undefined;
  if (!d)
    throw new TypeError(`driver: unknown zpool driver ${JSON.stringify(name)}; accepted: ${driverNames().join(', ')}`);
  return d;
}

/** Bytes of meta buffer a pool of `driver` needs on `arena`. */
export function zpoolMetaBytes(driver: string, arena: Arena, opts: ZpoolOptions = {}): number {
  return getDriver(driver).metaBytes(arena, opts);
}

/** Create a pool of driver `driver` ('zsmalloc' or 'zbud') on `arena`. */
export function createZpool(driver: string, arena: Arena, opts: ZpoolOptions = {}): Zpool {
  const d = getDriver(driver);
  const meta = opts.meta ?? new SharedArrayBuffer(d.metaBytes(arena, opts));
  if (meta.byteLength < d.metaBytes(arena, opts))
    throw new RangeError(`meta: need ${d.metaBytes(arena, opts)} bytes, got ${meta.byteLength}`);
  return d.open(arena, meta, true, opts);
}

/** Open in this thread a pool created elsewhere, from its `handle()`. */
export function attachZpool(arena: Arena, handle: ZpoolHandle): Zpool {
  if (handle === null || typeof handle !== 'object' || !(handle.meta instanceof SharedArrayBuffer)) {
    throw new TypeError('handle: expected { driver: string, meta: SharedArrayBuffer }');
  }
  return getDriver(handle.driver).open(arena, handle.meta, false, {});
}

export { checkSize } from './common';

import { zsmallocDriver } from './zsmalloc';
import { zbudDriver } from './zbud';
registerDriver(zsmallocDriver);
registerDriver(zbudDriver);
