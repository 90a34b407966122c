/**
 * The memory budget (README "The memory budget", "Pressure"): a child Node process in a
 * memory cgroup made here (root) with data three times the limit, OOM-killed without tmem
 * and alive with every byte with tmem's default budget; memoryLimit's split; limits changed
 * at run time; the warning and event when the budget cannot be held; pressure provoked for
 * real in a cgroup; bad values.
 */
import test from 'ava';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { open, type Swap, type SwapStats } from '../lib';
import { makeMemcg, memcgRoot, spawnInMemcg, type Memcg } from '../bench/helpers/memcg';
import { fillLogPage, firstBadPage } from '../bench/helpers/log-pages';
import { statsWhen, tempDir } from './helpers/harness';
import { Registry } from 'prom-client';
import { register } from '../lib/prometheus';

const MiB = 2 ** 20;
const PAGE = 4096;
const CHILD = path.join(__dirname, '..', 'bench', 'helpers', 'budget-child.js');
const PRESSURE_CHILD = path.join(__dirname, 'helpers', 'pressure-child.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
  peak: number;
  oomKills: number;
}

/** Runs `node script args` in a fresh cgroup of `limit` bytes; the cgroup is removed afterwards. */
function runInMemcg(name: string, limit: number, script: string, args: string[], timeoutMs: number): Promise<Run> {
  const cg: Memcg = makeMemcg(`${name}-${process.pid}-${Date.now()}`, limit);
  const started = Date.now();
  return new Promise<Run>((resolve, reject) => {
    const child = spawnInMemcg(cg, [script, ...args], timeoutMs);
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderr += d;
    });
    child.stdout!.resume();
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const run = { code, signal, stderr, ms: Date.now() - started, peak: cg.peak(), oomKills: cg.oomKills() };
      cg.remove();
      resolve(run);
    });
  });
}

const tail = (s: string): string => s.split('\n').slice(-12).join('\n');
const noCgroup = ((): string | undefined => {
  const w = memcgRoot();
  return 'reason' in w ? w.reason : undefined;
})();

test.serial(
  'cgroup: data three times the limit: plain ArrayBuffers are OOM-killed; with tmem and no size option the process survives and every byte reads back',
  async (t) => {
    if (noCgroup) {
      t.log(`skipped: ${noCgroup}`);
      t.pass();
      return;
    }
    t.timeout(900_000);
    const limit = 320 * MiB;
    const data = 3 * limit;

    const plain = await runInMemcg('tmem-plain', limit, CHILD, ['plain', String(data)], 300_000);
    t.is(plain.signal, 'SIGKILL', `plain ArrayBuffers must be killed:\n${tail(plain.stderr)}`);
    t.true(plain.oomKills >= 1, `the kernel's OOM killer did it (oom_kill ${plain.oomKills})`);
    t.notRegex(plain.stderr, /result:/);

    const run = await runInMemcg('tmem-budget', limit, CHILD, ['tmem', String(data)], 840_000);
    t.is(run.signal, null, `tmem's process must survive:\n${tail(run.stderr)}`);
    t.is(run.code, 0, tail(run.stderr));
    t.is(run.oomKills, 0);
    t.notRegex(run.stderr, /bad page/);
    const m = /result: (.*)/.exec(run.stderr);
    t.truthy(m, tail(run.stderr));
    const r = JSON.parse(m![1]) as {
      bytes: number;
      writeMs: number;
      readMs: number;
      warnings: number;
      residentBytes: number;
      poolBytes: number;
      compressionRatio: number;
      budget: { mode: string; bytes: number; cgroup: { limit: number } };
    };
    t.is(r.bytes, data);
    t.is(r.budget.mode, 'cgroup');
    t.is(r.budget.cgroup.limit, limit);
    t.true(r.budget.bytes < limit);
    t.true(run.peak <= limit);
    t.log(
      `cgroup v${(memcgRoot() as { version: number }).version} limit ${limit / MiB} MiB, data ${data / MiB} MiB: plain killed by SIGKILL after ` +
        `${(plain.ms / 1000).toFixed(1)} s (peak ${(plain.peak / MiB).toFixed(1)} MiB); tmem: peak ` +
        `${(run.peak / MiB).toFixed(1)} MiB, budget ${(r.budget.bytes / MiB).toFixed(1)} MiB, written in ` +
        `${(r.writeMs / 1000).toFixed(1)} s, every byte read back in ${(r.readMs / 1000).toFixed(1)} s, ` +
        `${(run.ms / 1000).toFixed(1)} s in all; at the end ${(r.residentBytes / MiB).toFixed(1)} MiB resident, pool ` +
        `${(r.poolBytes / MiB).toFixed(1)} MiB (ratio ${r.compressionRatio.toFixed(2)})`,
    );
  },
);

/** Writes `pages` log pages into a region of `swap` and returns it. */
function fillRegion(swap: Swap, pages: number): { view: Uint8Array; close(): Promise<void> } {
  const region = swap.region(pages * PAGE);
  const view = new Uint8Array(region.buffer);
  for (let p = 0; p < pages; p++) fillLogPage(view, p * PAGE, p);
  return { view, close: () => region.close() };
}

test('memoryLimit: resident pages, the pool and tmem metadata stay within the budget; every byte reads back', async (t) => {
  const budget = 16 * MiB;
  const swap = await open({ memoryLimit: budget });
  t.teardown(() => swap.close());
  const pages = (64 * MiB) / PAGE;
  const r = fillRegion(swap, pages);
  // Settled: eviction done and the split recomputed. The limits follow the pool at each eviction
  // slice, so a snapshot taken inside one can see the pool a slice ahead of its resident limit
  // (seen once under a loaded CI run); the assertions below then must hold.
  const split = (x: SwapStats): boolean =>
    x.budget.residentLimit + Math.min(x.poolBytes, x.budget.poolLimit) + x.budget.metadataBytes <= budget + PAGE;
  const s = await statsWhen(swap, (x) => x.residentBytes <= x.budget.residentLimit && split(x), 20_000, 20);
  t.is(s.budget.mode, 'memoryLimit');
  t.is(s.budget.bytes, budget);
  t.true(s.poolBytes > 0, 'pages went to the pool');
  t.true(s.residentBytes <= s.budget.residentLimit, `resident ${s.residentBytes} within ${s.budget.residentLimit}`);
  // The split: what the pool uses comes off the resident share.
  t.true(split(s), JSON.stringify({ poolBytes: s.poolBytes, ...s.budget }));
  t.true(s.residentBytes + s.poolBytes + s.budget.metadataBytes <= budget + 64 * PAGE, JSON.stringify(s.budget));
  t.is(s.budget.notHeld, 0);
  t.is(firstBadPage(r.view, 0, pages), -1);
  await r.close();
});

test('setLimits: a lower residentLimit at run time evicts down to it; a lower poolLimit writes the pool back to the swap file, also when lowered while eviction runs; every byte reads back', async (t) => {
  const dir = tempDir(t, 'tmem-budget-');
  const swap = await open({
    residentLimit: '32MiB',
    poolLimit: '32MiB',
    swapFile: { path: dir, size: '64MiB' },
    idle: { after: 0 },
  });
  t.teardown(() => swap.close());
  const pages = (24 * MiB) / PAGE;
  const r = fillRegion(swap, pages);
  t.true(swap.stats().residentBytes > 16 * MiB, 'all resident under the first limit');

  await swap.setLimits({ residentLimit: '4MiB' });
  let s = await statsWhen(swap, (x) => x.residentBytes <= 4 * MiB, 30_000, 20);
  t.true(s.residentBytes <= 4 * MiB, `resident ${s.residentBytes} down to the new limit`);
  t.is(s.budget.residentLimit, 4 * MiB);
  const poolBefore = s.poolBytes;
  t.true(poolBefore > MiB, `the pool holds the evicted pages (${poolBefore})`);

  // Both lowered at once: the pool refuses stores while eviction still runs, and once eviction is
  // done the shrinker must go on by itself (nothing else wakes the dispatcher: no fault, no request).
  await swap.setLimits({ residentLimit: '1MiB', poolLimit: '512KiB' });
  s = await statsWhen(swap, (x) => x.residentBytes <= MiB && x.poolBytes < (512 * 1024 * 90) / 100, 40_000, 20);
  const shown = JSON.stringify({ ...s, latency: undefined });
  t.true(s.residentBytes <= MiB, `resident down to 1 MiB: ${shown}`);
  t.true(s.poolBytes < poolBefore, `the pool shrank (${poolBefore} -> ${s.poolBytes}): ${shown}`);
  t.true(s.poolBytes < 512 * 1024, `under its new limit: ${s.poolBytes}`);
  t.true(s.swapFile!.writtenBack > 0, 'its pages went to the swap file');
  // Fixed limits, so no budget sampler: the frames the pool freed are still given back to the
  // kernel (a chunk is released only when all of it is free; these ones are not).
  s = await statsWhen(swap, (x) => x.poolTrimmedBytes > 0, 20_000, 20);
  t.true(s.poolTrimmedBytes >= MiB, `free pool frames given back: ${s.poolTrimmedBytes}`);
  t.is(firstBadPage(r.view, 0, pages), -1);
  await r.close();
});

test('setLimits and open(): bad values are refused with a code, before anything changes', async (t) => {
  const rejects = async (o: unknown, code: string, msg: RegExp): Promise<void> => {
    await t.throwsAsync(() => open(o as never), { code, message: msg }, JSON.stringify(o));
  };
  await rejects({ memoryLimit: '1MiB' }, 'ERR_OUT_OF_RANGE', /memoryLimit must be at least 4MiB/);
  await rejects({ memoryLimit: -5 }, 'ERR_OUT_OF_RANGE', /memoryLimit/);
  await rejects({ memoryLimit: 'lots' }, 'ERR_OUT_OF_RANGE', /memoryLimit must be a size/);
  await rejects({ memoryLimit: {} }, 'ERR_INVALID_ARG_TYPE', /memoryLimit must be a number of bytes, a size string/);
  await rejects({ memoryLimit: null }, 'ERR_INVALID_ARG_TYPE', /memoryLimit/);
  await rejects({ memoryLimit: '128TiB' }, 'ERR_OUT_OF_RANGE', /memoryLimit must be at most 64TiB/);
  await rejects({ pressure: 'yes' }, 'ERR_INVALID_ARG_TYPE', /pressure must be a boolean/);

  const swap = await open({ residentLimit: '1MiB', poolLimit: '8MiB' });
  t.teardown(() => swap.close());
  const before = swap.stats().budget;
  await t.throwsAsync(() => swap.setLimits({ residentLimt: '1MiB' } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /unknown key in limits: 'residentLimt'; accepted: memoryLimit, residentLimit, poolLimit, lowWatermark/,
  });
  await t.throwsAsync(() => swap.setLimits(null as never), { code: 'ERR_INVALID_ARG_TYPE' });
  await t.throwsAsync(() => swap.setLimits({ poolLimit: '16MiB' }), {
    code: 'ERR_OUT_OF_RANGE',
    message: /poolLimit must be at most 8388608 bytes \(the arena open\(\) reserved\)/,
  });
  await t.throwsAsync(() => swap.setLimits({ residentLimit: '4KiB' }), {
    code: 'ERR_OUT_OF_RANGE',
    message: /residentLimit must be at least 64KiB/,
  });
  await t.throwsAsync(() => swap.setLimits({ memoryLimit: 'x' }), { code: 'ERR_OUT_OF_RANGE' });
  await t.throwsAsync(() => swap.setLimits({ lowWatermark: 1.5 }), { code: 'ERR_OUT_OF_RANGE' });
  await t.throwsAsync(() => swap.setLimits({ lowWatermark: '0.5' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  const after = swap.stats().budget;
  t.deepEqual(
    [after.residentLimit, after.poolLimit, after.bytes, after.mode],
    [before.residentLimit, before.poolLimit, before.bytes, before.mode],
    'nothing changed',
  );
});

test.serial(
  'not held: a full pool with nothing below it emits budgetExceeded once per episode and one TMEM_BUDGET_EXCEEDED warning naming the cause and the fix',
  async (t) => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      if ((w as { code?: string }).code === 'TMEM_BUDGET_EXCEEDED') warnings.push(w);
    };
    process.on('warning', onWarning);
    t.teardown(() => process.off('warning', onWarning));
    const swap = await open({ memoryLimit: '8MiB', pressure: false });
    t.teardown(() => swap.close());
    const events: { cause: string; fix: string }[] = [];
    swap.on('budgetExceeded', (e) => events.push(e));

    // Random bytes: the pool stores them raw and fills; there is no swap file.
    const region = swap.region('32MiB');
    const view = new Uint8Array(region.buffer);
    const want = crypto.randomBytes(view.length);
    view.set(want);
    const s = await statsWhen(swap, (x) => x.budget.notHeld > 0, 20_000, 20);
    t.true(s.budget.notHeld > 0, 'counted in stats().budget.notHeld');
    await new Promise((resolve) => setTimeout(resolve, 1500)); // several polls within the same episode
    t.is(events.length, 1, 'one event for the episode');
    t.regex(events[0].cause, /the pool is full .* there is no swap file below it, so pages stay resident/);
    t.regex(events[0].fix, /a swap file .*a larger budget \(memoryLimit\).*compressor: 'zstd'/);
    await new Promise((resolve) => setImmediate(resolve));
    t.is(warnings.length, 1, 'one process warning');
    t.regex(warnings[0].message, /tmem: the memory budget cannot be held: the pool is full.*Fix: a swap file/);

    // Held again (a larger budget), then not held again: a second event, no second warning.
    await swap.setLimits({ memoryLimit: '128MiB' });
    await statsWhen(swap, (x) => x.residentBytes <= x.budget.residentLimit, 20_000, 20);
    await new Promise((resolve) => setTimeout(resolve, 800));
    await swap.setLimits({ memoryLimit: '8MiB' });
    await region.evict();
    await statsWhen(swap, () => events.length > 1, 20_000, 50);
    t.is(events.length, 2, 'a new episode, a new event');
    await new Promise((resolve) => setTimeout(resolve, 600));
    t.is(warnings.length, 1, 'still one warning');
    t.is(Buffer.compare(Buffer.from(view.buffer), want), 0, 'every byte reads back');
    // Exported too: Prometheus (the stats socket serves stats() itself, budget included).
    const registry = new Registry();
    const metrics = register(swap, { registry });
    const text = await registry.metrics();
    metrics.unregister();
    const m = /^tmem_budget_not_held_total (\d+)/m.exec(text);
    t.truthy(m, text);
    t.true(Number(m![1]) > 0);
    t.regex(text, /^tmem_budget_bytes 8388608$/m);
    await region.close();
  },
);

test.serial(
  'pressure: a cgroup driven near its limit shrinks the resident set, which comes back once the pressure is gone',
  async (t) => {
    if (noCgroup) {
      t.log(`skipped: ${noCgroup}`);
      t.pass();
      return;
    }
    t.timeout(300_000);
    const run = await runInMemcg('tmem-pressure', 256 * MiB, '--expose-gc', [PRESSURE_CHILD], 240_000);
    t.is(run.signal, null, tail(run.stderr));
    t.is(run.code, 0, tail(run.stderr));
    const m = /result: (.*)/.exec(run.stderr);
    t.truthy(m, tail(run.stderr));
    const r = JSON.parse(m![1]) as {
      before: number;
      residentBefore: number;
      pressed: { residentLimit: number; pressure: number; cause: string; resident: number };
      after: { residentLimit: number; pressure: number; poolBytes: number };
      events: { level: number; cause: string }[];
      bad: number;
    };
    t.true(r.pressed.pressure > 0, JSON.stringify(r));
    t.regex(r.pressed.cause, /near-limit|limit|psi/);
    t.true(r.pressed.residentLimit < r.before, `the resident limit fell: ${r.before} -> ${r.pressed.residentLimit}`);
    t.true(r.pressed.resident <= r.pressed.residentLimit, 'and resident pages went with it');
    t.true(r.pressed.resident < r.residentBefore, `evicted: ${r.residentBefore} -> ${r.pressed.resident}`);
    t.log(JSON.stringify(r));
    t.is(r.after.pressure, 0);
    // Given back once the pressure is gone: all of the budget but what the pool now holds.
    t.true(r.after.residentLimit > r.pressed.residentLimit, JSON.stringify(r));
    t.true(r.after.residentLimit >= r.before - r.after.poolBytes - 64 * PAGE, JSON.stringify(r));
    t.true(
      // The release is announced (a level-0 event after the first). It need not be the last:
      // the host's own memory stalls (PSI, a loaded CI machine) may raise a psi event after it.
      r.events.length >= 2 && r.events[0].level > 0 && r.events.slice(1).some((e) => e.level === 0),
      JSON.stringify(r.events),
    );
    t.is(r.bad, -1, 'every byte reads back');
  },
);
