/**
 * `tmem/prometheus`: a swap's figures as Prometheus metrics, with prom-client
 * (an optional peer dependency: install it next to tmem).
 *
 *   import { register } from 'tmem/prometheus';
 *   const metrics = register(swap);            // prom-client's default registry
 *   // ... GET /metrics: res.end(await client.register.metrics())
 *   metrics.unregister();                      // before swap.close(), or after
 *
 * Every value is read from `swap.stats()` when the registry is scraped (prom-
 * client's collect()), so registering costs nothing between scrapes:
 *
 *   gauges     tmem_resident_bytes, tmem_staged_pages, tmem_stored_pages,
 *              tmem_same_filled_pages, tmem_logical_bytes, tmem_compressed_bytes,
 *              tmem_pool_bytes, tmem_compression_ratio, tmem_huge_pages,
 *              tmem_clean_copies, tmem_unevictable_pages, tmem_cleancache_pages,
 *              tmem_swap_file_bytes, tmem_swap_file_slots, tmem_swap_file_cached_pages,
 *              tmem_remote_pages, tmem_remote_clean_pages, tmem_remote_bytes
 *   counters   tmem_faults_total{source}, tmem_evictions_total,
 *              tmem_refused_total{reason}, tmem_second_chance_total,
 *              tmem_cleancache_puts_total, tmem_file_writes_total,
 *              tmem_file_write_errors_total, tmem_evictions_without_compression_total,
 *              tmem_unshared_pages_total,
 *              tmem_idle_recompressed_total, tmem_idle_written_back_total,
 *              tmem_swap_file_written_back_total, tmem_swap_file_swap_ins_total,
 *              tmem_swap_file_errors_total{kind}, tmem_remote_total{event}
 *   histogram  tmem_fault_duration_seconds (the dispatcher's own buckets, a
 *              quarter octave apart; _sum is estimated from the bucket
 *              midpoints, since the dispatcher keeps counts only)
 */
import type { Registry, Gauge as GaugeT, Counter as CounterT } from 'prom-client';
import type { Swap, SwapStats } from './swap';

/** Options of {@link register}. */
export interface PrometheusOptions {
  /** The registry to add the metrics to; default prom-client's global `register`. */
  registry?: Registry;
  /** Prefix of every metric name; default `'tmem_'`. Two swaps in one registry need two prefixes (or labels). */
  prefix?: string;
  /** Labels added to every sample of this swap, e.g. `{ swap: 'cache' }`. */
  labels?: Record<string, string>;
}

/** What {@link register} returns. */
export interface PrometheusMetrics {
  /** The names of the metrics registered. */
  readonly names: readonly string[];
  /** Removes the metrics from the registry. */
  unregister(): void;
}

type PromClient = typeof import('prom-client');

function promClient(): PromClient {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional peer dependency, loaded on first use
    return require('prom-client') as PromClient;
  } catch (e) {
    const err = new Error('tmem/prometheus needs prom-client (an optional peer dependency): npm install prom-client', {
      cause: e,
    });
    (err as NodeJS.ErrnoException).code = 'ERR_TMEM_NO_PROM_CLIENT';
    throw err;
  }
}

/**
 * Registers the figures of `swap` with prom-client. Values are read at each
 * scrape; after the swap closes they keep their last values.
 * @throws Error with code ERR_TMEM_NO_PROM_CLIENT when prom-client is not installed
 * @throws TypeError (ERR_INVALID_ARG_TYPE) when `swap` has no stats()
 */
export function register(swap: Swap, options: PrometheusOptions = {}): PrometheusMetrics {
  if (!swap || typeof (swap as { stats?: unknown }).stats !== 'function') {
    const err = new TypeError('register(swap): swap must be a Swap from open()');
    (err as NodeJS.ErrnoException).code = 'ERR_INVALID_ARG_TYPE';
    throw err;
  }
  const client = promClient();
  const registry = options.registry ?? client.register;
  const prefix = options.prefix ?? 'tmem_';
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    const err = new TypeError(
      `prefix must be a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*), got '${prefix}'`,
    );
    (err as NodeJS.ErrnoException).code = 'ERR_INVALID_ARG_VALUE';
    throw err;
  }
  const base = options.labels ?? {};
  const baseNames = Object.keys(base);

  // One stats() per scrape, shared by every metric's collect().
  let last: SwapStats = swap.stats();
  let readAt = -1;
  const stats = (): SwapStats => {
    const now = performance.now();
    if (now - readAt > 50) {
      try {
        last = swap.stats();
      } catch {
        /* closed: keep the last values */
      }
      readAt = now;
    }
    return last;
  };

  const names: string[] = [];
  const gauge = (name: string, help: string, value: (s: SwapStats) => number): void => {
    const full = prefix + name;
    names.push(full);
    new client.Gauge({
      name: full,
      help,
      labelNames: baseNames,
      registers: [registry],
      collect(this: GaugeT) {
        this.set(base, value(stats()));
      },
    });
  };
  const counter = (
    name: string,
    help: string,
    label: string | null,
    values: (s: SwapStats) => Record<string, number>,
  ): void => {
    const full = prefix + name;
    names.push(full);
    new client.Counter({
      name: full,
      help,
      labelNames: label ? [...baseNames, label] : baseNames,
      registers: [registry],
      collect(this: CounterT) {
        this.reset();
        for (const [k, v] of Object.entries(values(stats()))) this.inc(label ? { ...base, [label]: k } : base, v);
      },
    });
  };
  const one = (v: number): Record<string, number> => ({ '': v });

  gauge('resident_bytes', 'Region memory mapped now, bytes (including the staging area)', (s) => s.residentBytes);
  gauge('staged_pages', 'Pages in the staging area (evicted, not yet compressed), pages', (s) => s.stagedPages);
  gauge('stored_pages', 'Pages held compressed in the pool, pages', (s) => s.storedPages);
  gauge('same_filled_pages', 'Pages kept as one repeated word, pages', (s) => s.samePages);
  gauge('logical_bytes', 'Bytes of pages out of residency (stored + same-filled), bytes', (s) => s.logicalBytes);
  gauge('compressed_bytes', 'Compressed size of the stored pages, bytes', (s) => s.compressedBytes);
  gauge('pool_bytes', 'Memory the pools use (allocator pages), bytes', (s) => s.poolBytes);
  gauge('compression_ratio', 'Stored bytes over compressed bytes (0 when empty)', (s) => s.compressionRatio);
  gauge('huge_pages', 'Stored pages kept raw (they did not compress), pages', (s) => s.hugePages);
  gauge('clean_copies', 'Resident pages whose compressed copy the pool also keeps, pages', (s) => s.cleanCopies);
  gauge(
    'unevictable_pages',
    'Pages eviction set aside because the kernel holds them (pinned), pages',
    (s) => s.unevictablePages,
  );
  gauge(
    'swap_file_cached_pages',
    'Resident pages whose swap file slot is kept (swap cache), pages',
    (s) => s.swapFile?.cached ?? 0,
  );
  gauge('cleancache_pages', 'File pages held by the ephemeral pool, pages', (s) => s.cleancache.pages);
  gauge('swap_file_bytes', 'Pages in the swap file, bytes', (s) => s.swapFile?.bytes ?? 0);
  gauge('swap_file_slots', 'Slots of the swap file (0 without one), slots', (s) => s.swapFile?.slots ?? 0);
  gauge(
    'remote_pages',
    'Persistent pages the remote store holds (each also in the swap file), pages',
    (s) => s.remote?.pages ?? 0,
  );
  gauge(
    'remote_clean_pages',
    "Mapped files' clean pages the remote store holds (keys with a TTL), pages",
    (s) => s.remote?.cleanPages ?? 0,
  );
  gauge('remote_bytes', 'Bytes of values the remote store holds for this swap, bytes', (s) => s.remote?.bytes ?? 0);
  gauge(
    'budget_bytes',
    'The memory budget (memoryLimit or from the cgroup; 0: fixed limits), bytes',
    (s) => s.budget.bytes,
  );
  gauge(
    'resident_limit_bytes',
    'The resident limit now (its share of the budget), bytes',
    (s) => s.budget.residentLimit,
  );
  gauge('pool_limit_bytes', "The pool's limit now, bytes", (s) => s.budget.poolLimit);
  gauge('memory_pressure', 'Memory pressure tmem reacts to, 0 (none) to 1', (s) => s.budget.pressure);

  counter('faults_total', 'Faults served, by where the page came from', 'source', (s) => ({
    zero: s.faults.zero,
    pool: s.faults.pool,
    same: s.faults.same,
    staged: s.faults.staged,
    file: s.faults.file,
    cleancache: s.faults.cleancache,
    swap_file: s.faults.swapFile,
    remote: s.faults.remote,
    write_protect: s.faults.writeProtect,
  }));
  counter('evictions_total', 'Pages evicted', null, (s) => one(s.evictions));
  counter('refused_total', 'Stores the pool refused, by reason', 'reason', (s) => ({
    pool_limit: s.refused.poolLimit,
    alloc: s.refused.alloc,
  }));
  counter('second_chance_total', 'Staged pages touched again before compression', null, (s) => one(s.secondChance));
  counter(
    'pool_readahead_total',
    'Pages loaded from the pool ahead of a sequential run of faults (also in faults_total{source="pool"})',
    null,
    (s) => one(s.poolReadahead),
  );
  counter('cleancache_puts_total', 'Clean file pages put into the ephemeral pool', null, (s) => one(s.cleancache.puts));
  counter('file_writes_total', 'Dirty file pages written back to their file', null, (s) => one(s.fileWrites));
  counter('file_write_errors_total', 'Write-backs to mapped files that failed (the pages stayed dirty)', null, (s) =>
    one(s.fileWriteErrors),
  );
  counter(
    'evictions_without_compression_total',
    'Evictions of clean pages whose copy was kept (no compression, no write)',
    null,
    (s) => one(s.evictionsWithoutCompression),
  );
  counter(
    'unshared_pages_total',
    'Pages shared copy-on-write with a child process that eviction made exclusive again',
    null,
    (s) => one(s.unsharedPages),
  );
  counter(
    'eviction_run_pages_total',
    'Pages eviction moved out with their neighbours in one UFFDIO_MOVE (a run)',
    null,
    (s) => one(s.evictionRunPages),
  );
  counter(
    'eviction_clean_batched_total',
    'Clean pages eviction dropped from the page table in batches, one process_madvise for each batch',
    null,
    (s) => one(s.evictionCleanBatched),
  );
  counter(
    'move_anomalies_total',
    'Staging moves whose outcome contradicted what UFFDIO_MOVE answered (recovered)',
    null,
    (s) => one(s.moveAnomalies),
  );
  counter('pool_trimmed_bytes_total', 'Bytes of free pool frames given back to the OS', null, (s) =>
    one(s.poolTrimmedBytes),
  );
  counter('idle_recompressed_total', 'Idle pages recompressed with zstd', null, (s) => one(s.idle.recompressed));
  counter('idle_written_back_total', 'Idle pages written back to the swap file', null, (s) => one(s.idle.writtenBack));
  counter('swap_file_written_back_total', 'Pages written to the swap file', null, (s) =>
    one(s.swapFile?.writtenBack ?? 0),
  );
  counter('swap_file_swap_ins_total', 'Pages read back from the swap file', null, (s) => one(s.swapFile?.swapIns ?? 0));
  counter(
    'budget_not_held_total',
    'Pages that could go nowhere (pool full, nothing below it) while resident pages were over their limit',
    null,
    (s) => one(s.budget.notHeld),
  );
  counter('swap_file_errors_total', 'Swap file errors, by kind', 'kind', (s) => ({
    io: s.swapFile?.ioErrors ?? 0,
    checksum: s.swapFile?.checksumErrors ?? 0,
  }));
  counter('remote_total', 'What the remote tier did and met (stats().remote), by event', 'event', (s) => {
    const r = s.remote;
    return {
      puts: r?.puts ?? 0,
      clean_puts: r?.cleanPuts ?? 0,
      refused: r?.refused ?? 0,
      over_limit: r?.overLimit ?? 0,
      hits: r?.hits ?? 0,
      misses: r?.misses ?? 0,
      bad_values: r?.badValues ?? 0,
      errors: r?.errors ?? 0,
      skipped: r?.skipped ?? 0,
      lost: r?.lost ?? 0,
      prefetched: r?.prefetched ?? 0,
      repatriated: r?.repatriated ?? 0,
    };
  });

  // The histogram: prom-client's Histogram can only observe() single values, so
  // this is a metric object of prom-client's registry interface (get()) that
  // hands the dispatcher's bucket counts over as they are.
  const hname = `${prefix}fault_duration_seconds`;
  const histogram = {
    name: hname,
    help: 'Time the dispatcher took to serve a fault, seconds',
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    get() {
      const l = stats().latency;
      const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
      let acc = 0;
      let sum = 0;
      for (let i = 0; i < l.counts.length; i++) {
        const lo = i === 0 ? 0 : l.bounds[i - 1];
        const hi = i < l.bounds.length ? l.bounds[i] : lo * 2 ** 0.25;
        sum += l.counts[i] * ((lo + hi) / 2) * 1e-6;
        acc += l.counts[i];
        if (i < l.bounds.length)
          values.push({
            value: acc,
            labels: { ...base, le: +(l.bounds[i] * 1e-6).toPrecision(6) },
            metricName: `${hname}_bucket`,
          });
      }
      values.push({ value: acc, labels: { ...base, le: '+Inf' }, metricName: `${hname}_bucket` });
      values.push({ value: sum, labels: base, metricName: `${hname}_sum` });
      values.push({ value: acc, labels: base, metricName: `${hname}_count` });
      return { name: hname, help: histogram.help, type: histogram.type, aggregator: histogram.aggregator, values };
    },
  };
  (registry as unknown as { registerMetric(m: unknown): void }).registerMetric(histogram);
  names.push(hname);

  return {
    names,
    unregister() {
      for (const n of names) registry.removeSingleMetric(n);
    },
  };
}
