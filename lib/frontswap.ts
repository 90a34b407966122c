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
  constructor(private readonly tmem: Store, /** The persistent pool id. */ readonly pool: number) {}

  /** frontswap_store. Returns false if refused. */
  store(type: number, offset: number, src: Uint8Array, len: number): boolean {
    return this.tmem.put(this.pool, type, 0, 0, offset, src, len);
  }

  /** frontswap_load: copies the stored object into dst; its length, or -1 if absent. */
  load(type: number, offset: number, dst: Uint8Array): number {
    return this.tmem.get(this.pool, type, 0, 0, offset, dst, false);
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
