/**
 * Deterministic page contents and a model-keeping random reader/writer for
 * the swap tests (test/swap*.test.ts and helpers/swap-rw-worker.ts).
 *
 * Page `p` at version `v` has one of four kinds, chosen by a hash of (p, v):
 *
 *   zero    all zero bytes                         (zero-page fault path)
 *   same    one non-zero 32-bit word repeated      (zswap same-filled pages)
 *   random  xorshift32 bytes, incompressible       (stored raw, "huge")
 *   text    a repeated motif plus the page number  (compresses well)
 *
 * so a test can check any page completely knowing only its version.
 *
 * Concurrency: each writer thread owns the pages with p % writers === index
 * and is the only one writing them. Versions are published in a shared
 * Int32Array as a seqlock (2v-1 while writing version v, 2v when done), so a
 * thread that reads a page it does not own can still check every byte of it
 * whenever no write overlapped its copy.
 */
export const PAGE = 4096;

export const KIND_ZERO = 0;
export const KIND_SAME = 1;
export const KIND_RANDOM = 2;
export const KIND_TEXT = 3;

/** The murmur3 32-bit finalizer. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit hash of two integers (murmur3 finalizer over a mix). */
export function mix(a: number, b: number): number {
  return fmix32(Math.imul(a ^ 0x5bd1e995, 0x85ebca6b) ^ Math.imul(b + 0x27d4eb2f, 0xc2b2ae35));
}

/** The kind of page p at version v: 1/8 zero, 1/8 same-filled, 1/4 random, 1/2 text. */
export function kindOf(page: number, version: number): number {
  const k = mix(page, version) & 7;
  return k === 0 ? KIND_ZERO : k === 1 ? KIND_SAME : k < 4 ? KIND_RANDOM : KIND_TEXT;
}

/** Writes page p at version v into dst[off..off+4096). */
export function fillPage(
  dst: Uint8Array,
  off: number,
  page: number,
  version: number,
  kind = kindOf(page, version),
): void {
  const h = mix(page, version);
  switch (kind) {
    case KIND_ZERO:
      dst.fill(0, off, off + PAGE);
      return;
    case KIND_SAME: {
      const w = (h | 0x01010101) >>> 0;
      for (let i = 0; i < PAGE; i += 4) {
        dst[off + i] = w & 0xff;
        dst[off + i + 1] = (w >>> 8) & 0xff;
        dst[off + i + 2] = (w >>> 16) & 0xff;
        dst[off + i + 3] = w >>> 24;
      }
      return;
    }
    case KIND_RANDOM: {
      let x = h | 1;
      for (let i = 0; i < PAGE; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        dst[off + i] = x & 0xff;
        dst[off + i + 1] = (x >>> 8) & 0xff;
        dst[off + i + 2] = (x >>> 16) & 0xff;
        dst[off + i + 3] = (x >>> 24) & 0xff;
      }
      return;
    }
    default:
      for (let i = 0; i < PAGE; i++) {
        // A 64-byte motif from the hash, the page number every 512 bytes, the version every 1024.
        let b = ((h >>> ((i & 3) * 8)) + (i & 63)) & 0xff;
        if ((i & 511) < 4) b = (page >>> ((i & 3) * 8)) & 0xff;
        else if ((i & 1023) === 8) b = version & 0xff;
        dst[off + i] = b;
      }
  }
}

const scratch = new Uint8Array(PAGE);

/**
 * Index of the first byte of src[off..off+4096) that differs from page p at
 * version v, or -1 if the page is exactly right.
 */
export function pageMismatch(src: Uint8Array, off: number, page: number, version: number): number {
  fillPage(scratch, 0, page, version);
  const got = Buffer.from(src.buffer, src.byteOffset + off, PAGE);
  if (got.equals(scratch)) return -1;
  for (let i = 0; i < PAGE; i++) if (src[off + i] !== scratch[i]) return i;
  return -1;
}

/** Describes a wrong page for a failure message. */
export function describeMismatch(src: Uint8Array, off: number, page: number, version: number, at: number): string {
  fillPage(scratch, 0, page, version);
  return `page ${page} (version ${version}, kind ${kindOf(page, version)}) byte ${at}: got ${src[off + at]}, want ${scratch[at]}`;
}

/** xorshift32: a small seeded generator so runs are reproducible from the seed in the message. */
export class Rng {
  private x: number;
  constructor(readonly seed: number) {
    this.x = seed | 0 || 0x2545f491;
  }
  next(): number {
    let x = this.x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.x = x;
    return x >>> 0;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return this.next() % n;
  }
}

/** What one writer thread reports at the end. */
export interface WriterReport {
  index: number;
  /** Version of every page this writer owns (others are -1). */
  versions: number[];
  ops: number;
  writes: number;
  ownReads: number;
  foreignChecked: number;
  foreignSkipped: number;
  /** The first wrong pages seen (empty when all is well). */
  errors: string[];
}

/**
 * One thread's random reads and writes over a region, keeping the model of
 * the pages it owns. Reads check every byte (own pages always, others when
 * the seqlock says no write overlapped).
 */
export class Writer {
  private readonly rng: Rng;
  private readonly versions: Int32Array;
  private readonly copy = new Uint8Array(PAGE);
  private readonly want = new Uint8Array(PAGE);
  readonly report: WriterReport;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly seq: Int32Array,
    readonly index: number,
    readonly writers: number,
    seed: number,
  ) {
    this.rng = new Rng(seed);
    const pages = bytes.length / PAGE;
    this.versions = new Int32Array(pages).fill(-1);
    for (let p = index; p < pages; p += writers) this.versions[p] = Atomics.load(seq, p) >> 1;
    this.report = {
      index,
      versions: [],
      ops: 0,
      writes: 0,
      ownReads: 0,
      foreignChecked: 0,
      foreignSkipped: 0,
      errors: [],
    };
  }

  private fail(msg: string): void {
    if (this.report.errors.length < 8) this.report.errors.push(`writer ${this.index}: ${msg}`);
  }

  /** Runs n random operations (about 45% reads of any page, 55% writes of own pages). */
  run(n: number): void {
    const pages = this.bytes.length / PAGE;
    for (let k = 0; k < n; k++) {
      this.report.ops++;
      let p = this.rng.below(pages);
      if (this.rng.below(100) < 45) {
        this.read(p);
        continue;
      }
      p = p - (p % this.writers) + this.index;
      if (p >= pages) p -= this.writers;
      this.write(p, this.rng.below(3));
    }
  }

  private read(p: number): void {
    const off = p * PAGE;
    if (p % this.writers === this.index) {
      this.report.ownReads++;
      const bad = pageMismatch(this.bytes, off, p, this.versions[p]);
      if (bad >= 0) this.fail(`own read: ${describeMismatch(this.bytes, off, p, this.versions[p], bad)}`);
      return;
    }
    const s1 = Atomics.load(this.seq, p);
    this.copy.set(this.bytes.subarray(off, off + PAGE)); // faults like any read
    const s2 = Atomics.load(this.seq, p);
    if ((s1 & 1) !== 0 || s1 !== s2) {
      this.report.foreignSkipped++;
      return;
    }
    this.report.foreignChecked++;
    const bad = pageMismatch(this.copy, 0, p, s1 >> 1);
    if (bad >= 0) this.fail(`foreign read: ${describeMismatch(this.copy, 0, p, s1 >> 1, bad)}`);
  }

  /**
   * Writes the next version of own page p. style 0: one set() of the whole
   * page (a write fault on a missing page); 1: only the bytes that differ,
   * after reading the page (a read fault, then a write-protect fault);
   * 2: backwards, byte by byte, from the last byte.
   */
  private write(p: number, style: number): void {
    const off = p * PAGE;
    const v = this.versions[p] + 1;
    fillPage(this.want, 0, p, v);
    Atomics.store(this.seq, p, 2 * v - 1);
    const b = this.bytes;
    if (style === 0) {
      b.set(this.want, off);
    } else if (style === 1) {
      for (let i = 0; i < PAGE; i++) if (b[off + i] !== this.want[i]) b[off + i] = this.want[i];
    } else {
      for (let i = PAGE - 1; i >= 0; i--) b[off + i] = this.want[i];
    }
    Atomics.store(this.seq, p, 2 * v);
    this.versions[p] = v;
    this.report.writes++;
  }

  /** The report with the final versions. */
  finish(): WriterReport {
    this.report.versions = Array.from(this.versions);
    return this.report;
  }
}
