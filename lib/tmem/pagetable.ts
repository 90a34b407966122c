/*
 * The tmem page index: one open-addressing hash table, cut into segments that each have their
 * own lock, mapping (object slot, page index) to a zpool handle.
 *
 *   segment s (segCap entries, linear probing that wraps inside the segment):
 *   +------------------+------------------+-----+
 *   | KEY INDEX HANDLE | KEY INDEX HANDLE | ... |   KEY = object slot + 1, 0 = empty
 *   +------------------+------------------+-----+   12 bytes per entry
 *
 *   h = pageHash(slot, index); segment = h >>> (30 - segBits); home = h % segCap
 *
 * Deletion shifts the following entries of the probe run back (no tombstones), so a probe
 * always ends at the first empty entry. Invariants (under the segment lock): every entry lies
 * between its home and the first empty entry after it; COUNT = live entries <= segCap - 1.
 * Entries move only under their segment lock, so a holder of the object's lock who looked up a
 * handle may drop the segment lock and still trust the handle (it is changed only under the
 * object lock), but must look the entry up again to change it.
 */

import { pageHash, HASH_BITS } from './hash';

/** Words per page entry. */
export const PE_WORDS = 3;

/** Geometry of a page table inside a control Int32Array. */
export interface PageTable {
  /** Control words. */
  readonly c: Int32Array;
  /** Word index of segment 0's first entry. */
  readonly base: number;
  /** Word index of the (LOCK, COUNT) pairs, one per segment. */
  readonly segMeta: number;
  /** Entries per segment. */
  readonly segCap: number;
  /** log2(number of segments). */
  readonly segBits: number;
}

/** Segment of a hash. */
export function segOf(t: PageTable, h: number): number {
  return t.segBits === 0 ? 0 : h >>> (HASH_BITS - t.segBits);
}

/** Word index of the entry for (slot, index) in segment `seg`, or -1 (segment lock held). */
export function ptFind(t: PageTable, seg: number, h: number, slot: number, index: number): number {
  const c = t.c, cap = t.segCap;
  const sb = t.base + seg * cap * PE_WORDS;
  const key = slot + 1;
  let i = h % cap;
  for (let n = 0; n < cap; n++) {
    const e = sb + i * PE_WORDS;
    const k = c[e];
    if (k === 0) return -1;
    if (k === key && c[e + 1] === index) return e;
    if (++i === cap) i = 0;
  }
  return -1;
}

/** Insert a new entry (caller checked it is absent); returns its word index or -1 if full. */
export function ptInsert(t: PageTable, seg: number, h: number, slot: number, index: number, handle: number): number {
  const c = t.c, cap = t.segCap;
  const cnt = t.segMeta + seg * 2 + 1;
  if (c[cnt] >= cap - 1) return -1;
  const sb = t.base + seg * cap * PE_WORDS;
  let i = h % cap;
  for (;;) {
    const e = sb + i * PE_WORDS;
    if (c[e] === 0) {
      c[e] = slot + 1; c[e + 1] = index; c[e + 2] = handle;
      c[cnt]++;
      return e;
    }
    if (++i === cap) i = 0;
  }
}

/** Delete the entry at word index `e` of segment `seg`, shifting its probe run back. */
export function ptDelete(t: PageTable, seg: number, e: number): void {
  const c = t.c, cap = t.segCap;
  const sb = t.base + seg * cap * PE_WORDS;
  let i = (e - sb) / PE_WORDS;
  let j = i;
  for (;;) {
    if (++j === cap) j = 0;
    const ej = sb + j * PE_WORDS;
    if (c[ej] === 0) break;
    const k = pageHash(c[ej] - 1, c[ej + 1]) % cap;
    // move j back to i unless its home lies cyclically in (i, j]
    const inRange = i <= j ? (k > i && k <= j) : (k > i || k <= j);
    if (inRange) continue;
    const ei = sb + i * PE_WORDS;
    c[ei] = c[ej]; c[ei + 1] = c[ej + 1]; c[ei + 2] = c[ej + 2];
    i = j;
  }
  const ei = sb + i * PE_WORDS;
  c[ei] = 0; c[ei + 1] = 0; c[ei + 2] = 0;
  c[t.segMeta + seg * 2 + 1]--;
}
