import test from 'ava';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Store } from '../lib/tmem';

function run(file: string, data: unknown): Promise<{ own: [number, number][]; ephHits: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(file, { workerData: data });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exit ${code}`));
    });
  });
}

test('four Workers hammer one store; afterwards it equals the model', async (t) => {
  // a small arena so the ephemeral pool reclaims while the others work
  const s = Store.create({ arena: { maxBytes: 4 << 20, chunkBytes: 256 << 10 }, maxObjects: 64, maxPages: 4096 });
  const pp = s.createPool({ persistent: true });
  const ep = s.createPool({ persistent: false, maxFrames: 12 });
  const nShared = 16;
  const keyLocks = new SharedArrayBuffer(nShared * 2 * 4);
  const file = path.join(__dirname, 'helpers', 'store-worker.js');
  const N = 4;
  const results = await Promise.all(
    Array.from({ length: N }, (_, id) =>
      run(file, { handle: s.handle(), id: id + 1, ops: 20000, pp, ep, keyLocks, nShared }),
    ),
  );
  const dst = new Uint8Array(4096);
  const dv = new DataView(dst.buffer);
  let pages = 0;
  results.forEach((r, i) => {
    for (const [key, version] of r.own) {
      const n = s.get(pp, i + 1, 0, 0, key, dst);
      t.true(n > 12);
      t.is(dv.getUint32(0, true), key);
      t.is(dv.getUint32(4, true), version);
      pages++;
    }
  });
  const kl = new Int32Array(keyLocks);
  for (let sk = 0; sk < nShared; sk++) {
    if (kl[sk * 2 + 1] === 0) continue;
    t.true(s.get(pp, 1000, 0, 0, sk, dst) > 12, `shared key ${sk}`);
    t.is(dv.getUint32(4, true), kl[sk * 2 + 1], `shared key ${sk}: last writer wins`);
    pages++;
  }
  t.is(s.poolStats(pp).pages, pages);
  const est = s.poolStats(ep);
  t.true(est.poolBytes <= 12 * 4096);
  t.true(est.evicted > 0, 'the ephemeral pool reclaimed');
  s.destroyPool(pp);
  s.destroyPool(ep);
  t.is(s.arena.usedFrames(), 0);
});
