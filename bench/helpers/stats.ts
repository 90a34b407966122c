/**
 * Helpers of the benchmarks (bench/*.ts): the latency percentiles and the
 * random page order of lib/cli/samples.ts (re-exported: `tmem bench` uses
 * them too), a table row, the command-line loop, and the native baseline
 * programs run as children whose last stdout line is JSON.
 */
import { spawnSync, type SpawnSyncOptionsWithStringEncoding, type SpawnSyncReturns } from 'node:child_process';
import * as path from 'node:path';

export {
  nearestRank,
  summarizeSorted,
  summarize,
  summarizeWithMin,
  shuffled,
  type Summary,
  type SummaryWithMin,
} from '../../lib/cli/samples';
import type { Summary } from '../../lib/cli/samples';

/** One table row: `name` padded to `width`, then n and the percentiles in us (and ` note` when given). */
export function summaryLine(
  name: string,
  s: Omit<Summary, 'max'> | null | undefined,
  width: number,
  note?: string,
): string {
  const tail = note === undefined ? '' : ` ${note}`;
  if (!s) return `${name.padEnd(width)} (not measured)${tail}`;
  const f = (x: number): string => x.toFixed(2).padStart(8);
  return `${name.padEnd(width)} n=${String(s.n).padStart(6)}  p50=${f(s.p50)}  p90=${f(s.p90)}  p99=${f(s.p99)}  p99.9=${f(s.p999)}  mean=${f(s.mean)} us${tail}`;
}

/**
 * Walks a benchmark's command line: `on(arg, next)` handles one option (next()
 * takes its value) and returns false for an option it does not know.
 */
export function eachOption(argv: string[], benchFile: string, on: (a: string, next: () => string) => boolean): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (!on(a, next)) throw new Error(`unknown option ${a} (see the header of ${benchFile})`);
  }
}

/** Path of a program of bench/native built by `npm run build:native`. */
export function nativeBenchProgram(name: string): string {
  return path.join(__dirname, '..', '..', '..', 'build-cmake', 'bench', 'native', name);
}

/** Runs a baseline program to the end; `last` is its last stdout line (JSON when it succeeded). */
export function runJsonProgram(
  bin: string,
  args: string[],
  options: Omit<SpawnSyncOptionsWithStringEncoding, 'encoding'>,
): {
  r: SpawnSyncReturns<string>;
  last: string;
} {
  const r = spawnSync(bin, args, { ...options, encoding: 'utf8' });
  const lines = (r.stdout ?? '').trim().split('\n');
  return { r, last: lines[lines.length - 1] ?? '' };
}
