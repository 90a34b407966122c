/**
 * Child process for the child-process tests (test/fork.test.ts):
 * `node fork-child.js SCENARIO HOW`, where HOW is the way this process makes a
 * child of its own while its region pages are resident: execSync, spawnSync,
 * spawn (the child keeps running while tmem evicts), fork (a Node child with
 * IPC, kept running), cluster (cluster.fork(), kept running).
 *
 *   evict      a region of PAGES pages is filled (every page distinct), a child
 *              is made, region.evict() must take every page; every byte is read
 *              back.
 *   pressure   PAGES pages fill residentLimit (less 64: the native fault path's
 *              reclaim headroom), a child is made, then
 *              more pages are written: each one needs an eviction of a page that
 *              was resident at the fork; then every page is rewritten, read back.
 *   staged     pages are left in the staging ring (second chance) when the child
 *              is made; they are then written and read (moved back from staging).
 *   idle       (the cluster and fork children themselves) wait until disconnected.
 *
 * The scenario runs in its own process so that a hang (every fault rescanning
 * pages that cannot move) or a dispatcher that dies fails one test: the test
 * kills it after a generous bound. The last stderr line is `RESULT <json>`.
 */
import * as cp from 'node:child_process';
import cluster from 'node:cluster';
import * as fs from 'node:fs';
import { open, type Region, type Swap } from '../../lib';

const PAGE = 4096;
const say = (s: string): void => {
  fs.writeSync(2, `${s}\n`);
};
const [scenario, how] = [process.argv[2], process.argv[3]];

/** Word i of page p at version v: unique per (page, version), repeating every 16 words (compressible). */
function word(p: number, v: number, i: number): number {
  return (Math.imul(p + 1, 0x9e3779b1) ^ Math.imul(v + 1, 0x85ebca6b) ^ ((i & 15) * 0x01010101)) >>> 0;
}

function writePages(words: Uint32Array, from: number, to: number, v: number, versions: Int32Array): void {
  for (let p = from; p < to; p++) {
    const o = p * (PAGE / 4);
    for (let i = 0; i < PAGE / 4; i++) words[o + i] = word(p, v, i);
    versions[p] = v;
  }
}

/** Pages whose bytes differ from their version's (every word of every page compared). */
function wrongPages(words: Uint32Array, pages: number, versions: Int32Array): number[] {
  const wrong: number[] = [];
  for (let p = 0; p < pages; p++) {
    const o = p * (PAGE / 4);
    for (let i = 0; i < PAGE / 4; i++) {
      if (words[o + i] !== word(p, versions[p], i)) {
        wrong.push(p);
        break;
      }
    }
  }
  return wrong;
}

/** Makes a child the way HOW says; resolves with a function that ends it. */
async function makeChild(): Promise<() => Promise<number | null>> {
  switch (how) {
    case 'execSync': {
      const out = cp.execSync('echo child-ok', { encoding: 'utf8' });
      if (out.trim() !== 'child-ok') throw new Error(`execSync child printed ${JSON.stringify(out)}`);
      return () => Promise.resolve(0);
    }
    case 'spawnSync': {
      const r = cp.spawnSync('sh', ['-c', 'exit 7']);
      if (r.status !== 7) throw new Error(`spawnSync child exited ${String(r.status)} ${String(r.error)}`);
      return () => Promise.resolve(0);
    }
    case 'spawn': {
      const c = cp.spawn('sleep', ['60'], { stdio: 'ignore' });
      await new Promise((resolve, reject) => {
        c.once('spawn', resolve);
        c.once('error', reject);
      });
      return () =>
        new Promise((resolve) => {
          c.once('exit', (code, sig) => resolve(sig === 'SIGTERM' ? 0 : code));
          c.kill('SIGTERM');
        });
    }
    case 'fork': {
      const c = cp.fork(__filename, ['idle', 'fork'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      await new Promise((resolve, reject) => {
        c.once('message', resolve);
        c.once('error', reject);
      });
      return () =>
        new Promise((resolve) => {
          c.once('exit', (code) => resolve(code));
          c.disconnect();
        });
    }
    case 'cluster': {
      cluster.setupPrimary({ exec: __filename, args: ['idle', 'cluster'], silent: true });
      const w = cluster.fork();
      await new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      return () =>
        new Promise((resolve) => {
          w.once('exit', (code) => resolve(code));
          w.disconnect();
        });
    }
    default:
      throw new Error(`unknown HOW ${how}`);
  }
}

/**
 * Waits until the dispatcher has stopped moving: resident pages at most `limit` and its
 * eviction counters holding still over several samples (a loaded host can starve the
 * dispatcher for longer than one sample). Bounded: the caller's assertions then judge.
 */
async function settle(swap: Swap, limit: number): Promise<void> {
  let last = '',
    same = 0;
  for (let i = 0; i < 400 && same < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const s = swap.stats();
    const now = `${s.evictions} ${s.residentPages} ${s.stagedPages}`;
    same = now === last && s.residentPages <= limit ? same + 1 : 0;
    last = now;
  }
}

function figures(swap: Swap, region: Region): Record<string, number> {
  const s = swap.stats();
  return {
    resident: s.residentPages,
    staged: s.stagedPages,
    evictions: s.evictions,
    unshared: s.unsharedPages,
    unevictable: s.unevictablePages,
    stored: s.storedPages,
    secondChance: s.secondChance,
    regionResident: region.stats().residentPages,
  };
}

async function main(): Promise<void> {
  if (scenario === 'idle') {
    process.send!('ready');
    process.on('disconnect', () => process.exit(0));
    setInterval(() => undefined, 1000);
    return;
  }
  const limitPages = scenario === 'evict' ? 16384 : scenario === 'pressure' ? 4096 : 512;
  const pages = scenario === 'evict' ? 4096 : scenario === 'pressure' ? 6144 : 2048;
  // staged: served by the dispatcher. The scenario needs the FIFO exactly in load order (the
  // staged pages are found by their index); with the fault thread it is so only nearly (in 1 of
  // 6 runs 87 of the newest 256 pages were found stored, and the staged ones elsewhere).
  const swap = await open({
    residentLimit: limitPages * PAGE,
    pin: false,
    ...(scenario === 'staged' ? { faults: 'dispatcher' as const } : {}),
  });
  const region = swap.region(pages * PAGE);
  const words = new Uint32Array(region.buffer);
  const versions = new Int32Array(pages);
  const result: Record<string, unknown> = { scenario, how, limitPages, pages };

  if (scenario === 'evict') {
    writePages(words, 0, pages, 1, versions);
    const end = await makeChild();
    // Faults served natively reach stats() when the dispatcher takes their records (within
    // milliseconds on a quiet host; a loaded one can starve it): wait for them, bounded.
    for (let i = 0; i < 400 && swap.stats().residentPages < pages; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    result.before = figures(swap, region);
    result.evicted = await region.evict();
    result.after = figures(swap, region);
    result.childExit = await end();
  } else if (scenario === 'pressure') {
    // Up to residentLimit less the native fault path's reclaim headroom (at most 64 pages,
    // where background eviction starts with faults: 'thread'): no eviction yet.
    const filled = limitPages - 64;
    result.filled = filled;
    writePages(words, 0, filled, 1, versions);
    const end = await makeChild();
    result.before = figures(swap, region);
    writePages(words, filled, pages, 1, versions); // every page needs an eviction of a shared one
    await settle(swap, limitPages);
    result.afterGrow = figures(swap, region);
    writePages(words, 0, pages, 2, versions);
    await settle(swap, limitPages);
    result.after = figures(swap, region);
    result.childExit = await end();
  } else if (scenario === 'staged') {
    writePages(words, 0, pages, 1, versions);
    await settle(swap, limitPages);
    result.before = figures(swap, region);
    const end = await makeChild();
    // The staged pages are the oldest resident ones (FIFO by load order): from `first` on,
    // the first `staged` of them. Touch them first: a write moves a page back, a read of a
    // dirty one too (a clean one would be copied). Then every other page of the region.
    const first = pages - (result.before as Record<string, number>).resident;
    let sum = 0;
    for (let p = first; p < pages; p++) {
      if ((p - first) % 2 === 0) writePages(words, p, p + 1, 2, versions);
      else sum += words[p * (PAGE / 4) + 7];
    }
    for (let p = 0; p < first; p += 2) writePages(words, p, p + 1, 2, versions);
    result.readSum = sum;
    result.childExit = await end();
    await settle(swap, limitPages);
    result.after = figures(swap, region);
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  result.wrong = wrongPages(words, pages, versions).slice(0, 8);
  result.final = figures(swap, region);
  await region.close();
  await swap.close();
  say(`RESULT ${JSON.stringify(result)}`);
}

main().catch((e) => {
  say(`child failed: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
