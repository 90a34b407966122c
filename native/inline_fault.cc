#include "inline_fault.h"

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "fault_serve.h"
#include "sys_error.h"
#include "uffd_abi.h"

namespace tmem {
namespace inline_fault {
namespace {

constexpr uint64_t kPage = 4096;

// One inline region. seq is odd while the entry is being written; a reader
// that sees it change (or odd) reads again. len == 0: a free entry.
struct Entry {
  std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> closed{0};
  std::atomic<uint64_t> base{0};
  std::atomic<uint64_t> len{0};
  std::atomic<uint64_t> fwd{0};
};

Entry g_table[kMaxRegions];
std::atomic<int> g_high{0};  // entries [0, g_high) may be in use
std::atomic<uint64_t> g_forwarded{0};
std::atomic<uint64_t> g_served{0};
std::mutex g_mu;  // add/remove only; never taken by the handler
bool g_installed = false;
struct sigaction g_prev;

struct Found {
  uint64_t base, len, fwd;
  bool closed;
};

// Async-signal-safe: atomics only.
bool lookup(uint64_t addr, Found* f) {
  const int high = g_high.load(std::memory_order_acquire);
  for (int i = 0; i < high; i++) {
    Entry& e = g_table[i];
    for (;;) {
      const uint32_t s1 = e.seq.load(std::memory_order_acquire);
      if (s1 & 1) continue;  // being written (by another thread: a few stores)
      const uint64_t base = e.base.load(std::memory_order_relaxed);
      const uint64_t len = e.len.load(std::memory_order_relaxed);
      const uint64_t fwd = e.fwd.load(std::memory_order_relaxed);
      const bool closed = e.closed.load(std::memory_order_relaxed) != 0;
      std::atomic_thread_fence(std::memory_order_acquire);
      if (e.seq.load(std::memory_order_relaxed) != s1) continue;
      if (len != 0 && addr >= base && addr - base < len) {
        *f = Found{base, len, fwd, closed};
        return true;
      }
      break;
    }
  }
  return false;
}

// Was the faulting access a write? x86-64: the page-fault error code (bit 1).
// Elsewhere it is not known: say write (serving a write is always correct; a
// read served as a write only loses a clean copy).
bool fault_was_write(void* ucv) {
#if defined(__x86_64__)
  const ucontext_t* uc = static_cast<const ucontext_t*>(ucv);
  return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
  (void)ucv;
  return true;
#endif
}

// The SIGBUS is not tmem's: what would have happened without tmem happens.
void chain(int sig, siginfo_t* si, void* uc) {
  const struct sigaction& p = g_prev;
  if (p.sa_flags & SA_SIGINFO) {
    if (p.sa_sigaction) p.sa_sigaction(sig, si, uc);
    return;
  }
  if (p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN) {
    p.sa_handler(sig);
    return;
  }
  if (p.sa_handler == SIG_IGN && si->si_code <= 0) return;  // sent by kill(2) and ignored: ignored
  // The default action (a fault cannot be ignored: the kernel forces it).
  struct sigaction dfl;
  __builtin_memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  if (si->si_code <= 0) {
    ::raise(sig);  // sent by kill(2): delivered when this handler returns
    return;
  }
  // A fault: returning re-executes the access, which faults again and dies of it.
}

void handler(int sig, siginfo_t* si, void* uc) {
  const int saved = errno;
  if (si->si_code == BUS_ADRERR) {
    const uint64_t addr = reinterpret_cast<uint64_t>(si->si_addr);
    Found f;
    if (lookup(addr, &f)) {
      if (!f.closed) {
        const bool write = fault_was_write(uc);
        // A page in a fast state is served here, in this thread, with no JavaScript (the region is
        // in fault_serve's table when its swap has a native server); anything else is forwarded.
        // (Its server wakes the dispatcher itself when a record needs it: Server::wake.)
        if (fault_serve::serve(addr, write ? UFFD_PAGEFAULT_FLAG_WRITE : 0, nullptr, nullptr) ==
            fault_serve::Outcome::kServed) {
          g_served.fetch_add(1, std::memory_order_relaxed);
          errno = saved;
          return;  // the access restarts on the installed page
        }
        const uint64_t off = (addr & ~(kPage - 1)) - f.base;
        const uint64_t at = f.fwd + (write ? f.len : 0) + off;
        g_forwarded.fetch_add(1, std::memory_order_relaxed);
        (void)*reinterpret_cast<volatile const char*>(at);  // waits until the dispatcher has served it
        ::madvise(reinterpret_cast<void*>(at), kPage, MADV_DONTNEED);
      }
      errno = saved;
      return;  // the access restarts
    }
  }
  errno = saved;
  chain(sig, si, uc);
}

}  // namespace

void install() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_installed) return;
  struct sigaction sa;
  __builtin_memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGBUS, &sa, &g_prev) < 0) throw SysError("sigaction", errno, "installing the SIGBUS handler");
  g_installed = true;
}

int add(uint64_t base, uint64_t len, uint64_t fwd) {
  std::lock_guard<std::mutex> lock(g_mu);
  int high = g_high.load(std::memory_order_relaxed);
  int i = 0;
  while (i < high && g_table[i].len.load(std::memory_order_relaxed) != 0) i++;
  if (i == kMaxRegions) throw SysError("inline region", ENOSPC, "at most 4096 inline regions may be open at once");
  Entry& e = g_table[i];
  e.seq.fetch_add(1, std::memory_order_acq_rel);  // odd: writing
  e.base.store(base, std::memory_order_relaxed);
  e.fwd.store(fwd, std::memory_order_relaxed);
  e.closed.store(0, std::memory_order_relaxed);
  e.len.store(len, std::memory_order_relaxed);
  e.seq.fetch_add(1, std::memory_order_release);  // even: readable
  if (i == high) g_high.store(high + 1, std::memory_order_release);
  return i;
}

void close(int entry) {
  if (entry < 0 || entry >= kMaxRegions) return;
  g_table[entry].closed.store(1, std::memory_order_release);
}

void remove(int entry) {
  if (entry < 0 || entry >= kMaxRegions) return;
  std::lock_guard<std::mutex> lock(g_mu);
  Entry& e = g_table[entry];
  e.seq.fetch_add(1, std::memory_order_acq_rel);
  e.len.store(0, std::memory_order_relaxed);
  e.base.store(0, std::memory_order_relaxed);
  e.fwd.store(0, std::memory_order_relaxed);
  e.seq.fetch_add(1, std::memory_order_release);
}

uint64_t forwarded() { return g_forwarded.load(std::memory_order_relaxed); }

uint64_t served() { return g_served.load(std::memory_order_relaxed); }

}  // namespace inline_fault
}  // namespace tmem
