/**
 * Child process for the lifecycle tests: `node swap-child.js MODE`.
 *
 *   no-close     opens a swap with a small residentLimit, makes an anonymous
 *                region and a file region, touches pages (eviction running,
 *                a Worker attached to the region), and returns without
 *                closing anything: the process must end by itself, code 0.
 *   close        the same, then closes the regions and the swap: code 0.
 *   kill         kills the dispatcher (worker.terminate() through the Swap
 *                object), waits for it to be gone, checks that API calls now
 *                fail with a clear error (one "api:" line each on stderr),
 *                then touches an evicted page: the deadman must raise SIGBUS.
 *   kill-touch   kills the dispatcher and touches an evicted page at once,
 *                without waiting: SIGBUS as well, never a hang.
 *
 * Progress goes to stderr with write(2) (nothing buffered), so the test can
 * tell where a child stopped.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { open, type Swap } from '../../lib';

const say = (s: string): void => {
  fs.writeSync(2, `child: ${s}\n`);
};
const mode = process.argv[2];

/** What the test reads back from a failed call: "api: <call> -> <error class>: <message>". */
async function apiCall(what: string, fn: () => unknown): Promise<void> {
  try {
    await fn();
    say(`api: ${what} -> ok`);
  } catch (e) {
    const err = e as Error;
    say(`api: ${what} -> ${err.constructor.name}: ${err.message}`);
  }
}

async function main(): Promise<void> {
  const swap: Swap = await open({ residentLimit: '256KiB', poolLimit: '16MiB' });
  const region = swap.region('2MiB');
  const bytes = new Uint8Array(region.buffer);
  for (let i = 0; i < bytes.length; i += 4096) bytes.fill((i >> 12) & 0xff, i, i + 2048);
  say(`touched ${bytes.length >> 12} pages, evictions ${swap.stats().evictions}`);

  if (mode === 'no-close' || mode === 'close') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-child-'));
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, Buffer.alloc(10000, 7));
    const mapped = swap.mapFile(file);
    const fileBytes = new Uint8Array(mapped.buffer);
    if (fileBytes[9999] !== 7 || fileBytes[10000] !== 0) throw new Error('file region reads wrong');
    // A Worker that touches the region and stays alive (unref'd) until exit.
    const w = new Worker(
      `const { workerData } = require('node:worker_threads');
       const { attachRegion } = require(workerData.lib);
       const b = new Uint8Array(attachRegion(workerData.shared));
       let sum = 0; for (let i = 0; i < b.length; i += 4096) sum += b[i];
       require('node:worker_threads').parentPort.postMessage(sum);
       setInterval(() => { for (let i = 0; i < b.length; i += 4096 * 7) sum += b[i]; }, 5);`,
      { eval: true, workerData: { lib: path.join(__dirname, '..', '..', 'lib'), shared: region.share() } },
    );
    const sum = await new Promise<number>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    say(`worker read the region (sum ${sum})`);
    w.unref();
    process.on('exit', (code) => {
      fs.rmSync(dir, { recursive: true, force: true });
      say(`exiting with ${code}`);
    });
    if (mode === 'close') {
      await w.terminate();
      await mapped.close();
      await region.close();
      await swap.close();
      say('closed');
    } else {
      // Leave eviction busy at exit: write more pages, then return.
      for (let i = 0; i < bytes.length; i += 4096) bytes[i + 3000] = 1;
      say('returning without close');
    }
    return;
  }

  if (mode === 'kill' || mode === 'kill-touch') {
    await region.evict();
    const s = region.stats();
    say(`evicted; resident ${s.residentPages}, stored ${s.storedPages}, same ${s.samePages}`);
    const worker = (swap as unknown as { worker: Worker }).worker;
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    void worker.terminate();
    if (mode === 'kill-touch') {
      say('touching an evicted page right after terminate()');
      const v = bytes[5 * 4096];
      // The native fault thread may still serve it, with the right bytes, until the Worker's
      // teardown stops it (faults: 'thread'); the JS dispatcher may too, before it dies.
      if (v !== 5) {
        say(`read ${v} instead of 5: wrong bytes`);
        process.exitCode = 4;
        return;
      }
      say('read 5: served before the dispatcher was gone; touching another once it has exited');
      await exited;
      const w = bytes[200 * 4096];
      say(`read ${w}: the deadman did not fire`);
      process.exitCode = 3;
      return;
    }
    const code = await Promise.race([
      exited,
      new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 5000)),
    ]);
    say(`dispatcher exit: ${code}`);
    await apiCall('swap.region(4096)', () => swap.region(4096));
    await apiCall('region.evict()', () => region.evict());
    await apiCall('swap.mapFile(__filename)', () => swap.mapFile(__filename));
    // (swap.close() would unmap the region, and the touch below would prove nothing.)
    say('touching an evicted page');
    const v = bytes[5 * 4096];
    say(`read ${v}: the deadman did not fire`);
    process.exitCode = 3;
    return;
  }
  say(`unknown mode ${mode}`);
  process.exitCode = 2;
}

main().catch((e) => {
  say(`failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
