/**
 * Size classes of the cache's allocator (lib/cache/allocator.ts): 16-byte steps up to 128
 * bytes, then four classes per doubling up to 8 KiB (jemalloc's spacing), so that rounding
 * up wastes at most 25% (12.5% on average) of an object. Each class is carved out of slabs
 * of one or more whole pages, as many pages as keep the slab's unused tail under 1/16.
 * Objects larger than the last class take whole pages (a page run).
 */
export const PAGE = 4096;
/** The largest object served from a slab; larger ones are page runs. */
export const MAX_SMALL = 8192;
/** Slots of a slab are tracked in a bitmap of at most this many 32-bit words (256 slots). */
export const BITMAP_WORDS = 8;

function classSizes(): number[] {
  const sizes: number[] = [];
  for (let s = 16; s <= 128; s += 16) sizes.push(s);
  for (let base = 128; base < MAX_SMALL; base *= 2) {
    for (let i = 1; i <= 4; i++) sizes.push(base + (base / 4) * i);
  }
  return sizes;
}

/** Bytes of each class, ascending. */
export const CLASS_SIZES: readonly number[] = classSizes();

/** Pages of one slab of each class: the fewest (1..8) whose unused tail is under 1/16 of the slab, else the least wasteful. */
export const CLASS_PAGES: readonly number[] = CLASS_SIZES.map((size) => {
  let best = 1,
    bestWaste = 1;
  for (let k = 1; k <= 8; k++) {
    const bytes = k * PAGE;
    if (bytes < size || Math.floor(bytes / size) > BITMAP_WORDS * 32) continue;
    const waste = (bytes % size) / bytes;
    if (waste < 1 / 16) return k;
    if (waste < bestWaste) {
      best = k;
      bestWaste = waste;
    }
  }
  return best;
});

/** Objects in one slab of each class. */
export const CLASS_SLOTS: readonly number[] = CLASS_SIZES.map((size, c) => Math.floor((CLASS_PAGES[c] * PAGE) / size));

/** classOf[ceil(n / 16)]: the class of an object of n bytes (1..MAX_SMALL). */
const CLASS_BY_16 = (() => {
  const t = new Uint8Array(MAX_SMALL / 16 + 1);
  let c = 0;
  for (let i = 0; i < t.length; i++) {
    while (CLASS_SIZES[c] < i * 16) c++;
    t[i] = c;
  }
  return t;
})();

/** The size class of an object of `n` bytes, 1 <= n <= MAX_SMALL. */
export function classOf(n: number): number {
  return CLASS_BY_16[(n + 15) >>> 4];
}
