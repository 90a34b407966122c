/*
 * The native fault server (native/fault_serve.h) against the JS fault path's rules
 * (lib/dispatcher/faults.ts), over random page states: for every page, in every fast state
 * (never written, same-filled, stored with lz4 / zstd / raw, staged clean or dirty) and in the
 * states it must leave to JavaScript (BUSY, SWAPPED, READING, a write-protect fault, a stored
 * page the store does not have, a staged page whose slot table disagrees), and on a page mapped
 * meanwhile (ACTIVE, CLEAN: its thread woken, as faults.ts does),
 * FaultServer.serve() (fault_serve::serve called from this thread, on a real userfaultfd, into
 * real region memory) either installs exactly the bytes the JS readers give for that state (the
 * JS Store + PageCodec for a stored page, the fill word, the staging slot) and publishes the
 * state and the served record the JS path would, or forwards and changes nothing.
 *
 * Only pages the native side installed are read (a forwarded page is never touched: nothing
 * would serve its fault here).
 */
import test from 'ava';
import fc from 'fast-check';
import {
  native,
  PAGEFAULT_FLAG_WP,
  PAGEFAULT_FLAG_WRITE,
  REGISTER_MODE_MISSING,
  REGISTER_MODE_WP,
} from '../lib/native';
import { Store } from '../lib/tmem';
import { PageCodec } from '../lib/compress';
import {
  NEVER,
  ACTIVE,
  CLEAN,
  STAGED,
  STORED,
  SAME,
  SWAPPED,
  READING,
  BUSY,
  STAGED_CLEAN,
  KEPT_SLOT,
  SLOT_CLAIMED,
  SLOT_REGION,
  SLOT_PAGE,
  SLOT_KEPT,
  SLOT_WORDS,
} from '../lib/dispatcher/pagestate';

const PAGE = 4096;
const SERVED = 0,
  FORWARD = 1;
// fault_serve.h RecordKind and ServedRing layout (lib/dispatcher/native-faults.ts has the same)
const REC_NONE = 0,
  REC_ZERO = 1,
  REC_SAME = 2,
  REC_POOL_CLEAN = 3,
  REC_POOL_DIRTY = 4,
  REC_STAGED_CLEAN = 5,
  REC_STAGED_MOVED = 6,
  REC_STAGED_COPIED = 7;
const RING_MAGIC = 0x53525647,
  HEADER = 16,
  CELL = 8,
  CELLS = 256;

type Spec =
  | { st: 'never' }
  | { st: 'same'; word: number }
  | { st: 'stored'; codec: 'lz4' | 'zstd' | 'raw'; seed: number; idle: boolean }
  | { st: 'storedAbsent' }
  | { st: 'staged'; clean: boolean; kept: number; claimed: boolean; seed: number }
  | { st: 'stagedMismatch'; seed: number }
  | { st: 'stagedBadSlot' }
  | { st: 'other'; value: number };

const specArb: fc.Arbitrary<Spec> = fc.oneof(
  fc.constant({ st: 'never' as const }),
  fc.record({
    st: fc.constant('same' as const),
    word: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
  }),
  fc.record({
    st: fc.constant('stored' as const),
    codec: fc.constantFrom('lz4' as const, 'zstd' as const, 'raw' as const),
    seed: fc.integer(),
    idle: fc.boolean(),
  }),
  fc.constant({ st: 'storedAbsent' as const }),
  fc.record({
    st: fc.constant('staged' as const),
    clean: fc.boolean(),
    kept: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 1000 })),
    claimed: fc.boolean(),
    seed: fc.integer(),
  }),
  fc.record({ st: fc.constant('stagedMismatch' as const), seed: fc.integer() }),
  fc.constant({ st: 'stagedBadSlot' as const }),
  fc.record({ st: fc.constant('other' as const), value: fc.constantFrom(BUSY, ACTIVE, CLEAN, SWAPPED, READING) }),
);
const caseArb = fc.array(fc.record({ spec: specArb, write: fc.boolean(), wp: fc.boolean() }), {
  minLength: 1,
  maxLength: 24,
});

/** Text-like page content (compresses) from a seed; every 5th seed random bytes (stored raw by the codec). */
function content(seed: number): Uint8Array {
  const b = new Uint8Array(PAGE);
  let x = seed >>> 0 || 1;
  const randomish = seed % 5 === 0;
  for (let i = 0; i < PAGE; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = randomish ? x & 0xff : 97 + (x % 7);
  }
  return b;
}

const codecs = { lz4: new PageCodec('lz4'), zstd: new PageCodec('zstd') };

function ring(): Int32Array {
  const w = new Int32Array(new SharedArrayBuffer(4 * (HEADER + CELL * CELLS)));
  w[0] = RING_MAGIC;
  w[1] = CELLS;
  w[5] = 1 << 30; // room: plenty
  for (let i = 0; i < CELLS; i++) w[HEADER + i * CELL] = i;
  return w;
}

/** Takes the next committed record (as native-faults.ts drainServed does). */
function takeRecord(w: Int32Array): number[] | undefined {
  const pos = w[3];
  const c = HEADER + (pos & (CELLS - 1)) * CELL;
  if (Atomics.load(w, c) !== ((pos + 1) | 0)) return undefined;
  const rec = [w[c + 1], w[c + 2], w[c + 3], w[c + 4], w[c + 5]];
  Atomics.store(w, c, (pos + CELLS) | 0);
  w[3] = (pos + 1) | 0;
  return rec;
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

test('native fault server vs the JS fault path over random page states: same bytes, states and records, or forwarded untouched', (t) => {
  const uffd = new native.Uffd();
  const store = Store.create({ arena: { maxBytes: 8 << 20, chunkBytes: 1 << 20 }, maxObjects: 64 });
  const pool = store.createPool({ persistent: true, driver: 'zsmalloc' });
  const S = 32;
  const staging = new native.Region(uffd, S * PAGE, REGISTER_MODE_MISSING);
  const table = new SharedArrayBuffer(4 * SLOT_WORDS * S);
  const slotClaimed = new Int32Array(table, 4 * SLOT_CLAIMED * S, S);
  const slotRegion = new Int32Array(table, 4 * SLOT_REGION * S, S);
  const slotPage = new Int32Array(table, 4 * SLOT_PAGE * S, S);
  const slotKept = new Int32Array(table, 4 * SLOT_KEPT * S, S);
  const w = ring();
  const server = new native.FaultServer({
    uffd: uffd.describe(),
    staging: { address: staging.address, slots: S, table },
    store: store.handle(),
    frontswapPool: pool,
    ring: w.buffer as SharedArrayBuffer,
    thread: false,
    follow: false,
  });
  let rid = 100;
  let served = 0,
    forwarded = 0;
  try {
    fc.assert(
      fc.property(caseArb, (cases) => {
        const id = rid++;
        const pages = cases.length;
        const region = new native.Region(uffd, pages * PAGE, REGISTER_MODE_MISSING | REGISTER_MODE_WP);
        const state = new Uint8Array(new SharedArrayBuffer(pages));
        const aux = new Uint32Array(new SharedArrayBuffer(4 * pages));
        const bytes = new Uint8Array(region.buffer);
        const slotOf: number[] = [];
        let nextSlot = 0;
        try {
          t.true(
            server.addRegion({
              id,
              base: region.address,
              pages,
              state: state.buffer,
              aux: aux.buffer,
            }),
          );
          // Set every page up.
          const want: (Uint8Array | undefined)[] = [];
          cases.forEach(({ spec }, p) => {
            switch (spec.st) {
              case 'never':
                state[p] = NEVER;
                want[p] = new Uint8Array(PAGE);
                break;
              case 'same': {
                state[p] = SAME;
                aux[p] = spec.word >>> 0;
                const u = new Uint32Array(PAGE / 4).fill(spec.word >>> 0);
                want[p] = new Uint8Array(u.buffer);
                break;
              }
              case 'stored': {
                const page = content(spec.seed);
                const obj = new Uint8Array(PAGE + 64);
                const len = spec.codec === 'raw' ? (obj.set(page), PAGE) : codecs[spec.codec].compress(page, 0, obj);
                t.true(store.put(pool, id, 0, 0, p, obj, len));
                // What the JS fault path installs: the JS store's bytes, decoded by the JS codec.
                const got = new Uint8Array(PAGE + 64);
                const n = store.get(pool, id, 0, 0, p, got);
                const dec = new Uint8Array(PAGE);
                codecs.lz4.decompress(got, 0, n, dec, 0);
                t.is(firstDiff(dec, page), -1, 'the JS reader gives back what was stored');
                want[p] = dec;
                state[p] = STORED;
                aux[p] = (spec.idle ? 0x40000000 : 0) | 1234;
                break;
              }
              case 'storedAbsent':
                state[p] = STORED;
                break;
              case 'staged':
              case 'stagedMismatch': {
                const slot = nextSlot++ % S;
                slotOf[p] = slot;
                const page = content(spec.seed);
                uffd.copy(staging.address + slot * PAGE, page, 0, 0);
                slotRegion[slot] = spec.st === 'staged' ? id : id + 1_000_000;
                slotPage[slot] = p;
                slotKept[slot] = spec.st === 'staged' ? spec.kept : -1;
                slotClaimed[slot] = spec.st === 'staged' && spec.claimed ? 1 : 0;
                aux[p] = (slot | (spec.st === 'staged' && spec.clean ? STAGED_CLEAN : 0)) >>> 0;
                state[p] = STAGED;
                want[p] = page;
                break;
              }
              case 'stagedBadSlot':
                state[p] = STAGED;
                aux[p] = S + 5;
                break;
              case 'other':
                state[p] = spec.value;
                aux[p] = 77;
                break;
            }
          });
          // Serve every page once, then check it against what faults.ts does, from the last page
          // down, so that page p + 1 never comes right after page p: a fault that follows the one
          // before it on a stored or same-filled page reads the next pages ahead
          // (test_fault_serve.cc and test/readahead.test.ts check that).
          w[8] = -1; // ring words 8, 9: the readahead stream (fault_serve.h)
          w[9] = -1;
          const order = cases.map((_, p) => cases.length - 1 - p); // last page first: never p + 1 after p
          order.forEach((p) => {
            const { spec, write, wp } = cases[p];
            const before = { st: state[p], aux: aux[p] };
            const flags = (write ? PAGEFAULT_FLAG_WRITE : 0) | (wp ? PAGEFAULT_FLAG_WP : 0);
            const res = server.serve(region.address + p * PAGE + 123, flags);
            const rec = takeRecord(w);
            const fast = ['never', 'same', 'stored', 'staged'].includes(spec.st);
            const what = `page ${p} ${JSON.stringify(spec)} write ${write} wp ${wp}`;
            if (!wp && spec.st === 'other' && (spec.value === ACTIVE || (spec.value === CLEAN && !write))) {
              // A missing fault on a page served meanwhile: its thread is woken, as faults.ts does.
              // (A write to a CLEAN page is forwarded: from a SIGBUS handler it may be a
              // write-protect fault, which only JS serves.)
              t.is(res, SERVED, `${what}: a stale fault, woken`);
              t.deepEqual([state[p], aux[p]], [before.st, before.aux], `${what}: unchanged`);
              t.is(rec, undefined, `${what}: no served record`);
              served++;
              return;
            }
            if (wp || !fast) {
              t.is(res, FORWARD, `${what}: forwarded`);
              t.is(state[p], before.st, `${what}: state unchanged`);
              t.is(aux[p], before.aux, `${what}: aux unchanged`);
              if (rec) t.is(rec[0], REC_NONE, `${what}: no served record`);
              if (spec.st === 'stagedMismatch') {
                t.is(slotRegion[slotOf[p]], id + 1_000_000, `${what}: slot table untouched`);
              }
              forwarded++;
              return;
            }
            t.is(res, SERVED, `${what}: served`);
            served++;
            t.truthy(rec, `${what}: a served record`);
            const [kind, rrid, rpage, arg, arg2] = rec!;
            t.is(rrid, id);
            t.is(rpage, p);
            t.is(firstDiff(bytes.subarray(p * PAGE, (p + 1) * PAGE), want[p]!), -1, `${what}: every byte`);
            switch (spec.st) {
              case 'never':
                t.deepEqual([kind, state[p]], [REC_ZERO, ACTIVE], what);
                break;
              case 'same':
                t.deepEqual([kind, state[p], arg >>> 0], [REC_SAME, ACTIVE, spec.word >>> 0], what);
                break;
              case 'stored':
                t.deepEqual(
                  [kind, state[p], aux[p], arg >>> 0],
                  write ? [REC_POOL_DIRTY, ACTIVE, 0, before.aux] : [REC_POOL_CLEAN, CLEAN, 0, before.aux],
                  what,
                );
                break;
              case 'staged': {
                const slot = slotOf[p];
                const cleanAux = spec.kept >= 0 ? (KEPT_SLOT | spec.kept) >>> 0 : 0;
                t.is(arg, slot, `${what}: the slot`);
                t.is(slotRegion[slot], -1, `${what}: the slot is empty in the table`);
                t.is(slotKept[slot], -1, `${what}: the slot keeps no swap slot`);
                if (spec.clean && !write) {
                  t.deepEqual([kind, state[p], aux[p]], [REC_STAGED_CLEAN, CLEAN, cleanAux], what);
                } else {
                  t.deepEqual(
                    [kind, state[p], aux[p], arg2],
                    [spec.claimed ? REC_STAGED_COPIED : REC_STAGED_MOVED, ACTIVE, 0, spec.clean ? cleanAux | 0 : -1],
                    what,
                  );
                }
                break;
              }
            }
          });
          t.is(takeRecord(w), undefined, 'one record per serve');
        } finally {
          server.removeRegion(id);
          store.flushObject(pool, id, 0, 0);
          region.close();
          for (let s = 0; s < S; s++) slotRegion[s] = -1;
          native.madvise(new Float64Array([staging.address, S * PAGE]), 1, 4 /* MADV_DONTNEED */);
        }
      }),
      { numRuns: 40 },
    );
    t.true(served > 0 && forwarded > 0, `served ${served}, forwarded ${forwarded}`);
    const c = server.counters();
    t.is(c.served, served);
    t.log(`served ${served} pages natively, forwarded ${forwarded}`);
  } finally {
    server.close();
    staging.close();
    uffd.close();
  }
});

test('FaultServer: bad options and regions are refused with codes before anything is published', (t) => {
  const uffd = new native.Uffd();
  const staging = new native.Region(uffd, 4 * PAGE, REGISTER_MODE_MISSING);
  const table = new SharedArrayBuffer(4 * SLOT_WORDS * 4);
  const w = ring();
  const good = {
    uffd: uffd.describe(),
    staging: { address: staging.address, slots: 4, table },
    ring: w.buffer as SharedArrayBuffer,
    thread: false,
    follow: false,
  };
  try {
    t.throws(() => new native.FaultServer({ ...good, ring: new SharedArrayBuffer(64) }), {
      code: 'ERR_INVALID_ARG_VALUE',
      message: /options.ring/,
    });
    t.throws(() => new native.FaultServer({ ...good, staging: { ...good.staging, table: new SharedArrayBuffer(4) } }), {
      code: 'ERR_INVALID_ARG_VALUE',
      message: /options.staging.table/,
    });
    t.throws(
      () => new native.FaultServer({ ...good, staging: { ...good.staging, address: staging.address + 64 * PAGE } }),
      {
        code: 'ERR_INVALID_ARG_VALUE',
        message: /not an open tmem region/,
      },
    );
    const server = new native.FaultServer(good);
    try {
      const region = new native.Region(uffd, 8 * PAGE, REGISTER_MODE_MISSING);
      const share = {
        id: 1,
        base: region.address,
        pages: 8,
        state: new SharedArrayBuffer(8),
        aux: new SharedArrayBuffer(32),
      };
      t.throws(() => server.addRegion({ ...share, state: new SharedArrayBuffer(4) }), {
        code: 'ERR_INVALID_ARG_VALUE',
        message: /smaller than the region/,
      });
      t.throws(() => server.addRegion({ ...share, pages: 64 }), { code: 'ERR_INVALID_ARG_VALUE' });
      t.throws(() => server.addRegion({ ...share, base: region.address + 100 * PAGE }), {
        code: 'ERR_INVALID_ARG_VALUE',
        message: /not an open tmem region/,
      });
      t.throws(() => server.addRegion({ ...share, pages: -1 }), { code: 'ERR_OUT_OF_RANGE' });
      t.throws(() => server.addRegion({ ...share, state: 5 as unknown as SharedArrayBuffer }), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
      // Not published: a fault there is forwarded, nothing is read.
      t.is(server.serve(region.address, 0), FORWARD);
      t.true(server.addRegion(share));
      server.removeRegion(1);
      t.is(server.serve(region.address, 0), FORWARD, 'removed: forwarded');
      region.close();
    } finally {
      server.close();
    }
    t.throws(
      () =>
        server.addRegion({
          id: 1,
          base: 4096,
          pages: 1,
          state: new SharedArrayBuffer(1),
          aux: new SharedArrayBuffer(4),
        }),
      {
        code: 'ERR_TMEM_CLOSED',
      },
    );
  } finally {
    staging.close();
    uffd.close();
  }
});
