/**
 * Child processes (issue 9, item 1). After any fork (child_process.spawn,
 * exec, spawnSync, fork, cluster.fork: fork then exec) the pages resident at
 * that moment are shared copy-on-write until written, and UFFDIO_MOVE refuses
 * them with EBUSY. Eviction must still take them, with work that does not grow
 * with the resident set at every fault, and lose no byte; staged pages at the
 * fork must come back; the child itself must run normally.
 *
 * Each scenario runs in its own process (helpers/fork-child.ts), killed after a
 * generous bound: before the fix, the pressure scenario is a fault rescanning
 * every resident page at each fault (a hang in practice), and the staged one a
 * dispatcher that dies. The assertions are on counts (pages evicted, resident,
 * made exclusive, set aside), never on time.
 */
import test, { type ExecutionContext } from 'ava';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { open } from '../lib';
import { runNodeChild, withTimeout } from './helpers/harness';

const PAGE = 4096;

const CHILD = path.join(__dirname, 'helpers', 'fork-child.js');
// Under ava's 60 s timeout, so that a hung child is killed by the test, never left behind.
const HANG_GUARD_MS = 45000;

interface Figures {
  resident: number;
  staged: number;
  evictions: number;
  unshared: number;
  unevictable: number;
  stored: number;
  secondChance: number;
  regionResident: number;
}
interface Result {
  scenario: string;
  how: string;
  limitPages: number;
  pages: number;
  /** pressure: pages written before the child (residentLimit less the reclaim headroom). */
  filled?: number;
  evicted?: number;
  childExit: number | null;
  wrong: number[];
  before: Figures;
  afterGrow?: Figures;
  after: Figures;
  final: Figures;
}

async function run(t: ExecutionContext, scenario: string, how: string): Promise<Result> {
  const r = await runNodeChild(CHILD, [scenario, how], HANG_GUARD_MS);
  const line = r.stderr.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.code !== 0 || !line) {
    t.fail(
      `${scenario}/${how}: the child ended with code ${String(r.code)} signal ${String(r.signal)}\n${r.stderr.slice(-3000)}`,
    );
    throw new Error('no result');
  }
  const res = JSON.parse(line.slice(7)) as Result;
  t.log(JSON.stringify(res));
  return res;
}

for (const how of ['execSync', 'spawnSync', 'spawn', 'fork', 'cluster']) {
  test.serial(
    `after a child process (${how}), evict() takes every resident page and every byte reads back`,
    async (t) => {
      const r = await run(t, 'evict', how);
      t.is(r.before.resident, r.pages, 'every page was resident when the child was made');
      t.is(r.evicted, r.pages, 'evict() evicted every page');
      t.is(r.after.regionResident, 0, 'none left resident');
      t.true(r.after.unshared >= r.pages, `the pages shared since the fork were made exclusive: ${r.after.unshared}`);
      t.is(r.after.unevictable, 0, 'nothing set aside');
      t.deepEqual(r.wrong, [], 'every byte of every page reads back');
      t.is(r.childExit, 0, 'the child ran normally');
    },
  );
}

for (const how of ['execSync', 'fork']) {
  test.serial(
    `after a child process (${how}), background eviction keeps resident pages at residentLimit (no rescans)`,
    async (t) => {
      const r = await run(t, 'pressure', how);
      const grown = r.pages - r.limitPages; // pages written past residentLimit (of r.pages - r.filled new ones)
      t.is(r.before.evictions, 0, 'nothing was evicted before the child');
      // Every page written after the fork needed an eviction, and the only candidates
      // at first were pages resident (and shared) at the fork.
      t.true(r.afterGrow!.evictions >= grown, `${r.afterGrow!.evictions} evictions for ${grown} new pages`);
      t.true(
        r.afterGrow!.resident <= r.limitPages,
        `resident ${r.afterGrow!.resident} <= residentLimit ${r.limitPages}`,
      );
      t.true(r.afterGrow!.unshared > 0, 'pages shared since the fork were evicted');
      t.is(r.after.unevictable, 0, 'no page was set aside: every shared page could go');
      t.true(r.after.resident <= r.limitPages, `after rewriting everything: resident ${r.after.resident}`);
      t.deepEqual(r.wrong, [], 'every byte of every page reads back');
      t.is(r.childExit, 0);
    },
  );
}

test.serial('pages in the staging area at a fork come back by reads and writes, every byte intact', async (t) => {
  const r = await run(t, 'staged', 'execSync');
  t.true(r.before.staged > 0, `pages were staged at the fork: ${r.before.staged}`);
  t.true(r.after.secondChance >= r.before.staged / 2, `staged pages were touched again: ${r.after.secondChance}`);
  t.deepEqual(r.wrong, [], 'every byte of every page reads back');
});

test.serial('a child made while the dispatcher evicts runs normally and inherits no tmem descriptor', async (t) => {
  const swap = await open({ residentLimit: '1MiB', pin: false });
  t.teardown(() => swap.close());
  const region = swap.region('8MiB');
  const words = new Uint32Array(region.buffer);
  for (let i = 0; i < words.length; i += 1024) words.fill(i + 1, i, i + 1024);
  // The exec'd child lists its descriptors: no userfaultfd, no eventfd, no swap file.
  const fds = cp.execSync('ls -l /proc/self/fd', { encoding: 'utf8' });
  t.false(/userfaultfd|eventfd/.test(fds), fds);
  const r = cp.spawnSync(process.execPath, ['-e', 'process.stdout.write(String(6 * 7))'], { encoding: 'utf8' });
  t.is(r.status, 0);
  t.is(r.stdout, '42');
  let bad = 0;
  for (let i = 0; i < words.length; i += 1024) if (words[i] !== i + 1 || words[i + 1023] !== i + 1) bad++;
  t.is(bad, 0, "the parent's pages are intact");
  await region.close();
});

test.serial(
  'direct I/O into region pages while they are evicted: a pinned page is never taken, no byte is lost',
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-odirect-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'data');
    const filePages = 64;
    const content = Buffer.alloc(filePages * PAGE);
    for (let k = 0; k < filePages; k++)
      for (let i = 0; i < PAGE; i += 4) content.writeUInt32LE((k * 0x9e3779b1 + i) >>> 0, k * PAGE + i);
    fs.writeFileSync(file, content);
    try {
      fs.closeSync(fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
    } catch (e) {
      t.log(`no O_DIRECT on ${os.tmpdir()} (${(e as Error).message}), skipping`);
      t.pass();
      return;
    }
    const swap = await open({ residentLimit: '64MiB', pin: false });
    t.teardown(() => swap.close());
    const pages = 16;
    const region = swap.region(pages * PAGE);
    const last = new Int32Array(new SharedArrayBuffer(4 * pages));
    const worker = new Worker(path.join(__dirname, 'helpers', 'direct-io-worker.js'), {
      workerData: { shared: region.share(), file, pages, filePages, rounds: 150, last: last.buffer },
    });
    const done = new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    let finished = false;
    void done.finally(() => {
      finished = true;
    });
    let evictions = 0,
      setAside = 0;
    while (!finished) {
      evictions += await withTimeout(region.evict(), 20000, 'evict()');
      setAside = Math.max(setAside, swap.stats().unevictablePages);
    }
    const reads = await withTimeout(done, 30000, 'the direct I/O worker');
    t.log(
      `${reads} O_DIRECT reads, ${evictions} pages evicted meanwhile, at most ${setAside} page(s) set aside as pinned at once`,
    );
    const bytes = new Uint8Array(region.buffer);
    const wrong: number[] = [];
    for (let p = 0; p < pages; p++) {
      const k = last[p];
      if (!Buffer.from(bytes.buffer, p * PAGE, PAGE).equals(content.subarray(k * PAGE, (k + 1) * PAGE))) wrong.push(p);
    }
    t.deepEqual(wrong, [], 'every page holds the file page read into it last');
    await worker.terminate();
  },
);
