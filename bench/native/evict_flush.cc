// evict_flush: what taking scattered resident pages out of a userfaultfd region costs, per
// page, the way tmem does it today and the way a batched eviction could, while another
// thread of the same process runs on another CPU (as a program's thread does while tmem
// evicts). A probe for the notes of issue 12 (eviction and fill throughput), not a baseline.
//
//   move      UFFDIO_MOVE of each page into a staging area, then one MADV_DONTNEED over
//             the staging area (tmem's eviction today: staging.ts, one flush per page)
//   wp+batch  UFFDIO_WRITEPROTECT of each page, a 4 KiB copy of it (what compression reads),
//             then one process_madvise(MADV_DONTNEED) over all of them (one flush per batch
//             since Linux 6.15)
//   wp+each   the same with one madvise(MADV_DONTNEED) per page
//   wp-runs   contiguous runs of `batch` pages: one write-protect and one zap per run (what
//             choosing victims by address would allow)
//   move-runs contiguous runs of `batch` pages, one UFFDIO_MOVE per run into contiguous
//             staging (what the kernel's move_pages makes of a run: flushes per page or not)
//   zap-batch the pages write-protected already (tmem's clean pages: their copy is current),
//             dropped in scattered batches of `batch` with one process_madvise(MADV_DONTNEED)
//   zap-each  the same with one madvise(MADV_DONTNEED) per page
//   holes-move  1 page in 4 resident (as the steady state leaves a region): one UFFDIO_MOVE
//             with ALLOW_SRC_HOLES over each span of `batch` pages
//   holes-wp  1 page in 4 resident: one UFFDIO_WRITEPROTECT over each span of `batch` pages,
//             a copy of each resident page, one process_madvise(MADV_DONTNEED) over them
//
// Usage: evict_flush [pages=8192] [batch=256]. Prints a JSON line per way: microseconds per
// page and the TLB shootdowns the run caused (/proc/interrupts, all CPUs).
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../native/uffd_abi.h"  // linux/userfaultfd.h, and UFFDIO_MOVE where the headers lack it
#include "benchutil.h"

namespace {

constexpr size_t kPage = 4096;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "evict_flush: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

uint64_t tlb_shootdowns() {
  std::ifstream in("/proc/interrupts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string name;
    ss >> name;
    if (name != "TLB:") continue;
    uint64_t sum = 0, v;
    while (ss >> v) sum += v;
    return sum;
  }
  return 0;
}

int open_uffd() {
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) die("userfaultfd");
  struct uffdio_api api = {};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_MOVE;
  if (::ioctl(fd, UFFDIO_API, &api) < 0) die("UFFDIO_API (WP, MOVE)");
  return fd;
}

void reg(int fd, char* base, size_t len, uint64_t mode) {
  struct uffdio_register r = {};
  r.range.start = reinterpret_cast<uint64_t>(base);
  r.range.len = len;
  r.mode = mode;
  if (::ioctl(fd, UFFDIO_REGISTER, &r) < 0) die("UFFDIO_REGISTER");
}

struct Result {
  double us_per_page;
  uint64_t shootdowns;
};

}  // namespace

int main(int argc, char** argv) {
  const size_t pages = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 8192;
  const size_t batch = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 256;
  if (pages < 16 || batch < 1 || batch > 1024) {
    std::fprintf(stderr, "usage: evict_flush [pages>=16] [batch 1..1024]\n");
    return 2;
  }
  const int uffd = open_uffd();
  const size_t len = pages * kPage;
  char* region = static_cast<char*>(::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  char* staging = static_cast<char*>(::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (region == MAP_FAILED || staging == MAP_FAILED) die("mmap");
  reg(uffd, region, len, UFFDIO_REGISTER_MODE_WP);  // no MISSING: the next way refills it with plain faults
  reg(uffd, staging, len, UFFDIO_REGISTER_MODE_MISSING);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
  if (pidfd < 0) die("pidfd_open");

  // Another thread of this process, running on another CPU the whole time.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> spins{0};
  std::thread busy([&] {
    if (benchutil::online_cpus() > 1) benchutil::pin_to_cpu(benchutil::nth_allowed_cpu(1));
    while (!stop.load(std::memory_order_relaxed)) spins.fetch_add(1, std::memory_order_relaxed);
  });
  if (benchutil::online_cpus() > 1) benchutil::pin_to_cpu(benchutil::nth_allowed_cpu(0));

  std::vector<uint32_t> order(pages);
  for (size_t i = 0; i < pages; i++) order[i] = static_cast<uint32_t>(i);
  benchutil::Rng rng(7);
  benchutil::shuffle(order, rng);
  std::vector<char> copy(kPage);
  std::vector<struct iovec> iov(batch);

  // `stride` 1 fills every page; 4 fills one page in four (the sparse ways).
  auto fill = [&](size_t stride) {
    for (size_t p = 0; p < pages; p += stride) std::memset(region + p * kPage, static_cast<int>(p * 31 + 1), kPage);
  };
  auto run = [&](const char* way, auto&& body, size_t stride = 1) {
    fill(stride);
    const size_t moved = (pages + stride - 1) / stride;
    const uint64_t tlb0 = tlb_shootdowns();
    const uint64_t t0 = benchutil::now_ns();
    body();
    const uint64_t t1 = benchutil::now_ns();
    const Result r{(t1 - t0) / 1000.0 / moved, tlb_shootdowns() - tlb0};
    std::printf("{\"way\":\"%s\",\"pages\":%zu,\"batch\":%zu,\"usPerPage\":%.3f,\"tlbShootdowns\":%llu}\n", way, moved,
                batch, r.us_per_page, static_cast<unsigned long long>(r.shootdowns));
    // Every page must be gone from the region (or the way did not do its job).
    unsigned char vec[64];
    size_t mapped = 0;
    for (size_t p = 0; p < pages; p += 64) {
      const size_t n = std::min<size_t>(64, pages - p);
      if (::mincore(region + p * kPage, n * kPage, vec) < 0) die("mincore");
      for (size_t i = 0; i < n; i++) mapped += vec[i] & 1;
    }
    if (mapped) std::fprintf(stderr, "evict_flush: %s left %zu pages mapped\n", way, mapped);
    // Unprotect for the next way (the WP bits stay on the empty PTEs otherwise).
    struct uffdio_writeprotect wp = {};
    wp.range.start = reinterpret_cast<uint64_t>(region);
    wp.range.len = len;
    wp.mode = 0;
    ::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
  };

  run("move", [&] {
    for (size_t i = 0; i < pages; i++) {
      struct uffdio_move m = {};
      m.dst = reinterpret_cast<uint64_t>(staging + i * kPage);
      m.src = reinterpret_cast<uint64_t>(region + order[i] * kPage);
      m.len = kPage;
      if (::ioctl(uffd, UFFDIO_MOVE, &m) < 0) die("UFFDIO_MOVE");
      std::memcpy(copy.data(), staging + i * kPage, kPage);  // what compression reads
    }
    ::madvise(staging, len, MADV_DONTNEED);
  });
  auto wp_page = [&](char* at) {
    struct uffdio_writeprotect wp = {};
    wp.range.start = reinterpret_cast<uint64_t>(at);
    wp.range.len = kPage;
    wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    if (::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) die("UFFDIO_WRITEPROTECT");
  };
  run("wp+batch", [&] {
    for (size_t i = 0; i < pages; i += batch) {
      const size_t n = std::min(batch, pages - i);
      for (size_t k = 0; k < n; k++) {
        char* at = region + order[i + k] * kPage;
        wp_page(at);
        std::memcpy(copy.data(), at, kPage);
        iov[k].iov_base = at;
        iov[k].iov_len = kPage;
      }
      if (::syscall(SYS_process_madvise, pidfd, iov.data(), n, MADV_DONTNEED, 0) < 0) die("process_madvise");
    }
  });
  run("wp+each", [&] {
    for (size_t i = 0; i < pages; i++) {
      char* at = region + order[i] * kPage;
      wp_page(at);
      std::memcpy(copy.data(), at, kPage);
      ::madvise(at, kPage, MADV_DONTNEED);
    }
  });
  run("wp-runs", [&] {
    // The same for contiguous runs of `batch` pages (victims chosen by address): one
    // write-protect and one zap per run.
    for (size_t i = 0; i < pages; i += batch) {
      const size_t n = std::min(batch, pages - i);
      struct uffdio_writeprotect wp = {};
      wp.range.start = reinterpret_cast<uint64_t>(region + i * kPage);
      wp.range.len = n * kPage;
      wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
      if (::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) die("UFFDIO_WRITEPROTECT");
      for (size_t k = 0; k < n; k++) std::memcpy(copy.data(), region + (i + k) * kPage, kPage);
      ::madvise(region + i * kPage, n * kPage, MADV_DONTNEED);
    }
  });
  run("move-runs", [&] {
    for (size_t i = 0; i < pages; i += batch) {
      const size_t n = std::min(batch, pages - i);
      struct uffdio_move m = {};
      m.dst = reinterpret_cast<uint64_t>(staging + i * kPage);
      m.src = reinterpret_cast<uint64_t>(region + i * kPage);
      m.len = n * kPage;
      if (::ioctl(uffd, UFFDIO_MOVE, &m) < 0) die("UFFDIO_MOVE (run)");
      for (size_t k = 0; k < n; k++) std::memcpy(copy.data(), staging + (i + k) * kPage, kPage);
    }
    ::madvise(staging, len, MADV_DONTNEED);
  });
  auto wp_all = [&] {
    struct uffdio_writeprotect wp = {};
    wp.range.start = reinterpret_cast<uint64_t>(region);
    wp.range.len = len;
    wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    if (::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) die("UFFDIO_WRITEPROTECT (all)");
  };
  run("zap-batch", [&] {
    wp_all();
    for (size_t i = 0; i < pages; i += batch) {
      const size_t n = std::min(batch, pages - i);
      for (size_t k = 0; k < n; k++) {
        iov[k].iov_base = region + order[i + k] * kPage;
        iov[k].iov_len = kPage;
      }
      if (::syscall(SYS_process_madvise, pidfd, iov.data(), n, MADV_DONTNEED, 0) < 0) die("process_madvise");
    }
  });
  run("zap-each", [&] {
    wp_all();
    for (size_t i = 0; i < pages; i++) ::madvise(region + order[i] * kPage, kPage, MADV_DONTNEED);
  });
  constexpr size_t kStride = 4;
  run(
      "holes-move",
      [&] {
        for (size_t i = 0; i < pages; i += batch) {
          const size_t n = std::min(batch, pages - i);
          struct uffdio_move m = {};
          m.dst = reinterpret_cast<uint64_t>(staging + i * kPage);
          m.src = reinterpret_cast<uint64_t>(region + i * kPage);
          m.len = n * kPage;
          m.mode = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES;
          if (::ioctl(uffd, UFFDIO_MOVE, &m) < 0) die("UFFDIO_MOVE (holes)");
          for (size_t k = 0; k < n; k += kStride) std::memcpy(copy.data(), staging + (i + k) * kPage, kPage);
        }
        ::madvise(staging, len, MADV_DONTNEED);
      },
      kStride);
  run(
      "holes-wp",
      [&] {
        for (size_t i = 0; i < pages; i += batch) {
          const size_t n = std::min(batch, pages - i);
          struct uffdio_writeprotect wp = {};
          wp.range.start = reinterpret_cast<uint64_t>(region + i * kPage);
          wp.range.len = n * kPage;
          wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
          if (::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) die("UFFDIO_WRITEPROTECT (span)");
          size_t k = 0;
          for (size_t p = 0; p < n; p += kStride, k++) {
            char* at = region + (i + p) * kPage;
            std::memcpy(copy.data(), at, kPage);
            iov[k].iov_base = at;
            iov[k].iov_len = kPage;
          }
          if (::syscall(SYS_process_madvise, pidfd, iov.data(), k, MADV_DONTNEED, 0) < 0) die("process_madvise");
        }
      },
      kStride);
  stop = true;
  busy.join();
  return 0;
}
