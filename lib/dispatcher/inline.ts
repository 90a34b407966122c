/**
 * Inline regions (`faults: 'inline'`): their faults raise SIGBUS in the faulting
 * thread (a userfaultfd with UFFD_FEATURE_SIGBUS), whose handler forwards the
 * ones it does not serve itself here, through the region's forward area
 * (native/inline_fault.h). A forward is an ordinary fault of the swap's uffd,
 * so it reaches the loop like any other, with the thread id.
 *
 *   forward area (spec.forward, 2 * size bytes, never populated)
 *     [fwd,        fwd + size)       the access was a read
 *     [fwd + size, fwd + 2 * size)   a write (to a missing page, or to a CLEAN one:
 *                                    a write-protect fault)
 *
 *   fault at fwd + half + off -> serveFault(base + off, flags) on the region: the page
 *     goes in through the SIGBUS uffd (the binding routes each call by its address)
 *     -> served:   UFFDIO_ZEROPAGE of the forward page wakes the thread, which
 *                  drops that page again and retries its access
 *     -> deferred (the kernel said EAGAIN, the page is BUSY or a file read is in
 *                  flight): in `waiting` until the page is resident, the region
 *                  closed, or WAIT_MS passed (then the thread retries and, if the
 *                  page is still missing, forwards again: a forward only means
 *                  "try again", never "the page is there")
 */
import { PAGEFAULT_FLAG_WP, PAGEFAULT_FLAG_WRITE } from '../native';
import { PAGE } from '../compress';
import { uffd } from './env';
import { ACTIVE, CLEAN, READING } from './pagestate';
import { regions, type RegionState } from './regions';
import { serveFault, pushRetry } from './faults';

/** A forwarded fault not released yet: its forward page, the region's page, since when (ms). */
interface Waiter {
  fwd: number;
  r: RegionState;
  page: number;
  since: number;
}
const WAIT_MS = 20;
let waiters: Waiter[] = [];
/** `count`: forwarded faults whose thread still waits (worker.ts polls while there are any). */
export const waiting = { count: 0 };

/** The inline region whose forward area holds `addr`, if any. */
function forwardTarget(addr: number): RegionState | undefined {
  for (const r of regions) {
    const f = r.spec.forward;
    if (f !== undefined && addr >= f && addr < f + 2 * r.spec.size) return r;
  }
  return undefined;
}

/**
 * Serves a fault on a forward area (false if `addr` is in none): the region's page
 * is served, then the forwarding thread released (now or once the page is in).
 */
export function serveForwarded(addr: number): boolean {
  const r = forwardTarget(addr);
  if (!r) return false;
  const size = r.spec.size;
  const write = addr >= r.spec.forward! + size;
  const off = addr - r.spec.forward! - (write ? size : 0);
  const page = off / PAGE;
  let flags = write ? PAGEFAULT_FLAG_WRITE : 0;
  // A write to a CLEAN page: the page is there, write-protected.
  if (write && Atomics.load(r.state, page) === CLEAN) flags |= PAGEFAULT_FLAG_WP;
  const target = r.base + off;
  const served = serveFault(target, flags);
  if (!served) pushRetry(target, flags);
  if (served && Atomics.load(r.state, page) !== READING) release(addr);
  else {
    waiters.push({ fwd: addr, r, page, since: performance.now() });
    waiting.count = waiters.length;
  }
  return true;
}

/** Wakes the thread waiting on forward page `fwd` (false: try again later). */
function release(fwd: number): boolean {
  try {
    return uffd.zeropage(fwd, PAGE) >= 0;
  } catch {
    return true; // the region closed: its close() woke the thread already
  }
}

/** Releases the waiting threads whose page is resident now (or that waited WAIT_MS: they retry). */
export function releaseWaiting(): void {
  const now = performance.now();
  const keep: Waiter[] = [];
  for (const w of waiters) {
    const st = Atomics.load(w.r.state, w.page);
    const ready = w.r.closed || st === ACTIVE || st === CLEAN || now - w.since >= WAIT_MS;
    if (!ready || !release(w.fwd)) keep.push(w);
  }
  waiters = keep;
  waiting.count = keep.length;
}

/** How long the loop may block while threads wait (ms). */
export const WAITING_POLL_MS = 5;
