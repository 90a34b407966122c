/**
 * The dispatcher: the Worker that serves every page fault of a swap's regions
 * and evicts cold pages. One loop, one thread, which follows the faulting threads' CPU.
 *
 *   loop:  uffd.read(events, timeout)     timeout -1 when idle, 0 while evicting
 *          for each page fault            look up region + page state, resolve (faults.ts)
 *          a remote fault's reply         polled while one is in flight (remote.ts)
 *          on wake                        drain requests (requests.ts)
 *          FileIo completions             mapped files (files.ts)
 *          retries                        faults the kernel said EAGAIN to
 *          forwarded faults waiting       released once their page is in (inline.ts)
 *          evict a slice                  a few pages, then poll for faults again (reclaim.ts)
 *          or shrink the pool             zswap write-back to the swap file (writeback.ts)
 *          remote tier                    clean file pages sent; when idle, remote pages
 *                                         repatriated into a pool with room (remote.ts)
 *          idle pass, once a second       zram idle recompression / write-back (idle.ts)
 *          budget, every 100 ms           the cgroup's limit and pressure -> the limits (budget.ts)
 *
 * The modules, each with its own state and a header drawing it:
 *   env.ts        what the main thread handed over: uffd, options, counters, the store, scratch
 *   pagestate.ts  page states and the aux word of each
 *   regions.ts    RegionState, lookup by address, add / release
 *   faults.ts     the fault path: serveFault per state, retries, batches
 *   staging.ts    the staging ring: slots, moves in and out, releases
 *   reclaim.ts    eviction: the FIFO, second chance, stage / finalize, the aside list
 *   pool.ts       the persistent pool's accounting and accept threshold
 *   writeback.ts  zswap write-back to the swap file
 *   idle.ts       zram idle recompression and write-back
 *   files.ts      mapped files over FileIo
 *   requests.ts   requests from the main thread
 *   placement.ts  the dispatcher follows the faulting threads' CPU (`pin`)
 *   inline.ts     faults of inline regions, forwarded by the SIGBUS handler
 *   budget.ts     the memory budget: its split between resident pages and the pool, limit changes
 *   remote.ts     the remote tier (Redis): write-back, faults, clean file pages, repatriation
 */
import * as P from './protocol';
import { ctl, uffd, life, port, idleEnabled } from './env';
import { events, serveBatch, retries, retryPending } from './faults';
import { staging } from './staging';
import { residency, evictSlice, evictionSteps, storedFifo } from './reclaim';
import { wb, shrinkStep, flushWriteback } from './writeback';
import { idle, idlePass } from './idle';
import { drainIo, closeFileIo } from './files';
import { closeShared } from './shared';
import { control, drainRequests, runDeferred, hasDeferred } from './requests';
import { waiting, releaseWaiting, WAITING_POLL_MS } from './inline';
import { applyLimits, budgetDueIn, budgetTick } from './budget';
import { readEvents, drainServed, closeNativeFaults, server, threaded } from './native-faults';
import { keepAway } from './placement';
import { cleanDue, fetching, flushClean, pollFetch, repatriate, repatriateDueIn, repatriating } from './remote';

function loop(): void {
  Atomics.store(ctl, P.CTL_READY, 1);
  Atomics.notify(ctl, P.CTL_READY);
  while (control.running) {
    const exiting = Atomics.load(ctl, P.CTL_EXITING) !== 0;
    const now = performance.now();
    const evicting = residency.evicting;
    const backingOff = evicting && now < residency.backoffUntil;
    const busy = (evicting && !backingOff) || retries.count > 0 || wb.shrinking || fetching();
    let timeout = busy ? 0 : exiting ? 20 : backingOff ? Math.ceil(residency.backoffUntil - now) : -1;
    const idleWork = idleEnabled && storedFifo.length > 0;
    if (timeout < 0 && idleWork) timeout = Math.max(0, Math.ceil(idle.nextPass - performance.now()));
    if (waiting.count > 0 && (timeout < 0 || timeout > WAITING_POLL_MS)) timeout = WAITING_POLL_MS;
    const due = budgetDueIn(now); // the next look at the cgroup and pressure (budget.ts)
    if (due >= 0 && (timeout < 0 || due < timeout)) timeout = due;
    if (cleanDue(true) && (timeout < 0 || timeout > 1)) timeout = 1; // clean pages wait to be sent: soon
    if (timeout !== 0 && !evicting && repatriating()) {
      const r = repatriateDueIn(now); // remote pages back into a pool with room (remote.ts)
      if (timeout < 0 || r < timeout) timeout = r;
    }
    const n = readEvents(events, timeout);
    drainServed();
    if (fetching()) pollFetch(); // a remote fault's reply, if it is in (remote.ts)
    if (n > 0) serveBatch(n);
    else if (n < 0) drainRequests();
    drainIo();
    if (hasDeferred()) runDeferred();
    // A flush may have left pages in the write-back batch: settle them before polling
    // again (they are claimed, BUSY, until then; a fault on one waits).
    if (wb.count > 0) flushWriteback();
    if (retries.count > 0) retryPending();
    if (waiting.count > 0) releaseWaiting();
    budgetTick(performance.now());
    if (residency.evicting && performance.now() >= residency.backoffUntil) {
      if (threaded) keepAway(server!); // the reclaimer keeps off the faulting threads' CPU (placement.ts)
      evictSlice(evictionSteps());
    }
    // Also in the turn eviction ends: the next turn may sleep (nothing busy), and a pool that
    // began refusing meanwhile (a lower poolLimit) would wait for a fault to be shrunk.
    if (!residency.evicting) shrinkStep();
    // Clean pages of mapped files for the remote tier: in batches, or whatever waits when idle.
    if (cleanDue(n === 0 && !residency.evicting)) flushClean();
    if (n === 0 && !residency.evicting && retries.count === 0) repatriate(performance.now());
    if (idleWork && !residency.evicting && n === 0 && performance.now() >= idle.nextPass) {
      idlePass();
      idle.nextPass = performance.now() + 1000;
    }
    if (exiting && n === 0) {
      // The process is exiting: give control back so the Worker can be stopped.
      setImmediate(loop);
      return;
    }
  }
  pollFetch(true); // a remote fault still in flight: its page in before the dispatcher stops
  life.stoppedCleanly = true;
  closeNativeFaults();
  closeFileIo();
  closeShared();
  uffd.disarmDeadman();
  staging.close();
  port.close();
}

applyLimits(); // the effective limits of a memory budget (budget.ts)
drainRequests();
loop();
