/**
 * Child process for the mapped-file reliability tests (a hang or a crash here
 * fails one test): `node file-region-child.js MODE DIR [FILLER]`.
 *
 *   deadlock     fs.writeSync into file F from region memory that is not
 *                resident (an anonymous region, then F's own mapping), while a
 *                writable mapping of F has dirty pages being evicted: the
 *                kernel holds F's inode lock while it faults on the source
 *   not-regular  mapFile of a FIFO, a socket, a device, a directory: refused
 *                at once with ERR_TMEM_NOT_REGULAR_FILE
 *   close-enospc close() of a writable mapping on a full filesystem rejects
 *                (ENOSPC), the region stays usable (swap.close() rejects too
 *                and keeps the swap open); then a new region (at the same
 *                address, once the old one is gone) is served
 *   wb-enospc    eviction write-back on a full filesystem: the dispatcher
 *                lives, the pages stay dirty, flush() rejects, then succeeds
 *                once there is room
 *
 * DIR holds the files; FILLER (a file in the same filesystem) is removed to
 * make room. Exit code 0 and "child: done" on success; progress on stderr.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { open } from '../../lib';

const PAGE = 4096;
const say = (s: string): void => {
  fs.writeSync(2, `child: ${s}\n`);
};
const [mode, dir, filler] = process.argv.slice(2);

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
}

/** Pages that compress (text-like) but differ from each other. */
function pattern(pages: number, salt: number): Buffer {
  const b = Buffer.alloc(pages * PAGE);
  for (let p = 0; p < pages; p++) {
    const line = Buffer.from(`salt ${salt} page ${p} `.padEnd(64, '.'));
    for (let o = 0; o < PAGE; o += 64) line.copy(b, p * PAGE + o);
  }
  return b;
}

/** Fills the filesystem of `file`'s directory until a write fails with ENOSPC. */
function fillUp(file: string): void {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  }
  try {
    for (;;) fs.writeSync(fd, chunk, 0, PAGE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

async function deadlock(): Promise<void> {
  const pages = 256;
  const swap = await open({ residentLimit: '256KiB', poolLimit: '64MiB' });
  const file = path.join(dir, 'f');
  const model = pattern(pages, 1);
  fs.writeFileSync(file, model);
  const anon = swap.region(pages * PAGE);
  const anonModel = randomBytes(pages * PAGE);
  new Uint8Array(anon.buffer).set(anonModel); // then pushed out by the file's pages
  const mapped = swap.mapFile(file, { writable: true });
  const mb = new Uint8Array(mapped.buffer);
  const fileModel = Buffer.from(model);
  for (let p = 0; p < pages; p++) {
    const w = randomBytes(100);
    mb.set(w, p * PAGE + 7);
    w.copy(fileModel, p * PAGE + 7);
  }
  say(`dirty pages resident: ${mapped.stats().dirtyPages}, anon resident ${anon.stats().residentPages}`);
  const fd = fs.openSync(file, 'r+');
  // 1. From the anonymous region (in the pool) into F, while F's dirty pages are evicted.
  let done = 0;
  while (done < anonModel.length)
    done += fs.writeSync(fd, new Uint8Array(anon.buffer), done, anonModel.length - done, pages * PAGE + done);
  say('wrote the anonymous region into the file');
  // 2. From F's own mapping (pages evicted, some in flight to the file) into F.
  await mapped.evict();
  for (let p = 0; p < 8; p++) {
    const w = randomBytes(50);
    mb.set(w, p * PAGE);
    w.copy(fileModel, p * PAGE);
  }
  done = 0;
  while (done < 64 * PAGE) done += fs.writeSync(fd, mb, done, 64 * PAGE - done, 2 * pages * PAGE + done);
  say('wrote the mapping into its own file');
  fs.closeSync(fd);
  await mapped.close();
  const got = fs.readFileSync(file);
  check(got.length === 2 * pages * PAGE + 64 * PAGE, `file length ${got.length}`);
  check(got.subarray(0, pages * PAGE).equals(fileModel), "the mapping's pages in the file");
  check(got.subarray(pages * PAGE, 2 * pages * PAGE).equals(anonModel), "the anonymous region's bytes in the file");
  check(
    got.subarray(2 * pages * PAGE).equals(fileModel.subarray(0, 64 * PAGE)),
    "the mapping's bytes written into its own file",
  );
  say(`file writes ${swap.stats().fileWrites}`);
  await swap.close();
}

async function notRegular(): Promise<void> {
  const swap = await open({ residentLimit: '1MiB' });
  const fifo = path.join(dir, 'fifo');
  const sock = path.join(dir, 'sock');
  execFileSync('mkfifo', [fifo]);
  const server = net.createServer().listen(sock);
  await new Promise((resolve) => server.once('listening', resolve));
  const cases: [string, boolean][] = [
    [fifo, false],
    [fifo, true],
    [sock, false],
    ['/dev/null', false],
    ['/dev/zero', true],
    [dir, false],
    [dir, true],
  ];
  for (const [p, writable] of cases) {
    try {
      swap.mapFile(p, { writable });
      throw new Error(`mapFile(${p}, writable ${writable}) was accepted`);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      say(`mapFile(${p}, ${writable}) -> ${err.code}: ${err.message}`);
      check(err.code === 'ERR_TMEM_NOT_REGULAR_FILE', `code of ${p}: ${err.code}`);
      check(err.message.includes(JSON.stringify(p)), 'the message names the path');
    }
  }
  server.close();
  await swap.close();
}

function expectEnospc(e: unknown, what: string): void {
  const err = e as NodeJS.ErrnoException;
  say(`${what} -> ${err.code} ${err.errno} ${err.syscall}: ${err.message}`);
  check(
    err.code === 'ENOSPC' && err.errno === 28 && err.syscall === 'pwrite',
    `${what}: code/errno/syscall ${err.code}/${err.errno}/${err.syscall}`,
  );
}

async function closeEnospc(): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const pages = 32;
  const swap = await open({ residentLimit: '1MiB' });
  const file = path.join(dir, 'f');
  fs.closeSync(fs.openSync(file, 'w'));
  fs.truncateSync(file, pages * PAGE); // sparse: every write-back needs a new block
  fillUp(filler);
  let mapped: ReturnType<typeof swap.mapFile> | undefined = swap.mapFile(file, { writable: true });
  const model = randomBytes(pages * PAGE);
  new Uint8Array(mapped.buffer).set(model);
  const address = mapped.share().address;
  /** A new region, likely at the address the old one had once it is gone: served like any other. */
  const newRegionServed = async (): Promise<void> => {
    mapped = undefined;
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
    gc();
    const again = swap.region(pages * PAGE);
    say(`new region at ${again.share().address === address ? 'the same' : 'another'} address`);
    const model2 = randomBytes(pages * PAGE);
    new Uint8Array(again.buffer).set(model2);
    await again.evict();
    check(Buffer.from(again.buffer).equals(model2), 'the new region reads back');
  };
  let failed: unknown;
  await mapped.close().catch((e: unknown) => {
    failed = e;
  });
  if (mapped.closed) await newRegionServed(); // given up after the failure: its address can be reused at once
  check(failed !== undefined, 'close() on a full filesystem rejects');
  expectEnospc(failed, 'close()');
  check(!mapped.closed, 'the region is still open after a failed close()');
  check(Buffer.from(mapped.buffer).equals(model), 'and reads back every byte');
  // swap.close() cannot close it either: it rejects the same way and leaves the swap open.
  let swapFailed: unknown;
  await swap.close().catch((e: unknown) => {
    swapFailed = e;
  });
  expectEnospc(swapFailed, 'swap.close()');
  check(
    !mapped.closed && Buffer.from(mapped.buffer).equals(model),
    'the region is still open after a failed swap.close()',
  );
  fs.unlinkSync(filler);
  await mapped.close();
  check(fs.readFileSync(file).equals(model), 'the retried close() wrote every page');
  await newRegionServed();
  await swap.close();
}

async function wbEnospc(): Promise<void> {
  const pages = 256;
  const swap = await open({ residentLimit: '256KiB', poolLimit: '64MiB' });
  const file = path.join(dir, 'f');
  fs.closeSync(fs.openSync(file, 'w'));
  fs.truncateSync(file, pages * PAGE);
  fillUp(filler);
  const mapped = swap.mapFile(file, { writable: true });
  const b = new Uint8Array(mapped.buffer);
  const model = randomBytes(pages * PAGE);
  for (let p = 0; p < pages; p++) b.set(model.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE);
  await mapped.evict();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const s = swap.stats();
  say(
    `after eviction: fileWrites ${s.fileWrites} fileWriteErrors ${s.fileWriteErrors} dirty ${mapped.stats().dirtyPages}`,
  );
  check(s.fileWriteErrors > 0, 'the failed write-backs are counted');
  check(Buffer.from(mapped.buffer).equals(model), 'every byte reads back after failed write-backs');
  try {
    await mapped.flush();
    throw new Error('flush() on a full filesystem resolved');
  } catch (e) {
    expectEnospc(e, 'flush()');
  }
  check(Buffer.from(mapped.buffer).equals(model), 'every byte reads back after a failed flush()');
  fs.unlinkSync(filler);
  const n = await mapped.flush();
  say(`flush() after making room wrote ${n} pages`);
  check(fs.readFileSync(file).equals(model), 'the file has every byte after the retried flush()');
  await mapped.close();
  await swap.close();
}

const modes: Record<string, () => Promise<void>> = {
  deadlock,
  'not-regular': notRegular,
  'close-enospc': closeEnospc,
  'wb-enospc': wbEnospc,
};
modes[mode]().then(
  () => {
    say('done');
    process.exit(0);
  },
  (e: unknown) => {
    say(`failed: ${e instanceof Error ? e.stack : String(e)}`);
    process.exit(1);
  },
);
