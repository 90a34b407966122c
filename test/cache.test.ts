/**
 * swap.cache() (issue 13, the cache): a Map-like store of JS values in tmem regions, checked
 * against a plain Map with its regions under a small residentLimit, so that values are evicted
 * to the pool and faulted back; every value read back is compared (deep equality). Also the
 * allocator's reuse of freed space, LRU by maxEntries / maxBytes, values larger than a page and
 * than a chunk, the serializers, keys, bad input, close, and a child process in a memory cgroup
 * that holds three times its limit in cached objects.
 */
import test from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open, type Swap } from '../lib';
import { makeMemoryCgroup, runNodeInCgroup } from './helpers/memory-cgroup';
import { runNodeChild, withTimeout } from './helpers/harness';

const KiB = 1024,
  MiB = 1024 * KiB;

async function withSwap(fn: (swap: Swap) => Promise<void> | void, options = {}): Promise<void> {
  const swap = await withTimeout(open({ residentLimit: '64KiB', ...options }), 40000, 'open()');
  try {
    await fn(swap);
  } finally {
    await withTimeout(swap.close(), 20000, 'swap.close()');
  }
}

/** A value of about `size` bytes serialized: nested objects, arrays, a Map, a Date, bytes. */
function valueOf(i: number, size: number): unknown {
  switch (i % 4) {
    case 0:
      return { i, s: 'v'.repeat(size), nested: { a: [i, -i, i / 7], b: null, c: true } };
    case 1:
      return [i, `x${i}`.padEnd(size, String.fromCharCode(97 + (i % 26))), { d: new Date(1e12 + i) }];
    case 2:
      return new Map<string, unknown>([
        ['k', i],
        ['bytes', Buffer.alloc(size, i & 0xff)],
      ]);
    default:
      return `${i}:`.repeat(Math.max(1, size >> 2));
  }
}

test('random set/get/delete/has/clear agree with a Map, with the values evicted to the pool and faulted back', async (t) => {
  t.timeout(120000);
  await withSwap(async (swap) => {
    const ops = fc.array(
      fc.oneof(
        { weight: 30, arbitrary: fc.record({ op: fc.constant('set' as const), k: fc.nat(60), size: fc.nat(9000) }) },
        { weight: 20, arbitrary: fc.record({ op: fc.constant('get' as const), k: fc.nat(60) }) },
        { weight: 10, arbitrary: fc.record({ op: fc.constant('delete' as const), k: fc.nat(60) }) },
        { weight: 5, arbitrary: fc.record({ op: fc.constant('has' as const), k: fc.nat(60) }) },
        { weight: 5, arbitrary: fc.record({ op: fc.constant('iterate' as const) }) },
        { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
      ),
      { minLength: 50, maxLength: 400 },
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(ops, async (list) => {
        const cache = swap.cache({ chunkSize: '64KiB' });
        const model = new Map<string | number, unknown>();
        const key = (k: number): string | number => (k % 3 === 0 ? k : `key-${k}`);
        try {
          for (const o of list) {
            switch (o.op) {
              case 'set': {
                const v = valueOf(o.k + run, o.size);
                cache.set(key(o.k), v);
                model.set(key(o.k), v);
                break;
              }
              case 'get':
                t.deepEqual(cache.get(key(o.k)), model.get(key(o.k)));
                break;
              case 'delete':
                t.is(cache.delete(key(o.k)), model.delete(key(o.k)));
                break;
              case 'has':
                t.is(cache.has(key(o.k)), model.has(key(o.k)));
                break;
              case 'iterate': {
                // Order of use, not of insertion: compared as sets of entries.
                const seen = new Set<string | number>();
                for (const [k, v] of cache.entries()) {
                  t.true(model.has(k) && !seen.has(k), String(k));
                  t.deepEqual(v, model.get(k));
                  seen.add(k);
                }
                t.is(seen.size, model.size);
                break;
              }
              case 'clear':
                cache.clear();
                model.clear();
                break;
            }
            t.is(cache.size, model.size);
          }
          const sorted = (ks: Iterable<string | number>): string[] => [...ks].map((k) => `${typeof k}:${k}`).sort();
          t.deepEqual(sorted(cache.keys()), sorted(model.keys()));
          for (const [k, v] of model) t.deepEqual(cache.get(k), v);
        } finally {
          run++;
          await cache.close();
        }
      }),
      { numRuns: 12, seed: 1313 },
    );
    const s = swap.stats();
    // 64 KiB of resident pages for up to ~500 KiB of values: they went out and came back.
    t.true(s.evictions > 0, JSON.stringify(s));
    t.true(s.faults.pool + s.faults.same + s.faults.staged > 0, JSON.stringify(s.faults));
  });
});

test('space freed is reused: the regions stay bounded under churn', async (t) => {
  t.timeout(60000);
  await withSwap(
    async (swap) => {
      const cache = swap.cache({ chunkSize: '256KiB' });
      let seed = 7;
      const rand = (n: number): number => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed % n;
      };
      const keys = 400;
      const sizes = new Map<number, number>();
      for (let k = 0; k < keys; k++) {
        sizes.set(k, rand(6000));
        cache.set(k, Buffer.alloc(sizes.get(k)!, k & 0xff));
      }
      const afterFill = cache.stats();
      let maxRegion = afterFill.regionBytes;
      // 20 rounds of replacing, deleting and re-adding every key with new random sizes.
      for (let round = 0; round < 20; round++) {
        for (let k = 0; k < keys; k++) {
          const r = rand(3);
          if (r === 0) {
            cache.delete(k);
            sizes.delete(k);
          } else {
            sizes.set(k, rand(6000));
            cache.set(k, Buffer.alloc(sizes.get(k)!, (k + round) & 0xff));
          }
        }
        maxRegion = Math.max(maxRegion, cache.stats().regionBytes);
      }
      // Same mix of sizes, same live bytes on average: the regions may grow by fragmentation,
      // but by a bounded factor, not by what was written over 20 rounds (~20x the live data).
      t.true(maxRegion <= afterFill.regionBytes * 2 + 256 * KiB, `${maxRegion} vs ${afterFill.regionBytes}`);
      for (const [k, n] of sizes) {
        const v = cache.get(k) as Buffer;
        t.is(v.length, n);
      }
      // Everything deleted, then the same again: the same regions, no new one.
      for (const k of [...cache.keys()]) cache.delete(k);
      t.is(cache.stats().allocatedBytes, 0);
      t.is(cache.stats().bytes, 0);
      const regions = cache.stats().regionBytes;
      for (let k = 0; k < keys; k++) cache.set(k, Buffer.alloc(rand(6000), 1));
      t.is(cache.stats().regionBytes, regions);
      await cache.close();
    },
    { residentLimit: '256KiB' },
  );
});

test('maxEntries keeps the most recently used entries; get() refreshes an entry', async (t) => {
  await withSwap(async (swap) => {
    const cache = swap.cache<{ n: number }>({ maxEntries: 100 });
    for (let i = 0; i < 100; i++) cache.set(`k${i}`, { n: i });
    t.deepEqual(cache.get('k0'), { n: 0 }); // now the most recent
    for (let i = 100; i < 150; i++) cache.set(`k${i}`, { n: i });
    t.is(cache.size, 100);
    t.true(cache.has('k0'));
    for (let i = 1; i <= 50; i++) t.false(cache.has(`k${i}`), `k${i}`);
    for (let i = 51; i < 150; i++) t.deepEqual(cache.get(`k${i}`), { n: i });
    const s = cache.stats();
    t.is(s.evictions, 50);
    t.is(s.entries, 100);
    t.deepEqual([...cache.keys()].slice(0, 2), ['k0', 'k51']); // least recently used first
    await cache.close();
  });
});

test('maxBytes keeps the bytes of keys and values under it, evicting the least recently used', async (t) => {
  await withSwap(async (swap) => {
    const cache = swap.cache({ maxBytes: '64KiB', serializer: 'raw' });
    const model = new Map<number, Buffer>();
    for (let i = 0; i < 200; i++) {
      const v = Buffer.alloc(500 + ((i * 37) % 1500), i & 0xff);
      cache.set(i, v);
      model.set(i, v);
      t.true(cache.stats().bytes <= 64 * KiB);
    }
    const kept = [...cache.keys()] as number[];
    t.true(kept.length > 10 && kept.length < 200, String(kept.length));
    // The kept ones are the newest, in order.
    t.deepEqual(
      kept,
      Array.from({ length: kept.length }, (_, j) => 200 - kept.length + j),
    );
    for (const k of kept) t.deepEqual(cache.get(k), model.get(k));
    t.is(cache.stats().evictions, 200 - kept.length);
    // One entry larger than maxBytes is refused, and nothing changes.
    const e = t.throws<Error & { code?: string }>(() => cache.set(1, Buffer.alloc(65 * KiB)));
    t.is(e.code, 'ERR_OUT_OF_RANGE');
    t.regex(e.message, /maxBytes/);
    t.deepEqual([...cache.keys()], kept);
    await cache.close();
  });
});

test('values larger than a page and than a chunk read back byte for byte after eviction', async (t) => {
  t.timeout(60000);
  await withSwap(
    async (swap) => {
      const cache = swap.cache({ chunkSize: '64KiB', serializer: 'raw' });
      const sizes = [
        4095,
        4096,
        4097,
        3 * 4096 + 5,
        8192,
        8193,
        60 * KiB,
        64 * KiB - 2,
        64 * KiB + 1,
        300 * KiB,
        1 * MiB + 3,
      ];
      const model = new Map<number, Buffer>();
      for (const [i, n] of sizes.entries()) {
        const b = Buffer.alloc(n);
        for (let j = 0; j < n; j++) b[j] = (j * 31 + (j >>> 12) * 7 + i) & 0xff; // differs on every page
        cache.set(i, b);
        model.set(i, b);
      }
      const s = cache.stats();
      t.true(s.regions >= 4, JSON.stringify(s)); // chunks and regions of their own
      for (const [i, b] of model) t.true(b.equals(cache.get(i) as Buffer), `size ${sizes[i]}`);
      t.true(swap.stats().evictions > 0);
      // Freed: a region of its own goes; the rest reads back still.
      const before = cache.stats().regions;
      t.true(cache.delete(sizes.length - 1));
      t.is(cache.stats().regions, before - 1);
      for (const [i, b] of model) if (i !== sizes.length - 1) t.true(b.equals(cache.get(i) as Buffer));
      await cache.close();
    },
    { residentLimit: '128KiB' },
  );
});

test('get() returns values that own their bytes: a Buffer inside a value survives reuse of its space and close()', async (t) => {
  await withSwap(async (swap) => {
    const cache = swap.cache();
    cache.set('a', { buf: Buffer.alloc(100, 0xaa), arr: new Uint32Array([1, 2, 3]) });
    const got = cache.get('a') as { buf: Buffer; arr: Uint32Array };
    cache.delete('a');
    for (let i = 0; i < 50; i++) cache.set(i, { buf: Buffer.alloc(100, 0x55) }); // the same size class: reuses 'a's space
    await cache.close();
    t.deepEqual(got.buf, Buffer.alloc(100, 0xaa));
    t.deepEqual(Array.from(got.arr), [1, 2, 3]);
  });
});

test('serializers: v8 (structured clone), json, raw bytes, msgpackr and one of the program own', async (t) => {
  await withSwap(async (swap) => {
    const v8c = swap.cache();
    const cyclic: { self?: unknown; set: Set<number>; big: bigint; date: Date } = {
      set: new Set([1, 2]),
      big: 2n ** 70n,
      date: new Date(5),
    };
    cyclic.self = cyclic;
    v8c.set('c', cyclic);
    const back = v8c.get('c') as typeof cyclic;
    t.is(back.self, back);
    t.deepEqual(back.set, new Set([1, 2]));
    t.is(back.big, 2n ** 70n);
    t.deepEqual(back.date, new Date(5));

    const json = swap.cache({ serializer: 'json' });
    json.set('j', { a: [1, 'two', { three: 3 }], é: 'ünïcode ✓' });
    t.deepEqual(json.get('j'), { a: [1, 'two', { three: 3 }], é: 'ünïcode ✓' });

    const raw = swap.cache({ serializer: 'raw' });
    raw.set('r', new Uint8Array([1, 2, 3]));
    t.deepEqual(raw.get('r'), Buffer.from([1, 2, 3]));
    raw.set('e', Buffer.alloc(0));
    t.deepEqual(raw.get('e'), Buffer.alloc(0));

    const mp = swap.cache({ serializer: 'msgpackr' });
    mp.set('m', { n: 1.5, s: 'str', arr: [true, null], bin: Buffer.from('bin') });
    const m = mp.get('m') as { bin: Uint8Array };
    t.deepEqual({ ...m, bin: Buffer.from(m.bin) }, { n: 1.5, s: 'str', arr: [true, null], bin: Buffer.from('bin') });

    const own = swap.cache<string>({
      serializer: {
        serialize: (v) => Buffer.from(String(v).split('').reverse().join('')),
        deserialize: (b) => Buffer.from(b).toString().split('').reverse().join(''),
      },
    });
    own.set('o', 'hello');
    t.is(own.get('o'), 'hello');
    for (const c of [v8c, json, raw, mp, own]) await c.close();
  });
});

test("serializer 'msgpackr' without the package installed throws ERR_TMEM_NO_MSGPACKR", async (t) => {
  // A child whose module resolution refuses msgpackr, as when it is not installed.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-nomsgpackr-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'child.js');
  fs.writeFileSync(
    script,
    `const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === 'msgpackr') { const e = new Error("Cannot find module 'msgpackr'"); e.code = 'MODULE_NOT_FOUND'; throw e; }
  return resolve.call(this, request, ...rest);
};
const { open } = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
(async () => {
  const swap = await open({ residentLimit: '1MiB' });
  try { swap.cache({ serializer: 'msgpackr' }); console.error('no error'); }
  catch (e) { console.error(JSON.stringify({ code: e.code, message: e.message })); }
  const c = swap.cache(); c.set('still', 1); console.error(JSON.stringify({ still: c.get('still') }));
  await swap.close();
})();
`,
  );
  const r = await runNodeChild(script, [], 30000);
  t.is(r.code, 0, r.stderr);
  const [err, after] = r.stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.is(err.code, 'ERR_TMEM_NO_MSGPACKR');
  t.regex(String(err.message), /npm install msgpackr/);
  t.deepEqual(after, { still: 1 });
});

test('keys: strings and numbers compared as a Map compares them', async (t) => {
  await withSwap(async (swap) => {
    const cache = swap.cache();
    const keys: (string | number)[] = [
      '1',
      1,
      0,
      NaN,
      '',
      'é',
      '\u{1F600}',
      '\uD800',
      '\uDC00',
      '\uFFFD',
      'a'.repeat(5000),
      1.5,
      -1,
    ];
    for (const [i, k] of keys.entries()) cache.set(k, i);
    t.is(cache.size, keys.length);
    for (const [i, k] of keys.entries()) t.is(cache.get(k), i, String(k));
    t.is(cache.get(-0), cache.get(0)); // -0 and 0 are one key
    cache.set(-0, 'zero');
    t.is(cache.get(0), 'zero');
    t.is(cache.size, keys.length);
    t.deepEqual([...cache.keys()].map(String).sort(), keys.map(String).sort());
    t.true([...cache.keys()].some((k) => Number.isNaN(k)));
    await cache.close();
  });
});

test('bad input: clear errors with codes, and the cache is unchanged', async (t) => {
  await withSwap((swap) => {
    const code = (fn: () => unknown): string | undefined => t.throws<Error & { code?: string }>(fn)?.code;
    t.is(
      code(() => swap.cache({ maxEntries: 0 })),
      'ERR_OUT_OF_RANGE',
    );
    t.is(
      code(() => swap.cache({ maxEntries: 1.5 })),
      'ERR_OUT_OF_RANGE',
    );
    t.is(
      code(() => swap.cache({ maxEntries: '10' as unknown as number })),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() => swap.cache({ maxBytes: 0 })),
      'ERR_OUT_OF_RANGE',
    );
    t.is(
      code(() => swap.cache({ maxBytes: 'lots' })),
      'ERR_OUT_OF_RANGE',
    );
    t.is(
      code(() => swap.cache({ chunkSize: '4KiB' })),
      'ERR_OUT_OF_RANGE',
    );
    t.is(
      code(() => swap.cache({ serializer: 'bson' as 'json' })),
      'ERR_INVALID_ARG_VALUE',
    );
    t.is(
      code(() => swap.cache({ serializer: { serialize: () => new Uint8Array() } as never })),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() => swap.cache({ maxEntrys: 5 } as never)),
      'ERR_INVALID_ARG_VALUE',
    );
    t.is(
      code(() => swap.cache(null as never)),
      'ERR_INVALID_ARG_TYPE',
    );

    const cache = swap.cache();
    cache.set('ok', 1);
    t.is(
      code(() => cache.set({} as never, 1)),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() => cache.get(null as never)),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() => cache.set(Symbol('s') as never, 1)),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() => cache.set('x'.repeat(70000), 1)),
      'ERR_OUT_OF_RANGE',
    );
    t.is(
      code(() => cache.set('ok', () => 1)),
      'ERR_INVALID_ARG_VALUE',
    ); // v8 cannot clone a function
    t.is(cache.get('ok'), 1);
    const json = swap.cache({ serializer: 'json' });
    t.is(
      code(() => json.set('u', undefined)),
      'ERR_INVALID_ARG_VALUE',
    );
    t.is(
      code(() => json.set('b', 1n)),
      'ERR_INVALID_ARG_VALUE',
    );
    const raw = swap.cache({ serializer: 'raw' });
    t.is(
      code(() => raw.set('s', 'text')),
      'ERR_INVALID_ARG_TYPE',
    );
    t.deepEqual([cache.size, json.size, raw.size], [1, 0, 0]);
    t.deepEqual(cache.stats().entries, 1);
  });
});

test('close() and dispose: later use throws ERR_TMEM_CLOSED; swap.close() closes its caches', async (t) => {
  await withSwap(async (swap) => {
    const cache = swap.cache();
    cache.set('a', 1);
    const iter = cache.keys();
    await cache.close();
    await cache.close(); // again: the same, resolved
    t.true(cache.closed);
    for (const fn of [
      () => cache.get('a'),
      () => cache.set('a', 2),
      () => cache.has('a'),
      () => cache.delete('a'),
      () => cache.clear(),
      () => iter.next(),
    ]) {
      t.is(t.throws<Error & { code?: string }>(fn)?.code, 'ERR_TMEM_CLOSED');
    }
    t.is(cache.stats().regions, 0);
    {
      await using scoped = swap.cache();
      scoped.set('b', 2);
      t.is(scoped.get('b'), 2);
      var kept = scoped; // eslint-disable-line no-var -- to look at it after its scope
    }
    t.true(kept.closed);
    t.is(t.throws<Error & { code?: string }>(() => kept.get('b'))?.code, 'ERR_TMEM_CLOSED');
  });
  const swap = await open({ residentLimit: '1MiB' });
  const c = swap.cache();
  c.set('x', { big: 'y'.repeat(100000) });
  await swap.close();
  t.is(t.throws<Error & { code?: string }>(() => c.get('x'))?.code, 'ERR_TMEM_CLOSED');
  t.is(t.throws<Error & { code?: string }>(() => swap.cache())?.code, 'ERR_TMEM_CLOSED');
  await c.close(); // settles
});

test('deleting while iterating: deleted entries are skipped, the rest are visited once', async (t) => {
  await withSwap(async (swap) => {
    const cache = swap.cache();
    for (let i = 0; i < 100; i++) cache.set(i, i * 10);
    const seen: number[] = [];
    for (const [k, v] of cache) {
      t.is(v, (k as number) * 10);
      seen.push(k as number);
      cache.delete((k as number) + 1);
      cache.set(1000 + (k as number), 0); // added while iterating: not visited
    }
    t.deepEqual(
      seen,
      Array.from({ length: 50 }, (_, i) => i * 2),
    );
    await cache.close();
  });
});

test('a child process in a memory cgroup holds three times its limit in cached JS objects and reads every one back', async (t) => {
  t.timeout(300000);
  const limit = 128 * MiB;
  const child = path.join(__dirname, 'helpers', 'cache-cgroup-child.js');
  // V8's young generation may take up to 3 x 16 MiB per isolate (the program's and the
  // dispatcher's) by default: at a limit this small that is a third of it, so both children
  // run with 1 MiB semi-spaces; the cache's own figures do not depend on it.
  const nodeArgs = ['--max-semi-space-size=1'];
  const control = makeMemoryCgroup('tmem-cache-map', limit);
  if ('skip' in control) {
    t.log(`skipped: ${control.skip}`);
    t.pass();
    return;
  }
  try {
    const r = await runNodeInCgroup(control, nodeArgs, child, ['map', String(3 * limit)], 120000);
    t.is(r.signal, 'SIGKILL', `a plain Map should be OOM-killed: ${r.code} ${r.stdout} ${r.stderr.slice(-500)}`);
    t.true(control.oomKills() >= 1);
  } finally {
    control.remove();
  }
  const cg = makeMemoryCgroup('tmem-cache', limit);
  if ('skip' in cg) return t.fail(cg.skip);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-cache-cg-'));
  try {
    // No size options at all: the budget comes from the cgroup's limit (issue: one budget).
    const options = { swapFile: { path: dir, size: '1GiB' } };
    const r = await runNodeInCgroup(cg, nodeArgs, child, ['cache', String(3 * limit), JSON.stringify(options)], 280000);
    t.is(r.code, 0, `${r.signal} ${r.stderr.slice(-2000)}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      bad: number;
      bytes: number;
      entries: number;
      budget: { mode: string };
    };
    t.is(res.bad, 0);
    t.is(res.budget.mode, 'cgroup');
    t.true(res.bytes >= 3 * limit);
    t.is(cg.oomKills(), 0);
    t.log(
      `limit ${limit / MiB} MiB, peak ${(cg.peak() / MiB).toFixed(1)} MiB, ${res.entries} objects, ` +
        `${(res.bytes / MiB).toFixed(0)} MiB serialized, ${(r.ms / 1000).toFixed(1)} s: ${r.stdout.trim()}`,
    );
  } finally {
    cg.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
