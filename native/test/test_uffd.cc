// Native tests of the core, without Node: real faults through the real kernel.
// A faulting thread touches pages of a registered region while the test's
// main thread serves the faults with the Uffd class.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "deadman.h"
#include "memory.h"
#include "page_codec.h"
#include "sys_error.h"
#include "thread.h"
#include "uffd.h"

using namespace tmem;
using tmem_test::finish;
using tmem_test::run;

// A thread joined on scope exit, so that a failed check reports instead of std::terminate.
struct Joined {
  std::thread t;
  template <class F>
  explicit Joined(F f) : t(f) {}
  ~Joined() {
    if (t.joinable()) t.join();
  }
  void join() { t.join(); }
};

// Serves faults until `count` have been served, resolving each with `fn`.
static void serve(Uffd& u, int count, const std::function<void(const UffdEvent&)>& fn) {
  UffdEvent ev[16];
  int served = 0;
  while (served < count) {
    int n = u.read_events(ev, 16, 5000);
    if (n == 0) throw std::runtime_error("timed out waiting for a fault");
    for (int i = 0; i < n; i++) {
      if (ev[i].kind != UFFD_EVENT_PAGEFAULT) continue;
      fn(ev[i]);
      served++;
    }
  }
}

int main() {
  run("probe reports MOVE and THREAD_ID", [] {
    UffdProbe p = Uffd::probe();
    CHECK(p.features & UFFD_FEATURE_THREAD_ID);
    CHECK(p.features & UFFD_FEATURE_MOVE);
  });

  run("missing faults resolved by COPY and ZEROPAGE, every byte checked", [] {
    Uffd u(UffdMode::kAuto, 0);
    const uint64_t pages = 64, len = pages * kPageSize;
    uint64_t addr = map_anonymous(len);
    u.register_range(addr, len, UFFDIO_REGISTER_MODE_MISSING);
    std::atomic<uint64_t> sum{0};
    int64_t faulter_tid = 0;
    Joined t([&] {
      faulter_tid = current_tid();
      uint64_t s = 0;
      auto* p = reinterpret_cast<volatile uint8_t*>(addr);
      for (uint64_t i = 0; i < pages; i++)
        for (uint64_t b = 0; b < kPageSize; b += 512) s += p[i * kPageSize + b];
      sum = s;
    });
    alignas(4096) static uint8_t page[kPageSize];
    std::vector<int64_t> tids;
    serve(u, pages, [&](const UffdEvent& e) {
      uint64_t idx = (e.address - addr) / kPageSize;
      tids.push_back(static_cast<int64_t>(e.arg1));
      if (idx % 2) {
        CHECK(u.zeropage(e.address, kPageSize, false) == static_cast<int64_t>(kPageSize));
      } else {
        std::memset(page, static_cast<int>(idx & 0xff), kPageSize);
        CHECK(u.copy(e.address, page, kPageSize, false, false) == static_cast<int64_t>(kPageSize));
      }
    });
    t.join();
    uint64_t expect = 0;
    for (uint64_t i = 0; i < pages; i += 2) expect += (i & 0xff) * (kPageSize / 512);
    CHECK(sum == expect);
    for (auto tid : tids) CHECK(tid == faulter_tid);
    auto* p = reinterpret_cast<uint8_t*>(addr);
    for (uint64_t i = 0; i < pages; i++)
      for (uint64_t b = 0; b < kPageSize; b++) CHECK(p[i * kPageSize + b] == ((i % 2) ? 0 : (i & 0xff)));
    u.unregister_range(addr, len);
    unmap(addr, len);
  });

  run("COPY onto a present page is EEXIST, reported as success", [] {
    Uffd u(UffdMode::kAuto, 0);
    uint64_t addr = map_anonymous(kPageSize);
    u.register_range(addr, kPageSize, UFFDIO_REGISTER_MODE_MISSING);
    alignas(4096) static uint8_t page[kPageSize];
    std::memset(page, 1, kPageSize);
    CHECK(u.copy(addr, page, kPageSize, false, false) == static_cast<int64_t>(kPageSize));
    std::memset(page, 2, kPageSize);
    CHECK(u.copy(addr, page, kPageSize, false, false) == static_cast<int64_t>(kPageSize));
    CHECK(reinterpret_cast<uint8_t*>(addr)[0] == 1);  // the first copy stays
    unmap(addr, kPageSize);
  });

  run("write-protect: a write arrives as a WP fault, is resolved, and lands", [] {
    Uffd u(UffdMode::kAuto, 0);
    uint64_t addr = map_anonymous(kPageSize);
    u.register_range(addr, kPageSize, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    alignas(4096) static uint8_t page[kPageSize];
    std::memset(page, 9, kPageSize);
    CHECK(u.copy(addr, page, kPageSize, true, false) == static_cast<int64_t>(kPageSize));  // present, protected
    Joined t([&] { reinterpret_cast<volatile uint8_t*>(addr)[100] = 42; });
    serve(u, 1, [&](const UffdEvent& e) {
      CHECK(e.flags & UFFD_PAGEFAULT_FLAG_WP);
      CHECK(e.flags & UFFD_PAGEFAULT_FLAG_WRITE);
      u.write_protect(e.address, kPageSize, false, false);
    });
    t.join();
    auto* p = reinterpret_cast<uint8_t*>(addr);
    CHECK(p[100] == 42 && p[99] == 9 && p[101] == 9);
    unmap(addr, kPageSize);
  });

  run("MOVE out to a staging area faults as missing; MOVE back restores bytes", [] {
    Uffd u(UffdMode::kAuto, 0);
    uint64_t region = map_anonymous(4 * kPageSize), staging = map_anonymous(4 * kPageSize);
    u.register_range(region, 4 * kPageSize, UFFDIO_REGISTER_MODE_MISSING);
    u.register_range(staging, 4 * kPageSize, UFFDIO_REGISTER_MODE_MISSING);
    alignas(4096) static uint8_t page[kPageSize];
    for (uint64_t i = 0; i < kPageSize; i++) page[i] = static_cast<uint8_t>(i * 7 + 3);
    CHECK(u.copy(region, page, kPageSize, false, false) == static_cast<int64_t>(kPageSize));
    CHECK(u.move(staging, region, kPageSize, false, false) == static_cast<int64_t>(kPageSize));
    CHECK(std::memcmp(reinterpret_cast<void*>(staging), page, kPageSize) == 0);
    std::atomic<int> seen{-1};
    Joined t([&] { seen = reinterpret_cast<volatile uint8_t*>(region)[5]; });
    serve(u, 1, [&](const UffdEvent& e) {
      CHECK(e.address == region);
      CHECK(u.move(region, staging, kPageSize, false, false) == static_cast<int64_t>(kPageSize));
    });
    t.join();
    CHECK(seen == page[5]);
    CHECK(std::memcmp(reinterpret_cast<void*>(region), page, kPageSize) == 0);
    // A hole at the source is ENOENT, returned, not thrown.
    CHECK(u.move(region + kPageSize, staging + kPageSize, kPageSize, false, false) == -ENOENT);
    unmap(region, 4 * kPageSize);
    unmap(staging, 4 * kPageSize);
  });

  run("after a fork MOVE refuses a resident page (EBUSY); unshare_pages makes it movable, bytes unchanged", [] {
    Uffd u(UffdMode::kAuto, 0);
    uint64_t region = map_anonymous(4 * kPageSize), staging = map_anonymous(4 * kPageSize);
    u.register_range(region, 4 * kPageSize, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    u.register_range(staging, 4 * kPageSize, UFFDIO_REGISTER_MODE_MISSING);
    alignas(4096) static uint8_t page[kPageSize];
    for (uint64_t i = 0; i < kPageSize; i++) page[i] = static_cast<uint8_t>(i * 13 + 1);
    CHECK(u.copy(region, page, kPageSize, false, false) == static_cast<int64_t>(kPageSize));
    CHECK(u.copy(region + kPageSize, page, kPageSize, true, false) ==
          static_cast<int64_t>(kPageSize));  // write-protected
    // The child lives on while the parent unshares: the page is copied for the parent.
    int go[2];
    CHECK(::pipe(go) == 0);
    pid_t child = ::fork();
    if (child == 0) {
      char c;
      ssize_t r = ::read(go[0], &c, 1);
      _exit(r == 1 && reinterpret_cast<volatile uint8_t*>(region)[7] == page[7] ? 0 : 3);
    }
    CHECK(child > 0);
    CHECK(u.move(staging, region, kPageSize, false, false) == -EBUSY);
    CHECK(unshare_pages(region, kPageSize) == static_cast<int64_t>(kPageSize));
    CHECK(u.move(staging, region, kPageSize, false, false) == static_cast<int64_t>(kPageSize));
    CHECK(std::memcmp(reinterpret_cast<void*>(staging), page, kPageSize) == 0);
    // Never waits on the userfaultfd: a write-protected page and a missing one give EFAULT.
    CHECK(unshare_pages(region + kPageSize, kPageSize) == -EFAULT);
    CHECK(unshare_pages(region, kPageSize) == -EFAULT);  // moved out: missing now
    CHECK(unshare_pages(region + 2 * kPageSize, kPageSize) == -EFAULT);
    CHECK(::write(go[1], "x", 1) == 1);  // the child still sees its copy
    int status = 0;
    CHECK(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ::close(go[0]);
    ::close(go[1]);
    unmap(region, 4 * kPageSize);
    unmap(staging, 4 * kPageSize);
  });

  run("wake_reader interrupts a blocking read", [] {
    Uffd u(UffdMode::kAuto, 0);
    Joined t([&] {
      usleep(20000);
      u.wake_reader();
    });
    UffdEvent ev[1];
    CHECK(u.read_events(ev, 1, 5000) == -1);
    t.join();
    CHECK(u.read_events(ev, 1, 0) == 0);  // the wake was consumed
    // The same for a read blocked in read(2) with no timeout (the doorbell).
    Joined t2([&] {
      usleep(20000);
      u.wake_reader();
    });
    CHECK(u.read_events(ev, 1, -1) == -1);
    t2.join();
    CHECK(u.read_events(ev, 1, 0) == 0);
  });

  run("user-mode-only: a syscall reading a missing page gets EFAULT", [] {
    Uffd u(UffdMode::kUserOnly, 0);
    CHECK(u.user_mode_only());
    uint64_t addr = map_anonymous(kPageSize);
    u.register_range(addr, kPageSize, UFFDIO_REGISTER_MODE_MISSING);
    int fds[2];
    CHECK(pipe(fds) == 0);
    ssize_t w = ::write(fds[1], reinterpret_cast<void*>(addr), 16);
    CHECK(w < 0 && errno == EFAULT);
    ::close(fds[0]);
    ::close(fds[1]);
    unmap(addr, kPageSize);
  });

  run("errors carry syscall and errno: unaligned register is EINVAL", [] {
    Uffd u(UffdMode::kAuto, 0);
    uint64_t addr = map_anonymous(2 * kPageSize);
    bool threw = false;
    try {
      u.register_range(addr + 1, kPageSize, UFFDIO_REGISTER_MODE_MISSING);
    } catch (const SysError& e) {
      threw = true;
      CHECK(e.err() == EINVAL);
      CHECK(e.syscall() == "ioctl(UFFDIO_REGISTER)");
      CHECK(std::string(e.what()).find("EINVAL") != std::string::npos);
    }
    CHECK(threw);
    unmap(addr, 2 * kPageSize);
  });

  run("deadman: a fault after the dispatcher is gone poisons the page (SIGBUS, no hang)", [] {
    pid_t pid = fork();
    if (pid == 0) {
      Uffd u(UffdMode::kAuto, 0);
      uint64_t addr = map_anonymous(kPageSize);
      u.register_range(addr, kPageSize, UFFDIO_REGISTER_MODE_MISSING);
      int devnull = ::open("/dev/null", O_WRONLY);
      dup2(devnull, 2);
      Deadman d(&u);
      d.start("test");
      alarm(10);  // a hang would end as SIGALRM, not SIGBUS
      volatile uint8_t x = reinterpret_cast<volatile uint8_t*>(addr)[0];
      (void)x;
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGBUS);
  });

  run("thread_cpu reads the CPU of a live thread", [] {
    set_affinity({0});
    CHECK(current_cpu() == 0);
    CHECK(thread_cpu(current_tid()) == 0);
  });

  run("decode_page: LZ4 objects, raw pages, corrupt and unknown objects", [] {
    CHECK(lz4::available());
    static uint8_t page[kPageSize], obj[kPageSize + 64];
    alignas(4096) static char stage[kPageSize];
    for (size_t i = 0; i < kPageSize; i++) page[i] = static_cast<uint8_t>((i / 7) ^ (i % 13));
    int n = lz4::compress(reinterpret_cast<const char*>(page), reinterpret_cast<char*>(obj + 1), kPageSize, kPageSize);
    CHECK(n > 0);
    obj[0] = 1;
    std::string err;
    const void* out = decode_page(obj, n + 1, stage, &err);
    CHECK(out == stage && std::memcmp(out, page, kPageSize) == 0);
    CHECK(decode_page(page, kPageSize, stage, &err) == page);    // raw
    CHECK(decode_page(obj, n / 2 + 1, stage, &err) == nullptr);  // truncated: not a whole page
    CHECK(err.find("corrupt") != std::string::npos);
    obj[0] = 9;
    CHECK(decode_page(obj, n + 1, stage, &err) == nullptr);
    CHECK(err.find("unknown codec") != std::string::npos);
    CHECK(decode_page(obj, 1, stage, &err) == nullptr);
  });

  return finish();
}
