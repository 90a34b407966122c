/**
 * Clean-up of dead swaps' keys: every page key under the prefix whose swap has
 * no lease any more (the process died without closing, or lost its server for
 * longer than its lease) is deleted. Run on every open() with `remote` (in the
 * background) and by `tmem remote gc <url>`. A swap's own keys go at its close
 * (deleteSwapKeys).
 */
import { allPagesPattern, leaseKey, swapIdOf, swapPagesPattern } from './keys';
import { masters, type RedisClient } from './client';

async function scanKeys(c: RedisClient, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of masters(c)) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const k of batch) keys.push(k);
    } while (cursor !== '0');
  }
  return keys;
}

async function unlinkAll(c: RedisClient, keys: string[]): Promise<void> {
  // One UNLINK per key: in a cluster the keys of one swap span many slots (ioredis routes each).
  for (let i = 0; i < keys.length; i += 256) await Promise.all(keys.slice(i, i + 256).map((k) => c.unlink(k)));
}

export interface GcResult {
  /** Dead swaps whose keys were deleted. */
  swaps: number;
  keys: number;
  /** Swaps with a live lease, left alone. */
  live: number;
}

/** Deletes the page keys of every swap under `prefix` whose lease is gone (`except`: a swap id to skip). */
export async function collectGarbage(c: RedisClient, prefix: string, except?: string): Promise<GcResult> {
  const bySwap = new Map<string, string[]>();
  for (const k of await scanKeys(c, allPagesPattern(prefix))) {
    const id = swapIdOf(prefix, k);
    if (id === undefined || id === except) continue;
    let l = bySwap.get(id);
    if (!l) bySwap.set(id, (l = []));
    l.push(k);
  }
  const res: GcResult = { swaps: 0, keys: 0, live: 0 };
  for (const [id, keys] of bySwap) {
    if ((await c.exists(leaseKey(prefix, id))) > 0) {
      res.live++;
      continue;
    }
    await unlinkAll(c, keys);
    res.swaps++;
    res.keys += keys.length;
  }
  return res;
}

/** Deletes one swap's page keys and its lease (swap.close()). */
export async function deleteSwapKeys(c: RedisClient, prefix: string, swapId: string): Promise<number> {
  const keys = await scanKeys(c, swapPagesPattern(prefix, swapId));
  await unlinkAll(c, keys);
  await c.unlink(leaseKey(prefix, swapId));
  return keys.length;
}
