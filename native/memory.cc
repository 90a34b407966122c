#include "memory.h"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <string>

#include "sys_error.h"

namespace tmem {

uint64_t map_anonymous(uint64_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw SysError("mmap", errno, "anonymous region of " + std::to_string(len) + " bytes");
  return reinterpret_cast<uint64_t>(p);
}

void unmap(uint64_t addr, uint64_t len) {
  if (::munmap(reinterpret_cast<void*>(addr), len) < 0) throw SysError("munmap", errno);
}

namespace {

// process_madvise(2) of this process: PIDFD_SELF_THREAD_GROUP (Linux 6.15) where the kernel
// knows it, else a pidfd of this process opened for the call. -1 with errno set: none.
constexpr int kPidfdSelfThreadGroup = -20000;
std::atomic<int> self_pidfd_mode{0};  // 0 unknown, 1 PIDFD_SELF works, 2 pidfd_open, 3 no batching

ssize_t process_madvise_self(const struct iovec* iov, size_t n, int advice) {
  int mode = self_pidfd_mode.load(std::memory_order_relaxed);
  if (mode <= 1) {
    ssize_t r = ::syscall(SYS_process_madvise, kPidfdSelfThreadGroup, iov, n, advice, 0);
    if (r >= 0 || errno != EBADF) {
      if (r >= 0 && mode == 0) self_pidfd_mode.store(1, std::memory_order_relaxed);
      return r;
    }
    self_pidfd_mode.store(mode = 2, std::memory_order_relaxed);
  }
  // A pidfd of the caller's own pid, each time: after a fork the child is another process.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
  if (fd < 0) return -1;
  ssize_t r = ::syscall(SYS_process_madvise, fd, iov, n, advice, 0);
  int e = errno;
  ::close(fd);
  errno = e;
  return r;
}

void madvise_each(const uint64_t* ranges, size_t from, size_t count, int advice) {
  for (size_t i = from; i < count; i++) {
    uint64_t addr = ranges[2 * i], len = ranges[2 * i + 1];
    if (::madvise(reinterpret_cast<void*>(addr), len, advice) < 0) {
      throw SysError("madvise", errno,
                     "range " + std::to_string(i) + " (" + hex(addr) + ", " + std::to_string(len) + " bytes)");
    }
  }
}

}  // namespace

void madvise_ranges(const uint64_t* ranges, size_t count, int advice) {
  // Many ranges go in one process_madvise(2) per UIO_MAXIOV: the kernel gathers the TLB
  // flushes of a MADV_DONTNEED vector into one (Linux 6.16), where one madvise(2) per range
  // flushes once each - a cross-CPU shootdown while another thread of the program runs
  // (bench/native/evict_flush zap-batch: 8.9 us a page in scattered batches of 32 against
  // 25.3 one madvise each). Kernels that refuse it for this advice (EINVAL before 6.13,
  // EPERM without the capability some of them ask for) get one madvise(2) per range.
  constexpr size_t kMaxIov = 1024;
  size_t i = 0;
  if (count > 1 && self_pidfd_mode.load(std::memory_order_relaxed) != 3) {
    struct iovec iov[64];
    while (i < count) {
      const size_t n = std::min<size_t>({count - i, kMaxIov, sizeof iov / sizeof iov[0]});
      size_t want = 0;
      for (size_t k = 0; k < n; k++) {
        iov[k].iov_base = reinterpret_cast<void*>(ranges[2 * (i + k)]);
        iov[k].iov_len = ranges[2 * (i + k) + 1];
        want += iov[k].iov_len;
      }
      ssize_t r = process_madvise_self(iov, n, advice);
      if (r < 0) {
        if (errno == EINVAL || errno == ENOSYS || errno == EPERM) self_pidfd_mode.store(3, std::memory_order_relaxed);
        break;  // the rest one by one, which names the range an error is about
      }
      if (static_cast<size_t>(r) == want) {
        i += n;
        continue;
      }
      // Advised part of the vector: the ranges wholly done are skipped, the rest one by one.
      size_t done = static_cast<size_t>(r);
      while (done >= ranges[2 * i + 1]) done -= ranges[2 * i++ + 1];
      break;
    }
  }
  madvise_each(ranges, i, count, advice);
}

int64_t unshare_pages(uint64_t addr, uint64_t len) {
  // FUTEX_OP(FUTEX_OP_ADD, 0, FUTEX_OP_CMP_EQ, 0): *uaddr2 += 0, then a compare that only decides
  // whether nr_wake2 (0) waiters on uaddr2 are woken. Both keys are private: no page lookup.
  constexpr uint32_t kAddZero = (FUTEX_OP_ADD << 28) | (FUTEX_OP_CMP_EQ << 24);
  for (uint64_t off = 0; off < len; off += 4096) {
    auto* word = reinterpret_cast<uint32_t*>(addr + off);
    long r = ::syscall(SYS_futex, word, FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG, 0, nullptr, word, kAddZero);
    if (r < 0) return off > 0 ? static_cast<int64_t>(off) : -static_cast<int64_t>(errno);
  }
  return static_cast<int64_t>(len);
}

}  // namespace tmem
