/**
 * cleancache: the front-end for file-backed regions, over an ephemeral tmem pool.
 *
 *   put(inode, index, obj)      a clean page leaves memory; the pool may keep it
 *                               or drop it at any time (zbud reclaim)
 *   get(inode, index, dst)      exclusive: a hit removes the page from the pool;
 *                               a miss means "read the file"
 *   invalidatePage / invalidateInode   the file page / the whole mapping is gone
 *
 * Keys: object id (inode = region id, 0, 0), index = page of the file.
 * Coherency (put-put-get, get-get) comes from the tmem core: a duplicate put
 * replaces, an ephemeral get removes.
 */
import type { Store } from './tmem';

export class Cleancache {
  constructor(
    private readonly tmem: Store,
    /** The ephemeral pool id. */ readonly pool: number,
  ) {}

  /** cleancache_put_page. False if the pool would not take it (nothing is lost: the file has it). */
  put(inode: number, index: number, src: Uint8Array, len: number): boolean {
    return this.tmem.put(this.pool, inode, 0, 0, index, src, len);
  }

  /** cleancache_get_page: length copied into dst, or -1 on a miss. */
  get(inode: number, index: number, dst: Uint8Array): number {
    return this.tmem.get(this.pool, inode, 0, 0, index, dst);
  }

  /** cleancache_invalidate_page. */
  invalidatePage(inode: number, index: number): void {
    this.tmem.flushPage(this.pool, inode, 0, 0, index);
  }

  /** cleancache_invalidate_inode. */
  invalidateInode(inode: number): void {
    this.tmem.flushObject(this.pool, inode, 0, 0);
  }
}
