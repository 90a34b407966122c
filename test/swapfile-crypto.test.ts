/**
 * Encryption at rest of the swap file (swapFile.encrypt, the default; README
 * "Swap file security"): every slot sealed with AES-256-GCM under a key that
 * lives only in the dispatcher. On disk there is no plaintext; a flipped byte
 * or another slot's (valid) ciphertext moved into a slot is detected, and the
 * faulting thread dies of SIGBUS with "authentication tag mismatch", never
 * seeing wrong bytes. The corruption runs in child processes
 * (helpers/swapfile-corrupt-child.ts) with a timeout and SIGKILL.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, type OpenOptions } from '../lib';
import { Watchdog, runNodeChild, tempDir, withTimeout } from './helpers/harness';
import { PAGE, PageChecker, fillPage } from './helpers/swapfile-pattern';
import { CHILD_PAGES, touchOrder } from './helpers/swapfile-corrupt-child';
import { openSwapFilePath } from './helpers/swapfile-fd';

const watchdog = new Watchdog();
const seed = Number(process.env.TMEM_SEED) || Date.now() & 0x7fffffff;

async function corrupted(
  t: ExecutionContext,
  how: 'enc-flip' | 'enc-move' | 'enc-forge',
  order: 'seq' | 'random',
): Promise<void> {
  const dir = tempDir(t, 'tmem-swapcrypt-');
  const childSeed = (seed ^ (how === 'enc-move' ? 17 : how === 'enc-forge' ? 23 : 19)) | 0;
  t.log(`seed ${childSeed}`);
  const r = await runNodeChild(
    path.join(__dirname, 'helpers', 'swapfile-corrupt-child.js'),
    [dir, order, String(childSeed), how],
    30000,
  );
  t.log(
    r.stderr
      .split('\n')
      .filter((l) => !l.startsWith('ok '))
      .join('\n'),
  );
  t.false(r.stderr.includes('WRONG BYTES'), 'no page read back wrong');
  t.is(r.signal, 'SIGBUS', `the child died of SIGBUS (code ${r.code}, signal ${r.signal})`);
  const m =
    /tmem: region (\d+) page (\d+) cannot be restored: authentication tag mismatch in swap file slot (\d+)/.exec(
      r.stderr,
    );
  t.truthy(m, 'stderr names the region, the page and the slot, as an authentication failure');
  const victim = /child: victim slot (\d+)/.exec(r.stderr);
  t.truthy(victim);
  if (!m || !victim) return;
  t.is(m[3], victim[1], 'the slot named is the one changed on disk');
  const oks = [...r.stderr.matchAll(/^ok (\d+)$/gm)].map((x) => Number(x[1]));
  const expected = touchOrder(order, childSeed);
  t.deepEqual(oks, Array.from(expected.subarray(0, oks.length)), 'every page before the bad one read back right');
  t.true(oks.length < CHILD_PAGES);
  t.is(Number(m[2]), expected[oks.length], 'the page named is the page whose touch died');
}

test('encrypted swap file: a byte flipped on disk is detected (SIGBUS, "authentication tag mismatch"), never wrong bytes', (t) =>
  corrupted(t, 'enc-flip', 'random'));
test("encrypted swap file: another slot's bytes copied over a slot are detected, never wrong bytes", (t) =>
  corrupted(t, 'enc-move', 'seq'));
test('encrypted swap file (the default): a slot rewritten with chosen bytes that keep its CRC-32 is detected, never read', (t) =>
  corrupted(t, 'enc-forge', 'random'));

/** Fills `pages` incompressible pages, pushes them to the file, returns the file's bytes and checks every page back. */
async function onDisk(
  t: ExecutionContext,
  options: OpenOptions,
  pages: number,
): Promise<{ image: Buffer; encrypted: boolean; wrong: number }> {
  const swap = await withTimeout(open(options), 20000, 'open()');
  try {
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    watchdog.guard('fill', 20000, () => {
      for (let p = 0; p < pages; p++) fillPage(bytes, p * PAGE, p, 0, seed, 'random');
    });
    await withTimeout(region.evict(), 20000, 'evict()');
    const s = swap.stats();
    t.true(s.swapFile!.pages > pages / 2, `pages went to the file: ${JSON.stringify(s.swapFile)}`);
    const image = fs.readFileSync(openSwapFilePath((options.swapFile as { path: string }).path));
    const check = new PageChecker(seed);
    let wrong = 0;
    watchdog.guard('check', 20000, () => {
      for (let p = 0; p < pages; p++) if (check.mismatch(bytes, p, 0, 'random') >= 0) wrong++;
    });
    t.is(swap.stats().swapFile!.checksumErrors, 0);
    await region.close();
    return { image, encrypted: s.swapFile!.encrypted, wrong };
  } finally {
    await withTimeout(swap.close(), 20000, 'swap.close()');
  }
}

/** How many pages have some 32-byte piece of their plaintext in `image`. */
function plaintextFound(image: Buffer, pages: number): number {
  const page = new Uint8Array(PAGE);
  let found = 0;
  for (let p = 0; p < pages; p++) {
    fillPage(page, 0, p, 0, seed, 'random');
    for (const off of [0, 1000, 2048, 4064]) {
      if (image.indexOf(page.subarray(off, off + 32)) >= 0) {
        found++;
        break;
      }
    }
  }
  return found;
}

test.serial(
  "encrypted swap file (the default): the bytes on disk contain none of the pages' plaintext; every byte reads back",
  async (t) => {
    const pages = 256;
    const dir = tempDir(t, 'tmem-swapcrypt-');
    const base = { residentLimit: '64KiB', poolLimit: '64KiB' };
    const enc = await onDisk(t, { ...base, swapFile: { path: dir, size: '4MiB' } }, pages);
    t.true(enc.encrypted, 'encryption is the default');
    t.is(enc.wrong, 0, 'every page reads back right');
    t.true(
      enc.image.some((b) => b !== 0),
      'the file holds data',
    );
    t.is(plaintextFound(enc.image, pages), 0, "no page's plaintext is on disk");
    // The same run with encrypt: false shows what the check finds in a plain file.
    const plain = await onDisk(
      t,
      { ...base, swapFile: { path: path.join(dir, 'plain.swap'), size: '4MiB', encrypt: false } },
      pages,
    );
    t.false(plain.encrypted);
    t.is(plain.wrong, 0);
    t.true(plaintextFound(plain.image, pages) > pages / 2, 'a plain file does hold the plaintext (the check works)');
  },
);

test('swapFile.encrypt must be a boolean: TypeError naming it, nothing created', async (t) => {
  const dir = tempDir(t, 'tmem-swapcrypt-');
  const file = path.join(dir, 'never');
  for (const encrypt of ['yes', 1, null]) {
    await t.throwsAsync(
      open({ residentLimit: '1MiB', swapFile: { path: file, size: '1MiB', encrypt } } as unknown as OpenOptions),
      { instanceOf: TypeError, message: /swapFile\.encrypt/ },
    );
  }
  t.false(fs.existsSync(file));
});
