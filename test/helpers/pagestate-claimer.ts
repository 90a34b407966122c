// A Worker racing others to claim pages of one shared state array (test/pagestate.test.ts):
// each page it claims from STORED it marks with its id in aux and publishes ACTIVE.
import { workerData, parentPort } from 'node:worker_threads';
import { claim, publish, STORED, ACTIVE, BUSY } from '../../lib/dispatcher/pagestate';

const { state, aux, id, go } = workerData as {
  state: SharedArrayBuffer;
  aux: SharedArrayBuffer;
  id: number;
  go: SharedArrayBuffer;
};
const st = new Uint8Array(state);
const ax = new Uint32Array(aux);
const start = new Int32Array(go);
Atomics.wait(start, 0, 0);
let mine = 0,
  sawBusy = 0;
for (let page = 0; page < st.length; page++) {
  if (claim(st, page, STORED)) {
    if (ax[page] !== 0) throw new Error(`page ${page} claimed twice`);
    ax[page] = id;
    publish(st, page, ACTIVE);
    mine++;
  } else if (Atomics.load(st, page) === BUSY) {
    sawBusy++;
  }
}
parentPort!.postMessage({ mine, sawBusy });
