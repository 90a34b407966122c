// Deadman: what serves faults after the dispatcher has died.
//
// If the thread that serves a userfaultfd dies, every thread that touches a
// missing page of a registered region sleeps in the kernel forever. When the
// dispatcher goes away without saying goodbye, the deadman takes over the
// uffd: for each fault it prints one clear line to stderr and poisons the
// page (UFFDIO_POISON), so the faulting thread gets SIGBUS at that address
// instead of hanging or reading wrong bytes. Without POISON it aborts.
#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace tmem {

class Uffd;

class Deadman {
 public:
  explicit Deadman(Uffd* uffd) : uffd_(uffd) {}
  ~Deadman() { stop(); }
  /** Starts serving faults as above; `why` goes into the message. Idempotent. */
  void start(const std::string& why);
  /** Stops and joins the thread (the Uffd is about to close). */
  void stop();
  bool running() const { return running_.load(); }

 private:
  void run();
  Uffd* uffd_;
  std::string why_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};
};

}  // namespace tmem
