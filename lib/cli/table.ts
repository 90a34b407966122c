/**
 * The terminal table of `tmem bench`, made from the result document.
 */
import type { BenchResult, LatencyScenario, BarScenario, Series, Target } from './bench';

const f2 = (x: number | undefined | null): string =>
  x === undefined || x === null ? '-' : x >= 1000 ? x.toFixed(0) : x.toFixed(2);
const rat = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${x.toFixed(2)}x`);
const num = (x: number): string => (Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : x.toPrecision(3));

/** "target p50 <= 1.5x kernel ...: 2.80x  MISSED" */
function targetText(g: Target): string {
  const verdict = g.met === null ? 'not measured' : g.met ? 'met' : 'MISSED';
  return `target ${g.label}: ${g.value === null ? '-' : rat(g.value)}  ${verdict}`;
}

function latencyRows(sc: LatencyScenario, out: string[]): void {
  out.push(`${sc.id.padEnd(8)} ${sc.title}${sc.status === 'failed' ? `: FAILED: ${sc.error}` : ''}`);
  for (const s of sc.series) out.push(seriesRow(s, sc));
  for (const g of sc.targets ?? []) out.push(`           ${targetText(g)}`);
  for (const n of sc.notes) out.push(`           note: ${n}`);
}

function seriesRow(s: Series, sc: LatencyScenario): string {
  const name = `  ${s.role === 'tmem' ? 'tmem' : s.label}`.padEnd(40).slice(0, 40);
  if (!s.summary) return `${name} skipped: ${s.skipped ?? 'not measured'}`;
  const q = s.summary;
  const cells = [q.p50, q.p90, q.p99, q.p999].map((x) => f2(x).padStart(8)).join('');
  let tail = '';
  if (s.role === 'tmem')
    tail = sc.ratio
      ? `${rat(sc.ratio.p50).padStart(9)}${rat(sc.ratio.p99).padStart(9)}`
      : `${'-'.padStart(9)}${'-'.padStart(9)}`;
  else if (s.role === 'reference') tail = '  (reference)';
  else if (s.label === sc.baseline) tail = '  (baseline)';
  return `${name}${cells}${String(q.n).padStart(8)}${tail}`;
}

function barRows(sc: BarScenario, out: string[]): void {
  out.push(
    `${sc.id.padEnd(8)} ${sc.title}, ${sc.unit} (${sc.better} is better)${sc.status === 'failed' ? `: FAILED: ${sc.error}` : ''}`,
  );
  for (const b of sc.bars) {
    const name = `  ${b.label}`.padEnd(40).slice(0, 40);
    const v = b.value === null ? `skipped${b.note ? `: ${b.note}` : ''}` : num(b.value).padStart(12);
    const tail =
      b.value === null
        ? ''
        : b.role === 'tmem'
          ? `   ratio ${rat(sc.ratio)}`
          : b.role === 'baseline'
            ? '   (baseline)'
            : '';
    out.push(`${name}${v}${tail}`);
  }
  for (const g of sc.targets ?? []) out.push(`           ${targetText(g)}`);
  for (const n of sc.notes) out.push(`           note: ${n}`);
}

/** The whole table as text. */
export function renderTable(r: BenchResult): string {
  const o = r.options;
  const out: string[] = [];
  const kinds = Object.entries(r.corpus.kinds)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  out.push(`tmem bench ${r.version}: ${r.corpus.pages} pages of ${r.corpus.source} (${kinds})`);
  out.push(
    `  pattern ${o.pattern}, ${o.compressors.join('+')}, ${o.allocator}, ${o.pin ? 'pinned' : 'not pinned'}, ` +
      `${o.threads} faulting thread${o.threads > 1 ? 's' : ''}; ${r.host.kernel}, ${r.host.cpus} CPUs, node ${r.host.node}${r.host.root ? ', root' : ''}; ${(r.durationMs / 1000).toFixed(1)} s`,
  );
  const lat = r.scenarios.filter((s): s is LatencyScenario => s.kind === 'latency');
  if (lat.length > 0) {
    out.push('');
    out.push(
      `fault latency, us per touch${' '.repeat(13)}${['p50', 'p90', 'p99', 'p99.9'].map((h) => h.padStart(8)).join('')}${'n'.padStart(8)}${'x p50'.padStart(9)}${'x p99'.padStart(9)}`,
    );
    for (const sc of lat) latencyRows(sc, out);
  }
  const bars = r.scenarios.filter((s): s is BarScenario => s.kind === 'bars');
  if (bars.length > 0) {
    out.push('');
    for (const sc of bars) barRows(sc, out);
  }
  out.push('');
  out.push(
    'x p50, x p99: tmem / baseline at that percentile (below 1: tmem is faster). Ratios of bars: tmem / baseline.',
  );
  const targets = r.scenarios.flatMap((sc) => (sc.targets ?? []).map((g) => [sc.id, g] as const));
  if (targets.length > 0) {
    const met = targets.filter(([, g]) => g.met === true).length;
    const missed = targets.filter(([, g]) => g.met === false).length;
    out.push('');
    out.push(
      `targets (issue 12; printed, never enforced): ${met} met, ${missed} missed, ${targets.length - met - missed} not measured`,
    );
    for (const [id, g] of targets) out.push(`  ${id.padEnd(9)} ${targetText(g)}`);
  }
  if (r.notes.length > 0) {
    out.push('');
    out.push('not measured here / notes:');
    for (const n of r.notes) out.push(`  - ${n}`);
  }
  if (!r.ok) out.push('\nRESULT: a scenario failed or read back wrong data (exit code 1)');
  return out.join('\n') + '\n';
}
