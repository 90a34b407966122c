/**
 * The staging ring: where evicted pages wait (second chance) before they are
 * compressed and stored. One userfaultfd-registered area of S pages; a page
 * is moved in with UFFDIO_MOVE (atomic against writers) and, when touched
 * again, moved back at no copy.
 *
 *   staging memory   [slot 0][slot 1] ... [slot S-1]      one page each
 *   ring             slots [head, tail) in FIFO order (mod S), used = tail - head
 *   slot table       a SharedArrayBuffer shared with native code (layout: pagestate.ts)
 *   per slot         slotClaimed SLOT_READING while a reader off the fault path reads it
 *                    slotRegion  region id, or -1: empty (a hole once its page was
 *                                moved back by a fault, until the head passes it)
 *                    slotPage    page index in that region
 *                    slotKept    swap file slot kept by the clean page in it (-1: none;
 *                                its copy is in the pool or the file)
 *                    slotPending released, madvise(MADV_DONTNEED) not issued yet
 *                    slotDeferred finalized but still holding its page, queued in the
 *                                swap file write-back batch: not reused (a MOVE into it
 *                                fails with EEXIST) until flushWriteback() settles it
 *                    slotStray   found holding a page the ring did not put there (a MOVE
 *                                answered EEXIST): never reused, passed over as a hole
 *   releases         (address, length) runs, one madvise per contiguous run
 *
 * `ring.staged` counts occupied slots (G_STAGED).
 */
import * as fs from 'node:fs';
import { native, REGISTER_MODE_MISSING, MADV_DONTNEED } from '../native';
import { PAGE } from '../compress';
import * as P from './protocol';
import { uffd, G, opts, EBUSY, ENOENT } from './env';
import { SLOT_WORDS, SLOT_CLAIMED, SLOT_REGION, SLOT_PAGE, SLOT_KEPT } from './pagestate';

/** Slots in the ring. */
export const S = opts.stagingPages;
export const staging = new native.Region(uffd, S * PAGE, REGISTER_MODE_MISSING);
export const stagingBytes = new Uint8Array(staging.buffer);
export const stagingWords = new Uint32Array(staging.buffer);
/** The slot table (pagestate.ts): claimed, region, page and kept words per slot, shared with native code. */
export const slotTable = new SharedArrayBuffer(4 * SLOT_WORDS * S);
export const slotClaimed = new Int32Array(slotTable, 4 * SLOT_CLAIMED * S, S);
export const slotRegion = new Int32Array(slotTable, 4 * SLOT_REGION * S, S).fill(-1);
export const slotPage = new Int32Array(slotTable, 4 * SLOT_PAGE * S, S);
export const slotKept = new Int32Array(slotTable, 4 * SLOT_KEPT * S, S).fill(-1);
export const slotPending = new Uint8Array(S);
export const slotDeferred = new Uint8Array(S);
export const slotStray = new Uint8Array(S);
export const ring = { head: 0, tail: 0, used: 0, staged: 0 };

const release = new Float64Array(2 * 64);
let releaseCount = 0;

/** What native code needs of the staging ring: its address, slot count and slot table. */
export interface StagingShare {
  address: number;
  slots: number;
  table: SharedArrayBuffer;
}
export function stagingShare(): StagingShare {
  return { address: staging.address, slots: S, table: slotTable };
}

/** The address of a slot's page. */
export function slotAddress(slot: number): number {
  return staging.address + slot * PAGE;
}

/** A page left the ring (moved back, finalized or dropped): G_STAGED follows. */
export function unstaged(): void {
  ring.staged--;
  G[P.G_STAGED] = ring.staged;
}

/** Queues the slot's page for release (madvise DONTNEED in a batch). */
export function queueRelease(slot: number): void {
  slotPending[slot] = 1;
  const addr = staging.address + slot * PAGE;
  if (releaseCount > 0) {
    const k = 2 * (releaseCount - 1);
    if (release[k] + release[k + 1] === addr) {
      release[k + 1] += PAGE;
      return;
    }
  }
  if (releaseCount === 64) flushReleases();
  release[2 * releaseCount] = addr;
  release[2 * releaseCount + 1] = PAGE;
  releaseCount++;
}

/** Releases queued runs now. */
export function flushReleases(): void {
  if (releaseCount === 0) return;
  native.madvise(release, releaseCount, MADV_DONTNEED);
  releaseCount = 0;
  slotPending.fill(0);
}

/** Release runs queued (flushed early when many). */
export function pendingReleases(): number {
  return releaseCount;
}

let anomalyReported = false;

function anomaly(what: string): void {
  G[P.G_MOVE_ANOMALIES]++;
  if (anomalyReported) return;
  anomalyReported = true;
  fs.writeSync(2, `tmem: ${what}; recovered, no byte lost (stats().moveAnomalies counts these)\n`);
}

/**
 * UFFDIO_MOVE of one page, its answer checked when it is an error: the kernel can answer
 * EEXIST for a page it did move (measured on this project's CI kernel: once in about 10^7 moves
 * of cold pages, the page gone from src and mapped at dst: bench/native/move_answers.cc).
 * Taken at its word, such a page would be kept as resident while its bytes sat in a staging
 * slot the ring thinks is empty: the program's next touch would fault for ever. So an error
 * other than ENOENT costs one or two mincore(2) calls, and the answer follows the page tables:
 * still at src, the error stands (so an EBUSY returned means the page is at src); gone from src
 * and mapped at dst, it moved (PAGE); at neither, it is gone (the program discarded it), as
 * ENOENT says. Successes cost nothing more.
 */
export function movePage(dst: number, src: number, flags = 0): number {
  const res = uffd.move(dst, src, PAGE, flags);
  if (res === PAGE || res === ENOENT) return res;
  if (native.mapped(src, PAGE) !== 0) return res;
  return landedAt(dst, `errno ${-res}`) ? PAGE : ENOENT;
}

/**
 * A UFFDIO_MOVE answered `answer` (an error, or a run cut short before this page) and the
 * page is gone from its source: did it land at `dst`? The page tables decide; when it did,
 * the answer was wrong, which is counted and reported as an anomaly.
 */
export function landedAt(dst: number, answer: string): boolean {
  if (native.mapped(dst, PAGE) === 0) return false;
  anomaly(`UFFDIO_MOVE answered ${answer} for a page it had moved`);
  return true;
}

/**
 * UFFDIO_MOVE of one page that survives a fork: after any fork the page is shared
 * copy-on-write (until written, even once the child exec'd) and MOVE refuses it
 * with EBUSY; make it exclusive again (uffd.unshare: the kernel's write fault,
 * bytes unchanged, never waiting on a userfaultfd) and move once more. EBUSY
 * after that: the kernel holds the page (pinned for I/O); it stays where it is.
 */
export function moveUnshared(dst: number, src: number, flags = 0): number {
  const res = movePage(dst, src, flags);
  // EBUSY from movePage(): the page is at src, so unshare() faults nothing in.
  if (res !== EBUSY || uffd.unshare(src, PAGE) !== PAGE) return res;
  G[P.G_UNSHARED]++;
  return movePage(dst, src, flags);
}

/**
 * A move into slot `slot` answered EEXIST: it holds a page the ring did not put there. Its
 * owner is unknown, so it is neither released nor reused: the slot is passed over as a hole.
 */
export function strayFound(slot: number): void {
  slotStray[slot] = 1;
  anomaly(`staging slot ${slot} held a page the ring had not put there; the slot is no longer used`);
}

/**
 * Passes the ring's tail over stray slots (each as a hole, freed when the head passes it).
 * False if the ring is full.
 */
export function skipStrays(): boolean {
  while (slotStray[ring.tail] && ring.used < S) {
    slotRegion[ring.tail] = -1;
    ring.tail = (ring.tail + 1) % S;
    ring.used++;
  }
  return ring.used < S;
}

/** Puts the page in staging slot `slot` back at `addr`: moved, or copied if the kernel will not move it. */
export function unstage(addr: number, slot: number): number {
  const res = moveUnshared(addr, staging.address + slot * PAGE);
  if (res !== EBUSY) return res;
  const c = uffd.copy(addr, stagingBytes, slot * PAGE, 0);
  if (c === PAGE) queueRelease(slot);
  return c;
}
