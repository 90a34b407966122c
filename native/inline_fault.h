// Inline faults: a region's page faults served in the faulting thread.
//
// An inline region is registered with a userfaultfd opened with
// UFFD_FEATURE_SIGBUS: a fault on a missing (or write-protected) page raises
// SIGBUS in the thread that touched it instead of queueing an event. The
// handler installed here (once per process) looks the address up in a
// lock-free table of inline regions and forwards the fault to the region's
// dispatcher, then returns, and the access restarts on the installed page.
//
//   region          [base, base + len)        registered with the SIGBUS uffd
//   forward area    [fwd, fwd + 2 * len)      registered MISSING with the swap's
//                                             main uffd, never populated
//
//   SIGBUS at addr (si_code BUS_ADRERR, addr in an open region's table entry)
//     -> a page in a fast state (never written, same-filled, stored, staged) of a
//        region in fault_serve's RegionTable is served right here by
//        fault_serve::serve (async-signal-safe: no lock, no allocation), and the
//        access restarts; anything else (or a region not in that table):
//     -> read one byte of fwd + (write ? len : 0) + (page(addr) - base): an
//        ordinary userfaultfd fault on the main uffd. The dispatcher sees it
//        like any fault (thread id included), serves the region's page
//        (UFFDIO_COPY/ZEROPAGE/MOVE into the SIGBUS uffd) and then maps the
//        forward page (UFFDIO_ZEROPAGE), which wakes this thread;
//     -> MADV_DONTNEED the forward page again (the next forward faults anew);
//     -> return: the access restarts (and faults again if the page left in
//        between: every forward only means "try again").
//   The thread waits in the kernel, as a thread of a normal region does, so
//   other signals are delivered meanwhile (the wait is interruptible).
//
//   If the dispatcher is gone, the deadman takes over the main uffd and
//   poisons the forward page: the read raises SIGBUS again while SIGBUS is
//   blocked (no SA_NODEFER), so the kernel kills the process with SIGBUS, as
//   the deadman's poisoned page does in a normal region. Nothing hangs.
//
//   Any other SIGBUS goes to the handler that was installed before (chained):
//   an address no inline region holds (a truncated file mapping), a code that
//   is not a missing page (BUS_MCEERR_AR: a page tmem poisoned), a SIGBUS sent
//   by kill(2). With the default action the process then dies as it would
//   have without tmem (the faulting access is re-executed with SIG_DFL).
//
// Async-signal-safety: the handler uses no locks, allocates nothing, throws
// nothing, saves and restores errno; table entries are read under a per-entry
// sequence counter (a seqlock) written only by add/close/remove.
//
// A closed region's entry stays (marked closed) until its memory is unmapped:
// a thread that took SIGBUS just before close() finds it and retries the
// access, which then meets plain memory (the range is unregistered).
#pragma once

#include <cstdint>

namespace tmem {
namespace inline_fault {

/** Installs the SIGBUS handler (once per process; later calls do nothing). Throws SysError. */
void install();

/**
 * Adds an inline region and its forward area (2 * len bytes, registered with the main uffd).
 * Returns the entry's index for close()/remove(). Throws SysError(ENOSPC) when the table is full.
 */
int add(uint64_t base, uint64_t len, uint64_t fwd);

/** The region is closed (its range unregistered): a SIGBUS on it now only retries the access. */
void close(int entry);

/** The region's memory is unmapped: its entry goes. */
void remove(int entry);

/** Faults forwarded to a dispatcher so far, in this process. */
uint64_t forwarded();

/** Faults served in the handler itself (fault_serve::serve) so far, in this process. */
uint64_t served();

/** Inline regions the table can hold. */
constexpr int kMaxRegions = 4096;

}  // namespace inline_fault
}  // namespace tmem
