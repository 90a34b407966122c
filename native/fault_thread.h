// FaultThread: the native thread that owns the read side of a swap's userfaultfd.
//
//   kernel --uffd_msg--> FaultThread::run (its own Uffd over the same fd)
//     page fault, fast state          fault_serve::serve (no JavaScript); served record -> ring
//     anything else                   forwarded: queued in today's event format
//     (slow state, WP, fork/remove/   (UffdEvent), the JS dispatcher takes it with read()
//      unmap/remap, forwarded faults)
//     doorbell (wake_reader)          the JS dispatcher's read() returns -1 (requests)
//   JS dispatcher --read(out, timeout)--> forwarded events | 0 timeout | -1 woken
//                                         (also woken when served records are pending)
//
// Spin: after a batch of events the thread polls without sleeping for spin_ns (yielding the
// CPU between polls), so the next fault of a run does not pay for waking a halted CPU.
//
// Placement: the thread follows the faulting threads' CPU as placement.ts did for the
// Worker (at most every 10 ms it looks up the CPU the faulting thread last ran on and
// binds itself there); only this thread's affinity ever changes.
//
// Lifetime: stop() (or the destructor) sets the stop flag, rings the doorbell and joins;
// the thread also polls the flag every 200 ms, so it stops even if the doorbell is gone.
// Events it had queued and the JS side never took leave threads waiting in the kernel:
// the deadman (deadman.h), started after stop(), wakes every waiter of the uffd first.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "fault_serve.h"
#include "uffd.h"

namespace tmem {

class FaultThread {
 public:
  /** Counters, read by stats: faults served natively, faults forwarded, placement moves. */
  struct Counters {
    std::atomic<uint64_t> served{0}, forwarded{0}, events{0}, moves{0};
  };

  /**
   * Starts the thread on `reader` (a Uffd it owns from now on, attached to the swap's fd),
   * serving fast faults of `server`'s regions. `follow`: bind itself to the faulting thread's CPU.
   * `spin_ns`: after each batch of events, keep polling without sleeping this long (0: sleep at once).
   */
  FaultThread(std::unique_ptr<Uffd> reader, fault_serve::Server* server, bool follow, int64_t spin_ns = 0);
  ~FaultThread() { stop(); }
  FaultThread(const FaultThread&) = delete;
  FaultThread& operator=(const FaultThread&) = delete;

  /**
   * The JS dispatcher's uffd.read(): up to `max` forwarded events, waiting up to `timeout_ms`
   * (-1 forever). Returns the count, 0 on timeout (or when only served records are pending), -1
   * when woken by the doorbell. Never throws.
   */
  int read(UffdEvent* out, int max, int timeout_ms);
  /** Makes a current or next read() return (used by stop and by served records). */
  void wake_consumer();
  /** Stops and joins the thread. Idempotent. */
  void stop();
  bool running() const { return !stopped_.load(); }
  const Counters& counters() const { return counters_; }
  /** The CPU the last faulting thread looked at ran on (-1: none yet); read by the dispatcher to stay off it. */
  int fault_cpu() const { return fault_cpu_.load(std::memory_order_relaxed); }
  /** The error that ended the thread, if any (read_events failed). */
  std::string error() const;

 private:
  void run();
  void follow(uint64_t tid);

  std::unique_ptr<Uffd> uffd_;
  fault_serve::Server* server_;
  fault_serve::Scratch* scratch_ = nullptr;
  bool follow_;
  int64_t spin_ns_;
  int cpu_ = -1;
  std::atomic<int> fault_cpu_{-1};
  int64_t next_check_ns_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<UffdEvent> queue_;
  bool woken_ = false;    // the doorbell rang: read() returns -1 once
  bool records_ = false;  // served records pending: read() returns 0 at once
  std::string error_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> stopped_{false};
  Counters counters_;
  std::thread thread_;
};

}  // namespace tmem
