// kernel_swapin - baseline: what the kernel's own swap path costs on the same
// page contents tmem is measured with.
//
// What it measures
//   A corpus of 4 KiB pages (--corpus FILE, or a deterministic generated mix:
//   JSON-like text, structured binary, 20% zero pages, some random pages) is
//   copied into a private anonymous mapping. The program turns on a swap
//   device of its own at a high priority, then for each round:
//     1. copies the corpus in (so every page is dirty and has no swap slot),
//     2. madvise(MADV_PAGEOUT) on the whole range, timed: the kernel pageout
//        baseline, reported per page actually swapped out,
//     3. reads /proc/self/pagemap (bit 62 "swapped") to count how many pages
//        really went out, and mincore() to see which of them still sit in
//        the swap cache (asynchronous swap file writes); those are written,
//        mapped back clean and paged out again until they are gone. Only
//        pages that are swapped and not in memory are measured,
//     4. touches (reads) every swapped-out page once - random order in round 1,
//        sequential order in round 2 - timing each touch with CLOCK_MONOTONIC
//        and checking with getrusage(RUSAGE_THREAD) that it was a major fault,
//     5. verifies the contents against the corpus.
//
//   --backend zram       a new zram device (hot_add), algorithm lz4 or the one
//                        asked with --algorithm (falls back to what the kernel
//                        has; prints which), swap header written here, swapon.
//                        The zram mm_stat after the pageout of round 1 gives
//                        the memory cost: bytes_per_page = delta mem_used_total
//                        / pages swapped out. Since Linux 6.12 zero pages are
//                        kept in the swap layer's zeromap and never reach zram,
//                        so also bytes_per_zram_page (/ pages zram stored) and
//                        bytes_per_nonsame_page (/ stored minus same-filled).
//                        zram's per-slot table (a few bytes per slot of the
//                        whole disksize) is not in mem_used_total.
//   --backend swapfile --dir DIR
//                        a swap file in DIR (written with zeros, swap header
//                        written here, swapon). Sequential swap-in here
//                        benefits from kernel swap readahead: look at majflt.
//
//   --steady-limit-pages N   (zram only) the steady state instead of the rounds
//                        above: a child process joins a memory cgroup of its
//                        own (v1 memory.limit_in_bytes under the memory
//                        controller's mount, or v2 memory.max), created under
//                        this process's memory cgroup, limited to what it had
//                        charged + N pages. In it the child
//                          fill:   writes the corpus into a fresh mapping page by
//                                  page (the kernel reclaims to zram as it goes),
//                                  timed: fill_mib_s,
//                          steady: touches every page once in random order,
//                                  each touch timed (a swap-in that makes the
//                                  kernel reclaim another page to fit),
//                        checks every page, and sends its figures to the
//                        parent through a pipe. The parent, outside the
//                        cgroup, owns the zram device and the cgroup: it
//                        removes both whatever happens to the child (killed
//                        by the OOM killer, a signal).
//
//   The rounds also time a sequential read-back: pages out, then each page
//   copied (memcpy of 4 KiB) front to back, wall time per page
//   (readback.us_per_page), and the same copy of the now resident pages
//   (readback.plain_us_per_page).
//
// How to read it
//   random.p50 is the kernel's swap-in cost of one page; tmem's fault path is
//   compared with it as a ratio. pageout_us_per_page is the kernel's cost to
//   compress-and-store (zram) or write (swapfile) one page. "majflt" per round
//   says how many of the measured touches were real major faults; with zram
//   every touch should be one.
//
// Safety
//   Needs root. The swap device is ALWAYS torn down (swapoff, zram reset,
//   hot_remove, swap file unlinked) on normal exit, error exit and on
//   SIGINT/SIGTERM/SIGHUP/SIGQUIT and fatal signals. If not root or swap/zram
//   is unavailable it prints why and exits with code 2.
//
// Output: a table, then one JSON line:
//   {"bench":"kernel_swapin","backend":"zram","algorithm":"lz4","pages":..,
//    "swapped_out":..,"pageout_us_per_page":..,"random":{...},
//    "sequential":{...},"mm_stat":{...},"bytes_per_page":..}

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "benchutil.h"

using namespace benchutil;

static const size_t kPage = 4096;

// ---------------------------------------------------------------------------
// Cleanup state. Everything the signal handler needs is precomputed into
// plain buffers so that it only calls async-signal-safe functions.
// ---------------------------------------------------------------------------
static volatile sig_atomic_t g_cleaning = 0;
static void* g_region = nullptr;
static size_t g_region_len = 0;
static char g_swap_path[PATH_MAX];  // device or file given to swapon
static volatile sig_atomic_t g_swapon = 0;
static int g_zram_id = -1;
static char g_zram_reset[128];  // /sys/block/zramN/reset
static char g_zram_id_str[32];  // "N" for hot_remove
static volatile sig_atomic_t g_devnode_made = 0;
static volatile sig_atomic_t g_swapfile_made = 0;
static char g_cg_dir[PATH_MAX];  // the steady-state memory cgroup
static volatile sig_atomic_t g_cg_made = 0;
static volatile pid_t g_child = 0;  // the steady-state child

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

static void say(const char* a, const char* b = "", const char* c = "") {
  ssize_t r = write(2, a, strlen(a));
  r = write(2, b, strlen(b));
  r = write(2, c, strlen(c));
  (void)r;
}

// Tears everything down; idempotent and async-signal-safe. swapoff is retried:
// it can fail transiently (EINTR, ENOMEM) while it brings back pages that
// other processes had swapped to our device meanwhile (e.g. a system-wide
// DAMON pageout scheme or memory-limited cgroups use any swap that exists).
static void cleanup() {
  if (g_cleaning) return;
  g_cleaning = 1;
  // The steady-state child first: it holds pages on our swap device.
  if (g_child > 0) {
    kill(g_child, SIGKILL);
    int st;
    while (waitpid(g_child, &st, 0) < 0 && errno == EINTR) {
    }
    g_child = 0;
  }
  if (g_cg_made) {
    for (int t = 0; t < 50 && rmdir(g_cg_dir) != 0 && errno == EBUSY; ++t) sleep_ms(20);
    g_cg_made = 0;
  }
  // Free our swapped pages first so swapoff has nothing of ours to bring back.
  if (g_region) {
    munmap(g_region, g_region_len);
    g_region = nullptr;
  }
  for (int t = 0; g_swapon && t < 100; ++t) {
    if (swapoff(g_swap_path) == 0 || errno == EINVAL) {  // EINVAL: not active any more
      g_swapon = 0;
      break;
    }
    if (t == 0) say("kernel_swapin: swapoff ", g_swap_path, " failed, retrying\n");
    sleep_ms(100);
  }
  if (g_swapon) say("kernel_swapin: WARNING: could not swapoff ", g_swap_path, "; run swapoff by hand\n");
  if (g_zram_id >= 0 && !g_swapon) {
    if (g_devnode_made) unlink(g_swap_path);
    for (int t = 0; t < 50; ++t) {
      int fd = open(g_zram_reset, O_WRONLY | O_CLOEXEC);
      if (fd < 0) break;
      ssize_t r = write(fd, "1", 1);
      close(fd);
      if (r == 1) break;
      sleep_ms(20);  // EBUSY while the last opener goes away
    }
    for (int t = 0; t < 50; ++t) {
      int fd = open("/sys/class/zram-control/hot_remove", O_WRONLY | O_CLOEXEC);
      if (fd < 0) break;
      ssize_t r = write(fd, g_zram_id_str, strlen(g_zram_id_str));
      close(fd);
      if (r > 0) break;
      sleep_ms(20);
    }
    g_zram_id = -1;
  }
  if (g_swapfile_made && !g_swapon) {
    unlink(g_swap_path);
    g_swapfile_made = 0;
  }
}

static void on_signal(int sig) {
  cleanup();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_cleanup() {
  atexit(cleanup);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigfillset(&sa.sa_mask);  // no nested signals while tearing down
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) sigaction(s, &sa, nullptr);
}

// Normal-path cleanup with signals blocked, so a late Ctrl-C cannot cut it.
static void cleanup_blocked() {
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  cleanup();
  sigprocmask(SIG_SETMASK, &old, nullptr);
}

[[noreturn]] static void unavailable(const std::string& why) {
  std::printf("kernel_swapin: unavailable: %s\n", why.c_str());
  std::fflush(stdout);
  cleanup_blocked();
  std::exit(2);
}

[[noreturn]] static void fail(const std::string& why) {
  std::fprintf(stderr, "kernel_swapin: error: %s\n", why.c_str());
  cleanup_blocked();
  std::exit(1);
}

static std::string errstr() { return std::string(strerror(errno)); }

// ---------------------------------------------------------------------------
// sysfs helpers
// ---------------------------------------------------------------------------
static bool read_file(const std::string& path, std::string* out) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return false;
  char buf[4096];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  *out = buf;
  return true;
}

static bool write_file(const std::string& path, const std::string& s) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t r = write(fd, s.data(), s.size());
  int saved = errno;
  close(fd);
  errno = saved;
  return r == ssize_t(s.size());
}

// ---------------------------------------------------------------------------
// Corpus
// ---------------------------------------------------------------------------
static void gen_json_page(char* p, Rng& rng) {
  static const char* names[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"};
  static const char* tags[] = {"\"node\"", "\"cache\"", "\"index\"", "\"tensor\"", "\"user\"", "\"hot\""};
  std::string s;
  s.reserve(kPage + 256);
  while (s.size() < kPage) {
    char rec[256];
    std::snprintf(rec, sizeof rec,
                  "{\"id\":%llu,\"name\":\"%s_%llu\",\"score\":%llu.%02llu,\"active\":%s,"
                  "\"tags\":[%s,%s],\"ts\":16%08llu},",
                  (unsigned long long)rng.below(1000000), names[rng.below(8)], (unsigned long long)rng.below(10000),
                  (unsigned long long)rng.below(1000), (unsigned long long)rng.below(100),
                  rng.below(2) ? "true" : "false", tags[rng.below(6)], tags[rng.below(6)],
                  (unsigned long long)rng.below(100000000));
    s += rec;
  }
  memcpy(p, s.data(), kPage);
}

static void gen_binary_page(char* p, Rng& rng) {
  // Heap-like words: tagged pointers sharing high bits, small integers
  // (Smi-like), doubles from a narrow range.
  uint64_t base = 0x00003a1200000000ull + (rng.below(16) << 24);
  uint64_t* w = reinterpret_cast<uint64_t*>(p);
  for (size_t i = 0; i < kPage / 8; ++i) {
    switch (rng.below(4)) {
      case 0: w[i] = base + (rng.below(1 << 20) << 3) + 1; break;
      case 1: w[i] = rng.below(4096) << 32; break;
      case 2: {
        double d = 100.0 + double(rng.below(10000)) / 8.0;
        memcpy(&w[i], &d, 8);
        break;
      }
      default: w[i] = (i > 0) ? w[i - 1] : 0; break;
    }
  }
}

static void gen_sparse_page(char* p, Rng& rng) {
  memset(p, 0, kPage);
  size_t n = 1 + rng.below(32);
  for (size_t i = 0; i < n; ++i) {
    uint64_t v = rng.next();
    memcpy(p + (rng.below(kPage / 8) * 8), &v, 8);
  }
}

// Mix per page: 20% zero, 35% JSON text, 25% binary, 10% sparse, 10% random.
static std::vector<char> gen_corpus(size_t pages, uint64_t seed, size_t counts[5]) {
  std::vector<char> c(pages * kPage, 0);
  Rng rng(seed);
  std::vector<int> kind(pages);
  for (size_t i = 0; i < pages; ++i) {
    size_t r = i * 100 / pages;  // exact proportions, shuffled below
    kind[i] = r < 20 ? 0 : r < 55 ? 1 : r < 80 ? 2 : r < 90 ? 3 : 4;
  }
  shuffle(kind, rng);
  for (size_t i = 0; i < pages; ++i) {
    char* p = c.data() + i * kPage;
    counts[kind[i]]++;
    switch (kind[i]) {
      case 0: break;
      case 1: gen_json_page(p, rng); break;
      case 2: gen_binary_page(p, rng); break;
      case 3: gen_sparse_page(p, rng); break;
      default:
        for (size_t k = 0; k < kPage; k += 8) {
          uint64_t v = rng.next();
          memcpy(p + k, &v, 8);
        }
    }
  }
  return c;
}

static std::vector<char> load_corpus(const std::string& path, size_t max_pages) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open corpus " + path + ": " + errstr());
  struct stat st;
  if (fstat(fd, &st) != 0) fail("fstat corpus: " + errstr());
  size_t pages = size_t(st.st_size) / kPage;
  if (max_pages && pages > max_pages) pages = max_pages;
  if (pages == 0) fail("corpus " + path + " holds less than one 4 KiB page");
  std::vector<char> c(pages * kPage);
  size_t done = 0;
  while (done < c.size()) {
    ssize_t r = read(fd, c.data() + done, c.size() - done);
    if (r <= 0) fail("read corpus: " + (r < 0 ? errstr() : std::string("short file")));
    done += size_t(r);
  }
  close(fd);
  return c;
}

// ---------------------------------------------------------------------------
// Swap setup
// ---------------------------------------------------------------------------

// Writes a version-1 swap header (what mkswap writes) covering dev_pages pages.
static void write_swap_header(int fd, size_t dev_pages, uint64_t seed) {
  std::vector<unsigned char> h(kPage, 0);
  uint32_t version = 1, last_page = uint32_t(dev_pages - 1), nr_bad = 0;
  memcpy(&h[1024], &version, 4);
  memcpy(&h[1028], &last_page, 4);
  memcpy(&h[1032], &nr_bad, 4);
  Rng rng(seed ^ 0x5157a9ull);
  for (int i = 0; i < 16; ++i) h[1036 + i] = (unsigned char)rng.next();  // uuid
  h[1036 + 6] = (h[1036 + 6] & 0x0f) | 0x40;
  h[1036 + 8] = (h[1036 + 8] & 0x3f) | 0x80;
  memcpy(&h[1052], "tmem-bench", 10);  // volume label
  memcpy(&h[kPage - 10], "SWAPSPACE2", 10);
  if (pwrite(fd, h.data(), kPage, 0) != ssize_t(kPage)) fail("write swap header: " + errstr());
  if (fsync(fd) != 0) fail("fsync swap header: " + errstr());
}

// Swap size: 4x the data so that the swap never looks more than half full
// (vm_swap_full() would make swap-in free the slots and dirty the pages).
static size_t swap_dev_pages(size_t data_pages) { return (4 * data_pages + 1024 + 255) / 256 * 256; }

static void do_swapon(int prio) {
  int flags = SWAP_FLAG_PREFER | ((prio << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK);
  if (swapon(g_swap_path, flags) != 0) unavailable(std::string("swapon(") + g_swap_path + ") failed: " + errstr());
  g_swapon = 1;
}

// Returns the algorithm in use.
static std::string setup_zram(size_t data_pages, const std::string& want_alg, int prio, uint64_t seed) {
  std::string s;
  if (!read_file("/sys/class/zram-control/hot_add", &s))
    unavailable("zram not available (/sys/class/zram-control/hot_add: " + errstr() + "; try modprobe zram)");
  int id = std::atoi(s.c_str());
  if (s.empty() || id < 0) unavailable("zram hot_add returned '" + s + "'");
  g_zram_id = id;
  std::snprintf(g_zram_id_str, sizeof g_zram_id_str, "%d", id);
  std::snprintf(g_zram_reset, sizeof g_zram_reset, "/sys/block/zram%d/reset", id);
  std::string sys = "/sys/block/zram" + std::to_string(id) + "/";

  // Algorithm: the one asked for, else the current default.
  std::string algs;
  read_file(sys + "comp_algorithm", &algs);
  if (!write_file(sys + "comp_algorithm", want_alg))
    std::printf("zram: algorithm '%s' not accepted (%s); available: %s", want_alg.c_str(), errstr().c_str(),
                algs.c_str());
  read_file(sys + "comp_algorithm", &algs);
  std::string alg;
  size_t lb = algs.find('['), rb = algs.find(']');
  if (lb != std::string::npos && rb != std::string::npos && rb > lb) alg = algs.substr(lb + 1, rb - lb - 1);
  else alg = "unknown";

  // Room for every data page, the header and some slack, whole MiB.
  size_t dev_pages = swap_dev_pages(data_pages);
  if (!write_file(sys + "disksize", std::to_string(dev_pages * kPage))) fail("zram disksize: " + errstr());

  std::snprintf(g_swap_path, sizeof g_swap_path, "/dev/zram%d", id);
  struct stat st;
  for (int i = 0; i < 200 && stat(g_swap_path, &st) != 0; ++i) usleep(10000);
  if (stat(g_swap_path, &st) != 0) {  // no devtmpfs/udev: make the node ourselves
    std::string dev;
    unsigned ma = 0, mi = 0;
    if (!read_file(sys + "dev", &dev) || std::sscanf(dev.c_str(), "%u:%u", &ma, &mi) != 2)
      fail("cannot find the zram device number");
    if (mknod(g_swap_path, S_IFBLK | 0600, makedev(ma, mi)) != 0) fail("mknod zram: " + errstr());
    g_devnode_made = 1;
  }
  int fd = open(g_swap_path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail(std::string("open ") + g_swap_path + ": " + errstr());
  write_swap_header(fd, dev_pages, seed);
  close(fd);
  do_swapon(prio);
  return alg;
}

static void setup_swapfile(const std::string& dir, size_t data_pages, int prio, uint64_t seed) {
  std::snprintf(g_swap_path, sizeof g_swap_path, "%s/tmem_kernel_swapin.%d.swap", dir.c_str(), int(getpid()));
  int fd = open(g_swap_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) unavailable(std::string("cannot create swap file ") + g_swap_path + ": " + errstr());
  g_swapfile_made = 1;
  // Written with zeros (no holes, no unwritten extents) so any filesystem
  // that supports swap files accepts it.
  size_t dev_pages = swap_dev_pages(data_pages);
  std::vector<char> zeros(1 << 20, 0);
  size_t left = dev_pages * kPage;
  while (left) {
    size_t n = left < zeros.size() ? left : zeros.size();
    ssize_t r = write(fd, zeros.data(), n);
    if (r <= 0) fail("write swap file: " + errstr());
    left -= size_t(r);
  }
  write_swap_header(fd, dev_pages, seed);
  close(fd);
  do_swapon(prio);
}

// zram mm_stat: orig_data_size compr_data_size mem_used_total mem_limit
// mem_used_max same_pages pages_compacted huge_pages huge_pages_since
struct MmStat {
  long long v[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  int n = 0;
};
static const char* kMmStatNames[9] = {"orig_data_size",  "compr_data_size", "mem_used_total",
                                      "mem_limit",       "mem_used_max",    "same_pages",
                                      "pages_compacted", "huge_pages",      "huge_pages_since"};

static MmStat read_mm_stat() {
  MmStat m;
  if (g_zram_id < 0) return m;
  std::string s;
  if (!read_file("/sys/block/zram" + std::to_string(g_zram_id) + "/mm_stat", &s)) return m;
  const char* p = s.c_str();
  char* end;
  while (m.n < 9) {
    long long x = std::strtoll(p, &end, 10);
    if (end == p) break;
    m.v[m.n++] = x;
    p = end;
  }
  return m;
}

// Pages in use on our swap device according to /proc/swaps, or -1.
static long swap_used_pages() {
  FILE* f = std::fopen("/proc/swaps", "re");
  if (!f) return -1;
  char line[512], name[PATH_MAX];
  long used = -1;
  while (std::fgets(line, sizeof line, f)) {
    char type[32];
    long size, u;
    if (std::sscanf(line, "%4095s %31s %ld %ld", name, type, &size, &u) == 4 && strcmp(name, g_swap_path) == 0)
      used = u / long(kPage / 1024);
  }
  std::fclose(f);
  return used;
}

// ---------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------
static long thread_majflt() {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_majflt;
}

// Reads pagemap for the region; returns the number of swapped-out pages and
// fills swapped[i].
static size_t pagemap_swapped(int pm, const char* region, size_t pages, std::vector<char>* swapped) {
  std::vector<uint64_t> e(pages);
  off_t off = off_t(uintptr_t(region) / kPage * 8);
  size_t want = pages * 8, got = 0;
  while (got < want) {
    ssize_t r = pread(pm, reinterpret_cast<char*>(e.data()) + got, want - got, off + off_t(got));
    if (r <= 0) fail("read /proc/self/pagemap: " + errstr());
    got += size_t(r);
  }
  size_t n = 0;
  swapped->assign(pages, 0);
  for (size_t i = 0; i < pages; ++i)
    if ((e[i] >> 62) & 1) {
      (*swapped)[i] = 1;
      ++n;
    }
  return n;
}

struct Round {
  std::string name;
  size_t swapped = 0;        // after the first MADV_PAGEOUT
  size_t swapped_final = 0;  // swapped out and not in the swap cache, measured
  int settle_passes = 0;     // extra pageout passes to get there
  long foreign = 0;          // pages of other processes on our swap device
  double pageout_us_per_page = 0;
  Summary lat;        // all measured touches
  Summary lat_major;  // only touches that were major faults
  long majflt = 0;
  size_t bad = 0;
  double readback_us_per_page = 0;  // readback round: sequential 4 KiB copies of swapped-out pages
  double plain_us_per_page = 0;     // the same copies once the pages are resident
};

static Round run_round(const char* name, char* region, const std::vector<char>& corpus, size_t pages, bool random_order,
                       Rng& rng, int pm, MmStat* before, MmStat* after, bool readback = false) {
  Round R;
  R.name = name;
  size_t len = pages * kPage;
  memcpy(region, corpus.data(), len);
  if (before) *before = read_mm_stat();

  uint64_t t0 = now_ns();
  if (madvise(region, len, MADV_PAGEOUT) != 0) fail(std::string("madvise(MADV_PAGEOUT): ") + errstr());
  uint64_t t1 = now_ns();
  std::vector<char> swapped;
  R.swapped = pagemap_swapped(pm, region, pages, &swapped);
  R.pageout_us_per_page = R.swapped ? double(t1 - t0) / 1e3 / double(R.swapped) : 0;
  // Make every page really leave memory. Pages skipped by the first pass
  // (e.g. still in a per-CPU LRU batch) get another MADV_PAGEOUT. With a
  // swap file the write is asynchronous: the pages stay in the swap cache
  // (mincore says resident) until reclaimed. Once their write is done they
  // are clean, so: map them back with a read (a minor fault, no new write),
  // and MADV_PAGEOUT again, which now drops the clean copies at once.
  // zram writes synchronously and frees the pages in the first pass.
  std::vector<unsigned char> inmem(pages);
  auto count_out = [&]() {
    pagemap_swapped(pm, region, pages, &swapped);
    if (mincore(region, len, inmem.data()) != 0) fail(std::string("mincore: ") + errstr());
    size_t n = 0;
    for (size_t i = 0; i < pages; ++i) n += (swapped[i] && !(inmem[i] & 1));
    return n;
  };
  R.swapped_final = count_out();
  R.settle_passes = 0;
  for (uint64_t deadline = now_ns() + 5000000000ull; R.swapped_final < pages && now_ns() < deadline;) {
    ++R.settle_passes;
    unsigned sink = 0;
    for (size_t i = 0; i < pages; ++i)
      if (swapped[i] && (inmem[i] & 1)) sink += *reinterpret_cast<volatile unsigned char*>(region + i * kPage);
    (void)sink;
    madvise(region, len, MADV_PAGEOUT);
    size_t n = count_out();
    if (n == R.swapped_final) usleep(20000);  // writes still in flight
    R.swapped_final = n;
  }
  if (after) *after = read_mm_stat();
  long used = swap_used_pages();
  long ours = 0;
  for (size_t i = 0; i < pages; ++i) ours += swapped[i];  // incl. pages still in the swap cache
  R.foreign = used < 0 ? 0 : used - ours;

  if (readback) {
    // Front to back, every measured page copied whole; wall time over the loop.
    static char scratch[kPage];
    unsigned sink = 0;
    size_t n = 0;
    uint64_t a = now_ns();
    for (size_t i = 0; i < pages; ++i) {
      if (!swapped[i] || (inmem[i] & 1)) continue;
      memcpy(scratch, region + i * kPage, kPage);
      asm volatile("" ::: "memory");
      sink += static_cast<unsigned char>(scratch[1]);
      ++n;
    }
    uint64_t b = now_ns();
    R.readback_us_per_page = n ? double(b - a) / 1e3 / double(n) : 0;
    a = now_ns();
    for (size_t i = 0; i < pages; ++i) {
      if (!swapped[i] || (inmem[i] & 1)) continue;
      memcpy(scratch, region + i * kPage, kPage);
      asm volatile("" ::: "memory");
      sink += static_cast<unsigned char>(scratch[1]);
    }
    b = now_ns();
    R.plain_us_per_page = n ? double(b - a) / 1e3 / double(n) : 0;
    for (size_t i = 0; i < pages; ++i)
      if (memcmp(region + i * kPage, corpus.data() + i * kPage, kPage) != 0) ++R.bad;
    if (sink == 0xdeadbeef) std::printf(" ");
    R.lat.n = n;
    return R;
  }
  std::vector<size_t> order = identity_order(pages);
  if (random_order) shuffle(order, rng);
  std::vector<uint64_t> lat, lat_major;
  lat.reserve(pages);
  lat_major.reserve(pages);
  unsigned sink = 0;
  long maj_total0 = thread_majflt();
  for (size_t i : order) {
    if (!swapped[i] || (inmem[i] & 1)) continue;  // not a valid measure: page still in memory
    volatile unsigned char* p = reinterpret_cast<volatile unsigned char*>(region + i * kPage);
    long m0 = thread_majflt();
    uint64_t a = now_ns();
    asm volatile("" ::: "memory");
    sink += *p;
    asm volatile("" ::: "memory");
    uint64_t b = now_ns();
    long m1 = thread_majflt();
    lat.push_back(b - a);
    if (m1 > m0) lat_major.push_back(b - a);
  }
  R.majflt = thread_majflt() - maj_total0;
  for (size_t i = 0; i < pages; ++i)
    if (memcmp(region + i * kPage, corpus.data() + i * kPage, kPage) != 0) ++R.bad;
  if (sink == 0xdeadbeef) std::printf(" ");
  R.lat = summarize(lat);
  R.lat_major = summarize(lat_major);
  return R;
}

static std::string round_json(const Round& R) {
  std::string j = summary_json(R.lat);
  j.pop_back();
  char buf[256];
  std::snprintf(buf, sizeof buf,
                ",\"majflt\":%ld,\"major_p50\":%.2f,\"major_p99\":%.2f,\"swapped_out\":%zu,"
                "\"pageout_us_per_page\":%.2f,\"foreign_swap_pages\":%ld}",
                R.majflt, R.lat_major.p50, R.lat_major.p99, R.swapped, R.pageout_us_per_page, R.foreign);
  return j + buf;
}

// ---------------------------------------------------------------------------
// Steady state in a memory cgroup (--steady-limit-pages)
// ---------------------------------------------------------------------------

// This process's memory cgroup: sets *dir (a directory of the cgroup file
// system) and *v2; false with *why when there is none to use.
static bool own_memcg(std::string* dir, bool* v2, std::string* why) {
  std::string cg;
  if (!read_file("/proc/self/cgroup", &cg)) {
    *why = "cannot read /proc/self/cgroup: " + errstr();
    return false;
  }
  std::string v2path;
  size_t at = 0;
  while (at < cg.size()) {
    size_t nl = cg.find('\n', at);
    std::string line = cg.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    at = nl == std::string::npos ? cg.size() : nl + 1;
    size_t c1 = line.find(':'), c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::string ctrls = "," + line.substr(c1 + 1, c2 - c1 - 1) + ",", path = line.substr(c2 + 1);
    if (ctrls.find(",memory,") != std::string::npos) {
      std::string d = "/sys/fs/cgroup/memory" + path;
      struct stat st;
      if (stat((d + "/memory.limit_in_bytes").c_str(), &st) == 0) {
        *dir = d;
        *v2 = false;
        return true;
      }
    }
    if (ctrls == ",," && line.compare(0, 1, "0") == 0) v2path = path;
  }
  for (const char* mnt : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    std::string d = std::string(mnt) + v2path, ctl;
    if (!v2path.empty() && read_file(d + "/cgroup.controllers", &ctl) &&
        (" " + ctl).find(" memory") != std::string::npos) {
      *dir = d;
      *v2 = true;
      return true;
    }
  }
  *why = "no memory cgroup controller (neither v1 under /sys/fs/cgroup/memory nor v2 with the memory controller)";
  return false;
}

static long long read_ll(const std::string& path) {
  std::string s;
  if (!read_file(path, &s)) return -1;
  return std::strtoll(s.c_str(), nullptr, 10);
}

struct Steady {
  double fill_mib_s = 0;
  Summary lat;
  Summary lat_major;
  long majflt = 0, fill_majflt = 0;
  size_t bad = 0;
  long long limit = 0, base = 0, max_usage = 0;
  long swapped_after_fill = 0;
};

// The child: joins the cgroup, fills, touches, verifies; writes a Steady to `out`.
[[noreturn]] static void steady_child(int out, const std::string& cg, bool v2, const std::vector<char>& corpus,
                                      size_t pages, size_t limit_pages, uint64_t seed) {
  g_cleaning = 1;  // the parent owns every teardown
  Steady S;
  size_t len = pages * kPage;
  // Everything the measurement needs is allocated and touched before joining,
  // so that only the mapping below (and the kernel's own structures) is charged.
  std::vector<uint64_t> lat(pages, 0), lat_major(pages, 0);
  lat_major.clear();
  Rng rng(seed + 7);
  std::vector<size_t> order = identity_order(pages);
  shuffle(order, rng);
  auto die = [&](const std::string& why) {
    std::string m = "E" + why;
    ssize_t r = write(out, m.data(), m.size());
    (void)r;
    _exit(1);
  };
  if (!write_file(cg + "/cgroup.procs", "0")) die("cannot join the cgroup " + cg + ": " + errstr());
  char* region = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (region == MAP_FAILED) die("mmap: " + errstr());
  madvise(region, len, MADV_NOHUGEPAGE);
  std::string usage = cg + (v2 ? "/memory.current" : "/memory.usage_in_bytes");
  std::string limit = cg + (v2 ? "/memory.max" : "/memory.limit_in_bytes");
  S.base = read_ll(usage);
  if (S.base < 0) die("cannot read " + usage + ": " + errstr());
  S.limit = S.base + (long long)(limit_pages * kPage);
  if (!write_file(limit, std::to_string(S.limit))) die("cannot write " + limit + ": " + errstr());
  long m0 = thread_majflt();
  uint64_t a = now_ns();
  for (size_t i = 0; i < pages; ++i) memcpy(region + i * kPage, corpus.data() + i * kPage, kPage);
  uint64_t b = now_ns();
  S.fill_majflt = thread_majflt() - m0;
  S.fill_mib_s = double(len) / double(1 << 20) / (double(b - a) / 1e9);
  S.swapped_after_fill = swap_used_pages();
  unsigned sink = 0;
  long maj0 = thread_majflt();
  for (size_t k = 0; k < pages; ++k) {
    volatile unsigned char* p = reinterpret_cast<volatile unsigned char*>(region + order[k] * kPage);
    long f0 = thread_majflt();
    uint64_t t0 = now_ns();
    asm volatile("" ::: "memory");
    sink += *p;
    asm volatile("" ::: "memory");
    uint64_t t1 = now_ns();
    long f1 = thread_majflt();
    lat[k] = t1 - t0;
    if (f1 > f0) lat_major.push_back(t1 - t0);
  }
  S.majflt = thread_majflt() - maj0;
  for (size_t i = 0; i < pages; ++i)
    if (memcmp(region + i * kPage, corpus.data() + i * kPage, kPage) != 0) ++S.bad;
  if (sink == 0xdeadbeef) std::printf(" ");
  S.max_usage = read_ll(cg + (v2 ? "/memory.peak" : "/memory.max_usage_in_bytes"));
  S.lat = summarize(lat);
  S.lat_major = summarize(lat_major);
  std::string m = "S";
  m.append(reinterpret_cast<const char*>(&S), sizeof S);
  size_t done = 0;
  while (done < m.size()) {
    ssize_t r = write(out, m.data() + done, m.size() - done);
    if (r <= 0) _exit(1);
    done += size_t(r);
  }
  _exit(0);
}

// Parent side: cgroup made, child run, cgroup removed. Returns the JSON line's fields.
static std::string run_steady(const std::vector<char>& corpus, size_t pages, size_t limit_pages, uint64_t seed,
                              Steady* out) {
  std::string parent, why;
  bool v2 = false;
  if (!own_memcg(&parent, &v2, &why)) unavailable(why);
  std::snprintf(g_cg_dir, sizeof g_cg_dir, "%s/tmem-bench-%d", parent.c_str(), int(getpid()));
  if (v2) {
    std::string sub;
    read_file(parent + "/cgroup.subtree_control", &sub);
    if ((" " + sub).find(" memory") == std::string::npos && !write_file(parent + "/cgroup.subtree_control", "+memory"))
      unavailable("cannot enable the memory controller for children of " + parent + ": " + errstr());
  }
  if (mkdir(g_cg_dir, 0755) != 0)
    unavailable(std::string("cannot create the memory cgroup ") + g_cg_dir + ": " + errstr());
  g_cg_made = 1;
  if (!v2) write_file(std::string(g_cg_dir) + "/memory.swappiness", "60");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) fail("pipe: " + errstr());
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) fail("fork: " + errstr());
  if (pid == 0) {
    close(fds[0]);
    steady_child(fds[1], g_cg_dir, v2, corpus, pages, limit_pages, seed);
  }
  g_child = pid;
  close(fds[1]);
  std::string msg;
  char buf[4096];
  for (;;) {
    ssize_t r = read(fds[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    msg.append(buf, size_t(r));
  }
  close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  for (int t = 0; t < 50 && rmdir(g_cg_dir) != 0 && errno == EBUSY; ++t) sleep_ms(20);
  g_cg_made = 0;
  if (msg.size() > 1 && msg[0] == 'E') fail("steady-state child: " + msg.substr(1));
  if (msg.size() != 1 + sizeof(Steady) || msg[0] != 'S') {
    if (WIFSIGNALED(st))
      fail(std::string("steady-state child killed by signal ") + std::to_string(WTERMSIG(st)) +
           (WTERMSIG(st) == SIGKILL ? " (the OOM killer: the cgroup limit is too small for the process)" : ""));
    fail("steady-state child exited with status " + std::to_string(WEXITSTATUS(st)) + " and no result");
  }
  memcpy(out, msg.data() + 1, sizeof(Steady));
  return v2 ? "v2 memory.max" : "v1 memory.limit_in_bytes";
}

static void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --backend zram|swapfile [--dir DIR] [--corpus FILE] [--pages N]\n"
               "          [--algorithm ALG] [--cpu N] [--no-pin] [--priority P] [--seed S]\n"
               "  --backend zram      new zram device, lz4 by default (root)\n"
               "  --backend swapfile  swap file in --dir DIR (root; filesystem must support swap files)\n"
               "  --corpus FILE       4 KiB pages to use (default: generated mix, --pages 20000)\n"
               "  --steady-limit-pages N  zram only: fill + random touches in a memory cgroup of N pages\n",
               argv0);
}

int main(int argc, char** argv) {
  std::string backend = "zram", dir, corpus_path, alg_want = "lz4";
  size_t pages = 0, steady_limit = 0;
  int cpu = -2, prio = 32000;
  bool pin = true;
  uint64_t seed = 4242;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char* what) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", what);
        usage(argv[0]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--backend") backend = next("--backend");
    else if (a == "--dir") dir = next("--dir");
    else if (a == "--corpus") corpus_path = next("--corpus");
    else if (a == "--pages") pages = std::strtoull(next("--pages").c_str(), nullptr, 0);
    else if (a == "--algorithm") alg_want = next("--algorithm");
    else if (a == "--cpu") cpu = std::atoi(next("--cpu").c_str());
    else if (a == "--no-pin") pin = false;
    else if (a == "--steady-limit-pages")
      steady_limit = std::strtoull(next("--steady-limit-pages").c_str(), nullptr, 0);
    else if (a == "--priority") prio = std::atoi(next("--priority").c_str());
    else if (a == "--seed") seed = std::strtoull(next("--seed").c_str(), nullptr, 0);
    else if (a == "-h" || a == "--help") {
      usage(argv[0]);
      return 0;
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      usage(argv[0]);
      return 2;
    }
  }
  if (backend != "zram" && backend != "swapfile") {
    usage(argv[0]);
    return 2;
  }
  if (backend == "swapfile" && dir.empty()) {
    std::fprintf(stderr, "--backend swapfile needs --dir DIR\n");
    return 2;
  }
  if (steady_limit && backend != "zram") {
    std::fprintf(stderr, "--steady-limit-pages needs --backend zram\n");
    return 2;
  }
  if (prio < 0 || prio > 32767) {
    std::fprintf(stderr, "--priority must be 0..32767\n");
    return 2;
  }
  if (geteuid() != 0) unavailable("needs root (swapon, zram control)");

  install_cleanup();
  setvbuf(stdout, nullptr, _IOLBF, 0);

  // Corpus.
  std::vector<char> corpus;
  std::string corpus_desc;
  if (!corpus_path.empty()) {
    corpus = load_corpus(corpus_path, pages);
    corpus_desc = "file " + corpus_path;
  } else {
    size_t counts[5] = {0, 0, 0, 0, 0};
    corpus = gen_corpus(pages ? pages : 20000, seed, counts);
    char buf[200];
    std::snprintf(buf, sizeof buf, "generated: %zu zero, %zu json, %zu binary, %zu sparse, %zu random", counts[0],
                  counts[1], counts[2], counts[3], counts[4]);
    corpus_desc = buf;
  }
  pages = corpus.size() / kPage;

  if (pin) {
    if (cpu == -2) cpu = nth_allowed_cpu(0);
    if (!pin_to_cpu(cpu)) fail("cannot pin to cpu " + std::to_string(cpu) + ": " + errstr());
  } else {
    cpu = -1;
  }

  std::string alg = "none";
  if (backend == "zram") alg = setup_zram(pages, alg_want, prio, seed);
  else setup_swapfile(dir, pages, prio, seed);

  std::printf("kernel_swapin: backend %s%s%s, swap %s (priority %d), %zu pages (%s), faulter cpu %s\n", backend.c_str(),
              backend == "zram" ? ", algorithm " : "", backend == "zram" ? alg.c_str() : "", g_swap_path, prio, pages,
              corpus_desc.c_str(), pin ? std::to_string(cpu).c_str() : "not pinned");

  {
    // Other swap devices would take part of the reclaim: say so (ours has the top priority).
    std::string sw;
    read_file("/proc/swaps", &sw);
    long others = -1;
    for (char ch : sw) others += ch == '\n';
    if (others > 1) std::printf("kernel_swapin: note: %ld other swap device(s) active besides ours\n", others - 1);
  }

  if (steady_limit) {
    Steady S;
    std::string how = run_steady(corpus, pages, steady_limit, seed, &S);
    std::printf("\nsteady state in a memory cgroup (%s = %lld bytes: %zu pages + %lld charged before):\n", how.c_str(),
                S.limit, steady_limit, S.base);
    std::printf("  fill: %.1f MiB/s (%ld major faults), %ld pages on the swap device after it\n", S.fill_mib_s,
                S.fill_majflt, S.swapped_after_fill);
    print_summary("random touches", S.lat);
    print_summary("major faults only", S.lat_major);
    if (S.bad) std::printf("WARNING: %zu pages with wrong contents\n", S.bad);
    std::string j = summary_json(S.lat);
    j.pop_back();
    char buf[640];
    std::snprintf(buf, sizeof buf,
                  "{\"bench\":\"kernel_swapin\",\"backend\":\"zram\",\"mode\":\"steady\",\"algorithm\":\"%s\","
                  "\"pages\":%zu,\"limit_pages\":%zu,\"cgroup\":\"%s\",\"limit_bytes\":%lld,\"base_bytes\":%lld,"
                  "\"max_usage_bytes\":%lld,\"fill_mib_s\":%.2f,\"fill_majflt\":%ld,\"swapped_after_fill\":%ld,"
                  "\"bad\":%zu,\"steady\":",
                  alg.c_str(), pages, steady_limit, how.c_str(), S.limit, S.base, S.max_usage, S.fill_mib_s,
                  S.fill_majflt, S.swapped_after_fill, S.bad);
    char tail[128];
    std::snprintf(tail, sizeof tail, ",\"majflt\":%ld,\"major_p50\":%.2f,\"major_p99\":%.2f}}", S.majflt,
                  S.lat_major.p50, S.lat_major.p99);
    cleanup_blocked();
    std::printf("%s%s%s\n", buf, j.c_str(), tail);
    return S.bad == 0 ? 0 : 1;
  }

  size_t len = pages * kPage;
  char* region = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (region == MAP_FAILED) fail("mmap: " + errstr());
  g_region = region;
  g_region_len = len;
  madvise(region, len, MADV_NOHUGEPAGE);  // 4 KiB pages in and out, no mTHP swap-in

  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pm < 0) fail("open /proc/self/pagemap: " + errstr());

  Rng rng(seed + 7);
  MmStat before, after;
  // Warm-up: one small pageout/swap-in cycle, not reported.
  {
    size_t wp = pages < 512 ? pages : 512;
    memcpy(region, corpus.data(), wp * kPage);
    madvise(region, wp * kPage, MADV_PAGEOUT);
    unsigned sink = 0;
    for (size_t i = 0; i < wp; ++i) sink += *reinterpret_cast<volatile unsigned char*>(region + i * kPage);
    (void)sink;
  }
  Round rnd = run_round("random", region, corpus, pages, true, rng, pm, &before, &after);
  Round seq = run_round("sequential", region, corpus, pages, false, rng, pm, nullptr, nullptr);
  Round rb = run_round("readback", region, corpus, pages, false, rng, pm, nullptr, nullptr, true);
  close(pm);

  std::printf("\n%-12s %9s %9s %7s %9s %8s %5s %8s\n", "round", "swapped", "measured", "passes", "pageout", "majflt",
              "bad", "foreign");
  for (const Round* R : {&rnd, &seq})
    std::printf("%-12s %9zu %9zu %7d %9.2f %8ld %5zu %8ld\n", R->name.c_str(), R->swapped, R->swapped_final,
                R->settle_passes, R->pageout_us_per_page, R->majflt, R->bad, R->foreign);
  std::printf(
      "swapped: pages out after the first, timed MADV_PAGEOUT; pageout: its time in us per such page;\n"
      "measured: pages out of memory (pagemap swapped, not in swap cache) after `passes` extra passes;\n"
      "majflt: touches that were major faults (RUSAGE_THREAD);\n"
      "foreign: pages of other processes on our swap device (system reclaim, DAMON, cgroups)\n");
  std::printf("\nswap-in latency of swapped-out pages (us):\n");
  print_summary("random", rnd.lat);
  print_summary("random, major only", rnd.lat_major);
  print_summary("sequential", seq.lat);
  print_summary("sequential, major", seq.lat_major);
  std::printf(
      "sequential read-back (4 KiB copies, front to back) of %zu swapped-out pages: %.2f us/page; "
      "of the same pages resident: %.3f us/page\n",
      rb.lat.n, rb.readback_us_per_page, rb.plain_us_per_page);

  // Memory cost. Since Linux 6.12 the swap layer keeps zero-filled pages in
  // its own bitmap (zeromap): they never reach zram and cost ~1 bit. So
  // bytes_per_page divides the zram memory by every page swapped out;
  // bytes_per_zram_page by the pages zram actually stored; and
  // bytes_per_nonsame_page excludes zram's same-filled pages too.
  double bpp = 0, bpp_zram = 0, bpp_nonsame = 0;
  long long dstored = 0, dsame = 0, dmem = 0;
  std::string mm_json;
  if (backend == "zram") {
    dstored = (after.v[0] - before.v[0]) / (long long)kPage;
    dsame = after.v[5] - before.v[5];
    dmem = after.v[2] - before.v[2];
    if (rnd.swapped > 0) bpp = double(dmem) / double(rnd.swapped);
    if (dstored > 0) bpp_zram = double(dmem) / double(dstored);
    if (dstored - dsame > 0) bpp_nonsame = double(dmem) / double(dstored - dsame);
    std::printf("\nzram mm_stat after pageout of round 1:\n");
    mm_json = "{";
    for (int i = 0; i < after.n; ++i) {
      std::printf("  %-18s %lld\n", kMmStatNames[i], after.v[i]);
      mm_json += std::string(i ? "," : "") + "\"" + kMmStatNames[i] + "\":" + std::to_string(after.v[i]);
    }
    mm_json += "}";
    std::printf(
        "  round 1: %zu pages swapped out, %lld stored in zram (%lld same-filled; the rest of the\n"
        "  swapped pages were zero pages kept in the swap zeromap), zram memory %lld bytes\n",
        rnd.swapped, dstored, dsame, dmem);
    std::printf(
        "  bytes per swapped page %.1f, per zram-stored page %.1f, per non-same page %.1f, "
        "compression ratio %.2f\n",
        bpp, bpp_zram, bpp_nonsame, after.v[1] ? double(after.v[0]) / double(after.v[1]) : 0.0);
  }
  bool ok = rnd.bad == 0 && seq.bad == 0 && rb.bad == 0 && rnd.swapped > 0;
  if (!ok)
    std::printf("WARNING: %zu/%zu pages with wrong contents, %zu pages swapped out\n", rnd.bad, seq.bad, rnd.swapped);

  char head[512];
  std::snprintf(head, sizeof head,
                "{\"bench\":\"kernel_swapin\",\"backend\":\"%s\",\"algorithm\":\"%s\",\"pages\":%zu,"
                "\"swapped_out\":%zu,\"pageout_us_per_page\":%.2f,\"pinned\":%s,",
                backend.c_str(), alg.c_str(), pages, rnd.swapped,
                (rnd.pageout_us_per_page + seq.pageout_us_per_page) / 2, pin ? "true" : "false");
  std::string json = head;
  json += "\"random\":" + round_json(rnd) + ",\"sequential\":" + round_json(seq);
  {
    char buf[200];
    std::snprintf(buf, sizeof buf, ",\"readback\":{\"pages\":%zu,\"us_per_page\":%.3f,\"plain_us_per_page\":%.4f}",
                  rb.lat.n, rb.readback_us_per_page, rb.plain_us_per_page);
    json += buf;
  }
  if (backend == "zram") {
    char tail[256];
    std::snprintf(tail, sizeof tail,
                  ",\"zram_pages_stored\":%lld,\"bytes_per_page\":%.1f,\"bytes_per_zram_page\":%.1f,"
                  "\"bytes_per_nonsame_page\":%.1f",
                  dstored, bpp, bpp_zram, bpp_nonsame);
    json += ",\"mm_stat\":" + mm_json + tail;
  }
  json += "}";

  cleanup_blocked();
  std::printf("%s\n", json.c_str());
  return ok ? 0 : 1;
}
