// Model-based checking of the tmem core against a plain Map (shared by test/tmem.test.ts and
// bench/soak-store.ts).
import fc from 'fast-check';
import { Store } from '../../lib/tmem';
import { fill, sizeArb } from './zpool-model';

export type TCmd =
  | { op: 'put'; p: number; o: number; i: number; size: number; seed: number }
  | { op: 'get'; p: number; o: number; i: number; free: boolean }
  | { op: 'view'; p: number; o: number; i: number }
  | { op: 'flushPage'; p: number; o: number; i: number }
  | { op: 'flushObject'; p: number; o: number }
  | { op: 'compact'; p: number }
  | { op: 'destroy'; p: number };

const P = fc.integer({ min: 0, max: 3 });
const O = fc.integer({ min: 0, max: 3 });
const I = fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom(0xffffffff, 2 ** 31, 1000));

export const tcmdArb: fc.Arbitrary<TCmd> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ op: fc.constant('put' as const), p: P, o: O, i: I, size: sizeArb, seed: fc.integer() }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('get' as const), p: P, o: O, i: I, free: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('view' as const), p: P, o: O, i: I }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('flushPage' as const), p: P, o: O, i: I }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('flushObject' as const), p: P, o: O }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('compact' as const), p: P }) },
  { weight: 1, arbitrary: fc.constant({ op: 'destroy' as const, p: 0 }) },
);

// Pools of the test: 0 persistent zsmalloc, 1 ephemeral zbud, 2 persistent zbud, 3 ephemeral zsmalloc.
const KINDS = [
  { persistent: true, driver: 'zsmalloc' },
  { persistent: false, driver: 'zbud' },
  { persistent: true, driver: 'zbud' },
  { persistent: false, driver: 'zsmalloc' },
];
/** Object ids that exercise the word splitting: small, above 2^32, all three words. */
export const OIDS: [number, number, number][] = [
  [1, 0, 0],
  [2 ** 40 + 3, 0, 0],
  [1, 2, 3],
  [2 ** 53 - 1, 2 ** 32, 7],
];

/**
 * Run `cmds` on a fresh store big enough that nothing is evicted; throws on any difference.
 */
export function runTmemModel(cmds: TCmd[]): void {
  const s = Store.create({
    arena: { maxBytes: 2 << 20, chunkBytes: 128 << 10 },
    maxPools: 4,
    maxObjects: 64,
    maxPages: 2048,
  });
  const ids = KINDS.map((k) => s.createPool(k));
  const model = new Map<string, Uint8Array>();
  const key = (p: number, o: number, i: number) => `${p}/${o}/${i}`;
  const src = new Uint8Array(4096),
    dst = new Uint8Array(4096);
  const verify = () => {
    for (let p = 0; p < 4; p++) {
      let pages = 0,
        bytes = 0;
      for (const [k, v] of model)
        if (k.startsWith(`${p}/`)) {
          pages++;
          bytes += v.length;
        }
      const st = s.poolStats(ids[p]);
      if (st.pages !== pages || st.bytes !== bytes)
        throw new Error(`pool ${p} stats ${st.pages}/${pages} ${st.bytes}/${bytes}`);
      if (pages === 0 && st.poolBytes !== 0) throw new Error(`pool ${p} empty but holds ${st.poolBytes}`);
    }
    for (const [k, want] of model) {
      const [p, o, i] = k.split('/').map(Number);
      if (!KINDS[p].persistent) continue; // an ephemeral get would consume it
      const n = s.get(ids[p], OIDS[o][0], OIDS[o][1], OIDS[o][2], i, dst);
      if (n !== want.length) throw new Error(`get ${k}: length ${n} != ${want.length}`);
      for (let j = 0; j < n; j++) if (dst[j] !== want[j]) throw new Error(`get ${k}: byte ${j}`);
    }
  };
  for (const c of cmds) {
    const p = ids[c.op === 'destroy' ? c.p : c.p];
    const pk = c.op === 'destroy' ? 0 : c.p;
    switch (c.op) {
      case 'put': {
        fill(src, c.size, c.seed);
        const [a, b, d] = OIDS[c.o];
        if (!s.put(p, a, b, d, c.i, src, c.size)) throw new Error('put refused with room');
        model.set(key(pk, c.o, c.i), src.slice(0, c.size));
        break;
      }
      case 'get':
      case 'view': {
        const [a, b, d] = OIDS[c.o];
        const k = key(pk, c.o, c.i);
        const want = model.get(k);
        let got: Uint8Array | null = null;
        const free = c.op === 'get' && c.free;
        if (c.op === 'get') {
          const n = s.get(p, a, b, d, c.i, dst, free);
          if (n >= 0) got = dst.subarray(0, n);
        } else {
          const n = s.getView(p, a, b, d, c.i);
          if (n >= 0) got = s.viewBytes.subarray(s.viewOffset, s.viewOffset + n);
        }
        if (!want) {
          if (got) throw new Error(`get ${k}: hit on an absent page`);
          break;
        }
        if (!got) throw new Error(`get ${k}: miss on a stored page`);
        if (got.length !== want.length || got.some((x, j) => x !== want[j])) throw new Error(`get ${k}: wrong bytes`);
        if (free || !KINDS[pk].persistent) model.delete(k);
        break;
      }
      case 'flushPage': {
        const [a, b, d] = OIDS[c.o];
        const had = model.delete(key(pk, c.o, c.i));
        if (s.flushPage(p, a, b, d, c.i) !== had) throw new Error('flushPage result');
        break;
      }
      case 'flushObject': {
        const [a, b, d] = OIDS[c.o];
        let n = 0;
        for (const k of [...model.keys()])
          if (k.startsWith(`${pk}/${c.o}/`)) {
            model.delete(k);
            n++;
          }
        if (s.flushObject(p, a, b, d) !== n) throw new Error('flushObject count');
        break;
      }
      case 'compact':
        s.zpool(p).compact();
        break;
      case 'destroy': {
        s.destroyPool(p);
        for (const k of [...model.keys()]) if (k.startsWith('0/')) model.delete(k);
        ids[0] = s.createPool(KINDS[0]);
        break;
      }
    }
    verify();
  }
  for (const p of ids) s.destroyPool(p);
  if (s.arena.usedFrames() !== 0)
    throw new Error(`arena holds ${s.arena.usedFrames()} frames after destroying all pools`);
}
