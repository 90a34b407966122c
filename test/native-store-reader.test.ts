/*
 * The native store reader (native/store_reader.h) against the JS store (lib/tmem): over
 * random states made in JS (puts, replacements, flushes, compaction, zbud reclaim), the
 * native lookup of every key ever used equals the JS get, byte for byte, for zsmalloc and
 * zbud pools. Then garbage in the shared state (a node, handle, zspage or frame out of range)
 * makes the native side answer STORE_BAD, never read outside the buffers; a held lock makes it
 * answer STORE_BUSY.
 */
import test from 'ava';
import fc from 'fast-check';
import { Store } from '../lib/tmem';
import { native, STORE_ABSENT, STORE_BAD, STORE_BUSY } from '../lib/native';
import { PageCodec } from '../lib/compress';

type Cmd =
  | { op: 'put'; o: number; i: number; len: number; seed: number }
  | { op: 'flush'; o: number; i: number }
  | { op: 'flushObject'; o: number }
  | { op: 'compact' }
  | { op: 'shrink'; n: number };

// indexes: a dense run, a sparse spread and the top of the 32-bit range (trees of every height)
const indexArb = fc.oneof(
  fc.integer({ min: 0, max: 200 }),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  fc.integer({ min: 2 ** 32 - 70, max: 2 ** 32 - 1 }),
);
const oidArb = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constant(2 ** 53 - 1), fc.constant(2 ** 32 + 7));
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant('put' as const),
      o: oidArb,
      i: indexArb,
      len: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: 300 })),
      seed: fc.integer(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('flush' as const), o: oidArb, i: indexArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('flushObject' as const), o: oidArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('compact' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('shrink' as const), n: fc.integer({ min: 1, max: 4 }) }) },
);

function fill(buf: Uint8Array, len: number, seed: number): void {
  let x = (seed | 1) >>> 0;
  for (let k = 0; k < len; k++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[k] = x & 0xff;
  }
}

function run(driver: 'zsmalloc' | 'zbud', persistent: boolean, cmds: Cmd[]): void {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 }, maxObjects: 64 });
  const pool = s.createPool({ persistent, driver });
  const reader = new native.StoreReader(s.handle());
  const src = new Uint8Array(4096);
  const keys = new Map<string, [number, number]>();
  for (const c of cmds) {
    if (c.op === 'put') {
      fill(src, c.len, c.seed);
      s.put(pool, c.o, 0, 0, c.i, src, c.len);
      keys.set(`${c.o}/${c.i}`, [c.o, c.i]);
    } else if (c.op === 'flush') s.flushPage(pool, c.o, 0, 0, c.i);
    else if (c.op === 'flushObject') s.flushObject(pool, c.o, 0, 0);
    else if (c.op === 'compact') s.zpool(pool).compact();
    else s.zpool(pool).shrink(c.n);
  }
  const a = new Uint8Array(4097),
    b = new Uint8Array(4097);
  for (const [o, i] of keys.values()) {
    const n = reader.lookup(pool, o, 0, 0, i, a);
    const m = s.get(pool, o, 0, 0, i, b); // last: an ephemeral get removes the page
    if (n !== m) throw new Error(`${driver} key ${o}/${i}: native ${n}, JS ${m}`);
    if (m > 0 && Buffer.compare(a.subarray(0, n), b.subarray(0, m)) !== 0)
      throw new Error(`${driver} key ${o}/${i}: bytes differ`);
  }
}

for (const [driver, persistent] of [
  ['zsmalloc', true],
  ['zbud', true],
  ['zbud', false],
] as const) {
  test(`native lookups equal JS gets byte for byte over random states (${driver}, ${persistent ? 'persistent' : 'ephemeral'})`, (t) => {
    fc.assert(
      fc.property(fc.array(cmdArb, { maxLength: 120 }), (cmds) => run(driver, persistent, cmds)),
      { numRuns: 60 },
    );
    t.pass();
  });
}

test('lookupPage decodes what the PageCodec stored (lz4, zstd, raw) into the page', (t) => {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 } });
  const pool = s.createPool({ persistent: true });
  const reader = new native.StoreReader(s.handle());
  const page = new Uint8Array(4096),
    out = new Uint8Array(4096),
    obj = new Uint8Array(4097 + 64);
  const pages: Uint8Array[] = [];
  for (let k = 0; k < 24; k++) {
    const p = new Uint8Array(4096);
    if (k % 3 === 2)
      fill(p, 4096, k + 1); // incompressible: stored raw
    else for (let j = 0; j < 4096; j++) p[j] = (j * (k + 1)) >> 5;
    pages.push(p);
    const codec = new PageCodec(k % 2 === 0 ? 'lz4' : 'zstd');
    const n = codec.compress(p, 0, obj);
    t.true(s.put(pool, 7, 0, 0, k, obj, n));
  }
  for (let k = 0; k < pages.length; k++) {
    t.is(reader.lookupPage(pool, 7, 0, 0, k, page), 4096);
    t.deepEqual(page, pages[k]);
  }
  t.is(reader.lookupPage(pool, 7, 0, 0, 99, out), STORE_ABSENT);
});

/** A store with one object of three pages in a pool of `driver`, and its raw words. */
function small(driver: 'zsmalloc' | 'zbud') {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 }, maxObjects: 64 });
  const pool = s.createPool({ persistent: true, driver });
  const src = new Uint8Array(4096);
  for (const i of [0, 1, 200]) {
    fill(src, 1000, i + 3);
    s.put(pool, 1, 0, 0, i, src, 1000);
  }
  const h = s.handle();
  return { s, pool, reader: new native.StoreReader(h), c: new Int32Array(h.control), m: new Int32Array(h.metas[pool]) };
}

test('a held stripe lock, a compaction in progress or a pool being destroyed: STORE_BUSY, then the same bytes', (t) => {
  const { s, pool, reader, c, m } = small('zsmalloc');
  const dst = new Uint8Array(4097),
    want = new Uint8Array(4097);
  t.is(s.get(pool, 1, 0, 0, 1, want), 1000);
  // every stripe lock held (index.ts: stripe table after the pool table)
  const maxPools = c[2],
    nStripes = c[3];
  const stripes = 64 + maxPools * 16;
  for (let k = 0; k < nStripes; k++) c[stripes + k * 4] = 1;
  t.is(reader.lookup(pool, 1, 0, 0, 1, dst), STORE_BUSY);
  for (let k = 0; k < nStripes; k++) c[stripes + k * 4] = 0;
  m[2] = 1 << 30; // zsmalloc MIGRATE held by a writer
  t.is(reader.lookup(pool, 1, 0, 0, 1, dst), STORE_BUSY);
  m[2] = 1 << 29; // a writer waiting
  t.is(reader.lookup(pool, 1, 0, 0, 1, dst), STORE_BUSY);
  m[2] = 0;
  const users = 64 + pool * 16 + 1;
  c[users] |= 1 << 30; // DESTROYING
  t.is(reader.lookup(pool, 1, 0, 0, 1, dst), STORE_BUSY);
  c[users] &= ~(1 << 30);
  t.is(reader.lookup(pool, 1, 0, 0, 1, dst), 1000);
  t.deepEqual(dst.subarray(0, 1000), want.subarray(0, 1000));
  t.is(c[users], 0, 'the users count is balanced');
  t.is(c[stripes], 0);
  t.is(m[2], 0, 'the MIGRATE read lock was left');
});

test('garbage in the shared state: STORE_BAD, never a read outside the buffers', (t) => {
  const dst = new Uint8Array(4097);
  {
    // zsmalloc handle table: LOC naming a zspage past maxZ, then a frame number past the arena
    const { reader, pool, m } = small('zsmalloc');
    const ZSB = 64 + 255 * 32 + 256,
      maxZ = m[10];
    const HT = ZSB + maxZ * 20;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), 1000);
    const loc = m[HT];
    m[HT] = (maxZ + 5) * 1024;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    m[HT] = 1023 + (loc & ~1023); // object index past the zspage
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    m[HT] = loc;
    const z = ZSB + (loc >>> 10) * 20;
    const pfn = m[z + 8];
    m[z + 8] = 0x7fffffff;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    m[z + 8] = -5;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    m[z + 8] = pfn;
    m[z + 7] = 99; // NFRAMES
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    m[z + 7] = 1;
    m[HT + 1] = 5000; // size
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    m[HT + 1] = 1000;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), 1000);
    t.is(m[2], 0, 'the MIGRATE read lock was left on every path');
  }
  {
    // zbud: a frame number past the arena, a record past PBUMP
    const { reader, pool, m } = small('zbud');
    const PR = 128;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), 1000);
    const pfn = m[PR];
    m[PR] = 1 << 30;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    m[PR] = pfn;
    m[PR + 1] = 65; // FIRST chunks
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    m[PR + 1] = 16;
    m[3] = 0; // PBUMP: no record is live
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
  }
  {
    // the radix tree: a node id past the node pool, a height past 6; the object hash: a record past the table
    const { reader, pool, c } = small('zsmalloc');
    const maxPools = c[2],
      nStripes = c[3],
      ops = c[4],
      ohCap = c[5];
    const REC = 64 + maxPools * 16 + nStripes * 4 + nStripes * ohCap;
    let r = -1;
    for (let k = 0; k < nStripes * ops; k++) if (c[REC + k * 12] === pool + 1) r = REC + k * 12;
    t.true(r >= 0);
    const root = c[r + 8],
      height = c[r + 10];
    t.true(height >= 1);
    c[r + 8] = 0x7fffffff;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    c[r + 8] = root;
    c[r + 10] = 9;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
    c[r + 10] = height;
    t.is(reader.lookup(pool, 1, 0, 0, 200, dst), 1000);
    const OH = 64 + maxPools * 16 + nStripes * 4;
    for (let k = 0; k < nStripes * ohCap; k++) if (c[OH + k] !== 0) c[OH + k] = 0x7ffffff0;
    t.is(reader.lookup(pool, 1, 0, 0, 0, dst), STORE_BAD);
  }
});

test('StoreReader: bad arguments are refused with codes before anything is read', (t) => {
  const { reader } = small('zsmalloc');
  t.throws(() => new native.StoreReader({} as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => reader.lookup(1024, 0, 0, 0, 0, new Uint8Array(8)), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => reader.lookup(0, -1, 0, 0, 0, new Uint8Array(8)), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => reader.lookup(0, 0, 0, 0, 2 ** 32, new Uint8Array(8)), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => reader.lookup(0, 0, 0, 0, 0, new Uint16Array(8) as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => reader.lookupPage(0, 0, 0, 0, 0, new Uint8Array(100)), { code: 'ERR_OUT_OF_RANGE' });
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 } });
  const h = s.handle();
  t.throws(() => new native.StoreReader({ ...h, control: new SharedArrayBuffer(64) }), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.throws(() => new native.StoreReader({ ...h, metas: h.metas.slice(1) }), { code: 'ERR_INVALID_ARG_VALUE' });
});
