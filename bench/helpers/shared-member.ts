/**
 * A member of a shared pool, for test/shared-pool.test.ts and bench/shared-pool.ts (here, not in test/, since bench/ ships in the package):
 * `node shared-member.js MODE` with its settings in TMEM_SHARED_CFG (JSON, inherited by
 * node:cluster workers).
 *
 *   cluster     the primary: forks cfg.workers node:cluster workers (mode read), waits until
 *               every one has read the file, has each report its stats, then prints one line
 *               of JSON { workers: [...] } and exits 0 (1 if a worker failed)
 *   read        map cfg.file read-only through a swap (shared: cfg.shared, or private when
 *               absent), read every page cfg.passes times in a random order, check every byte;
 *               with cfg.privatePages, an anonymous region written first and checked after
 *               each pass; prints (or sends to the primary) its stats, fault latency and an
 *               audit of the shared pool's index once every member has read the file (with
 *               cfg.waitStdin: prints "read", then waits for a line on stdin)
 *   leave       open a shared swap, read cfg.file until it has put pages in the pool, print
 *               "ready", and at a line on stdin end without swap.close(): process.exit(0)
 *               (cfg.how 'exit') or an uncaught exception (cfg.how 'throw')
 *   hold-lock   join the pool natively, take its lock and keep it ("locked" on stdout)
 *   die-put     join the pool natively and die (SIGKILL) at stage cfg.stage of a put
 *   scribble    join the pool natively and write random bytes over it for cfg.ms ms
 */
import cluster from 'node:cluster';
import * as fs from 'node:fs';
import { open, type SwapStats } from '../../lib';
import { native } from '../../lib/native';
import { PAGE, badByte, filePage } from './shared-file';

interface Cfg {
  file: string;
  pages: number;
  workers?: number;
  passes?: number;
  shared?: { name: string; size: string | number };
  residentLimit?: string;
  poolLimit?: string;
  memoryLimit?: string;
  privatePages?: number;
  stage?: number;
  ms?: number;
  seed?: number;
  how?: 'exit' | 'throw';
  waitStdin?: boolean;
}

export interface MemberResult {
  pid: number;
  wrongPages: number;
  wrongPrivate: number;
  readMs: number;
  /** Per-fault latency of the last pass, microseconds (p50, p99). */
  p50us: number;
  p99us: number;
  stats: SwapStats;
  /** The shared pool's index scanned (native audit()) once every member had read the file. */
  audit?: { entries: number; bytes: number; duplicates: number };
}

/**
 * A scan of the shared pool's index: what stats() does not do (its figures are counters).
 * Undefined when the segment refuses a new attachment: a member that scribbled over its
 * header (the scribble test) leaves it refusing newcomers, while the members attached
 * before go on.
 */
function audit(name: string): MemberResult['audit'] {
  let store: InstanceType<typeof native.SharedStore>;
  try {
    store = new native.SharedStore(name, 2 ** 20, false, false);
  } catch {
    return undefined;
  }
  try {
    return store.audit();
  } finally {
    store.close();
  }
}

const cfg = JSON.parse(process.env.TMEM_SHARED_CFG ?? '{}') as Cfg;
const mode = process.argv[2];

function xorshift(seed: number): () => number {
  let x = seed | 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function permutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rnd = xorshift(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rnd() % (i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

function privateByte(page: number, i: number): number {
  return (page * 31 + i * 7 + 11) & 0xff;
}

async function read(barrier: () => Promise<void>, report: (r: MemberResult) => Promise<void>): Promise<void> {
  const swap = await open({
    // With memoryLimit the budget splits it (residentLimit and poolLimit would only cap it).
    ...(cfg.memoryLimit
      ? { memoryLimit: cfg.memoryLimit }
      : { residentLimit: cfg.residentLimit ?? '4MiB', poolLimit: cfg.poolLimit ?? '512MiB' }),
    ...(cfg.shared ? { shared: cfg.shared } : {}),
  });
  const fr = swap.mapFile(cfg.file, { writable: false });
  const mem = new Uint8Array(fr.buffer);
  const priv = cfg.privatePages ? new Uint8Array(swap.region(cfg.privatePages * PAGE).buffer) : undefined;
  if (priv)
    for (let p = 0; p < cfg.privatePages!; p++) for (let i = 0; i < PAGE; i++) priv[p * PAGE + i] = privateByte(p, i);
  const scratch = new Uint8Array(PAGE);
  let wrongPages = 0;
  let wrongPrivate = 0;
  const lat = new Float64Array(cfg.pages);
  const t0 = performance.now();
  for (let pass = 0; pass < (cfg.passes ?? 1); pass++) {
    const order = permutation(cfg.pages, (cfg.seed ?? process.pid) * 7 + pass);
    for (let k = 0; k < order.length; k++) {
      const p = order[k];
      const t = performance.now();
      const first = mem[p * PAGE]; // the fault
      lat[k] = performance.now() - t;
      if (first === undefined || badByte(mem, p * PAGE, p, scratch) >= 0) wrongPages++;
    }
    if (priv)
      for (let p = 0; p < cfg.privatePages!; p++)
        for (let i = 0; i < PAGE; i += 509) if (priv[p * PAGE + i] !== privateByte(p, i)) wrongPrivate++;
  }
  const readMs = performance.now() - t0;
  const sorted = Array.from(lat).sort((a, b) => a - b);
  const r: MemberResult = {
    pid: process.pid,
    wrongPages,
    wrongPrivate,
    readMs,
    p50us: sorted[Math.floor(sorted.length / 2)] * 1000,
    p99us: sorted[Math.floor(sorted.length * 0.99)] * 1000,
    stats: swap.stats(),
  };
  await barrier(); // every member has read the file: the group's figures are final
  r.stats = swap.stats();
  if (cfg.shared) r.audit = audit(cfg.shared.name);
  await report(r);
  await swap.close();
}

async function main(): Promise<void> {
  if (mode === 'cluster' && cluster.isPrimary) {
    const n = cfg.workers ?? 4;
    const results: MemberResult[] = [];
    let done = 0;
    let failed = false;
    const ws = Array.from({ length: n }, () => cluster.fork({ TMEM_SHARED_CFG: JSON.stringify(cfg) }));
    for (const w of ws) {
      w.on('message', (m: { done?: boolean; result?: MemberResult }) => {
        if (m.done && ++done === n) for (const x of ws) x.send({ report: true });
        if (m.result) {
          results.push(m.result);
          if (results.length === n) for (const x of ws) x.send({ exit: true });
        }
      });
      w.on('exit', (code) => {
        if (code !== 0) failed = true;
      });
    }
    await new Promise<void>((resolve) =>
      cluster.on('exit', () => Object.keys(cluster.workers ?? {}).length === 0 && resolve()),
    );
    process.stdout.write(JSON.stringify({ workers: results }) + '\n');
    process.exitCode = failed || results.length !== n ? 1 : 0;
    return;
  }
  if (mode === 'cluster' || mode === 'read') {
    const inCluster = mode === 'cluster';
    const message = (): Promise<void> => new Promise<void>((resolve) => process.once('message', () => resolve()));
    await read(
      async () => {
        if (!inCluster) {
          if (!cfg.waitStdin) return;
          process.stdout.write('read\n'); // and the final stats wait for a line on stdin
          await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
          process.stdin.destroy();
          return;
        }
        process.send!({ done: true });
        await message();
      },
      async (r) => {
        if (!inCluster) {
          process.stdout.write(JSON.stringify(r) + '\n');
          return;
        }
        process.send!({ result: r });
        await message();
      },
    );
    if (inCluster) process.disconnect(); // the IPC channel would keep the worker alive
    return;
  }
  if (mode === 'leave') {
    const swap = await open({ residentLimit: cfg.residentLimit ?? '2MiB', shared: cfg.shared });
    const mem = new Uint8Array(swap.mapFile(cfg.file, { writable: false }).buffer);
    const end = performance.now() + 60_000;
    let sum = 0;
    while ((swap.stats().shared?.member.puts ?? 0) === 0 && performance.now() < end) {
      for (let p = 0; p < cfg.pages; p++) sum += mem[p * PAGE];
      await new Promise((r) => setTimeout(r, 20));
    }
    process.stdout.write(`ready ${JSON.stringify({ puts: swap.stats().shared?.member.puts ?? 0, sum })}\n`);
    process.stdin.setEncoding('utf8').once('data', () => {
      if (cfg.how === 'throw') throw new Error('a member that ends by an uncaught exception');
      process.exit(0);
    });
    return; // swap is never closed
  }
  const store = new native.SharedStore(cfg.shared!.name, 64 * 2 ** 20, true);
  const page = new Uint8Array(PAGE);
  filePage(page, 0, 1);
  if (mode === 'hold-lock') {
    if (!store.lockForTest()) throw new Error('could not take the lock');
    process.stdout.write('locked\n');
    setInterval(() => undefined, 1000);
  } else if (mode === 'die-put') {
    store.putAndDieForTest(0x1234, 0x5678, 7, page, cfg.stage ?? 1);
    throw new Error('still alive after putAndDieForTest');
  } else if (mode === 'scribble') {
    const end = performance.now() + (cfg.ms ?? 1000);
    let seed = cfg.seed ?? 1;
    while (performance.now() < end) store.scribbleForTest(seed++, 2000);
    process.stdout.write('scribbled\n');
    store.close();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

main().catch((e: unknown) => {
  fs.writeSync(2, `shared-member: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
