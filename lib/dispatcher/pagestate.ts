/**
 * The page-state layout, as docs/layout.md describes it for both the JS dispatcher
 * and native code (native/page_state.h mirrors it; test/native-faults.test.ts runs the
 * native fault server over the same states). docs/layout.md also has the served-record
 * ring and the region table of the native fault path (native-faults.ts).
 *
 * Per region two SharedArrayBuffers (RegionState.state, RegionState.aux):
 *
 *   state  Uint8Array  over a SharedArrayBuffer of `pages` bytes       one byte per page
 *   aux    Uint32Array over a SharedArrayBuffer of `4 * pages` bytes   one word per page
 *
 *   state[page]  aux[page]
 *   NEVER    0   -          never resident. anon: zero on fault; file: cleancache, else the file
 *   ACTIVE   1   0          mapped, possibly written since it was loaded (dirty)
 *   CLEAN    2   0 | KEPT_SLOT | slot
 *                           mapped and write-protected; its copy elsewhere is current
 *                           (anon: the compressed copy kept in the persistent pool, or,
 *                           with KEPT_SLOT, its swap file slot, kept as the kernel's swap
 *                           cache keeps it; file: the file itself)
 *   STAGED   3   slot | STAGED_CLEAN
 *                           moved out (UFFDIO_MOVE) to a staging slot: second chance; a
 *                           touch moves it back at no copy (a read of a clean one copies
 *                           it back write-protected, keeping it clean)
 *   STORED   4   bits 0-29 store time (s) | IDLE_SEEN (bit 30) | NO_GAIN (bit 31)
 *                           in the persistent pool (frontswap, object (region id, page));
 *                           NO_GAIN: recompression was tried and did not help
 *   SAME     5   the 32-bit fill word       same-filled
 *   SWAPPED  6   swap file slot (lib/swapfile.ts)
 *   READING  7   -          a file page being read on the FileIo reader thread
 *   BUSY     8   (the claimer's)   claimed: one thread is changing the page
 *   REMOTE   9   swap file slot     the remote store has it too (lib/dispatcher/remote.ts; the
 *                           slot is its second copy); not a fast state: native forwards it
 *
 * The BUSY protocol. The "fast" states, the ones a native fault path may serve,
 * are NEVER (of anonymous regions only), SAME, STORED and STAGED (isFast()).
 * Any thread that changes a page in a fast state first claims it:
 *
 *   claim(state, page, expected)    Atomics.compareExchange(state, page, expected, BUSY)
 *                                   (C++: __atomic_compare_exchange_n on the byte, acq_rel)
 *   ... reads/writes aux[page] (and the pool object, the slot) only while it holds BUSY ...
 *   publish(state, page, next)      Atomics.store(state, page, next)  (release)
 *
 * If the claim fails the page changed under the claimer: it re-reads and decides
 * again (JS) or hands the fault to the JS slow path (native). A page found BUSY
 * by a fault: native forwards the fault to JS; JS retries it on a later turn.
 * States only the JS dispatcher changes (ACTIVE, CLEAN, SWAPPED, READING) are
 * written by it without a claim, but always with publish() (a whole byte, after
 * aux), and aux is written before the state that gives it its meaning. A page
 * moving into a fast state is published last, once its aux and its slot (or
 * pool object) are in place. A released region's fast pages stay BUSY: no native
 * thread serves them again.
 *
 * The staging slot table (staging.ts): one SharedArrayBuffer of 4 * S Int32 words,
 *
 *   [claimed 0..S-1][region 0..S-1][page 0..S-1][kept 0..S-1]     SLOT_* word offsets * S
 *
 *   claimed  SLOT_FREE, or SLOT_READING while a reader other than the fault-serving
 *            thread (the reclaim Worker compressing it) reads the slot: a fault on the
 *            staged page then copies the bytes back (UFFDIO_COPY from the slot) instead
 *            of moving them (UFFDIO_MOVE would empty the slot under the reader)
 *   region   the region id of the page in the slot, or -1: empty
 *   page     the page index in that region
 *   kept     the swap file slot kept by the clean page in it, or -1
 */
export const NEVER = 0,
  ACTIVE = 1,
  CLEAN = 2,
  STAGED = 3,
  STORED = 4,
  SAME = 5,
  SWAPPED = 6,
  READING = 7,
  BUSY = 8,
  REMOTE = 9;
/** Flag in aux[] of a STAGED page: its copy elsewhere is current (it was CLEAN when staged). */
export const STAGED_CLEAN = 0x80000000;
/** Flag in aux[] of a CLEAN page: its copy is swap file slot aux & SLOT_MASK. */
export const KEPT_SLOT = 0x80000000;
export const SLOT_MASK = 0x7fffffff;
/** aux[] of a STORED page. */
export const IDLE_SEEN = 0x40000000,
  NO_GAIN = 0x80000000,
  TIME_MASK = 0x3fffffff;

/** Word offsets (times the slot count) of the staging slot table's arrays. */
export const SLOT_CLAIMED = 0,
  SLOT_REGION = 1,
  SLOT_PAGE = 2,
  SLOT_KEPT = 3,
  SLOT_WORDS = 4;
/** Values of a slot's claimed word. */
export const SLOT_FREE = 0,
  SLOT_READING = 1;

/** A state a native fault path may serve (and so a change of it must be claimed). */
export function isFast(st: number, isFile: boolean): boolean {
  return st === SAME || st === STORED || st === STAGED || (st === NEVER && !isFile);
}

/** Claims a page in state `expected` (to BUSY). False if it is in another state now. */
export function claim(state: Uint8Array, page: number, expected: number): boolean {
  return Atomics.compareExchange(state, page, expected, BUSY) === expected;
}

/** Ends a claim (or changes a JS-only state): the page is in state `next` now, its aux already written. */
export function publish(state: Uint8Array, page: number, next: number): void {
  Atomics.store(state, page, next);
}

/** Allocates a region's state and aux arrays over SharedArrayBuffers. */
export function pageStateArrays(pages: number): { state: Uint8Array; aux: Uint32Array } {
  return {
    state: new Uint8Array(new SharedArrayBuffer(pages)),
    aux: new Uint32Array(new SharedArrayBuffer(4 * pages)),
  };
}
