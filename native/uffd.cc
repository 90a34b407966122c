#include "uffd.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "sys_error.h"

namespace tmem {

// The doorbell: one page registered MISSING with the uffd, and a thread that
// reads it when rung. The read faults, the fault is an ordinary uffd event,
// and whoever is blocked in read(2) on the uffd returns with it. read_events()
// resolves that event itself (UFFDIO_ZEROPAGE), the thread then discards the
// page again (MADV_DONTNEED; no EVENT_REMOVE is requested, so this never waits
// on the reader), and the next ring faults anew. Rings while the reader is busy
// coalesce, like an eventfd counter. The thread sleeps on a futex word, so a ring
// (an atomic or and a FUTEX_WAKE) is async-signal-safe: the SIGBUS handler of an
// inline region rings it (fault_serve.h Server::wake).
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "the futex word is a plain 32-bit word");
class Doorbell {
 public:
  Doorbell(int uffd_fd) : fd_(uffd_fd) {
    void* p = ::mmap(nullptr, kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw SysError("mmap", errno, "doorbell page");
    page_ = reinterpret_cast<uint64_t>(p);
    struct uffdio_register r = {};
    r.range.start = page_;
    r.range.len = kPageSize;
    r.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (::ioctl(fd_, UFFDIO_REGISTER, &r) < 0) {
      int err = errno;
      ::munmap(p, kPageSize);
      throw SysError("ioctl(UFFDIO_REGISTER)", err, "doorbell page");
    }
    thread_ = std::thread([this] { run(); });
  }

  ~Doorbell() { shutdown(); }

  /** Stops the thread and unmaps the page; later rings do nothing. Idempotent. */
  void shutdown() {
    if (word_.fetch_or(kStop, std::memory_order_acq_rel) & kStop) return;
    futex_wake();
    // If the thread is inside a fault nobody serves (its reader has stopped), the page is
    // mapped for it (UFFDIO_ZEROPAGE wakes the fault's waiters), until it has left run():
    // unregistering alone was seen to leave it waiting once (a close under a loaded host, with
    // the fault thread's reader stopping at the same time), and the join then hung.
    for (int i = 0; i < 2000 && !exited_.load(std::memory_order_acquire); i++) {
      struct uffdio_zeropage z = {};
      z.range.start = page_;
      z.range.len = kPageSize;
      ::ioctl(fd_, UFFDIO_ZEROPAGE, &z);
      if (exited_.load(std::memory_order_acquire)) break;
      struct timespec ts = {0, 1000000};
      ::nanosleep(&ts, nullptr);
    }
    struct uffdio_range r = {page_, kPageSize};
    ::ioctl(fd_, UFFDIO_UNREGISTER, &r);
    if (thread_.joinable()) thread_.join();
    ::munmap(reinterpret_cast<void*>(page_), kPageSize);
  }

  /** Rings: the thread touches the page once more. Async-signal-safe (an atomic and a futex wake). */
  void ring() {
    const uint32_t prev = word_.fetch_or(kRung, std::memory_order_acq_rel);
    if (!(prev & (kRung | kStop))) futex_wake();
  }

  uint64_t page() const { return page_; }

  // O_NONBLOCK of the uffd's file description (shared by every Uffd on the fd):
  // read(2) blocks only without it, and poll(2) on a uffd without it returns
  // POLLERR, so read_events() switches it when it changes between the two.
  std::atomic<int> nonblocking{0};

 private:
  void run() {
    for (;;) {
      const uint32_t w = word_.load(std::memory_order_acquire);
      if (w & kStop) {
        exited_.store(true, std::memory_order_release);
        return;
      }
      if (!(w & kRung)) {
        // Sleeps only while the word is still 0: a ring in between makes the wait return at once.
        ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word_), FUTEX_WAIT_PRIVATE, 0u, nullptr, nullptr, 0);
        continue;
      }
      word_.fetch_and(~kRung, std::memory_order_acq_rel);  // this ring is taken; later ones ring again
      (void)*reinterpret_cast<volatile char*>(page_);      // the ring: a fault on a registered page
      ::madvise(reinterpret_cast<void*>(page_), kPageSize, MADV_DONTNEED);
    }
  }

  void futex_wake() {
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }

  static constexpr uint32_t kRung = 1, kStop = 2;

  int fd_;
  uint64_t page_ = 0;
  std::thread thread_;
  std::atomic<uint32_t> word_{0};    // kRung | kStop; the thread futex-waits on it while 0
  std::atomic<bool> exited_{false};  // run() has returned (shutdown stops waking it then)
};

namespace {

std::mutex g_doorbells_mu;
std::map<int, std::weak_ptr<Doorbell>> g_doorbells;  // uffd fd -> its doorbell

// Opens a raw userfaultfd, /dev/userfaultfd first. Returns -errno on failure.
int open_raw(bool user_only, bool* via_dev) {
  // Blocking: read_events() waits in read(2) itself; timeouts go through poll().
  const int flags = O_CLOEXEC | (user_only ? UFFD_USER_MODE_ONLY : 0);
  int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    int fd = ::ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    int err = errno;
    ::close(dev);
    if (fd >= 0) {
      *via_dev = true;
      return fd;
    }
    (void)err;
  }
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, flags));
  if (fd < 0) return -errno;
  *via_dev = false;
  return fd;
}

void api(int fd, uint64_t features, uint64_t* got_features, uint64_t* got_ioctls) {
  struct uffdio_api a = {};
  a.api = UFFD_API;
  a.features = features;
  if (::ioctl(fd, UFFDIO_API, &a) < 0) {
    int err = errno;
    throw SysError("ioctl(UFFDIO_API)", err, "features " + hex(features));
  }
  *got_features = a.features;
  *got_ioctls = a.ioctls;
}

std::string missing_features(uint64_t missing) {
  std::string s;
  for (int bit = 0; bit < 64; bit++) {
    if (missing & (uint64_t{1} << bit)) {
      if (!s.empty()) s += ", ";
      s += feature_name(bit);
    }
  }
  return s;
}

}  // namespace

const char* feature_name(int bit) {
  static const char* names[] = {"PAGEFAULT_FLAG_WP",
                                "EVENT_FORK",
                                "EVENT_REMAP",
                                "EVENT_REMOVE",
                                "MISSING_HUGETLBFS",
                                "MISSING_SHMEM",
                                "EVENT_UNMAP",
                                "SIGBUS",
                                "THREAD_ID",
                                "MINOR_HUGETLBFS",
                                "MINOR_SHMEM",
                                "EXACT_ADDRESS",
                                "WP_HUGETLBFS_SHMEM",
                                "WP_UNPOPULATED",
                                "POISON",
                                "WP_ASYNC",
                                "MOVE"};
  if (bit >= 0 && bit < static_cast<int>(sizeof(names) / sizeof(names[0]))) return names[bit];
  return "UNKNOWN";
}

UffdProbe Uffd::probe() {
  UffdProbe p;
  bool via_dev = false;
  int fd = open_raw(false, &via_dev);
  if (fd >= 0) {
    p.full_mode = true;
  } else {
    fd = open_raw(true, &via_dev);
    if (fd < 0) throw SysError("userfaultfd", -fd, "cannot open a userfaultfd in any mode");
  }
  p.dev_userfaultfd = via_dev;
  try {
    api(fd, 0, &p.features, &p.ioctls);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return p;
}

Uffd::Uffd(UffdMode mode, uint64_t extra_features) {
  UffdProbe p = probe();
  if (extra_features & ~p.features) {
    throw SysError("ioctl(UFFDIO_API)", ENOTSUP,
                   "kernel lacks userfaultfd features: " + missing_features(extra_features & ~p.features));
  }
  if (mode == UffdMode::kFull && !p.full_mode) {
    throw SysError("userfaultfd", EPERM,
                   "full mode (kernel-mode faults) needs root, CAP_SYS_PTRACE or access to /dev/userfaultfd");
  }
  bool user_only = mode == UffdMode::kUserOnly || (mode == UffdMode::kAuto && !p.full_mode);
  int fd = open_raw(user_only, &via_dev_);
  if (fd < 0) throw SysError("userfaultfd", -fd, user_only ? "user-mode-only" : "full mode");
  fd_ = fd;
  user_mode_only_ = user_only;
  try {
    uint64_t requested = (kWantedFeatures & p.features) | extra_features;
    uint64_t offered = 0;
    api(fd_, requested, &offered, &ioctls_);
    features_ = requested;  // the kernel answers with all it offers; in force is what we asked for
    // A SIGBUS uffd queues no events: nobody reads it, and nothing needs waking.
    if (!(requested & UFFD_FEATURE_SIGBUS)) {
      doorbell_ = std::make_shared<Doorbell>(fd_);
      std::lock_guard<std::mutex> lock(g_doorbells_mu);
      g_doorbells[fd_] = doorbell_;
    }
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

Uffd::Uffd(int fd, uint64_t features, uint64_t ioctls, bool user_mode_only)
    : fd_(fd), features_(features), ioctls_(ioctls), user_mode_only_(user_mode_only), owned_(false) {
  std::lock_guard<std::mutex> lock(g_doorbells_mu);
  auto it = g_doorbells.find(fd);
  if (it != g_doorbells.end()) doorbell_ = it->second.lock();
  if (!doorbell_) throw SysError("userfaultfd", EBADF, "fd " + std::to_string(fd) + " is not an open tmem userfaultfd");
}

Uffd::~Uffd() {
  if (!owned_) return;
  {
    std::lock_guard<std::mutex> lock(g_doorbells_mu);
    g_doorbells.erase(fd_);
  }
  if (doorbell_) doorbell_->shutdown();  // attached instances may still hold it: their rings become no-ops
  doorbell_.reset();
  if (fd_ >= 0) ::close(fd_);
}

uint64_t Uffd::doorbell_address() const { return doorbell_ ? doorbell_->page() : 0; }

uint64_t Uffd::register_range(uint64_t addr, uint64_t len, uint64_t mode) {
  struct uffdio_register r = {};
  r.range.start = addr;
  r.range.len = len;
  r.mode = mode;
  if (::ioctl(fd_, UFFDIO_REGISTER, &r) < 0) {
    throw SysError("ioctl(UFFDIO_REGISTER)", errno, "start " + hex(addr) + " len " + std::to_string(len));
  }
  return r.ioctls;
}

void Uffd::unregister_range(uint64_t addr, uint64_t len) {
  struct uffdio_range r = {addr, len};
  if (::ioctl(fd_, UFFDIO_UNREGISTER, &r) < 0) throw SysError("ioctl(UFFDIO_UNREGISTER)", errno);
}

void Uffd::set_nonblocking(bool on) {
  if (!doorbell_ || doorbell_->nonblocking.load(std::memory_order_relaxed) == static_cast<int>(on)) return;
  int fl = ::fcntl(fd_, F_GETFL);
  if (fl < 0 || ::fcntl(fd_, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)) < 0) {
    throw SysError("fcntl", errno, "setting O_NONBLOCK on the userfaultfd");
  }
  doorbell_->nonblocking.store(on, std::memory_order_relaxed);
}

int Uffd::read_events(UffdEvent* out, int max, int timeout_ms) {
  if (pending_wake_) {
    pending_wake_ = false;
    return -1;
  }
  set_nonblocking(timeout_ms >= 0);
  if (timeout_ms >= 0) {
    struct pollfd pfd = {fd_, POLLIN, 0};
    int n = ::poll(&pfd, 1, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return 0;
      throw SysError("poll", errno, "waiting for userfaultfd events");
    }
    if (n == 0) return 0;
    if (pfd.revents & (POLLERR | POLLHUP) && !(pfd.revents & POLLIN)) {
      throw SysError("poll", EIO, "userfaultfd reported an error or hang-up");
    }
  }
  constexpr int kBatch = 64;
  struct uffd_msg msgs[kBatch];
  if (max > kBatch) max = kBatch;
  ssize_t r = ::read(fd_, msgs, sizeof(msgs[0]) * max);
  if (r < 0) {
    if (errno == EAGAIN || errno == EINTR) return 0;
    throw SysError("read", errno, "reading userfaultfd events");
  }
  const uint64_t bell = doorbell_address();
  bool woken = false;
  int count = 0;
  {
    int got = static_cast<int>(r / sizeof(msgs[0]));
    for (int i = 0; i < got; i++) {
      const uffd_msg& m = msgs[i];
      if (m.event == UFFD_EVENT_PAGEFAULT && (m.arg.pagefault.address & ~(kPageSize - 1)) == bell) {
        woken = true;
        zeropage(bell, kPageSize, false);  // lets the doorbell thread go on
        continue;
      }
      UffdEvent& e = out[count++];
      e.kind = m.event;
      e.flags = 0;
      e.address = 0;
      e.arg1 = 0;
      e.arg2 = 0;
      switch (m.event) {
        case UFFD_EVENT_PAGEFAULT:
          e.flags = m.arg.pagefault.flags;
          e.address = m.arg.pagefault.address & ~(kPageSize - 1);
          e.arg1 = m.arg.pagefault.feat.ptid;
          break;
        case UFFD_EVENT_FORK: e.arg1 = m.arg.fork.ufd; break;
        case UFFD_EVENT_REMAP:
          e.address = m.arg.remap.from;
          e.arg1 = m.arg.remap.to;
          e.arg2 = m.arg.remap.len;
          break;
        case UFFD_EVENT_REMOVE:
        case UFFD_EVENT_UNMAP:
          e.address = m.arg.remove.start;
          e.arg1 = m.arg.remove.end;
          break;
        default: break;
      }
    }
  }
  if (count == 0 && woken) return -1;
  if (woken) pending_wake_ = true;  // reported by the next call
  return count;
}

void Uffd::wake_reader() {
  if (doorbell_) doorbell_->ring();
}

std::function<void()> Uffd::waker() const {
  std::weak_ptr<Doorbell> bell = doorbell_;
  return [bell] {
    if (auto d = bell.lock()) d->ring();
  };
}

int64_t Uffd::copy(uint64_t dst, const void* src, uint64_t len, bool write_protect, bool dont_wake) {
  uint64_t done = 0;
  while (done < len) {
    struct uffdio_copy c = {};
    c.dst = dst + done;
    c.src = reinterpret_cast<uint64_t>(src) + done;
    c.len = len - done;
    c.mode = (write_protect ? UFFDIO_COPY_MODE_WP : 0) | (dont_wake ? UFFDIO_COPY_MODE_DONTWAKE : 0);
    if (::ioctl(fd_, UFFDIO_COPY, &c) == 0) return static_cast<int64_t>(len);
    int err = errno;
    if (c.copy > 0) {  // partial: the kernel copied (and woke) part of it
      done += static_cast<uint64_t>(c.copy);
      continue;
    }
    if (err == EEXIST) {  // already there: success, but the kernel did not wake the faulter
      if (!dont_wake) wake(dst + done, kPageSize);
      done += kPageSize;
      continue;
    }
    if (err == EAGAIN || err == ESRCH) return -err;
    throw SysError("ioctl(UFFDIO_COPY)", err, "dst " + hex(dst + done) + " len " + std::to_string(len - done));
  }
  return static_cast<int64_t>(len);
}

int64_t Uffd::zeropage(uint64_t dst, uint64_t len, bool dont_wake) {
  uint64_t done = 0;
  while (done < len) {
    struct uffdio_zeropage z = {};
    z.range.start = dst + done;
    z.range.len = len - done;
    z.mode = dont_wake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0;
    if (::ioctl(fd_, UFFDIO_ZEROPAGE, &z) == 0) return static_cast<int64_t>(len);
    int err = errno;
    if (z.zeropage > 0) {
      done += static_cast<uint64_t>(z.zeropage);
      continue;
    }
    if (err == EEXIST) {
      if (!dont_wake) wake(dst + done, kPageSize);
      done += kPageSize;
      continue;
    }
    if (err == EAGAIN || err == ESRCH) return -err;
    throw SysError("ioctl(UFFDIO_ZEROPAGE)", err, "dst " + hex(dst + done));
  }
  return static_cast<int64_t>(len);
}

int64_t Uffd::move(uint64_t dst, uint64_t src, uint64_t len, bool allow_src_holes, bool dont_wake) {
  uint64_t done = 0;
  while (done < len) {
    struct uffdio_move m = {};
    m.dst = dst + done;
    m.src = src + done;
    m.len = len - done;
    m.mode = (allow_src_holes ? UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES : 0) | (dont_wake ? UFFDIO_MOVE_MODE_DONTWAKE : 0);
    if (::ioctl(fd_, UFFDIO_MOVE, &m) == 0) return static_cast<int64_t>(len);
    int err = errno;
    if (m.move > 0) {
      done += static_cast<uint64_t>(m.move);
      continue;
    }
    if (done > 0) return static_cast<int64_t>(done);
    if (err == EAGAIN || err == ESRCH || err == ENOENT || err == EBUSY || err == EEXIST) return -err;
    throw SysError("ioctl(UFFDIO_MOVE)", err, "dst " + hex(dst) + " src " + hex(src) + " len " + std::to_string(len));
  }
  return static_cast<int64_t>(len);
}

void Uffd::wake(uint64_t addr, uint64_t len) {
  struct uffdio_range r = {addr, len};
  if (::ioctl(fd_, UFFDIO_WAKE, &r) < 0) throw SysError("ioctl(UFFDIO_WAKE)", errno);
}

void Uffd::write_protect(uint64_t addr, uint64_t len, bool protect, bool dont_wake) {
  struct uffdio_writeprotect w = {};
  w.range.start = addr;
  w.range.len = len;
  w.mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) | (dont_wake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0);
  if (::ioctl(fd_, UFFDIO_WRITEPROTECT, &w) < 0) {
    throw SysError("ioctl(UFFDIO_WRITEPROTECT)", errno,
                   std::string(protect ? "protect" : "unprotect") + " " + hex(addr));
  }
}

int64_t Uffd::poison(uint64_t addr, uint64_t len, bool dont_wake) {
  struct uffdio_poison p = {};
  p.range.start = addr;
  p.range.len = len;
  p.mode = dont_wake ? UFFDIO_POISON_MODE_DONTWAKE : 0;
  if (::ioctl(fd_, UFFDIO_POISON, &p) == 0) return static_cast<int64_t>(len);
  int err = errno;
  if (p.updated > 0) return p.updated;
  return -err;
}

}  // namespace tmem
