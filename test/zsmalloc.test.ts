import test from 'ava';
import fc from 'fast-check';
import { Arena } from '../lib/arena';
import { createZpool, attachZpool } from '../lib/zpool';
import { Zsmalloc, pagesPerZspage } from '../lib/zpool/zsmalloc';
import { runZpoolModel, zcmdArb, fill } from './helpers/zpool-model';

test('random malloc/free/compact/shrink/reset sequences match a Map model', (t) => {
  fc.assert(
    fc.property(fc.array(zcmdArb, { maxLength: 40 }), (cmds) => runZpoolModel('zsmalloc', cmds)),
    { numRuns: 700 },
  );
  t.pass();
});

test('refuses at its frame limit and keeps its objects', (t) => {
  fc.assert(
    fc.property(fc.array(zcmdArb, { maxLength: 40 }), (cmds) => runZpoolModel('zsmalloc', cmds, 6)),
    { numRuns: 200 },
  );
  t.pass();
});

test('class geometry: zspages of 1..8 frames, waste below 1/8 of the zspage except the huge class', (t) => {
  for (let size = 32; size <= 4096; size += 16) {
    const n = pagesPerZspage(size);
    t.true(n >= 1 && n <= 8);
    const objs = Math.floor((n * 4096) / size);
    if (objs > 1) t.true((n * 4096 - objs * size) / (n * 4096) < 0.125, `size ${size}`);
  }
  t.is(pagesPerZspage(4096), 1);
  t.is(pagesPerZspage(1168), 2);
});

test('classes of equal geometry are merged; sizes above 3641 share the huge class', (t) => {
  const a = Arena.create({ maxBytes: 1 << 20, chunkBytes: 128 << 10 });
  const z = createZpool('zsmalloc', a) as Zsmalloc;
  t.is(z.classOf(3700), z.classOf(4096));
  t.not(z.classOf(3600), z.classOf(4096));
  const h = z.malloc(3700);
  const st = z.stats() as unknown as { classes: { huge: boolean; size: number }[] };
  t.deepEqual(
    st.classes.map((c) => [c.size, c.huge]),
    [[4096, true]],
  );
  z.free(h);
});

test('compaction frees zspages and keeps every byte', (t) => {
  const a = Arena.create({ maxBytes: 8 << 20, chunkBytes: 1 << 20 });
  const z = createZpool('zsmalloc', a);
  const hs: number[] = [];
  const src = new Uint8Array(4096);
  for (let i = 0; i < 2000; i++) {
    const h = z.malloc(200 + (i % 7));
    fill(src, 200, i);
    z.write(h, src, 0, 200);
    hs.push(h);
  }
  const keep = hs.filter((_, i) => i % 5 === 0);
  for (let i = 0; i < hs.length; i++) if (i % 5 !== 0) z.free(hs[i]);
  const before = z.stats().frames;
  const freed = z.compact();
  t.true(freed > 0);
  t.is(z.stats().frames, before - freed);
  const dst = new Uint8Array(4096);
  for (const h of keep) {
    z.read(h, dst, 0);
    fill(src, 200, hs.indexOf(h));
    t.deepEqual(dst.subarray(0, 200), src.subarray(0, 200));
  }
});

test('a second instance attached to the same meta sees the same objects', (t) => {
  const a = Arena.create({ maxBytes: 1 << 20, chunkBytes: 128 << 10 });
  const z = createZpool('zsmalloc', a);
  const h = z.malloc(100);
  z.write(h, new Uint8Array(100).fill(9), 0, 100);
  const z2 = attachZpool(Arena.attach(a.handle()), z.handle());
  const dst = new Uint8Array(100);
  t.is(z2.read(h, dst, 0), 100);
  t.is(dst[99], 9);
  z2.free(h);
  t.is(z.stats().objects, 0);
});

test('bad input throws and leaves the pool intact', (t) => {
  const a = Arena.create({ maxBytes: 1 << 20, chunkBytes: 128 << 10 });
  const z = createZpool('zsmalloc', a);
  const h = z.malloc(10);
  t.throws(() => z.malloc(0), { instanceOf: RangeError, message: /size/ });
  t.throws(() => z.malloc(4097), { instanceOf: RangeError, message: /size/ });
  t.throws(() => z.malloc(1.5), { instanceOf: RangeError, message: /size/ });
  t.throws(() => z.free(h + 1), { instanceOf: RangeError, message: /handle/ });
  t.throws(() => z.free(0), { instanceOf: RangeError, message: /handle/ });
  t.throws(() => z.write(h, new Uint8Array(20), 0, 11), { instanceOf: RangeError, message: /len/ });
  t.throws(() => createZpool('zfoo', a), { instanceOf: TypeError, message: /driver/ });
  z.free(h);
  t.throws(() => z.free(h), { instanceOf: RangeError, message: /handle/ });
  t.is(z.stats().objects, 0);
  t.is(z.stats().frames, 0);
});
