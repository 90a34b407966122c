/**
 * `tmem bench --report FILE.html`: one self-contained page, no network. The
 * result document is embedded as JSON, Chart.js's UMD build is inlined (the
 * copy the build puts in dist/lib/cli/vendor/, scripts/vendor-chartjs.js;
 * chart.js is a devDependency), and a small script draws:
 *
 *   - per latency scenario, the CDF of tmem's touch latency (every sample)
 *     against each baseline (the percentiles the baseline program prints);
 *   - a histogram of tmem's touch latency, all latency scenarios overlaid;
 *   - eviction throughput bars and density bars, tmem beside the kernel.
 *
 * When every chart has drawn, the page sets document.body.dataset.rendered to
 * the number of charts (document.body.dataset.expected says how many there
 * are); a script error sets document.body.dataset.error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BenchResult, LatencyScenario } from './bench';

/**
 * Chart.js's minified UMD build: the copy shipped in the package (vendor/,
 * made at build time), else chart.js from node_modules (a development tree).
 * @throws Error with code ERR_TMEM_NO_CHARTJS when neither is there
 */
export function chartJsSource(): string {
  const shipped = path.join(__dirname, 'vendor', 'chart.umd.min.js');
  if (fs.existsSync(shipped)) return fs.readFileSync(shipped, 'utf8');
  try {
    return fs.readFileSync(path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  } catch {
    const err = new Error(
      'tmem bench --report: Chart.js is missing (dist/lib/cli/vendor/chart.umd.min.js is made by the build: run `npm run build:ts` in the tmem repository, or `npm install chart.js`); --json and the table need no chart',
    );
    (err as NodeJS.ErrnoException).code = 'ERR_TMEM_NO_CHARTJS';
    throw err;
  }
}

const esc = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
/** Text safe inside a <script> element. */
const scriptSafe = (s: string): string => s.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
const f2 = (x: number | null | undefined): string =>
  x === null || x === undefined ? '–' : x >= 1000 ? x.toFixed(0) : x.toFixed(2);

/** Charts the page will draw (ids of their canvases). */
export function chartIds(r: BenchResult): string[] {
  const ids: string[] = [];
  const lat = r.scenarios.filter(
    (s): s is LatencyScenario => s.kind === 'latency' && s.status === 'ok' && s.series.length > 0,
  );
  for (const s of lat) ids.push(`cdf-${s.id}`);
  if (lat.some((s) => s.series.some((x) => x.hist))) ids.push('histogram');
  for (const s of r.scenarios) if (s.kind === 'bars' && s.bars.some((b) => b.value !== null)) ids.push(`bars-${s.id}`);
  return ids;
}

function summaryTable(r: BenchResult): string {
  const rows: string[] = [];
  for (const sc of r.scenarios) {
    if (sc.kind === 'latency') {
      rows.push(
        `<tr class="group"><th colspan="8">${esc(sc.id)}: ${esc(sc.title)}${sc.status === 'failed' ? ` — FAILED: ${esc(sc.error ?? '')}` : ''}</th></tr>`,
      );
      for (const s of sc.series) {
        const q = s.summary;
        const ratio =
          s.role === 'tmem' && sc.ratio
            ? `${sc.ratio.p50.toFixed(2)}× / ${sc.ratio.p99.toFixed(2)}×`
            : s.role === 'tmem'
              ? '–'
              : s.role;
        rows.push(
          q
            ? `<tr class="${s.role}"><td>${esc(s.label)}</td><td>${f2(q.p50)}</td><td>${f2(q.p90)}</td><td>${f2(q.p99)}</td><td>${f2(q.p999)}</td><td>${q.n}</td><td>${ratio}</td><td class="note">${esc(s.note ?? '')}</td></tr>`
            : `<tr class="${s.role} skipped"><td>${esc(s.label)}</td><td colspan="6">not measured</td><td class="note">${esc(s.skipped ?? '')}</td></tr>`,
        );
      }
    } else {
      rows.push(
        `<tr class="group"><th colspan="8">${esc(sc.id)}: ${esc(sc.title)}, ${esc(sc.unit)} (${sc.better} is better)${sc.status === 'failed' ? ` — FAILED: ${esc(sc.error ?? '')}` : ''}</th></tr>`,
      );
      for (const b of sc.bars) {
        const ratio =
          b.role === 'tmem' && sc.ratio !== null ? `${sc.ratio.toFixed(2)}×` : b.role === 'tmem' ? '–' : b.role;
        const v =
          b.value === null
            ? 'not measured'
            : Math.abs(b.value) >= 100
              ? Math.round(b.value).toLocaleString('en-US')
              : b.value.toPrecision(3);
        rows.push(
          `<tr class="${b.role}"><td>${esc(b.label)}</td><td colspan="5">${v}</td><td>${ratio}</td><td class="note">${esc(b.note ?? '')}</td></tr>`,
        );
      }
    }
    for (const g of sc.targets ?? []) {
      const verdict = g.met === null ? 'not measured' : g.met ? 'met' : 'missed';
      rows.push(
        `<tr class="target"><td colspan="6">target: ${esc(g.label)}</td><td>${g.value === null ? '–' : `${g.value.toFixed(2)}×`}</td><td class="note">${verdict}</td></tr>`,
      );
    }
  }
  return `<table class="summary"><thead><tr><th></th><th>p50 µs</th><th>p90</th><th>p99</th><th>p99.9</th><th>n</th><th>ratio p50 / p99</th><th></th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
}

const RENDER = String.raw`
(function () {
  var body = document.body;
  window.addEventListener('error', function (e) { body.dataset.error = String(e.message); });
  try {
    var R = JSON.parse(document.getElementById('bench-data').textContent);
    var expected = Number(body.dataset.expected);
    var drawn = {};
    var count = 0;
    Chart.register({ id: 'renderMarker', afterRender: function (chart) {
      if (drawn[chart.id]) return;
      drawn[chart.id] = true;
      count++;
      if (count === expected) body.dataset.rendered = String(count);
    } });
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", sans-serif';
    var TMEM = '#e8590c', BASE = ['#1971c2', '#2f9e44', '#7048e8'], REF = '#868e96';
    var LAT = ['#e8590c', '#1971c2', '#2f9e44', '#ae3ec9', '#f08c00'];
    function el(id) { return document.getElementById(id); }
    var edges = R.histogramEdgesUs;
    var lat = R.scenarios.filter(function (s) { return s.kind === 'latency' && s.status === 'ok' && s.series.length > 0; });

    lat.forEach(function (sc) {
      var bi = 0;
      var datasets = sc.series.filter(function (s) { return s.cdf; }).map(function (s) {
        var color = s.role === 'tmem' ? TMEM : s.role === 'reference' ? REF : BASE[bi++ % BASE.length];
        var q = s.cdfKind === 'quantiles';
        return {
          label: s.label + (q ? ' (p50/p90/p99/p99.9)' : ''),
          data: s.cdf.map(function (p) { return { x: Math.max(p[0], 0.01), y: p[1] }; }),
          borderColor: color, backgroundColor: color, showLine: true,
          borderWidth: s.role === 'tmem' ? 2.5 : 2, borderDash: s.role === 'reference' ? [6, 4] : q ? [3, 3] : [],
          pointRadius: q ? 4 : 0, stepped: q ? false : 'before', tension: 0,
        };
      });
      new Chart(el('cdf-' + sc.id), {
        type: 'scatter',
        data: { datasets: datasets },
        options: {
          plugins: {
            title: { display: true, text: sc.id + ': ' + sc.title + ' — CDF of touch latency' },
            legend: { labels: { usePointStyle: true, pointStyle: 'line' } },
            tooltip: { callbacks: { label: function (c) { return c.dataset.label + ': ' + (100 * c.parsed.y).toFixed(1) + '% of touches <= ' + c.parsed.x + ' us'; } } },
          },
          scales: {
            x: { type: 'logarithmic', title: { display: true, text: 'latency of one touch, us (log scale)' },
              ticks: { autoSkip: false, maxRotation: 0, callback: function (v) { var m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9)); return Math.abs(m - 1) < 1e-6 || Math.abs(m - 2) < 1e-6 || Math.abs(m - 5) < 1e-6 ? String(+v.toPrecision(3)) : ''; } } },
            y: { min: 0, max: 1, title: { display: true, text: 'fraction of touches <= x' } },
          },
        },
      });
    });

    if (el('histogram')) {
      var withHist = [];
      lat.forEach(function (sc) { sc.series.forEach(function (s) { if (s.hist && s.role === 'tmem') withHist.push({ sc: sc, s: s }); }); });
      var lo = edges.length, hi = 0;
      withHist.forEach(function (h) { h.s.hist.forEach(function (c, i) { if (c > 0) { lo = Math.min(lo, i); hi = Math.max(hi, i); } }); });
      lo = Math.max(0, lo - 1); hi = Math.min(edges.length - 2, hi + 1);
      var labels = [];
      for (var i = lo; i <= hi; i++) labels.push(edges[i] + '–' + edges[i + 1]);
      new Chart(el('histogram'), {
        type: 'bar',
        data: {
          labels: labels,
          datasets: withHist.map(function (h, k) {
            var n = h.s.summary.n;
            return { label: 'tmem ' + h.sc.id, data: h.s.hist.slice(lo, hi + 1).map(function (c) { return 100 * c / n; }),
              backgroundColor: LAT[k % LAT.length] + 'b0', borderColor: LAT[k % LAT.length], borderWidth: 1, barPercentage: 1, categoryPercentage: 0.9 };
          }),
        },
        options: {
          plugins: { title: { display: true, text: 'tmem touch latency histogram (10 bins per decade)' } },
          scales: { x: { title: { display: true, text: 'latency of one touch, us' } }, y: { title: { display: true, text: '% of touches' } } },
        },
      });
    }

    R.scenarios.forEach(function (sc) {
      if (sc.kind !== 'bars' || !el('bars-' + sc.id)) return;
      var bars = sc.bars;
      new Chart(el('bars-' + sc.id), {
        type: 'bar',
        data: {
          labels: bars.map(function (b) { return b.value === null ? b.label + ' (not measured)' : b.label; }),
          datasets: [{ label: sc.unit, data: bars.map(function (b) { return b.value; }),
            backgroundColor: bars.map(function (b) { return b.role === 'tmem' ? TMEM : b.role === 'baseline' ? BASE[0] : REF; }) }],
        },
        options: {
          indexAxis: 'y',
          plugins: { legend: { display: false }, title: { display: true, text: sc.title + ', ' + sc.unit + ' (' + sc.better + ' is better)' + (sc.ratio !== null ? ' — tmem / kernel = ' + sc.ratio.toFixed(2) : '') } },
          scales: { x: { beginAtZero: true, title: { display: true, text: sc.unit } } },
        },
      });
    });
    if (expected === 0) body.dataset.rendered = '0';
  } catch (e) {
    body.dataset.error = String(e && e.message || e);
    throw e;
  }
})();
`;

/** The report page as one HTML string. */
export function renderReport(r: BenchResult): string {
  const ids = chartIds(r);
  const o = r.options;
  const kinds = Object.entries(r.corpus.kinds)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const canvases = ids
    .map((id) => `<div class="chart${id.startsWith('bars-') ? ' bars' : ''}"><canvas id="${id}"></canvas></div>`)
    .join('\n');
  const notes = r.notes.length
    ? `<h2>Not measured here / notes</h2><ul>${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>tmem bench report</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #212529; background: #fff; }
  h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
  .meta { color: #495057; margin: 2px 0; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 16px; }
  .chart { position: relative; height: 340px; border: 1px solid #dee2e6; border-radius: 6px; padding: 8px; }
  .chart.bars { height: 240px; }
  table.summary { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  table.summary td, table.summary th { padding: 3px 8px; border-bottom: 1px solid #e9ecef; text-align: right; }
  table.summary td:first-child, table.summary th:first-child, td.note, tr.group th { text-align: left; }
  tr.group th { background: #f1f3f5; font-weight: 600; }
  tr.tmem td:first-child { color: #e8590c; font-weight: 600; }
  tr.reference td, tr.skipped td { color: #868e96; }
  td.note { color: #868e96; font-size: 12px; }
  table.summary td:not(.note), table.summary th { white-space: nowrap; }
</style></head>
<body data-expected="${ids.length}">
<h1>tmem bench</h1>
<p class="meta">${esc(r.startedAt)} · tmem ${esc(r.version)} · ${esc(r.host.kernel)} · ${r.host.cpus} × ${esc(r.host.cpuModel)} · node ${esc(r.host.node)}${r.host.root ? ' · root' : ''} · ${(r.durationMs / 1000).toFixed(1)} s</p>
<p class="meta">${r.corpus.pages} pages of ${esc(r.corpus.source)} (${esc(kinds)}) · pattern ${o.pattern} · ${o.compressors.join(', ')} · ${o.allocator} · ${o.pin ? 'pinned' : 'not pinned'} · ${o.threads} faulting thread${o.threads > 1 ? 's' : ''}</p>
<h2>Plots</h2>
<p class="meta">CDF: for a latency x, the fraction of touches that took at most x. A curve further left is faster; where it reaches the top is the tail. tmem's curve is drawn from every sample; the baselines' from the percentiles their programs print (points at p50, p90, p99, p99.9).</p>
<div class="grid">
${canvases}
</div>
<h2>Figures</h2>
${summaryTable(r)}
${notes}
<script id="bench-data" type="application/json">${scriptSafe(JSON.stringify(r))}</script>
<script>${scriptSafe(chartJsSource())}</script>
<script>${RENDER}</script>
</body></html>
`;
}
