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
 * madvise(advice) over `count` (address, length) pairs in `ranges`: one
 * process_madvise(2) of this process for the whole vector where the kernel
 * takes it (one TLB flush for a MADV_DONTNEED vector), else one madvise(2)
 * per range. Throws SysError naming the range.
 */
void madvise_ranges(const uint64_t* ranges, size_t count, int advice);

/**
 * Makes the present pages of [addr, addr+len) exclusive to this process again
 * without changing a byte and without ever blocking: an atomic add of 0 to one
 * word of each page by the kernel (futex FUTEX_WAKE_OP, waking nobody). After a
 * fork the process's resident anonymous pages are shared copy-on-write (even
 * once the child has exec'd, until they are written) and UFFDIO_MOVE refuses
 * them with EBUSY; the kernel's write fault here reuses (or copies) the page
 * as a write by the program would, atomically with respect to the program's
 * own writes. The kernel resolves that fault with FAULT_FLAG_ALLOW_RETRY off,
 * so a page that is missing or userfaultfd-write-protected is never waited
 * for (no userfaultfd event, EFAULT instead): the thread that serves faults
 * may call this on its own regions.
 * Returns the bytes made writable before the first failure, or -errno if the
 * first page failed (-EFAULT: missing or write-protected).
 */
int64_t unshare_pages(uint64_t addr, uint64_t len);

}  // namespace tmem
