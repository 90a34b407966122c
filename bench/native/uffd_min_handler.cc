// uffd_min_handler - baseline: the cheapest possible userfaultfd fault service.
//
// What it measures
//   One anonymous region of N pages is registered with userfaultfd in MISSING
//   mode. A handler thread does nothing but a blocking read() on the uffd and
//   one UFFDIO_COPY of an already prepared 4 KiB page per fault. The faulting
//   thread reads one byte of every page once, in random order, and times each
//   touch with CLOCK_MONOTONIC. The figure is the full round trip a fault costs
//   when the handler does no work: trap, uffd message, handler wake-up, copy,
//   wake of the faulter, return to user mode.
//
//   --same-cpu   handler and faulter pinned to the same CPU. The faulter
//                blocks, the handler runs on the CPU it just left.
//   --cross-cpu  handler on another CPU. In a VM this includes waking an idle
//                vCPU (an IPI / VM exit), which usually dominates.
//   (default: both)
//
// How to read it
//   Anything tmem does on the fault path (lookup, decompression, policy) is
//   added on top of these numbers; a JS dispatcher is compared with them as a
//   ratio. p99/p99.9 show scheduler and host noise.
//
// Output: a table in microseconds per mode, then one JSON line:
//   {"bench":"uffd_min_handler","same_cpu":{"p50":..,...,"n":..},"cross_cpu":{...}}
//
// Options: --pages N (default 20000), --warmup N (default 2000), --seed S,
//          --same-cpu, --cross-cpu. Needs /dev/userfaultfd access, root,
//          CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1.

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "benchutil.h"

using namespace benchutil;

static const size_t kPage = 4096;

static int open_uffd(std::string* how) {
#ifdef USERFAULTFD_IOC_NEW
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    int fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
    int saved = errno;
    close(dev);
    if (fd >= 0) {
      *how = "/dev/userfaultfd";
      return fd;
    }
    errno = saved;
  }
#endif
  int fd = int(syscall(SYS_userfaultfd, O_CLOEXEC));
  if (fd >= 0) *how = "syscall(SYS_userfaultfd)";
  return fd;
}

struct Handler {
  int uffd = -1;
  int cpu = -1;
  const char* src = nullptr;  // the ready page copied on every fault
  uintptr_t stop_addr = 0;    // the fault on this page ends the loop
  long served = 0;
  int error = 0;

  void run() {
    if (cpu >= 0 && !pin_to_cpu(cpu)) {
      std::fprintf(stderr, "handler: pin to cpu %d failed: %s\n", cpu, strerror(errno));
    }
    for (;;) {
      struct uffd_msg msg;
      ssize_t r = read(uffd, &msg, sizeof msg);
      if (r < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        error = errno;
        return;
      }
      if (r != sizeof msg || msg.event != UFFD_EVENT_PAGEFAULT) continue;
      uintptr_t addr = uintptr_t(msg.arg.pagefault.address) & ~uintptr_t(kPage - 1);
      struct uffdio_copy cp;
      cp.dst = addr;
      cp.src = uintptr_t(src);
      cp.len = kPage;
      cp.mode = 0;
      cp.copy = 0;
      if (ioctl(uffd, UFFDIO_COPY, &cp) != 0 && errno != EEXIST) {
        error = errno;
        // Wake the faulter anyway so that it does not hang.
        struct uffdio_range rg = {addr, kPage};
        ioctl(uffd, UFFDIO_WAKE, &rg);
        return;
      }
      ++served;
      if (addr == stop_addr) return;
    }
  }
};

// Runs one mode; returns false on setup failure.
static bool run_mode(const char* name, int fault_cpu, int handler_cpu, size_t pages, size_t warmup, uint64_t seed,
                     Summary* out) {
  std::string how;
  int uffd = open_uffd(&how);
  if (uffd < 0) {
    std::fprintf(stderr, "%s: userfaultfd unavailable: %s\n", name, strerror(errno));
    return false;
  }
  struct uffdio_api api;
  memset(&api, 0, sizeof api);
  api.api = UFFD_API;
  if (ioctl(uffd, UFFDIO_API, &api) != 0) {
    std::fprintf(stderr, "%s: UFFDIO_API: %s\n", name, strerror(errno));
    close(uffd);
    return false;
  }

  // Layout: [warmup pages][measured pages][stop page]
  size_t total = warmup + pages + 1;
  size_t len = total * kPage;
  char* region = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (region == MAP_FAILED) {
    std::fprintf(stderr, "%s: mmap: %s\n", name, strerror(errno));
    close(uffd);
    return false;
  }
  madvise(region, len, MADV_NOHUGEPAGE);  // one fault per 4 KiB page
  struct uffdio_register reg;
  memset(&reg, 0, sizeof reg);
  reg.range.start = uintptr_t(region);
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
    std::fprintf(stderr, "%s: UFFDIO_REGISTER: %s\n", name, strerror(errno));
    munmap(region, len);
    close(uffd);
    return false;
  }

  // The ready page, prefaulted, with recognizable contents.
  char* src = static_cast<char*>(aligned_alloc(kPage, kPage));
  for (size_t i = 0; i < kPage; ++i) src[i] = char(0x5a ^ (i & 0xff));

  Handler h;
  h.uffd = uffd;
  h.cpu = handler_cpu;
  h.src = src;
  h.stop_addr = uintptr_t(region + (total - 1) * kPage);

  if (fault_cpu >= 0 && !pin_to_cpu(fault_cpu))
    std::fprintf(stderr, "%s: pin faulter to cpu %d failed: %s\n", name, fault_cpu, strerror(errno));

  Rng rng(seed);
  std::vector<size_t> warm_order = identity_order(warmup);
  std::vector<size_t> order = identity_order(pages);
  shuffle(warm_order, rng);
  shuffle(order, rng);
  std::vector<uint64_t> lat(pages, 0);  // prefaulted by the zero fill

  std::thread th([&h] { h.run(); });

  unsigned sink = 0;
  // Warm-up: same path, not recorded (caches, branch predictors, scheduler).
  for (size_t i : warm_order) sink += *reinterpret_cast<volatile unsigned char*>(region + i * kPage);
  char* meas = region + warmup * kPage;
  for (size_t k = 0; k < pages; ++k) {
    volatile unsigned char* p = reinterpret_cast<volatile unsigned char*>(meas + order[k] * kPage + 1);
    uint64_t t0 = now_ns();
    asm volatile("" ::: "memory");
    unsigned v = *p;
    asm volatile("" ::: "memory");
    uint64_t t1 = now_ns();
    sink += v;
    lat[k] = t1 - t0;
  }
  sink += *reinterpret_cast<volatile unsigned char*>(region + (total - 1) * kPage);
  th.join();

  // Every page must now hold the source contents.
  size_t bad = 0;
  for (size_t i = 0; i < total; ++i)
    if (memcmp(region + i * kPage, src, kPage) != 0) ++bad;
  if (bad || h.error) {
    std::fprintf(stderr, "%s: %zu pages with wrong contents, handler error %s\n", name, bad,
                 h.error ? strerror(h.error) : "none");
  }

  *out = summarize(lat);
  std::printf("%-10s faulter cpu %d, handler cpu %d, uffd via %s, faults served %ld (checksum %u)\n", name, fault_cpu,
              handler_cpu, how.c_str(), h.served, sink & 0xff);
  print_summary(name, *out);

  munmap(region, len);
  close(uffd);
  free(src);
  return bad == 0 && h.error == 0;
}

static void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--same-cpu] [--cross-cpu] [--pages N] [--warmup N] [--seed S]\n"
               "  default: both modes, 20000 pages, 2000 warm-up faults\n",
               argv0);
}

int main(int argc, char** argv) {
  bool same = false, cross = false;
  size_t pages = 20000, warmup = 2000;
  uint64_t seed = 12345;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char* what) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", what);
        usage(argv[0]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--same-cpu") same = true;
    else if (a == "--cross-cpu") cross = true;
    else if (a == "--pages") pages = std::strtoull(next("--pages"), nullptr, 0);
    else if (a == "--warmup") warmup = std::strtoull(next("--warmup"), nullptr, 0);
    else if (a == "--seed") seed = std::strtoull(next("--seed"), nullptr, 0);
    else if (a == "-h" || a == "--help") {
      usage(argv[0]);
      return 0;
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      usage(argv[0]);
      return 2;
    }
  }
  if (!same && !cross) same = cross = true;
  if (pages == 0) {
    std::fprintf(stderr, "--pages must be > 0\n");
    return 2;
  }

  int cpu0 = nth_allowed_cpu(0), cpu1 = nth_allowed_cpu(1);
  std::printf("uffd_min_handler: %zu measured faults per mode (+%zu warm-up), %d CPUs allowed\n", pages, warmup,
              online_cpus());

  std::string json = "{\"bench\":\"uffd_min_handler\"";
  bool ok = true, any = false;
  Summary s;
  if (same) {
    if (run_mode("same_cpu", cpu0, cpu0, pages, warmup, seed, &s)) {
      json += ",\"same_cpu\":" + summary_json(s);
      any = true;
    } else {
      ok = false;
    }
  }
  if (cross) {
    if (cpu1 < 0) {
      std::printf("cross_cpu: skipped, only one CPU allowed\n");
      json += ",\"cross_cpu\":null";
    } else if (run_mode("cross_cpu", cpu0, cpu1, pages, warmup, seed + 1, &s)) {
      json += ",\"cross_cpu\":" + summary_json(s);
      any = true;
    } else {
      ok = false;
    }
  }
  json += "}";
  std::printf("%s\n", json.c_str());
  if (!any) return 2;
  return ok ? 0 : 1;
}
