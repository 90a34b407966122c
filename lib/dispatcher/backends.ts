/**
 * The store behind a swap: one tmem Store on a SharedArrayBuffer arena with
 * a persistent pool (frontswap) and an ephemeral pool (cleancache).
 *
 * The main thread creates it (createStore) and reads its figures (storeStats);
 * the dispatcher attaches to it (openBackends).
 */
import { Store, type StoreHandle as TmemHandle } from '../tmem';
import { Frontswap } from '../frontswap';
import { Cleancache } from '../cleancache';
import type { DispatcherOptions } from './protocol';
import { native } from '../native';

/** What crosses to the dispatcher. */
export interface StoreInit {
  store: TmemHandle;
  frontswapPool: number;
  cleancachePool: number;
}

/** Main-thread side of the store. */
export interface StoreHandle {
  store: Store;
  handle: StoreInit;
}

export interface Backends {
  frontswap: Frontswap;
  cleancache: Cleancache;
  /** Arena bytes both pools hold. */
  poolBytes(): number;
  /** zsmalloc compaction of the persistent pool (frees zspages after write-back). */
  compact(): number;
  /**
   * Arena bytes committed: frames touched since their last release, held or free. Frames the
   * pools free stay committed until their whole 64 MiB chunk is free or trim() runs.
   */
  committedBytes(): number;
  /** Gives every run of free committed frames back to the OS; returns the bytes released. */
  trim(): number;
}

// 64 MiB: above glibc's largest dynamic mmap threshold (32 MiB), so every chunk is its own
// mmap and calloc() touches none of it (a 16 MiB chunk can come from the heap and be
// cleared by hand, committing memory the pool never uses).
const CHUNK = 64 * 2 ** 20;

/** Creates the arena, the store and both pools, sized for `arenaBytes` (else `poolLimitBytes`). */
export function createStore(o: DispatcherOptions): StoreHandle {
  const limit = o.arenaBytes ?? o.poolLimitBytes;
  const chunkBytes = limit >= CHUNK ? CHUNK : 2 ** Math.max(17, Math.ceil(Math.log2(limit)));
  const maxBytes = Math.ceil(limit / chunkBytes) * chunkBytes;
  const frames = maxBytes / 4096;
  const store = Store.create({
    arena: { maxBytes, chunkBytes },
    maxPools: 4,
    // Up to ~6 compressed pages per frame for very compressible data, within the index limit.
    maxPages: Math.min(2 ** 28, Math.max(4096, frames * 6)),
    maxObjects: 65536,
  });
  const frontswapPool = store.createPool({ persistent: true, driver: o.allocator });
  const cleancachePool = store.createPool({ persistent: false, driver: 'zbud' });
  return { store, handle: { store: store.handle(), frontswapPool, cleancachePool } };
}

/** Pool figures for stats(). */
export function storeStats(h: StoreHandle): {
  poolBytes: number;
  compressedBytes: number;
  frontswapPages: number;
  cleancachePages: number;
} {
  const a = h.store.poolStats(h.handle.frontswapPool);
  const b = h.store.poolStats(h.handle.cleancachePool);
  // cleancache pages are counted by the pool itself: zbud reclaim and invalidate_inode drop them silently.
  // Pages and bytes come from the same cells, so a ratio of the two is always consistent.
  return {
    poolBytes: a.poolBytes + b.poolBytes,
    compressedBytes: a.bytes + b.bytes,
    frontswapPages: a.pages,
    cleancachePages: b.pages,
  };
}

/** The dispatcher's side: attach and wrap the pools in their front-ends. */
export function openBackends(init: unknown, _o: DispatcherOptions): Backends {
  const i = init as StoreInit;
  const store = Store.attach(i.store);
  // Frames the allocators free for good go back to the OS (the dispatcher is
  // the thread that frees them).
  const arena = store.arena;
  arena.onRelease = (chunk, frame, count) => {
    native.discardBuffer(arena.bytes[chunk], frame * 4096, count * 4096);
  };
  const fsPool = store.zpool(i.frontswapPool);
  const ccPool = store.zpool(i.cleancachePool);
  return {
    frontswap: new Frontswap(store, i.frontswapPool),
    cleancache: new Cleancache(store, i.cleancachePool),
    poolBytes: () => fsPool.totalSize() + ccPool.totalSize(),
    compact: () => fsPool.compact(),
    committedBytes: () => arena.dirtyFrames() * 4096,
    trim: () => arena.trim() * 4096,
  };
}
