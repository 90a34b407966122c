// PageFifo (the dispatcher's resident and stored FIFOs) against an array model.
import test from 'ava';
import fc from 'fast-check';
import { PageFifo } from '../lib/dispatcher/fifo';

type Op =
  | { kind: 'push'; region: number; page: number }
  | { kind: 'shift' }
  | { kind: 'peek' }
  | { kind: 'compact'; mod: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('push' as const),
    region: fc.integer({ min: 0, max: 5 }),
    page: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  }),
  fc.record({ kind: fc.constant('shift' as const) }),
  fc.record({ kind: fc.constant('peek' as const) }),
  fc.record({ kind: fc.constant('compact' as const), mod: fc.integer({ min: 1, max: 4 }) }),
);

test('push/shift/peek/compact keep FIFO order through growth and wrap-around', (t) => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 3000 }), (ops) => {
      const f = new PageFifo();
      const model: Array<[number, number, number]> = [];
      let stamp = 0;
      for (const o of ops) {
        if (o.kind === 'push') {
          stamp++;
          f.push(o.region, o.page, stamp);
          model.push([o.region, o.page, stamp]);
        } else if (o.kind === 'shift' || o.kind === 'peek') {
          const got = o.kind === 'shift' ? f.shift() : f.peek();
          if (!got) {
            if (model.length !== 0) return false;
            continue;
          }
          const m = o.kind === 'shift' ? model.shift()! : model[0];
          if (f.outRegion !== m[0] || f.outPage !== m[1] || f.outStamp !== m[2]) return false;
        } else {
          const keep = (_r: number, _p: number, s: number): boolean => s % o.mod !== 0;
          f.compact(keep);
          for (let i = model.length - 1; i >= 0; i--) if (!keep(0, 0, model[i][2])) model.splice(i, 1);
        }
        if (f.length !== model.length) return false;
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass();
});
