#include "shared_pool.h"

#include <linux/futex.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "page_codec.h"
#include "sys_error.h"

namespace tmem {

struct SharedPool::Header {
  uint64_t magic;
  uint32_t version;
  uint32_t lock;
  uint32_t lock_waiters;
  uint32_t nsets;
  uint64_t total_bytes, index_off, log_off, log_bytes;
  uint64_t head;
  uint64_t steals;
  uint32_t creator_pid;
  uint32_t pad;
  char name[64];
  uint64_t stored_pages, stored_bytes;
  uint64_t chunk_bytes;
  uint64_t retired;
  uint8_t reserved[1024 - 176];
  Member members[kMembers];
};
static_assert(sizeof(SharedPool::Header) == 4096, "the header is one page");

struct SharedPool::Chunk {
  uint64_t pages, bytes;
};
static_assert(sizeof(SharedPool::Chunk) * SharedPool::kChunkSlots == 4096, "the chunk table is one page");
static_assert(SharedPool::kChunkSlots >= SharedPool::kChunks + 2, "a window of the ring spans kChunks + 1 chunks");

namespace {

constexpr uint64_t kMagic = 0x31524853'4d454d54ull;  // "TMEMSHR1"
constexpr uint32_t kVersion = 2;                     // 2: stored_pages/stored_bytes and the chunk table
constexpr uint64_t kHeaderBytes = 4096;
constexpr uint64_t kChunkTableBytes = 4096;
constexpr uint64_t kRecordHeader = 16;
constexpr uint64_t kMinBytes = 1ull << 20;
constexpr uint64_t kLockWaitNs = 2'000'000;        // a put waits at most 2 ms for the lock
constexpr uint64_t kWedgedBackoffNs = 50'000'000;  // then puts give up for 50 ms

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// CRC-32C (Castagnoli): the SSE4.2 instruction where the CPU has it, a table otherwise.
uint32_t crc_table[256];
bool crc_table_ready = [] {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[i] = c;
  }
  return true;
}();
uint32_t crc32c_sw(uint32_t c, const uint8_t* p, size_t n) {
  while (n--) c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}
#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t c32, const uint8_t* p, size_t n) {
  uint64_t c = c32;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  uint32_t r = static_cast<uint32_t>(c);
  while (n--) r = __builtin_ia32_crc32qi(r, *p++);
  return r;
}
const bool crc_hw = __builtin_cpu_supports("sse4.2");
#endif
uint32_t crc32c(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
#if defined(__x86_64__)
  if (crc_hw) return ~crc32c_hw(~0u, p, n);
#endif
  return ~crc32c_sw(~0u, p, n);
}

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <typename T>
T ld(const T* p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
template <typename T>
void st(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

uint32_t entry_check(uint64_t key, uint64_t pos, uint32_t page, uint32_t len, uint32_t crc) {
  uint8_t b[28];
  std::memcpy(b, &key, 8);
  std::memcpy(b + 8, &pos, 8);
  std::memcpy(b + 16, &page, 4);
  std::memcpy(b + 20, &len, 4);
  std::memcpy(b + 24, &crc, 4);
  uint32_t c = crc32c(b, sizeof b);
  return c == 0 ? 1 : c;  // 0 means "being written"
}

/** /proc/<pid>/stat field 22 (start time in clock ticks); 0 if it cannot be read. */
uint64_t start_time_of(uint32_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  FILE* f = std::fopen(path, "re");
  if (!f) return 0;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  if (!p) return 0;
  p++;
  for (int field = 3; field < 22 && *p; field++) {
    while (*p == ' ') p++;
    while (*p && *p != ' ') p++;
  }
  return std::strtoull(p, nullptr, 10);
}

/** Whether pid (a process, or a thread id for the lock) still exists. */
bool exists(uint32_t pid) {
  if (pid == 0 || pid > 0x3fffffff) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

long futex(uint32_t* w, int op, uint32_t val, const timespec* ts) {
  return ::syscall(SYS_futex, w, op, val, ts, nullptr, 0);
}

struct Geometry {
  uint32_t nsets;
  uint64_t index_off, log_off, log_bytes, chunk_bytes;
};

/** The layout a segment of `bytes` has: a function of its size alone (never read back from it). */
Geometry geometry(uint64_t bytes) {
  Geometry g{};
  // One entry per 512 bytes of segment (a file page compresses to 1-2 KiB; the index costs 1/16), kWays per set.
  uint64_t want = bytes / 512 / SharedPool::kWays;
  uint32_t nsets = 64;
  while (nsets < (1u << 26) && static_cast<uint64_t>(nsets) * 2 <= want) nsets *= 2;
  g.nsets = nsets;
  g.index_off = kHeaderBytes + kChunkTableBytes;
  uint64_t index_bytes = static_cast<uint64_t>(nsets) * SharedPool::kWays * sizeof(SharedPool::Entry);
  g.log_off = (g.index_off + index_bytes + 4095) & ~4095ull;
  g.log_bytes = bytes > g.log_off ? (bytes - g.log_off) & ~15ull : 0;
  g.chunk_bytes = std::max<uint64_t>(16, ((g.log_bytes + SharedPool::kChunks - 1) / SharedPool::kChunks + 15) & ~15ull);
  return g;
}

/** An error about an existing segment, with a code (binding_shared.cc turns it into Error.code). */
class PoolError : public std::runtime_error {
 public:
  PoolError(const char* code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  const char* code() const { return code_; }

 private:
  const char* code_;
};

thread_local uint8_t t_record[kRecordHeader + SharedPool::kPage + 64];

/**
 * The pools this process has attached and not closed, for the atexit handler. Never
 * destroyed (the handler may run after static destructors would have), and the
 * handler only try-locks it: a child forked while another thread held it never gets it.
 */
struct Registry {
  std::mutex mu;
  std::vector<SharedPool*> live;
  bool hooked = false;
};
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

}  // namespace

const char* shared_pool_error_code(const std::exception& e) {
  const PoolError* p = dynamic_cast<const PoolError*>(&e);
  return p ? p->code() : nullptr;
}

int32_t SharedPool::segment_key(uid_t uid, const std::string& name) {
  std::string s = "tmem-shared:" + std::to_string(uid) + ":" + name;
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  int32_t k = static_cast<int32_t>(h & 0x7fffffff);
  return k == 0 ? 1 : k;
}

SharedPool::SharedPool(const std::string& name, uint64_t bytes, bool join, bool create) {
  if (name.empty() || name.size() >= sizeof(Header::name)) throw PoolError("ERR_INVALID_ARG_VALUE", "bad pool name");
  const uid_t uid = ::geteuid();
  const key_t key = segment_key(uid, name);
  bytes = std::max<uint64_t>(kMinBytes, (bytes + 4095) & ~uint64_t{4095});
  for (int attempt = 0;; attempt++) {
    if (attempt == 5) throw PoolError("TMEM_SHARED_BUSY", "the shared pool kept disappearing while joining it");
    bool created = false;
    int id = create ? ::shmget(key, bytes, IPC_CREAT | IPC_EXCL | 0600) : -1;
    if (id >= 0) {
      created = true;
    } else if (!create || errno == EEXIST) {
      id = ::shmget(key, 0, 0);
      if (id < 0) {
        if (create && (errno == ENOENT || errno == EIDRM)) continue;
        throw SysError("shmget", errno, "joining shared pool '" + name + "'");
      }
    } else {
      throw SysError("shmget", errno, "creating shared pool '" + name + "' of " + std::to_string(bytes) + " bytes");
    }
    struct shmid_ds ds;
    if (::shmctl(id, IPC_STAT, &ds) != 0) {
      if (errno == EINVAL || errno == EIDRM) continue;
      throw SysError("shmctl(IPC_STAT)", errno, "shared pool '" + name + "'");
    }
    if (ds.shm_perm.uid != uid || ds.shm_perm.cuid != uid || (ds.shm_perm.mode & 0777) != 0600) {
      throw PoolError("TMEM_SHARED_FOREIGN", "the System V segment for shared pool '" + name + "' (key " +
                                                 hex(static_cast<uint32_t>(key)) +
                                                 ") is not a 0600 segment created by this user: refusing to join it");
    }
    if (ds.shm_segsz < kMinBytes) throw PoolError("TMEM_SHARED_FOREIGN", "shared pool segment is too small");
    void* p = ::shmat(id, nullptr, 0);
    if (p == reinterpret_cast<void*>(-1)) {
      if (errno == EINVAL || errno == EIDRM) continue;
      throw SysError("shmat", errno, "shared pool '" + name + "'");
    }
    // Linux lets a segment be attached after its last member marked it IPC_RMID (between our
    // shmget and shmat): it is on its way out, and a later joiner would make a new one.
    if (!created && (::shmctl(id, IPC_STAT, &ds) != 0 || (ds.shm_perm.mode & SHM_DEST) != 0)) {
      ::shmdt(p);
      continue;
    }
    id_ = id;
    base_ = static_cast<uint8_t*>(p);
    size_ = ds.shm_segsz;
    Geometry g = geometry(size_);
    nsets_ = g.nsets;
    index_off_ = g.index_off;
    log_off_ = g.log_off;
    log_bytes_ = g.log_bytes;
    chunk_bytes_ = g.chunk_bytes;
    Header* h = hdr();
    if (created) {
      h->version = kVersion;
      h->nsets = g.nsets;
      h->total_bytes = size_;
      h->index_off = g.index_off;
      h->log_off = g.log_off;
      h->log_bytes = g.log_bytes;
      h->chunk_bytes = g.chunk_bytes;
      h->creator_pid = static_cast<uint32_t>(::getpid());
      std::memcpy(h->name, name.data(), name.size());
      __atomic_store_n(&h->magic, kMagic, __ATOMIC_RELEASE);
    } else {
      bool ready = false;
      for (int i = 0; i < 2000 && !ready; i++) {
        ready = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == kMagic;
        if (!ready) ::usleep(1000);
      }
      if (!ready && !exists(static_cast<uint32_t>(ds.shm_cpid))) {
        // Its creator died before writing the header: nobody can use it.
        ::shmdt(base_);
        base_ = nullptr;
        ::shmctl(id, IPC_RMID, nullptr);
        continue;
      }
      if (!ready || ld(&h->version) != kVersion) {
        ::shmdt(base_);
        base_ = nullptr;
        throw PoolError("TMEM_SHARED_FOREIGN",
                        "the segment for shared pool '" + name + "' is not a tmem shared pool of this version");
      }
    }
    break;
  }
  if (log_bytes_ < 64 * 1024) {
    ::shmdt(base_);
    base_ = nullptr;
    throw PoolError("ERR_OUT_OF_RANGE", "shared pool is too small for its index");
  }
  pid_ = static_cast<uint32_t>(::getpid());
  if (join) {
    reclaim_dead();
    const uint64_t start = start_time_of(pid_);
    for (int i = 0; i < kMembers; i++) {
      Member* m = member(i);
      uint32_t expected = 0;
      if (__atomic_compare_exchange_n(&m->pid, &expected, pid_, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        st(&m->start_time, start);
        st(&m->held_bytes, uint64_t{0});
        st(&m->puts, uint64_t{0});
        st(&m->hits, uint64_t{0});
        st(&m->misses, uint64_t{0});
        st(&m->duplicates, uint64_t{0});
        st(&m->bad, uint64_t{0});
        slot_.store(i, std::memory_order_relaxed);
        break;
      }
    }
  }
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  r.live.push_back(this);
  if (!r.hooked) r.hooked = std::atexit(&SharedPool::at_exit) == 0;
}

SharedPool::~SharedPool() {
  if (!base_) return;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mu);
    r.live.erase(std::remove(r.live.begin(), r.live.end(), this), r.live.end());
  }
  release_slot();
  ::shmdt(base_);
  // The last one out removes the segment (a joiner racing with this retries).
  struct shmid_ds ds;
  if (::shmctl(id_, IPC_STAT, &ds) == 0 && ds.shm_nattch == 0) ::shmctl(id_, IPC_RMID, nullptr);
}

void SharedPool::release_slot() {
  if (pid_ != static_cast<uint32_t>(::getpid())) return;  // a fork child: the slot is its parent's
  const int s = slot_.exchange(-1, std::memory_order_relaxed);
  if (s < 0) return;
  Member* m = member(s);
  uint32_t expected = pid_;
  if (__atomic_load_n(&m->pid, __ATOMIC_ACQUIRE) == pid_) st(&m->held_bytes, uint64_t{0});
  __atomic_compare_exchange_n(&m->pid, &expected, 0u, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void SharedPool::at_exit() {
  Registry& r = registry();
  std::unique_lock<std::mutex> g(r.mu, std::defer_lock);
  // A close or attach on another thread holds it for a few syscalls; a fork child may
  // never see it released (its holder was not forked): then the segment is left.
  for (int i = 0; i < 100 && !g.try_lock(); i++) ::usleep(1000);
  if (!g.owns_lock()) return;
  for (SharedPool* p : r.live) p->release_slot();
  for (size_t i = 0; i < r.live.size(); i++) {
    const int id = r.live[i]->id_;
    uint64_t mine = 0;
    bool first = true;
    for (size_t j = 0; j < r.live.size(); j++) {
      if (r.live[j]->id_ != id) continue;
      if (j < i) first = false;
      mine++;
    }
    if (!first) continue;
    struct shmid_ds ds;
    if (::shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_nattch == mine && (ds.shm_perm.mode & SHM_DEST) == 0)
      ::shmctl(id, IPC_RMID, nullptr);
  }
  // The pools stay attached and listed: the process is ending, and a thread still using
  // one (the dispatcher Worker) reads mapped memory until then.
}

SharedPool::Member* SharedPool::member(int i) const { return &hdr()->members[i]; }

SharedPool::Entry* SharedPool::set_of(uint64_t key, uint32_t page) const {
  uint64_t h = mix64(key ^ (static_cast<uint64_t>(page) * 0x9E3779B97F4A7C15ull));
  uint64_t set = h & (nsets_ - 1);
  return reinterpret_cast<Entry*>(base_ + index_off_) + set * kWays;
}

namespace {
/** One entry copied out consistently (seqlock on its check word); false if it was being written. */
bool read_entry(const SharedPool::Entry* src, SharedPool::Entry* out) {
  uint32_t c1 = __atomic_load_n(&src->check, __ATOMIC_ACQUIRE);
  if (c1 == 0) return false;
  out->key = ld(&src->key);
  out->pos = ld(&src->pos);
  out->page = ld(&src->page);
  out->len = ld(&src->len);
  out->crc = ld(&src->crc);
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  uint32_t c2 = ld(&src->check);
  out->check = c2;
  return c1 == c2 && c2 == entry_check(out->key, out->pos, out->page, out->len, out->crc);
}
}  // namespace

bool SharedPool::valid(const Entry& e, uint64_t head) const {
  if (e.len == 0 || e.len > kPage) return false;
  const uint64_t rec = (kRecordHeader + e.len + 15) & ~15ull;
  if (e.pos > head || head - e.pos < rec) return false;              // not (fully) written yet
  if (head > log_bytes_ && e.pos < head - log_bytes_) return false;  // overwritten since
  const uint64_t off = e.pos % log_bytes_;
  return off + rec <= log_bytes_;
}

int SharedPool::get(uint64_t key, uint32_t page, uint8_t* dst) {
  Header* h = hdr();
  Member* m = me();
  const uint64_t head0 = __atomic_load_n(&h->head, __ATOMIC_ACQUIRE);
  Entry* set = set_of(key, page);
  Entry e{};
  bool found = false;
  for (int w = 0; w < kWays && !found; w++) found = read_entry(&set[w], &e) && e.key == key && e.page == page;
  if (!found || !valid(e, head0)) {
    if (m) st(&m->misses, ld(&m->misses) + 1);
    return kMiss;
  }
  const uint64_t off = e.pos % log_bytes_;
  const uint8_t* rec = base_ + log_off_ + off;
  std::memcpy(t_record, rec, kRecordHeader + e.len);
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  const uint64_t head1 = __atomic_load_n(&h->head, __ATOMIC_ACQUIRE);
  if (head1 > log_bytes_ && e.pos < head1 - log_bytes_) {
    if (m) st(&m->misses, ld(&m->misses) + 1);  // overwritten while copied: a miss, the file has it
    return kMiss;
  }
  uint64_t rkey;
  uint32_t rpage, rlen;
  std::memcpy(&rkey, t_record, 8);
  std::memcpy(&rpage, t_record + 8, 4);
  std::memcpy(&rlen, t_record + 12, 4);
  bool ok = rkey == key && rpage == page && rlen == e.len;
  if (ok) {
    if (e.len == kPage) {
      std::memcpy(dst, t_record + kRecordHeader, kPage);
    } else {
      ok = lz4::available() &&
           lz4::decompress(reinterpret_cast<const char*>(t_record + kRecordHeader), reinterpret_cast<char*>(dst),
                           static_cast<int>(e.len), static_cast<int>(kPage)) == static_cast<int>(kPage);
    }
  }
  ok = ok && crc32c(dst, kPage) == e.crc;
  if (!ok) {
    if (m) st(&m->bad, ld(&m->bad) + 1);
    return kBad;
  }
  if (m) st(&m->hits, ld(&m->hits) + 1);
  return kHit;
}

bool SharedPool::lock() {
  Header* h = hdr();
  const uint32_t tid = static_cast<uint32_t>(::syscall(SYS_gettid));
  uint64_t t0 = now_ns();
  if (t0 < wedged_until_ns_) return false;
  for (int spin = 0; spin < 64; spin++) {
    uint32_t expected = 0;
    if (__atomic_compare_exchange_n(&h->lock, &expected, tid, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return true;
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  for (;;) {
    uint32_t v = __atomic_load_n(&h->lock, __ATOMIC_RELAXED);
    if (v == 0) {
      if (__atomic_compare_exchange_n(&h->lock, &v, tid, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return true;
      continue;
    }
    if (v == tid || !exists(v)) {
      // Its holder is gone (died in a put, or its word is garbage): take it over.
      if (__atomic_compare_exchange_n(&h->lock, &v, tid, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&h->steals, 1, __ATOMIC_RELAXED);
        return true;
      }
      continue;
    }
    const uint64_t t = now_ns();
    if (t - t0 > kLockWaitNs) {
      wedged_until_ns_ = t + kWedgedBackoffNs;
      return false;
    }
    timespec ts{0, 200'000};
    __atomic_fetch_add(&h->lock_waiters, 1, __ATOMIC_RELAXED);
    futex(&h->lock, FUTEX_WAIT, v, &ts);
    __atomic_fetch_sub(&h->lock_waiters, 1, __ATOMIC_RELAXED);
  }
}

void SharedPool::unlock() {
  Header* h = hdr();
  __atomic_store_n(&h->lock, 0u, __ATOMIC_RELEASE);
  if (__atomic_load_n(&h->lock_waiters, __ATOMIC_RELAXED) != 0) futex(&h->lock, FUTEX_WAKE, 1, nullptr);
}

int SharedPool::put(uint64_t key, uint32_t page, const uint8_t* src) { return put_impl(key, page, src, 0); }

void SharedPool::put_and_die_for_test(uint64_t key, uint32_t page, const uint8_t* src, int stage) {
  put_impl(key, page, src, stage);
}

bool SharedPool::lock_for_test() { return lock(); }

int SharedPool::put_impl(uint64_t key, uint32_t page, const uint8_t* src, int die_stage) {
  Header* h = hdr();
  Member* m = me();
  Entry* set = set_of(key, page);
  Entry e{};
  auto present = [&](uint64_t head) {
    for (int w = 0; w < kWays; w++)
      if (read_entry(&set[w], &e) && e.key == key && e.page == page && valid(e, head)) return true;
    return false;
  };
  if (die_stage == 0 && present(__atomic_load_n(&h->head, __ATOMIC_ACQUIRE))) {
    if (m) st(&m->duplicates, ld(&m->duplicates) + 1);
    return kAlready;
  }
  // Compress outside the lock, into this thread's record buffer.
  uint8_t* rec = t_record;
  int n = lz4::available() ? lz4::compress(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(rec + 16),
                                           static_cast<int>(kPage), static_cast<int>(kPage))
                           : 0;
  uint32_t len = n > 0 && n < static_cast<int>(kPage - 64) ? static_cast<uint32_t>(n) : kPage;
  if (len == kPage) std::memcpy(rec + 16, src, kPage);
  const uint32_t crc = crc32c(src, kPage);
  std::memcpy(rec, &key, 8);
  std::memcpy(rec + 8, &page, 4);
  std::memcpy(rec + 12, &len, 4);
  if (!lock()) return kBusy;
  uint64_t head = __atomic_load_n(&h->head, __ATOMIC_ACQUIRE);
  if (die_stage == 0 && present(head)) {
    unlock();
    if (m) st(&m->duplicates, ld(&m->duplicates) + 1);
    return kAlready;
  }
  // The way to use: the same page's stale entry, a free or stale one, else the oldest.
  int way = -1;
  uint64_t oldest = ~0ull;
  Entry was[kWays]{};
  bool was_ok[kWays]{};
  for (int w = 0; w < kWays; w++) {
    Entry& x = was[w];
    bool ok = was_ok[w] = read_entry(&set[w], &x);
    if (ok && x.key == key && x.page == page) {
      way = w;
      break;
    }
    if (!ok || !valid(x, head)) {
      if (oldest != 0) way = w;
      oldest = 0;
    } else if (x.pos < oldest) {
      oldest = x.pos;
      way = w;
    }
  }
  const uint64_t reclen = (kRecordHeader + len + 15) & ~15ull;
  uint64_t pos = head;
  if (pos % log_bytes_ + reclen > log_bytes_) pos += log_bytes_ - pos % log_bytes_;  // never split a record
  __atomic_store_n(&h->head, pos + reclen, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);  // readers that see the new bytes see the new head
  if (die_stage == 1) ::kill(::getpid(), SIGKILL);
  retire(pos + reclen);
  uint8_t* dst = base_ + log_off_ + pos % log_bytes_;
  if (die_stage == 2) {
    std::memcpy(dst, rec, (kRecordHeader + len) / 2);
    ::kill(::getpid(), SIGKILL);
  }
  std::memcpy(dst, rec, kRecordHeader + len);
  Entry* out = &set[way];
  __atomic_store_n(&out->check, 0u, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  if (was_ok[way]) uncount(was[way], pos + reclen);  // the entry is gone: off the counters
  st(&out->key, key);
  st(&out->pos, pos);
  if (die_stage == 3) ::kill(::getpid(), SIGKILL);
  st(&out->page, page);
  st(&out->len, len);
  st(&out->crc, crc);
  __atomic_store_n(&out->check, entry_check(key, pos, page, len, crc), __ATOMIC_RELEASE);
  count(pos, reclen);
  unlock();
  if (m) st(&m->puts, ld(&m->puts) + 1);
  return kStored;
}

SharedPool::Chunk* SharedPool::chunk(uint64_t k) const {
  return reinterpret_cast<Chunk*>(base_ + kHeaderBytes) + k % kChunkSlots;
}

namespace {
/** *p -= min(*p, v): counters a scribbler may have damaged never wrap below 0. */
void sub_sat(uint64_t* p, uint64_t v) { st(p, ld(p) - std::min(ld(p), v)); }
}  // namespace

void SharedPool::count(uint64_t pos, uint64_t bytes) {
  Header* h = hdr();
  Chunk* c = chunk(pos / chunk_bytes_);
  st(&c->pages, ld(&c->pages) + 1);
  st(&c->bytes, ld(&c->bytes) + bytes);
  st(&h->stored_pages, ld(&h->stored_pages) + 1);
  st(&h->stored_bytes, ld(&h->stored_bytes) + bytes);
}

void SharedPool::uncount(const Entry& e, uint64_t head) {
  // Counted when written, unless its chunk was retired since (the ring passed it whole).
  if (e.len == 0 || e.len > kPage || e.pos >= head) return;
  const uint64_t k = e.pos / chunk_bytes_;
  if (k < ld(&hdr()->retired)) return;
  const uint64_t bytes = (kRecordHeader + e.len + 15) & ~15ull;
  Chunk* c = chunk(k);
  Header* h = hdr();
  if (ld(&c->pages) == 0) return;  // scribbled (or a member died between these stores)
  sub_sat(&c->pages, 1);
  sub_sat(&c->bytes, bytes);
  sub_sat(&h->stored_pages, 1);
  sub_sat(&h->stored_bytes, bytes);
}

void SharedPool::retire(uint64_t head) {
  if (head <= log_bytes_) return;
  Header* h = hdr();
  // Chunks that end at or below head - log_bytes hold only overwritten records.
  const uint64_t target = (head - log_bytes_) / chunk_bytes_;
  uint64_t r = ld(&h->retired);
  if (r >= target) {
    if (r > target) st(&h->retired, target);  // scribbled: those chunks are retired when passed
    return;
  }
  if (target - r >= kChunkSlots) {  // the ring moved past every slot (or head was scribbled)
    for (uint64_t k = 0; k < kChunkSlots; k++) {
      st(&chunk(k)->pages, uint64_t{0});
      st(&chunk(k)->bytes, uint64_t{0});
    }
    st(&h->stored_pages, uint64_t{0});
    st(&h->stored_bytes, uint64_t{0});
  } else {
    for (; r < target; r++) {
      Chunk* c = chunk(r);
      sub_sat(&h->stored_pages, ld(&c->pages));
      sub_sat(&h->stored_bytes, ld(&c->bytes));
      st(&c->pages, uint64_t{0});
      st(&c->bytes, uint64_t{0});
    }
  }
  st(&h->retired, target);
}

void SharedPool::publish_held(uint64_t bytes) {
  if (Member* m = me()) st(&m->held_bytes, bytes);
}

uint64_t SharedPool::others_held() const {
  uint64_t sum = 0;
  for (int i = 0; i < kMembers; i++) {
    if (i == slot_) continue;
    const Member* m = member(i);
    if (ld(&m->pid) != 0) sum += std::min<uint64_t>(ld(&m->held_bytes), 1ull << 50);
  }
  return sum;
}

int SharedPool::reclaim_dead() {
  int freed = 0;
  for (int i = 0; i < kMembers; i++) {
    if (i == slot_) continue;
    Member* m = member(i);
    uint32_t pid = __atomic_load_n(&m->pid, __ATOMIC_ACQUIRE);
    if (pid == 0) continue;
    const uint64_t start = ld(&m->start_time);
    bool alive = exists(pid) && (start == 0 || start_time_of(pid) == start);
    if (!alive && __atomic_compare_exchange_n(&m->pid, &pid, 0u, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      st(&m->held_bytes, uint64_t{0});
      freed++;
    }
  }
  return freed;
}

SharedPool::GroupStats SharedPool::group() const {
  GroupStats g;
  for (int i = 0; i < kMembers; i++) {
    const Member* m = member(i);
    if (ld(&m->pid) == 0) continue;
    g.members++;
    g.held_bytes += std::min<uint64_t>(ld(&m->held_bytes), 1ull << 50);
    g.puts += ld(&m->puts);
    g.hits += ld(&m->hits);
    g.misses += ld(&m->misses);
    g.duplicates += ld(&m->duplicates);
    g.bad += ld(&m->bad);
  }
  g.head = __atomic_load_n(&hdr()->head, __ATOMIC_ACQUIRE);
  g.steals = ld(&hdr()->steals);
  g.stored_pages = std::min<uint64_t>(ld(&hdr()->stored_pages), static_cast<uint64_t>(nsets_) * kWays);
  g.stored_bytes = std::min(ld(&hdr()->stored_bytes), log_bytes_);
  return g;
}

uint64_t SharedPool::steals() const { return ld(&hdr()->steals); }

SharedPool::Audit SharedPool::audit() const {
  Audit a;
  const uint64_t head = __atomic_load_n(&hdr()->head, __ATOMIC_ACQUIRE);
  const Entry* all = reinterpret_cast<const Entry*>(base_ + index_off_);
  for (uint64_t s = 0; s < nsets_; s++) {
    Entry v[kWays];
    bool ok[kWays];
    for (int w = 0; w < kWays; w++) {
      ok[w] = read_entry(&all[s * kWays + w], &v[w]) && valid(v[w], head);
      if (!ok[w]) continue;
      a.entries++;
      a.bytes += (kRecordHeader + v[w].len + 15) & ~15ull;
      for (int u = 0; u < w; u++)
        if (ok[u] && v[u].key == v[w].key && v[u].page == v[w].page) {
          a.duplicates++;
          break;
        }
    }
  }
  return a;
}

uint64_t SharedPool::used_bytes() const {
  const uint64_t head = __atomic_load_n(&hdr()->head, __ATOMIC_ACQUIRE);
  return log_off_ + std::min(head, log_bytes_);
}

}  // namespace tmem
