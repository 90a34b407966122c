// Xen tmem's shared ephemeral pool for the processes of one user on one host: the
// clean pages of read-only mapped files, compressed once for every member that maps
// the same file (lib/dispatcher/shared.ts and lib/swap.ts are its JS face, README "Shared pools").
//
// The store is one System V shared memory segment (shmget, mode 0600, key derived
// from the user id and the pool's name). System V, not a /dev/shm file: a segment's
// size is fixed at creation, so no member can truncate it under the others (a
// truncated file mapping raises SIGBUS in whoever reads past its new end).
//
//   offset 0            Header (4 KiB)
//     magic, version    written last by the creator: a joiner waits for them
//     lock              futex word: 0 free, else the holder's thread id (gettid) (no FUTEX_PRIVATE_FLAG)
//     lock_waiters      members sleeping on the word (the holder wakes one)
//     head              next log position (bytes, only ever grows)
//     geometry          nsets, index_off, log_off, log_bytes, chunk_bytes (read once, at attach)
//     stored_pages      index entries written and not yet replaced or retired (below), and
//     stored_bytes      their records' bytes: what stats().shared.group reports, with no scan
//     retired           ring chunks (below) whose records have all been overwritten
//     members[kMembers] pid, start time, the bytes it holds (the group's budget), counters
//   4096                Chunk table (4 KiB): kChunkSlots slots of { u64 pages; u64 bytes }
//                       the ring, by absolute position, in kChunks chunks of chunk_bytes;
//                       slot (pos / chunk_bytes) % kChunkSlots counts the entries whose
//                       record starts in that chunk
//   index_off (8192)    Index: nsets sets of kWays entries (32 bytes each)
//     Entry { u64 key; u64 pos; u32 page; u32 len; u32 crc; u32 check }
//       key    the file's identity (device, inode, size, mtime, ctime) hashed to 64 bits:
//              a changed file has a new key and never meets its old pages
//       pos    the record's log position; len its compressed bytes (kPage: stored raw)
//       crc    CRC-32C of the page's 4096 bytes; check: CRC-32C of the other fields
//   log_off             Log: a ring of records, each [u64 key][u32 page][u32 len][bytes],
//                       16-byte aligned, never split across the ring's end
//
// The counters, all changed by put under the lock: an entry written adds 1 (and its
// record's bytes) to stored_* and to its chunk's slot; an entry it overwrites that is
// still counted (its check holds, its chunk not yet retired) is taken off both. The
// ring overwriting old records makes their entries stale without touching them: when
// head - log_bytes has passed the end of a chunk, every record in it is gone, and its
// slot is taken off stored_* and zeroed (retired advances; at most kChunkSlots slots per
// put). So stored_pages is exact (it equals audit().entries) until the ring first
// wraps; after, it also counts the records of the one chunk the ring is overwriting
// until the ring has passed all of it: at most chunk_bytes (1/kChunks of the ring) of
// records too many. A member that dies between taking an entry off and writing the new
// one, or scribbles, can leave it a few pages off (clamped to the index's size).
//
// Writers (put) take the lock, advance head past the new record *before* writing
// it (the bytes it overwrites are those of records now older than head - log_bytes),
// write the record, then the entry: check = 0, fields, check last. Readers (get) take
// no lock: they copy the entry and the record out, then accept them only if the
// check matches, the record still lies within the ring (pos >= head - log_bytes,
// read after the copy), its header names the same key, page and length, it
// decompresses to exactly 4096 bytes and the CRC of those bytes matches. So a
// member that dies anywhere in a put, or scribbles over the segment, can make
// others miss (they read the file), never read out of bounds or get wrong bytes
// by accident. A member that deliberately forges a record with its CRCs can make
// others read wrong bytes of files it could read itself: README "Who may share a
// pool". The geometry is validated against the segment's size once, at attach, and
// kept in private memory; every offset read from shared memory is bounded.
//
// The lock: a put waits for it at most kLockWaitNs. A holder that no longer exists
// (kill(tid, 0) == ESRCH) has its lock taken over (counted in steals); a live holder
// that keeps it longer (stopped, or hostile) only makes puts give up for a while,
// faults never wait for it (get takes no lock).
//
// Lifetime: the last member to close removes the segment (IPC_RMID once nothing is
// attached). A process that exits without closing (exit(), returning from main, an
// uncaught JS exception: anything that runs atexit handlers) is handled by one atexit
// handler over every pool the process attached: it frees the process's member slots (a
// compare-and-swap of each slot's pid, never the lock) and marks IPC_RMID each segment
// that no other process has attached (shm_nattch equals this process's attachments).
// It detaches nothing (another thread, the dispatcher Worker, may still be reading);
// the kernel removes a marked segment when its last attachment goes, at exit. A child
// forked without exec inherits the attachments and the handler, and frees no slot of
// its parent's (a slot is freed only by the pid that took it). SIGKILL, or a crash that
// skips atexit, leaves the segment: the next member that opens the name joins it and
// frees the dead slots, or `ipcrm` removes it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

namespace tmem {

class SharedPool {
 public:
  static constexpr uint32_t kPage = 4096;
  static constexpr int kMembers = 48;
  static constexpr int kWays = 4;
  /** The ring's chunks, and the table's slots (2 more: the chunks a window of the ring spans). */
  static constexpr uint64_t kChunks = 254;
  static constexpr uint64_t kChunkSlots = 256;

  struct Member {
    uint32_t pid;  // 0: free slot
    uint32_t pad;
    uint64_t start_time;  // /proc/<pid>/stat field 22: a reused pid is not the member
    uint64_t held_bytes;  // what the member holds of its own memory (resident + pool + metadata)
    uint64_t puts, hits, misses, duplicates, bad;
  };
  static_assert(sizeof(Member) == 64, "member slot is 64 bytes");

  struct Entry {
    uint64_t key;
    uint64_t pos;
    uint32_t page;
    uint32_t len;
    uint32_t crc;
    uint32_t check;
  };
  static_assert(sizeof(Entry) == 32, "entry is 32 bytes");

  /** get() results. */
  enum GetResult : int { kMiss = 0, kHit = 1, kBad = -1 };
  /** put() results. */
  enum PutResult : int { kBusy = 0, kStored = 1, kAlready = 2 };

  struct Audit {
    uint64_t entries = 0;     // entries whose record is still in the ring and whose check holds
    uint64_t bytes = 0;       // their records' bytes
    uint64_t duplicates = 0;  // entries naming a (key, page) another valid entry names
  };

  struct GroupStats {
    uint32_t members = 0;
    uint64_t held_bytes = 0, puts = 0, hits = 0, misses = 0, duplicates = 0, bad = 0;
    uint64_t head = 0, steals = 0;
    uint64_t stored_pages = 0, stored_bytes = 0;  // the header's counters (see the drawing above)
  };

  /** The segment key for (uid, name): what a member of another session computes too. */
  static int32_t segment_key(uid_t uid, const std::string& name);

  /**
   * Joins (creating if needed) the pool `name` of the effective user: a segment of
   * `bytes` (a joiner takes the existing segment's size). `member`: take a member
   * slot (the dispatcher) or only look (stats). `create` false: only an existing
   * segment (`tmem stats --audit`; SysError ENOENT if there is none). Throws SysError, or
   * std::runtime_error with a message naming what is wrong with an existing segment.
   */
  SharedPool(const std::string& name, uint64_t bytes, bool member, bool create = true);
  ~SharedPool();
  SharedPool(const SharedPool&) = delete;
  SharedPool& operator=(const SharedPool&) = delete;

  /** A page of file `key`: decompressed into dst (4096 bytes) on kHit. */
  int get(uint64_t key, uint32_t page, uint8_t* dst);
  /** Stores the page (4096 bytes at src) unless it is already there or the lock cannot be had. */
  int put(uint64_t key, uint32_t page, const uint8_t* src);
  /** This member's held bytes, for the group's budget. */
  void publish_held(uint64_t bytes);
  /** Held bytes of the other live members. */
  uint64_t others_held() const;
  /** Frees the slots of members that no longer exist; returns how many. */
  int reclaim_dead();
  GroupStats group() const;
  Audit audit() const;
  /** Bytes of the segment in use: header, index and the part of the ring written. */
  uint64_t used_bytes() const;
  uint64_t size() const { return size_; }
  int shm_id() const { return id_; }
  /** Bytes of the ring per chunk (the most stored_bytes can count too many, less one record). */
  uint64_t chunk_bytes() const { return chunk_bytes_; }
  /** The whole segment (tests: a hostile member scribbles over it). */
  uint8_t* base() const { return base_; }
  /** Locks taken over from dead holders, in this member's puts. */
  uint64_t steals() const;
  /**
   * For tests only: take the lock and return (a child then dies holding it), or die
   * (SIGKILL, from inside) at `stage` of a put: 1 after head moved, 2 with the record
   * half written, 3 with the entry half written.
   */
  bool lock_for_test();
  void put_and_die_for_test(uint64_t key, uint32_t page, const uint8_t* src, int stage);

  struct Header;
  struct Chunk;

 private:
  bool lock();
  void unlock();
  Header* hdr() const { return reinterpret_cast<Header*>(base_); }
  Chunk* chunk(uint64_t k) const;
  /** Under the lock: counts an entry written at pos, takes off one overwritten, retires chunks the ring passed. */
  void count(uint64_t pos, uint64_t bytes);
  void uncount(const Entry& e, uint64_t head);
  void retire(uint64_t head);
  /** Gives the member slot back, if this process (not a parent it was forked from) took it. */
  void release_slot();
  /** The atexit handler (see "Lifetime" above). */
  static void at_exit();
  Entry* set_of(uint64_t key, uint32_t page) const;
  bool valid(const Entry& e, uint64_t head) const;
  int put_impl(uint64_t key, uint32_t page, const uint8_t* src, int die_stage);
  Member* me() const {
    const int s = slot_.load(std::memory_order_relaxed);
    return s >= 0 ? member(s) : nullptr;
  }
  Member* member(int i) const;

  int id_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  // Geometry, validated once and kept here (never re-read from shared memory).
  uint32_t nsets_ = 0;
  uint64_t index_off_ = 0, log_off_ = 0, log_bytes_ = 0, chunk_bytes_ = 0;
  std::atomic<int> slot_{-1};     // -1 once the atexit handler gave it back (the Worker may still be running)
  uint32_t pid_ = 0;              // the process that attached (a fork child has its parent's here)
  uint64_t wedged_until_ns_ = 0;  // a live holder kept the lock too long: puts give up until then
};

/** The `code` of an error SharedPool's constructor threw about an existing segment, or nullptr. */
const char* shared_pool_error_code(const std::exception& e);

}  // namespace tmem
