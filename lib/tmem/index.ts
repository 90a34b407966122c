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
 *   +--------+-------------+--------------+---------------+-----------------+---------+------------+
 *   | header | pool table  | stripe table | object hashes | object records  | segment | page       |
 *   | 64 w   | maxPools x  | nStripes x 4 | nStripes x    | maxObjects x    | LOCK,   | entries    |
 *   |        | 16 w        | LOCK FREE    | ohCap (rec+1) | 12 w            | COUNT   | (12 B each,|
 *   |        |             | BUMP COUNT   |               |                 | x nSegs | pagetable) |
 *   +--------+-------------+--------------+---------------+-----------------+---------+------------+
 *   pool:   STATE USERS FLAGS DRIVER GEN UUID[4] EVICTED
 *   object: POOL+1 (0 = free) OID lo/hi x 3 PAGES MIN MAX NEXTFREE HASH
 *
 *   object slot -> stripe = slot & (nStripes - 1) (each stripe allocates its own slots)
 *   oidHash -> stripe = h & (nStripes - 1), home in the stripe's hash = (h >>> stripeBits) % ohCap
 *   pageHash(slot, index) -> segment, home (lib/tmem/pagetable.ts)
 *
 * Index cost: 12 bytes per page-table entry; the table is sized for `maxPages` at a load of
 * 0.8, i.e. 15 bytes of index per stored page when full (plus 48 B per object record).
 *
 * Locks and their order (never take an earlier one while holding a later one):
 *   1. pool USERS count (not a lock: ops enter/leave; destroyPool waits for zero)
 *   2. stripe lock of the object (all pages of an object are changed under it)
 *   3. page segment lock (short: lookup/insert/delete of one entry)
 *   4. zsmalloc MIGRATE read lock (inside zpool.read)
 * The zpool ALLOC lock is never taken while a stripe lock is held: a put mallocs before it
 * locks, and frees the replaced handle after it unlocks. zbud reclaim calls the evict callback
 * with ALLOC held and that callback takes 2 then 3, so the order there is ALLOC -> 2 -> 3.
 * A get on one object waits for a put on another only when both hash to the same stripe or,
 * for one short entry operation, to the same segment.
 *
 * Invariants (under the stripe lock): an object record exists iff it has >= 1 page; PAGES is
 * the number of page entries with its slot; each live zpool handle of a pool is named by
 * exactly one page entry (or is owned by the thread between malloc and insert / delete and
 * free); stats cells equal the sums over the stripe's entries.
 */

import { Arena, ArenaHandle, ArenaOptions, FRAME_SIZE } from '../arena';
import { Zpool, attachZpool, createZpool, zpoolMetaBytes } from '../zpool';
import { lock, unlock } from './lock';
import { oidHash, pageHash, isOidNumber, lo32, hi32, bigLo32, bigHi32 } from './hash';
import { PageTable, PE_WORDS, ptFind, ptInsert, ptDelete, segOf } from './pagetable';

const MAGIC = 0x544d454d; // 'TMEM'
const H_MAGIC = 0, H_POOLS_LOCK = 1, H_MAX_POOLS = 2, H_NSTRIPES = 3, H_OPS = 4, H_OHCAP = 5,
  H_NSEGS = 6, H_SEGCAP = 7;
const HDR = 64;
const PW = 16;
const P_STATE = 0, P_USERS = 1, P_FLAGS = 2, P_DRIVER = 3, P_GEN = 4, P_UUID = 5, P_EVICTED = 9;
const DESTROYING = 1 << 30;
const USERS_MASK = DESTROYING - 1;
const F_PERSISTENT = 1, F_SHARED = 2;
const SW = 4;
const S_LOCK = 0, S_FREE = 1, S_BUMP = 2, S_COUNT = 3;
const RW = 12;
const R_POOL = 0, R_OID = 1, R_PAGES = 7, R_MIN = 8, R_MAX = 9, R_NEXT = 10, R_HASH = 11;
const DRIVERS = ['zsmalloc', 'zbud'];

/** An object id: one number/bigint (words 1 and 2 zero) or three words. */
export type Oid = number | bigint | readonly [number | bigint, number | bigint, number | bigint];

/** Options of `Store.create`. */
export interface StoreOptions {
  /** Arena options (size limit, chunk size). */
  arena?: ArenaOptions;
  /** Most pools (default 16). */
  maxPools?: number;
  /** Pages the index is sized for (default 4 per arena frame). Puts beyond it are refused. */
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

/** Called by `getWith` with the page bytes in place: `bytes[offset .. offset + len)`. */
export type PageReader = (bytes: Uint8Array, offset: number, len: number) => void;

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
  private readonly pt: PageTable;
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
    const nSegs = c[H_NSEGS];
    const segMeta = this.REC + this.nStripes * c[H_OPS] * RW;
    this.pt = { c, segMeta, base: segMeta + nSegs * 2, segCap: c[H_SEGCAP], segBits: 31 - Math.clz32(nSegs) };
    this.viewBytes = this.staging;
    for (let p = 0; p < this.maxPools; p++) { this.zps.push(undefined); this.gens.push(-1); }
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
    const nSegs = Math.min(4096, pow2ceil(Math.ceil(maxPages / 512)));
    const segCap = Math.max(16, Math.ceil(maxPages / nSegs / 0.8));
    const words = HDR + maxPools * PW + nStripes * SW + nStripes * ohCap + nStripes * ops * RW +
      nSegs * 2 + nSegs * segCap * PE_WORDS;
    const control = new SharedArrayBuffer(words * 4);
    const c = new Int32Array(control);
    c[H_MAX_POOLS] = maxPools; c[H_NSTRIPES] = nStripes; c[H_OPS] = ops; c[H_OHCAP] = ohCap;
    c[H_NSEGS] = nSegs; c[H_SEGCAP] = segCap;
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
    if (handle === null || typeof handle !== 'object' || !(handle.control instanceof SharedArrayBuffer) ||
      !(handle.stats instanceof SharedArrayBuffer) || !Array.isArray(handle.metas)) {
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
    if (typeof persistent !== 'boolean') throw new TypeError(`persistent: expected a boolean, got ${typeof persistent}`);
    const shared = opts.shared ?? false;
    if (typeof shared !== 'boolean') throw new TypeError(`shared: expected a boolean, got ${typeof shared}`);
    const driver = opts.driver ?? (persistent ? 'zsmalloc' : 'zbud');
    const d = DRIVERS.indexOf(driver);
    if (d < 0) throw new TypeError(`driver: unknown zpool driver ${JSON.stringify(driver)}; accepted: ${DRIVERS.join(', ')}`);
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
          if (c[b + P_STATE] === 1 && (c[b + P_FLAGS] & F_SHARED) &&
            c[b + P_UUID] === uuid[0] && c[b + P_UUID + 1] === uuid[1] && c[b + P_UUID + 2] === uuid[2] &&
            c[b + P_UUID + 3] === uuid[3] && (Atomics.load(c, b + P_USERS) & DESTROYING) === 0) {
            if (((c[b + P_FLAGS] & F_PERSISTENT) !== 0) !== persistent) {
              throw new TypeError(`persistent: shared pool ${p} with this uuid is ${persistent ? 'ephemeral' : 'persistent'}`);
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
    if ((prev & DESTROYING) !== 0) { this.leave(pool); throw new RangeError(`pool: pool ${pool} is being destroyed`); }
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
      let pages = 0, bytes = 0;
      for (let s = 0; s < this.nStripes; s++) {
        pages += this.st[(pool * this.nStripes + s) * 2];
        bytes += this.st[(pool * this.nStripes + s) * 2 + 1];
      }
      return {
        pool, persistent: (this.c[b + P_FLAGS] & F_PERSISTENT) !== 0, shared: (this.c[b + P_FLAGS] & F_SHARED) !== 0,
        driver: zp.driver, pages, bytes, poolBytes: zp.totalSize(), evicted: Atomics.load(this.c, b + P_EVICTED),
      };
    } finally {
      this.leave(pool);
    }
  }

  /** The allocator of a pool (for its own stats, `compact`, `shrink`). */
  zpool(pool: number): Zpool {
    const zp = this.enter(pool);
    this.leave(pool);
    return zp;
  }

  // ---------------------------------------------------------------- objects (stripe lock held)

  private findObj(stripe: number, h: number, pool: number, lo0: number, hi0: number, lo1: number, hi1: number,
    lo2: number, hi2: number): number {
    const c = this.c, cap = this.ohCap;
    const hb = this.OH + stripe * cap;
    let i = (h >>> this.stripeBits) % cap;
    for (let n = 0; n < cap; n++) {
      const e = c[hb + i];
      if (e === 0) return -1;
      const r = this.REC + (e - 1) * RW;
      if (c[r + R_POOL] === pool + 1 && c[r + R_OID] === lo0 && c[r + R_OID + 1] === hi0 &&
        c[r + R_OID + 2] === lo1 && c[r + R_OID + 3] === hi1 && c[r + R_OID + 4] === lo2 && c[r + R_OID + 5] === hi2) {
        return e - 1;
      }
      if (++i === cap) i = 0;
    }
    return -1;
  }

  private newObj(stripe: number, h: number, pool: number, lo0: number, hi0: number, lo1: number, hi1: number,
    lo2: number, hi2: number, index: number): number {
    const c = this.c, cap = this.ohCap;
    const sl = this.STRIPES + stripe * SW;
    if (c[sl + S_COUNT] >= cap - 1) return -1;
    let k = c[sl + S_FREE];
    let slot: number;
    if (k >= 0) { slot = k; c[sl + S_FREE] = c[this.REC + slot * RW + R_NEXT]; }
    else {
      k = c[sl + S_BUMP];
      if (k >= c[H_OPS]) return -1;
      c[sl + S_BUMP] = k + 1;
      slot = k * this.nStripes + stripe;
    }
    const r = this.REC + slot * RW;
    c[r + R_POOL] = pool + 1;
    c[r + R_OID] = lo0; c[r + R_OID + 1] = hi0; c[r + R_OID + 2] = lo1; c[r + R_OID + 3] = hi1;
    c[r + R_OID + 4] = lo2; c[r + R_OID + 5] = hi2;
    c[r + R_PAGES] = 0; c[r + R_MIN] = index; c[r + R_MAX] = index; c[r + R_HASH] = h;
    const hb = this.OH + stripe * cap;
    let i = (h >>> this.stripeBits) % cap;
    while (c[hb + i] !== 0) if (++i === cap) i = 0;
    c[hb + i] = slot + 1;
    c[sl + S_COUNT]++;
    return slot;
  }

  private freeObject(stripe: number, slot: number): void {
    const c = this.c, cap = this.ohCap;
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
      const inRange = i <= j ? (k > i && k <= j) : (k > i || k <= j);
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

  /** Remove all page entries of an object; pushes handles to `out` unless null. Stripe lock held. */
  private dropObjectPages(slot: number, out: number[] | null): number {
    const c = this.c, t = this.pt;
    const r = this.REC + slot * RW;
    const pool = c[r + R_POOL] - 1;
    const stripe = slot & (this.nStripes - 1);
    const cell = (pool * this.nStripes + stripe) * 2;
    const zp = this.zps[pool];
    let dropped = 0;
    const pages = c[r + R_PAGES];
    const lo = c[r + R_MIN] >>> 0, hi = c[r + R_MAX] >>> 0;
    const nSegs = 1 << t.segBits;
    const dropAt = (seg: number, e: number) => {
      const hd = c[e + 2];
      if (zp) this.st[cell + 1] -= zp.size(hd);
      if (out) out.push(hd);
      ptDelete(t, seg, e);
      dropped++;
    };
    if (hi - lo + 1 <= pages * 8 + 64) {
      for (let x = lo; x <= hi && dropped < pages; x++) {
        const idx = x | 0;
        const h = pageHash(slot, idx);
        const seg = segOf(t, h);
        lock(c, t.segMeta + seg * 2);
        const e = ptFind(t, seg, h, slot, idx);
        if (e >= 0) dropAt(seg, e);
        unlock(c, t.segMeta + seg * 2);
      }
    } else {
      for (let seg = 0; seg < nSegs && dropped < pages; seg++) {
        lock(c, t.segMeta + seg * 2);
        const sb = t.base + seg * t.segCap * PE_WORDS;
        for (let i = 0; i < t.segCap;) {
          const e = sb + i * PE_WORDS;
          if (c[e] === slot + 1) dropAt(seg, e); // the run shifted back: look at i again
          else i++;
        }
        unlock(c, t.segMeta + seg * 2);
      }
    }
    this.st[cell] -= dropped;
    c[r + R_PAGES] -= dropped;
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

  private putW(pool: number, lo0: number, hi0: number, lo1: number, hi1: number, lo2: number, hi2: number,
    index: number, src: Uint8Array, len: number): boolean {
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
      let old = 0, ok = false;
      lock(c, sl + S_LOCK);
      try {
        let slot = this.findObj(stripe, ih, pool, lo0, hi0, lo1, hi1, lo2, hi2);
        if (slot < 0 && hd !== 0) slot = this.newObj(stripe, ih, pool, lo0, hi0, lo1, hi1, lo2, hi2, idx);
        if (slot >= 0) {
          const t = this.pt;
          const ph = pageHash(slot, idx);
          const seg = segOf(t, ph);
          const sm = t.segMeta + seg * 2;
          const r = this.REC + slot * RW;
          const cell = (pool * this.nStripes + stripe) * 2;
          lock(c, sm);
          const e = ptFind(t, seg, ph, slot, idx);
          if (e >= 0) {
            old = c[e + 2];
            if (hd !== 0) { c[e + 2] = hd; ok = true; }
            else { ptDelete(t, seg, e); this.st[cell]--; c[r + R_PAGES]--; }
          } else if (hd !== 0) {
            ok = ptInsert(t, seg, ph, slot, idx, hd) >= 0;
            if (ok) { this.st[cell]++; c[r + R_PAGES]++; }
          }
          unlock(c, sm);
          if (ok) {
            this.st[cell + 1] += len;
            if ((idx >>> 0) < (c[r + R_MIN] >>> 0)) c[r + R_MIN] = idx;
            if ((idx >>> 0) > (c[r + R_MAX] >>> 0)) c[r + R_MAX] = idx;
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

  private getW(pool: number, lo0: number, hi0: number, lo1: number, hi1: number, lo2: number, hi2: number,
    index: number, dst: Uint8Array | null, free: boolean, reader: PageReader | null, mode: number): number {
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
      let hd = 0, len = -1;
      lock(c, sl + S_LOCK);
      try {
        const slot = this.findObj(stripe, ih, pool, lo0, hi0, lo1, hi1, lo2, hi2);
        if (slot < 0) return -1;
        const t = this.pt;
        const ph = pageHash(slot, idx);
        const seg = segOf(t, ph);
        const sm = t.segMeta + seg * 2;
        lock(c, sm);
        let e = ptFind(t, seg, ph, slot, idx);
        if (e >= 0) hd = c[e + 2];
        unlock(c, sm);
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
            this.viewBytes = this.staging; this.viewOffset = 0;
          } else {
            zp.pin();
            try { len = zp.locate(hd); } finally { zp.unpin(); }
            this.viewBytes = zp.mapBytes; this.viewOffset = zp.mapOffset;
          }
        } else {
          zp.pin();
          try {
            len = zp.locate(hd);
            (reader as PageReader)(zp.mapBytes, zp.mapOffset, len);
          } finally { zp.unpin(); }
        }
        if (remove) {
          lock(c, sm);
          e = ptFind(t, seg, ph, slot, idx);
          ptDelete(t, seg, e);
          unlock(c, sm);
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

  private flushPageW(pool: number, lo0: number, hi0: number, lo1: number, hi1: number, lo2: number, hi2: number,
    index: number): boolean {
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
        const t = this.pt;
        const ph = pageHash(slot, idx);
        const seg = segOf(t, ph);
        const sm = t.segMeta + seg * 2;
        lock(c, sm);
        const e = ptFind(t, seg, ph, slot, idx);
        if (e >= 0) { hd = c[e + 2]; ptDelete(t, seg, e); }
        unlock(c, sm);
        if (hd === 0) return false;
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

  private flushObjectW(pool: number, lo0: number, hi0: number, lo1: number, hi1: number, lo2: number, hi2: number): number {
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
      const t = this.pt;
      const ph = pageHash(slot, idx);
      const seg = segOf(t, ph);
      const sm = t.segMeta + seg * 2;
      lock(c, sm);
      const e = ptFind(t, seg, ph, slot, idx);
      const hit = e >= 0 && c[e + 2] === hd;
      if (hit) ptDelete(t, seg, e);
      unlock(c, sm);
      if (!hit) return false;
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
    out[at] = bigLo32(w); out[at + 1] = bigHi32(w);
  } else {
    if (!isOidNumber(w)) badOid();
    out[at] = lo32(w); out[at + 1] = hi32(w);
  }
}

function splitOid(oid: Oid): number[] {
  const out = [0, 0, 0, 0, 0, 0];
  if (typeof oid === 'number' || typeof oid === 'bigint') splitWord(oid, out, 0);
  else if (Array.isArray(oid) && oid.length === 3) {
    splitWord(oid[0], out, 0); splitWord(oid[1], out, 2); splitWord(oid[2], out, 4);
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
