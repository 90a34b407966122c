/**
 * The `tmem` command (lib/cli.ts), run as a child process as a user runs it:
 * help, argument errors (exit code 2, the option named), a tiny real bench run
 * parsed from --json, --report's page, the corpus generators, and `tmem stats`
 * against a child program started with TMEM_STATS=1.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { target, type BenchResult, type LatencyScenario, type BarScenario } from '../lib/cli/bench';
import { buildCorpus } from '../lib/cli/corpus';
import { touchOrder } from '../lib/cli/measure';
import { parseBenchArgs, SCENARIOS, UsageError } from '../lib/cli/args';

const CLI = path.join(__dirname, '..', 'lib', 'cli.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function tmem(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tmem ${args.join(' ')}: no exit within ${opts.timeoutMs ?? 30000} ms\n${stderr}`));
    }, opts.timeoutMs ?? 30000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('tmem bench --help prints the options, exit 0', async (t) => {
  const r = await tmem(['bench', '--help']);
  t.is(r.code, 0);
  for (const s of [
    '--quick',
    '--pages',
    '--corpus',
    '--pattern',
    '--compressor',
    '--allocator',
    '--no-pin',
    '--threads',
    '--scenarios',
    '--json',
    '--report',
  ]) {
    t.true(r.stdout.includes(s), `help mentions ${s}`);
  }
});

test('tmem --help, tmem stats --help; no command prints usage with exit 2', async (t) => {
  const a = await tmem(['--help']);
  t.is(a.code, 0);
  t.regex(a.stdout, /bench/);
  t.regex(a.stdout, /stats <pid>/);
  const b = await tmem(['stats', '--help']);
  t.is(b.code, 0);
  t.regex(b.stdout, /--once/);
  const c = await tmem([]);
  t.is(c.code, 2);
  t.regex(c.stdout, /Usage: tmem/);
});

const bad: [string[], RegExp][] = [
  [['bench', '--pattern', 'spiral'], /'--pattern' must be one of sequential, random, zipfian; got 'spiral'/],
  [['bench', '--compressor', 'lz5'], /'--compressor' must be one of lz4, zstd/],
  [['bench', '--allocator', 'slab'], /'--allocator' must be one of zsmalloc, zbud/],
  [['bench', '--pages', 'lots'], /'--pages' must be an integer from 64/],
  [['bench', '--pages', '10'], /'--pages' must be an integer from 64/],
  [['bench', '--threads', '0'], /'--threads' must be an integer from 1 to 64/],
  [['bench', '--scenarios', 'zero,warp'], /unknown scenario 'warp'; accepted: zero, pool, swapfile, eviction, density/],
  [
    ['bench', '--scenario', 'steady,warp'],
    /option '--scenario': unknown scenario 'warp'; accepted: .*steady, fill, threads, readback/,
  ],
  [['bench', '--frobnicate'], /unknown option '--frobnicate' for 'tmem bench'; accepted: .*--pattern/],
  [['bench', '--pages'], /option '--pages' needs a value/],
  [['bench', '--json=yes'], /'--json' takes no value/],
  [['bench', '--corpus', '/nonexistent/pages.bin'], /'--corpus': '\/nonexistent\/pages.bin' is neither a generator/],
  [['bench', '--corpus', 'json=60,lava=40'], /unknown page kind 'lava'/],
  [['bench', '--report', '/nonexistent-dir/r.html'], /'--report': the directory '\/nonexistent-dir' does not exist/],
  [['bench', 'extra'], /unexpected argument 'extra'/],
  [['stats'], /needs the pid/],
  [['stats', 'abc'], /'<pid>' must be an integer/],
  [['stats', '1', '--interval', '5'], /'--interval' must be an integer from 100/],
  [['frob'], /unknown command 'frob'/],
];
for (const [args, re] of bad) {
  test(`bad command line: tmem ${args.join(' ')} -> exit 2`, async (t) => {
    const r = await tmem(args);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, re);
    t.regex(r.stderr, /Run 'tmem .*--help'/);
    t.is(r.stdout, '');
  });
}

test('options: defaults, --quick, --no-pin, --scenarios order, --name=value', (t) => {
  const d = parseBenchArgs([]);
  t.is(d.pages, 20000);
  t.deepEqual(
    d.scenarios,
    SCENARIOS.filter((s) => s !== 'remote'),
    'every scenario but remote (it starts a redis-server) by default',
  );
  t.deepEqual(parseBenchArgs(['--scenario', 'steady']).scenarios, ['steady']);
  t.deepEqual(d.compressors, ['lz4', 'zstd']);
  t.true(d.pin);
  const q = parseBenchArgs(['--quick', '--no-pin', '--scenarios=density,zero', '--compressor=zstd', '--pages=700']);
  t.is(q.pages, 700);
  t.is(q.rounds, 1);
  t.false(q.pin);
  t.deepEqual(q.scenarios, ['zero', 'density']);
  t.deepEqual(q.compressors, ['zstd']);
  t.throws(() => parseBenchArgs(['--threads', '-1']), { instanceOf: UsageError });
});

test("corpus generators: single kinds, a mix, a file of the user's pages", (t) => {
  const z = buildCorpus('zero', 100, 1);
  t.is(z.corpus.pages, 100);
  t.deepEqual(z.counts, { zero: 100 });
  t.true(z.corpus.data.every((b) => b === 0));
  const j = buildCorpus('text', 100, 1);
  t.deepEqual(j.counts, { json: 100 });
  t.is(j.corpus.data[0], '{'.charCodeAt(0));
  const m = buildCorpus('json=50,zero=25,random=25', 200, 3);
  t.deepEqual(m.counts, { json: 100, zero: 50, random: 50 });
  t.deepEqual(buildCorpus('json=50,zero=25,random=25', 200, 3).corpus.data, m.corpus.data, 'deterministic per seed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-cli-corpus-'));
  try {
    const file = path.join(dir, 'pages.bin');
    const data = Buffer.alloc(3 * 4096 + 100, 7);
    data.fill(0, 4096, 8192);
    fs.writeFileSync(file, data);
    const f = buildCorpus(file, 1000, 1);
    t.is(f.corpus.pages, 64, 'a file under 64 pages is repeated to 64');
    t.is(f.corpus.data[0], 7);
    t.is(f.corpus.data[4096], 0);
    t.is(f.corpus.data[3 * 4096 + 100], 0, 'last page zero-padded');
    t.is(f.corpus.data[4 * 4096], 7, 'repeated from the start');
    t.true(f.counts.zero > 0 && f.counts.file > 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('touch orders are permutations; zipfian puts hot pages first', (t) => {
  for (const p of ['sequential', 'random', 'zipfian'] as const) {
    const o = touchOrder(p, 1000, 5);
    t.deepEqual(
      [...o].sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
      p,
    );
  }
  t.deepEqual([...touchOrder('sequential', 5, 1)], [0, 1, 2, 3, 4]);
});

function checkLatency(t: import('ava').ExecutionContext, sc: LatencyScenario, pages: number): void {
  t.is(sc.status, 'ok', `${sc.id}: ${sc.error}`);
  const tm = sc.series[0];
  t.is(tm.role, 'tmem');
  t.is(tm.summary!.n, pages, `${sc.id}: one sample per page`);
  t.true(
    tm.summary!.p50 > 0 &&
      tm.summary!.p50 <= tm.summary!.p90 &&
      tm.summary!.p90 <= tm.summary!.p99 &&
      tm.summary!.p99 <= tm.summary!.p999,
    `${sc.id}: ordered percentiles`,
  );
  t.is(sc.badPages, 0, `${sc.id}: every page read back right`);
  t.true(tm.cdf!.length > 10 && tm.cdf![tm.cdf!.length - 1][1] === 1, `${sc.id}: CDF ends at 1`);
  t.is(
    tm.hist!.reduce((a, b) => a + b, 0),
    pages,
    `${sc.id}: histogram holds every sample`,
  );
  for (const s of sc.series.slice(1))
    t.true(s.summary !== null || typeof s.skipped === 'string', `${sc.id}: ${s.label} measured or says why not`);
  const base = sc.series.find((s) => s.label === sc.baseline);
  if (base)
    t.is(
      sc.ratio!.p50,
      Math.round((tm.summary!.p50 / base.summary!.p50) * 1000) / 1000,
      `${sc.id}: ratio = tmem / baseline`,
    );
  else t.is(sc.ratio, null);
}

// The test suite never starts the kernel baselines (zram, swapon, dropping the page cache):
// they change the machine. The CI browser check (npm run test:report) runs them for real.
// Every scenario is in the default set; the suite runs them in two halves to keep each child short.
test('tmem bench --quick --pages 500 --json: one JSON document with every scenario of the idle state', async (t) => {
  const r = await tmem(
    [
      'bench',
      '--quick',
      '--pages',
      '500',
      '--no-baselines',
      '--json',
      '--scenarios',
      'zero,pool,swapfile,eviction,density',
    ],
    { timeoutMs: 55000 },
  );
  t.is(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as BenchResult;
  t.is(doc.tool, 'tmem bench');
  t.true(doc.ok);
  t.is(doc.corpus.pages, 500);
  t.deepEqual(
    doc.scenarios.map((s) => s.id),
    ['zero', 'pool-lz4', 'pool-zstd', 'swapfile', 'eviction', 'density'],
  );
  for (const sc of doc.scenarios) if (sc.kind === 'latency') checkLatency(t, sc, 500);
  const pool = doc.scenarios.find((s) => s.id === 'pool-lz4') as LatencyScenario;
  t.is(pool.faults!.pool + pool.faults!.same, 500, 'every touch faulted from the pool (or same-filled)');
  const zero = doc.scenarios.find((s) => s.id === 'zero') as LatencyScenario;
  t.is(zero.faults!.zero, 500);
  const sf = doc.scenarios.find((s) => s.id === 'swapfile') as LatencyScenario;
  t.true(sf.faults!.file > 0, 'pages came back from the swap file');
  const ev = doc.scenarios.find((s) => s.id === 'eviction') as BarScenario;
  t.true(ev.bars[0].value! > 0);
  const dn = doc.scenarios.find((s) => s.id === 'density') as BarScenario;
  t.true(dn.bars[1].value! > 0 && dn.bars[1].value! < 4096, 'pool bytes per page below a page');
  t.true(
    doc.notes.some((n) => /--no-baselines/.test(n)),
    'says why the baselines are missing',
  );
  t.regex(r.stderr, /pool lz4: touch/, 'progress on stderr');
});

test('tmem bench --quick --pages 500 --json: the steady-state scenarios (steady, fill, threads, readback) and their targets', async (t) => {
  const r = await tmem(
    ['bench', '--quick', '--pages', '500', '--no-baselines', '--json', '--scenario', 'readback,threads,fill,steady'],
    { timeoutMs: 55000 },
  );
  t.is(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as BenchResult;
  t.true(doc.ok);
  const oneCpu = doc.notes.some((n) => /^threads: this process may run on 1 CPU/.test(n));
  t.deepEqual(
    doc.scenarios.map((s) => s.id),
    ['steady', 'fill', ...(oneCpu ? [] : ['threads']), 'readback'],
    'in the order of the scenario list',
  );
  for (const sc of doc.scenarios) if (sc.kind === 'latency') checkLatency(t, sc, 500);
  for (const sc of doc.scenarios)
    if (sc.kind === 'bars') t.is(sc.badPages ?? 0, 0, `${sc.id}: every page read back right`);
  // Eviction runs during the touches; the targets are listed (not measured without baselines, and never a failure).
  const st = doc.scenarios.find((s) => s.id === 'steady') as LatencyScenario;
  t.true(st.faults!.pool + st.faults!.same > 250, 'most touches fault from the pool at residentLimit = 1/8');
  t.true(
    st.notes.some((n) => /^[1-9]\d* evictions during the timed touches/.test(n)),
    'eviction ran during the touches',
  );
  t.deepEqual(
    st.targets!.map((g) => [g.label, g.met]),
    [
      ['p50 <= 1.5x kernel zram in a memory cgroup', null],
      ['p99 <= 2x kernel zram in a memory cgroup', null],
    ],
  );
  const th = doc.scenarios.find((s) => s.id === 'threads') as LatencyScenario | undefined;
  if (th) {
    t.is(th.series[1].role, 'baseline');
    t.is(th.series[1].summary!.n, 500, 'the one-thread baseline touches the same pages');
    t.is(th.targets![0].value, th.ratio!.p50, 'threads: the target is on the p50 ratio against one thread');
  }
  const fill = doc.scenarios.find((s) => s.id === 'fill') as BarScenario;
  t.true(fill.bars[0].value! > 0, 'fill MiB/s');
  t.true((fill.detail as { evictions: number }).evictions > 0, 'the fill evicted');
  const rb = doc.scenarios.find((s) => s.id === 'readback') as BarScenario;
  t.true(rb.bars[0].value! > 0 && rb.bars[2].value! > 0, 'read-back and plain memory us/page');
  t.regex(r.stderr, /steady state: touch/);
  t.true(doc.notes.some((n) => /--no-baselines/.test(n)));
});

test('targets: met, missed, not measured; ratios at the bound meet it', (t) => {
  t.is(target('p50 <= 1.5x k', 1.5, { max: 1.5 }).met, true);
  t.is(target('p50 <= 1.5x k', 1.51, { max: 1.5 }).met, false);
  t.is(target('MiB/s >= 1x k', 0.99, { min: 1 }).met, false);
  t.is(target('MiB/s >= 1x k', 2, { min: 1 }).met, true);
  t.is(target('x', null, { max: 1 }).met, null);
});

test('tmem bench --threads 2: faults from two Workers through attachRegion(region.share())', async (t) => {
  const r = await tmem(
    [
      'bench',
      '--quick',
      '--pages',
      '500',
      '--scenarios',
      'pool,zero',
      '--compressor',
      'zstd',
      '--threads',
      '2',
      '--pattern',
      'zipfian',
      '--no-baselines',
      '--json',
    ],
    { timeoutMs: 40000 },
  );
  t.is(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as BenchResult;
  t.deepEqual(
    doc.scenarios.map((s) => s.id),
    ['zero', 'pool-zstd'],
  );
  for (const sc of doc.scenarios) checkLatency(t, sc as LatencyScenario, 500);
  t.true(doc.notes.some((n) => /--no-baselines/.test(n)));
});

test('tmem bench --report writes a self-contained page with Chart.js inlined; the table goes to stdout', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-cli-report-'));
  try {
    const file = path.join(dir, 'report.html');
    const r = await tmem(
      [
        'bench',
        '--quick',
        '--pages',
        '500',
        '--scenarios',
        'zero,eviction,density',
        '--corpus',
        'json=70,zero=30',
        '--no-baselines',
        '--report',
        file,
      ],
      { timeoutMs: 40000 },
    );
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /fault latency, us per touch\s+p50\s+p90\s+p99\s+p99\.9/);
    t.regex(r.stdout, /zero\s+first touch/);
    t.regex(r.stdout, /eviction throughput/);
    const html = fs.readFileSync(file, 'utf8');
    t.true(html.includes('Chart.js v4'), 'the library is inlined');
    t.false(/<script[^>]+src=/i.test(html), 'no external script');
    t.false(/<link[^>]+href=/i.test(html), 'no external stylesheet');
    t.regex(html, /data-expected="4"/, 'CDF of zero, histogram, eviction and density bars');
    for (const id of ['cdf-zero', 'histogram', 'bars-eviction', 'bars-density'])
      t.true(html.includes(`<canvas id="${id}">`), id);
    t.true(html.includes('document.body') && html.includes('dataset.rendered'), 'sets the rendered marker');
    const data = /<script id="bench-data" type="application\/json">([\s\S]*?)<\/script>/.exec(html);
    t.truthy(data);
    t.is((JSON.parse(data![1]) as BenchResult).corpus.pages, 500);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- tmem stats

const CHILD = `
const { open } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'))});
(async () => {
  const swap = await open({ residentLimit: '1MiB', poolLimit: '16MiB' });
  const region = swap.region('4MiB');
  const v = new Uint8Array(region.buffer);
  for (let i = 0; i < v.length; i += 4096) v.fill((i >> 12) & 0xff, i, i + 1000);
  await region.evict();
  let s = 0;
  for (let i = 0; i < v.length; i += 4096) s += v[i];
  process.stdout.write('ready ' + s + '\\n');
  // Keep faulting a little, so that faults per second is not always 0.
  const timer = setInterval(() => { region.evict().then(() => { for (let i = 0; i < v.length; i += 4096 * 8) s += v[i]; }); }, 50);
  process.stdin.on('data', async () => { clearInterval(timer); await region.close(); await swap.close(); process.exit(0); });
  // The test process is gone (killed by ava's timeout, say): its end of stdin closes. Never outlive it.
  process.stdin.on('end', () => process.exit(0));
})();
`;

async function startChild(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', CHILD], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, TMEM_STATS: '1' },
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('stats child not ready in 15 s')), 15000);
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`stats child exited (${code})`)));
  });
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.stdin!.write('stop\n');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

test("tmem stats --once <pid>: a running program's pool, as a table and as JSON", async (t) => {
  const child = await startChild();
  try {
    const pid = String(child.pid);
    const a = await tmem(['stats', '--once', pid]);
    t.is(a.code, 0, a.stderr);
    t.regex(a.stdout, new RegExp(`tmem stats: pid ${pid}`));
    t.regex(a.stdout, /resident\s+pool\s+stored\s+ratio\s+swap file\s+faults\/s/);
    const b = await tmem(['stats', '--once', '--json', pid]);
    t.is(b.code, 0, b.stderr);
    const s = JSON.parse(b.stdout) as {
      pid: number;
      swaps: {
        poolBytes: number;
        residentBytes: number;
        faults: number;
        faultsPerSecond: number | null;
        compressionRatio: number;
      }[];
    };
    t.is(s.pid, child.pid as number);
    t.is(s.swaps.length, 1);
    t.true(s.swaps[0].poolBytes > 0, 'pages in the pool');
    t.true(s.swaps[0].faults >= 1024, 'the child faulted every page back');
    t.is(s.swaps[0].faultsPerSecond, null, 'one sample: no rate');
    const c = await tmem(['stats', '--json', '--count', '2', '--interval', '300', pid]);
    t.is(c.code, 0, c.stderr);
    const lines = c.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as typeof s);
    t.is(lines.length, 2);
    t.is(typeof lines[1].swaps[0].faultsPerSecond, 'number', 'rate from two samples');
    t.true(lines[1].swaps[0].faultsPerSecond! > 0, 'the child keeps faulting');
  } finally {
    await stopChild(child);
  }
});

test('tmem stats <pid> of a process without the endpoint: exit 1 and what to do', async (t) => {
  const r = await tmem(['stats', '--once', String(process.pid)]);
  t.is(r.code, 1);
  t.regex(r.stderr, /no stats endpoint for process \d+ \(start it with TMEM_STATS=1/);
});
