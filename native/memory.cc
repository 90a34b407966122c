#include "memory.h"

#include <sys/mman.h>

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
      throw SysError("madvise", errno, "range " + std::to_string(i) + " (" + hex(addr) + ", " +
                                           std::to_string(len) + " bytes)");
    }
  }
}

}  // namespace tmem
