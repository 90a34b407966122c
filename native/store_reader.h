// A read-only native reader of the tmem store that lives in SharedArrayBuffers,
// for the native fault path: given (pool, object id, index) it copies the
// stored object's bytes out, with no JavaScript and no allocation.
//
// Layouts followed (each reader below names its JS file; keep them in step):
//   ArenaView        lib/arena.ts          control header, chunks of frames
//   index lookup     lib/tmem/index.ts     pool table, stripes, object hash, records
//                    lib/tmem/pagetable.ts the per-object radix tree of 64-slot nodes
//   read_zsmalloc    lib/zpool/zsmalloc.ts handle table -> zspage -> frames
//   read_zbud        lib/zpool/zbud.ts     handle -> frame record, first/last buddy
//   oid_hash         lib/tmem/hash.ts      oidHash / mix32
//
// Locks (lib/tmem/lock.ts, through shared_lock.h), in the JS order, each only
// *tried*: the pool's USERS count (left at once if DESTROYING), the object's
// stripe mutex, the zsmalloc MIGRATE read lock around the bytes. Any lock that
// is taken gives kBusy: the caller hands the work to JavaScript.
//
// Garbage: every word index, node id, handle, frame number and length read from
// shared memory is checked against the buffer sizes taken at construction;
// anything out of range gives kBad, never a read outside the buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tmem {

/** A span of Int32 words in a SharedArrayBuffer. */
struct SharedWords {
  int32_t* p = nullptr;
  size_t n = 0;
};

/** The frames of lib/arena.ts: `chunks[c]` holds framesPerChunk frames of 4096 bytes. */
struct ArenaView {
  std::vector<uint8_t*> chunks;
  uint32_t frames_per_chunk = 0;
  uint32_t chunk_shift = 0;
  uint64_t max_frames = 0;
  /** Pointer to byte `off` of frame `pfn` (nullptr when pfn is out of the arena). */
  const uint8_t* frame(int64_t pfn, uint32_t off) const;
};

class StoreReader {
 public:
  /** lookup() results other than a length (>= 0). */
  static constexpr int kAbsent = -1;
  static constexpr int kBusy = -2;
  static constexpr int kBad = -3;

  /**
   * Binds the reader to a store: `control` (the index), `metas[p]` (one zpool
   * meta buffer per pool), the arena's control words and chunk buffers. Returns
   * false and sets *err when they do not describe a store (bad magic, sizes
   * that do not fit the buffers).
   */
  bool bind(SharedWords control, std::vector<SharedWords> metas, SharedWords arena_control,
            std::vector<std::pair<uint8_t*, size_t>> chunks, std::string* err);

  /**
   * Copies the object stored as page `index` of object `oid` (six Int32
   * halves: lo0 hi0 lo1 hi1 lo2 hi2) of `pool` into dst (cap bytes); returns
   * its length, kAbsent, kBusy (a lock was taken: ask JS) or kBad (the shared
   * state is not sound; nothing outside the buffers was read).
   */
  int lookup(uint32_t pool, const int32_t oid[6], uint32_t index, uint8_t* dst, size_t cap) const;

  /** lib/tmem/hash.ts oidHash. */
  static uint32_t oid_hash(uint32_t pool, const int32_t oid[6]);

 private:
  int find_handle(uint32_t pool, const int32_t oid[6], uint32_t hash, uint32_t index, int32_t* handle) const;
  int read_zsmalloc(const SharedWords& m, int32_t handle, uint8_t* dst, size_t cap) const;
  int read_zbud(const SharedWords& m, int32_t handle, uint8_t* dst, size_t cap) const;

  SharedWords c_;
  std::vector<SharedWords> metas_;
  ArenaView arena_;
  uint32_t max_pools_ = 0, n_stripes_ = 0, stripe_bits_ = 0, oh_cap_ = 0, ops_ = 0, max_nodes_ = 0;
  size_t pools_ = 0, stripes_ = 0, oh_ = 0, rec_ = 0, nb_ = 0;
};

}  // namespace tmem
