/**
 * swap.cache(): a Map-like store of JS values whose bytes live in tmem regions.
 *
 * A value is serialized (lib/cache/serializers.ts) and its key's bytes (lib/cache/keys.ts)
 * and value's bytes are placed side by side by the allocator (lib/cache/allocator.ts) in
 * regions of the swap, whose cold pages tmem compresses and moves out like any region's. The
 * index (lib/cache/index-table.ts) holds, per entry, a hash, a location, two lengths and the
 * LRU links in typed arrays: an entry costs no object on the JS heap. A get() looks the key
 * up (comparing its bytes in the region), deserializes the value from the region and makes
 * the entry the most recently used; with maxEntries / maxBytes, the least recently used go.
 */
import type { Region, Swap } from '../swap';
import { closedError, outOfRange } from '../errors';
import { RegionAllocator } from './allocator';
import { IndexTable } from './index-table';
import { KeyEncoder, decodeKey } from './keys';
import { checkCacheOptions, type CacheOptions } from './options';
import { codecFor, type Codec } from './serializers';

/** A cache key: a string or a number (compared as a Map does: SameValueZero). */
export type CacheKey = string | number;

/** Figures of a {@link Cache}. */
export interface CacheStats {
  /** Entries now. */
  entries: number;
  /** Bytes of the entries' keys and values as serialized, now. */
  bytes: number;
  /** Bytes the allocator handed out for them (rounded up to size classes and pages), now. */
  allocatedBytes: number;
  /** Bytes of the regions the cache holds (their pages are resident, in the pool or in the swap file), now. */
  regionBytes: number;
  /** Regions the cache holds, now. */
  regions: number;
  /** Bytes of the index's typed arrays (off the JS heap), now. */
  indexBytes: number;
  /** get() calls that found their key. */
  hits: number;
  /** get() calls that did not. */
  misses: number;
  /** Entries removed to stay within maxEntries / maxBytes. */
  evictions: number;
}

/**
 * A Map-like store of JS values kept serialized in tmem regions; made by {@link Swap.cache}.
 * Keys are strings or numbers. Values are copies: get() returns a new deserialized value each
 * time, and changing it changes nothing in the cache until it is set() again.
 */
export class Cache<V = unknown> implements AsyncDisposable {
  private readonly codec: Codec;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly alloc: RegionAllocator;
  private readonly index: IndexTable;
  private readonly key = new KeyEncoder();
  private readonly releasing = new Set<Promise<void>>();
  private closing?: Promise<void>;
  private gone?: Error;
  private liveBytes = 0;
  private epoch = 0; // bumped by clear() and close(): iterations started before stop
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  /** @internal use {@link Swap.cache} */
  constructor(
    private readonly swap: Swap,
    options: CacheOptions | undefined,
    private readonly forget: (c: Cache<V>) => void,
  ) {
    const o = checkCacheOptions(options);
    this.codec = codecFor(o.serializer);
    this.maxEntries = o.maxEntries;
    this.maxBytes = o.maxBytes;
    this.alloc = new RegionAllocator(swap, o.chunkBytes, (r) => this.releaseRegion(r));
    this.index = new IndexTable((s) => this.sameKey(s));
  }

  /** Entries in the cache. */
  get size(): number {
    return this.index.count;
  }

  /** True once close() was called (or the swap was closed). */
  get closed(): boolean {
    return this.gone !== undefined;
  }

  /**
   * The value stored under `key` (a new copy, deserialized from the region), or undefined.
   * Makes the entry the most recently used. When its pages are cold this faults them back
   * (README "swap.cache(options)" says what that costs).
   */
  get(key: CacheKey): V | undefined {
    this.check();
    this.key.encode(key);
    const s = this.index.find(this.key.hash, this.key.length);
    if (s < 0) {
      this.misses++;
      return undefined;
    }
    const value = this.decodeSlot(s);
    this.hits++;
    this.index.touch(s);
    return value;
  }

  /** Whether `key` is in the cache (not counted as a use, nor as a hit or a miss). */
  has(key: CacheKey): boolean {
    this.check();
    this.key.encode(key);
    return this.index.find(this.key.hash, this.key.length) >= 0;
  }

  /**
   * Stores `value` under `key` (serialized now: later changes to `value` are not seen) as
   * the most recently used entry, then removes the least recently used entries past
   * maxEntries / maxBytes. May add a region.
   * @throws TypeError ERR_INVALID_ARG_TYPE for a key that is not a string or a number, or a
   *   value the serializer does not take; TypeError ERR_INVALID_ARG_VALUE for a value that
   *   cannot be serialized; RangeError ERR_OUT_OF_RANGE for a key over 64 KiB encoded or an
   *   entry larger than maxBytes. The cache is unchanged when set() throws.
   */
  set(key: CacheKey, value: V): this {
    this.check();
    const bytes = this.codec.encode(value);
    this.key.encode(key); // after encode(): a serializer may call back into the cache
    const kLen = this.key.length,
      vLen = bytes.length,
      n = kLen + vLen;
    if (n > this.maxBytes)
      throw outOfRange(`the entry is ${n} bytes (key and value serialized), more than maxBytes (${this.maxBytes})`);
    const found = this.index.find(this.key.hash, kLen);
    const loc = this.alloc.alloc(n);
    this.alloc.write(loc, 0, this.key.bytes.subarray(0, kLen));
    this.alloc.write(loc, kLen, bytes);
    const ix = this.index;
    if (found >= 0) {
      this.alloc.free(ix.loc[found], ix.keyLen[found] + ix.valLen[found]);
      this.liveBytes += n - ix.keyLen[found] - ix.valLen[found];
      ix.loc[found] = loc;
      ix.valLen[found] = vLen;
      ix.touch(found);
    } else {
      ix.add(this.key.hash, loc, kLen, vLen);
      this.liveBytes += n;
    }
    while (ix.count > this.maxEntries || this.liveBytes > this.maxBytes) {
      this.removeSlot(ix.oldest);
      this.evictions++;
    }
    return this;
  }

  /** Removes `key`; true when it was there. Its space is reused by later entries. */
  delete(key: CacheKey): boolean {
    this.check();
    this.key.encode(key);
    const s = this.index.find(this.key.hash, this.key.length);
    if (s < 0) return false;
    this.freeSlot(s);
    this.index.removeFound(s);
    return true;
  }

  /** Removes every entry and gives the cache's regions back (closed in the background; close() waits for them). */
  clear(): void {
    this.check();
    this.epoch++;
    this.index.reset();
    this.alloc.reset();
    this.liveBytes = 0;
  }

  /**
   * The keys, least recently used first (as a Map's insertion order, where get() and set()
   * move an entry to the end). Entries deleted while iterating are skipped; entries added
   * are not visited. Iterating does not count as use.
   */
  *keys(): IterableIterator<CacheKey> {
    for (const s of this.snapshot()) yield this.keyOf(s);
  }

  /** The values (new copies), in the order of {@link keys}. */
  *values(): IterableIterator<V> {
    for (const s of this.snapshot()) yield this.decodeSlot(s);
  }

  /** [key, value] pairs, in the order of {@link keys}. */
  *entries(): IterableIterator<[CacheKey, V]> {
    for (const s of this.snapshot()) yield [this.keyOf(s), this.decodeSlot(s)];
  }

  /** Same as {@link entries}. */
  [Symbol.iterator](): IterableIterator<[CacheKey, V]> {
    return this.entries();
  }

  /** Calls `fn(value, key, cache)` for each entry, in the order of {@link keys}. */
  forEach(fn: (value: V, key: CacheKey, cache: this) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }

  get [Symbol.toStringTag](): string {
    return 'Cache';
  }

  /** The cache's figures. */
  stats(): CacheStats {
    const a = this.alloc.stats();
    return {
      entries: this.index.count,
      bytes: this.liveBytes,
      allocatedBytes: a.allocatedBytes,
      regionBytes: a.regionBytes,
      regions: a.regions,
      indexBytes: this.index.bytes(),
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
    };
  }

  /**
   * Pushes the cache's resident pages out now (compressed into the pool, or to the swap
   * file), as region.evict() does for each of its regions. Resolves with the pages evicted.
   * The next get() of any entry faults its pages back.
   */
  async evict(): Promise<number> {
    this.check();
    const counts = await Promise.all(this.alloc.regions().map((r) => r.evict()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Closes the cache: its regions are closed (their pool entries and swap file slots freed).
   * Later calls throw ERR_TMEM_CLOSED. Calls made while it runs get the same promise.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.gone ??= closedError('cache');
      this.forget(this);
      this.epoch++;
      this.index.reset();
      this.alloc.reset();
      this.liveBytes = 0;
      while (this.releasing.size > 0) await Promise.all([...this.releasing]);
    })();
    return this.closing;
  }

  /** `await using cache = swap.cache()`: close() at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal the swap is closing: the cache is unusable from now on (its regions close with the swap). */
  _swapClosing(): void {
    this.gone ??= closedError('cache (its swap was closed)');
  }

  private check(): void {
    if (this.gone) throw this.gone;
  }

  /** The live slots, oldest first, as they were when the iteration started (see keys()). */
  private *snapshot(): Generator<number> {
    this.check();
    const ix = this.index,
      epoch = this.epoch;
    const slots = new Int32Array(ix.count),
      gens = new Uint32Array(ix.count);
    let n = 0;
    for (let s = ix.oldest; s >= 0 && n < slots.length; s = ix.newer[s]) {
      slots[n] = s;
      gens[n++] = ix.gen[s];
    }
    for (let i = 0; i < n; i++) {
      this.check();
      if (this.epoch !== epoch) return; // cleared
      // A slot freed since (and maybe reused) has a new generation.
      if (ix.gen[slots[i]] === gens[i]) yield slots[i];
    }
  }

  private keyOf(s: number): CacheKey {
    return decodeKey(this.alloc.view(this.index.loc[s], this.index.keyLen[s]));
  }

  private decodeSlot(s: number): V {
    const ix = this.index;
    return this.codec.decode(this.alloc.view(ix.loc[s], ix.keyLen[s] + ix.valLen[s]).subarray(ix.keyLen[s])) as V;
  }

  private sameKey(s: number): boolean {
    const loc = this.index.loc[s],
      n = this.index.keyLen[s];
    const want = this.key.bytes;
    const have = this.alloc.view(loc, n);
    for (let i = 0; i < n; i++) if (have[i] !== want[i]) return false;
    return true;
  }

  private freeSlot(s: number): void {
    const ix = this.index;
    const n = ix.keyLen[s] + ix.valLen[s];
    this.alloc.free(ix.loc[s], n);
    this.liveBytes -= n;
  }

  private removeSlot(s: number): void {
    this.freeSlot(s);
    this.index.remove(s);
  }

  private releaseRegion(r: Region): void {
    const p: Promise<void> = r
      .close()
      .catch(() => undefined) // the swap is closing or its dispatcher died: the swap releases it
      .finally(() => this.releasing.delete(p));
    this.releasing.add(p);
  }
}
