/**
 * Child process for the swap file corruption test:
 *   node swapfile-corrupt-child.js DIR ORDER SEED [HOW]    ORDER = seq | random
 *
 * HOW: plain-flip (default; swapFile.encrypt false, the CRC-32 catches it),
 * enc-flip (encrypted, one byte flipped) or enc-move (encrypted, another slot's
 * bytes copied over the victim slot: each is valid ciphertext, of another slot),
 * plain-forge / enc-forge (the slot's first bytes rewritten and its last 4
 * bytes chosen so that its CRC-32 is unchanged: what another user who can
 * write the file does; a CRC cannot see it, the authentication tag does).
 *
 * Opens a swap with a swap file at DIR/swap.bin, fills a region with
 * incompressible pages (they go to the file), pushes every page out with
 * region.evict(), then flips one byte of a slot that holds data, on disk
 * (fs.writeSync at that offset, through /proc/self/fd since the file has no
 * name: the dispatcher's pread sees it through the page cache). Then it touches every page in ORDER, checking each one byte for
 * byte, and writes `ok P` to stderr after each good page. The expected end is
 * death by SIGBUS at the corrupted page, with the dispatcher's
 * "cannot be restored: checksum mismatch" line on stderr.
 *
 * Exit codes when it does not die: 3 = a page read back wrong (the worst
 * outcome), 4 = every page read back right (the corruption went unnoticed),
 * 5 = setup failed. Progress goes to stderr with write(2), nothing buffered.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { open } from '../../lib';
import { PAGE, fillPage, PageChecker, shuffled } from './swapfile-pattern';
import { openSwapFilePath } from './swapfile-fd';

export const CHILD_PAGES = 512;

/** The order the child touches its pages in (the test recomputes it to know which page died). */
export function touchOrder(order: string, seed: number): Uint32Array {
  return order === 'random'
    ? shuffled(CHILD_PAGES, seed ^ 0x5eed)
    : Uint32Array.from({ length: CHILD_PAGES }, (_, i) => i);
}

const say = (s: string): void => {
  fs.writeSync(2, `${s}\n`);
};

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const CRC_BY_TOP = new Uint8Array(256);
for (let j = 0; j < 256; j++) CRC_BY_TOP[CRC_TABLE[j] >>> 24] = j;

/** Sets block[len-4..len) so that crc32(block) === want (CRC-32 is linear: 4 free bytes reach any value). */
export function forgeCrc(block: Uint8Array, want: number): void {
  const n = block.length;
  const idx = new Uint8Array(4);
  let reg = ~want >>> 0;
  for (let k = 3; k >= 0; k--) {
    const j = CRC_BY_TOP[reg >>> 24];
    idx[k] = j;
    reg = ((reg ^ CRC_TABLE[j]) << 8) >>> 0;
  }
  let r = ~crc32(block.subarray(0, n - 4)) >>> 0;
  for (let k = 0; k < 4; k++) {
    block[n - 4 + k] = (r ^ idx[k]) & 0xff;
    r = ((r >>> 8) ^ CRC_TABLE[idx[k]]) >>> 0;
  }
}

async function main(): Promise<void> {
  const [dir, order, seedArg, how = 'plain-flip'] = process.argv.slice(2);
  const encrypt = how.startsWith('enc');
  const seed = Number(seedArg) | 0;
  const file = path.join(dir, 'swap.bin');
  const swap = await open({
    residentLimit: '64KiB',
    poolLimit: '64KiB',
    swapFile: { path: file, size: '8MiB', encrypt },
  });
  const region = swap.region(CHILD_PAGES * PAGE);
  const bytes = new Uint8Array(region.buffer);
  for (let p = 0; p < CHILD_PAGES; p++) fillPage(bytes, p * PAGE, p, 0, seed, 'random');
  await region.evict();
  const s = swap.stats();
  const sf = s.swapFile!;
  say(
    `child: region ${region.id}, ${sf.pages} pages in the swap file, ${s.residentPages} resident, ${s.storedPages} in the pool`,
  );
  if (sf.pages < CHILD_PAGES / 2) {
    say(`child: setup failed: too few pages reached the swap file: ${JSON.stringify(sf)}`);
    process.exit(5);
  }

  // A slot that holds data: the first non-zero block from the middle of the file on.
  const onDisk = openSwapFilePath(file); // it has no name any more: reach it through our fd
  const image = fs.readFileSync(onDisk);
  const slots = Math.floor(image.length / PAGE);
  let victim = -1;
  for (let k = 0; k < slots && victim < 0; k++) {
    const slot = (Math.floor(slots / 2) + k) % slots;
    const block = image.subarray(slot * PAGE, (slot + 1) * PAGE);
    if (block.some((b) => b !== 0)) victim = slot;
  }
  if (victim < 0) {
    say('child: setup failed: the swap file holds no data');
    process.exit(5);
  }
  const fd = fs.openSync(onDisk, 'r+');
  if (how === 'enc-move') {
    let source = -1;
    for (let k = 1; k < slots && source < 0; k++) {
      const slot = (victim + k) % slots;
      if (image.subarray(slot * PAGE, (slot + 1) * PAGE).some((b) => b !== 0)) source = slot;
    }
    if (source < 0) {
      say('child: setup failed: only one slot holds data');
      process.exit(5);
    }
    fs.writeSync(fd, image, source * PAGE, PAGE, victim * PAGE);
    say(`child: copied slot ${source} over slot ${victim} of a ${image.length}-byte swap file`);
  } else if (how.endsWith('forge')) {
    const block = Buffer.from(image.subarray(victim * PAGE, (victim + 1) * PAGE));
    const crc = crc32(block);
    block.write('FORGED: bytes chosen by another user', 0);
    forgeCrc(block, crc);
    if (crc32(block) !== crc) {
      say('child: setup failed: the forged block does not keep its CRC');
      process.exit(5);
    }
    fs.writeSync(fd, block, 0, PAGE, victim * PAGE);
    say(`child: forged slot ${victim} keeping its CRC-32 ${crc.toString(16)}`);
  } else {
    const at = victim * PAGE + 1234;
    fs.writeSync(fd, Buffer.of(image[at] ^ 0x5a), 0, 1, at);
    say(`child: flipped byte ${at} (slot ${victim}) of a ${image.length}-byte swap file`);
  }
  fs.closeSync(fd);
  say(`child: victim slot ${victim}`);

  const check = new PageChecker(seed);
  const pages = touchOrder(order, seed);
  for (const p of pages) {
    const bad = check.mismatch(bytes, p, 0, 'random'); // the fault happens here
    if (bad >= 0) {
      say(`child: WRONG BYTES: ${check.describe(bytes, p, 0, bad, 'random')}`);
      process.exit(3);
    }
    say(`ok ${p}`);
  }
  say(`child: every page read back right; the corruption was not detected: ${JSON.stringify(swap.stats().swapFile)}`);
  process.exit(4);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    say(`child: setup failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(5);
  });
}
