#!/usr/bin/env node
/**
 * The `tmem` command.
 *
 *   tmem bench [options]     fault latency, eviction throughput and density against
 *                            the kernel (lib/cli/bench.ts); table, --json, --report
 *   tmem stats <pid>         watch a running program's pools (lib/cli/stats.ts)
 *   tmem remote gc <url>     delete dead swaps' keys from Redis (lib/cli/remote.ts)
 *
 * Exit codes: 0 done, 1 failure (a scenario failed, wrong data, no stats
 * endpoint), 2 bad command line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError, parseBenchArgs, parseStatsArgs, BENCH_HELP, STATS_HELP, MAIN_HELP } from './cli/args';

async function bench(argv: string[]): Promise<number> {
  const o = parseBenchArgs(argv);
  if (o.help) {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  // Loaded here so that `--help` and argument errors answer at once.
  const { runBench } = await import('./cli/bench');
  const { Progress } = await import('./cli/progress');
  const { renderTable } = await import('./cli/table');
  if (o.report) {
    const dir = path.dirname(path.resolve(o.report));
    if (!fs.existsSync(dir)) throw new UsageError(`option '--report': the directory '${dir}' does not exist`);
  }
  const result = await runBench(o, new Progress(process.stderr));
  if (o.report) {
    const { renderReport } = await import('./cli/report');
    fs.writeFileSync(o.report, renderReport(result));
    process.stderr.write(`report written to ${o.report}\n`);
  }
  if (o.json) process.stdout.write(JSON.stringify(result, null, 1) + '\n');
  else process.stdout.write('\n' + renderTable(result));
  return result.ok ? 0 : 1;
}

async function stats(argv: string[]): Promise<number> {
  const o = parseStatsArgs(argv);
  if (o.help) {
    process.stdout.write(STATS_HELP);
    return 0;
  }
  const { runStats } = await import('./cli/stats');
  return runStats(o);
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      const topic = cmd === 'help' ? rest[0] : undefined;
      process.stdout.write(topic === 'bench' ? BENCH_HELP : topic === 'stats' ? STATS_HELP : MAIN_HELP);
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === 'bench') return await bench(rest);
    if (cmd === 'stats') return await stats(rest);
    if (cmd === 'remote') return await (await import('./cli/remote')).runRemote(rest);
    throw new UsageError(`unknown command '${cmd}'; commands: bench, stats, remote, help`, '');
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(
        `tmem: ${e.message}\nRun 'tmem ${e.command ? `${e.command} ` : ''}--help' for the options.\n`,
      );
      return 2;
    }
    process.stderr.write(`tmem: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`tmem: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
