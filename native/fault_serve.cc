// See fault_serve.h. Every step mirrors lib/dispatcher/faults.ts serveFault for
// the fast states; what the JS side does after a fault (counters, the FIFO, pool
// and slot releases) it does when it drains the served record (served.ts).
//
// Ordering rules (docs/layout.md, "served records"):
//   * a page is claimed (BUSY) before anything else is touched, and its new state
//     is published last;
//   * its served record is committed BEFORE the state is published: whoever sees
//     the new state (ACTIVE / CLEAN) and then drains the ring finds the record;
//   * the region stays pinned in the region table until the state is published.
#include "fault_serve.h"

#include <sched.h>
#include <sys/ioctl.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "page_codec.h"
#include "page_state.h"
#include "store_reader.h"
#include "uffd_abi.h"

namespace tmem {
namespace fault_serve {
namespace {

constexpr uint64_t kPage = 4096;
alignas(4096) const char kZeroPage[kPage] = {};

// ---- raw ioctls: -errno, never an exception (async-signal-safe) -------------------------

int64_t raw_copy(int fd, uint64_t dst, const void* src, bool wp) {
  struct uffdio_copy c = {};
  c.dst = dst;
  c.src = reinterpret_cast<uint64_t>(src);
  c.len = kPage;
  c.mode = wp ? UFFDIO_COPY_MODE_WP : 0;
  if (::ioctl(fd, UFFDIO_COPY, &c) == 0) return kPage;
  if (errno == EEXIST) {  // already there: success, but nobody was woken
    struct uffdio_range r = {dst, kPage};
    ::ioctl(fd, UFFDIO_WAKE, &r);
    return kPage;
  }
  return c.copy > 0 ? c.copy : -errno;
}

/** One UFFDIO_COPY of `len` bytes (a readahead run): the bytes copied, or -errno if none were. */
int64_t raw_copy_run(int fd, uint64_t dst, const void* src, uint64_t len, bool wp) {
  struct uffdio_copy c = {};
  c.dst = dst;
  c.src = reinterpret_cast<uint64_t>(src);
  c.len = len;
  c.mode = wp ? UFFDIO_COPY_MODE_WP : 0;
  if (::ioctl(fd, UFFDIO_COPY, &c) == 0) return static_cast<int64_t>(len);
  return c.copy > 0 ? c.copy : -errno;
}

int64_t raw_zeropage(int fd, uint64_t dst) {
  struct uffdio_zeropage z = {};
  z.range.start = dst;
  z.range.len = kPage;
  if (::ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0) return kPage;
  if (errno == EEXIST) {
    struct uffdio_range r = {dst, kPage};
    ::ioctl(fd, UFFDIO_WAKE, &r);
    return kPage;
  }
  return z.zeropage > 0 ? z.zeropage : -errno;
}

int64_t raw_move(int fd, uint64_t dst, uint64_t src) {
  struct uffdio_move m = {};
  m.dst = dst;
  m.src = src;
  m.len = kPage;
  if (::ioctl(fd, UFFDIO_MOVE, &m) == 0) return kPage;
  return m.move > 0 ? m.move : -errno;
}

int32_t now_ns_since(const struct timespec& t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int64_t ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  return ns > 0x7fffffff ? 0x7fffffff : static_cast<int32_t>(ns);
}

// ---- codecs and the scratch pool ---------------------------------------------------------

constexpr int kScratch = 64;
Scratch g_scratch[kScratch];
lz4::DecompressFn g_lz4 = nullptr;
bool g_zstd = false;
std::once_flag g_init_once;
bool g_init_ok = false;

void do_init() {
  if (lz4::available()) g_lz4 = lz4::decompress_fn();
  if (zstd::available()) {
    g_zstd = true;
    for (auto& s : g_scratch) {
      s.zstd_dctx = zstd::create_dctx();
      if (!s.zstd_dctx) g_zstd = false;
    }
  }
  g_init_ok = true;
}

/**
 * Decodes `n` bytes of stored object into the page `dst`, or returns where the page already is
 * (an object stored raw); nullptr if it cannot (forward).
 */
const char* decode(const uint8_t* obj, int n, Scratch* s, char* dst) {
  if (n == static_cast<int>(kPage)) return reinterpret_cast<const char*>(obj);
  if (n < 2 || n > static_cast<int>(kPage) + 1) return nullptr;
  long got = -1;
  switch (obj[0]) {
    case 1:
      if (!g_lz4) return nullptr;
      got = g_lz4(reinterpret_cast<const char*>(obj + 1), dst, n - 1, static_cast<int>(kPage));
      break;
    case 2:
      if (!g_zstd || !s->zstd_dctx) return nullptr;
      got = zstd::decompress_with(s->zstd_dctx, reinterpret_cast<const char*>(obj + 1), static_cast<size_t>(n - 1), dst,
                                  kPage);
      break;
    case 3: return n == static_cast<int>(kPage) + 1 ? reinterpret_cast<const char*>(obj + 1) : nullptr;
    default: return nullptr;
  }
  return got == static_cast<long>(kPage) ? dst : nullptr;
}

// ---- the region table ----------------------------------------------------------------------

RegionEntry g_table[RegionTable::kSlots];
int32_t g_high = 0;  // slots [0, g_high) may be live
std::mutex g_table_mu;

inline int32_t ld(const int32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

/** Whether `addr` lies in e's range (relaxed loads: add() may be rewriting a dead slot). */
inline bool in_range(const RegionEntry& e, uint64_t addr) {
  const uint64_t base = __atomic_load_n(&e.base, __ATOMIC_RELAXED);
  const uint32_t pages = __atomic_load_n(&e.pages, __ATOMIC_RELAXED);
  return addr >= base && addr - base < uint64_t(pages) * kPage;
}

void wait_unused(RegionEntry& e) {
  while (__atomic_load_n(&e.users, __ATOMIC_SEQ_CST) != 0) sched_yield();
}

}  // namespace

// ---- ServedRing ----------------------------------------------------------------------------

bool ServedRing::bind(int32_t* words, size_t n) {
  if (!words || n < kHeaderWords) return false;
  const int32_t cap = ld(words + W_CAP);
  if (ld(words + W_MAGIC) != kMagic || cap < 1 || (cap & (cap - 1)) != 0) return false;
  if (kHeaderWords + static_cast<size_t>(cap) * kCellWords > n) return false;
  w_ = words;
  cap_ = static_cast<uint32_t>(cap);
  return true;
}

int64_t ServedRing::reserve() {
  if (!w_) return -1;
  int32_t pos = __atomic_load_n(w_ + W_ENQ, __ATOMIC_RELAXED);
  for (;;) {
    int32_t* cell = w_ + kHeaderWords + (static_cast<uint32_t>(pos) & (cap_ - 1)) * kCellWords;
    const int32_t seq = __atomic_load_n(cell, __ATOMIC_ACQUIRE);
    const int32_t dif = static_cast<int32_t>(static_cast<uint32_t>(seq) - static_cast<uint32_t>(pos));
    if (dif == 0) {
      if (__atomic_compare_exchange_n(w_ + W_ENQ, &pos, static_cast<int32_t>(static_cast<uint32_t>(pos) + 1u), true,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        return static_cast<uint32_t>(pos);
      }
    } else if (dif < 0) {
      return -1;  // full: the consumer has not freed this cell yet
    } else {
      pos = __atomic_load_n(w_ + W_ENQ, __ATOMIC_RELAXED);
    }
  }
}

void ServedRing::commit(int64_t pos, int32_t kind, int32_t region, int32_t page, int32_t arg, int32_t arg2,
                        int32_t ns) {
  const uint32_t p = static_cast<uint32_t>(pos);
  int32_t* cell = w_ + kHeaderWords + (p & (cap_ - 1)) * kCellWords;
  __atomic_store_n(cell + 1, kind, __ATOMIC_RELAXED);
  __atomic_store_n(cell + 2, region, __ATOMIC_RELAXED);
  __atomic_store_n(cell + 3, page, __ATOMIC_RELAXED);
  __atomic_store_n(cell + 4, arg, __ATOMIC_RELAXED);
  __atomic_store_n(cell + 5, arg2, __ATOMIC_RELAXED);
  __atomic_store_n(cell + 6, ns, __ATOMIC_RELAXED);
  __atomic_store_n(cell, static_cast<int32_t>(p + 1u), __ATOMIC_RELEASE);
}

bool ServedRing::take_room() {
  if (!w_) return false;
  if (__atomic_sub_fetch(w_ + W_ROOM, 1, __ATOMIC_RELAXED) >= 0) return true;
  __atomic_add_fetch(w_ + W_ROOM, 1, __ATOMIC_RELAXED);
  return false;
}

void ServedRing::give_room() {
  if (w_) __atomic_add_fetch(w_ + W_ROOM, 1, __ATOMIC_RELAXED);
}

bool ServedRing::mark_pending() {
  if (!w_) return false;
  return __atomic_exchange_n(w_ + W_PENDING, 1, __ATOMIC_ACQ_REL) == 0;
}

uint32_t ServedRing::ra_window(int32_t region, int32_t page) {
  if (!w_) return 0;
  const int32_t last_region = __atomic_exchange_n(w_ + W_RA_REGION, region, __ATOMIC_RELAXED);
  const int32_t next = __atomic_exchange_n(w_ + W_RA_NEXT, page + 1, __ATOMIC_RELAXED);
  if (last_region != region || next != page) {
    __atomic_store_n(w_ + W_RA_WINDOW, 0, __ATOMIC_RELAXED);
    return 0;
  }
  const uint32_t was = static_cast<uint32_t>(__atomic_load_n(w_ + W_RA_WINDOW, __ATOMIC_RELAXED));
  const uint32_t window = was == 0 ? 2 : (2 * was > kRaMaxWindow ? kRaMaxWindow : 2 * was);
  __atomic_store_n(w_ + W_RA_WINDOW, static_cast<int32_t>(window), __ATOMIC_RELAXED);
  return window;
}

void ServedRing::ra_next(int32_t region, int32_t next) {
  if (!w_ || __atomic_load_n(w_ + W_RA_REGION, __ATOMIC_RELAXED) != region) return;
  __atomic_store_n(w_ + W_RA_NEXT, next, __ATOMIC_RELAXED);
}

bool ServedRing::wake_due(bool run) {
  if (!w_) return false;
  if (run) return true;
  if (__atomic_load_n(w_ + W_WAKE_ANY, __ATOMIC_ACQUIRE) != 0) return true;
  if (__atomic_load_n(w_ + W_ROOM, __ATOMIC_RELAXED) <= __atomic_load_n(w_ + W_WAKE_ROOM, __ATOMIC_RELAXED))
    return true;
  const uint32_t used = static_cast<uint32_t>(__atomic_load_n(w_ + W_ENQ, __ATOMIC_RELAXED)) -
                        static_cast<uint32_t>(__atomic_load_n(w_ + W_DEQ, __ATOMIC_RELAXED));
  return used >= cap_ / 4;
}

bool ServedRing::reclaim_near() const {
  if (!w_) return false;
  const int64_t room = __atomic_load_n(w_ + W_ROOM, __ATOMIC_RELAXED);
  return room <= 2 * int64_t(__atomic_load_n(w_ + W_WAKE_ROOM, __ATOMIC_RELAXED));
}

// ---- init and scratch ----------------------------------------------------------------------

bool init() {
  std::call_once(g_init_once, do_init);
  return g_init_ok;
}

Scratch* acquire_scratch() {
  for (auto& s : g_scratch) {
    int32_t expected = 0;
    if (__atomic_load_n(&s.taken, __ATOMIC_RELAXED) == 0 &&
        __atomic_compare_exchange_n(&s.taken, &expected, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      return &s;
    }
  }
  return nullptr;
}

void release_scratch(Scratch* s) {
  if (s) __atomic_store_n(&s->taken, 0, __ATOMIC_RELEASE);
}

// ---- RegionTable ---------------------------------------------------------------------------

bool RegionTable::add(const RegionEntry& in) {
  if (!in.state || !in.aux || !in.server || in.pages == 0 || (in.base & (kPage - 1)) != 0) return false;
  std::lock_guard<std::mutex> lock(g_table_mu);
  for (int i = 0; i < kSlots; i++) {
    RegionEntry& e = g_table[i];
    if (__atomic_load_n(&e.live, __ATOMIC_SEQ_CST) != 0) continue;
    wait_unused(e);  // a reader that pinned it after it went dead and has not looked yet
    __atomic_store_n(&e.base, in.base, __ATOMIC_RELAXED);
    __atomic_store_n(&e.pages, in.pages, __ATOMIC_RELAXED);
    e.id = in.id;
    e.uffd_fd = in.uffd_fd;
    e.state = in.state;
    e.aux = in.aux;
    e.server = in.server;
    if (i >= g_high) __atomic_store_n(&g_high, i + 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&e.live, 1, __ATOMIC_SEQ_CST);  // last: every field above is in place
    return true;
  }
  return false;
}

void RegionTable::remove(const Server* server, int32_t id) {
  std::lock_guard<std::mutex> lock(g_table_mu);
  for (int i = 0; i < g_high; i++) {
    RegionEntry& e = g_table[i];
    if (__atomic_load_n(&e.live, __ATOMIC_SEQ_CST) && e.server == server && e.id == id) {
      __atomic_store_n(&e.live, 0, __ATOMIC_SEQ_CST);
      wait_unused(e);
    }
  }
}

void RegionTable::remove_all(const Server* server) {
  std::lock_guard<std::mutex> lock(g_table_mu);
  for (int i = 0; i < g_high; i++) {
    RegionEntry& e = g_table[i];
    if (__atomic_load_n(&e.live, __ATOMIC_SEQ_CST) && e.server == server) {
      __atomic_store_n(&e.live, 0, __ATOMIC_SEQ_CST);
      wait_unused(e);
    }
  }
}

RegionEntry* RegionTable::pin(uint64_t addr) {
  const int32_t high = __atomic_load_n(&g_high, __ATOMIC_ACQUIRE);
  for (int i = 0; i < high; i++) {
    RegionEntry& e = g_table[i];
    if (!__atomic_load_n(&e.live, __ATOMIC_ACQUIRE) || !in_range(e, addr)) continue;
    __atomic_fetch_add(&e.users, 1, __ATOMIC_SEQ_CST);
    // Re-checked once pinned: remove() clears live before it waits for users to drain,
    // and add() rewrites a slot only once it is dead and unused.
    if (__atomic_load_n(&e.live, __ATOMIC_SEQ_CST) && in_range(e, addr)) return &e;
    __atomic_fetch_sub(&e.users, 1, __ATOMIC_SEQ_CST);
  }
  return nullptr;
}

void RegionTable::unpin(RegionEntry* e) {
  if (e) __atomic_fetch_sub(&e->users, 1, __ATOMIC_SEQ_CST);
}

bool RegionTable::contains(uint64_t addr) {
  RegionEntry* e = pin(addr);
  unpin(e);
  return e != nullptr;
}

// ---- serve ---------------------------------------------------------------------------------

namespace {

/** The fault, once its region is pinned, its page claimed and a ring cell reserved. */
struct Fault {
  RegionEntry* e;
  Server* s;
  uint64_t addr;
  uint32_t page;
  bool write;
  int64_t cell;
  struct timespec t0;
};

/** Served: record first, then the state (see the ordering rules above). */
Outcome served(const Fault& f, int32_t kind, uint8_t next, uint32_t aux, int32_t arg, int32_t arg2,
               bool* wake_consumer) {
  f.s->ring.commit(f.cell, kind, f.e->id, static_cast<int32_t>(f.page), arg, arg2, now_ns_since(f.t0));
  __atomic_store_n(f.e->aux + f.page, aux, __ATOMIC_RELAXED);
  page_state::publish(f.e->state, f.page, next);
  if (f.s->ring.wake_due(false) && f.s->ring.mark_pending()) {
    if (wake_consumer) *wake_consumer = true;
    if (f.s->wake) f.s->wake(f.s->wake_arg);
  }
  __atomic_fetch_add(&f.s->served, 1, __ATOMIC_RELAXED);
  return Outcome::kServed;
}

/** Not served after the claim: the page goes back to `st`, the reserved cell is left empty. */
Outcome unclaimed(const Fault& f, uint8_t st) {
  f.s->ring.commit(f.cell, kRecNone, f.e->id, static_cast<int32_t>(f.page), 0, 0, 0);
  if (st != page_state::STAGED) f.s->ring.give_room();
  page_state::publish(f.e->state, f.page, st);
  __atomic_fetch_add(&f.s->forwarded, 1, __ATOMIC_RELAXED);
  return Outcome::kForward;
}

Outcome serve_never(const Fault& f, bool* wake) {
  const int fd = f.e->uffd_fd;
  const int64_t res = f.write ? raw_copy(fd, f.addr, kZeroPage, false) : raw_zeropage(fd, f.addr);
  if (res != static_cast<int64_t>(kPage)) return unclaimed(f, page_state::NEVER);
  return served(f, kRecZero, page_state::ACTIVE, 0, 0, 0, wake);
}

Outcome serve_same(const Fault& f, Scratch* sc, bool* wake) {
  const uint32_t word = __atomic_load_n(f.e->aux + f.page, __ATOMIC_RELAXED);
  const int fd = f.e->uffd_fd;
  int64_t res;
  if (word == 0 && !f.write) {
    res = raw_zeropage(fd, f.addr);  // a zero page: map the shared one
  } else if (word == 0) {
    res = raw_copy(fd, f.addr, kZeroPage, false);
  } else {
    if (!sc) return unclaimed(f, page_state::SAME);
    uint32_t* w = reinterpret_cast<uint32_t*>(sc->page);
    for (size_t i = 0; i < kPage / 4; i++) w[i] = word;
    res = raw_copy(fd, f.addr, sc->page, false);
  }
  if (res != static_cast<int64_t>(kPage)) return unclaimed(f, page_state::SAME);
  return served(f, kRecSame, page_state::ACTIVE, 0, static_cast<int32_t>(word), 0, wake);
}

Outcome serve_stored(const Fault& f, Scratch* sc, bool* wake) {
  const StoreReader* store = f.s->store;
  if (!store || !sc) return unclaimed(f, page_state::STORED);
  const uint32_t old = __atomic_load_n(f.e->aux + f.page, __ATOMIC_RELAXED);
  // frontswap's key: object (region id, 0, 0) as lib/tmem/hash.ts splits Numbers, index = page
  const int32_t oid[6] = {f.e->id, 0, 0, 0, 0, 0};
  const int n = store->lookup(f.s->frontswap_pool, oid, f.page, sc->obj, sizeof sc->obj);
  if (n < 0) return unclaimed(f, page_state::STORED);  // absent, busy or bad: JS decides
  const char* page = decode(sc->obj, n, sc, sc->page);
  if (!page) return unclaimed(f, page_state::STORED);
  // A read keeps the pool copy and maps the page write-protected (CLEAN): evicting it again is free.
  const bool keep = !f.write;
  if (raw_copy(f.e->uffd_fd, f.addr, page, keep) != static_cast<int64_t>(kPage)) {
    return unclaimed(f, page_state::STORED);
  }
  return served(f, keep ? kRecPoolClean : kRecPoolDirty, keep ? page_state::CLEAN : page_state::ACTIVE, 0,
                static_cast<int32_t>(old), 0, wake);
}

Outcome serve_staged(const Fault& f, bool* wake) {
  Server* s = f.s;
  const uint32_t a = __atomic_load_n(f.e->aux + f.page, __ATOMIC_RELAXED);
  const uint32_t slot = a & page_state::kSlotMask;
  const bool clean = (a & page_state::kStagedClean) != 0;
  if (!s->slot_table || slot >= s->staging_slots) return unclaimed(f, page_state::STAGED);
  int32_t* claimed = s->slot_table + 0 * s->staging_slots;
  int32_t* region = s->slot_table + 1 * s->staging_slots;
  int32_t* pagew = s->slot_table + 2 * s->staging_slots;
  int32_t* kept = s->slot_table + 3 * s->staging_slots;
  if (ld(region + slot) != f.e->id || ld(pagew + slot) != static_cast<int32_t>(f.page)) {
    return unclaimed(f, page_state::STAGED);  // the slot table does not say this page is there
  }
  const int32_t k = ld(kept + slot);
  const uint32_t clean_aux = k >= 0 ? (page_state::kKeptSlot | static_cast<uint32_t>(k)) : 0;
  const uint64_t src = s->staging_address + uint64_t(slot) * kPage;
  const int fd = f.e->uffd_fd;
  int32_t kind;
  uint8_t next;
  uint32_t aux;
  if (clean && !f.write) {
    // Read of a clean page: copied in write-protected, its clean copy kept (faults.ts).
    if (raw_copy(fd, f.addr, reinterpret_cast<const void*>(src), true) != static_cast<int64_t>(kPage)) {
      return unclaimed(f, page_state::STAGED);
    }
    kind = kRecStagedClean;
    next = page_state::CLEAN;
    aux = clean_aux;
  } else {
    // A reader off the fault path holds the slot, or the region is on another uffd: copy; else move.
    const bool copy = ld(claimed + slot) != 0 || fd != s->staging_uffd;
    const int64_t res =
        copy ? raw_copy(fd, f.addr, reinterpret_cast<const void*>(src), false) : raw_move(fd, f.addr, src);
    if (res != static_cast<int64_t>(kPage)) return unclaimed(f, page_state::STAGED);  // EBUSY (fork), EAGAIN: JS
    kind = copy ? kRecStagedCopied : kRecStagedMoved;
    next = page_state::ACTIVE;
    aux = 0;
  }
  __atomic_store_n(kept + slot, -1, __ATOMIC_RELAXED);
  __atomic_store_n(region + slot, -1, __ATOMIC_RELEASE);
  const int32_t arg2 = clean && next == page_state::ACTIVE ? static_cast<int32_t>(clean_aux) : -1;
  return served(f, kind, next, aux, static_cast<int32_t>(slot), arg2, wake);
}

// ---- readahead -----------------------------------------------------------------------------

/** A page taken for readahead: room, a ring cell and its claim. False (nothing held) if one is missing. */
bool take_ahead(RegionEntry* e, Server* s, uint32_t q, uint8_t st, int64_t* cell) {
  if (!s->ring.take_room()) return false;
  *cell = s->ring.reserve();
  if (*cell >= 0 && page_state::claim(e->state, q, st)) return true;
  if (*cell >= 0) s->ring.commit(*cell, kRecNone, e->id, static_cast<int32_t>(q), 0, 0, 0);
  s->ring.give_room();
  return false;
}

/** Gives back a page taken by take_ahead() and not brought in: its state as it was, its cell empty. */
void give_back(RegionEntry* e, Server* s, uint32_t q, uint8_t st, int64_t cell) {
  s->ring.commit(cell, kRecNone, e->id, static_cast<int32_t>(q), 0, 0, 0);
  s->ring.give_room();
  page_state::publish(e->state, q, st);
}

/**
 * The run of pages q, q+1, .. below `end` (at most kRaChunk) in state `st` (STORED or SAME)
 * that can be taken: stored pages decoded, same-filled ones refilled, into sc->run, then copied
 * in with one UFFDIO_COPY (which also wakes a thread already waiting on one of them): stored
 * pages write-protected (CLEAN, their pool copies kept), same-filled ones writable (ACTIVE).
 * Returns the pages brought in; *stop: the readahead ends here.
 */
uint32_t run_ahead(RegionEntry* e, Server* s, uint32_t q, uint32_t end, uint8_t st, Scratch* sc, bool* stop) {
  const bool stored = st == page_state::STORED;
  int64_t cells[kRaChunk];
  uint32_t olds[kRaChunk];
  uint32_t k = 0;
  *stop = false;
  const int32_t oid[6] = {e->id, 0, 0, 0, 0, 0};
  for (; q + k < end && k < kRaChunk; k++) {
    const uint32_t p = q + k;
    if (page_state::load(e->state, p) != st) break;  // another state: the caller decides
    if (!take_ahead(e, s, p, st, &cells[k])) {
      *stop = true;
      break;
    }
    olds[k] = __atomic_load_n(e->aux + p, __ATOMIC_RELAXED);
    char* dst = sc->run + k * kPage;
    if (!stored) {
      uint32_t* w = reinterpret_cast<uint32_t*>(dst);
      for (size_t i = 0; i < kPage / 4; i++) w[i] = olds[k];
      continue;
    }
    const int n = s->store->lookup(s->frontswap_pool, oid, p, sc->obj, sizeof sc->obj);
    const char* page = n < 0 ? nullptr : decode(sc->obj, n, sc, dst);
    if (!page) {
      give_back(e, s, p, st, cells[k]);
      *stop = true;
      break;
    }
    if (page != dst) std::memcpy(dst, page, kPage);
  }
  if (k == 0) return 0;
  const uint64_t base = e->base + uint64_t(q) * kPage;
  const int64_t res = raw_copy_run(e->uffd_fd, base, sc->run, uint64_t(k) * kPage, stored);
  uint32_t in = res > 0 ? static_cast<uint32_t>(res / kPage) : 0;
  // EAGAIN part way (or none in): page by page (a page already in answers EEXIST: done), then
  // the pages that did not go in are given back.
  while (in < k && raw_copy(e->uffd_fd, base + uint64_t(in) * kPage, sc->run + in * kPage, stored) ==
                       static_cast<int64_t>(kPage)) {
    in++;
  }
  for (uint32_t i = 0; i < k; i++) {
    if (i >= in) {
      give_back(e, s, q + i, st, cells[i]);
      continue;
    }
    s->ring.commit(cells[i], stored ? kRecPoolAhead : kRecSameAhead, e->id, static_cast<int32_t>(q + i),
                   static_cast<int32_t>(olds[i]), 0, 0);
    __atomic_store_n(e->aux + q + i, 0u, __ATOMIC_RELAXED);
    page_state::publish(e->state, q + i, stored ? page_state::CLEAN : page_state::ACTIVE);
  }
  if (in < k) *stop = true;
  return in;
}

/**
 * Readahead after the fault on page `from - 1` (the pages from `from` on, at most `window`,
 * while they are STORED or SAME and there is room below residentLimit): as
 * lib/dispatcher/readahead.ts does for the faults the dispatcher serves. Returns the pages
 * brought in; the consumer is woken once for their records.
 */
uint32_t read_ahead(RegionEntry* e, Server* s, uint32_t from, uint32_t window, Scratch* sc) {
  const uint32_t end = e->pages - from < window ? e->pages : from + window;
  uint32_t q = from;
  while (q < end) {
    const uint8_t st = page_state::load(e->state, q);
    if (st != page_state::SAME && (st != page_state::STORED || !s->store)) break;
    bool stop = false;
    const uint32_t k = run_ahead(e, s, q, end, st, sc, &stop);
    q += k;
    if (stop || k == 0) break;
  }
  return q - from;
}

}  // namespace

Outcome serve(uint64_t addr, uint64_t flags, Scratch* scratch, bool* wake_consumer) {
  const int saved_errno = errno;
  Outcome out = Outcome::kForward;
  addr &= ~(kPage - 1);
  RegionEntry* e = nullptr;
  Scratch* own = nullptr;
  do {
    if (flags & UFFD_PAGEFAULT_FLAG_WP) break;  // CLEAN -> ACTIVE drops a copy: JS
    e = RegionTable::pin(addr);
    if (!e) break;
    Server* s = e->server;
    const uint32_t page = static_cast<uint32_t>((addr - e->base) / kPage);
    const uint8_t st = page_state::load(e->state, page);
    const bool write = (flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
    if (st == page_state::ACTIVE || (st == page_state::CLEAN && !write)) {
      // A missing fault on a mapped page: served meanwhile (another thread's fault, a readahead):
      // the thread is woken and retries, as faults.ts does. A write to a CLEAN page goes to JS:
      // the SIGBUS handler cannot tell a write-protect fault from a missing one (both BUS_ADRERR)
      // and only JS turns CLEAN into ACTIVE (inline.ts); woken here, it would fault forever.
      struct uffdio_range r = {addr, kPage};
      if (::ioctl(e->uffd_fd, UFFDIO_WAKE, &r) != 0) break;
      __atomic_fetch_add(&s->served, 1, __ATOMIC_RELAXED);
      out = Outcome::kServed;
      break;
    }
    if (!page_state::is_fast(st)) break;
    // A stored or same-filled fault on the page a sequential run reaches next: pages are read
    // ahead of it once it is served (window > 0).
    const bool ra = st == page_state::STORED || st == page_state::SAME;
    const uint32_t window = ra ? s->ring.ra_window(e->id, static_cast<int32_t>(page)) : 0;
    const bool run = window > 0;
    Fault f{e, s, addr, page, write, -1, {}};
    clock_gettime(CLOCK_MONOTONIC, &f.t0);
    // A staged page is counted resident already; any other adds one: only while there is room.
    const bool adds = st != page_state::STAGED;
    if (adds && !s->ring.take_room()) break;
    f.cell = s->ring.reserve();
    if (f.cell < 0 || !page_state::claim(e->state, page, st)) {
      if (f.cell >= 0) s->ring.commit(f.cell, kRecNone, e->id, static_cast<int32_t>(page), 0, 0, 0);
      if (adds) s->ring.give_room();
      break;  // ring full or the page changed: JS serves it
    }
    Scratch* sc = scratch;
    if (!sc && (st == page_state::STORED || st == page_state::SAME)) sc = own = acquire_scratch();
    switch (st) {
      case page_state::NEVER: out = serve_never(f, wake_consumer); break;
      case page_state::SAME: out = serve_same(f, sc, wake_consumer); break;
      case page_state::STORED: out = serve_stored(f, sc, wake_consumer); break;
      case page_state::STAGED: out = serve_staged(f, wake_consumer); break;
      default: out = unclaimed(f, st); break;
    }
    if (run && out == Outcome::kServed && sc) {
      const uint32_t k = read_ahead(e, s, page + 1, window, sc);
      s->ring.ra_next(e->id, static_cast<int32_t>(page + 1 + k));
      if (k > 0 && s->ring.wake_due(true) && s->ring.mark_pending()) {
        if (wake_consumer) *wake_consumer = true;
        if (s->wake) s->wake(s->wake_arg);
      }
    }
  } while (false);
  release_scratch(own);
  RegionTable::unpin(e);
  errno = saved_errno;
  return out;
}

}  // namespace fault_serve
}  // namespace tmem
