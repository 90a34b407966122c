/**
 * A Worker that kills its process when the main thread overruns a deadline.
 *
 * A main thread asleep in a page fault that nobody serves runs no timers and
 * no ava timeout can reach it. Before each synchronous step that could
 * fault, the main thread writes a deadline (guard() in harness.ts); this
 * Worker checks it every 50 ms and, once passed, writes the step's label to
 * stderr with a plain write(2) (Worker stdio goes through the main thread,
 * which is stuck) and sends the process SIGKILL, so the test file fails
 * instead of hanging the suite.
 *
 * Shared layout: Int32Array [generation], Float64Array [deadline ms since
 * the epoch, 0 = none] at byte 8, then the label (UTF-8, 256 bytes) at byte 16;
 * the main thread bumps the generation after each change.
 */
import * as fs from 'node:fs';
import { workerData } from 'node:worker_threads';

const { sab } = workerData as { sab: SharedArrayBuffer };
const gen = new Int32Array(sab, 0, 1);
const deadline = new Float64Array(sab, 8, 1);
const label = new Uint8Array(sab, 16, 256);

for (;;) {
  const g = Atomics.load(gen, 0); // orders the reads below after the main thread's writes
  Atomics.wait(gen, 0, g, 50);
  const d = deadline[0];
  if (d > 0 && Date.now() > d) {
    const end = label.indexOf(0);
    const what = Buffer.from(label.slice(0, end < 0 ? label.length : end)).toString('utf8');
    fs.writeSync(2, `watchdog: "${what}" did not finish in time (a fault nobody served?); killing the process\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
