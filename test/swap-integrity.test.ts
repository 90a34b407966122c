/**
 * Integrity of the public API under real faults and eviction: regions several
 * times larger than residentLimit, patterned pages (zero, same-filled,
 * incompressible, compressible; helpers/swap-pattern.ts), random reads and
 * writes from the main thread and two Workers at once while the dispatcher
 * evicts, then every byte compared with the merged model. Also: a pool too
 * small for the data refuses stores and loses nothing.
 *
 * A fault nobody serves would stop the main thread where no timer runs, so
 * each synchronous step that touches region memory runs under the watchdog
 * (helpers/harness.ts), which kills the process instead of letting it hang;
 * every await on a Worker or the dispatcher is raced against a timer.
 */
import test, { type ExecutionContext } from 'ava';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { open, type OpenOptions, type Region, type Swap } from '../lib';
import { Watchdog, withTimeout } from './helpers/harness';
import {
  PAGE,
  Writer,
  fillPage,
  pageMismatch,
  describeMismatch,
  kindOf,
  KIND_RANDOM,
  type WriterReport,
} from './helpers/swap-pattern';

const watchdog = new Watchdog();
/** Runs a synchronous step that faults; the process dies if it takes longer than `ms`. */
const touch = <T>(what: string, fn: () => T, ms = 15000): T => watchdog.guard(what, ms, fn);
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const baseSeed = Number(process.env.TMEM_SEED) || Date.now() & 0x7fffffff;

const WRITERS = 3;
const OPS_PER_THREAD = 4000;
const RW_WORKER = path.join(__dirname, 'helpers', 'swap-rw-worker.js');

/** Fills every page of `bytes` with version 0, in guarded slices. */
async function fillAll(bytes: Uint8Array, what: string): Promise<void> {
  const pages = bytes.length / PAGE;
  for (let p0 = 0; p0 < pages; p0 += 256) {
    touch(`${what}: fill pages ${p0}..`, () => {
      for (let p = p0; p < Math.min(pages, p0 + 256); p++) fillPage(bytes, p * PAGE, p, 0);
    });
    await tick();
  }
}

/** Checks every byte of every page against `versions`; returns the first few wrong pages. */
async function checkAll(bytes: Uint8Array, versions: ArrayLike<number>, what: string): Promise<string[]> {
  const pages = bytes.length / PAGE;
  const wrong: string[] = [];
  let count = 0;
  for (let p0 = 0; p0 < pages; p0 += 256) {
    touch(`${what}: check pages ${p0}..`, () => {
      for (let p = p0; p < Math.min(pages, p0 + 256); p++) {
        const bad = pageMismatch(bytes, p * PAGE, p, versions[p]);
        if (bad >= 0) {
          count++;
          if (wrong.length < 8) wrong.push(describeMismatch(bytes, p * PAGE, p, versions[p], bad));
        }
      }
    });
    await tick();
  }
  if (count > wrong.length) wrong.push(`... ${count} wrong pages in all`);
  return wrong;
}

function startWriter(region: Region, seq: SharedArrayBuffer, index: number, seed: number): Promise<WriterReport> {
  const w = new Worker(RW_WORKER, {
    workerData: { shared: region.share(), seq, index, writers: WRITERS, seed, ops: OPS_PER_THREAD },
  });
  const done = new Promise<WriterReport>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`writer Worker ${index} exited (${code}) before reporting`)));
  });
  return withTimeout(done, 40000, `writer Worker ${index}`).finally(() => void w.terminate());
}

async function integrity(t: ExecutionContext, options: OpenOptions): Promise<void> {
  const seed = baseSeed ^ (options.compressor === 'zstd' ? 0x1234 : 0);
  t.log(`seed ${seed} (TMEM_SEED=${seed} reproduces the op sequences)`);
  const swap = await withTimeout(open({ residentLimit: '4MiB', poolLimit: '128MiB', ...options }), 10000, 'open()');
  try {
    const region = swap.region('16MiB');
    const bytes = new Uint8Array(region.buffer);
    const pages = bytes.length / PAGE;
    t.is(pages, 4096);

    await fillAll(bytes, 'initial fill');
    const afterFill = swap.stats();
    t.true(
      afterFill.evictions > 0,
      `eviction ran while 16MiB were written under a 4MiB limit: ${JSON.stringify(afterFill)}`,
    );

    // Three writers at once: this thread (index 0) and two Workers (1, 2); everyone reads everything.
    const seq = new SharedArrayBuffer(pages * 4);
    const workers = [startWriter(region, seq, 1, seed + 1), startWriter(region, seq, 2, seed + 2)];
    for (const p of workers) p.catch(() => undefined);
    const mine = new Writer(bytes, new Int32Array(seq), 0, WRITERS, seed);
    for (let done = 0; done < OPS_PER_THREAD; done += 200) {
      touch(`main writer ops ${done}..`, () => mine.run(200));
      await tick();
    }
    const reports = [mine.finish(), ...(await Promise.all(workers))];

    // Merge the writers' models; each must agree with the published seqlock.
    const versions = new Int32Array(pages);
    const seqView = new Int32Array(seq);
    let mergeErrors = 0;
    for (let p = 0; p < pages; p++) {
      const v = reports[p % WRITERS].versions[p];
      versions[p] = v;
      if (v < 0 || seqView[p] !== 2 * v) mergeErrors++;
    }
    t.is(mergeErrors, 0, 'every page has one owner whose model matches the published version');
    for (const r of reports) {
      t.deepEqual(r.errors, [], `reads during the run (writer ${r.index})`);
      t.true(
        r.writes > 1000 && r.ownReads > 100 && r.foreignChecked > 100,
        `writer ${r.index} did real work: ${JSON.stringify({ ...r, versions: undefined })}`,
      );
    }

    t.deepEqual(await checkAll(bytes, versions, 'after the run'), [], 'every byte after concurrent reads and writes');
    const s = swap.stats();
    t.true(s.evictions > afterFill.evictions, 'evictions continued during the run');
    t.true(s.faults.pool > 0, `pages came back from the pool: ${JSON.stringify(s.faults)}`);
    t.true(s.faults.same > 0, `same-filled pages came back: ${JSON.stringify(s.faults)}`);
    t.true(s.faults.writeProtect > 0, `clean pages were written: ${JSON.stringify(s.faults)}`);
    t.true(s.hugePages > 0, 'incompressible pages were stored raw');

    // Push everything out, then read it all back.
    const evicted = await withTimeout(region.evict(), 20000, 'region.evict()');
    t.true(evicted > 0);
    const rs = region.stats();
    t.is(rs.residentPages, 0, `nothing resident after evict(): ${JSON.stringify(rs)}`);
    const poolFaults = swap.stats().faults.pool;
    t.deepEqual(await checkAll(bytes, versions, 'after evict()'), [], 'every byte after region.evict()');
    t.true(swap.stats().faults.pool - poolFaults > pages / 4, 'the read-back came from the pool');
    await withTimeout(region.close(), 10000, 'region.close()');
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
}

test.serial('integrity: 16MiB under a 4MiB resident limit, three writers, lz4 + zsmalloc', (t) => integrity(t, {}));
test.serial('integrity: the same with zstd + zbud', (t) => integrity(t, { compressor: 'zstd', allocator: 'zbud' }));

/** Checks bytes against a model Buffer; the first wrong page or -1. */
function firstWrongPage(bytes: Uint8Array, model: Buffer): number {
  for (let off = 0; off < model.length; off += PAGE) {
    if (!Buffer.from(bytes.buffer, bytes.byteOffset + off, PAGE).equals(model.subarray(off, off + PAGE)))
      return off / PAGE;
  }
  return -1;
}

test.serial('pool full: a 256KiB pool refuses stores of incompressible pages, nothing is lost', async (t) => {
  const swap: Swap = await withTimeout(open({ residentLimit: '1MiB', poolLimit: '256KiB' }), 10000, 'open()');
  try {
    const region = swap.region('4MiB');
    const bytes = new Uint8Array(region.buffer);
    const model = randomBytes(region.size);
    for (let off = 0; off < model.length; off += 64 * PAGE) {
      touch(`write random pages at ${off}`, () => bytes.set(model.subarray(off, off + 64 * PAGE), off));
      await tick();
    }
    // Give background eviction a moment to hit the limit.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const s = swap.stats();
    t.true(s.refused.poolLimit > 0, `stores were refused: ${JSON.stringify(s.refused)}`);
    t.true(s.poolBytes <= 256 * 1024, `the pool kept to its limit: ${s.poolBytes}`);
    t.true(
      s.residentPages > 256,
      `refused pages stay resident, over the limit (documented until the swap-file tier): ${s.residentPages}`,
    );
    t.is(
      touch('read back after refusals', () => firstWrongPage(bytes, model)),
      -1,
      'every byte reads back',
    );

    // evict() cannot push out more than the pool takes either; still nothing lost.
    await withTimeout(region.evict(), 20000, 'region.evict()');
    t.is(
      touch('read back after evict()', () => firstWrongPage(bytes, model)),
      -1,
      'every byte after evict()',
    );
    const s2 = swap.stats();
    t.true(s2.faults.pool > 0, 'the pages the pool did take came back from it');
    t.true(s2.refused.poolLimit >= s.refused.poolLimit);

    // A few writes into stored and refused pages, then read everything again.
    touch('rewrite every 7th page', () => {
      for (let p = 0; p < model.length / PAGE; p += 7) {
        fillPage(model, p * PAGE, p, 1, KIND_RANDOM);
        bytes.set(model.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE);
      }
    });
    await withTimeout(region.evict(), 20000, 'region.evict()');
    t.is(
      touch('read back after rewrites', () => firstWrongPage(bytes, model)),
      -1,
      'every byte after rewrites',
    );
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});

test('pattern helper: kinds are mixed as the tests assume', (t) => {
  const count = [0, 0, 0, 0];
  for (let p = 0; p < 4096; p++) count[kindOf(p, 0)]++;
  for (const c of count) t.true(c > 300, `every kind is common: ${count.join(',')}`);
});

test.serial('pool full: with nothing left that can be stored, the dispatcher does not spin', async (t) => {
  const swap: Swap = await withTimeout(open({ residentLimit: '1MiB', poolLimit: '256KiB' }), 10000, 'open()');
  try {
    const region = swap.region('4MiB');
    const bytes = new Uint8Array(region.buffer);
    const model = randomBytes(region.size);
    touch('write random pages', () => bytes.set(model));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const refused = swap.stats().refused.poolLimit;
    t.true(refused > 0, 'the pool is full');
    // Nothing touches the region now: the process should be (nearly) idle.
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const cpu = process.cpuUsage(cpu0);
    const busy = (cpu.user + cpu.system) / 1000 / (performance.now() - t0);
    const again = swap.stats().refused.poolLimit - refused;
    t.true(
      busy < 0.3,
      `process CPU while idle: ${(busy * 100).toFixed(0)}% of one CPU; ${again} more refusals in 500 ms`,
    );
    t.is(
      touch('read back', () => firstWrongPage(bytes, model)),
      -1,
    );
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});
