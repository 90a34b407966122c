// Native tests of the shared pool (shared_pool.h) on real System V segments and
// real processes (fork): every page a get() accepts is compared byte for byte
// with what was put; a dead lock holder, a ring that wraps, scribbled records,
// members that exit without closing and a segment of the wrong mode are each met.
#include <signal.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "shared_pool.h"

using tmem::SharedPool;

namespace {

constexpr uint32_t kPage = 4096;

/** Page `page` of file `key`: text-like lines with a few bytes that depend on both (LZ4: about 1/3). */
void fill_page(uint8_t* dst, uint64_t key, uint32_t page, bool incompressible = false) {
  uint64_t x = (key * 0x9E3779B97F4A7C15ull) ^ (page + 1) * 0xBF58476D1CE4E5B9ull;
  for (uint32_t i = 0; i < kPage; i++) {
    if (incompressible || i % 64 >= 48) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      dst[i] = static_cast<uint8_t>(x);
    } else {
      dst[i] = static_cast<uint8_t>("page line of a shared file "[i % 27]);
    }
  }
}

bool same_page(const uint8_t* a, uint64_t key, uint32_t page, bool incompressible = false) {
  uint8_t want[kPage];
  fill_page(want, key, page, incompressible);
  return std::memcmp(a, want, kPage) == 0;
}

std::string pool_name(const char* what) { return std::string("ctest-") + what + "-" + std::to_string(::getpid()); }

bool segment_exists(const std::string& name) { return ::shmget(SharedPool::segment_key(::geteuid(), name), 0, 0) >= 0; }

void test_round_trip() {
  const std::string name = pool_name("rt");
  {
    SharedPool p(name, 8u << 20, true);
    uint8_t page[kPage], out[kPage];
    CHECK(p.get(7, 0, out) == SharedPool::kMiss);
    for (uint32_t i = 0; i < 512; i++) {
      fill_page(page, 7, i, i % 5 == 0);
      CHECK(p.put(7, i, page) == SharedPool::kStored);
    }
    for (uint32_t i = 0; i < 512; i++) {
      fill_page(page, 7, i, i % 5 == 0);
      CHECK(p.put(7, i, page) == SharedPool::kAlready);  // stored once
    }
    for (uint32_t i = 0; i < 512; i++) {
      std::memset(out, 0xEE, kPage);
      CHECK(p.get(7, i, out) == SharedPool::kHit);
      CHECK(same_page(out, 7, i, i % 5 == 0));
      CHECK(p.get(7, i, out) == SharedPool::kHit);  // non-exclusive: still there
    }
    CHECK(p.get(8, 0, out) == SharedPool::kMiss);    // another file
    CHECK(p.get(7, 512, out) == SharedPool::kMiss);  // a page never put
    SharedPool::Audit a = p.audit();
    CHECK(a.entries == 512);
    CHECK(a.duplicates == 0);
    SharedPool::GroupStats g = p.group();
    CHECK(g.members == 1);
    CHECK(g.puts == 512 && g.duplicates == 512 && g.hits == 1024 && g.misses == 3);
    CHECK(g.stored_pages == 512 && g.stored_bytes == a.bytes);  // the counters, without a scan
    CHECK(segment_exists(name));
  }
  CHECK(!segment_exists(name));  // the last one out removed it
}

void test_ring_wraps() {
  SharedPool p(pool_name("wrap"), 2u << 20, true);
  uint8_t page[kPage], out[kPage];
  const uint32_t n = 8192;  // about 10 MiB of records through a ring of under 2 MiB
  for (uint32_t i = 0; i < n; i++) {
    fill_page(page, 42, i);
    CHECK(p.put(42, i, page) == SharedPool::kStored);
  }
  uint32_t hits = 0;
  for (uint32_t i = 0; i < n; i++) {
    int r = p.get(42, i, out);
    CHECK(r == SharedPool::kHit || r == SharedPool::kMiss);
    if (r == SharedPool::kHit) {
      CHECK(same_page(out, 42, i));
      hits++;
    }
  }
  // The newest pages are there, the oldest were overwritten.
  CHECK(p.get(42, n - 1, out) == SharedPool::kHit);
  CHECK(p.get(42, 0, out) == SharedPool::kMiss);
  CHECK(hits > 500 && hits < n);
  CHECK(p.used_bytes() <= p.size());
  // The counters count the chunk the ring is overwriting until it has passed all of it.
  SharedPool::Audit a = p.audit();
  SharedPool::GroupStats g = p.group();
  CHECK(g.stored_pages >= a.entries && g.stored_bytes >= a.bytes);
  CHECK(g.stored_bytes - a.bytes <= p.chunk_bytes() + 16 + kPage);
  CHECK(a.entries >= hits);
  std::printf("     ring of %llu bytes: %u of %u pages still there\n", static_cast<unsigned long long>(p.size()), hits,
              n);
}

void test_scribbled() {
  SharedPool p(pool_name("scribble"), 4u << 20, true);
  uint8_t page[kPage], out[kPage];
  const uint32_t n = 1500;
  for (uint32_t i = 0; i < n; i++) {
    fill_page(page, 99, i, i % 7 == 0);
    CHECK(p.put(99, i, page) == SharedPool::kStored);
  }
  // Random bytes everywhere after the header: index entries, record headers, compressed bytes.
  uint64_t x = 0x1234567;
  uint8_t* base = p.base();
  for (int k = 0; k < 3000; k++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    base[4096 + x % (p.size() - 4096)] = static_cast<uint8_t>(x >> 32);
  }
  uint32_t hit = 0, miss = 0, bad = 0;
  for (uint32_t i = 0; i < n; i++) {
    int r = p.get(99, i, out);
    if (r == SharedPool::kHit) {
      CHECK(same_page(out, 99, i, i % 7 == 0));  // never a wrong byte
      hit++;
    } else if (r == SharedPool::kBad) {
      bad++;
    } else {
      CHECK(r == SharedPool::kMiss);
      miss++;
    }
  }
  CHECK(bad + miss > 0);
  std::printf("     after 3000 random bytes: %u hits (all right), %u misses, %u failed their checks\n", hit, miss, bad);
  // The pool still takes and serves pages.
  fill_page(page, 100, 1);
  CHECK(p.put(100, 1, page) == SharedPool::kStored);
  CHECK(p.get(100, 1, out) == SharedPool::kHit && same_page(out, 100, 1));
}

/** Runs fn in a child that attaches the pool itself; returns its wait status. */
template <typename Fn>
pid_t fork_member(Fn fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 0;
    try {
      rc = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      rc = 3;
    }
    ::_exit(rc);
  }
  CHECK(pid > 0);
  return pid;
}

int wait_for(pid_t pid) {
  int st = 0;
  CHECK(::waitpid(pid, &st, 0) == pid);
  return st;
}

void test_forked_members() {
  const std::string name = pool_name("fork");
  SharedPool p(name, 32u << 20, true);
  const uint32_t n = 4096;
  std::vector<pid_t> kids;
  for (int c = 0; c < 4; c++) {
    kids.push_back(fork_member([&]() {
      SharedPool q(name, 32u << 20, true);
      uint8_t page[kPage], out[kPage];
      // Each child puts every page, starting at its own offset: most are already there.
      for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (k + c * 1000) % n;
        fill_page(page, 5, i);
        int r = q.put(5, i, page);
        // Busy: another member held the lock past the wait (a loaded host); try again later.
        for (int tries = 0; r == SharedPool::kBusy && tries < 10000; tries++) {
          ::usleep(1000);
          r = q.put(5, i, page);
        }
        if (r != SharedPool::kStored && r != SharedPool::kAlready) return 4;
        int g = q.get(5, i, out);
        if (g == SharedPool::kHit && !same_page(out, 5, i)) return 5;
        if (g == SharedPool::kBad) return 6;
      }
      return 0;
    }));
  }
  for (pid_t k : kids) {
    int st = wait_for(k);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  uint8_t out[kPage];
  uint32_t hits = 0;
  for (uint32_t i = 0; i < n; i++) {
    int r = p.get(5, i, out);
    CHECK(r != SharedPool::kBad);
    if (r == SharedPool::kHit) {
      CHECK(same_page(out, 5, i));
      hits++;
    }
  }
  SharedPool::Audit a = p.audit();
  SharedPool::GroupStats g = p.group();
  std::printf("     4 members: %u of %u pages there, %llu stored twice\n", hits, n,
              static_cast<unsigned long long>(a.duplicates));
  CHECK(hits == n);
  CHECK(a.duplicates == 0);
  CHECK(g.members == 1);  // the children closed their slots
  CHECK(g.stored_pages == a.entries && g.stored_bytes == a.bytes);
}

void test_dead_lock_holder() {
  const std::string name = pool_name("lock");
  SharedPool p(name, 8u << 20, true);
  int fds[2];
  CHECK(::pipe(fds) == 0);
  pid_t kid = fork_member([&]() {
    SharedPool q(name, 8u << 20, true);
    if (!q.lock_for_test()) return 7;
    char c = 'L';
    if (::write(fds[1], &c, 1) != 1) return 8;
    for (;;) ::pause();  // killed holding the lock
  });
  char c = 0;
  CHECK(::read(fds[0], &c, 1) == 1 && c == 'L');
  ::close(fds[0]);
  ::close(fds[1]);
  uint8_t page[kPage], out[kPage];
  fill_page(page, 1, 1);
  // A live holder: the put gives up (after at most a few ms), a get never waits.
  CHECK(p.put(1, 1, page) == SharedPool::kBusy);
  CHECK(p.get(1, 1, out) == SharedPool::kMiss);
  CHECK(p.group().members == 2);
  ::kill(kid, SIGKILL);
  int st = wait_for(kid);
  CHECK(WIFSIGNALED(st));
  ::usleep(60'000);                                 // past the backoff after a wedged lock
  CHECK(p.put(1, 1, page) == SharedPool::kStored);  // the dead holder's lock is taken over
  CHECK(p.steals() >= 1);
  CHECK(p.get(1, 1, out) == SharedPool::kHit && same_page(out, 1, 1));
  CHECK(p.reclaim_dead() == 1);  // its member slot
  CHECK(p.group().members == 1);
}

void test_die_in_put() {
  const std::string name = pool_name("die");
  SharedPool p(name, 8u << 20, true);
  uint8_t page[kPage], out[kPage];
  for (int stage = 1; stage <= 3; stage++) {
    pid_t kid = fork_member([&]() {
      SharedPool q(name, 8u << 20, true);
      uint8_t pg[kPage];
      fill_page(pg, 2, static_cast<uint32_t>(stage));
      q.put_and_die_for_test(2, static_cast<uint32_t>(stage), pg, stage);
      return 9;  // not reached
    });
    int st = wait_for(kid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    int r = p.get(2, static_cast<uint32_t>(stage), out);
    CHECK(r == SharedPool::kMiss || r == SharedPool::kBad);  // half a put is never a hit
    fill_page(page, 2, static_cast<uint32_t>(stage));
    CHECK(p.put(2, static_cast<uint32_t>(stage), page) == SharedPool::kStored);
    CHECK(p.get(2, static_cast<uint32_t>(stage), out) == SharedPool::kHit);
    CHECK(same_page(out, 2, static_cast<uint32_t>(stage)));
  }
  CHECK(p.steals() >= 3);  // each died holding the lock
  p.reclaim_dead();
  CHECK(p.group().members == 1);
  SharedPool::Audit a = p.audit();
  CHECK(p.group().stored_pages == a.entries && p.group().stored_bytes == a.bytes);
}

/** A page that compresses to a few dozen bytes: its first 8 bytes are n, the rest zeros. */
void tiny_page(uint8_t* dst, uint64_t n) {
  std::memset(dst, 0, kPage);
  std::memcpy(dst, &n, 8);
}

void test_counters() {
  SharedPool p(pool_name("count"), 2u << 20, true);
  uint8_t page[kPage];
  // 3x as many pages as the index has entries, in records so small that the ring never
  // wraps: sets overflow, and every valid entry replaced comes off the counters.
  const uint32_t n = 12000;
  for (uint32_t i = 0; i < n; i++) {
    tiny_page(page, i);
    CHECK(p.put(77, i, page) == SharedPool::kStored);
  }
  SharedPool::Audit a = p.audit();
  SharedPool::GroupStats g = p.group();
  std::printf("     %u puts, the ring not wrapped: %llu entries valid, counters %llu pages, %llu bytes\n", n,
              static_cast<unsigned long long>(a.entries), static_cast<unsigned long long>(g.stored_pages),
              static_cast<unsigned long long>(g.stored_bytes));
  CHECK(g.head < p.size() / 2);  // not wrapped
  CHECK(a.entries < n && a.entries > n / 4);
  CHECK(g.stored_pages == a.entries && g.stored_bytes == a.bytes);
  // Then far past the ring's end, several times: never more than a chunk off.
  for (uint32_t i = n; i < 20 * n; i++) {
    tiny_page(page, i);
    CHECK(p.put(77, i, page) == SharedPool::kStored);
    if (i % 4099 == 0) {
      a = p.audit();
      g = p.group();
      CHECK(g.stored_pages >= a.entries && g.stored_bytes >= a.bytes);
      CHECK(g.stored_bytes - a.bytes <= p.chunk_bytes() + 16 + kPage);
    }
  }
  CHECK(p.group().head > 3 * p.size());
}

/** Whether a segment with this id still exists (IPC_STAT by id: its key is gone once marked). */
bool id_exists(int id) {
  struct shmid_ds ds;
  return ::shmctl(id, IPC_STAT, &ds) == 0;
}

void test_exit_without_close() {
  std::fflush(nullptr);  // a child that calls exit() flushes what it inherited
  // The only member exits (exit(): atexit handlers run) without closing: the segment goes.
  const std::string name = pool_name("exit");
  int fds[2];
  CHECK(::pipe(fds) == 0);
  pid_t kid = ::fork();
  if (kid == 0) {
    SharedPool* q = new SharedPool(name, 4u << 20, true);  // never closed
    uint8_t page[kPage];
    fill_page(page, 3, 3);
    q->put(3, 3, page);
    int id = q->shm_id();
    if (::write(fds[1], &id, sizeof id) != sizeof id) ::_exit(8);
    std::exit(0);
  }
  ::close(fds[1]);
  int id = -1;
  CHECK(::read(fds[0], &id, sizeof id) == sizeof id);
  ::close(fds[0]);
  int st = wait_for(kid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(!segment_exists(name));
  CHECK(!id_exists(id));

  // With a live member: the segment stays and the child's slot is freed (not by reclaim_dead:
  // nothing ran it); the parent's attachment, which the child inherited, is left alone.
  SharedPool* p = new SharedPool(name, 4u << 20, true);
  p->publish_held(12345);
  kid = ::fork();
  if (kid == 0) {
    new SharedPool(name, 4u << 20, true);
    std::exit(0);
  }
  st = wait_for(kid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(segment_exists(name));
  SharedPool::GroupStats g = p->group();
  CHECK(g.members == 1);
  CHECK(g.held_bytes == 12345);  // the parent's slot, untouched
  CHECK(p->reclaim_dead() == 0);

  // A child forked without exec outlives its parent's close: its inherited attachment is
  // the last one, and its exit removes the segment.
  CHECK(::pipe(fds) == 0);
  kid = ::fork();
  if (kid == 0) {
    ::close(fds[1]);
    char c;
    if (::read(fds[0], &c, 1) != 0) ::_exit(9);  // EOF: the parent has closed
    std::exit(0);
  }
  ::close(fds[0]);
  id = p->shm_id();
  delete p;
  CHECK(id_exists(id));  // the child still has it attached
  ::close(fds[1]);
  st = wait_for(kid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(!id_exists(id));
}

void test_foreign_segment() {
  const std::string name = pool_name("foreign");
  const key_t key = SharedPool::segment_key(::geteuid(), name);
  int id = ::shmget(key, 1u << 20, IPC_CREAT | IPC_EXCL | 0644);  // not 0600
  CHECK(id >= 0);
  bool refused = false;
  try {
    SharedPool p(name, 1u << 20, true);
  } catch (const std::exception& e) {
    const char* code = tmem::shared_pool_error_code(e);
    refused = code != nullptr && std::strcmp(code, "TMEM_SHARED_FOREIGN") == 0;
  }
  ::shmctl(id, IPC_RMID, nullptr);
  CHECK(refused);
  // A 0600 segment of this user that is not a tmem pool (no magic; its creator is alive).
  id = ::shmget(key, 1u << 20, IPC_CREAT | IPC_EXCL | 0600);
  CHECK(id >= 0);
  void* m = ::shmat(id, nullptr, 0);
  CHECK(m != reinterpret_cast<void*>(-1));
  std::memset(m, 0x5A, 4096);
  refused = false;
  try {
    SharedPool p(name, 1u << 20, true);
  } catch (const std::exception& e) {
    const char* code = tmem::shared_pool_error_code(e);
    refused = code != nullptr && std::strcmp(code, "TMEM_SHARED_FOREIGN") == 0;
  }
  ::shmdt(m);
  ::shmctl(id, IPC_RMID, nullptr);
  CHECK(refused);
}

}  // namespace

int main() {
  tmem_test::run("shared pool: put, get, stored once, non-exclusive gets, removed by the last member", test_round_trip);
  tmem_test::run("shared pool: a ring that wraps loses its oldest pages, never serves a wrong one", test_ring_wraps);
  tmem_test::run("shared pool: random bytes over index and records are caught, never served", test_scribbled);
  tmem_test::run("shared pool: 4 forked members put the same pages: each stored once, every byte right",
                 test_forked_members);
  tmem_test::run("shared pool: a live holder makes puts give up; a dead one's lock is taken over",
                 test_dead_lock_holder);
  tmem_test::run("shared pool: a member killed at each stage of a put leaves no hit behind", test_die_in_put);
  tmem_test::run("shared pool: the stored counters follow the index through full sets and a wrapping ring",
                 test_counters);
  tmem_test::run("shared pool: exit() without closing frees the slot; the last one out removes the segment",
                 test_exit_without_close);
  tmem_test::run("shared pool: a segment of the wrong mode or contents is refused (TMEM_SHARED_FOREIGN)",
                 test_foreign_segment);
  return tmem_test::finish();
}
