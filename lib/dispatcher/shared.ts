/**
 * Xen tmem's shared ephemeral pools, the dispatcher's half (README "Shared pools"). The
 * store itself, its layout and its locking are native (native/shared_pool.h); this module
 * is where mapped files meet it:
 *
 *   which files   read-only mappings (`writable: false`) of a swap opened with `shared`;
 *                 writable mappings and anonymous regions stay private to the process
 *   the key       the file's identity (device, inode, size, mtime, ctime) as 64 bits,
 *                 taken when the region is added and again whenever the file's generation
 *                 changes: a changed file has a new key and never meets its old pages
 *   fault         a NEVER page of a shared file: get() (no lock; every byte checked by
 *                 CRC-32C) before the file is read; a hit is not removed (other members
 *                 use it too: Xen's shared pools were non-exclusive)
 *   eviction      a clean page read at the file's current generation: put() (compresses
 *                 with liblz4, skips a page already there, gives up if the lock is held
 *                 too long); it replaces the private cleancache for these files
 *   budget        every budget look publishes what this member holds; with memoryLimit the
 *                 other members' holdings and the segment's used bytes come off this one's
 *                 budget (budget.ts), so memoryLimit is counted for the whole group
 */
import { native, type SharedStore } from '../native';
import * as P from './protocol';
import { G, opts } from './env';
import type { RegionState } from './regions';

/** This process's member attachment (undefined without `shared`). */
export const shared: SharedStore | undefined = opts.shared
  ? new native.SharedStore(opts.shared.name, opts.shared.size, true)
  : undefined;

/** Whether the region's clean pages go to the shared pool. */
export function isShared(r: RegionState): boolean {
  return shared !== undefined && r.isFile && !r.spec.writable && (r.shareLo | r.shareHi) !== 0;
}

/** Takes the file's key again (its generation changed, or it was just added). */
export function rekey(r: RegionState, identity: () => [number, number]): void {
  if (!shared || !r.isFile || r.spec.writable) return;
  const [lo, hi] = identity();
  r.shareLo = lo;
  r.shareHi = hi;
}

/** A fault on a NEVER page of a shared file: true if pageBuf now holds it (checked). */
export function sharedGet(r: RegionState, page: number, dst: Uint8Array): boolean {
  const res = shared!.get(r.shareLo, r.shareHi, page, dst);
  if (res === 1) {
    G[P.G_SHARED_HITS]++;
    return true;
  }
  if (res < 0) G[P.G_SHARED_BAD]++;
  else G[P.G_SHARED_MISSES]++;
  return false;
}

/** A clean page of a shared file leaves memory (its bytes at src[off]). */
export function sharedPut(r: RegionState, page: number, src: Uint8Array, off: number): void {
  const res = shared!.put(r.shareLo, r.shareHi, page, src, off);
  if (res === 1) G[P.G_SHARED_PUTS]++;
  else if (res === 2) G[P.G_SHARED_ALREADY]++;
  else G[P.G_SHARED_BUSY]++;
}

/** At each budget look: publish what this member holds, free dead members' slots, read the others'. */
export function sharedTick(heldBytes: number): void {
  if (!shared) return;
  shared.publishHeld(heldBytes);
  shared.reclaimDead();
  G[P.G_SHARED_OTHERS] = shared.othersHeld();
  G[P.G_SHARED_USED] = shared.usedBytes();
}

/** Bytes that come off this member's memoryLimit budget for the rest of the group. */
export function groupBytes(): number {
  return shared ? G[P.G_SHARED_OTHERS] + G[P.G_SHARED_USED] : 0;
}

/** The dispatcher is stopping: the member slot is given back, the segment detached. */
export function closeShared(): void {
  shared?.close();
}
