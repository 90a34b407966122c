/**
 * The cache's index: where each entry is, in typed arrays only (nothing per entry on the JS
 * heap). An entry is a slot number; its columns hold the key's hash, the location of its
 * bytes in the region (key then value), the two lengths, a generation (bumped when the slot
 * is freed, so that an iteration can tell a slot reused since) and its neighbours in the LRU
 * list (oldest first). Freed slots are chained through `newer` for reuse.
 *
 * Lookup is an open-addressing hash table of slot numbers with linear probing (at most 5/8
 * full; doubled past that), deletion by backward shift (no tombstones), comparing the stored
 * hash and key length first and the key's bytes in the region (`sameKey`) last. 32 bytes of
 * columns per slot (which grow by doubling) and 4 bytes per table cell (at most 5/8 full):
 * 38 to 77 bytes per entry, all off the JS heap.
 */
export class IndexTable {
  /** Entries in the table. */
  count = 0;
  /** The table cell of the last successful find(), for remove(). */
  private cell = -1;
  private table: Int32Array;
  private mask: number;
  private capacity = 0;
  private freeSlot = -1;
  private used = 0; // slots ever handed out (the rest of the columns is unused)
  hash = new Uint32Array(0);
  loc = new Float64Array(0);
  keyLen = new Uint32Array(0);
  valLen = new Uint32Array(0);
  gen = new Uint32Array(0);
  older = new Int32Array(0);
  newer = new Int32Array(0);
  /** LRU ends (-1 when empty). */
  oldest = -1;
  newest = -1;

  /** `sameKey(slot)`: whether the slot's key is the one being looked up (set once by the owner). */
  constructor(private readonly sameKey: (slot: number) => boolean) {
    this.table = new Int32Array(16).fill(-1);
    this.mask = 15;
  }

  /** The slot of the entry whose key hashes to `h` and matches `sameKey`, or -1. */
  find(h: number, keyLen: number): number {
    const t = this.table,
      mask = this.mask;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = t[i];
      if (s < 0) return -1;
      if (this.hash[s] === h && this.keyLen[s] === keyLen && this.sameKey(s)) {
        this.cell = i;
        return s;
      }
    }
  }

  /** A new slot with these columns, in the table and newest in the LRU list. */
  add(h: number, loc: number, keyLen: number, valLen: number): number {
    const s = this.newSlot();
    this.hash[s] = h;
    this.loc[s] = loc;
    this.keyLen[s] = keyLen;
    this.valLen[s] = valLen;
    if ((this.count + 1) * 8 > this.table.length * 5) this.rehash(this.table.length * 2);
    const t = this.table,
      mask = this.mask;
    let i = h & mask;
    while (t[i] >= 0) i = (i + 1) & mask;
    t[i] = s;
    this.count++;
    this.linkNewest(s);
    return s;
  }

  /** Removes the slot found by the last find() (pass it) from the table and the LRU list, and frees it. */
  removeFound(s: number): void {
    this.unlinkFromTable(this.cell);
    this.drop(s);
  }

  /** Removes slot `s` (found by hash, without comparing keys: slot numbers are unique). */
  remove(s: number): void {
    const t = this.table,
      mask = this.mask;
    let i = this.hash[s] & mask;
    while (t[i] !== s) i = (i + 1) & mask;
    this.unlinkFromTable(i);
    this.drop(s);
  }

  /** Moves `s` to the newest end of the LRU list. */
  touch(s: number): void {
    if (this.newest === s) return;
    this.unlinkLru(s);
    this.linkNewest(s);
  }

  /** Empties the index (and gives its memory back). */
  reset(): void {
    this.count = 0;
    this.table = new Int32Array(16).fill(-1);
    this.mask = 15;
    this.capacity = 0;
    this.used = 0;
    this.freeSlot = -1;
    this.oldest = this.newest = -1;
    for (const k of ['hash', 'keyLen', 'valLen', 'gen'] as const) this[k] = new Uint32Array(0);
    this.loc = new Float64Array(0);
    this.older = new Int32Array(0);
    this.newer = new Int32Array(0);
  }

  /** Bytes of typed arrays the index holds (off the JS heap). */
  bytes(): number {
    return this.table.byteLength + this.capacity * 32;
  }

  private drop(s: number): void {
    this.unlinkLru(s);
    this.count--;
    this.gen[s] = (this.gen[s] + 1) >>> 0;
    this.newer[s] = this.freeSlot;
    this.freeSlot = s;
  }

  private unlinkFromTable(i: number): void {
    // Backward shift: move later cells of the same probe run into the hole.
    const t = this.table,
      mask = this.mask;
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const s = t[j];
      if (s < 0) break;
      const home = this.hash[s] & mask;
      // s may move to the hole unless its home lies cyclically in (hole, j].
      const stays = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!stays) {
        t[hole] = s;
        hole = j;
      }
    }
    t[hole] = -1;
  }

  private rehash(size: number): void {
    const t = new Int32Array(size).fill(-1);
    const mask = size - 1;
    for (let s = this.oldest; s >= 0; s = this.newer[s]) {
      let i = this.hash[s] & mask;
      while (t[i] >= 0) i = (i + 1) & mask;
      t[i] = s;
    }
    this.table = t;
    this.mask = mask;
  }

  private newSlot(): number {
    if (this.freeSlot >= 0) {
      const s = this.freeSlot;
      this.freeSlot = this.newer[s];
      return s;
    }
    if (this.used === this.capacity) this.growColumns(Math.max(16, this.capacity * 2));
    return this.used++;
  }

  private growColumns(n: number): void {
    const g = <T extends Uint32Array | Int32Array | Float64Array>(a: T, C: new (n: number) => T): T => {
      const b = new C(n);
      b.set(a);
      return b;
    };
    this.hash = g(this.hash, Uint32Array);
    this.loc = g(this.loc, Float64Array);
    this.keyLen = g(this.keyLen, Uint32Array);
    this.valLen = g(this.valLen, Uint32Array);
    this.gen = g(this.gen, Uint32Array);
    this.older = g(this.older, Int32Array);
    this.newer = g(this.newer, Int32Array);
    this.capacity = n;
  }

  private linkNewest(s: number): void {
    this.older[s] = this.newest;
    this.newer[s] = -1;
    if (this.newest >= 0) this.newer[this.newest] = s;
    else this.oldest = s;
    this.newest = s;
  }

  private unlinkLru(s: number): void {
    const o = this.older[s],
      n = this.newer[s];
    if (o >= 0) this.newer[o] = n;
    else this.oldest = n;
    if (n >= 0) this.older[n] = o;
    else this.newest = o;
  }
}
