import test from 'ava';
import fc from 'fast-check';
import { Arena } from '../lib/arena';

test('alloc/free runs match a model; wholly free chunks are released through onRelease', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 8 }), fc.nat()), { maxLength: 60 }),
      (ops) => {
        const a = Arena.create({ maxBytes: 512 << 10, chunkBytes: 128 << 10 }); // 4 chunks of 32 frames
        const released: number[] = [];
        a.onRelease = (c, off, n) => {
          if (off !== 0 || n !== 32) throw new Error('partial');
          released.push(c);
        };
        const live: [number, number][] = [];
        const owner = new Map<number, number>();
        for (const [isAlloc, n, pick] of ops) {
          if (isAlloc || live.length === 0) {
            const p = a.allocRun(n);
            if (p < 0) {
              if (a.usedFrames() + n <= 64) throw new Error('refused with room');
              continue;
            }
            for (let i = 0; i < n; i++) {
              if (owner.has(p + i)) throw new Error('frame handed out twice');
              owner.set(p + i, p);
              if (a.chunkOf(p + i) !== a.chunkOf(p)) throw new Error('run crosses a chunk');
            }
            a.bytes[a.chunkOf(p)].fill(p & 255, a.offsetOf(p), a.offsetOf(p) + n * 4096);
            live.push([p, n]);
          } else {
            const [p, n] = live.splice(pick % live.length, 1)[0];
            for (let i = 0; i < n; i++) {
              if (a.bytes[a.chunkOf(p)][a.offsetOf(p + i) + 7] !== (p & 255)) throw new Error('frame overwritten');
              owner.delete(p + i);
            }
            const before = released.length;
            a.freeRun(p, n);
            const c = a.chunkOf(p);
            const chunkEmpty = ![...owner.keys()].some((f) => a.chunkOf(f) === c);
            if (chunkEmpty !== (released.length === before + 1)) throw new Error('release mismatch');
          }
          if (a.usedFrames() !== owner.size) throw new Error('usedFrames');
        }
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('grows up to its limit, then refuses', (t) => {
  const a = Arena.create({ maxBytes: 256 << 10, chunkBytes: 128 << 10 });
  const got = new Set<number>();
  for (let i = 0; i < 64; i++) got.add(a.alloc());
  t.is(got.size, 64);
  t.is(a.alloc(), -1);
  t.is(a.stats().activeChunks, 2);
});

test('trim releases runs of free frames once', (t) => {
  const a = Arena.create({ maxBytes: 128 << 10, chunkBytes: 128 << 10 });
  const runs: [number, number, number][] = [];
  a.onRelease = (c, o, n) => runs.push([c, o, n]);
  const fs = Array.from({ length: 10 }, () => a.alloc());
  a.free(fs[2]);
  a.free(fs[3]);
  a.free(fs[7]);
  t.is(a.trim(), 3);
  t.deepEqual(runs, [
    [0, 2, 2],
    [0, 7, 1],
  ]);
  t.is(a.trim(), 0);
});

test('an attached instance shares frames and state', (t) => {
  const a = Arena.create({ maxBytes: 256 << 10, chunkBytes: 128 << 10 });
  const b = Arena.attach(structuredClone(a.handle()));
  const p = a.alloc();
  b.bytes[b.chunkOf(p)][b.offsetOf(p)] = 42;
  t.is(a.bytes[a.chunkOf(p)][a.offsetOf(p)], 42);
  t.is(b.usedFrames(), 1);
  b.free(p);
  t.is(a.usedFrames(), 0);
});

test('bad input throws RangeError/TypeError naming the argument', (t) => {
  t.throws(() => Arena.create({ chunkBytes: 1000 }), { instanceOf: RangeError, message: /chunkBytes/ });
  t.throws(() => Arena.create({ maxBytes: -1 }), { instanceOf: RangeError, message: /maxBytes/ });
  t.throws(() => Arena.attach({} as never), { instanceOf: TypeError, message: /handle/ });
  const a = Arena.create({ maxBytes: 128 << 10, chunkBytes: 128 << 10 });
  const p = a.alloc();
  a.free(p);
  t.throws(() => a.free(p), { instanceOf: RangeError, message: /already free/ });
  t.throws(() => a.free(1e9), { instanceOf: RangeError, message: /pfn/ });
  t.is(a.usedFrames(), 0);
});
