/*
 * Deterministic page corpus of `tmem bench` and the benchmarks (bench/): a mix that looks like the heap
 * of a Node service. Kinds, by share of pages:
 *   zero    20%  all-zero pages
 *   json    ~45% JSON-like text records (keys, words, numbers), compressible ~3-5x with lz4
 *   binary  ~32% structured binary (arrays of fixed-size records: ids, floats, enums, padding)
 *   random   3%  random bytes (incompressible)
 */

/** Page kinds, in the order of their numeric labels. */
export const PAGE_KINDS = ['zero', 'json', 'binary', 'random'] as const;
/** Name of a page kind. */
export type PageKind = (typeof PAGE_KINDS)[number];

/** A corpus: `pages` pages of 4096 bytes in `data`, page i labelled `kinds[i]` (index into PAGE_KINDS). */
export interface Corpus {
  /** pages * 4096 bytes. */
  data: Uint8Array;
  /** Kind label of each page (index into `PAGE_KINDS`). */
  kinds: Uint8Array;
  /** Number of pages. */
  pages: number;
}

const WORDS = (
  'id name email status created updated user order item price total count tags score ' +
  'region service cache index value label enabled payload session token version parent child node ' +
  'alpha beta gamma delta kappa sigma omega red green blue active pending closed'
).split(' ');

class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = (seed ^ 0x9e3779b9) | 0 || 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x;
    return x >>> 0;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  real(): number {
    return this.u32() / 4294967296;
  }
}

function jsonPage(out: Uint8Array, off: number, r: Rng): void {
  let s = '';
  let id = r.int(1e6);
  while (s.length < 4096) {
    const n = 2 + r.int(6);
    s += `{"id":${id++},"${WORDS[r.int(WORDS.length)]}":"${WORDS[r.int(WORDS.length)]}_${r.int(1000)}"`;
    for (let k = 0; k < n; k++) {
      const key = WORDS[r.int(WORDS.length)];
      const t = r.int(4);
      if (t === 0) s += `,"${key}":${r.int(100000)}`;
      else if (t === 1) s += `,"${key}":${(r.real() * 1000).toFixed(3)}`;
      else if (t === 2) s += `,"${key}":"${WORDS[r.int(WORDS.length)]} ${WORDS[r.int(WORDS.length)]}"`;
      else s += `,"${key}":[${r.int(50)},${r.int(50)},"${WORDS[r.int(WORDS.length)]}"]`;
    }
    s += '},\n';
  }
  for (let i = 0; i < 4096; i++) out[off + i] = s.charCodeAt(i) & 0x7f;
}

function binaryPage(out: Uint8Array, off: number, r: Rng): void {
  const dv = new DataView(out.buffer, out.byteOffset + off, 4096);
  const recSize = [16, 24, 32, 48][r.int(4)];
  let id = r.int(1 << 24);
  let v = r.real() * 100;
  for (let p = 0; p + recSize <= 4096; p += recSize) {
    dv.setUint32(p, id++, true);
    dv.setUint16(p + 4, r.int(8), true); // enum
    dv.setUint16(p + 6, 0, true); // padding
    v += (r.real() - 0.5) * 0.01;
    dv.setFloat64(p + 8, Math.round(v * 100) / 100, true); // smooth values
    for (let q = 16; q < recSize; q += 4) dv.setUint32(p + q, r.int(4) === 0 ? r.u32() & 0xffff : 0, true);
  }
}

/**
 * Build `pages` pages deterministically from `seed`.
 */
export function makeCorpus(pages: number, seed = 1): Corpus {
  if (!Number.isInteger(pages) || pages < 1) throw new RangeError(`pages: expected a positive integer, got ${pages}`);
  const data = new Uint8Array(pages * 4096);
  const kinds = new Uint8Array(pages);
  const r = new Rng(seed);
  for (let i = 0; i < pages; i++) {
    const x = r.real();
    const off = i * 4096;
    if (x < 0.2) kinds[i] = 0;
    else if (x < 0.65) {
      kinds[i] = 1;
      jsonPage(data, off, r);
    } else if (x < 0.97) {
      kinds[i] = 2;
      binaryPage(data, off, r);
    } else {
      kinds[i] = 3;
      for (let j = 0; j < 4096; j += 4) {
        const u = r.u32();
        data[off + j] = u;
        data[off + j + 1] = u >>> 8;
        data[off + j + 2] = u >>> 16;
        data[off + j + 3] = u >>> 24;
      }
    }
  }
  return { data, kinds, pages };
}
