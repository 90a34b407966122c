/**
 * Child process for the shutdown and deadman tests: `node shutdown-child.js MODE`.
 *
 *   wake      a fault-server Worker serves one fault, then sits in read(ev, -1);
 *             the main thread sets STOP and calls uffd.wakeReader(), the Worker
 *             returns, and the process ends on its own (exit code 0).
 *   unref     the same, but the main thread never stops the Worker: it calls
 *             worker.unref() and wakes the reader from process.on('exit').
 *             Without that wake-up the process would hang at exit, joining a
 *             thread asleep in poll().
 *   deadman   the Worker arms the deadman and throws. The main thread then
 *             touches a missing page: the deadman poisons it and the process
 *             dies of SIGBUS with "tmem: the fault dispatcher is gone" on stderr.
 *
 * Progress goes to stderr (write(2), nothing buffered) so the test can tell
 * where a child stopped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { native } from '../../lib/native';
import {
  ACTION_PATTERN,
  CTL_SLOTS,
  ACTION,
  FaultServerData,
  LOG_EVENTS,
  PARAM_SLOTS,
  STOP,
  firstPatternMismatch,
} from './fault-protocol';

const say = (s: string): void => {
  fs.writeSync(2, `child: ${s}\n`);
};
const mode = process.argv[2];

const uffd = new native.Uffd();
const region = new native.Region(uffd, 4 * 4096);
const ctl = new Int32Array(new SharedArrayBuffer(4 * CTL_SLOTS));
Atomics.store(ctl, ACTION, ACTION_PATTERN);
const data: FaultServerData = {
  descriptor: uffd.describe(),
  ctl: ctl.buffer,
  params: new SharedArrayBuffer(8 * PARAM_SLOTS),
  log: new SharedArrayBuffer(8 * 4 * LOG_EVENTS),
  throwAfterArm: mode === 'deadman',
  why: 'test',
};
const worker = new Worker(path.join(__dirname, 'fault-server.js'), { workerData: data });
const bytes = new Uint8Array(region.buffer);

function touchFirstPage(): void {
  const bad = firstPatternMismatch(bytes, 0, region.address);
  if (bad >= 0) throw new Error(`page 0 byte ${bad} is wrong`);
  say('page 0 served');
}

switch (mode) {
  case 'wake':
    worker.once('message', () => {
      touchFirstPage();
      worker.once('exit', (code) => {
        say(`worker exited with ${code}`);
        region.close();
        uffd.close();
      });
      Atomics.store(ctl, STOP, 1);
      uffd.wakeReader();
    });
    break;
  case 'unref':
    worker.once('message', () => {
      touchFirstPage();
      worker.unref();
      process.on('exit', () => {
        say('exit handler: waking the reader');
        Atomics.store(ctl, STOP, 1);
        uffd.wakeReader();
      });
    });
    break;
  case 'deadman':
    worker.on('error', (e) => say(`worker died: ${e.message}`));
    worker.once('exit', () => {
      say('touching a missing page with no dispatcher');
      const v = bytes[2 * 4096];
      say(`read ${v}: the deadman did not fire`);
      process.exitCode = 3;
    });
    break;
  default:
    say(`unknown mode ${mode}`);
    process.exitCode = 2;
}
