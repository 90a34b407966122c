#include "memory.h"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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

void madvise_ranges(const uint64_t* ranges, size_t count, int advice) {
  for (size_t i = 0; i < count; i++) {
    uint64_t addr = ranges[2 * i], len = ranges[2 * i + 1];
    if (::madvise(reinterpret_cast<void*>(addr), len, advice) < 0) {
      throw SysError("madvise", errno,
                     "range " + std::to_string(i) + " (" + hex(addr) + ", " + std::to_string(len) + " bytes)");
    }
  }
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
