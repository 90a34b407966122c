/**
 * Page states: one byte per page of every region (RegionState.state), and one
 * 32-bit word per page beside it (RegionState.aux) whose meaning depends on
 * the state.
 *
 *   state[page]  aux[page]
 *   NEVER    0   -        never resident. anon: zero on fault; file: cleancache, else the file
 *   ACTIVE   1   0 | KEPT_SLOT|slot   mapped, possibly written since it was loaded (dirty)
 *   CLEAN    2   0 | KEPT_SLOT|slot   mapped and write-protected; its copy elsewhere is current
 *                     (anon: the compressed copy kept in the persistent pool, or,
 *                      aux = KEPT_SLOT | slot, its swap file slot, kept as the
 *                      kernel's swap cache keeps it; file: the file itself)
 *   STAGED   3   slot | STAGED_CLEAN   moved out (UFFDIO_MOVE) to a staging slot: second
 *                     chance; a touch moves it back at no copy (a read of a clean one
 *                     copies it back write-protected, keeping it clean)
 *   STORED   4   bits 0-29 store time (s) | IDLE_SEEN (bit 30) | NO_GAIN (bit 31)
 *                     in the persistent pool (frontswap); NO_GAIN: recompression was
 *                     tried and did not help; never retried
 *   SAME     5   the 32-bit fill word   same-filled
 *   SWAPPED  6   swap file slot (lib/swapfile.ts)
 *   READING  7   -        a file page being read on the FileIo reader thread; the
 *                     faulting threads wait until the read completes and the page is copied in
 */
export const NEVER = 0, ACTIVE = 1, CLEAN = 2, STAGED = 3, STORED = 4, SAME = 5, SWAPPED = 6, READING = 7;
/** Flag in aux[] of a STAGED page: its copy elsewhere is current (it was CLEAN when staged). */
export const STAGED_CLEAN = 0x80000000;
/** Flag in aux[] of a CLEAN page: its copy is swap file slot aux & SLOT_MASK. */
export const KEPT_SLOT = 0x80000000;
export const SLOT_MASK = 0x7fffffff;
/** aux[] of a STORED page. */
export const IDLE_SEEN = 0x40000000, NO_GAIN = 0x80000000, TIME_MASK = 0x3fffffff;
