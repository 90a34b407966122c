/**
 * The events a service alerts on, on the Swap (EventEmitter) and on
 * diagnostics_channel, from real conditions: a pool that fills and drains, a
 * swap file on a 1 MiB filesystem (ENOSPC), a swap file slot corrupted on disk,
 * a dispatcher that is gone.
 */
import test from 'ava';
import * as dc from 'node:diagnostics_channel';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { open, CHANNELS, type Swap, type SwapEventMap } from '../lib';
import { Watchdog, runNodeChild, tempDir, withTimeout } from './helpers/harness';
import { mountSmallFs } from './helpers/swapfile-mount';
import type { ChecksumEventResult } from './helpers/checksum-event-child';

const PAGE = 4096;
const watchdog = new Watchdog();

/** Resolves with the first `name` event of `swap` (hang guard: `ms`). */
function next<K extends keyof SwapEventMap>(swap: Swap, name: K, ms = 20_000): Promise<SwapEventMap[K]> {
  return withTimeout(new Promise<SwapEventMap[K]>((resolve) => swap.once(name, resolve)), ms, `the '${name}' event`);
}

test('poolFull when the pool refuses stores, poolAccepting when it takes them again; also on diagnostics_channel', async (t) => {
  const seen: { channel: string; poolBytes: number; swap: unknown }[] = [];
  const subs = (['poolFull', 'poolAccepting'] as const).map((k) => {
    const fn = (m: unknown): void => {
      const msg = m as { poolBytes: number; swap: unknown };
      seen.push({ channel: CHANNELS[k], poolBytes: msg.poolBytes, swap: msg.swap });
    };
    dc.subscribe(CHANNELS[k], fn);
    return () => dc.unsubscribe(CHANNELS[k], fn);
  });
  t.teardown(() => subs.forEach((u) => u()));
  const swap = await open({ residentLimit: '256KiB', poolLimit: '64KiB', acceptThreshold: 50, idle: { after: 0 } });
  t.teardown(() => swap.close());
  const full = next(swap, 'poolFull');
  const region = swap.region(1024 * PAGE);
  const bytes = new Uint8Array(region.buffer);
  // Text-like pages: they compress, so the 64 KiB pool takes some and then refuses.
  const page = Buffer.from('tmem '.repeat(PAGE / 5 + 1).slice(0, PAGE));
  watchdog.guard('fill', 30_000, () => {
    for (let p = 0; p < 1024; p++) {
      page.writeUInt32LE(p, 0);
      bytes.set(randomBytes(512), p * PAGE + 8); // some entropy per page: about 1/8 of a page compressed
      bytes.set(page.subarray(520), p * PAGE + 520);
    }
  });
  await region.evict();
  const f = await full;
  t.is(f.poolLimit, 64 * 1024);
  t.true(f.poolBytes > 0);
  t.true(swap.stats().refused.poolLimit > 0);
  // Closing the region frees its pool objects; the next store finds the pool below 50 % and accepts.
  const accepting = next(swap, 'poolAccepting');
  await region.close();
  const small = swap.region(64 * PAGE);
  const sb = new Uint8Array(small.buffer);
  watchdog.guard('fill small', 30_000, () => {
    for (let p = 0; p < 64; p++) sb.set(page.subarray(0, PAGE - 8), p * PAGE + 8); // compressible, not same-filled
  });
  await small.evict();
  const a = await accepting;
  t.true(a.poolBytes < a.poolLimit);
  t.deepEqual(seen.map((s) => s.channel).slice(0, 2), ['tmem:pool-full', 'tmem:pool-accepting']);
  t.is(seen[0].swap, swap, 'the channel message names the swap');
});

test.serial('swapFileError when the swap file cannot be written (ENOSPC on a 1 MiB filesystem)', async (t) => {
  const reasons: string[] = [];
  const small = mountSmallFs(os.tmpdir(), 2 ** 20, reasons);
  if (!small) {
    t.log(`cannot mount a small filesystem here, skipping: ${reasons.join('; ')}`);
    return t.pass();
  }
  t.teardown(() => small.unmount());
  const swap = await open({
    residentLimit: '1MiB',
    poolLimit: '256KiB',
    swapFile: { path: path.join(small.dir, 'tmem.swap'), size: '16MiB' },
  });
  t.teardown(() => swap.close());
  const channelMsgs: unknown[] = [];
  const onMsg = (m: unknown): void => void channelMsgs.push(m);
  dc.subscribe(CHANNELS.swapFileError, onMsg);
  t.teardown(() => dc.unsubscribe(CHANNELS.swapFileError, onMsg));
  const err = next(swap, 'swapFileError');
  const region = swap.region(1024 * PAGE);
  const bytes = new Uint8Array(region.buffer);
  const want = randomBytes(bytes.length); // incompressible: refused by the pool, sent to the file
  watchdog.guard('fill', 30_000, () => bytes.set(want));
  await region.evict().catch(() => 0);
  const e = await err;
  t.true(e.count > 0 && e.total >= e.count, JSON.stringify(e));
  t.is(e.total <= swap.stats().swapFile!.ioErrors, true);
  t.true(channelMsgs.length > 0);
  let bad = 0;
  watchdog.guard('check', 30_000, () => {
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== want[i]) bad++;
  });
  t.is(bad, 0, 'every byte still reads back');
});

for (const how of ['crc', 'tag'] as const) {
  const check = how === 'crc' ? 'CRC-32 (encrypt: false)' : 'authentication tag (encrypted)';
  test(`checksumError when a swap file slot corrupted on disk fails its ${check}; also on diagnostics_channel`, async (t) => {
    // In a child: the lost page is poisoned, and a touch by this thread would be SIGBUS.
    const dir = tempDir(t, 'tmem-csum-event-');
    const seed = (Date.now() & 0x7fffffff) | 0;
    const r = await runNodeChild(
      path.join(__dirname, 'helpers', 'checksum-event-child.js'),
      [dir, String(seed), how],
      60_000,
    );
    t.log(r.stderr.trim());
    t.is(r.code, 0, `the child exited with code ${r.code}, signal ${r.signal}`);
    const line = /^result (.*)$/m.exec(r.stderr);
    t.truthy(line, 'the child wrote its result');
    if (!line) return;
    const res = JSON.parse(line[1]) as ChecksumEventResult;
    t.deepEqual(
      res.failedWrites.map((f) => f.code),
      ['EFAULT'],
      "exactly one page is lost: the kernel's read of it fails with EFAULT",
    );
    t.regex(
      r.stderr,
      new RegExp(
        `tmem: region \\d+ page ${res.failedWrites[0]?.page} cannot be restored: .*mismatch in swap file slot \\d+`,
      ),
    );
    t.deepEqual(res.wrongPages, [], 'every other page reads back byte for byte');
    t.deepEqual(res.events, [{ count: 1, total: 1 }], "one 'checksumError' event for the one bad slot");
    t.deepEqual(
      res.channel,
      [{ count: 1, total: 1, sameSwap: true }],
      'the same on tmem:checksum-error, naming the swap',
    );
    t.is(res.checksumErrors, 1, 'stats().swapFile.checksumErrors counts it');
    t.is(res.ioErrors, 0, 'not an I/O error');
  });
}

test('dispatcherGone when the dispatcher Worker is gone; later calls throw that error', async (t) => {
  const swap = await open({ residentLimit: '1MiB' });
  const gone = next(swap, 'dispatcherGone');
  const msgs: unknown[] = [];
  const onMsg = (m: unknown): void => void msgs.push(m);
  dc.subscribe(CHANNELS.dispatcherGone, onMsg);
  t.teardown(() => dc.unsubscribe(CHANNELS.dispatcherGone, onMsg));
  // The Worker ends as a crashed one would (it did not ask to stop): terminated, and
  // its blocking read of the uffd woken so that the termination takes effect.
  const inner = swap as unknown as { worker: { terminate(): Promise<number> }; uffd: { wakeReader(): void } };
  const stopped = inner.worker.terminate();
  inner.uffd.wakeReader();
  await stopped;
  const g = await gone;
  t.regex(g.error.message, /dispatcher/);
  t.is(msgs.length, 1);
  t.throws(() => swap.region(PAGE), { message: g.error.message });
  await t.throwsAsync(swap.close());
});
