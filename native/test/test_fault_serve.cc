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
                   CHECK(r.ra_window(1, 50) == 0);
                   CHECK(r.ra_window(1, 40) == 0);  // not after 50
                   CHECK(r.ra_window(1, 41) == 2);  // after 40: a run, the window opens
                   r.ra_next(1, 41 + 1 + 2);        // two pages read ahead of it
                   CHECK(r.ra_window(1, 42) == 0);  // not where the run goes on: closed
                   CHECK(r.ra_window(1, 43) == 2);
                   CHECK(r.ra_window(1, 44) == 4);  // doubled
                   for (int p = 45; p < 52; p++) r.ra_window(1, p);
                   CHECK(r.ra_window(1, 52) == kRaMaxWindow);  // at most the largest window
                   r.ra_next(2, 60);                           // not the stream's region: ignored
                   CHECK(r.ra_window(1, 53) == kRaMaxWindow);
                   CHECK(r.ra_window(2, 54) == 0);  // another region
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

  tmem_test::run(
      "serve: NEVER and SAME installed; BUSY, WP, a write to CLEAN and no room forwarded; removed region forwarded",
      [] {
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
        CHECK(serve(base + kPageSize, UFFD_PAGEFAULT_FLAG_WRITE, nullptr, &wake) == Outcome::kServed);
        CHECK(take(w) == kRecSame);
        const uint32_t* words = reinterpret_cast<const uint32_t*>(b + kPageSize);
        for (size_t i = 0; i < kPageSize / 4; i++) CHECK(words[i] == 0xdeadbeef);
        CHECK(state[1] == page_state::ACTIVE && aux[1] == 0);
        CHECK(w[ServedRing::W_RA_WINDOW] == 0);  // the first fault of a stream: nothing read ahead
        CHECK(serve(base + 2 * kPageSize, 0, nullptr, &wake) == Outcome::kForward);  // BUSY
        CHECK(state[2] == page_state::BUSY);
        CHECK(serve(base + 3 * kPageSize, UFFD_PAGEFAULT_FLAG_WP, nullptr, &wake) == Outcome::kForward);
        CHECK(state[3] == page_state::NEVER);
        w[ServedRing::W_ROOM] = 0;
        CHECK(serve(base + 3 * kPageSize, 0, nullptr, &wake) == Outcome::kForward);  // no room
        CHECK(state[3] == page_state::NEVER && w[ServedRing::W_ROOM] == 0);
        w[ServedRing::W_ROOM] = 100;
        // Same-filled pages 5, 6, 7: a fault on 5, then on 6 (a run: window 2) reads 7 ahead.
        for (uint32_t p = 5; p < 8; p++) {
          state[p] = page_state::SAME;
          aux[p] = 0x01010101u * p;
        }
        CHECK(serve(base + 5 * kPageSize, 0, nullptr, &wake) == Outcome::kServed);
        CHECK(take(w) == kRecSame);
        wake = false;
        CHECK(serve(base + 6 * kPageSize, 0, nullptr, &wake) == Outcome::kServed);
        int32_t page = -1;
        CHECK(take(w, &page) == kRecSame && page == 6);
        CHECK(take(w, &page) == kRecSameAhead && page == 7);  // read ahead, up to the region's end
        CHECK(take(w) == -1);
        CHECK(wake);  // a readahead's records: the consumer is woken for them
        CHECK(w[ServedRing::W_RA_WINDOW] == 2 && w[ServedRing::W_RA_NEXT] == 8);
        for (uint32_t p = 5; p < 8; p++) {
          CHECK(state[p] == page_state::ACTIVE && aux[p] == 0);
          const uint32_t* pw = reinterpret_cast<const uint32_t*>(b + p * kPageSize);
          for (size_t i = 0; i < kPageSize / 4; i++) CHECK(pw[i] == 0x01010101u * p);
        }
        // A fault on a page mapped meanwhile is woken; a write to a CLEAN one is forwarded (the
        // SIGBUS handler cannot tell it from a write-protect fault, which only JS serves).
        CHECK(serve(base + 5 * kPageSize, 0, nullptr, &wake) == Outcome::kServed);
        state[5] = page_state::CLEAN;
        CHECK(serve(base + 5 * kPageSize, 0, nullptr, &wake) == Outcome::kServed);
        CHECK(serve(base + 5 * kPageSize, UFFD_PAGEFAULT_FLAG_WRITE, nullptr, &wake) == Outcome::kForward);
        CHECK(state[5] == page_state::CLEAN && take(w) == -1);
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
