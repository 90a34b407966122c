#include "deadman.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <system_error>

#include "uffd.h"

namespace tmem {

void Deadman::start(const std::string& why) {
  bool expected = false;
  if (!running_.compare_exchange_strong(expected, true)) return;
  why_ = why;
  stop_ = false;
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    // No thread can be made (EAGAIN: an address-space or thread limit). This runs in a
    // Worker's cleanup, where an exception would end the process: say so and go on; a
    // thread that faults on a region of this uffd now waits until the uffd is closed.
    running_ = false;
    std::fprintf(stderr, "tmem: the deadman thread could not start (%s): %s\n", e.what(), why.c_str());
  }
}

void Deadman::stop() {
  if (!running_.load()) return;
  stop_ = true;
  uffd_->wake_reader();
  if (thread_.joinable()) thread_.join();
  running_ = false;
}

void Deadman::run() {
  // The dispatcher may have read fault events it never served: those threads
  // sleep on faults nobody will report again. Wake every waiter of this uffd
  // (UFFDIO_WAKE takes any user range; it only matches waiting addresses) so
  // that they fault anew and reach us.
  try {
    const uint64_t lo = 1ull << 16, hi = (1ull << 47) - kPageSize;
    uffd_->wake(lo, hi - lo);
  } catch (...) {
  }
  UffdEvent ev[16];
  while (!stop_.load()) {
    int n;
    try {
      n = uffd_->read_events(ev, 16, 1000);
    } catch (const std::exception& e) {
      // Nobody could serve faults any more: dying loudly beats hanging forever.
      char line[512];
      int len =
          std::snprintf(line, sizeof line,
                        "tmem: the fault dispatcher is gone (%s) and its fallback cannot read the userfaultfd: %s\n",
                        why_.c_str(), e.what());
      ssize_t w = ::write(2, line, static_cast<size_t>(len));
      (void)w;
      std::abort();
    }
    for (int i = 0; i < n; i++) {
      if (ev[i].kind != UFFD_EVENT_PAGEFAULT) continue;
      char line[512];
      int len = std::snprintf(line, sizeof line,
                              "tmem: the fault dispatcher is gone (%s); the page at 0x%llx touched by thread %llu "
                              "cannot be restored, raising SIGBUS in that thread\n",
                              why_.c_str(), static_cast<unsigned long long>(ev[i].address),
                              static_cast<unsigned long long>(ev[i].arg1));
      ssize_t w = ::write(2, line, static_cast<size_t>(len));
      (void)w;
      bool poisoned = false;
      if (uffd_->features() & UFFD_FEATURE_POISON) {
        try {
          int64_t r = uffd_->poison(ev[i].address, kPageSize, false);
          poisoned = r > 0 || r == -EEXIST;
          if (r == -EEXIST) uffd_->wake(ev[i].address, kPageSize);
        } catch (...) {
        }
      }
      if (!poisoned) std::abort();
    }
  }
}

}  // namespace tmem
