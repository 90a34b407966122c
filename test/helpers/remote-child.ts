/**
 * A process that uses a swap with a remote tier, driven by its parent over IPC
 * (test/remote-tier.test.ts), so that a hang fails one test instead of wedging ava:
 *
 *   argv[2]  JSON { remote, pages, poolLimit, residentLimit, dir, writebackPoolLimit? }
 *            (writebackPoolLimit: the pool is held at that limit while it writes back,
 *            then given poolLimit again before the read-back, so that it has room)
 *   -> 'evicted' { stats }   every page written (a pattern per page) and evicted
 *   <- 'go'                  (the parent has done its damage to the server meanwhile)
 *   -> 'done' { bad, stats } every page read back, every byte checked; then closed
 *   <- 'exit-without-close'  instead of 'go': ends the process with the swap open
 */
import { open } from '../../lib';

interface Args {
  remote: Record<string, unknown>;
  pages: number;
  poolLimit: string;
  residentLimit: string;
  dir: string;
  writebackPoolLimit?: string;
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

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2]) as Args;
  const swap = await open({
    residentLimit: a.residentLimit,
    poolLimit: a.poolLimit,
    swapFile: { path: a.dir, size: `${Math.ceil((a.pages * 2 * PAGE) / 2 ** 20)}MiB`, encrypt: false },
    remote: a.remote,
  });
  const region = swap.region(a.pages * PAGE);
  const u8 = new Uint8Array(region.buffer);
  for (let p = 0; p < a.pages; p++) fillPage(u8.subarray(p * PAGE, (p + 1) * PAGE), p, 1);
  if (a.writebackPoolLimit) await swap.setLimits({ poolLimit: a.writebackPoolLimit });
  await region.evict();
  // Write-back runs while the pool is over its threshold: let it settle.
  const end = Date.now() + 20000;
  let last = -1;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    const s = swap.stats();
    const n = s.remote!.puts + s.remote!.refused + s.remote!.errors;
    if (n === last) break;
    last = n;
  }
  if (a.writebackPoolLimit) await swap.setLimits({ poolLimit: a.poolLimit });
  await send({ kind: 'evicted', stats: swap.stats() });
  const cmd = await next();
  if (cmd === 'exit-without-close') process.exit(0);
  const exp = new Uint8Array(PAGE);
  let bad = 0;
  for (let p = 0; p < a.pages; p++) {
    fillPage(exp, p, 1);
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

main().catch((e: unknown) => {
  process.stderr.write(`remote-child: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
