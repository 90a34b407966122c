/**
 * Child process for the 'checksumError' event test (test/events.test.ts):
 *   node checksum-event-child.js DIR SEED crc|tag
 *
 * Opens a swap with a swap file at DIR/swap.bin (crc: encrypt false, the CRC-32
 * catches the corruption; tag: encrypted, the authentication tag does), fills a
 * region with incompressible pages, pushes them out with region.evict() (they go
 * to the file), then flips one byte of a slot that holds data, on disk, through
 * /proc/self/fd as helpers/swapfile-corrupt-child.ts does.
 *
 * Every page is then read by the kernel, never by this thread: fs.writeSync()
 * copies each page of the region into DIR/sink, so the fault is a kernel-mode
 * one (full mode) and the poisoned page fails that write with EFAULT instead of
 * raising SIGBUS here. The child stays alive to see the event, and writes one
 * line `result {json}` to stderr: the events and diagnostics_channel messages
 * it got, the pages whose write failed, the pages that read back wrong from the
 * sink, and the swap file's stats. Exit 0 once the result is written, 5 when
 * the setup failed.
 */
import * as dc from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, CHANNELS, type SwapFileErrorEvent } from '../../lib';
import { PAGE, fillPage, PageChecker } from './swapfile-pattern';
import { openSwapFilePath } from './swapfile-fd';

const PAGES = 256;
/** Hang guard for the event (it comes within the watcher's poll interval, 250 ms). */
const EVENT_MS = 30_000;

const say = (s: string): void => {
  fs.writeSync(2, `${s}\n`);
};

/** What the test checks, as the child saw it. */
export interface ChecksumEventResult {
  events: SwapFileErrorEvent[];
  channel: { count: number; total: number; sameSwap: boolean }[];
  failedWrites: { page: number; code: string }[];
  wrongPages: number[];
  checksumErrors: number;
  ioErrors: number;
}

async function main(): Promise<void> {
  const [dir, seedArg, how] = process.argv.slice(2);
  const seed = Number(seedArg) | 0;
  const encrypt = how === 'tag';
  const swap = await open({
    residentLimit: '64KiB',
    poolLimit: '64KiB',
    userModeOnly: false, // full mode: the kernel's own accesses fault through the dispatcher
    swapFile: { path: path.join(dir, 'swap.bin'), size: '4MiB', encrypt },
  });
  const events: SwapFileErrorEvent[] = [];
  swap.on('checksumError', (e) => events.push(e));
  const channel: ChecksumEventResult['channel'] = [];
  dc.subscribe(CHANNELS.checksumError, (m) => {
    const msg = m as SwapFileErrorEvent & { swap: unknown };
    channel.push({ count: msg.count, total: msg.total, sameSwap: msg.swap === swap });
  });

  const region = swap.region(PAGES * PAGE);
  const bytes = new Uint8Array(region.buffer);
  for (let p = 0; p < PAGES; p++) fillPage(bytes, p * PAGE, p, 0, seed, 'random');
  await region.evict();
  const before = swap.stats();
  if (before.swapFile!.pages < PAGES / 2) {
    say(`child: setup failed: too few pages reached the swap file: ${JSON.stringify(before.swapFile)}`);
    process.exit(5);
  }

  // A slot that holds data; one byte of it flipped on disk.
  const onDisk = openSwapFilePath(path.join(dir, 'swap.bin'));
  const image = fs.readFileSync(onDisk);
  const slots = Math.floor(image.length / PAGE);
  let victim = -1;
  for (let k = 0; k < slots && victim < 0; k++) {
    const slot = (Math.floor(slots / 2) + k) % slots;
    if (image.subarray(slot * PAGE, (slot + 1) * PAGE).some((b) => b !== 0)) victim = slot;
  }
  if (victim < 0) {
    say('child: setup failed: the swap file holds no data');
    process.exit(5);
  }
  const at = victim * PAGE + 1234;
  const fd = fs.openSync(onDisk, 'r+');
  fs.writeSync(fd, Buffer.of(image[at] ^ 0x5a), 0, 1, at);
  fs.closeSync(fd);
  say(`child: flipped byte ${at} (slot ${victim}) of a ${image.length}-byte swap file`);

  // The kernel reads every page (write(2) from the region into the sink file).
  const sinkPath = path.join(dir, 'sink');
  const sink = fs.openSync(sinkPath, 'w+');
  const failedWrites: ChecksumEventResult['failedWrites'] = [];
  for (let p = 0; p < PAGES; p++) {
    try {
      const n = fs.writeSync(sink, bytes, p * PAGE, PAGE, p * PAGE);
      if (n !== PAGE) failedWrites.push({ page: p, code: `short write of ${n} bytes` });
    } catch (e) {
      failedWrites.push({ page: p, code: String((e as NodeJS.ErrnoException).code) });
    }
  }
  fs.closeSync(sink);
  const copied = fs.readFileSync(sinkPath);
  const check = new PageChecker(seed);
  const failed = new Set(failedWrites.map((f) => f.page));
  const wrongPages: number[] = [];
  for (let p = 0; p < PAGES; p++) if (!failed.has(p) && check.mismatch(copied, p, 0, 'random') >= 0) wrongPages.push(p);

  const t0 = Date.now();
  while (events.length === 0 && Date.now() - t0 < EVENT_MS) await new Promise((resolve) => setTimeout(resolve, 20));
  const sf = swap.stats().swapFile!;
  const result: ChecksumEventResult = {
    events,
    channel,
    failedWrites,
    wrongPages,
    checksumErrors: sf.checksumErrors,
    ioErrors: sf.ioErrors,
  };
  say(`result ${JSON.stringify(result)}`);
  await swap.close();
  process.exit(0);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    say(`child: setup failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(5);
  });
}
