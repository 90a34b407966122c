/*
 * Soak run of the store's model-based property tests with many more sequences than the test
 * suite: node dist/bench/soak-store.js [numRuns=20000] [maxLength=200]
 */
import fc from 'fast-check';
import { runZpoolModel, zcmdArb } from '../test/helpers/zpool-model';
import { runTmemModel, tcmdArb } from '../test/helpers/tmem-model';

const numRuns = Number(process.argv[2] ?? 20000);
const maxLength = Number(process.argv[3] ?? 200);
if (!Number.isInteger(numRuns) || numRuns < 1)
  throw new RangeError(`numRuns: expected a positive integer, got ${process.argv[2]}`);
if (!Number.isInteger(maxLength) || maxLength < 1)
  throw new RangeError(`maxLength: expected a positive integer, got ${process.argv[3]}`);

const suites: [string, () => void][] = [
  [
    'zsmalloc',
    () =>
      fc.assert(
        fc.property(fc.array(zcmdArb, { maxLength }), (c) => runZpoolModel('zsmalloc', c)),
        { numRuns },
      ),
  ],
  [
    'zsmalloc limited',
    () =>
      fc.assert(
        fc.property(fc.array(zcmdArb, { maxLength }), (c) => runZpoolModel('zsmalloc', c, 6)),
        { numRuns },
      ),
  ],
  [
    'zbud',
    () =>
      fc.assert(
        fc.property(fc.array(zcmdArb, { maxLength }), (c) => runZpoolModel('zbud', c)),
        { numRuns },
      ),
  ],
  [
    'zbud limited',
    () =>
      fc.assert(
        fc.property(fc.array(zcmdArb, { maxLength }), (c) => runZpoolModel('zbud', c, 3)),
        { numRuns },
      ),
  ],
  [
    'tmem',
    () =>
      fc.assert(
        fc.property(fc.array(tcmdArb, { maxLength }), (c) => runTmemModel(c)),
        { numRuns },
      ),
  ],
];
for (const [name, run] of suites) {
  const t = Date.now();
  run();
  console.log(
    `${name}: ${numRuns} sequences of up to ${maxLength} steps passed in ${((Date.now() - t) / 1000).toFixed(1)} s`,
  );
}
