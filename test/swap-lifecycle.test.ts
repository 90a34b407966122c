/**
 * Lifecycle of swaps and regions: a process that never closes its swap ends
 * by itself; one that closes ends too; closed swaps and regions refuse to be
 * used with clear errors; and when the dispatcher dies, a touch of an evicted
 * page raises SIGBUS with the deadman's message instead of hanging, while API
 * calls fail with a clear error.
 *
 * Children run helpers/swap-child.ts under a timeout and SIGKILL, so a child
 * that hangs fails its test instead of stalling the suite.
 */
import test from 'ava';
import * as path from 'node:path';
import { open } from '../lib';
import { type ChildResult, Watchdog, runNodeChild, withTimeout } from './helpers/harness';

const watchdog = new Watchdog();
const touch = <T>(what: string, fn: () => T): T => watchdog.guard(what, 10000, fn);

const CHILD = path.join(__dirname, 'helpers', 'swap-child.js');

/** Runs the child in `mode`; SIGKILL after `timeoutMs`. */
function runChild(mode: string, timeoutMs: number): Promise<ChildResult> {
  return runNodeChild(CHILD, [mode], timeoutMs);
}

const show = (r: ChildResult): string => `code ${r.code}, signal ${r.signal}, ${r.ms} ms; stderr:\n${r.stderr}`;

test('a process that opens a swap, touches pages and never closes it exits by itself with code 0', async (t) => {
  // The bound is the hang guard (a process that does not exit by itself is killed: signal
  // SIGKILL), not a time asserted: on a loaded host a clean exit can take several seconds.
  const r = await runChild('no-close', 60000);
  t.is(r.signal, null, show(r));
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /returning without close/);
  t.regex(r.stderr, /exiting with 0/);
});

test('a process that closes its regions and swap exits with code 0', async (t) => {
  const r = await runChild('close', 60000);
  t.is(r.signal, null, show(r));
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /child: closed/);
});

test('dispatcher death: API calls fail with a clear error, then a touch of an evicted page raises SIGBUS', async (t) => {
  const r = await runChild('kill', 60000);
  t.is(r.signal, 'SIGBUS', show(r));
  t.regex(r.stderr, /tmem: the fault dispatcher is gone/);
  t.notRegex(r.stderr, /the deadman did not fire/);
  const api = r.stderr.split('\n').filter((l) => l.includes('api: '));
  t.is(api.length, 3, show(r));
  for (const line of api) t.regex(line, /-> Error: tmem: the dispatcher exited unexpectedly/, line);
});

test('dispatcher death: a touch right after terminate() is served right or raises SIGBUS, never hangs (three children)', async (t) => {
  // The touch races the dispatcher's last poll: it may see the fault and die before serving it,
  // or (the native fault thread) serve it before the Worker's teardown stops the thread; a touch
  // once the Worker has exited raises SIGBUS.
  const rs = await Promise.all([
    runChild('kill-touch', 60000),
    runChild('kill-touch', 60000),
    runChild('kill-touch', 60000),
  ]);
  for (const r of rs) {
    t.is(r.signal, 'SIGBUS', show(r));
    t.regex(r.stderr, /tmem: the fault dispatcher is gone/, show(r));
  }
});

test('after swap.close(): region() and mapFile() throw, its regions are closed, close() again is fine', async (t) => {
  const swap = await withTimeout(open({ residentLimit: '1MiB' }), 10000, 'open()');
  const region = swap.region('64KiB');
  const ab = region.buffer;
  touch('touch', () => {
    new Uint8Array(ab)[100] = 1;
  });
  await withTimeout(swap.close(), 10000, 'swap.close()');
  t.throws(() => swap.region(4096), { message: /closed/ });
  t.throws(() => swap.region('1MiB'), { message: /closed/ });
  t.throws(() => swap.mapFile(__filename), { message: /closed/ });
  t.true(region.closed);
  t.is(ab.byteLength, 0, "the region's ArrayBuffer is detached");
  t.throws(() => region.buffer, { message: /closed/ });
  await t.notThrowsAsync(withTimeout(swap.close(), 5000, 'swap.close() again'));
  const s = swap.stats();
  t.is(typeof s.residentPages, 'number', 'stats() still answers');
});

test('after region.close(): buffer throws, an old ArrayBuffer has byteLength 0, evict() rejects; the swap goes on', async (t) => {
  const swap = await withTimeout(open({ residentLimit: '1MiB' }), 10000, 'open()');
  try {
    const region = swap.region('256KiB');
    const ab = region.buffer;
    const bytes = new Uint8Array(ab);
    touch('fill', () => bytes.fill(9));
    const closing = region.close();
    t.true(region.closed);
    await withTimeout(closing, 10000, 'region.close()');
    t.is(ab.byteLength, 0, 'detached');
    t.is(bytes.length, 0, 'views of it are empty');
    t.is<number | undefined, undefined>(bytes[0], undefined, 'reading a detached view touches no memory');
    t.throws(() => region.buffer, { message: /region \d+ is closed/ });
    t.throws(() => region.share(), { message: /closed/ });
    await t.throwsAsync(withTimeout(region.evict(), 5000, 'evict() after close'), { message: /closed/ });
    await t.notThrowsAsync(withTimeout(region.close(), 5000, 'close() again'));
    const rs = region.stats();
    t.is(rs.size, 256 * 1024);

    // Its pages are gone from the swap's figures; another region works.
    const s = swap.stats();
    t.is(s.residentPages + s.storedPages + s.samePages, 0, `nothing left of the closed region: ${JSON.stringify(s)}`);
    const other = swap.region('128KiB');
    touch('use another region', () => new Uint8Array(other.buffer).fill(3));
    t.true(touch('read it', () => new Uint8Array(other.buffer).every((b) => b === 3)));
  } finally {
    await withTimeout(swap.close(), 10000, 'swap.close()');
  }
});
