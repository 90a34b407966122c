import test from 'ava';
import fc from 'fast-check';
import { Store } from '../lib/tmem';
import { runTmemModel, tcmdArb } from './helpers/tmem-model';
import { fill } from './helpers/zpool-model';

test('random put/get/flush/compact/destroy sequences match a Map model', (t) => {
  fc.assert(
    fc.property(fc.array(tcmdArb, { maxLength: 30 }), (cmds) => runTmemModel(cmds)),
    { numRuns: 1200 },
  );
  t.pass();
});

test('ephemeral pool under pressure: hits are exact, a dropped page stays a miss until the next put', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1, max: 4096 })), {
        maxLength: 300,
      }),
      (ops) => {
        const s = Store.create({
          arena: { maxBytes: 128 << 10, chunkBytes: 128 << 10 },
          maxObjects: 16,
          maxPages: 1024,
        });
        const p = s.createPool({ persistent: false });
        const model = new Map<number, Uint8Array>();
        const src = new Uint8Array(4096),
          dst = new Uint8Array(4096);
        let seq = 0;
        for (const [isPut, i, size] of ops) {
          if (isPut) {
            fill(src, size, ++seq);
            if (s.put(p, 5, 0, 0, i, src, size)) model.set(i, src.slice(0, size));
            else model.delete(i);
          } else {
            const n = s.get(p, 5, 0, 0, i, dst);
            const want = model.get(i);
            model.delete(i);
            if (n < 0) {
              if (s.get(p, 5, 0, 0, i, dst) !== -1) throw new Error('hit after a miss');
              continue;
            }
            if (!want || n !== want.length || dst.subarray(0, n).some((x, j) => x !== want[j]))
              throw new Error('wrong page');
          }
        }
        const st = s.poolStats(p);
        if (st.pages > model.size) throw new Error('more pages than put');
        if (st.poolBytes > 32 * 4096) throw new Error('over the arena');
      },
    ),
    { numRuns: 150 },
  );
  t.pass();
});

test('numbers and bigints name the same object; index 2^32-1 works', (t) => {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 } });
  const p = s.createPool({ persistent: true });
  const src = new Uint8Array([1, 2, 3]),
    dst = new Uint8Array(4096);
  t.true(s.put(p, 2 ** 40 + 5, 0, 7, 0xffffffff, src, 3));
  t.is(s.getKey(p, [2n ** 40n + 5n, 0n, 7n], 0xffffffff, dst), 3);
  t.true(s.putKey(p, 2n ** 64n - 1n, 1, src));
  t.is(s.getKey(p, [2n ** 64n - 1n, 0, 0], 1, dst), 3);
  t.is(s.getKey(p, [2n ** 63n - 1n, 0, 0], 1, dst), -1);
  t.is(s.flushObjectKey(p, 2n ** 64n - 1n), 1);
});

test('shared pools are found by uuid; private pools are distinct', (t) => {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 } });
  const u = '0123456789abcdef0123456789abcdef';
  const a = s.createPool({ shared: true, uuid: u, persistent: true });
  const b = s.createPool({ shared: true, uuid: '01234567-89ab-cdef-0123-456789abcdef', persistent: true });
  t.is(a, b);
  t.not(s.createPool({ shared: true, uuid: new Uint8Array(16), persistent: true }), a);
  t.not(s.createPool({ persistent: true }), s.createPool({ persistent: true }));
  t.throws(() => s.createPool({ shared: true, uuid: u, persistent: false }), {
    instanceOf: TypeError,
    message: /persistent/,
  });
});

test('flushObject on a large sparse object frees its whole tree', (t) => {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 } });
  const p = s.createPool({ persistent: true });
  const src = new Uint8Array(64);
  for (const i of [0, 1e6, 3e9, 5]) t.true(s.put(p, 9, 9, 9, i, src, 64));
  t.is(s.flushObject(p, 9, 9, 9), 4);
  t.is(s.poolStats(p).pages, 0);
  t.is(s.get(p, 9, 9, 9, 1e6, new Uint8Array(4096)), -1);
  t.is(s.indexStats().nodes, 0);
  s.checkIndex();
});

// indexes that cross node boundaries at every level, the top of the range, and a random spread
const idxArb = fc.oneof(
  fc.integer({ min: 0, max: 200 }),
  fc.constantFrom(63, 64, 4095, 4096, 262143, 262144, 2 ** 24, 2 ** 30 - 1, 2 ** 30, 2 ** 31, 2 ** 32 - 1),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }),
);
type ICmd = { op: 'put' | 'get' | 'flush'; o: number; i: number } | { op: 'flushObject'; o: number };
const icmdArb: fc.Arbitrary<ICmd> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ op: fc.constant('put' as const), o: fc.integer({ min: 0, max: 2 }), i: idxArb }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('get' as const), o: fc.integer({ min: 0, max: 2 }), i: idxArb }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('flush' as const), o: fc.integer({ min: 0, max: 2 }), i: idxArb }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('flushObject' as const), o: fc.integer({ min: 0, max: 2 }) }) },
);

test('radix index: grows, prunes and collapses trees over the whole index range; nodes all come back', (t) => {
  fc.assert(
    fc.property(fc.array(icmdArb, { maxLength: 120 }), (cmds) => {
      const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 }, maxObjects: 16, maxPages: 4096 });
      const p = s.createPool({ persistent: true });
      const model = new Map<string, number>();
      const src = new Uint8Array(64),
        dst = new Uint8Array(4096);
      let seq = 0;
      for (const c of cmds) {
        if (c.op === 'put') {
          const len = 8 + (++seq % 50);
          src[0] = seq & 255;
          if (!s.put(p, c.o, 0, 0, c.i, src, len)) throw new Error('put refused');
          model.set(`${c.o}/${c.i}`, len * 256 + (seq & 255));
        } else if (c.op === 'get') {
          const n = s.get(p, c.o, 0, 0, c.i, dst);
          const want = model.get(`${c.o}/${c.i}`);
          if (want === undefined ? n !== -1 : n * 256 + dst[0] !== want) throw new Error(`get ${c.o}/${c.i}: ${n}`);
        } else if (c.op === 'flush') {
          if (s.flushPage(p, c.o, 0, 0, c.i) !== model.delete(`${c.o}/${c.i}`)) throw new Error(`flush ${c.o}/${c.i}`);
        } else {
          let n = 0;
          for (const k of [...model.keys()])
            if (k.startsWith(`${c.o}/`)) {
              model.delete(k);
              n++;
            }
          if (s.flushObject(p, c.o, 0, 0) !== n) throw new Error(`flushObject ${c.o}`);
        }
        s.checkIndex();
      }
      for (const [k, want] of model) {
        const [o, i] = k.split('/').map(Number);
        const n = s.get(p, o, 0, 0, i, dst);
        if (n * 256 + dst[0] !== want) throw new Error(`final get ${k}`);
      }
      if (s.indexStats().pages !== model.size) throw new Error('page count');
      for (let o = 0; o < 3; o++) s.flushObject(p, o, 0, 0);
      if (s.indexStats().nodes !== 0 || s.indexStats().pages !== 0)
        throw new Error('nodes left after flushing everything');
    }),
    { numRuns: 400 },
  );
  t.pass();
});

test('radix index: dense pages cost a leaf per 64; a one-page object costs no node; destroyPool frees every node', (t) => {
  const s = Store.create({ arena: { maxBytes: 64 << 20, chunkBytes: 1 << 20 }, maxPages: 200000 });
  const p = s.createPool({ persistent: true });
  const src = new Uint8Array(32);
  let ok = 0;
  for (let i = 0; i < 10000; i++) if (s.put(p, 1, 0, 0, 3_000_000_000 + i, src, 32)) ok++;
  t.is(ok, 10000);
  const st = s.indexStats();
  // 10000 pages in ceil(10000 / 64) + 1 leaves (not aligned), one node per 64 of those above
  t.true(st.nodes <= 158 + 3 + 2, `${st.nodes} nodes`);
  t.is(st.touchedNodes, st.nodes);
  t.true((st.nodes * st.nodeBytes) / 10000 < 4.5, `${((st.nodes * st.nodeBytes) / 10000).toFixed(2)} B/page`);
  for (let o = 2; o < 100; o++) t.true(s.put(p, o, 0, 0, o * 7919, src, 32));
  t.is(s.indexStats().nodes, st.nodes);
  s.checkIndex();
  s.destroyPool(p);
  t.deepEqual([s.indexStats().nodes, s.indexStats().pages], [0, 0]);
  // freed nodes are reused before untouched ones
  const q = s.createPool({ persistent: true });
  for (let i = 0; i < 10000; i++) s.put(q, 1, 0, 0, i, src, 32);
  t.is(s.indexStats().touchedNodes, st.touchedNodes);
});

test('maxPages bounds stored pages; an exhausted node pool refuses new pages, not replacements', (t) => {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 }, maxPages: 100 });
  const p = s.createPool({ persistent: true });
  const e = s.createPool({ persistent: false });
  const src = new Uint8Array(16),
    dst = new Uint8Array(4096);
  for (let i = 0; i < 60; i++) t.true(s.put(p, 1, 0, 0, i, src, 16));
  for (let i = 0; i < 40; i++) t.true(s.put(e, 1, 0, 0, i, src, 16));
  t.false(s.put(p, 1, 0, 0, 60, src, 16));
  t.false(s.put(p, 2, 0, 0, 0, src, 16));
  src[0] = 7;
  t.true(s.put(p, 1, 0, 0, 5, src, 16), 'a replacement needs no room');
  t.is(s.get(p, 1, 0, 0, 5, dst), 16);
  t.is(dst[0], 7);
  t.is(s.get(e, 1, 0, 0, 0, dst), 16); // ephemeral get frees one
  t.true(s.put(p, 1, 0, 0, 60, src, 16));
  t.is(s.indexStats().pages, 100);
  s.checkIndex();

  // 100 / 4 + 64 = 89 nodes: scattered pages (one leaf and its path each) run out of them
  const s2 = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 }, maxPages: 100 });
  const p2 = s2.createPool({ persistent: true });
  let stored = 0;
  for (let i = 0; i < 100; i++) if (s2.put(p2, 1, 0, 0, i * 40_000_000, src, 16)) stored++;
  t.true(stored < 100 && stored > 10, `${stored} stored`);
  t.is(s2.indexStats().nodes, s2.indexStats().maxNodes);
  s2.checkIndex();
  t.true(s2.put(p2, 1, 0, 0, 0, src, 16), 'a replacement still works');
  t.true(s2.put(p2, 1, 0, 0, 1, src, 16), 'a page in an existing leaf still fits');
  t.is(s2.poolStats(p2).pages, stored + 1);
  t.is(s2.flushObject(p2, 1, 0, 0), stored + 1);
  t.is(s2.indexStats().nodes, 0);
  s2.checkIndex();
  t.throws(() => Store.create({ maxPages: 2 ** 28 + 1 }), { instanceOf: RangeError, message: /maxPages/ });
});

test('getWith hands the page in place; put and get allocate no per-call objects', (t) => {
  const s = Store.create({ arena: { maxBytes: 4 << 20, chunkBytes: 1 << 20 } });
  const p = s.createPool({ persistent: true });
  const src = new Uint8Array(4096),
    dst = new Uint8Array(4096);
  fill(src, 4096, 3);
  s.put(p, 1, 0, 0, 0, src, 1500);
  let sum = -1;
  const reader = (b: Uint8Array, o: number, n: number) => {
    sum = 0;
    for (let i = 0; i < n; i++) sum += b[o + i];
  };
  t.is(s.getWith(p, 1, 0, 0, 0, reader), 1500);
  t.is(
    sum,
    src.subarray(0, 1500).reduce((x, y) => x + y, 0),
  );
  // warm up, then count heap growth over many calls with GC disabled in between
  for (let k = 0; k < 20000; k++) {
    s.put(p, 1, 0, 0, k & 255, src, 1000);
    s.get(p, 1, 0, 0, k & 255, dst);
  }
  const before = process.memoryUsage().heapUsed;
  for (let k = 0; k < 20000; k++) {
    s.put(p, 1, 0, 0, k & 255, src, 1000);
    s.get(p, 1, 0, 0, k & 255, dst);
  }
  const grown = process.memoryUsage().heapUsed - before;
  t.true(grown < 400_000, `heap grew ${grown} bytes over 40000 calls`);
});

test('bad input throws TypeError/RangeError naming the argument and leaves the store intact', (t) => {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 }, maxPools: 2 });
  const p = s.createPool({ persistent: true });
  const src = new Uint8Array(10),
    dst = new Uint8Array(4096);
  t.true(s.put(p, 1, 0, 0, 0, src, 10));
  t.throws(() => s.put(p, -1, 0, 0, 0, src, 10), { instanceOf: TypeError, message: /oid/ });
  t.throws(() => s.put(p, 1.5, 0, 0, 0, src, 10), { instanceOf: TypeError, message: /oid/ });
  t.throws(() => s.put(p, 2 ** 53, 0, 0, 0, src, 10), { instanceOf: TypeError, message: /oid/ });
  t.throws(() => s.putKey(p, 2n ** 64n, 0, src), { instanceOf: TypeError, message: /oid/ });
  t.throws(() => s.put(p, 1, 0, 0, -1, src, 10), { instanceOf: RangeError, message: /index/ });
  t.throws(() => s.put(p, 1, 0, 0, 2 ** 32, src, 10), { instanceOf: RangeError, message: /index/ });
  t.throws(() => s.put(p, 1, 0, 0, 0, src, 0), { instanceOf: RangeError, message: /len/ });
  t.throws(() => s.put(p, 1, 0, 0, 0, src, 11), { instanceOf: RangeError, message: /len/ });
  t.throws(() => s.put(p, 1, 0, 0, 0, new Uint8Array(5000), 4097), { instanceOf: RangeError, message: /len/ });
  t.throws(() => s.put(7, 1, 0, 0, 0, src, 10), { instanceOf: RangeError, message: /pool/ });
  t.throws(() => s.put(1, 1, 0, 0, 0, src, 10), { instanceOf: RangeError, message: /pool/ });
  t.throws(() => s.get(p, 1, 0, 0, 0, new Uint8Array(5)), { instanceOf: RangeError, message: /dst/ });
  t.throws(() => s.createPool({ driver: 'zfoo' }), { instanceOf: TypeError, message: /driver/ });
  t.throws(() => s.createPool({ shared: true }), { instanceOf: TypeError, message: /uuid/ });
  t.throws(() => s.createPool({ uuid: 'xyz' }), { instanceOf: TypeError, message: /uuid/ });
  s.createPool({});
  t.throws(() => s.createPool({}), { instanceOf: RangeError, message: /maxPools/ });
  t.throws(() => Store.attach({} as never), { instanceOf: TypeError, message: /handle/ });
  t.is(s.get(p, 1, 0, 0, 0, dst), 10);
  t.is(s.poolStats(p).pages, 1);
  s.destroyPool(p);
  t.throws(() => s.get(p, 1, 0, 0, 0, dst), { instanceOf: RangeError, message: /pool/ });
});
