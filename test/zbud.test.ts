import test from 'ava';
import fc from 'fast-check';
import { Arena } from '../lib/arena';
import { createZpool } from '../lib/zpool';
import { Zbud } from '../lib/zpool/zbud';
import { runZpoolModel, zcmdArb } from './helpers/zpool-model';

test('random malloc/free/shrink/reset sequences match a Map model; 1..2 objects per frame', (t) => {
  fc.assert(
    fc.property(fc.array(zcmdArb, { maxLength: 40 }), (cmds) => runZpoolModel('zbud', cmds)),
    { numRuns: 700 },
  );
  t.pass();
});

test('refuses at its frame limit; shrink evicts whole frames', (t) => {
  fc.assert(
    fc.property(fc.array(zcmdArb, { maxLength: 40 }), (cmds) => runZpoolModel('zbud', cmds, 3)),
    { numRuns: 200 },
  );
  t.pass();
});

test('two buddies share a frame: first from the left, last from the right', (t) => {
  const a = Arena.create({ maxBytes: 1 << 20, chunkBytes: 128 << 10 });
  const z = createZpool('zbud', a) as Zbud;
  const h1 = z.malloc(2048),
    h2 = z.malloc(2048),
    h3 = z.malloc(1);
  t.is(z.stats().frames, 2);
  z.locate(h1);
  const o1 = z.mapOffset;
  z.locate(h2);
  const o2 = z.mapOffset;
  t.is(o2 - o1, 2048);
  z.free(h1);
  z.free(h2);
  z.free(h3);
  t.is(z.stats().frames, 0);
  t.is(a.usedFrames(), 0);
});

test('reclaim goes by LRU and skips objects whose owner refuses', (t) => {
  const a = Arena.create({ maxBytes: 1 << 20, chunkBytes: 128 << 10 });
  const z = createZpool('zbud', a);
  const hs = [1, 2, 3, 4].map(() => z.malloc(3000));
  hs.forEach((h, i) => z.setTag(h, i, 0));
  const seen: number[] = [];
  z.evict = (h, t0) => {
    seen.push(t0);
    return t0 !== 0;
  };
  t.is(z.shrink(1), 1);
  t.deepEqual(seen, [0, 1]);
  t.is(z.stats().frames, 3);
  t.throws(() => z.free(hs[1]), { instanceOf: RangeError });
});

test('bad input throws and leaves the pool intact', (t) => {
  const a = Arena.create({ maxBytes: 1 << 20, chunkBytes: 128 << 10 });
  const z = createZpool('zbud', a);
  const h = z.malloc(100);
  t.throws(() => z.malloc(0), { instanceOf: RangeError, message: /size/ });
  t.throws(() => z.malloc(5000), { instanceOf: RangeError, message: /size/ });
  t.throws(() => z.free(h + 2), { instanceOf: RangeError, message: /handle/ });
  t.throws(() => z.read(h, new Uint8Array(10), 0), { instanceOf: RangeError, message: /dst/ });
  t.throws(() => z.shrink(-1), { instanceOf: RangeError, message: /pages/ });
  z.free(h);
  t.throws(() => z.free(h), { instanceOf: RangeError, message: /handle/ });
  t.is(z.stats().frames, 0);
});
