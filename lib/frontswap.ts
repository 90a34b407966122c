/**
 * frontswap: the front-end for anonymous regions, over a persistent tmem pool.
 *
 * As in Linux, a swap *type* is a region and an *offset* is a page index:
 *
 *   store(type, offset, obj)    put into the persistent pool; may be refused
 *                               (pool full or allocator refuses): the page then
 *                               stays resident (the swap file tier is later)
 *   load(type, offset, dst)     get, keeping the copy (a clean page evicted again
 *                               costs no compression and no store)
 *   invalidatePage(type, off)   the page was written: its copy is stale
 *   invalidateArea(type)        the region was closed (flush object)
 *
 * Keys: object id (type, 0, 0), index = offset.
 */
import type { Store } from './tmem';

export class Frontswap {
  constructor(
    private readonly tmem: Store,
    /** The persistent pool id. */ readonly pool: number,
  ) {}

  /** frontswap_store. Returns false if refused. */
  store(type: number, offset: number, src: Uint8Array, len: number): boolean {
    return this.tmem.put(this.pool, type, 0, 0, offset, src, len);
  }

  /** frontswap_load: copies the stored object into dst; its length, or -1 if absent. */
  load(type: number, offset: number, dst: Uint8Array): number {
    return this.tmem.get(this.pool, type, 0, 0, offset, dst, false);
  }

  /**
   * Zero-copy load: the object's length (or -1), its bytes at
   * viewBytes[viewOffset ..]. Valid until the next call on this thread's store
   * and while no other thread flushes, replaces or compacts (the dispatcher is
   * the pool's only writer).
   */
  view(type: number, offset: number): number {
    return this.tmem.getView(this.pool, type, 0, 0, offset);
  }
  get viewBytes(): Uint8Array {
    return this.tmem.viewBytes;
  }
  get viewOffset(): number {
    return this.tmem.viewOffset;
  }

  /** frontswap_invalidate_page. */
  invalidatePage(type: number, offset: number): void {
    this.tmem.flushPage(this.pool, type, 0, 0, offset);
  }

  /** frontswap_invalidate_area. */
  invalidateArea(type: number): void {
    this.tmem.flushObject(this.pool, type, 0, 0);
  }
}
