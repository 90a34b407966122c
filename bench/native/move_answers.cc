// move_answers: does UFFDIO_MOVE's answer match what it did to the page tables?
//
// tmem's eviction moves resident pages into staging slots with UFFDIO_MOVE and trusts the
// answer to know where each page is. This probe fills a userfaultfd-registered region, lets it
// go cold (so that the host's reclaim, e.g. DAMON pageout, looks at it), then moves pages one
// at a time into a small slot area and back, checking each answer against mincore(2) of both
// addresses, and at the end every page's first word. It prints every answer that the page
// tables contradict, then a JSON line.
//
//   move_answers [--pages N (262144)] [--cold S (30)] [--seconds S (90)]
//
// On this project's CI machine kind (kernel 6.18, DAMON pageout running) it found an EEXIST
// answered for a page that had moved (gone from src, mapped at dst, its bytes intact) about
// once in 10^7 moves: lib/dispatcher/staging.ts movePage() checks error answers for this reason.
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <vector>

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
  __u64 dst;
  __u64 src;
  __u64 len;
  __u64 mode;
  __s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kSlots = 64;

bool mapped(const char* a) {
  unsigned char v = 0;
  if (mincore(const_cast<char*>(a), kPage, &v) < 0) {
    perror("mincore");
    exit(1);
  }
  return (v & 1) != 0;
}

int move(int uffd, const char* dst, const char* src, int64_t* moved) {
  struct uffdio_move m = {};
  m.dst = reinterpret_cast<uint64_t>(dst);
  m.src = reinterpret_cast<uint64_t>(src);
  m.len = kPage;
  int rc = ioctl(uffd, UFFDIO_MOVE, &m);
  *moved = m.move;
  return rc == 0 ? 0 : errno;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t pages = 262144;
  int cold = 30, seconds = 90;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--pages")) pages = strtoull(argv[i + 1], nullptr, 0);
    else if (!strcmp(argv[i], "--cold")) cold = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atoi(argv[i + 1]);
  }
  int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (uffd < 0) {
    perror("userfaultfd");
    return 1;
  }
  struct uffdio_api api = {};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_MOVE;
  if (ioctl(uffd, UFFDIO_API, &api) < 0) {
    perror("UFFDIO_API (MOVE)");
    return 1;
  }
  auto map = [](uint64_t len) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      perror("mmap");
      exit(1);
    }
    return static_cast<char*>(p);
  };
  char* region = map(pages * kPage);
  char* slots = map(kSlots * kPage);
  for (char* base : {region, slots}) {
    struct uffdio_register reg = {};
    reg.range.start = reinterpret_cast<uint64_t>(base);
    reg.range.len = base == region ? pages * kPage : kSlots * kPage;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
      perror("UFFDIO_REGISTER");
      return 1;
    }
  }
  std::vector<char> buf(kPage);
  for (uint64_t i = 0; i < pages; i++) {
    memset(buf.data(), static_cast<int>(i * 7 + 1), kPage);
    memcpy(buf.data(), &i, sizeof i);
    struct uffdio_copy c = {};
    c.dst = reinterpret_cast<uint64_t>(region + i * kPage);
    c.src = reinterpret_cast<uint64_t>(buf.data());
    c.len = kPage;
    if (ioctl(uffd, UFFDIO_COPY, &c) < 0) {
      perror("UFFDIO_COPY");
      return 1;
    }
  }
  fprintf(stderr, "move_answers: %llu pages filled, cold for %d s, then %d s of moves\n",
          static_cast<unsigned long long>(pages), cold, seconds);
  sleep(static_cast<unsigned>(cold));

  std::map<int, uint64_t> answers;  // errno (0: success) -> count
  uint64_t moves = 0, contradicted = 0, lost = 0;
  time_t end = time(nullptr) + seconds;
  for (uint64_t i = 0; time(nullptr) < end; i += 7919) {
    char* src = region + (i % pages) * kPage;
    char* dst = slots + (i % kSlots) * kPage;
    int64_t moved = 0;
    int err = move(uffd, dst, src, &moved);
    moves++;
    answers[err]++;
    bool at_src = mapped(src), at_dst = mapped(dst);
    bool went = !at_src && at_dst;
    if ((err == 0) != went) {
      contradicted++;
      fprintf(stderr, "move_answers: answer %s (move %lld) but src %s, dst %s\n", err ? strerror(err) : "success",
              static_cast<long long>(moved), at_src ? "mapped" : "empty", at_dst ? "mapped" : "empty");
    }
    if (at_dst) {
      int back = move(uffd, src, dst, &moved);
      if (back != 0 && !(mapped(src) && !mapped(dst))) {
        fprintf(stderr, "move_answers: moving back answered %s; the page stays in its slot\n", strerror(back));
        lost++;
      }
    }
  }
  uint64_t wrong = 0;
  for (uint64_t i = 0; i < pages; i++) {
    char* p = region + i * kPage;
    if (!mapped(p)) continue;  // still in a slot (counted in lost): a read would fault for ever
    uint64_t w;
    memcpy(&w, p, sizeof w);
    if (w != i) wrong++;
  }
  printf("{\"bench\":\"move_answers\",\"moves\":%llu,\"contradicted\":%llu,\"lost\":%llu,\"wrong\":%llu,\"answers\":{",
         static_cast<unsigned long long>(moves), static_cast<unsigned long long>(contradicted),
         static_cast<unsigned long long>(lost), static_cast<unsigned long long>(wrong));
  bool first = true;
  for (auto& [e, n] : answers) {
    printf("%s\"%s\":%llu", first ? "" : ",", e ? strerrorname_np(e) : "ok", static_cast<unsigned long long>(n));
    first = false;
  }
  printf("}}\n");
  return 0;
}
