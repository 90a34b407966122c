/**
 * A process that uses a swap with a remote tier, driven by its parent over IPC
 * (test/remote-tier.test.ts), so that a hang fails one test instead of wedging ava:
 *
 *   argv[2]  JSON { remote, pages, poolLimit, residentLimit, dir, writebackPoolLimit?,
 *            repatriation?, file?, noSwapFile? }
 *            (writebackPoolLimit: the pool is held at that limit while it writes back,
 *            then given poolLimit again before the read-back, so that it has room;
 *            repatriation: then wait until the remote pages stop coming back;
 *            file: the pages are a file in dir, mapped read-only, read once, evicted
 *            (clean pages); after 'go' it is rewritten first (seed 2) when `rewrite`;
 *            noSwapFile: open() without a swap file)
 *   -> 'evicted' { stats }   every page written (a pattern per page) and evicted
 *   <- 'go'                  (the parent has done its damage to the server meanwhile)
 *   -> 'done' { bad, stats } every page read back, every byte checked; then closed
 *   <- 'exit-without-close'  instead of 'go': ends the process with the swap open
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, type Swap } from '../../lib';

interface Args {
  remote: Record<string, unknown>;
  pages: number;
  poolLimit: string;
  residentLimit: string;
  dir: string;
  writebackPoolLimit?: string;
  repatriation?: boolean;
  file?: boolean;
  noSwapFile?: boolean;
}

const PAGE = 4096;

/** Page p's bytes: 256 pseudo-random bytes from (p, seed), repeated (compressible, unique per page). */
export function fillPage(b: Uint8Array, p: number, seed: number): void {
  const w = new Uint32Array(b.buffer, b.byteOffset, PAGE / 4);
  let x = (Math.imul(p + 1, 2654435761) ^ Math.imul(seed + 7, 40503)) >>> 0 || 1;
  for (let i = 0; i < 64; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    w[i] = x;
  }
  for (let i = 64; i < PAGE / 4; i++) w[i] = w[i & 63];
}

function send(m: unknown): Promise<void> {
  return new Promise((resolve) => process.send!(m, () => resolve()));
}

function next(): Promise<string> {
  return new Promise((resolve) => process.once('message', (m) => resolve(m as string)));
}

/** Waits until f(stats) stops changing (polled every 100 ms, at most 20 s). */
async function settle(swap: Swap, f: (s: ReturnType<Swap['stats']>) => number): Promise<void> {
  const end = Date.now() + 20000;
  let last = -1;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    const n = f(swap.stats());
    if (n === last) break;
    last = n;
  }
}

function writeFile(file: string, pages: number, seed: number): void {
  const b = new Uint8Array(pages * PAGE);
  for (let p = 0; p < pages; p++) fillPage(b.subarray(p * PAGE, (p + 1) * PAGE), p, seed);
  fs.writeFileSync(file, b);
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2]) as Args;
  const swap = await open({
    residentLimit: a.residentLimit,
    poolLimit: a.poolLimit,
    swapFile: a.noSwapFile
      ? undefined
      : { path: a.dir, size: `${Math.ceil((a.pages * 2 * PAGE) / 2 ** 20)}MiB`, encrypt: false },
    remote: a.remote,
  });
  const file = path.join(a.dir, 'pages.bin');
  let u8: Uint8Array;
  let region: { close(): Promise<void>; evict(): Promise<number> };
  if (a.file) {
    writeFile(file, a.pages, 1);
    const fr = swap.mapFile(file);
    region = fr;
    u8 = new Uint8Array(fr.buffer);
    let sum = 0;
    for (let p = 0; p < a.pages; p++) sum += u8[p * PAGE]; // each page read once: resident, clean
    if (sum < 0) throw new Error('unreachable');
  } else {
    const r = swap.region(a.pages * PAGE);
    region = r;
    u8 = new Uint8Array(r.buffer);
    for (let p = 0; p < a.pages; p++) fillPage(u8.subarray(p * PAGE, (p + 1) * PAGE), p, 1);
  }
  if (a.writebackPoolLimit) await swap.setLimits({ poolLimit: a.writebackPoolLimit });
  await region.evict();
  // Write-back runs while the pool is over its threshold: let it settle.
  await settle(swap, (s) => s.remote!.puts + s.remote!.refused + s.remote!.errors + s.remote!.cleanPuts);
  if (a.writebackPoolLimit) await swap.setLimits({ poolLimit: a.poolLimit });
  if (a.repatriation) await settle(swap, (s) => s.remote!.repatriated + s.remote!.errors);
  await send({ kind: 'evicted', stats: swap.stats() });
  const cmd = await next();
  if (cmd === 'exit-without-close') process.exit(0);
  const seed = cmd === 'rewrite' ? 2 : 1;
  if (cmd === 'rewrite') writeFile(file, a.pages, 2); // in place: same inode, new bytes and mtime
  const exp = new Uint8Array(PAGE);
  let bad = 0;
  for (let p = 0; p < a.pages; p++) {
    fillPage(exp, p, seed);
    const got = u8.subarray(p * PAGE, (p + 1) * PAGE);
    for (let i = 0; i < PAGE; i++) {
      if (got[i] !== exp[i]) {
        bad++;
        break;
      }
    }
  }
  const stats = swap.stats();
  await region.close();
  await swap.close();
  await send({ kind: 'done', bad, stats });
  process.exit(0);
}

if (require.main === module)
  main().catch((e: unknown) => {
    process.stderr.write(`remote-child: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
