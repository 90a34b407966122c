/**
 * Child for the pressure test, run in a memory cgroup (node --expose-gc pressure-child.js):
 * a swap with a fixed budget of 48 MiB holds 44 MiB of pages, all resident; then plain Buffers push the
 * cgroup's usage to its limit, which must shrink the resident set (pressure > 0); once they are
 * freed the pressure must go back to 0 and the resident limit grow again. Every byte is
 * checked at the end. Prints `result: {json}` on stderr.
 */
import * as fs from 'node:fs';
import { open } from '../../lib';
import { findMemoryCgroup, readCgroup } from '../../lib/budget/cgroup';
import { fillLogPage, firstBadPage } from '../../bench/helpers/log-pages';

const say = (s: string): void => {
  fs.writeSync(2, `${s}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const MiB = 2 ** 20;

async function main(): Promise<void> {
  const cg = findMemoryCgroup();
  if (!cg) throw new Error('not in a memory cgroup');
  const swap = await open({ memoryLimit: '48MiB' });
  const events: { level: number; cause: string }[] = [];
  swap.on('memoryPressure', (e) => events.push(e));
  const pages = (44 * MiB) / 4096;
  const region = swap.region(pages * 4096);
  const view = new Uint8Array(region.buffer);
  for (let p = 0; p < pages; p++) fillLogPage(view, p * 4096, p);
  await sleep(1200);
  // The host's own memory stalls (PSI: other processes reclaiming) may have pressed the budget
  // already and evicted pages: wait for that to pass, then read every page back in, so the
  // figures below are those of a budget without pressure.
  for (let i = 0; i < 200 && swap.stats().budget.pressure > 0; i++) await sleep(100);
  let sum = 0;
  for (let p = 0; p < pages; p++) sum += view[p * 4096];
  void sum;
  await sleep(300);
  const before = swap.stats().budget.residentLimit;
  const residentBefore = swap.stats().residentBytes;
  say(`before: ${JSON.stringify(swap.stats().budget)}`);

  // Fill the cgroup up to 96% of its limit with plain memory (what the rest of a program does).
  let hog: Buffer[] = [];
  for (let i = 0; i < 1000; i++) {
    const r = readCgroup(cg);
    if (r.limit === undefined || r.usage === undefined) throw new Error('cannot read the cgroup');
    if (r.usage - (r.inactiveFile ?? 0) >= 0.96 * r.limit) break;
    hog.push(Buffer.alloc(2 * MiB, 1));
  }
  say(`hog: ${hog.length * 2} MiB, cgroup ${JSON.stringify(readCgroup(cg))}`);
  let pressed = { residentLimit: before, pressure: 0, cause: '', resident: 0 };
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    const s = swap.stats();
    if (s.budget.pressure > 0 && s.residentBytes <= s.budget.residentLimit) {
      pressed = {
        residentLimit: s.budget.residentLimit,
        pressure: s.budget.pressure,
        cause: s.budget.pressureCause,
        resident: s.residentBytes,
      };
      break;
    }
  }
  say(`pressed: ${JSON.stringify(pressed)}`);
  hog = [];
  void hog;
  (globalThis as { gc?: () => void }).gc?.();
  let after = { residentLimit: 0, pressure: 1, poolBytes: 0 };
  for (let i = 0; i < 300; i++) {
    await sleep(100);
    const s = swap.stats();
    after = { residentLimit: s.budget.residentLimit, pressure: s.budget.pressure, poolBytes: s.poolBytes };
    if (s.budget.pressure === 0 && i > 10) break;
  }
  await sleep(700); // the last memoryPressure event
  const bad = firstBadPage(view, 0, pages);
  say(`result: ${JSON.stringify({ before, residentBefore, pressed, after, events, bad })}`);
  await region.close();
  await swap.close();
}

main().catch((e: unknown) => {
  say(`error: ${e instanceof Error ? e.stack : String(e)}`);
  process.exitCode = 1;
});
