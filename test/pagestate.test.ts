// The page-state layout's claim/publish protocol (lib/dispatcher/pagestate.ts), on real threads.
import test from 'ava';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  NEVER,
  ACTIVE,
  CLEAN,
  STAGED,
  STORED,
  SAME,
  SWAPPED,
  READING,
  BUSY,
  isFast,
  claim,
  publish,
  pageStateArrays,
} from '../lib/dispatcher/pagestate';

test('state and aux are over SharedArrayBuffers; a claim succeeds only from the expected state, and publish ends it', (t) => {
  const { state, aux } = pageStateArrays(8);
  t.true(state.buffer instanceof SharedArrayBuffer);
  t.true(aux.buffer instanceof SharedArrayBuffer);
  t.is(state.length, 8);
  t.is(aux.length, 8);
  state[3] = STORED;
  t.false(claim(state, 3, SAME), 'wrong expected state');
  t.is(state[3], STORED);
  t.true(claim(state, 3, STORED));
  t.is(state[3], BUSY);
  t.false(claim(state, 3, STORED), 'a claimed page cannot be claimed again');
  publish(state, 3, ACTIVE);
  t.is(state[3], ACTIVE);
});

test('the fast states: NEVER of anonymous regions, SAME, STORED, STAGED', (t) => {
  for (const st of [SAME, STORED, STAGED]) {
    t.true(isFast(st, false));
    t.true(isFast(st, true));
  }
  t.true(isFast(NEVER, false));
  t.false(isFast(NEVER, true), "a file page never resident is the file's: JS only");
  for (const st of [ACTIVE, CLEAN, SWAPPED, READING, BUSY]) t.false(isFast(st, false), `state ${st}`);
});

test('threads racing to claim the same pages: each page is claimed by exactly one', async (t) => {
  const pages = 1 << 16;
  const { state, aux } = pageStateArrays(pages);
  state.fill(STORED);
  const go = new SharedArrayBuffer(4);
  const workers = [1, 2, 3].map(
    (id) =>
      new Worker(path.join(__dirname, 'helpers', 'pagestate-claimer.js'), {
        workerData: { state: state.buffer, aux: aux.buffer, id, go },
      }),
  );
  const results = workers.map(
    (w) =>
      new Promise<{ mine: number }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
  );
  await new Promise((r) => setTimeout(r, 100)); // all three waiting on `go`
  Atomics.store(new Int32Array(go), 0, 1);
  Atomics.notify(new Int32Array(go), 0);
  const got = await Promise.all(results);
  t.is(
    got.reduce((n, r) => n + r.mine, 0),
    pages,
    'every page claimed once in all',
  );
  for (let page = 0; page < pages; page++) {
    if (state[page] !== ACTIVE || aux[page] < 1 || aux[page] > 3) {
      t.fail(`page ${page}: state ${state[page]}, aux ${aux[page]}`);
      return;
    }
  }
  const perWorker = [1, 2, 3].map((id) => aux.filter((a) => a === id).length);
  t.deepEqual(
    perWorker,
    got.map((r) => r.mine),
    'aux says who claimed each page',
  );
  await Promise.all(workers.map((w) => w.terminate()));
});
