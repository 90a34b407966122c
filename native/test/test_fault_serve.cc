// Native tests of fault_serve.h: the served-record ring (order, full, wrap), the region
// table (pin / remove, a removed region is never served), and serve() on a real uffd:
// a never-written page and a same-filled page installed with the right bytes, a BUSY
// page and a write-protect fault forwarded untouched, no room: forwarded.
#include <sys/mman.h>

#include <cstring>
#include <vector>

#include "check.h"
#include "fault_serve.h"
#include "page_state.h"
#include "uffd.h"

using namespace tmem;
using namespace tmem::fault_serve;

namespace {

std::vector<int32_t> ring_words(int cells) {
  std::vector<int32_t> w(ServedRing::kHeaderWords + ServedRing::kCellWords * cells, 0);
  w[ServedRing::W_MAGIC] = ServedRing::kMagic;
  w[ServedRing::W_CAP] = cells;
  w[ServedRing::W_ROOM] = 1 << 20;
  for (int i = 0; i < cells; i++) w[ServedRing::kHeaderWords + ServedRing::kCellWords * i] = i;
  return w;
}

/** The consumer's side (lib/dispatcher/native-faults.ts drainServed): the next record's kind, or -1. */
int take(std::vector<int32_t>& w, int32_t* page = nullptr) {
  const int32_t pos = w[ServedRing::W_DEQ];
  const uint32_t cap = static_cast<uint32_t>(w[ServedRing::W_CAP]);
  int32_t* c = w.data() + ServedRing::kHeaderWords + (static_cast<uint32_t>(pos) & (cap - 1)) * ServedRing::kCellWords;
  if (__atomic_load_n(c, __ATOMIC_ACQUIRE) != static_cast<int32_t>(static_cast<uint32_t>(pos) + 1u)) return -1;
  const int kind = c[1];
  if (page) *page = c[3];
  __atomic_store_n(c, static_cast<int32_t>(static_cast<uint32_t>(pos) + cap), __ATOMIC_RELEASE);
  w[ServedRing::W_DEQ] = static_cast<int32_t>(static_cast<uint32_t>(pos) + 1u);
  return kind;
}

}  // namespace

int main() {
  tmem_test::run("ring: records come out in order; full gives -1; positions wrap", [] {
    auto w = ring_words(4);
    ServedRing r;
    CHECK(r.bind(w.data(), w.size()));
    for (int round = 0; round < 3; round++) {
      for (int i = 0; i < 4; i++) {
        int64_t p = r.reserve();
        CHECK(p >= 0);
        r.commit(p, kRecZero, 1, round * 4 + i, 0, 0, 0);
      }
      CHECK(r.reserve() == -1);
      for (int i = 0; i < 4; i++) {
        int32_t page = -1;
        CHECK(take(w, &page) == kRecZero);
        CHECK(page == round * 4 + i);
      }
      CHECK(take(w) == -1);
    }
    auto bad = ring_words(3);  // not a power of two
    ServedRing r2;
    CHECK(!r2.bind(bad.data(), bad.size()));
  });

  tmem_test::run("ring: wake_due for a run, when the consumer sleeps, room is down to wake room, a quarter is full",
                 [] {
                   auto w = ring_words(16);
                   ServedRing r;
                   CHECK(r.bind(w.data(), w.size()));
                   w[ServedRing::W_ROOM] = 100;
                   w[ServedRing::W_WAKE_ROOM] = 10;
                   CHECK(!r.follows(1, 50));
                   CHECK(!r.follows(1, 40));  // not after 50
                   CHECK(r.follows(1, 41));   // after 40: a run
                   CHECK(!r.follows(2, 42));  // another region
                   CHECK(!r.wake_due(false));
                   CHECK(r.wake_due(true));
                   w[ServedRing::W_WAKE_ANY] = 1;
                   CHECK(r.wake_due(false));
                   w[ServedRing::W_WAKE_ANY] = 0;
                   w[ServedRing::W_ROOM] = 10;
                   CHECK(r.wake_due(false));
                   w[ServedRing::W_ROOM] = 100;
                   for (int i = 0; i < 3; i++) r.commit(r.reserve(), kRecZero, 1, i, 0, 0, 0);
                   CHECK(!r.wake_due(false));  // 3 of 16 in the ring
                   r.commit(r.reserve(), kRecZero, 1, 3, 0, 0, 0);
                   CHECK(r.wake_due(false));  // 4 of 16: a quarter
                 });

  tmem_test::run("serve: NEVER and SAME installed; BUSY, WP and no room forwarded; removed region forwarded", [] {
    CHECK(init());
    Uffd u(UffdMode::kAuto, 0);
    constexpr int kPages = 8;
    void* mem = ::mmap(nullptr, kPages * kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED);
    const uint64_t base = reinterpret_cast<uint64_t>(mem);
    u.register_range(base, kPages * kPageSize, UFFDIO_REGISTER_MODE_MISSING);
    auto w = ring_words(16);
    Server s;
    s.staging_uffd = u.fd();
    CHECK(s.ring.bind(w.data(), w.size()));
    std::vector<uint8_t> state(kPages, page_state::NEVER);
    std::vector<uint32_t> aux(kPages, 0);
    state[1] = page_state::SAME;
    aux[1] = 0xdeadbeef;
    state[2] = page_state::BUSY;
    RegionEntry e;
    e.base = base;
    e.pages = kPages;
    e.id = 7;
    e.uffd_fd = u.fd();
    e.state = state.data();
    e.aux = aux.data();
    e.server = &s;
    CHECK(RegionTable::add(e));
    CHECK(RegionTable::contains(base + 3 * kPageSize));
    bool wake = false;
    CHECK(serve(base + 10, 0, nullptr, &wake) == Outcome::kServed);
    CHECK(state[0] == page_state::ACTIVE);
    CHECK(take(w) == kRecZero);
    CHECK(!wake);  // nothing for the consumer to do now: it drains on its next turn
    const uint8_t* b = static_cast<const uint8_t*>(mem);
    for (size_t i = 0; i < kPageSize; i++) CHECK(b[i] == 0);
    CHECK(serve(base + kPageSize, UFFD_PAGEFAULT_FLAG_WRITE, nullptr, &wake) == Outcome::kForward);
    CHECK(state[1] == page_state::SAME);  // page 1 after page 0: a run, left to the dispatcher's readahead
    CHECK(serve(base + 4 * kPageSize, 0, nullptr, &wake) == Outcome::kServed);  // zero page 4: not a run
    CHECK(take(w) == kRecZero);
    CHECK(serve(base + kPageSize, UFFD_PAGEFAULT_FLAG_WRITE, nullptr, &wake) == Outcome::kServed);
    CHECK(take(w) == kRecSame);
    const uint32_t* words = reinterpret_cast<const uint32_t*>(b + kPageSize);
    for (size_t i = 0; i < kPageSize / 4; i++) CHECK(words[i] == 0xdeadbeef);
    CHECK(state[1] == page_state::ACTIVE && aux[1] == 0);
    CHECK(serve(base + 2 * kPageSize, 0, nullptr, &wake) == Outcome::kForward);  // BUSY
    CHECK(state[2] == page_state::BUSY);
    CHECK(serve(base + 3 * kPageSize, UFFD_PAGEFAULT_FLAG_WP, nullptr, &wake) == Outcome::kForward);
    CHECK(state[3] == page_state::NEVER);
    w[ServedRing::W_ROOM] = 0;
    CHECK(serve(base + 3 * kPageSize, 0, nullptr, &wake) == Outcome::kForward);  // no room
    CHECK(state[3] == page_state::NEVER && w[ServedRing::W_ROOM] == 0);
    w[ServedRing::W_ROOM] = 100;
    RegionTable::remove(&s, 7);
    CHECK(!RegionTable::contains(base));
    CHECK(serve(base + 3 * kPageSize, 0, nullptr, &wake) == Outcome::kForward);
    CHECK(state[3] == page_state::NEVER);
    CHECK(take(w) == -1);
    u.unregister_range(base, kPages * kPageSize);
    ::munmap(mem, kPages * kPageSize);
  });
  return tmem_test::finish();
}
