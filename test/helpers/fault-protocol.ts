/**
 * What the test's main thread and the fault-server Worker share.
 *
 * The main thread cannot talk to the Worker while it is blocked in a page
 * fault, so everything goes through SharedArrayBuffers that are read and
 * written with Atomics:
 *
 *   ctl    Int32Array  [STOP, ACTION, EVENTS, ERRORS]
 *   params Float64Array [MOVE_SRC]  (the staging address ACTION_MOVE_FROM takes pages from)
 *   log    Float64Array  4 slots per event served: kind, flags, address, thread id
 *
 * The Worker writes an event's slots into `log` before it resolves the fault,
 * then bumps ctl[EVENTS]; once the faulting touch returns, the main thread
 * sees the event.
 */

/** ctl[STOP] != 0: the next wake-up (uffd.wakeReader()) ends the Worker's loop. */
export const STOP = 0;
/** ctl[ACTION]: how the Worker resolves MISSING faults (ACTION_*). */
export const ACTION = 1;
/** ctl[EVENTS]: events logged so far. */
export const EVENTS = 2;
/** ctl[ERRORS]: faults the Worker could not resolve as asked (it then maps a zero page so nobody hangs). */
export const ERRORS = 3;
export const CTL_SLOTS = 4;

/** params[MOVE_SRC]: source address for ACTION_MOVE_FROM. */
export const MOVE_SRC = 0;
export const PARAM_SLOTS = 2;

/** UFFDIO_ZEROPAGE. */
export const ACTION_ZERO = 0;
/** UFFDIO_COPY of a page filled with patternByte(address, i). */
export const ACTION_PATTERN = 1;
/** The same with UFFDIO_COPY_MODE_WP: the page stays write-protected. */
export const ACTION_PATTERN_WP = 2;
/** UFFDIO_MOVE of the page at params[MOVE_SRC] to the faulting address. */
export const ACTION_MOVE_FROM = 3;

/** Events the log holds. */
export const LOG_EVENTS = 256;

/** What `new Worker(fault-server.js, {workerData})` expects. */
export interface FaultServerData {
  descriptor: import('../../lib/native').UffdDescriptor;
  ctl: SharedArrayBuffer;
  params: SharedArrayBuffer;
  log: SharedArrayBuffer;
  /** Arm the deadman after attaching (default true). */
  deadman?: boolean;
  /** Arm the deadman, then throw: a dispatcher that dies (the deadman test). */
  throwAfterArm?: boolean;
  /** What armDeadman() is told (it shows in the deadman's message); default 'fault-server'. */
  why?: string;
}

/** Byte i of the known contents of the page at `address`: differs from page to page and within a page. */
export function patternByte(address: number, i: number): number {
  const page = Math.floor(address / 4096);
  return (Math.imul(page, 0x9e3779b1) + i * 7 + (i >>> 8)) & 0xff;
}

/** Fills 4096 bytes of `out` from `offset` with the contents of the page at `address`. */
export function fillPattern(out: Uint8Array, offset: number, address: number): void {
  for (let i = 0; i < 4096; i++) out[offset + i] = patternByte(address, i);
}

/** Index of the first byte of `page` (4096 bytes from `offset`) that differs from the pattern for `address`, -1 if none. */
export function firstPatternMismatch(page: Uint8Array, offset: number, address: number): number {
  for (let i = 0; i < 4096; i++) if (page[offset + i] !== patternByte(address, i)) return i;
  return -1;
}
