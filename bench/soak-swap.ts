/*
 * Soak run of the whole-swap model test (test/helpers/swap-model.ts) with many more and longer
 * sequences than the test suite:
 *
 *   node dist/bench/soak-swap.js [numRuns=500] [maxCommands=200] [config substring]
 *
 * numRuns per configuration. TMEM_MODEL_SEED / TMEM_MODEL_PATH replay a reported failure.
 * Prints one line per configuration and a summary line; exits 1 on a failure (with
 * fast-check's report: seed, path, shrunk counterexample).
 */
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Watchdog } from '../test/helpers/harness';
import { CONFIGS, Totals, inputArb, reportFirstFailure, runSwapModel, type Guard } from '../test/helpers/swap-model';

const numRuns = Number(process.argv[2] ?? 500);
const maxCommands = Number(process.argv[3] ?? 200);
const only = process.argv[4];
if (!Number.isInteger(numRuns) || numRuns < 1)
  throw new RangeError(`numRuns: expected a positive integer, got ${process.argv[2]}`);
if (!Number.isInteger(maxCommands) || maxCommands < 1)
  throw new RangeError(`maxCommands: expected a positive integer, got ${process.argv[3]}`);
// A seed of our own, printed before each configuration: a run that kills the process (SIGBUS,
// a hang the watchdog ends) can then be replayed with TMEM_MODEL_SEED (TMEM_MODEL_TRACE=1 names the step).
const seed = process.env.TMEM_MODEL_SEED ? Number(process.env.TMEM_MODEL_SEED) : (Date.now() ^ (process.pid << 16)) | 0;
const replayPath = process.env.TMEM_MODEL_PATH;

const watchdog = new Watchdog();
const guard: Guard = (what, fn) => watchdog.guard(what, 20000, fn);

async function main(): Promise<void> {
  const all = new Totals();
  const started = Date.now();
  let failed = 0;
  for (const cfg of CONFIGS) {
    if (only && !cfg.name.includes(only)) continue;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-soak-'));
    const totals = new Totals();
    const t = Date.now();
    console.log(`${cfg.name}: seed ${seed}`);
    const reported = reportFirstFailure();
    try {
      await fc.assert(
        fc.asyncProperty(inputArb(cfg, maxCommands), async (input) => {
          const r = await reported(input, () => runSwapModel(cfg, input, dir, guard));
          totals.add(r);
          all.add(r);
        }),
        { numRuns, seed, path: replayPath, endOnFailure: false, includeErrorInReport: true },
      );
      console.log(`${cfg.name}: passed in ${((Date.now() - t) / 1000).toFixed(1)} s: ${totals.line()}`);
    } catch (e) {
      failed++;
      console.log(`${cfg.name}: FAILED after ${((Date.now() - t) / 1000).toFixed(1)} s`);
      console.log(e instanceof Error ? e.message : String(e));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(
    `soak-swap: ${failed === 0 ? 'ok' : `${failed} configuration(s) FAILED`}; ${numRuns} runs of up to ${maxCommands} commands per configuration in ${((Date.now() - started) / 1000).toFixed(0)} s; ${all.line()}`,
  );
  process.exitCode = failed === 0 ? 0 : 1;
}

void main();
