/**
 * tmem/prometheus: a swap's figures registered with prom-client, checked by
 * scraping the registry's text exposition after real faults, and the latency
 * histogram buckets in stats() they come from; the remote tier's figures with a
 * redis-server started here.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { open } from '../lib';
import { register } from '../lib/prometheus';
import { statsWhen, tempDir } from './helpers/harness';
import { haveRedis, startRedis } from './helpers/redis';

/** Parses Prometheus text: sample lines as { name, labels, value }. */
function parse(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

test('stats().latency has the histogram: ascending bounds, counts that add up to count', async (t) => {
  const swap = await open({ residentLimit: '1MiB', poolLimit: '64MiB' });
  t.teardown(() => swap.close());
  const region = swap.region('4MiB');
  const bytes = new Uint8Array(region.buffer);
  bytes.fill(7, 0, 2 ** 20);
  randomBytes(2 ** 20).copy(bytes, 2 ** 20);
  await region.evict();
  let sum = 0;
  for (let i = 0; i < 2 * 2 ** 20; i += 4096) sum += bytes[i];
  t.true(sum >= 0);
  const s = await statsWhen(swap, (x) => x.latency.count >= 512);
  const l = s.latency;
  t.is(l.counts.length, l.bounds.length + 1);
  for (let i = 1; i < l.bounds.length; i++) t.true(l.bounds[i] > l.bounds[i - 1]);
  t.is(
    l.counts.reduce((a, b) => a + b, 0),
    l.count,
  );
  t.true(l.count >= 512, `faults counted: ${l.count}`);
  // The percentiles are bucket bounds of the same histogram.
  t.true(l.bounds.includes(l.p50) || l.bounds.some((b) => Math.abs(Math.round(b * 100) / 100 - l.p50) < 1e-9));
  await region.close();
});

test('tmem/prometheus: gauges, counters by fault source and a histogram, scraped from the registry text', async (t) => {
  const swap = await open({ residentLimit: '1MiB', poolLimit: '64MiB' });
  t.teardown(() => swap.close());
  const registry = new Registry();
  const metrics = register(swap, { registry, labels: { swap: 'test' } });
  const region = swap.region('4MiB');
  const bytes = new Uint8Array(region.buffer);
  randomBytes(2 ** 20).copy(bytes, 0);
  bytes.fill(1, 2 ** 20, 2 * 2 ** 20);
  const want = Buffer.from(bytes.subarray(0, 2 * 2 ** 20));
  await region.evict();
  t.is(Buffer.compare(want, Buffer.from(bytes.subarray(0, 2 * 2 ** 20))), 0, 'every byte back');
  const s = await statsWhen(swap, (x) => x.faults.pool >= 256 && x.faults.same >= 256);

  const before = swap.stats();
  const text = await registry.metrics();
  const samples = parse(text);
  const get = (name: string, labels: Record<string, string> = {}): number[] =>
    samples
      .filter(
        (x) => x.name === name && Object.entries({ swap: 'test', ...labels }).every(([k, v]) => x.labels[k] === v),
      )
      .map((x) => x.value);

  t.regex(text, /# TYPE tmem_faults_total counter/);
  t.regex(text, /# TYPE tmem_resident_bytes gauge/);
  t.regex(text, /# TYPE tmem_fault_duration_seconds histogram/);
  const now = swap.stats();
  // Counters: between a stats() read before the scrape and one after (the dispatcher runs on).
  const between = (v: number[], lo: number, hi: number, what: string): void => {
    t.is(v.length, 1, what);
    t.true(v[0] >= lo && v[0] <= hi, `${what}: ${v[0]} in [${lo}, ${hi}]`);
  };
  between(get('tmem_faults_total', { source: 'pool' }), before.faults.pool, now.faults.pool, 'pool faults');
  between(get('tmem_faults_total', { source: 'same' }), before.faults.same, now.faults.same, 'same-filled faults');
  t.true(before.faults.pool >= s.faults.pool);
  between(get('tmem_evictions_total'), before.evictions, now.evictions, 'evictions');
  t.is(get('tmem_stored_pages').length, 1);
  t.is(get('tmem_pool_bytes').length, 1);
  t.true(get('tmem_compression_ratio')[0] > 0);

  // The histogram: cumulative buckets, ascending le, +Inf = _count = stats().latency.count.
  const buckets = samples.filter((x) => x.name === 'tmem_fault_duration_seconds_bucket');
  t.is(buckets.length, now.latency.bounds.length + 1);
  for (let i = 1; i < buckets.length; i++) {
    t.true(buckets[i].value >= buckets[i - 1].value, 'cumulative');
    const le = buckets[i].labels.le === '+Inf' ? Infinity : Number(buckets[i].labels.le);
    t.true(le > Number(buckets[i - 1].labels.le), 'ascending le');
  }
  t.is(buckets[buckets.length - 1].labels.le, '+Inf');
  const count = get('tmem_fault_duration_seconds_count')[0];
  t.is(buckets[buckets.length - 1].value, count);
  t.true(count >= 512 && count <= now.latency.count);
  t.true(get('tmem_fault_duration_seconds_sum')[0] > 0);

  metrics.unregister();
  t.is((await registry.metrics()).trim(), '');
  await region.close();
});

test('tmem/prometheus: bad arguments throw with a code', (t) => {
  t.throws(() => register({} as never), { code: 'ERR_INVALID_ARG_TYPE' });
});

(haveRedis ? test : test.skip)('tmem/prometheus: the remote tier, from a real redis-server', async (t) => {
  const srv = await startRedis(t);
  const swap = await open({
    residentLimit: '256KiB',
    poolLimit: '128KiB',
    swapFile: { path: tempDir(t, 'tmem-prom-'), size: '16MiB', encrypt: false },
    remote: { url: srv.url, timeout: 2000, repatriate: false },
  });
  t.teardown(() => swap.close());
  const registry = new Registry();
  register(swap, { registry });
  const region = swap.region('4MiB');
  const bytes = new Uint8Array(region.buffer);
  // The expected bytes are built apart from the region: reading the region back here would
  // make its pages clean copies of swap file slots, which a second eviction drops without a
  // write-back (and so without a put), leaving the remote store empty.
  const want = Buffer.alloc(bytes.length);
  for (let i = 0; i < bytes.length; i += 4096) randomBytes(512).copy(want, i);
  bytes.set(want);
  await region.evict();
  // A hang guard only: a loaded host may take a while to send the pipelines.
  const held = await statsWhen(swap, (x) => x.remote!.pages > 100, 30_000, 10);
  const first = parse(await registry.metrics());
  const gauge = (name: string): number => first.find((x) => x.name === name)!.value;
  t.true(gauge('tmem_remote_pages') > 0 && gauge('tmem_remote_bytes') > 0, JSON.stringify(held.remote));
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 4096) sum += bytes[i]; // faults, some from Redis
  t.true(sum >= 0);
  t.is(Buffer.compare(want, Buffer.from(bytes)), 0, 'every byte back');
  const before = swap.stats();
  const samples = parse(await registry.metrics());
  const now = swap.stats();
  const get = (name: string, labels: Record<string, string> = {}): number =>
    samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))!.value;
  const between = (v: number, lo: number, hi: number, what: string): void => {
    t.true(v >= lo && v <= hi, `${what}: ${v} in [${lo}, ${hi}]`);
  };
  t.true(before.remote!.puts > 100 && before.faults.remote > 0, JSON.stringify(before.remote));
  between(get('tmem_remote_total', { event: 'puts' }), before.remote!.puts, now.remote!.puts, 'puts');
  between(get('tmem_remote_total', { event: 'hits' }), before.remote!.hits, now.remote!.hits, 'hits');
  between(get('tmem_faults_total', { source: 'remote' }), before.faults.remote, now.faults.remote, 'remote faults');
  t.is(get('tmem_remote_total', { event: 'bad_values' }), 0);
  between(
    get('tmem_remote_bytes'),
    Math.min(before.remote!.bytes, now.remote!.bytes),
    Math.max(before.remote!.bytes, now.remote!.bytes),
    'bytes',
  );
  await region.close();
});
