/**
 * open() modes: user-mode-only userfaultfd (what a process without root,
 * CAP_SYS_PTRACE or /dev/userfaultfd gets), full mode's kernel-mode access
 * from syscalls, and an unpinned dispatcher. Real faults; every byte checked.
 * Serial: pinning changes the whole test process's main thread.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { open } from '../lib';
import { native } from '../lib/native';
import { Watchdog } from './helpers/harness';

const PAGE = 4096;
const watchdog = new Watchdog();

function pattern(pages: number): Uint8Array {
  const b = new Uint8Array(pages * PAGE);
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + (i >> 12)) & 0xff;
  return b;
}

test.serial('full mode: fs.writeSync from region pages that are in the pool writes the right bytes', async (t) => {
  const swap = await open({ residentLimit: '1MiB', poolLimit: '8MiB', userModeOnly: false });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-modes-'));
  try {
    t.false(swap.stats().userModeOnly);
    const pages = 64;
    const region = swap.region(pages * PAGE);
    const want = pattern(pages);
    watchdog.guard('fill', 10000, () => new Uint8Array(region.buffer).set(want));
    t.is(await region.evict(), pages);
    const file = path.join(dir, 'out.bin');
    const fd = fs.openSync(file, 'w');
    // The kernel reads the pages for write(2): each is a kernel-mode fault the dispatcher serves.
    watchdog.guard('writeSync', 10000, () => fs.writeSync(fd, new Uint8Array(region.buffer)));
    fs.closeSync(fd);
    t.true(fs.readFileSync(file).equals(Buffer.from(want)));
  } finally {
    await swap.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.serial(
  'user-mode-only: JS access works; a syscall on a page that is not resident fails with EFAULT',
  async (t) => {
    const swap = await open({ residentLimit: '1MiB', poolLimit: '8MiB', userModeOnly: true });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-modes-'));
    try {
      t.true(swap.stats().userModeOnly);
      const pages = 32;
      const region = swap.region(pages * PAGE);
      const want = pattern(pages);
      watchdog.guard('fill', 10000, () => new Uint8Array(region.buffer).set(want));
      await region.evict();
      const fd = fs.openSync(path.join(dir, 'out.bin'), 'w');
      const err = t.throws(() => fs.writeSync(fd, new Uint8Array(region.buffer, 0, PAGE)));
      t.is((err as NodeJS.ErrnoException).code, 'EFAULT');
      // Touched from JavaScript first, the same write works.
      const copy = watchdog.guard('read', 10000, () => Buffer.from(new Uint8Array(region.buffer).slice()));
      t.true(copy.equals(Buffer.from(want)));
      t.is(fs.writeSync(fd, new Uint8Array(region.buffer, 0, PAGE)), PAGE);
      fs.closeSync(fd);
    } finally {
      await swap.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test.serial(
  'pin: false leaves the main thread free; faults are still served; close() restores nothing it did not change',
  async (t) => {
    const before = native.getAffinity();
    const swap = await open({ residentLimit: '1MiB', poolLimit: '8MiB', pin: false });
    try {
      t.deepEqual(native.getAffinity(), before, 'the main thread is not pinned');
      const pages = 512;
      const region = swap.region(pages * PAGE);
      const want = pattern(pages);
      const bytes = new Uint8Array(region.buffer);
      watchdog.guard('fill + read', 20000, () => {
        bytes.set(want);
        t.true(Buffer.from(bytes.buffer, 0, want.length).equals(Buffer.from(want)));
      });
      t.true(swap.stats().evictions > 0);
    } finally {
      await swap.close();
    }
    t.deepEqual(native.getAffinity(), before);
  },
);

test.serial(
  "pin: true (the default) leaves the main thread's affinity as it was, while open and after close",
  async (t) => {
    const before = native.getAffinity();
    const swap = await open({ residentLimit: '1MiB', poolLimit: '8MiB' });
    const region = swap.region('2MiB');
    new Uint8Array(region.buffer).fill(9); // faults: the dispatcher follows this thread, this thread stays as it is
    t.deepEqual(native.getAffinity(), before, 'unchanged while open');
    await swap.close();
    t.deepEqual(native.getAffinity(), before);
  },
);
