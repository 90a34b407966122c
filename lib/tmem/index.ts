/*
 * tmem core: pools, objects and the page index, after the kernel's tmem (Xen / drivers/staging
 * zcache). A page is named by (pool, object id = three 64-bit words, page index u32). Every
 * structure lives in SharedArrayBuffers, so a Store handed to several Workers is one store.
 *
 * Buffers (all in the StoreHandle):
 *   arena     frames holding the page data (lib/arena.ts)
 *   metas[p]  one zpool meta buffer per pool slot (zsmalloc or zbud; lib/zpool/)
 *   stats     Float64 [pool][stripe] = (pages, bytes), each cell written under its stripe lock
 *   control   Int32 words:
 *
 *   +--------+-------------+--------------+---------------+-----------------+-----------+-------------+
 *   | header | pool table  | stripe table | object hashes | object records  | node      | nodes       |
 *   | 64 w   | maxPools x  | nStripes x 4 | nStripes x    | maxObjects x    | COUNTs    | (maxNodes+1)|
 *   |        | 16 w        | LOCK FREE    | ohCap (rec+1) | 12 w            | maxNodes  | x 64 w      |
 *   |        |             | BUMP COUNT   |               |                 | + 1 w     | (pagetable) |
 *   +--------+-------------+--------------+---------------+-----------------+-----------+-------------+
 *   header: MAGIC POOLS_LOCK MAX_POOLS NSTRIPES OPS OHCAP MAX_NODES MAX_PAGES | [16] PAGES |
 *           [32] node pool LOCK FREE BUMP MAX USED
 *   pool:   STATE USERS FLAGS DRIVER GEN UUID[4] EVICTED
 *   object: POOL+1 (0 = free) OID lo/hi x 3 PAGES | tree ROOT BASE HEIGHT (NEXTFREE when free) | HASH
 *
 *   object slot -> stripe = slot & (nStripes - 1) (each stripe allocates its own slots)
 *   oidHash -> stripe = h & (nStripes - 1), home in the stripe's hash = (h >>> stripeBits) % ohCap
 *   page index -> the object's radix tree of 64-slot nodes (lib/tmem/pagetable.ts)
 *
 * Index cost: ~4.1 bytes per stored page when an object's pages are dense (a 256 B leaf + a
 * 4 B count per 64 pages, ~1/64 of that above), nothing beyond the 48 B object record for an
 * object of one page, up to a leaf and its path per page when pages are scattered. The node
 * pool is sized for maxPages / 4 nodes (maxPages pages at >= 8 per leaf on average) but
 * reserves only address space: nodes are taken by bump, so the memory touched follows what
 * is stored. PAGES bounds the pages of all pools by maxPages.
 *
 * Locks and their order (never take an earlier one while holding a later one):
 *   1. pool USERS count (not a lock: ops enter/leave; destroyPool waits for zero)
 *   2. stripe lock of the object (all pages of an object are changed under it; the object's
 *      tree is read and written only under it)
 *   3. node pool lock (short: taking or giving back tree nodes)
 *   4. zsmalloc MIGRATE read lock (inside zpool.read)
 * The zpool ALLOC lock is never taken while a stripe lock is held: a put mallocs before it
 * locks, and frees the replaced handle after it unlocks. zbud reclaim calls the evict callback
 * with ALLOC held and that callback takes 2 then 3, so the order there is ALLOC -> 2 -> 3.
 * A get on one object waits for a put on another only when both hash to the same stripe; a
 * put that needs a new node waits for another thread taking or freeing one.
 *
 * Invariants (under the stripe lock): an object record exists iff it has >= 1 page; PAGES of
 * a record is the number of pages in its tree; each live zpool handle of a pool is in exactly
 * one tree (or is owned by the thread between malloc and insert / delete and free); stats
 * cells equal the sums over the stripe's trees; header PAGES = sum of the records' PAGES.
 */

import { Arena, ArenaHandle, ArenaOptions, FRAME_SIZE } from '../arena';
import { Zpool, attachZpool, createZpool, zpoolMetaBytes } from '../zpool';
import { lock, unlock } from './lock';
import { oidHash, isOidNumber, lo32, hi32, bigLo32, bigHi32 } from './hash';
import { RadixIndex, MAX_NODES, NODE_SLOTS, formatNodePool, nodePoolWords } from './pagetable';

const MAGIC = 0x544d454d; // 'TMEM'
const H_MAGIC = 0,
  H_POOLS_LOCK = 1,
  H_MAX_POOLS = 2,
  H_NSTRIPES = 3,
  H_OPS = 4,
  H_OHCAP = 5,
  H_MAX_NODES = 6,
  H_MAX_PAGES = 7;
const H_PAGES = 16; // pages stored in all pools (own cache line: every new page adds to it)
const H_NODE_POOL = 32; // node pool header (own cache line), see pagetable.ts
const HDR = 64;
const PW = 16;
const P_STATE = 0,
  P_USERS = 1,
  P_FLAGS = 2,
  P_DRIVER = 3,
  P_GEN = 4,
  P_UUID = 5,
  P_EVICTED = 9;
const DESTROYING = 1 << 30;
const USERS_MASK = DESTROYING - 1;
const F_PERSISTENT = 1,
  F_SHARED = 2;
const SW = 4;
const S_LOCK = 0,
  S_FREE = 1,
  S_BUMP = 2,
  S_COUNT = 3;
const RW = 12;
const R_POOL = 0,
  R_OID = 1,
  R_PAGES = 7,
  R_TREE = 8,
  R_HASH = 11;
const R_NEXT = 10; // free-list link of a free record (the tree's HEIGHT word while in use)
const DRIVERS = ['zsmalloc', 'zbud'];

/** An object id: one number/bigint (words 1 and 2 zero) or three words. */
export type Oid = number | bigint | readonly [number | bigint, number | bigint, number | bigint];

/** Options of `Store.create`. */
export interface StoreOptions {
  /** Arena options (size limit, chunk size). */
  arena?: ArenaOptions;
  /** Most pools (default 16). */
  maxPools?: number;
  /**
   * Most pages stored in all pools together (default 4 per arena frame); puts of new pages
   * beyond it are refused. Sizes the index's node pool (address space; memory is touched as used).
   */
  maxPages?: number;
  /** Most objects alive at once (default 65536). */
  maxObjects?: number;
}

/** Options of `Store.createPool`. */
export interface PoolOptions {
  /** Persistent (frontswap: kept until flushed) or ephemeral (cleancache: may be dropped). Default false. */
  persistent?: boolean;
  /** Shared pool, found by `uuid` by every caller that names it. Default false. */
  shared?: boolean;
  /** 16-byte uuid of a shared pool (Uint8Array(16) or a 32-hex-digit string, dashes allowed). */
  uuid?: Uint8Array | string;
  /**
   * zpool driver: 'zbud' (default for ephemeral) or 'zsmalloc' (default for persistent). Only
   * zbud can evict; an ephemeral zsmalloc pool refuses puts when full instead of dropping pages.
   */
  driver?: string;
  /** Most arena frames this pool may hold (default: the whole arena). */
  maxFrames?: number;
}

/** Structured-cloneable description of a store: `postMessage` it, then `Store.attach`. */
export interface StoreHandle {
  readonly arena: ArenaHandle;
  readonly control: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly metas: readonly SharedArrayBuffer[];
}

/** Per-pool figures. */
export interface PoolStats {
  /** Pool id. */
  pool: number;
  /** Persistent or ephemeral. */
  persistent: boolean;
  /** Shared pool. */
  shared: boolean;
  /** zpool driver. */
  driver: string;
  /** Pages stored. */
  pages: number;
  /** Bytes stored (sum of page lengths as put). */
  bytes: number;
  /** Arena bytes held by the pool's allocator. */
  poolBytes: number;
  /** Pages dropped by reclaim (ephemeral pools). */
  evicted: number;
}

/** Figures of the page index (`Store.indexStats`). */
export interface IndexStats {
  /** Pages stored in all pools. */
  pages: number;
  /** Most pages (`StoreOptions.maxPages`). */
  maxPages: number;
  /** Radix tree nodes in use. */
  nodes: number;
  /** Most nodes. */
  maxNodes: number;
  /** Nodes ever taken from the untouched part of the node pool. */
  touchedNodes: number;
  /** Bytes per node (slots and count). */
  nodeBytes: number;
}

/** Called by `getWith` with the page bytes in place: `bytes[offset .. offset + len)`. */
export type PageReader = (bytes: Uint8Array, offset: number, len: number) => void;

/** Word of node 0: after the COUNT array at `cnt`, on a 64-byte boundary. */
function nodesBase(cnt: number, maxNodes: number): number {
  return (cnt + nodePoolWords(maxNodes).counts + 15) & ~15;
}

function pow2ceil(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}

function badOid(): never {
  throw new TypeError('oid: expected three integers from 0 to 2^53-1 (or bigints from 0 to 2^64-1)');
}

/**
 * A tmem store: pools of pages keyed by (object id, index). One instance per thread; create it
 * once, pass `handle()` to Workers, `Store.attach` there.
 */
export class Store {
  /** The frames the pages live in. */
  readonly arena: Arena;
  /**
   * Set by `getView`: the bytes of the page are `viewBytes[viewOffset .. viewOffset + length)`,
   * valid until the next call on this instance.
   */
  viewBytes: Uint8Array;
  /** See `viewBytes`. */
  viewOffset = 0;

  private readonly c: Int32Array;
  private readonly st: Float64Array;
  private readonly h: StoreHandle;
  private readonly maxPools: number;
  private readonly nStripes: number;
  private readonly stripeBits: number;
  private readonly ohCap: number;
  private readonly POOLS = HDR;
  private readonly STRIPES: number;
  private readonly OH: number;
  private readonly REC: number;
  private readonly ix: RadixIndex;
  private readonly maxPages: number;
  private readonly zps: (Zpool | undefined)[] = [];
  private readonly gens: number[] = [];
  private readonly staging = new Uint8Array(FRAME_SIZE);
  private readonly flushBuf: number[] = [];

  private constructor(arena: Arena, h: StoreHandle) {
    this.arena = arena;
    this.h = h;
    const c = new Int32Array(h.control);
    if (Atomics.load(c, H_MAGIC) !== MAGIC) throw new TypeError('handle: not a tmem store handle');
    this.c = c;
    this.st = new Float64Array(h.stats);
    this.maxPools = c[H_MAX_POOLS];
    this.nStripes = c[H_NSTRIPES];
    this.stripeBits = 31 - Math.clz32(this.nStripes);
    this.ohCap = c[H_OHCAP];
    this.STRIPES = this.POOLS + this.maxPools * PW;
    this.OH = this.STRIPES + this.nStripes * SW;
    this.REC = this.OH + this.nStripes * this.ohCap;
    const cnt = this.REC + this.nStripes * c[H_OPS] * RW;
    this.ix = new RadixIndex(c, H_NODE_POOL, cnt, nodesBase(cnt, c[H_MAX_NODES]));
    this.maxPages = c[H_MAX_PAGES];
    this.viewBytes = this.staging;
    for (let p = 0; p < this.maxPools; p++) {
      this.zps.push(undefined);
      this.gens.push(-1);
    }
  }

  /** Create a store and its arena. */
  static create(opts: StoreOptions = {}): Store {
    const arena = Arena.create(opts.arena);
    const maxPools = opts.maxPools ?? 16;
    if (!Number.isInteger(maxPools) || maxPools < 1 || maxPools > 1024) {
      throw new RangeError(`maxPools: expected an integer from 1 to 1024, got ${maxPools}`);
    }
    const maxPages = opts.maxPages ?? Math.max(1024, arena.maxFrames * 4);
    if (!Number.isInteger(maxPages) || maxPages < 1 || maxPages > 2 ** 28) {
      throw new RangeError(`maxPages: expected an integer from 1 to 2^28, got ${maxPages}`);
    }
    const maxObjects = opts.maxObjects ?? 65536;
    if (!Number.isInteger(maxObjects) || maxObjects < 1 || maxObjects > 2 ** 24) {
      throw new RangeError(`maxObjects: expected an integer from 1 to 2^24, got ${maxObjects}`);
    }
    const nStripes = Math.min(256, pow2ceil(Math.ceil(maxObjects / 8)));
    const ops = Math.ceil(maxObjects / nStripes);
    const ohCap = pow2ceil(ops * 2);
    const maxNodes = Math.min(MAX_NODES, Math.ceil(maxPages / 4) + 64);
    const cnt = HDR + maxPools * PW + nStripes * SW + nStripes * ohCap + nStripes * ops * RW;
    const words = nodesBase(cnt, maxNodes) + nodePoolWords(maxNodes).nodes;
    const control = new SharedArrayBuffer(words * 4);
    const c = new Int32Array(control);
    c[H_MAX_POOLS] = maxPools;
    c[H_NSTRIPES] = nStripes;
    c[H_OPS] = ops;
    c[H_OHCAP] = ohCap;
    c[H_MAX_NODES] = maxNodes;
    c[H_MAX_PAGES] = maxPages;
    formatNodePool(c, H_NODE_POOL, maxNodes);
    const stripes = HDR + maxPools * PW;
    for (let s = 0; s < nStripes; s++) c[stripes + s * SW + S_FREE] = -1;
    const metaBytes = Math.max(...DRIVERS.map((d) => zpoolMetaBytes(d, arena)));
    const metas: SharedArrayBuffer[] = [];
    for (let p = 0; p < maxPools; p++) metas.push(new SharedArrayBuffer(metaBytes));
    const stats = new SharedArrayBuffer(maxPools * nStripes * 2 * 8);
    Atomics.store(c, H_MAGIC, MAGIC);
    return new Store(arena, { arena: arena.handle(), control, stats, metas });
  }

  /** Open in this thread a store created elsewhere, from its `handle()`. */
  static attach(handle: StoreHandle): Store {
    if (
      handle === null ||
      typeof handle !== 'object' ||
      !(handle.control instanceof SharedArrayBuffer) ||
      !(handle.stats instanceof SharedArrayBuffer) ||
      !Array.isArray(handle.metas)
    ) {
      throw new TypeError('handle: expected a StoreHandle from Store.handle()');
    }
    return new Store(Arena.attach(handle.arena), handle);
  }

  /** The structured-cloneable handle for `postMessage` / `workerData`. */
  handle(): StoreHandle {
    return this.h;
  }

  // ---------------------------------------------------------------- pools

  /**
   * Create a pool; returns its id. A shared pool with a uuid already in use returns that pool.
   */
  createPool(opts: PoolOptions = {}): number {
    const persistent = opts.persistent ?? false;
    if (typeof persistent !== 'boolean')
      throw new TypeError(`persistent: expected a boolean, got ${typeof persistent}`);
    const shared = opts.shared ?? false;
    if (typeof shared !== 'boolean') throw new TypeError(`shared: expected a boolean, got ${typeof shared}`);
    const driver = opts.driver ?? (persistent ? 'zsmalloc' : 'zbud');
    const d = DRIVERS.indexOf(driver);
    if (d < 0)
      throw new TypeError(`driver: unknown zpool driver ${JSON.stringify(driver)}; accepted: ${DRIVERS.join(', ')}`);
    const uuid = new Int32Array(4);
    if (shared) {
      if (opts.uuid === undefined) throw new TypeError('uuid: a shared pool needs a 16-byte uuid');
      uuid.set(new Int32Array(parseUuid(opts.uuid).buffer));
    } else if (opts.uuid !== undefined) parseUuid(opts.uuid);
    const c = this.c;
    lock(c, H_POOLS_LOCK);
    try {
      if (shared) {
        for (let p = 0; p < this.maxPools; p++) {
          const b = this.POOLS + p * PW;
          if (
            c[b + P_STATE] === 1 &&
            c[b + P_FLAGS] & F_SHARED &&
            c[b + P_UUID] === uuid[0] &&
            c[b + P_UUID + 1] === uuid[1] &&
            c[b + P_UUID + 2] === uuid[2] &&
            c[b + P_UUID + 3] === uuid[3] &&
            (Atomics.load(c, b + P_USERS) & DESTROYING) === 0
          ) {
            if (((c[b + P_FLAGS] & F_PERSISTENT) !== 0) !== persistent) {
              throw new TypeError(
                `persistent: shared pool ${p} with this uuid is ${persistent ? 'ephemeral' : 'persistent'}`,
              );
            }
            return p;
          }
        }
      }
      for (let p = 0; p < this.maxPools; p++) {
        const b = this.POOLS + p * PW;
        if (c[b + P_STATE] !== 0) continue;
        const zp = createZpool(driver, this.arena, { meta: this.h.metas[p], maxFrames: opts.maxFrames });
        c[b + P_FLAGS] = (persistent ? F_PERSISTENT : 0) | (shared ? F_SHARED : 0);
        c[b + P_DRIVER] = d;
        for (let i = 0; i < 4; i++) c[b + P_UUID + i] = uuid[i];
        c[b + P_EVICTED] = 0;
        this.st.fill(0, p * this.nStripes * 2, (p + 1) * this.nStripes * 2);
        Atomics.add(c, b + P_GEN, 1);
        Atomics.store(c, b + P_STATE, 1);
        this.bindZpool(p, zp);
        return p;
      }
      throw new RangeError(`pool: all ${this.maxPools} pools are in use (maxPools)`);
    } finally {
      unlock(c, H_POOLS_LOCK);
    }
  }

  private bindZpool(p: number, zp: Zpool): void {
    const persistent = (this.c[this.POOLS + p * PW + P_FLAGS] & F_PERSISTENT) !== 0;
    if (!persistent) zp.evict = (h, t0, t1) => this.evictPage(p, h, t0, t1);
    this.zps[p] = zp;
    this.gens[p] = Atomics.load(this.c, this.POOLS + p * PW + P_GEN);
  }

  /** Validate `pool`, count this thread in as a user; returns its zpool. */
  private enter(pool: number): Zpool {
    const b = this.POOLS + pool * PW;
    let zp = this.zps[pool];
    if (zp === undefined || this.gens[pool] !== Atomics.load(this.c, b + P_GEN)) zp = this.open(pool);
    const v = Atomics.add(this.c, b + P_USERS, 1);
    if ((v & DESTROYING) !== 0) {
      this.leave(pool);
      throw new RangeError(`pool: pool ${pool} is being destroyed`);
    }
    if (Atomics.load(this.c, b + P_GEN) !== this.gens[pool]) {
      // destroyed (and maybe re-created) between the check and the count: start again
      this.leave(pool);
      this.zps[pool] = undefined;
      return this.enter(pool);
    }
    return zp;
  }

  private leave(pool: number): void {
    const w = this.POOLS + pool * PW + P_USERS;
    const v = Atomics.sub(this.c, w, 1);
    if ((v & DESTROYING) !== 0 && (v & USERS_MASK) === 1) Atomics.notify(this.c, w);
  }

  private open(pool: number): Zpool {
    if (!Number.isInteger(pool) || pool < 0 || pool >= this.maxPools) {
      throw new RangeError(`pool: expected a pool id from 0 to ${this.maxPools - 1}, got ${pool}`);
    }
    const b = this.POOLS + pool * PW;
    if (Atomics.load(this.c, b + P_STATE) !== 1) throw new RangeError(`pool: no pool with id ${pool}`);
    const zp = attachZpool(this.arena, { driver: DRIVERS[this.c[b + P_DRIVER]], meta: this.h.metas[pool] });
    this.bindZpool(pool, zp);
    return zp;
  }

  /** True if `pool` is persistent (frontswap), false if ephemeral (cleancache). */
  isPersistent(pool: number): boolean {
    this.enter(pool);
    this.leave(pool);
    return (this.c[this.POOLS + pool * PW + P_FLAGS] & F_PERSISTENT) !== 0;
  }

  /**
   * Destroy a pool: waits for operations in flight, drops every page, frees its frames.
   */
  destroyPool(pool: number): void {
    this.enter(pool);
    const c = this.c;
    const b = this.POOLS + pool * PW;
    const prev = Atomics.or(c, b + P_USERS, DESTROYING);
    if ((prev & DESTROYING) !== 0) {
      this.leave(pool);
      throw new RangeError(`pool: pool ${pool} is being destroyed`);
    }
    this.leave(pool);
    for (;;) {
      const v = Atomics.load(c, b + P_USERS);
      if ((v & USERS_MASK) === 0) break;
      Atomics.wait(c, b + P_USERS, v, 10);
    }
    const zp = this.zps[pool] as Zpool;
    for (let s = 0; s < this.nStripes; s++) {
      const sl = this.STRIPES + s * SW;
      lock(c, sl + S_LOCK);
      try {
        const bump = c[sl + S_BUMP];
        for (let k = 0; k < bump; k++) {
          const slot = k * this.nStripes + s;
          const r = this.REC + slot * RW;
          if (c[r + R_POOL] !== pool + 1) continue;
          this.dropObjectPages(slot, null);
          this.freeObject(s, slot);
        }
      } finally {
        unlock(c, sl + S_LOCK);
      }
    }
    zp.reset();
    lock(c, H_POOLS_LOCK);
    this.st.fill(0, pool * this.nStripes * 2, (pool + 1) * this.nStripes * 2);
    Atomics.add(c, b + P_GEN, 1);
    Atomics.store(c, b + P_STATE, 0);
    Atomics.and(c, b + P_USERS, ~DESTROYING); // late callers' +1/-1 stay balanced
    unlock(c, H_POOLS_LOCK);
    this.zps[pool] = undefined;
  }

  /** Figures of one pool. */
  poolStats(pool: number): PoolStats {
    const zp = this.enter(pool);
    try {
      const b = this.POOLS + pool * PW;
      let pages = 0,
        bytes = 0;
      for (let s = 0; s < this.nStripes; s++) {
        pages += this.st[(pool * this.nStripes + s) * 2];
        bytes += this.st[(pool * this.nStripes + s) * 2 + 1];
      }
      return {
        pool,
        persistent: (this.c[b + P_FLAGS] & F_PERSISTENT) !== 0,
        shared: (this.c[b + P_FLAGS] & F_SHARED) !== 0,
        driver: zp.driver,
        pages,
        bytes,
        poolBytes: zp.totalSize(),
        evicted: Atomics.load(this.c, b + P_EVICTED),
      };
    } finally {
      this.leave(pool);
    }
  }

  /**
   * Figures of the page index, over all pools: pages stored (bounded by `maxPages`), radix
   * tree nodes in use, the most there may be, and how many were ever taken (the node memory
   * touched is `touchedNodes * nodeBytes`).
   */
  indexStats(): IndexStats {
    const n = this.ix.nodes();
    return {
      pages: Atomics.load(this.c, H_PAGES),
      maxPages: this.maxPages,
      nodes: n.used,
      maxNodes: n.max,
      touchedNodes: n.touched,
      nodeBytes: NODE_SLOTS * 4 + 4,
    };
  }

  /**
   * Check the index (tests; takes every stripe lock in turn, so run it while the store is
   * quiet): each object's tree is sound and holds PAGES pages, the trees use every node in
   * use, and the pages add up to the stored total. Throws on a broken invariant.
   */
  checkIndex(): void {
    const c = this.c;
    let pages = 0,
      nodes = 0;
    for (let s = 0; s < this.nStripes; s++) {
      const sl = this.STRIPES + s * SW;
      lock(c, sl + S_LOCK);
      try {
        for (let k = 0; k < c[sl + S_BUMP]; k++) {
          const r = this.REC + (k * this.nStripes + s) * RW;
          if (c[r + R_POOL] === 0) continue;
          const [p, n] = this.ix.check(r + R_TREE);
          if (p !== c[r + R_PAGES] || p === 0)
            throw new Error(`index: object ${k * this.nStripes + s} has ${p} pages, PAGES ${c[r + R_PAGES]}`);
          pages += p;
          nodes += n;
        }
      } finally {
        unlock(c, sl + S_LOCK);
      }
    }
    const st = this.indexStats();
    if (pages !== st.pages) throw new Error(`index: trees hold ${pages} pages, PAGES ${st.pages}`);
    if (nodes !== st.nodes) throw new Error(`index: trees hold ${nodes} nodes, ${st.nodes} in use`);
  }

  /** The allocator of a pool (for its own stats, `compact`, `shrink`). */
  zpool(pool: number): Zpool {
    const zp = this.enter(pool);
    this.leave(pool);
    return zp;
  }

  // ---------------------------------------------------------------- objects (stripe lock held)

  private findObj(
    stripe: number,
    h: number,
    pool: number,
    lo0: number,
    hi0: number,
    lo1: number,
    hi1: number,
    lo2: number,
    hi2: number,
  ): number {
    const c = this.c,
      cap = this.ohCap;
    const hb = this.OH + stripe * cap;
    let i = (h >>> this.stripeBits) % cap;
    for (let n = 0; n < cap; n++) {
      const e = c[hb + i];
      if (e === 0) return -1;
      const r = this.REC + (e - 1) * RW;
      if (
        c[r + R_POOL] === pool + 1 &&
        c[r + R_OID] === lo0 &&
        c[r + R_OID + 1] === hi0 &&
        c[r + R_OID + 2] === lo1 &&
        c[r + R_OID + 3] === hi1 &&
        c[r + R_OID + 4] === lo2 &&
        c[r + R_OID + 5] === hi2
      ) {
        return e - 1;
      }
      if (++i === cap) i = 0;
    }
    return -1;
  }

  private newObj(
    stripe: number,
    h: number,
    pool: number,
    lo0: number,
    hi0: number,
    lo1: number,
    hi1: number,
    lo2: number,
    hi2: number,
  ): number {
    const c = this.c,
      cap = this.ohCap;
    const sl = this.STRIPES + stripe * SW;
    if (c[sl + S_COUNT] >= cap - 1) return -1;
    let k = c[sl + S_FREE];
    let slot: number;
    if (k >= 0) {
      slot = k;
      c[sl + S_FREE] = c[this.REC + slot * RW + R_NEXT];
    } else {
      k = c[sl + S_BUMP];
      if (k >= c[H_OPS]) return -1;
      c[sl + S_BUMP] = k + 1;
      slot = k * this.nStripes + stripe;
    }
    const r = this.REC + slot * RW;
    c[r + R_POOL] = pool + 1;
    c[r + R_OID] = lo0;
    c[r + R_OID + 1] = hi0;
    c[r + R_OID + 2] = lo1;
    c[r + R_OID + 3] = hi1;
    c[r + R_OID + 4] = lo2;
    c[r + R_OID + 5] = hi2;
    c[r + R_PAGES] = 0;
    c[r + R_TREE] = 0;
    c[r + R_TREE + 1] = 0;
    c[r + R_TREE + 2] = 0;
    c[r + R_HASH] = h;
    const hb = this.OH + stripe * cap;
    let i = (h >>> this.stripeBits) % cap;
    while (c[hb + i] !== 0) if (++i === cap) i = 0;
    c[hb + i] = slot + 1;
    c[sl + S_COUNT]++;
    return slot;
  }

  private freeObject(stripe: number, slot: number): void {
    const c = this.c,
      cap = this.ohCap;
    const hb = this.OH + stripe * cap;
    const r = this.REC + slot * RW;
    let i = (c[r + R_HASH] >>> this.stripeBits) % cap;
    while (c[hb + i] !== slot + 1) if (++i === cap) i = 0;
    let j = i;
    for (;;) {
      if (++j === cap) j = 0;
      const e = c[hb + j];
      if (e === 0) break;
      const k = (c[this.REC + (e - 1) * RW + R_HASH] >>> this.stripeBits) % cap;
      const inRange = i <= j ? k > i && k <= j : k > i || k <= j;
      if (inRange) continue;
      c[hb + i] = e;
      i = j;
    }
    c[hb + i] = 0;
    c[r + R_POOL] = 0;
    const sl = this.STRIPES + stripe * SW;
    c[sl + S_COUNT]--;
    c[r + R_NEXT] = c[sl + S_FREE];
    c[sl + S_FREE] = slot;
  }

  /**
   * Remove every page of an object (its tree is freed); pushes the handles to `out` unless null
   * (destroyPool: the stats are reset and the zpool emptied afterwards). Stripe lock held.
   */
  private dropObjectPages(slot: number, out: number[] | null): number {
    const c = this.c;
    const r = this.REC + slot * RW;
    const pool = c[r + R_POOL] - 1;
    const stripe = slot & (this.nStripes - 1);
    const cell = (pool * this.nStripes + stripe) * 2;
    const from = out ? out.length : 0;
    const dropped = this.ix.drain(r + R_TREE, out);
    const zp = this.zps[pool];
    if (out && zp) {
      let bytes = 0;
      for (let i = from; i < out.length; i++) bytes += zp.size(out[i]);
      this.st[cell + 1] -= bytes;
    }
    this.st[cell] -= dropped;
    c[r + R_PAGES] -= dropped;
    Atomics.sub(c, H_PAGES, dropped);
    return dropped;
  }

  // ---------------------------------------------------------------- pages: hot path

  /**
   * Store `len` bytes (1..4096) of `src` as page `index` of object (o0, o1, o2) in `pool`.
   * Replaces a page already there. Returns false if refused (pool or index full); a refused
   * put also drops the old page, so a later get never returns stale data. Allocates nothing.
   */
  put(pool: number, o0: number, o1: number, o2: number, index: number, src: Uint8Array, len: number): boolean {
    if (!isOidNumber(o0) || !isOidNumber(o1) || !isOidNumber(o2)) badOid();
    return this.putW(pool, lo32(o0), hi32(o0), lo32(o1), hi32(o1), lo32(o2), hi32(o2), index, src, len);
  }

  private putW(
    pool: number,
    lo0: number,
    hi0: number,
    lo1: number,
    hi1: number,
    lo2: number,
    hi2: number,
    index: number,
    src: Uint8Array,
    len: number,
  ): boolean {
    checkIndex(index);
    if (!(src instanceof Uint8Array)) throw new TypeError('src: expected a Uint8Array');
    if (!Number.isInteger(len) || len < 1 || len > FRAME_SIZE || len > src.length) {
      throw new RangeError(`len: expected an integer from 1 to min(4096, src.length = ${src.length}), got ${len}`);
    }
    const zp = this.enter(pool);
    try {
      const c = this.c;
      const persistent = (c[this.POOLS + pool * PW + P_FLAGS] & F_PERSISTENT) !== 0;
      let hd = zp.malloc(len);
      for (let tries = 0; hd === 0 && !persistent && tries < 8; tries++) {
        if (zp.shrink(1) === 0 && tries > 1) break;
        hd = zp.malloc(len);
      }
      if (hd !== 0) zp.write(hd, src, 0, len);
      const ih = oidHash(pool, lo0, hi0, lo1, hi1, lo2, hi2);
      const stripe = ih & (this.nStripes - 1);
      const sl = this.STRIPES + stripe * SW;
      const idx = index | 0;
      let old = 0,
        ok = false;
      lock(c, sl + S_LOCK);
      try {
        let slot = this.findObj(stripe, ih, pool, lo0, hi0, lo1, hi1, lo2, hi2);
        if (slot < 0 && hd !== 0) slot = this.newObj(stripe, ih, pool, lo0, hi0, lo1, hi1, lo2, hi2);
        if (slot >= 0) {
          const ix = this.ix;
          const r = this.REC + slot * RW;
          const th = r + R_TREE;
          const cell = (pool * this.nStripes + stripe) * 2;
          if (hd === 0) {
            // refused: drop the old page so that a later get never returns stale data
            old = ix.delete(th, idx);
            if (old !== 0) {
              this.st[cell]--;
              c[r + R_PAGES]--;
              Atomics.sub(c, H_PAGES, 1);
            }
          } else {
            old = ix.get(th, idx);
            if (old !== 0) {
              ix.set(th, idx, hd); // the path exists: a replacement takes no node
              ok = true;
            } else if (Atomics.add(c, H_PAGES, 1) < this.maxPages) {
              ok = ix.set(th, idx, hd) === 0;
              if (ok) {
                this.st[cell]++;
                c[r + R_PAGES]++;
              } else Atomics.sub(c, H_PAGES, 1);
            } else Atomics.sub(c, H_PAGES, 1);
          }
          if (ok) {
            this.st[cell + 1] += len;
            zp.setTag(hd, slot, idx);
          }
          if (old !== 0) this.st[cell + 1] -= zp.size(old);
          if (c[r + R_PAGES] === 0) this.freeObject(stripe, slot);
        }
      } finally {
        unlock(c, sl + S_LOCK);
      }
      if (old !== 0) zp.free(old);
      if (!ok && hd !== 0) zp.free(hd);
      return ok;
    } finally {
      this.leave(pool);
    }
  }

  /**
   * Copy page `index` of object (o0, o1, o2) into `dst` (from offset 0); returns its length,
   * or -1 if absent. On an ephemeral pool the page leaves the pool (exclusive get); on a
   * persistent pool it stays unless `free` is true. Allocates nothing.
   */
  get(pool: number, o0: number, o1: number, o2: number, index: number, dst: Uint8Array, free = false): number {
    if (!isOidNumber(o0) || !isOidNumber(o1) || !isOidNumber(o2)) badOid();
    return this.getW(pool, lo32(o0), hi32(o0), lo32(o1), hi32(o1), lo32(o2), hi32(o2), index, dst, free, null, 0);
  }

  /**
   * Zero-copy get: returns the length (or -1) and sets `viewBytes`/`viewOffset`. On a
   * persistent pool kept page the view is the arena itself: valid until the next call on this
   * Store instance and only while no other thread flushes/replaces the page or compacts the pool.
   * A page that leaves the pool (ephemeral, or `free`) is copied into a per-instance staging page.
   */
  getView(pool: number, o0: number, o1: number, o2: number, index: number, free = false): number {
    if (!isOidNumber(o0) || !isOidNumber(o1) || !isOidNumber(o2)) badOid();
    return this.getW(pool, lo32(o0), hi32(o0), lo32(o1), hi32(o1), lo32(o2), hi32(o2), index, null, free, null, 1);
  }

  /**
   * Zero-copy get with the object lock held: calls `reader(bytes, offset, len)` with the page
   * in place (never concurrently modified or freed during the call), then returns len or -1.
   * `reader` must not call this store. Pass a function created once to allocate nothing.
   */
  getWith(pool: number, o0: number, o1: number, o2: number, index: number, reader: PageReader, free = false): number {
    if (!isOidNumber(o0) || !isOidNumber(o1) || !isOidNumber(o2)) badOid();
    if (typeof reader !== 'function') throw new TypeError('reader: expected a function (bytes, offset, len)');
    return this.getW(pool, lo32(o0), hi32(o0), lo32(o1), hi32(o1), lo32(o2), hi32(o2), index, null, free, reader, 2);
  }

  private getW(
    pool: number,
    lo0: number,
    hi0: number,
    lo1: number,
    hi1: number,
    lo2: number,
    hi2: number,
    index: number,
    dst: Uint8Array | null,
    free: boolean,
    reader: PageReader | null,
    mode: number,
  ): number {
    checkIndex(index);
    if (mode === 0 && !(dst instanceof Uint8Array)) throw new TypeError('dst: expected a Uint8Array');
    const zp = this.enter(pool);
    try {
      const c = this.c;
      const remove = free === true || (c[this.POOLS + pool * PW + P_FLAGS] & F_PERSISTENT) === 0;
      const ih = oidHash(pool, lo0, hi0, lo1, hi1, lo2, hi2);
      const stripe = ih & (this.nStripes - 1);
      const sl = this.STRIPES + stripe * SW;
      const idx = index | 0;
      let hd = 0,
        len = -1;
      lock(c, sl + S_LOCK);
      try {
        const slot = this.findObj(stripe, ih, pool, lo0, hi0, lo1, hi1, lo2, hi2);
        if (slot < 0) return -1;
        const th = this.REC + slot * RW + R_TREE;
        hd = this.ix.get(th, idx);
        if (hd === 0) return -1;
        if (mode === 0) {
          const n = zp.size(hd);
          if ((dst as Uint8Array).length < n) {
            throw new RangeError(`dst: needs ${n} bytes, has ${(dst as Uint8Array).length}`);
          }
          len = zp.read(hd, dst as Uint8Array, 0);
        } else if (mode === 1) {
          if (remove) {
            len = zp.read(hd, this.staging, 0);
            this.viewBytes = this.staging;
            this.viewOffset = 0;
          } else {
            zp.pin();
            try {
              len = zp.locate(hd);
            } finally {
              zp.unpin();
            }
            this.viewBytes = zp.mapBytes;
            this.viewOffset = zp.mapOffset;
          }
        } else {
          zp.pin();
          try {
            len = zp.locate(hd);
            (reader as PageReader)(zp.mapBytes, zp.mapOffset, len);
          } finally {
            zp.unpin();
          }
        }
        if (remove) {
          this.ix.delete(th, idx);
          Atomics.sub(c, H_PAGES, 1);
          const cell = (pool * this.nStripes + stripe) * 2;
          this.st[cell]--;
          this.st[cell + 1] -= len;
          const r = this.REC + slot * RW;
          if (--c[r + R_PAGES] === 0) this.freeObject(stripe, slot);
        }
      } finally {
        unlock(c, sl + S_LOCK);
      }
      if (remove) zp.free(hd);
      return len;
    } finally {
      this.leave(pool);
    }
  }

  /** Drop page `index` of object (o0, o1, o2); returns true if it was there. */
  flushPage(pool: number, o0: number, o1: number, o2: number, index: number): boolean {
    if (!isOidNumber(o0) || !isOidNumber(o1) || !isOidNumber(o2)) badOid();
    return this.flushPageW(pool, lo32(o0), hi32(o0), lo32(o1), hi32(o1), lo32(o2), hi32(o2), index);
  }

  private flushPageW(
    pool: number,
    lo0: number,
    hi0: number,
    lo1: number,
    hi1: number,
    lo2: number,
    hi2: number,
    index: number,
  ): boolean {
    checkIndex(index);
    const zp = this.enter(pool);
    try {
      const c = this.c;
      const ih = oidHash(pool, lo0, hi0, lo1, hi1, lo2, hi2);
      const stripe = ih & (this.nStripes - 1);
      const sl = this.STRIPES + stripe * SW;
      const idx = index | 0;
      let hd = 0;
      lock(c, sl + S_LOCK);
      try {
        const slot = this.findObj(stripe, ih, pool, lo0, hi0, lo1, hi1, lo2, hi2);
        if (slot < 0) return false;
        hd = this.ix.delete(this.REC + slot * RW + R_TREE, idx);
        if (hd === 0) return false;
        Atomics.sub(c, H_PAGES, 1);
        const cell = (pool * this.nStripes + stripe) * 2;
        this.st[cell]--;
        this.st[cell + 1] -= zp.size(hd);
        const r = this.REC + slot * RW;
        if (--c[r + R_PAGES] === 0) this.freeObject(stripe, slot);
      } finally {
        unlock(c, sl + S_LOCK);
      }
      zp.free(hd);
      return true;
    } finally {
      this.leave(pool);
    }
  }

  /** Drop every page of object (o0, o1, o2); returns how many were dropped. */
  flushObject(pool: number, o0: number, o1: number, o2: number): number {
    if (!isOidNumber(o0) || !isOidNumber(o1) || !isOidNumber(o2)) badOid();
    return this.flushObjectW(pool, lo32(o0), hi32(o0), lo32(o1), hi32(o1), lo32(o2), hi32(o2));
  }

  private flushObjectW(
    pool: number,
    lo0: number,
    hi0: number,
    lo1: number,
    hi1: number,
    lo2: number,
    hi2: number,
  ): number {
    const zp = this.enter(pool);
    const out = this.flushBuf;
    out.length = 0;
    try {
      const c = this.c;
      const ih = oidHash(pool, lo0, hi0, lo1, hi1, lo2, hi2);
      const stripe = ih & (this.nStripes - 1);
      const sl = this.STRIPES + stripe * SW;
      lock(c, sl + S_LOCK);
      try {
        const slot = this.findObj(stripe, ih, pool, lo0, hi0, lo1, hi1, lo2, hi2);
        if (slot < 0) return 0;
        this.dropObjectPages(slot, out);
        this.freeObject(stripe, slot);
      } finally {
        unlock(c, sl + S_LOCK);
      }
      for (let i = 0; i < out.length; i++) zp.free(out[i]);
      return out.length;
    } finally {
      out.length = 0;
      this.leave(pool);
    }
  }

  /** zbud reclaim: drop the page that owns `hd` (ALLOC of the pool held by the caller). */
  private evictPage(pool: number, hd: number, slot: number, idx: number): boolean {
    const c = this.c;
    const stripe = slot & (this.nStripes - 1);
    const sl = this.STRIPES + stripe * SW;
    lock(c, sl + S_LOCK);
    try {
      const r = this.REC + slot * RW;
      if (c[r + R_POOL] !== pool + 1) return false;
      const th = r + R_TREE;
      if (this.ix.get(th, idx) !== hd) return false;
      this.ix.delete(th, idx);
      Atomics.sub(c, H_PAGES, 1);
      const cell = (pool * this.nStripes + stripe) * 2;
      this.st[cell]--;
      this.st[cell + 1] -= (this.zps[pool] as Zpool).size(hd);
      Atomics.add(c, this.POOLS + pool * PW + P_EVICTED, 1);
      if (--c[r + R_PAGES] === 0) this.freeObject(stripe, slot);
      return true;
    } finally {
      unlock(c, sl + S_LOCK);
    }
  }

  // ---------------------------------------------------------------- convenience (allocates)

  /** `put` with the object id as a number, bigint or three words (bigint up to 2^64-1). */
  putKey(pool: number, oid: Oid, index: number, src: Uint8Array, len = src.length): boolean {
    const w = splitOid(oid);
    return this.putW(pool, w[0], w[1], w[2], w[3], w[4], w[5], index, src, len);
  }

  /** `get` with the object id as a number, bigint or three words. */
  getKey(pool: number, oid: Oid, index: number, dst: Uint8Array, free = false): number {
    const w = splitOid(oid);
    return this.getW(pool, w[0], w[1], w[2], w[3], w[4], w[5], index, dst, free, null, 0);
  }

  /** `flushPage` with the object id as a number, bigint or three words. */
  flushPageKey(pool: number, oid: Oid, index: number): boolean {
    const w = splitOid(oid);
    return this.flushPageW(pool, w[0], w[1], w[2], w[3], w[4], w[5], index);
  }

  /** `flushObject` with the object id as a number, bigint or three words. */
  flushObjectKey(pool: number, oid: Oid): number {
    const w = splitOid(oid);
    return this.flushObjectW(pool, w[0], w[1], w[2], w[3], w[4], w[5]);
  }
}

function checkIndex(index: number): void {
  if (!(index >= 0 && index <= 0xffffffff && Math.floor(index) === index)) {
    throw new RangeError(`index: expected an integer from 0 to 2^32-1, got ${index}`);
  }
}

function splitWord(w: number | bigint, out: number[], at: number): void {
  if (typeof w === 'bigint') {
    if (w < 0n || w > 0xffffffffffffffffn) badOid();
    out[at] = bigLo32(w);
    out[at + 1] = bigHi32(w);
  } else {
    if (!isOidNumber(w)) badOid();
    out[at] = lo32(w);
    out[at + 1] = hi32(w);
  }
}

function splitOid(oid: Oid): number[] {
  const out = [0, 0, 0, 0, 0, 0];
  if (typeof oid === 'number' || typeof oid === 'bigint') splitWord(oid, out, 0);
  else if (Array.isArray(oid) && oid.length === 3) {
    splitWord(oid[0], out, 0);
    splitWord(oid[1], out, 2);
    splitWord(oid[2], out, 4);
  } else badOid();
  return out;
}

function parseUuid(u: Uint8Array | string): Uint8Array {
  if (u instanceof Uint8Array) {
    if (u.length !== 16) throw new RangeError(`uuid: expected 16 bytes, got ${u.length}`);
    return new Uint8Array(u);
  }
  if (typeof u === 'string') {
    const hex = u.replace(/-/g, '');
    if (/^[0-9a-fA-F]{32}$/.test(hex)) return new Uint8Array(Buffer.from(hex, 'hex'));
  }
  throw new TypeError('uuid: expected a Uint8Array(16) or a string of 32 hex digits');
}
