/**
 * `tmem bench`: runs the scenarios and their baselines in one run, on one
 * corpus, and returns one result document (BenchResult) that the table, the
 * JSON output and the HTML report are all made from.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evictionThroughput, writeCorpusFile, removeCorpusFile, type EvictionResult } from './eviction';
import { nearestRank, summarizeSorted } from './samples';
import type { BenchOptions } from './args';
import { buildCorpus } from './corpus';
import { tmemLatency, plainFirstTouch, touchOrder, defaultSwapDir, type TouchRun } from './measure';
import {
  ensureBaselinePrograms,
  minHandler,
  kernelSwapin,
  kernelSteady,
  packageRoot,
  type KernelResult,
  type KernelSteadyResult,
  type Quantiles,
  type KernelPass,
} from './baselines';
import { tmemSteady, steadyLimitPages, type SteadyRun } from './steady-state';
import { tmemReadback, type ReadbackRun } from './readback';
import { remoteBench, type RemoteBenchResult } from './remote-bench';
import { native } from '../native';
import { Progress } from './progress';
import { defaultFaultSpin } from '../options';

/** Percentiles in us. */
export interface Stat {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  mean: number;
  max?: number;
  n: number;
}

export interface Series {
  label: string;
  /** tmem: measured here; baseline: the ratio is against it; reference: context only. */
  role: 'tmem' | 'baseline' | 'reference';
  summary: Stat | null;
  /** [us, cumulative fraction]: from every sample ('samples') or the program's percentiles only ('quantiles'). */
  cdf: [number, number][] | null;
  cdfKind: 'samples' | 'quantiles';
  /** Counts per histogram bin (BenchResult.histogramEdgesUs), for series with samples. */
  hist?: number[];
  skipped?: string;
  note?: string;
}

/**
 * A target of issue 12 ("Fast in the state users live in"): a ratio of this
 * run against its baseline that must stay at most `max` (or at least `min`).
 * Printed, never enforced: a missed target does not change the exit code.
 */
export interface Target {
  /** What is compared, e.g. 'p50 <= 1.5x kernel zram in a memory cgroup'. */
  label: string;
  /** The measured ratio, null when the baseline was not measured. */
  value: number | null;
  max?: number;
  min?: number;
  /** null when not measured. */
  met: boolean | null;
}

export interface LatencyScenario {
  kind: 'latency';
  id: string;
  scenario: 'zero' | 'pool' | 'swapfile' | 'steady' | 'threads' | 'remote';
  title: string;
  status: 'ok' | 'failed';
  error?: string;
  series: Series[];
  /** Label of the series ratios are against, null when it was not measured. */
  baseline: string | null;
  /** tmem / baseline at each percentile (lower is better). */
  ratio: { p50: number; p90: number; p99: number; p999: number } | null;
  faults?: TouchRun['faults'];
  badPages?: number;
  targets?: Target[];
  notes: string[];
}

export interface Bar {
  label: string;
  role: 'tmem' | 'baseline' | 'reference';
  value: number | null;
  note?: string;
}

export interface BarScenario {
  kind: 'bars';
  id: 'eviction' | 'density' | 'fill' | 'readback' | 'remote-writeback';
  title: string;
  unit: string;
  better: 'higher' | 'lower';
  status: 'ok' | 'failed';
  error?: string;
  bars: Bar[];
  /** First tmem bar / first baseline bar. */
  ratio: number | null;
  detail?: Record<string, unknown>;
  badPages?: number;
  targets?: Target[];
  notes: string[];
}

export type ScenarioResult = LatencyScenario | BarScenario;

export interface BenchResult {
  tool: 'tmem bench';
  version: string;
  startedAt: string;
  durationMs: number;
  host: {
    kernel: string;
    cpus: number;
    cpuModel: string;
    node: string;
    root: boolean;
    memoryGiB: number;
    /** The cpuidle driver (and haltpoll's guest_halt_poll_ns): what waking an idle CPU costs depends on it. */
    cpuIdle: string;
  };
  options: Omit<BenchOptions, 'help' | 'json' | 'report'> & { dir: string };
  corpus: { source: string; pages: number; kinds: Record<string, number> };
  histogramEdgesUs: number[];
  scenarios: ScenarioResult[];
  /** Host limits and skipped baselines, one line each. */
  notes: string[];
  /** No scenario failed and every page read back right. */
  ok: boolean;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** log-spaced histogram bin edges, us: 10 per decade from 0.25 us to 100 ms. */
export function histogramEdges(): number[] {
  const e: number[] = [];
  for (let k = -6; k <= 50; k++) e.push(+Math.pow(10, k / 10).toPrecision(3));
  return e;
}

function fromSamples(label: string, role: Series['role'], ns: Float64Array, edges: number[], note?: string): Series {
  const s = Float64Array.from(ns).sort();
  const n = s.length;
  const at = (q: number): number => nearestRank(s, q) / 1000;
  const summary: Stat = summarizeSorted(s);
  const qs: number[] = [];
  for (let i = 1; i <= 396; i++) qs.push(i / 400);
  for (let i = 991; i <= 999; i++) qs.push(i / 1000);
  qs.push(0.9995, 0.9999, 1);
  const cdf: [number, number][] = [[r3(s[0] / 1000), 0]];
  for (const q of qs) cdf.push([r3(at(q)), q]);
  const hist = new Array(edges.length - 1).fill(0) as number[];
  for (let i = 0; i < n; i++) {
    const us = s[i] / 1000;
    let b = 0;
    while (b < hist.length - 1 && us >= edges[b + 1]) b++;
    hist[b]++;
  }
  return { label, role, summary, cdf, cdfKind: 'samples', hist, ...(note ? { note } : {}) };
}

function fromQuantiles(label: string, q: Quantiles, note?: string): Series {
  const summary: Stat = {
    p50: q.p50,
    p90: q.p90,
    p99: q.p99,
    p999: q.p999,
    mean: q.mean,
    n: q.n,
    ...(q.max !== undefined ? { max: q.max } : {}),
  };
  return {
    label,
    role: 'baseline',
    summary,
    cdf: [
      [q.p50, 0.5],
      [q.p90, 0.9],
      [q.p99, 0.99],
      [q.p999, 0.999],
    ],
    cdfKind: 'quantiles',
    ...(note ? { note } : {}),
  };
}

function skippedSeries(label: string, why: string): Series {
  return { label, role: 'baseline', summary: null, cdf: null, cdfKind: 'quantiles', skipped: why };
}

function ratioOf(t: Stat | null, b: Stat | null): LatencyScenario['ratio'] {
  if (!t || !b || !(b.p50 > 0)) return null;
  const q = (x: number, y: number): number => (y > 0 ? r3(x / y) : 0);
  return { p50: q(t.p50, b.p50), p90: q(t.p90, b.p90), p99: q(t.p99, b.p99), p999: q(t.p999, b.p999) };
}

/** A target on `value` (null: not measured). */
export function target(label: string, value: number | null, bound: { max?: number; min?: number }): Target {
  const met =
    value === null
      ? null
      : (bound.max === undefined || value <= bound.max) && (bound.min === undefined || value >= bound.min);
  return { label, value, ...bound, met };
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The cpuidle driver, and the guest's halt-poll time where the driver is haltpoll (a KVM guest). */
function cpuIdle(): string {
  const read = (f: string): string | null => {
    try {
      return fs.readFileSync(f, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const driver = read('/sys/devices/system/cpu/cpuidle/current_driver') ?? 'unknown';
  const poll = read('/sys/module/haltpoll/parameters/guest_halt_poll_ns');
  return driver === 'haltpoll' && poll !== null ? `haltpoll, guest_halt_poll_ns ${poll}` : driver;
}

function version(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string })
      .version;
  } catch {
    return '0.0.0';
  }
}

/** Runs `tmem bench` with parsed options. */
export async function runBench(o: BenchOptions, progress: Progress): Promise<BenchResult> {
  const t0 = Date.now();
  const dir = o.dir ?? defaultSwapDir();
  const edges = histogramEdges();
  const notes: string[] = [];
  const note = (s: string): void => {
    if (!notes.includes(s)) {
      notes.push(s);
      progress.note(s);
    }
  };
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  // Every open() of this run (in this process and in the children it starts) takes it as its default.
  if (o.faultSpin !== null) process.env.TMEM_FAULT_SPIN = String(o.faultSpin);
  const idle = cpuIdle();
  note(
    `fault thread spin: ${defaultFaultSpin()} us after each fault (--fault-spin); CPU idle: ${idle}` +
      (/guest_halt_poll_ns 0\b/.test(idle)
        ? ' (an idle vCPU halts at once: waking a sleeping thread costs a host wake-up)'
        : ''),
  );

  progress.start(`corpus: ${o.corpus}, ${o.pages} pages`, 0);
  const bc = buildCorpus(o.corpus, o.pages, o.seed);
  const corpus = bc.corpus;
  progress.end(
    Object.entries(bc.counts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', '),
  );

  const wants = new Set(o.scenarios);
  let corpusFile: string | null = null;
  if (o.baselines) {
    const missing = ensureBaselinePrograms((s) => progress.note(s));
    if (missing) note(missing);
    if (!root)
      note(
        'not root: the kernel baselines (zram swap-in, swap file swap-in, pageout, density) need root and are skipped; run as root to measure them',
      );
    corpusFile = writeCorpusFile(corpus);
  } else {
    note('--no-baselines: no baseline was run; ratios are not computed');
  }
  const kernelCache = new Map<string, Promise<KernelResult>>();
  const kernel = (backend: 'zram' | 'swapfile', algorithm?: string): Promise<KernelResult> => {
    const key = `${backend}/${algorithm ?? ''}`;
    let p = kernelCache.get(key);
    if (!p) {
      const label = backend === 'zram' ? `kernel zram (${algorithm}) swap-in` : 'kernel swap file swap-in';
      progress.startTimed(`baseline: ${label}`, 600 + corpus.pages * (backend === 'zram' ? 0.05 : 0.2));
      p = kernelSwapin({
        backend,
        corpusFile: corpusFile!,
        algorithm,
        dir: backend === 'swapfile' ? dir : undefined,
        seed: o.seed,
      }).then((r) => {
        progress.end(r.skipped ? 'skipped' : `p50 ${kernelPass(r)?.p50} us`);
        return r;
      });
      kernelCache.set(key, p);
    }
    return p;
  };
  const kernelPass = (r: KernelResult): KernelPass | undefined =>
    o.pattern === 'sequential' ? r.sequential : r.random;
  const kernelOrderNote =
    o.pattern === 'zipfian'
      ? 'the kernel baseline touches its pages in random order (it has no zipfian order)'
      : undefined;

  const scenarios: ScenarioResult[] = [];
  const measure = {
    corpus,
    pattern: o.pattern,
    seed: o.seed,
    allocator: o.allocator,
    pin: o.pin,
    faults: o.faults,
    threads: o.threads,
    dir,
    progress,
  };
  const threadNote =
    o.threads > 1
      ? `${o.threads} faulting Workers (attachRegion(region.share())), each timing its own touches`
      : undefined;

  /**
   * One latency scenario: tmem's timed touches (series 0, from `go`), then
   * `rest` adds the baseline and reference series; the ratio is tmem against
   * sc.baseline, and `targets` (at a percentile, at most `max` times the
   * baseline) are checked on it. A throw marks the scenario failed.
   */
  const latencyScenario = async <R extends Pick<TouchRun, 'ns' | 'faults' | 'badPages'>>(
    head: Pick<LatencyScenario, 'id' | 'scenario' | 'title'>,
    go: () => Promise<R>,
    tmemNote: (run: R) => string | undefined,
    rest: (sc: LatencyScenario, run: R) => Promise<void>,
    targets: { at: 'p50' | 'p99'; max: number; against: string }[] = [],
  ): Promise<void> => {
    const sc: LatencyScenario = {
      kind: 'latency',
      ...head,
      status: 'ok',
      series: [],
      baseline: null,
      ratio: null,
      notes: [],
    };
    try {
      const run = await go();
      const t = fromSamples('tmem', 'tmem', run.ns, edges, tmemNote(run));
      progress.end(`tmem p50 ${t.summary!.p50} us`);
      sc.series.push(t);
      sc.faults = run.faults;
      sc.badPages = run.badPages;
      await rest(sc, run);
      sc.ratio = ratioOf(t.summary, sc.series.find((s) => s.label === sc.baseline)?.summary ?? null);
      if (targets.length > 0) {
        sc.targets = targets.map((g) =>
          target(`${g.at} <= ${g.max}x ${g.against}`, sc.ratio ? sc.ratio[g.at] : null, { max: g.max }),
        );
      }
    } catch (e) {
      sc.status = 'failed';
      sc.error = errText(e);
      progress.end('FAILED');
    }
    scenarios.push(sc);
  };
  const tmemRun =
    (kind: 'zero' | 'pool' | 'swapfile', compressor: BenchOptions['compressors'][number], label: string) =>
    (): Promise<TouchRun> =>
      tmemLatency(kind, { ...measure, compressor, label });

  /** Adds a kernel baseline series (or why it was skipped, also as a note); true when it was measured. */
  const kernelBaseline = (
    sc: LatencyScenario,
    label: string,
    k: KernelResult,
    what: string,
    nothing: string,
  ): boolean => {
    const pass = kernelPass(k);
    if (k.skipped || !pass) {
      sc.series.push(skippedSeries(label, k.skipped ?? 'no pass measured'));
      note(`${what}: ${k.skipped ?? nothing}`);
      return false;
    }
    sc.series.push(fromQuantiles(label, pass, kernelOrderNote));
    sc.baseline = label;
    return true;
  };

  try {
    // ---- zero: first touch
    if (wants.has('zero')) {
      await latencyScenario(
        { id: 'zero', scenario: 'zero', title: 'first touch of a never-written page (zero fault)' },
        tmemRun('zero', o.compressors[0], 'zero fault'),
        () => threadNote,
        async (sc) => {
          if (o.baselines) {
            const mode = o.pin && o.threads === 1 ? 'same_cpu' : 'cross_cpu';
            progress.startTimed('baseline: minimal C handler', 300 + corpus.pages * 0.02);
            const c = await minHandler(corpus.pages, o.seed, mode);
            progress.end(c.skipped ? 'skipped' : `p50 ${c.summary!.p50} us`);
            const label = `minimal C handler (${mode === 'same_cpu' ? 'same CPU' : 'other CPU'})`;
            if (c.skipped) {
              sc.series.push(skippedSeries(label, c.skipped));
              note(`zero: ${c.skipped}`);
            } else {
              sc.series.push(
                fromQuantiles(
                  label,
                  c.summary!,
                  `blocking read + UFFDIO_COPY in C, random order${o.pattern !== 'random' ? ' (its only order)' : ''}`,
                ),
              );
              sc.baseline = label;
            }
          }
          const plain = plainFirstTouch(corpus.pages, touchOrder(o.pattern, corpus.pages, o.seed + 11));
          sc.series.push(
            fromSamples(
              'kernel first touch, no userfaultfd',
              'reference',
              plain,
              edges,
              'plain anonymous memory: the kernel maps its zero page; what a fault costs without a handler',
            ),
          );
        },
      );
    }

    // ---- pool: lz4, zstd
    if (wants.has('pool')) {
      for (const c of o.compressors) {
        await latencyScenario(
          {
            id: `pool-${c}`,
            scenario: 'pool',
            title: `fault from the pool (${c}, ${o.allocator}), nothing evicted meanwhile`,
          },
          tmemRun('pool', c, `pool ${c}`),
          () => threadNote,
          async (sc, run) => {
            if (run.evictionsDuringTouches > 0)
              sc.notes.push(`${run.evictionsDuringTouches} evictions happened during the timed touches`);
            if (o.baselines) {
              const k = await kernel('zram', c);
              if (
                kernelBaseline(
                  sc,
                  `kernel zram (${k.algorithm ?? c})`,
                  k,
                  `pool ${c}`,
                  'the zram baseline measured nothing',
                )
              ) {
                if (k.algorithm && k.algorithm !== c)
                  sc.notes.push(`this kernel's zram has no ${c}: the baseline used ${k.algorithm}`);
              }
            }
          },
          [{ at: 'p50', max: 1.3, against: 'kernel zram swap-in' }],
        );
      }
    }

    // ---- swapfile
    if (wants.has('swapfile')) {
      await latencyScenario(
        { id: 'swapfile', scenario: 'swapfile', title: 'fault from the swap file' },
        tmemRun('swapfile', o.compressors[0], 'swap file'),
        (run) =>
          [run.cold ? 'page cache dropped before the touches' : 'warm page cache', threadNote]
            .filter(Boolean)
            .join('; '),
        async (sc, run) => {
          if (run.coldNote) note(`swapfile: ${run.coldNote}`);
          if (o.baselines)
            kernelBaseline(
              sc,
              'kernel swap file',
              await kernel('swapfile'),
              'swapfile',
              'the swap file baseline measured nothing',
            );
        },
      );
    }

    // ---- eviction throughput and density (one set of rounds)
    if (wants.has('eviction') || wants.has('density')) {
      const c = o.compressors[0];
      let ev: EvictionResult | null = null;
      let evError: string | undefined;
      progress.start(`eviction: ${o.rounds} round(s) of fill + evict()`, 0);
      try {
        ev = await evictionThroughput({
          corpus,
          pin: o.pin,
          compressor: c,
          allocator: o.allocator,
          rounds: o.rounds,
          seed: o.seed,
        });
        progress.end(`${ev.median} pages/s`);
      } catch (e) {
        evError = errText(e);
        progress.end('FAILED');
      }
      const k: KernelResult = o.baselines ? await kernel('zram', c) : { skipped: '--no-baselines' };
      if (o.baselines && k.skipped) note(`eviction/density: ${k.skipped}`);
      const zl = `kernel zram (${k.algorithm ?? c})`;
      if (wants.has('eviction')) {
        const bars: Bar[] = [
          {
            label: `tmem region.evict() (${c})`,
            role: 'tmem',
            value: ev ? ev.median : null,
            note: ev
              ? `median of ${ev.rounds} round(s): ${ev.pagesPerSecond.join(', ')} pages/s; ${ev.usPerPage} us/page`
              : undefined,
          },
          {
            label: `${zl} MADV_PAGEOUT`,
            role: 'baseline',
            value: k.pageoutPagesPerSecond ?? null,
            note: k.skipped ?? `${k.pageoutUsPerPage} us/page`,
          },
        ];
        scenarios.push({
          kind: 'bars',
          id: 'eviction',
          title: 'eviction throughput (compress + store)',
          unit: 'pages/s',
          better: 'higher',
          status: ev ? 'ok' : 'failed',
          ...(evError ? { error: evError } : {}),
          bars,
          ratio: ev && k.pageoutPagesPerSecond ? r3(ev.median / k.pageoutPagesPerSecond) : null,
          detail: ev ? { rounds: ev.rounds, pagesPerSecond: ev.pagesPerSecond, usPerPage: ev.usPerPage } : undefined,
          targets: [
            target(
              `pages/s >= 1x ${zl} MADV_PAGEOUT`,
              ev && k.pageoutPagesPerSecond ? r3(ev.median / k.pageoutPagesPerSecond) : null,
              { min: 1 },
            ),
          ],
          notes: [],
        });
      }
      if (wants.has('density')) {
        const d = ev?.density;
        const measured = d ? d.withMetadata : null;
        const bars: Bar[] = [
          {
            label: 'tmem pool + index + page state',
            role: 'tmem',
            value: d?.withMetadata ?? null,
            note: 'pool bytes + 15 B of page index per stored page + 9 B of dispatcher page state per page',
          },
          {
            label: 'tmem pool only',
            role: 'reference',
            value: d?.poolOnly ?? null,
            note: 'arena frames the pool occupies',
          },
          {
            label: 'tmem process memory growth',
            role: 'reference',
            value: d?.processAnon ?? null,
            note: 'anonymous memory after evict() minus before the region, per page: noisy here, memory freed by earlier scenarios and rounds is reused',
          },
          { label: `${zl} mem_used_total`, role: 'baseline', value: k.bytesPerPage ?? null, note: k.skipped },
        ];
        scenarios.push({
          kind: 'bars',
          id: 'density',
          title: 'memory per evicted page',
          unit: 'bytes/page',
          better: 'lower',
          status: ev ? 'ok' : 'failed',
          ...(evError ? { error: evError } : {}),
          bars,
          ratio: measured !== null && k.bytesPerPage ? r3(measured / k.bytesPerPage) : null,
          detail: ev
            ? {
                storedPages: ev.storedPages,
                samePages: ev.samePages,
                hugePages: ev.hugePages,
                compressionRatio: ev.compressionRatio,
                poolBytes: ev.poolBytes,
              }
            : undefined,
          notes: [
            'every corpus page counts in both denominators, zero pages included (same-filled in tmem, the swap zeromap in the kernel)',
          ],
        });
      }
    }

    // ---- steady state and fill (one run of each side)
    let steadyP: Promise<SteadyRun> | null = null;
    const steadyRun = (): Promise<SteadyRun> =>
      (steadyP ??= tmemSteady({
        corpus,
        seed: o.seed,
        compressor: o.compressors[0],
        allocator: o.allocator,
        pin: o.pin,
        faults: o.faults,
        progress,
      }));
    let kSteadyP: Promise<KernelSteadyResult> | null = null;
    const limitPages = steadyLimitPages(corpus.pages);
    const kSteady = (): Promise<KernelSteadyResult> =>
      (kSteadyP ??= (async () => {
        progress.startTimed('baseline: kernel zram in a memory cgroup (fill + steady state)', 600 + corpus.pages * 0.1);
        const r = await kernelSteady({
          corpusFile: corpusFile!,
          limitPages,
          algorithm: o.compressors[0],
          seed: o.seed,
        });
        progress.end(r.skipped ? 'skipped' : `fill ${r.fillMiBs} MiB/s, p50 ${r.steady?.p50} us`);
        return r;
      })());
    if (wants.has('steady')) {
      const c = o.compressors[0];
      await latencyScenario(
        {
          id: 'steady',
          scenario: 'steady',
          title: `steady state: random touches at residentLimit = 1/8 of the pages (${limitPages}), eviction running (${c})`,
        },
        steadyRun,
        (run) => `residentLimit ${run.limitPages} pages (+ a staging area of ${run.stagingPages} pages)`,
        async (sc, run) => {
          sc.notes.push(
            `${run.evictionsDuringTouches} evictions during the timed touches; faults: ${run.faults.pool} pool, ${run.faults.same} same-filled, ${run.faults.staged} staged, ${run.faults.zero} zero`,
          );
          if (o.baselines) {
            const k = await kSteady();
            const label = `kernel zram (${k.algorithm ?? c}) in a memory cgroup`;
            if (k.skipped || !k.steady) {
              sc.series.push(skippedSeries(label, k.skipped ?? 'no pass measured'));
              note(`steady: ${k.skipped ?? 'the steady-state baseline measured nothing'}`);
            } else {
              sc.series.push(
                fromQuantiles(
                  label,
                  k.steady,
                  `${k.cgroup} = ${k.limitBytes} bytes (${k.limitPages} pages + what the toucher had charged before); ${k.steady.majflt} of the touches were major faults`,
                ),
              );
              sc.baseline = label;
            }
          }
        },
        [
          { at: 'p50', max: 1.5, against: 'kernel zram in a memory cgroup' },
          { at: 'p99', max: 2, against: 'kernel zram in a memory cgroup' },
        ],
      );
    }
    if (wants.has('fill')) {
      const c = o.compressors[0];
      let run: SteadyRun | null = null;
      let err: string | undefined;
      try {
        run = await steadyRun();
      } catch (e) {
        err = errText(e);
        progress.end('FAILED');
      }
      const k: KernelSteadyResult = o.baselines ? await kSteady() : { skipped: '--no-baselines' };
      if (o.baselines && k.skipped) note(`fill: ${k.skipped}`);
      const ratio = run && k.fillMiBs ? r3(run.fillMiBs / k.fillMiBs) : null;
      const zl = `kernel zram (${k.algorithm ?? c}) in a memory cgroup`;
      scenarios.push({
        kind: 'bars',
        id: 'fill',
        title: `fill: writing ${corpus.pages} pages of new data through a residentLimit of ${limitPages} (8x)`,
        unit: 'MiB/s',
        better: 'higher',
        status: run ? 'ok' : 'failed',
        ...(err ? { error: err } : {}),
        bars: [
          {
            label: `tmem region write (${c})`,
            role: 'tmem',
            value: run ? run.fillMiBs : null,
            note: run ? `${run.fillEvictions} evictions during the write` : undefined,
          },
          {
            label: zl,
            role: 'baseline',
            value: k.fillMiBs ?? null,
            note: k.skipped ?? `${k.cgroup} = ${k.limitBytes} bytes`,
          },
        ],
        ratio,
        detail: run ? { limitPages: run.limitPages, evictions: run.fillEvictions } : undefined,
        ...(run ? { badPages: run.badPages } : {}),
        targets: [target(`MiB/s >= 1x ${zl}`, ratio, { min: 1 })],
        notes: [],
      });
    }

    // ---- threads: 2 Workers on 2 CPUs against one thread on the dispatcher's CPU
    if (wants.has('threads')) {
      const c = o.compressors[0];
      const cpus = native.getAffinity();
      if (cpus.length < 2) {
        note(
          `threads: this process may run on ${cpus.length} CPU only (${cpus.join(',')}): the 2-CPU scenario needs two`,
        );
      } else {
        const two = cpus.slice(0, 2);
        await latencyScenario(
          {
            id: 'threads',
            scenario: 'threads',
            title: `2 Workers on CPUs ${two.join(' and ')} faulting on one region (pool ${c}, ${o.faults === 'inline' ? 'faults inline' : o.pin ? 'pinned' : 'not pinned'})`,
          },
          () => tmemLatency('pool', { ...measure, compressor: c, label: 'threads: 2 Workers', threads: 2, cpus: two }),
          () => 'per-fault times of both Workers (each pinned to its CPU, attachRegion(region.share()))',
          async (sc, run2) => {
            const one = await tmemLatency('pool', {
              ...measure,
              compressor: c,
              label: 'threads: 1 thread, same CPU',
              threads: 1,
              pin: true,
              faults: 'dispatcher', // the baseline is the dispatcher on the faulting thread's CPU, whatever --faults says
            });
            progress.end(`p50 ${fromSamples('x', 'baseline', one.ns, edges).summary!.p50} us`);
            const label = "tmem, 1 thread, dispatcher's CPU";
            sc.series.push(
              fromSamples(
                label,
                'baseline',
                one.ns,
                edges,
                'the main thread, pinned with the dispatcher (pin: true), the same pages and order',
              ),
            );
            sc.baseline = label;
            sc.badPages = run2.badPages + one.badPages;
          },
          [{ at: 'p50', max: 1.3, against: "one thread on the dispatcher's CPU" }],
        );
      }
    }

    // ---- sequential read-back
    if (wants.has('readback')) {
      const c = o.compressors[0];
      let run: ReadbackRun | null = null;
      let err: string | undefined;
      try {
        run = await tmemReadback({
          corpus,
          compressor: c,
          allocator: o.allocator,
          pin: o.pin,
          faults: o.faults,
          progress,
        });
      } catch (e) {
        err = errText(e);
        progress.end('FAILED');
      }
      const k: KernelResult = o.baselines ? await kernel('zram', c) : { skipped: '--no-baselines' };
      if (o.baselines && (k.skipped || !k.readback))
        note(`readback: ${k.skipped ?? 'the zram baseline measured no read-back'}`);
      const zl = `kernel zram (${k.algorithm ?? c}) sequential swap-in`;
      const ratio = run && k.readback?.usPerPage ? r3(run.usPerPage / k.readback.usPerPage) : null;
      scenarios.push({
        kind: 'bars',
        id: 'readback',
        title: `sequential read-back of an evicted region (${c}): each page copied whole, front to back`,
        unit: 'us/page',
        better: 'lower',
        status: run ? 'ok' : 'failed',
        ...(err ? { error: err } : {}),
        bars: [
          {
            label: 'tmem evicted region',
            role: 'tmem',
            value: run ? run.usPerPage : null,
            note: run
              ? `faults: ${run.faults.pool} pool, ${run.faults.same} same-filled, ${run.faults.staged} staged`
              : undefined,
          },
          { label: zl, role: 'baseline', value: k.readback?.usPerPage ?? null, note: k.skipped },
          {
            label: 'plain memory (resident pages)',
            role: 'reference',
            value: run ? run.plainUsPerPage : null,
            note: 'the same loop over the corpus itself',
          },
        ],
        ratio,
        ...(run ? { badPages: run.badPages } : {}),
        targets: [target(`us/page <= 0.5x ${zl} (at least 2x faster)`, ratio, { max: 0.5 })],
        notes:
          run && run.plainUsPerPage > 0
            ? [`tmem / plain memory: ${(run.usPerPage / run.plainUsPerPage).toFixed(1)}x`]
            : [],
      });
    }

    // ---- remote: the remote tier against a redis-server started here (lib/cli/remote-bench.ts)
    if (wants.has('remote')) {
      let rr: RemoteBenchResult | string | undefined;
      let err: string | undefined;
      try {
        rr = await remoteBench({ pages: o.pages, seed: o.seed, dir, url: o.remote }, progress);
      } catch (e) {
        err = errText(e);
        progress.end('FAILED');
      }
      if (typeof rr === 'string') note(`remote: ${rr}`);
      const ok = rr !== undefined && typeof rr !== 'string' ? rr : undefined;
      const sc: LatencyScenario = {
        kind: 'latency',
        id: 'remote',
        scenario: 'remote',
        title: o.remote
          ? `fault from the remote tier (the redis-server at ${o.remote.replace(/\/\/[^@/]*@/, '//')})`
          : 'fault from the remote tier (a redis-server on a loopback port)',
        status: ok || typeof rr === 'string' ? 'ok' : 'failed',
        ...(err ? { error: err } : {}),
        series: [],
        baseline: null,
        ratio: null,
        notes: [],
      };
      if (ok) {
        const get = 'bare native GET round trip';
        sc.series.push(
          fromSamples(
            'tmem',
            'tmem',
            ok.remoteNs,
            edges,
            `${ok.remoteFaults} faults from Redis, ${ok.swapFallbacks} from the swap file`,
          ),
          fromSamples(
            get,
            'baseline',
            ok.getNs,
            edges,
            `a ${ok.valueBytes}-byte value, one request at a time, same server`,
          ),
          fromSamples(
            `bare GET after ${ok.pacedGapUs} us of work`,
            'reference',
            ok.pacedGetNs,
            edges,
            "the server's CPU idles between requests, as between faults",
          ),
          fromSamples('tmem pool fault', 'reference', ok.poolNs, edges),
          fromSamples('tmem swap file fault', 'reference', ok.swapNs, edges, 'page cache warm'),
          fromSamples(
            "tmem mapped file's clean page from Redis",
            'reference',
            ok.cleanNs,
            edges,
            `${ok.cleanHits} served from Redis (no swap file)`,
          ),
          fromSamples('tmem mapped file page from the file', 'reference', ok.fileNs, edges, 'page cache warm'),
        );
        sc.baseline = get;
        sc.ratio = ratioOf(sc.series[0].summary, sc.series[1].summary);
        sc.targets = [target(`p50 <= 1.3x ${get}`, sc.ratio ? sc.ratio.p50 : null, { max: 1.3 })];
        sc.badPages = ok.badPages;
      }
      scenarios.push(sc);
      if (ok) {
        const ratio = ok.evictPagesPerSec > 0 ? r3(ok.writebackPagesPerSec / ok.evictPagesPerSec) : null;
        scenarios.push({
          kind: 'bars',
          id: 'remote-writeback',
          title: 'write-back to the remote tier (SET pipelines, one per batch and server)',
          unit: 'pages/s',
          better: 'higher',
          status: 'ok',
          bars: [
            { label: 'tmem write-back to Redis', role: 'tmem', value: ok.writebackPagesPerSec },
            { label: 'tmem pool eviction rate (region.evict())', role: 'baseline', value: ok.evictPagesPerSec },
          ],
          ratio,
          targets: [target('>= 1x the pool eviction rate', ratio, { min: 1 })],
          notes: [`repatriation into a pool with room: ${ok.repatriatedPagesPerSec} pages/s`],
        });
      }
    }
  } finally {
    if (corpusFile) removeCorpusFile(corpusFile);
  }

  const bad = scenarios.reduce((a, s) => a + (s.badPages ?? 0), 0);
  if (bad > 0) note(`WRONG DATA: ${bad} pages read back with contents other than written`);
  const cpus = os.cpus();
  return {
    tool: 'tmem bench',
    version: version(),
    startedAt: new Date(t0).toISOString(),
    durationMs: Date.now() - t0,
    host: {
      kernel: `${os.type()} ${os.release()}`,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      node: process.version,
      root,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      cpuIdle: idle,
    },
    options: {
      quick: o.quick,
      pages: o.pages,
      corpus: o.corpus,
      pattern: o.pattern,
      compressors: o.compressors,
      allocator: o.allocator,
      pin: o.pin,
      faults: o.faults,
      faultSpin: defaultFaultSpin(),
      threads: o.threads,
      scenarios: o.scenarios,
      seed: o.seed,
      rounds: o.rounds,
      remote: o.remote ? o.remote.replace(/\/\/[^@/]*@/, '//') : null, // without a password
      dir,
      baselines: o.baselines,
    },
    corpus: { source: bc.source, pages: corpus.pages, kinds: bc.counts },
    histogramEdgesUs: edges,
    scenarios,
    notes,
    ok: bad === 0 && scenarios.every((s) => s.status === 'ok'),
  };
}
