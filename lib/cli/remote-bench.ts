/**
 * `tmem bench --scenario remote`: the remote tier against a real redis-server started
 * here on a loopback port (Debian's redis-server; skipped with a note without it).
 * In one run, on pages of the same kind:
 *
 *   remote fault   a touch of a page the pool wrote back (REMOTE: served from Redis)
 *   bare GET       the same size of value read with the native blocking client alone,
 *                  one round trip at a time, on the same server (the floor: target p50 <= 1.3x)
 *   paced GET      the same GET with PACED_GAP_US of busy work on this thread before each
 *                  one: the server's CPU goes idle between requests as it does between
 *                  faults (each fault also evicts, compresses, installs). Measured on this
 *                  VM kind: a GET after >= 200 us of idle costs about 3x a back-to-back one
 *                  when client and server run on different CPUs, and nothing more on one CPU:
 *                  the cost of waking the server's idle vCPU.
 *   pool fault     a touch of a page in the pool (no remote, no swap file)
 *   swap file      a touch of a page in the swap file (no remote)
 *   write-back     pages sent to Redis per second during the write-back, against the
 *                  pool's eviction rate (region.evict() pages/s into a pool that has room)
 *   clean fault    a touch of a mapped file's clean page that went remote (no swap file),
 *                  beside the same touch read from the file (page cache warm, no remote)
 *   repatriation   pages per second brought back into the pool once it has room
 *
 * `--remote URL`: an existing server instead of one started here (another host: the
 * network, not a vCPU wake-up, is then the floor); its keys are this run's own (a swap id
 * each, deleted at close) and `tmem-bench:v`, deleted at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { open, type Swap } from '../swap';
import { native } from '../native';
import { RespEncoder } from '../remote/resp';
import { parseRedisUrl, type RemoteNode } from '../remote/options';
import type { Progress } from './progress';
import { settle, touchHere, touchOrder } from './measure';

const PAGE = 4096;
/** Busy work before each paced GET, in microseconds (about one remote fault's own work and more). */
export const PACED_GAP_US = 200;

export interface RemoteBenchResult {
  remoteNs: Float64Array;
  getNs: Float64Array;
  /** The same GET with PACED_GAP_US of work on this thread before each one (the server's CPU idles in between, as between faults). */
  pacedGetNs: Float64Array;
  pacedGapUs: number;
  poolNs: Float64Array;
  swapNs: Float64Array;
  /** Of the remote touches: faults served from Redis, and from the swap file (misses, back-off). */
  remoteFaults: number;
  swapFallbacks: number;
  valueBytes: number;
  writebackPagesPerSec: number;
  evictPagesPerSec: number;
  /** Faults of a mapped file's clean pages served from Redis, and the same pages read from the file. */
  cleanNs: Float64Array;
  fileNs: Float64Array;
  cleanHits: number;
  repatriatedPagesPerSec: number;
  /** Where the server was: 'started here on 127.0.0.1:port', or the URL's host:port. */
  server: string;
  badPages: number;
}

function fillPage(b: Uint8Array, p: number): void {
  const w = new Uint32Array(b.buffer, b.byteOffset, PAGE / 4);
  let x = Math.imul(p + 1, 2654435761) >>> 0 || 1;
  for (let i = 0; i < 96; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    w[i] = x;
  }
  for (let i = 96; i < PAGE / 4; i++) w[i] = w[i % 96];
}

function badPages(u8: Uint8Array, pages: number): number {
  const exp = new Uint8Array(PAGE);
  let bad = 0;
  for (let p = 0; p < pages; p++) {
    fillPage(exp, p);
    if (Buffer.compare(Buffer.from(u8.buffer, u8.byteOffset + p * PAGE, PAGE), Buffer.from(exp.buffer)) !== 0) bad++;
  }
  return bad;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts redis-server on a free loopback port, or returns why it cannot. */
async function startServer(): Promise<{ proc: ChildProcess; port: number } | string> {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const failed = await new Promise<string | undefined>((resolve) => {
    proc.once('error', (e) => resolve(`redis-server could not be started (${e.message}): install redis-server`));
    const end = Date.now() + 20000;
    const poll = (): void => {
      const c = new native.RemoteConn('127.0.0.1', port);
      if (c.connect(200) === 0) {
        c.close();
        resolve(undefined);
      } else if (Date.now() > end || proc.exitCode !== null) resolve('redis-server did not start');
      else setTimeout(poll, 50);
    };
    setTimeout(poll, 50);
  });
  if (failed) {
    proc.kill('SIGKILL');
    return failed;
  }
  return { proc, port };
}

async function waitQuiet(
  swap: Swap,
  what = (s: NonNullable<ReturnType<Swap['stats']>['remote']>) => s.puts + s.refused + s.errors,
): Promise<number> {
  // Write-back runs while the pool is over its threshold: wait until the puts stop.
  let last = -1;
  const t0 = performance.now();
  let lastChange = t0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    const n = what(swap.stats().remote!);
    if (n !== last) {
      last = n;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > 300 || performance.now() - t0 > 60000) return lastChange;
  }
}

/** Runs the remote scenario; a string says why it was skipped. */
export async function remoteBench(
  o: { pages: number; seed: number; dir: string; url?: string | null },
  progress: Progress,
): Promise<RemoteBenchResult | string> {
  let srv: { proc?: ChildProcess; node: RemoteNode; url: string };
  if (o.url) {
    srv = { node: parseRedisUrl(o.url, '--remote'), url: o.url };
  } else {
    const started = await startServer();
    if (typeof started === 'string') return started;
    const url = `redis://127.0.0.1:${started.port}`;
    srv = { proc: started.proc, node: { host: '127.0.0.1', port: started.port }, url };
  }
  const where = o.url ? `${srv.node.host}:${srv.node.port}` : `started here on 127.0.0.1:${srv.node.port}`;
  const pages = Math.max(1024, Math.min(o.pages, 16384));
  const dir = fs.mkdtempSync(path.join(o.dir || os.tmpdir(), 'tmem-remote-bench-'));
  const order = touchOrder('random', pages, o.seed);
  const mkRegion = (swap: Swap): { u8: Uint8Array; evict: () => Promise<number> } => {
    const region = swap.region(pages * PAGE);
    const u8 = new Uint8Array(region.buffer);
    for (let p = 0; p < pages; p++) fillPage(u8.subarray(p * PAGE, (p + 1) * PAGE), p);
    return { u8, evict: () => region.evict() };
  };
  let bad = 0;
  try {
    // 1. The floor: a bare GET of a value of the size tmem sends, one round trip at a time.
    progress.start('remote: bare native GET round trips', 0);
    const conn = new native.RemoteConn(srv.node.host, srv.node.port);
    if (conn.connect(5000) !== 0) throw new Error(`could not connect to the redis-server (${where})`);
    const enc = new RespEncoder();
    const out = new Uint8Array(1 << 16);
    const info = new Int32Array(3 * 2);
    if (srv.node.password !== undefined) {
      enc.command(srv.node.user ? ['AUTH', srv.node.user, srv.node.password] : ['AUTH', srv.node.password]);
      conn.exchange(enc.buf, enc.length, 1, 5000, out, info);
      enc.reset();
    }
    // About the compressed size of these pages (measured below; the GET uses the same size).
    const valueBytes = 4 + 700;
    enc.command(['SET', 'tmem-bench:v', new Uint8Array(valueBytes)]);
    conn.exchange(enc.buf, enc.length, 1, 5000, out, info);
    enc.reset();
    enc.command(['GET', 'tmem-bench:v']);
    const getNs = new Float64Array(pages);
    for (let i = 0; i < pages; i++) {
      const t0 = process.hrtime.bigint();
      const n = conn.exchange(enc.buf, enc.length, 1, 5000, out, info);
      getNs[i] = Number(process.hrtime.bigint() - t0);
      if (n !== 1) throw new Error(`GET failed (${n})`);
    }
    const pacedGetNs = new Float64Array(pages);
    for (let i = 0; i < pages; i++) {
      const s = performance.now();
      while (performance.now() - s < PACED_GAP_US / 1000); // busy: the client's CPU stays awake
      const t0 = process.hrtime.bigint();
      const n = conn.exchange(enc.buf, enc.length, 1, 5000, out, info);
      pacedGetNs[i] = Number(process.hrtime.bigint() - t0);
      if (n !== 1) throw new Error(`GET failed (${n})`);
    }
    enc.reset();
    enc.command(['DEL', 'tmem-bench:v']);
    conn.exchange(enc.buf, enc.length, 1, 5000, out, info);
    conn.close();
    progress.end('done');

    // 2. Pool faults, and the pool's eviction rate (a pool with room).
    progress.start('remote: pool faults and eviction rate', pages);
    let swap = await open({ residentLimit: '64MiB', poolLimit: '256MiB' });
    let reg = mkRegion(swap);
    let u8 = reg.u8;
    let t0 = performance.now();
    const n0 = await reg.evict();
    const evictPagesPerSec = Math.round(n0 / ((performance.now() - t0) / 1000));
    await settle();
    const poolNs = touchHere(u8, order, progress);
    bad += badPages(u8, pages);
    await swap.close();
    progress.end(`${evictPagesPerSec} pages/s`);

    // 3. Swap file faults (no remote).
    progress.start('remote: swap file faults', pages);
    swap = await open({
      residentLimit: '1MiB',
      poolLimit: '256KiB',
      swapFile: { path: dir, size: `${(pages * 2 * PAGE) / 2 ** 20}MiB` },
    });
    reg = mkRegion(swap);
    u8 = reg.u8;
    await reg.evict();
    await new Promise((r) => setTimeout(r, 500));
    const swapNs = touchHere(u8, order, progress);
    bad += badPages(u8, pages);
    await swap.close();
    progress.end('done');

    // 4. Remote faults and the write-back rate.
    progress.start('remote: write-back and remote faults', pages);
    swap = await open({
      residentLimit: '1MiB',
      poolLimit: '256KiB',
      swapFile: { path: dir, size: `${(pages * 2 * PAGE) / 2 ** 20}MiB` },
      remote: { url: srv.url, timeout: 1000, repatriate: false }, // every touch a remote fault
    });
    reg = mkRegion(swap);
    u8 = reg.u8;
    t0 = performance.now();
    await reg.evict();
    const tEnd = await waitQuiet(swap);
    const puts = swap.stats().remote!.puts;
    const writebackPagesPerSec = Math.round(puts / ((tEnd - t0) / 1000));
    const f0 = swap.stats().faults;
    const remoteNs = touchHere(u8, order, progress);
    await settle();
    const f1 = swap.stats().faults;
    bad += badPages(u8, pages);
    await swap.close();
    progress.end(`${writebackPagesPerSec} pages/s sent`);

    // 5. A mapped file's clean pages: from Redis (no swap file), and from the file itself.
    progress.start('remote: clean pages of a mapped file', pages);
    const file = path.join(dir, 'clean.bin');
    {
      const b = new Uint8Array(pages * PAGE);
      for (let p = 0; p < pages; p++) fillPage(b.subarray(p * PAGE, (p + 1) * PAGE), p);
      fs.writeFileSync(file, b);
    }
    const cleanRun = async (remote: boolean): Promise<{ ns: Float64Array; hits: number }> => {
      const sw = await open({
        residentLimit: '1MiB',
        poolLimit: '256KiB',
        ...(remote ? { remote: { url: srv.url, timeout: 1000 } } : {}),
      });
      const fr = sw.mapFile(file);
      const v = new Uint8Array(fr.buffer);
      let sum = 0;
      for (let p = 0; p < pages; p++) sum += v[p * PAGE];
      if (sum < 0) throw new Error('unreachable');
      await fr.evict();
      if (remote) await waitQuiet(sw, (s) => s.cleanPuts + s.refused + s.errors);
      const ns = touchHere(v, order, progress);
      const hits = sw.stats().remote?.cleanHits ?? 0;
      bad += badPages(v, pages);
      await sw.close();
      return { ns, hits };
    };
    const clean = await cleanRun(true);
    const fromFile = await cleanRun(false);
    progress.end(`${clean.hits} from Redis`);

    // 6. Repatriation: the pool writes back at 256 KiB, then has room for every page again.
    progress.start('remote: repatriation', pages);
    swap = await open({
      residentLimit: '1MiB',
      poolLimit: '64MiB', // the arena's size; held at 256 KiB while the pool writes back
      swapFile: { path: dir, size: `${(pages * 2 * PAGE) / 2 ** 20}MiB` },
      remote: { url: srv.url, timeout: 1000 },
    });
    await swap.setLimits({ poolLimit: '256KiB' });
    reg = mkRegion(swap);
    await reg.evict();
    await waitQuiet(swap);
    const remotePages = swap.stats().remote!.pages;
    const back0 = swap.stats().remote!.repatriated;
    // Pages come back while the pool is under its accept threshold (of 64 MiB now).
    t0 = performance.now();
    await swap.setLimits({ poolLimit: '64MiB' });
    const tBack = await waitQuiet(swap, (s) => s.repatriated + s.errors);
    const repatriated = swap.stats().remote!.repatriated - back0;
    const repatriatedPagesPerSec = Math.round(repatriated / Math.max(1e-3, (tBack - t0) / 1000));
    bad += badPages(reg.u8, pages);
    await swap.close();
    progress.end(`${repatriated} of ${remotePages} pages back, ${repatriatedPagesPerSec} pages/s`);
    return {
      remoteNs,
      getNs,
      pacedGetNs,
      pacedGapUs: PACED_GAP_US,
      poolNs,
      swapNs,
      remoteFaults: f1.remote - f0.remote,
      swapFallbacks: f1.swapFile - f0.swapFile,
      valueBytes,
      writebackPagesPerSec,
      evictPagesPerSec,
      cleanNs: clean.ns,
      fileNs: fromFile.ns,
      cleanHits: clean.hits,
      repatriatedPagesPerSec,
      server: where,
      badPages: bad,
    };
  } finally {
    srv.proc?.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
