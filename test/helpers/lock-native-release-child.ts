// Child of test/lock-native-release: the main thread plays the native holder of a mutex word,
// a Worker sleeps in lock(); the release is shared_lock::unlock's (sub, then store 0, no notify).
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { lock, unlock } from '../../lib/tmem/lock';

if (isMainThread) {
  const sab = new SharedArrayBuffer(8);
  const a = new Int32Array(sab);
  Atomics.store(a, 0, 1); // held "natively"
  const w = new Worker(__filename, { workerData: sab });
  w.on('message', (m) => {
    if (m === 'locked') {
      void w.terminate();
      process.exit(0);
    }
  });
  // wait until the Worker has marked the word "held and someone may be sleeping" (2)
  const t0 = Date.now();
  while (Atomics.load(a, 0) !== 2) {
    if (Date.now() - t0 > 20_000) {
      console.error('the Worker never went to sleep');
      process.exit(2);
    }
    Atomics.wait(a, 1, 0, 1);
  }
  Atomics.wait(a, 1, 0, 50); // let it sleep
  if (Atomics.sub(a, 0, 1) !== 1) Atomics.store(a, 0, 0); // native release: no notify
} else {
  const a = new Int32Array(workerData as SharedArrayBuffer);
  lock(a, 0);
  unlock(a, 0);
  parentPort?.postMessage('locked');
}
