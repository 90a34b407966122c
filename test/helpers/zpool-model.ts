// Model-based checking of a zpool driver against a plain Map (shared by the allocator tests
// and bench/soak-store.ts).
import fc from 'fast-check';
import { Arena } from '../../lib/arena';
import { Zpool, createZpool } from '../../lib/zpool';

export type ZCmd =
  | { op: 'malloc'; size: number; seed: number }
  | { op: 'free'; pick: number }
  | { op: 'compact' }
  | { op: 'shrink'; pages: number }
  | { op: 'reset' };

export function fill(buf: Uint8Array, len: number, seed: number): void {
  let x = seed | 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 255;
  }
}

export const sizeArb = fc.oneof(
  fc.integer({ min: 1, max: 4096 }),
  fc.integer({ min: 1, max: 64 }),
  fc.integer({ min: 3500, max: 4096 }),
  fc.constantFrom(1, 32, 33, 48, 2048, 2049, 4095, 4096),
);

export const zcmdArb: fc.Arbitrary<ZCmd> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('malloc' as const), size: sizeArb, seed: fc.integer() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('free' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('compact' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('shrink' as const), pages: fc.integer({ min: 0, max: 4 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reset' as const }) },
);

/** Run `cmds` on a fresh pool; throws on any difference from the model. */
export function runZpoolModel(driver: string, cmds: ZCmd[], maxFrames?: number): void {
  const arena = Arena.create({ maxBytes: 4 << 20, chunkBytes: 128 << 10 });
  const pool: Zpool = createZpool(driver, arena, { maxFrames });
  const model = new Map<number, Uint8Array>();
  pool.evict = (h) => {
    if (!model.has(h)) throw new Error(`evict of unknown handle ${h}`);
    model.delete(h);
    return true;
  };
  const src = new Uint8Array(4096);
  const dst = new Uint8Array(4096 + 7);
  const verify = () => {
    let bytes = 0;
    for (const [h, want] of model) {
      if (pool.size(h) !== want.length) throw new Error(`size of ${h}: ${pool.size(h)} != ${want.length}`);
      const off = h % 7;
      const n = pool.read(h, dst, off);
      if (n !== want.length) throw new Error(`read length ${n} != ${want.length}`);
      for (let i = 0; i < n; i++) if (dst[off + i] !== want[i]) throw new Error(`byte ${i} of ${h} differs`);
      const v = pool.map(h);
      for (let i = 0; i < n; i++) if (v[i] !== want[i]) throw new Error(`mapped byte ${i} of ${h} differs`);
      pool.unmap(h);
      bytes += n;
    }
    const st = pool.stats();
    if (st.objects !== model.size || st.bytesStored !== bytes) {
      throw new Error(`stats objects ${st.objects}/${model.size} bytes ${st.bytesStored}/${bytes}`);
    }
    if (st.totalBytes !== st.frames * 4096 || arena.usedFrames() !== st.frames) throw new Error('frame accounting');
    if (model.size === 0 && st.frames !== 0) throw new Error(`empty pool holds ${st.frames} frames`);
    const check = (pool as unknown as { check?: () => void }).check;
    if (check) check.call(pool);
  };
  for (const c of cmds) {
    switch (c.op) {
      case 'malloc': {
        const h = pool.malloc(c.size);
        if (h === 0) {
          if (maxFrames === undefined) throw new Error('refused with room');
          break;
        }
        if (model.has(h)) throw new Error(`handle ${h} handed out twice`);
        fill(src, c.size, c.seed);
        pool.write(h, src, 0, c.size);
        pool.setTag(h, 0, 0);
        model.set(h, src.slice(0, c.size));
        break;
      }
      case 'free': {
        if (model.size === 0) break;
        const h = [...model.keys()][c.pick % model.size];
        pool.free(h);
        model.delete(h);
        break;
      }
      case 'compact':
        pool.compact();
        break;
      case 'shrink':
        pool.shrink(c.pages);
        break;
      case 'reset':
        pool.reset();
        model.clear();
        break;
    }
    verify();
  }
}
