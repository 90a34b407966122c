import test from 'ava';
import fc from 'fast-check';
import { Store } from '../lib/tmem';
import { runTmemModel, tcmdArb } from './helpers/tmem-model';
import { fill } from './helpers/zpool-model';

test('random put/get/flush/compact/destroy sequences match a Map model', (t) => {
  fc.assert(fc.property(fc.array(tcmdArb, { maxLength: 30 }), (cmds) => runTmemModel(cmds)), { numRuns: 1200 });
  t.pass();
});

test('ephemeral pool under pressure: hits are exact, a dropped page stays a miss until the next put', (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1, max: 4096 })), { maxLength: 300 }), (ops) => {
    const s = Store.create({ arena: { maxBytes: 128 << 10, chunkBytes: 128 << 10 }, maxObjects: 16, maxPages: 1024 });
    const p = s.createPool({ persistent: false });
    const model = new Map<number, Uint8Array>();
    const src = new Uint8Array(4096), dst = new Uint8Array(4096);
    let seq = 0;
    for (const [isPut, i, size] of ops) {
      if (isPut) {
        fill(src, size, ++seq);
        if (s.put(p, 5, 0, 0, i, src, size)) model.set(i, src.slice(0, size)); else model.delete(i);
      } else {
        const n = s.get(p, 5, 0, 0, i, dst);
        const want = model.get(i);
        model.delete(i);
        if (n < 0) { if (s.get(p, 5, 0, 0, i, dst) !== -1) throw new Error('hit after a miss'); continue; }
        if (!want || n !== want.length || dst.subarray(0, n).some((x, j) => x !== want[j])) throw new Error('wrong page');
      }
    }
    const st = s.poolStats(p);
    if (st.pages > model.size) throw new Error('more pages than put');
    if (st.poolBytes > 32 * 4096) throw new Error('over the arena');
  }), { numRuns: 150 });
  t.pass();
});

test('numbers and bigints name the same object; index 2^32-1 works', (t) => {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 } });
  const p = s.createPool({ persistent: true });
  const src = new Uint8Array([1, 2, 3]), dst = new Uint8Array(4096);
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
  t.throws(() => s.createPool({ shared: true, uuid: u, persistent: false }), { instanceOf: TypeError, message: /persistent/ });
});

test('flushObject on a large sparse object scans the table', (t) => {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 } });
  const p = s.createPool({ persistent: true });
  const src = new Uint8Array(64);
  for (const i of [0, 1e6, 3e9, 5]) t.true(s.put(p, 9, 9, 9, i, src, 64));
  t.is(s.flushObject(p, 9, 9, 9), 4);
  t.is(s.poolStats(p).pages, 0);
  t.is(s.get(p, 9, 9, 9, 1e6, new Uint8Array(4096)), -1);
});

test('getWith hands the page in place; put and get allocate no per-call objects', (t) => {
  const s = Store.create({ arena: { maxBytes: 4 << 20, chunkBytes: 1 << 20 } });
  const p = s.createPool({ persistent: true });
  const src = new Uint8Array(4096), dst = new Uint8Array(4096);
  fill(src, 4096, 3);
  s.put(p, 1, 0, 0, 0, src, 1500);
  let sum = -1;
  const reader = (b: Uint8Array, o: number, n: number) => { sum = 0; for (let i = 0; i < n; i++) sum += b[o + i]; };
  t.is(s.getWith(p, 1, 0, 0, 0, reader), 1500);
  t.is(sum, src.subarray(0, 1500).reduce((x, y) => x + y, 0));
  // warm up, then count heap growth over many calls with GC disabled in between
  for (let k = 0; k < 20000; k++) { s.put(p, 1, 0, 0, k & 255, src, 1000); s.get(p, 1, 0, 0, k & 255, dst); }
  const before = process.memoryUsage().heapUsed;
  for (let k = 0; k < 20000; k++) { s.put(p, 1, 0, 0, k & 255, src, 1000); s.get(p, 1, 0, 0, k & 255, dst); }
  const grown = process.memoryUsage().heapUsed - before;
  t.true(grown < 400_000, `heap grew ${grown} bytes over 40000 calls`);
});

test('bad input throws TypeError/RangeError naming the argument and leaves the store intact', (t) => {
  const s = Store.create({ arena: { maxBytes: 1 << 20, chunkBytes: 128 << 10 }, maxPools: 2 });
  const p = s.createPool({ persistent: true });
  const src = new Uint8Array(10), dst = new Uint8Array(4096);
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
