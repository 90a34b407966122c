// Anonymous memory for regions and staging areas, and madvise over many ranges.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tmem {

/** mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE), read-write. Throws SysError. */
uint64_t map_anonymous(uint64_t len);
/** munmap. Throws SysError. */
void unmap(uint64_t addr, uint64_t len);
/**
 * madvise(advice) over `count` (address, length) pairs in `ranges`, one
 * syscall per range but one call from JS. Throws SysError naming the range.
 */
void madvise_ranges(const uint64_t* ranges, size_t count, int advice);

}  // namespace tmem
