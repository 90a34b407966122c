/**
 * Page contents for the swap file tests (test/swapfile.test.ts and
 * helpers/swapfile-corrupt-child.ts): page `p` at version `v` is fully
 * determined by (p, v, seed), so any page can be checked byte for byte
 * knowing only its version.
 *
 * Kinds, by a hash of (p, v, seed):
 *   random  3/8  xorshift bytes: incompressible, the pool stores it raw or
 *                refuses it, so with a swap file it goes to the file
 *   text    3/8  words from a small dictionary (about 2x with lz4), with the page
 *                number and version in it
 *   same    1/8  one non-zero 32-bit word repeated (never reaches the file)
 *   zero    1/8
 */
import { fmix32 } from './swap-pattern';

export const PAGE = 4096;

function mix(a: number, b: number, c: number): number {
  return fmix32(
    Math.imul(a ^ 0x5bd1e995, 0x85ebca6b) ^ Math.imul(b + 0x27d4eb2f, 0xc2b2ae35) ^ Math.imul(c | 1, 0x165667b1),
  );
}

const WORDS = (
  'id name email status created updated user order item price total count tags score region ' +
  'service cache index value label enabled payload session token version parent child node'
).split(' ');

export type Kind = 'random' | 'text' | 'same' | 'zero';

export function kindOf(page: number, version: number, seed: number): Kind {
  const k = mix(page, version, seed) & 7;
  return k < 3 ? 'random' : k < 6 ? 'text' : k === 6 ? 'same' : 'zero';
}

/** Writes page p at version v into dst[off..off+4096). */
export function fillPage(
  dst: Uint8Array,
  off: number,
  page: number,
  version: number,
  seed: number,
  kind = kindOf(page, version, seed),
): void {
  const h = mix(page, version, seed);
  const words = new DataView(dst.buffer, dst.byteOffset + off, PAGE);
  switch (kind) {
    case 'zero':
      dst.fill(0, off, off + PAGE);
      return;
    case 'same': {
      const w = (h | 0x01010101) >>> 0;
      for (let i = 0; i < PAGE; i += 4) words.setUint32(i, w, true);
      return;
    }
    case 'random': {
      let x = h | 1;
      for (let i = 0; i < PAGE; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        words.setUint32(i, x >>> 0, true);
      }
      return;
    }
    default: {
      // Words drawn at random from a small dictionary: lz4 gets about 2x, so the pool fills.
      let x = h | 1;
      let i = 0;
      while (i < PAGE) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        const w = WORDS[(x >>> 0) % WORDS.length];
        for (let k = 0; k < w.length && i < PAGE; k++) dst[off + i++] = w.charCodeAt(k);
        if (i < PAGE) dst[off + i++] = (x >>> 24) & 1 ? 0x20 : 0x2c;
      }
      words.setUint32(0, page, true);
      words.setUint32(4, version, true);
      words.setUint32(2048, page ^ 0xa5a5a5a5, true);
    }
  }
}

/** Checks pages against their versions; one scratch page, no allocation per page. */
export class PageChecker {
  private readonly want = Buffer.alloc(PAGE);
  constructor(private readonly seed: number) {}

  /** -1 if page p of `bytes` is page p at version v, else the first wrong byte's offset in the page. */
  mismatch(bytes: Uint8Array, page: number, version: number, kind?: Kind): number {
    fillPage(this.want, 0, page, version, this.seed, kind);
    const got = Buffer.from(bytes.buffer, bytes.byteOffset + page * PAGE, PAGE);
    if (got.equals(this.want)) return -1;
    for (let i = 0; i < PAGE; i++) if (got[i] !== this.want[i]) return i;
    return -1; // changed under us between the two reads: cannot happen single-threaded
  }

  /** A one-line description of a wrong page. */
  describe(
    bytes: Uint8Array,
    page: number,
    version: number,
    at: number,
    kind = kindOf(page, version, this.seed),
  ): string {
    fillPage(this.want, 0, page, version, this.seed, kind);
    const got = bytes[page * PAGE + at];
    return `page ${page} (v${version}, ${kind}): byte ${at} is ${got}, expected ${this.want[at]}`;
  }
}

/** A deterministic permutation of 0..n-1 (Fisher-Yates over xorshift32). */
export function shuffled(n: number, seed: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let x = seed | 1;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}
