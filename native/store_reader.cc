// See store_reader.h. Constants below are copied from the JS files named in
// each section; a change there must be made here too (the property tests in
// test/native-store-reader.test.ts compare both readers over random states).
#include "store_reader.h"

#include <cstring>

#include "shared_lock.h"

namespace tmem {
namespace {

constexpr uint32_t kFrame = 4096;

// ---- lib/arena.ts
constexpr int32_t kArenaMagic = 0x41524e41;
constexpr size_t A_MAGIC = 0, A_FPC = 2, A_MAXCH = 3;

// ---- lib/tmem/index.ts
constexpr int32_t kStoreMagic = 0x544d454d;
constexpr size_t H_MAGIC = 0, H_MAX_POOLS = 2, H_NSTRIPES = 3, H_OPS = 4, H_OHCAP = 5, H_MAX_NODES = 6;
constexpr size_t HDR = 64, PW = 16, P_STATE = 0, P_USERS = 1, P_DRIVER = 3;
constexpr int32_t DESTROYING = 1 << 30;
constexpr size_t SW = 4, S_LOCK = 0;
constexpr size_t RW = 12, R_POOL = 0, R_OID = 1, R_TREE = 8;
constexpr int32_t DRIVER_ZSMALLOC = 0, DRIVER_ZBUD = 1;

// ---- lib/tmem/pagetable.ts
constexpr size_t T_ROOT = 0, T_BASE = 1, T_HEIGHT = 2;
constexpr uint32_t NODE_BITS = 6, NODE_SLOTS = 64, NODE_MASK = 63, MAX_HEIGHT = 6;

// ---- lib/zpool/zsmalloc.ts
constexpr int32_t kZsMagic = 0x5a534d41;
constexpr size_t ZS_MIGRATE = 2, ZS_HBUMP = 4, ZS_MAXZ = 10;
constexpr size_t ZS_HDR = 64, ZS_NCLASS = 255, ZS_CW = 32, ZS_C_SIZE = 0;
constexpr size_t ZS_CLS = ZS_HDR, ZS_ZSB = ZS_CLS + ZS_NCLASS * ZS_CW + 256, ZS_ZW = 20;
constexpr size_t Z_CLASS = 0, Z_NFRAMES = 7, Z_PFN = 8;
constexpr uint32_t OBJ_BITS = 10, OBJ_MASK = (1u << OBJ_BITS) - 1, ZS_MAX_FRAMES = 8;

// ---- lib/zpool/zbud.ts
constexpr int32_t kZbudMagic = 0x5a425544;
constexpr size_t ZB_PBUMP = 3, ZB_PR = 64 + 64, ZB_PW = 16;
constexpr size_t P_PFN = 0, P_FIRST = 1, P_LAST = 2, P_FSIZE = 3, P_LSIZE = 4, P_LIVE = 14;
constexpr uint32_t ZBUD_CHUNK = 64, ZBUD_NCHUNKS = 64;

/** Relaxed load of a shared word (JS may write it concurrently: a whole word, never torn). */
inline int32_t ld(const SharedWords& w, size_t i) { return __atomic_load_n(w.p + i, __ATOMIC_RELAXED); }

/** lib/tmem/hash.ts mix32: murmur3 finaliser, top 30 bits. */
inline uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h >> 2;
}

}  // namespace

const uint8_t* ArenaView::frame(int64_t pfn, uint32_t off) const {
  if (pfn < 0 || static_cast<uint64_t>(pfn) >= max_frames || off >= kFrame) return nullptr;
  const uint64_t f = static_cast<uint64_t>(pfn);
  return chunks[f >> chunk_shift] + ((f & (frames_per_chunk - 1)) << 12) + off;
}

uint32_t StoreReader::oid_hash(uint32_t pool, const int32_t o[6]) {
  auto u = [](int32_t v) { return static_cast<uint32_t>(v); };
  uint32_t h = mix32(((pool + 1) * 0x9e3779b1u) ^ u(o[0]));
  h = mix32(h ^ u(o[1]) ^ 0x27d4eb2fu);
  h = mix32(h ^ u(o[2]));
  h = mix32(h ^ u(o[3]) ^ 0x165667b1u);
  h = mix32(h ^ u(o[4]));
  return mix32(h ^ u(o[5]) ^ 0x61c88647u);
}

bool StoreReader::bind(SharedWords control, std::vector<SharedWords> metas, SharedWords arena_control,
                       std::vector<std::pair<uint8_t*, size_t>> chunks, std::string* err) {
  // arena
  if (arena_control.n < 16 || ld(arena_control, A_MAGIC) != kArenaMagic) return *err = "arena: bad magic", false;
  const int32_t fpc = ld(arena_control, A_FPC), maxch = ld(arena_control, A_MAXCH);
  if (fpc < 32 || (fpc & (fpc - 1)) != 0 || maxch < 1 || static_cast<size_t>(maxch) != chunks.size()) {
    return *err = "arena: chunk count or size does not match its control words", false;
  }
  arena_.chunks.clear();
  for (auto& ch : chunks) {
    if (ch.first == nullptr || ch.second != static_cast<size_t>(fpc) * kFrame) {
      return *err = "arena: a chunk buffer is not framesPerChunk * 4096 bytes", false;
    }
    arena_.chunks.push_back(ch.first);
  }
  arena_.frames_per_chunk = static_cast<uint32_t>(fpc);
  arena_.chunk_shift = 31 - __builtin_clz(static_cast<uint32_t>(fpc));
  arena_.max_frames = static_cast<uint64_t>(fpc) * static_cast<uint64_t>(maxch);

  // index
  c_ = control;
  if (c_.n < HDR || ld(c_, H_MAGIC) != kStoreMagic) return *err = "control: not a tmem store (bad magic)", false;
  const int32_t mp = ld(c_, H_MAX_POOLS), ns = ld(c_, H_NSTRIPES), ops = ld(c_, H_OPS), oh = ld(c_, H_OHCAP),
                mn = ld(c_, H_MAX_NODES);
  if (mp < 1 || mp > 1024 || ns < 1 || (ns & (ns - 1)) != 0 || ops < 1 || oh < 1 || mn < 1) {
    return *err = "control: header out of range", false;
  }
  max_pools_ = mp;
  n_stripes_ = ns;
  ops_ = ops;
  oh_cap_ = oh;
  max_nodes_ = mn;
  stripe_bits_ = 31 - __builtin_clz(n_stripes_);
  pools_ = HDR;
  stripes_ = pools_ + size_t(max_pools_) * PW;
  oh_ = stripes_ + size_t(n_stripes_) * SW;
  rec_ = oh_ + size_t(n_stripes_) * oh_cap_;
  const size_t cnt = rec_ + size_t(n_stripes_) * ops_ * RW;
  nb_ = (cnt + (size_t(max_nodes_) + 1) + 15) & ~size_t(15);
  if (nb_ + (size_t(max_nodes_) + 1) * NODE_SLOTS > c_.n) return *err = "control: smaller than its header says", false;
  if (metas.size() != max_pools_) return *err = "metas: expected one meta buffer per pool", false;
  metas_ = std::move(metas);
  return true;
}

int StoreReader::find_handle(uint32_t pool, const int32_t o[6], uint32_t h, uint32_t index, int32_t* handle) const {
  const uint32_t stripe = h & (n_stripes_ - 1);
  const size_t hb = oh_ + size_t(stripe) * oh_cap_;
  uint32_t i = (h >> stripe_bits_) % oh_cap_;
  int64_t slot = -1;
  for (uint32_t n = 0; n < oh_cap_; n++) {
    const int32_t e = ld(c_, hb + i);
    if (e == 0) break;
    if (e < 1 || static_cast<uint64_t>(e) > uint64_t(n_stripes_) * ops_) return kBad;
    const size_t r = rec_ + size_t(e - 1) * RW;
    if (ld(c_, r + R_POOL) == static_cast<int32_t>(pool + 1) && ld(c_, r + R_OID) == o[0] &&
        ld(c_, r + R_OID + 1) == o[1] && ld(c_, r + R_OID + 2) == o[2] && ld(c_, r + R_OID + 3) == o[3] &&
        ld(c_, r + R_OID + 4) == o[4] && ld(c_, r + R_OID + 5) == o[5]) {
      slot = e - 1;
      break;
    }
    if (++i == oh_cap_) i = 0;
  }
  if (slot < 0) return kAbsent;
  // the radix tree (pagetable.ts RadixIndex.get)
  const size_t th = rec_ + size_t(slot) * RW + R_TREE;
  const int32_t root = ld(c_, th + T_ROOT);
  if (root == 0) return kAbsent;
  const int32_t height = ld(c_, th + T_HEIGHT);
  if (height < 0 || static_cast<uint32_t>(height) > MAX_HEIGHT) return kBad;
  const uint32_t hgt = static_cast<uint32_t>(height);
  const uint32_t base = static_cast<uint32_t>(ld(c_, th + T_BASE));
  if (hgt < MAX_HEIGHT && (index >> (NODE_BITS * hgt)) != (base >> (NODE_BITS * hgt))) return kAbsent;
  if (hgt == 0) return *handle = root, 0;
  int32_t n = root;
  for (uint32_t l = hgt; l > 1; l--) {
    if (n < 1 || static_cast<uint32_t>(n) > max_nodes_) return kBad;
    n = ld(c_, nb_ + size_t(n) * NODE_SLOTS + ((index >> (NODE_BITS * (l - 1))) & NODE_MASK));
    if (n == 0) return kAbsent;
  }
  if (n < 1 || static_cast<uint32_t>(n) > max_nodes_) return kBad;
  const int32_t hd = ld(c_, nb_ + size_t(n) * NODE_SLOTS + (index & NODE_MASK));
  if (hd == 0) return kAbsent;
  *handle = hd;
  return 0;
}

int StoreReader::lookup(uint32_t pool, const int32_t o[6], uint32_t index, uint8_t* dst, size_t cap) const {
  if (pool >= max_pools_) return kBad;
  const size_t pb = pools_ + size_t(pool) * PW;
  if (ld(c_, pb + P_STATE) != 1) return kAbsent;
  // 1. count in as a user of the pool (index.ts enter/leave; destroyPool polls the count)
  int32_t* users = c_.p + pb + P_USERS;
  if (__atomic_fetch_add(users, 1, __ATOMIC_SEQ_CST) & DESTROYING) {
    __atomic_fetch_sub(users, 1, __ATOMIC_SEQ_CST);
    return kBusy;
  }
  int r;
  const uint32_t h = oid_hash(pool, o);
  int32_t* lockw = c_.p + stripes_ + size_t(h & (n_stripes_ - 1)) * SW + S_LOCK;
  // 2. the object's stripe lock
  if (!shared_lock::try_lock(lockw)) {
    r = kBusy;
  } else {
    int32_t hd = 0;
    r = find_handle(pool, o, h, index, &hd);
    if (r == 0) {
      const int32_t driver = ld(c_, pb + P_DRIVER);
      const SharedWords& m = metas_[pool];
      if (hd <= 0) r = kBad;
      else if (driver == DRIVER_ZSMALLOC) r = read_zsmalloc(m, hd, dst, cap);
      else if (driver == DRIVER_ZBUD) r = read_zbud(m, hd, dst, cap);
      else r = kBad;
    }
    shared_lock::unlock(lockw);
  }
  __atomic_fetch_sub(users, 1, __ATOMIC_SEQ_CST);
  return r;
}

int StoreReader::read_zsmalloc(const SharedWords& m, int32_t handle, uint8_t* dst, size_t cap) const {
  if (m.n < ZS_ZSB || ld(m, 0) != kZsMagic) return kBad;
  // 4. MIGRATE read lock: compaction moves objects (rewrites LOC) under its write lock
  int32_t* migrate = m.p + ZS_MIGRATE;
  if (!shared_lock::try_read_lock(migrate)) return kBusy;
  int r = kBad;
  do {
    const int32_t maxz = ld(m, ZS_MAXZ);
    if (maxz < 1) break;
    const size_t ht = ZS_ZSB + size_t(maxz) * ZS_ZW;
    if (handle > ld(m, ZS_HBUMP)) break;
    const size_t e = ht + size_t(handle - 1) * 2;
    if (e + 1 >= m.n) break;
    const uint32_t loc = static_cast<uint32_t>(ld(m, e));
    const int32_t size = ld(m, e + 1);
    if (size < 1 || size > int32_t(kFrame) + 1 || static_cast<size_t>(size) > cap) break;
    const uint32_t zid = loc >> OBJ_BITS, obj = loc & OBJ_MASK;
    if (zid >= static_cast<uint32_t>(maxz)) break;
    const size_t z = ZS_ZSB + size_t(zid) * ZS_ZW;
    const int32_t cls = ld(m, z + Z_CLASS);
    if (cls < 0 || static_cast<size_t>(cls) >= ZS_NCLASS) break;
    const int32_t csize = ld(m, ZS_CLS + size_t(cls) * ZS_CW + ZS_C_SIZE);
    const int32_t nfr = ld(m, z + Z_NFRAMES);
    if (csize < size || nfr < 1 || static_cast<uint32_t>(nfr) > ZS_MAX_FRAMES) break;
    uint64_t off = uint64_t(obj) * uint64_t(csize);
    if (off + uint64_t(size) > uint64_t(nfr) * kFrame) break;
    size_t done = 0;
    bool ok = true;
    while (done < static_cast<size_t>(size)) {
      const uint32_t fi = static_cast<uint32_t>(off >> 12), in = static_cast<uint32_t>(off & (kFrame - 1));
      const uint8_t* src = arena_.frame(ld(m, z + Z_PFN + fi), in);
      if (!src) {
        ok = false;
        break;
      }
      size_t n = kFrame - in;
      if (n > size - done) n = size - done;
      std::memcpy(dst + done, src, n);
      done += n;
      off += n;
    }
    if (ok) r = size;
  } while (false);
  shared_lock::read_unlock(migrate);
  return r;
}

int StoreReader::read_zbud(const SharedWords& m, int32_t handle, uint8_t* dst, size_t cap) const {
  if (m.n < ZB_PR || ld(m, 0) != kZbudMagic) return kBad;
  const uint32_t p = static_cast<uint32_t>(handle - 1) >> 1;
  const bool first = ((handle - 1) & 1) == 0;
  if (static_cast<int64_t>(p) >= ld(m, ZB_PBUMP)) return kBad;
  const size_t r = ZB_PR + size_t(p) * ZB_PW;
  if (r + ZB_PW > m.n || ld(m, r + P_LIVE) != 1) return kBad;
  const int32_t chunks = ld(m, r + (first ? P_FIRST : P_LAST));
  const int32_t size = ld(m, r + (first ? P_FSIZE : P_LSIZE));
  if (chunks < 1 || static_cast<uint32_t>(chunks) > ZBUD_NCHUNKS || size < 1 ||
      static_cast<uint32_t>(size) > static_cast<uint32_t>(chunks) * ZBUD_CHUNK || static_cast<size_t>(size) > cap) {
    return kBad;
  }
  const uint32_t off = first ? 0 : kFrame - static_cast<uint32_t>(chunks) * ZBUD_CHUNK;
  const uint8_t* src = arena_.frame(ld(m, r + P_PFN), off);
  if (!src) return kBad;
  std::memcpy(dst, src, static_cast<size_t>(size));
  return size;
}

}  // namespace tmem
