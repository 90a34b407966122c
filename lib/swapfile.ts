/**
 * The swap file tier: the "real swap device" under frontswap.
 *
 * Layout: the file is an array of 4 KiB slots, one page per slot, stored
 * uncompressed (as zswap writes back: decompressed pages). Per slot the
 * dispatcher keeps, in memory:
 *
 *   used[slot]   0 free, 1 holds a page
 *   owner[slot]  region id, page[slot] page index (to name them in errors, and
 *                bound into the encrypted slot's authentication)
 *   plain files:     crc[slot]   CRC-32 of the page as written; checked on every read
 *   encrypted files: tag[slot]   the AES-256-GCM tag (16 bytes) of the slot's last write
 *                    gen[slot]   the write counter that write used as its nonce
 *
 *   file:  | slot 0 | slot 1 | slot 2 | ... | slot N-1 |     N = size / 4096
 *
 * Encryption (the default; README "Swap file security"): every slot is
 * sealed with AES-256-GCM under a key drawn from crypto.randomBytes when the
 * dispatcher starts, held only in this Worker's memory and never written or
 * sent anywhere. The 96-bit nonce is (slot, write counter): the counter counts
 * every page write of this file, so no nonce is ever used twice under the key.
 * The additional authenticated data is (slot, region, page), and the tag and
 * counter stay in memory: bytes moved from another slot, an older version of
 * this slot, or any change to the ciphertext fail the tag check, which the
 * dispatcher treats as a CRC mismatch (SIGBUS at that page, never wrong bytes).
 * The tags live in memory, like the CRC table, because slots are whole pages.
 *
 * Why one uncompressed page per slot rather than packed compressed objects:
 * a swap-in is then one pread and a check, with no decompression, which keeps
 * it close to the kernel's own swap-in; slots never fragment; and a batch of
 * write-backs lands in one contiguous run, written with one pwrite. The pool
 * above keeps the compressed copies of what is warm; the file is for what is
 * cold or does not compress.
 *
 * Allocation is next-fit over the used[] map, looking for a run of the batch
 * length and falling back to shorter runs, so the file never grows past
 * `size`. Readahead: a swap-in that follows its predecessor page reads a
 * cluster of slots (8, like the kernel's page-cluster 3) in one pread and keeps
 * it (still sealed, when encrypted) for the next faults.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { crc32 } from './crc32';

export const SLOT = 4096;
export const READAHEAD = 8;
/** The AEAD used for encrypted swap files (node:crypto name). */
export const CIPHER = 'aes-256-gcm';
const TAG = 16;

/** An I/O failure on the swap file; the page stays where it was. */
export class SwapFileError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * Seals and opens single slots with AES-256-GCM. The nonce and AAD buffers are
 * reused; node:crypto still makes one cipher object and one 4 KiB output
 * buffer per call (it has no update-into API), measured in
 * bench/swapfile-crypto.ts.
 */
class SlotCipher {
  private readonly key = crypto.createSecretKey(crypto.randomBytes(32));
  private readonly iv = Buffer.alloc(12);
  private readonly aad = Buffer.alloc(12);

  private bind(slot: number, counter: number, owner: number, page: number): void {
    this.iv.writeUInt32LE(slot, 0);
    this.iv.writeUInt32LE(counter % 0x100000000, 4);
    this.iv.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
    this.aad.writeUInt32LE(slot, 0);
    this.aad.writeInt32LE(owner, 4);
    this.aad.writeUInt32LE(page, 8);
  }

  /** Encrypts src (4096 bytes) into dst; writes the 16-byte tag at tags[tagOff]. */
  seal(
    slot: number,
    counter: number,
    owner: number,
    page: number,
    src: Uint8Array,
    dst: Uint8Array,
    tags: Uint8Array,
    tagOff: number,
  ): void {
    this.bind(slot, counter, owner, page);
    const c = crypto.createCipheriv(CIPHER, this.key, this.iv, { authTagLength: TAG });
    c.setAAD(this.aad);
    dst.set(c.update(src));
    c.final();
    tags.set(c.getAuthTag(), tagOff);
  }

  /** Decrypts src into dst if the tag at tags[tagOff] matches; false (dst untouched) if not. */
  open(
    slot: number,
    counter: number,
    owner: number,
    page: number,
    src: Uint8Array,
    dst: Uint8Array,
    tags: Uint8Array,
    tagOff: number,
  ): boolean {
    this.bind(slot, counter, owner, page);
    const d = crypto.createDecipheriv(CIPHER, this.key, this.iv, { authTagLength: TAG });
    d.setAAD(this.aad);
    d.setAuthTag(tags.subarray(tagOff, tagOff + TAG));
    const out = d.update(src);
    try {
      d.final();
    } catch {
      return false; // forged, moved, stale or corrupted: the plaintext is dropped unseen
    }
    dst.set(out);
    return true;
  }
}

export class SwapFile {
  readonly slots: number;
  readonly used: Uint8Array;
  readonly owner: Int32Array;
  readonly page: Uint32Array;
  /** CRC-32 per slot (plain files only). */
  private readonly crc?: Uint32Array;
  /** Encrypted files only: the cipher, tag and write counter per slot, and scratch for sealed bytes. */
  private readonly cipher?: SlotCipher;
  private readonly tag?: Uint8Array;
  private readonly gen?: Float64Array;
  private writes = 0;
  private sealed = new Uint8Array(0);
  private sealedTags = new Uint8Array(0);
  private readonly one = new Uint8Array(SLOT);
  usedCount = 0;
  private next = 0;
  // Readahead cache: slots [raFirst, raFirst + raCount) as read, valid[i] until freed.
  private readonly ra = new Uint8Array(READAHEAD * SLOT);
  private readonly raValid = new Uint8Array(READAHEAD);
  private raFirst = -1;
  private raCount = 0;
  readaheadHits = 0;

  /** `encrypt`: seal every slot with AES-256-GCM under a key only this object holds. */
  constructor(
    readonly fd: number,
    size: number,
    readonly encrypt = false,
  ) {
    this.slots = Math.floor(size / SLOT);
    this.used = new Uint8Array(this.slots);
    this.owner = new Int32Array(this.slots);
    this.page = new Uint32Array(this.slots);
    if (encrypt) {
      this.cipher = new SlotCipher();
      this.tag = new Uint8Array(this.slots * TAG);
      this.gen = new Float64Array(this.slots);
    } else {
      this.crc = new Uint32Array(this.slots);
    }
  }

  /** What a failed read check is called in messages. */
  get checkName(): string {
    return this.encrypt ? 'authentication tag' : 'checksum';
  }

  /** Free slots. */
  get free(): number {
    return this.slots - this.usedCount;
  }

  /**
   * Finds up to `n` free slots, contiguous if possible. Writes the first slot
   * in `out[0]` and returns the run length (0 if the file is full).
   */
  allocRun(n: number, out: Int32Array): number {
    if (this.usedCount === this.slots) return 0;
    let best = -1,
      bestLen = 0;
    let i = this.next,
      scanned = 0;
    while (scanned < this.slots) {
      if (i >= this.slots) i = 0;
      if (this.used[i]) {
        i++;
        scanned++;
        continue;
      }
      let len = 0;
      while (i + len < this.slots && len < n && !this.used[i + len]) len++;
      if (len > bestLen) {
        best = i;
        bestLen = len;
        if (len === n) break;
      }
      i += len;
      scanned += len;
    }
    if (bestLen === 0) return 0;
    for (let k = 0; k < bestLen; k++) this.used[best + k] = 1;
    this.usedCount += bestLen;
    this.next = best + bestLen;
    out[0] = best;
    return bestLen;
  }

  /** Gives slots back (after a failed write, or when their page leaves). */
  release(first: number, n: number): void {
    for (let k = 0; k < n; k++) this.freeSlot(first + k);
  }

  freeSlot(slot: number): void {
    if (!this.used[slot]) return;
    this.used[slot] = 0;
    this.usedCount--;
    if (slot >= this.raFirst && slot < this.raFirst + this.raCount) this.raValid[slot - this.raFirst] = 0;
  }

  /**
   * Writes `n` pages from buf (at 0) to slots [first, first + n) in one pwrite
   * (sealed first when encrypted) and records their checks and owners.
   * @throws SwapFileError (ENOSPC, EIO...): nothing is recorded, the caller keeps the pages
   */
  writeRun(first: number, buf: Uint8Array, n: number, owners: Int32Array, pages: Uint32Array, from: number): void {
    const len = n * SLOT;
    let out = buf;
    const base = this.writes;
    if (this.cipher) {
      if (this.sealed.length < len) {
        this.sealed = new Uint8Array(len);
        this.sealedTags = new Uint8Array(n * TAG);
      }
      out = this.sealed;
      // The tags go to a scratch copy first: a failed write must leave the recorded ones alone.
      for (let k = 0; k < n; k++) {
        this.cipher.seal(
          first + k,
          base + k,
          owners[from + k],
          pages[from + k],
          buf.subarray(k * SLOT, (k + 1) * SLOT),
          out.subarray(k * SLOT, (k + 1) * SLOT),
          this.sealedTags,
          k * TAG,
        );
      }
      this.writes += n; // counters are spent even if the write fails: a nonce is never reused
    }
    let done = 0;
    try {
      while (done < len) done += fs.writeSync(this.fd, out, done, len - done, first * SLOT + done);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // The file may not be able to grow (ENOSPC, EDQUOT, EFBIG): next time, look from the
      // start, where slots freed by swap-ins already have blocks, not further into the hole.
      this.next = 0;
      throw new SwapFileError(
        `tmem: writing ${n} page(s) to the swap file failed: ${err.code ?? err.message}`,
        err.code,
      );
    }
    for (let k = 0; k < n; k++) {
      const slot = first + k;
      if (this.cipher) {
        this.tag!.set(this.sealedTags.subarray(k * TAG, (k + 1) * TAG), slot * TAG);
        this.gen![slot] = base + k;
      } else {
        this.crc![slot] = crc32(buf.subarray(k * SLOT, (k + 1) * SLOT));
      }
      this.owner[slot] = owners[from + k];
      this.page[slot] = pages[from + k];
      if (slot >= this.raFirst && slot < this.raFirst + this.raCount) this.raValid[slot - this.raFirst] = 0;
    }
  }

  /**
   * Reads slot `slot` into dst[dstOff..+4096), from the readahead cluster when
   * it is there, else with one pread (a cluster of READAHEAD slots when
   * `sequential`). Returns false if the check (CRC-32, or the authentication
   * tag when encrypted) fails; dst then holds nothing to be used.
   * @throws SwapFileError on an I/O error
   */
  read(slot: number, dst: Uint8Array, dstOff: number, sequential: boolean): boolean {
    const out = dst.subarray(dstOff, dstOff + SLOT);
    let src: Uint8Array; // the slot's bytes as on disk
    const i = slot - this.raFirst;
    if (i >= 0 && i < this.raCount && this.raValid[i]) {
      this.readaheadHits++;
      this.raValid[i] = 0;
      src = this.ra.subarray(i * SLOT, (i + 1) * SLOT);
    } else if (sequential) {
      let n = 1;
      while (n < READAHEAD && slot + n < this.slots && this.used[slot + n]) n++;
      this.preadFully(this.ra, n * SLOT, slot * SLOT);
      this.raFirst = slot;
      this.raCount = n;
      this.raValid.fill(1, 0, n);
      this.raValid[0] = 0;
      src = this.ra.subarray(0, SLOT);
    } else {
      src = this.cipher ? this.one : out;
      this.preadFully(src, SLOT, slot * SLOT);
    }
    if (this.cipher)
      return this.cipher.open(
        slot,
        this.gen![slot],
        this.owner[slot],
        this.page[slot],
        src,
        out,
        this.tag!,
        slot * TAG,
      );
    if (src !== out) out.set(src);
    return crc32(out) === this.crc![slot];
  }

  private preadFully(buf: Uint8Array, len: number, pos: number): void {
    let got = 0;
    try {
      while (got < len) {
        const k = fs.readSync(this.fd, buf, got, len - got, pos + got);
        if (k === 0) {
          buf.fill(0, got, len); // a slot past the end of a short file reads as zeros: the check tells
          break;
        }
        got += k;
      }
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new SwapFileError(`tmem: reading the swap file failed: ${err.code ?? err.message}`, err.code);
    }
  }
}

/**
 * Opens the swap file for `path`, so that nothing but this process can reach
 * its pages and nothing is left behind, whatever happens:
 *
 * - a directory: an unnamed O_TMPFILE in it (with O_EXCL: it can never be
 *   given a name with linkat);
 * - otherwise `path` must not exist: it is created with O_CREAT|O_EXCL|O_NOFOLLOW,
 *   mode 0600, and unlinked at once (the fd keeps the file). A path that
 *   already exists (a file, a symlink, a FIFO, a device node such as
 *   /dev/null) is refused with the open(2) error EEXIST: tmem never writes
 *   into, chmods or deletes a file it did not create, and a file another user
 *   placed first (and may hold open) never receives a page.
 *
 * Either way the file has no name once open() returns: a SIGKILL or a
 * forgotten close() leaves nothing on disk, and the kernel frees the blocks
 * when the fd closes.
 * @throws Error with code, errno, syscall, path (EEXIST, ENOENT, EACCES, EOPNOTSUPP...)
 */
export function openSwapFile(path: string): { fd: number } {
  const c = fs.constants;
  let isDir = false;
  try {
    isDir = fs.statSync(path).isDirectory();
  } catch {
    /* not there: a new file */
  }
  if (isDir) {
    // If the directory was replaced by something else since the stat, O_DIRECTORY fails (ENOTDIR).
    const O_TMPFILE = 0o20000000 | c.O_DIRECTORY;
    return { fd: fs.openSync(path, O_TMPFILE | c.O_RDWR | c.O_EXCL, 0o600) };
  }
  let fd: number;
  try {
    fd = fs.openSync(path, c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW | c.O_RDWR, 0o600);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EEXIST') {
      err.message =
        `tmem: swapFile.path '${path}' already exists: tmem creates its swap file itself (O_EXCL) and never ` +
        `opens, truncates or removes an existing file, symlink or device; remove it, or give a directory (${err.message})`;
    }
    throw err;
  }
  // Give the name up at once, but only if it is still ours: in a directory others can write
  // (without the sticky bit) the name may already point to another file, which stays untouched.
  try {
    const mine = fs.fstatSync(fd);
    const there = fs.lstatSync(path);
    if (there.dev === mine.dev && there.ino === mine.ino) fs.unlinkSync(path);
  } catch {
    /* gone already: nothing to remove */
  }
  return { fd };
}
