/**
 * Model-based property test of a whole swap (helpers/swap-model.ts): generated
 * sequences of page writes (zero, same-filled, random, text, a few bytes),
 * reads of a page or a whole region, region.evict() (awaited, right after a
 * write, or while the region is read), region creation and close (also while
 * another evict() is in flight), writable and read-only file regions with
 * flush(), and idle waits; every read is compared byte for byte with a model
 * (one Uint8Array per region), files on disk with the model after flush() and
 * close(), and stats() invariants at the end. One property per configuration:
 * tiny residentLimit, tiny pools with and without a swap file, lz4/zstd,
 * zsmalloc/zbud, idle recompression and write-back, a swap file that fills.
 *
 * Faulting steps run under the Watchdog (a fault nobody serves kills the
 * process with the step's name); awaits are raced against timers.
 * Replay a failure: TMEM_MODEL_SEED=<seed> TMEM_MODEL_PATH=<path> (from the report).
 */
import test from 'ava';
import fc from 'fast-check';
import { Watchdog, tempDir } from './helpers/harness';
import { CONFIGS, Totals, inputArb, reportFirstFailure, runSwapModel, type Guard } from './helpers/swap-model';

const watchdog = new Watchdog();
const guard: Guard = (what, fn) => watchdog.guard(what, 10000, fn);

const RUNS = 10;
const MAX_COMMANDS = 36;
const seed = process.env.TMEM_MODEL_SEED ? Number(process.env.TMEM_MODEL_SEED) : undefined;
const replayPath = process.env.TMEM_MODEL_PATH;

for (const cfg of CONFIGS) {
  test.serial(`model: ${cfg.name}`, async (t) => {
    const dir = tempDir(t, 'tmem-model-');
    const totals = new Totals();
    const reported = reportFirstFailure();
    await fc.assert(
      fc.asyncProperty(inputArb(cfg, MAX_COMMANDS), async (input) => {
        totals.add(await reported(input, () => runSwapModel(cfg, input, dir, guard)));
      }),
      // A failure is reported with what shrinking reached within the time limit (ava allows 60 s a test).
      {
        numRuns: RUNS,
        seed,
        path: replayPath,
        endOnFailure: false,
        includeErrorInReport: true,
        interruptAfterTimeLimit: 30000,
      },
    );
    t.log(totals.line());
    t.is(totals.runs >= RUNS, true);
  });
}
