/**
 * Child of the cache's memory cgroup test (test/cache.test.ts): fills a store with records
 * (test/helpers/cache-records.ts) until their serialized bytes reach `bytes`, then reads every
 * one back and compares it (deep equality, via the same serialization), and prints one JSON
 * line with the figures. `mode` 'map' keeps them in a plain Map (expected to be OOM-killed in
 * a cgroup smaller than the data); 'cache' in swap.cache() with the open() options given as
 * JSON (expected to survive).
 */
import * as v8 from 'node:v8';
import { isDeepStrictEqual } from 'node:util';
import { open, type OpenOptions } from '../../lib';
import { record } from './cache-records';

async function main(): Promise<void> {
  const [mode, bytesArg, optionsJson] = process.argv.slice(2);
  const target = Number(bytesArg);
  const started = Date.now();
  let n = 0,
    bytes = 0;
  if (mode === 'map') {
    const m = new Map<string, unknown>();
    while (bytes < target) {
      const r = record(n);
      bytes += v8.serialize(r).length;
      m.set(`r${n++}`, r);
    }
    process.stdout.write(JSON.stringify({ survived: true, entries: m.size, bytes }) + '\n');
    return;
  }
  const swap = await open(JSON.parse(optionsJson || '{}') as OpenOptions);
  const cache = swap.cache<ReturnType<typeof record>>();
  while (bytes < target) {
    const r = record(n);
    cache.set(`r${n++}`, r);
    bytes = cache.stats().bytes;
  }
  const filled = Date.now();
  let bad = 0;
  for (let i = 0; i < n; i++) if (!isDeepStrictEqual(cache.get(`r${i}`), record(i))) bad++;
  const s = swap.stats();
  const c = cache.stats();
  process.stdout.write(
    JSON.stringify({
      survived: true,
      entries: cache.size,
      bytes: c.bytes,
      bad,
      regionBytes: c.regionBytes,
      indexBytes: c.indexBytes,
      fillMs: filled - started,
      readMs: Date.now() - filled,
      poolBytes: s.poolBytes,
      residentBytes: s.residentBytes,
      swapFilePages: s.swapFile?.pages ?? 0,
      budget: s.budget,
      rss: process.memoryUsage().rss,
    }) + '\n',
  );
  await cache.close();
  await swap.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
