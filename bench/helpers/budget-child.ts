/**
 * The process that runs in a memory cgroup for the budget test and the demo:
 * `node budget-child.js plain|tmem BYTES`.
 *
 *   plain  BYTES of service data (bench/helpers/log-pages.ts) in ordinary ArrayBuffers, written
 *          then read back: past the cgroup's limit the kernel kills it (SIGKILL)
 *   tmem   the same in one tmem region, open() with no size option at all (the budget comes from
 *          the cgroup), then every byte checked
 *
 * Progress lines go to stderr with write(2); the last one is `result: {json}` (times, the
 * stats at the end, the budget) or `bad page N`.
 */
import * as fs from 'node:fs';
import { open } from '../../lib';
import { fillLogPage, firstBadPage } from './log-pages';

const PAGE = 4096;
const say = (s: string): void => {
  fs.writeSync(2, `${s}\n`);
};

async function main(): Promise<void> {
  const mode = process.argv[2];
  const bytes = Number(process.argv[3]);
  const pages = Math.floor(bytes / PAGE);
  const t0 = performance.now();
  if (mode === 'plain') {
    const CHUNK = 8192; // pages per ArrayBuffer (32 MiB)
    const chunks: Uint8Array[] = [];
    for (let p = 0; p < pages; p += CHUNK) {
      const n = Math.min(CHUNK, pages - p);
      const c = new Uint8Array(n * PAGE);
      for (let k = 0; k < n; k++) fillLogPage(c, k * PAGE, p + k);
      chunks.push(c);
      say(`plain: ${((p + n) * PAGE) / 2 ** 20} MiB written`);
    }
    for (let i = 0; i < chunks.length; i++) {
      const bad = firstBadPage(chunks[i], i * CHUNK, chunks[i].length / PAGE);
      if (bad >= 0) return say(`bad page ${bad}`);
    }
    say(`result: ${JSON.stringify({ mode, writeMs: performance.now() - t0 })}`);
    return;
  }
  const swap = await open();
  let warnings = 0;
  process.on('warning', (w) => {
    if ((w as { code?: string }).code === 'TMEM_BUDGET_EXCEEDED') warnings++;
    say(`warning: ${w.message}`);
  });
  say(`tmem: budget ${JSON.stringify(swap.stats().budget)}`);
  const region = swap.region(pages * PAGE);
  const view = new Uint8Array(region.buffer);
  for (let p = 0; p < pages; p++) {
    fillLogPage(view, p * PAGE, p);
    if ((p & 16383) === 16383) {
      const s = swap.stats();
      say(
        `tmem: ${((p + 1) * PAGE) / 2 ** 20} MiB written; resident ${(s.residentBytes / 2 ** 20).toFixed(1)} MiB, ` +
          `pool ${(s.poolBytes / 2 ** 20).toFixed(1)} MiB, budget ${(s.budget.bytes / 2 ** 20).toFixed(1)} MiB`,
      );
    }
  }
  const writeMs = performance.now() - t0;
  const t1 = performance.now();
  const STEP = 256;
  for (let p = 0; p < pages; p += STEP) {
    const n = Math.min(STEP, pages - p);
    const bad = firstBadPage(view.subarray(p * PAGE, (p + n) * PAGE), p, n);
    if (bad >= 0) return say(`bad page ${bad}`);
  }
  const readMs = performance.now() - t1;
  const s = swap.stats();
  say(
    `result: ${JSON.stringify({
      mode,
      bytes: pages * PAGE,
      writeMs,
      readMs,
      warnings,
      residentBytes: s.residentBytes,
      poolBytes: s.poolBytes,
      storedPages: s.storedPages,
      samePages: s.samePages,
      compressionRatio: s.compressionRatio,
      evictions: s.evictions,
      budget: s.budget,
    })}`,
  );
  await region.close();
  await swap.close();
}

main().catch((e: unknown) => {
  say(`error: ${e instanceof Error ? e.stack : String(e)}`);
  process.exitCode = 1;
});
