// FaultServe: the native server of one page fault on a page in a fast state,
// with no JavaScript, callable from a signal handler.
//
// Layouts it follows (docs/layout.md is the one description both sides keep; the JS side
// of the served records and the region table is lib/dispatcher/native-faults.ts):
//   page state + aux      page_state.h / lib/dispatcher/pagestate.ts
//   staging slot table    [claimed][region][page][kept] Int32 x slots (pagestate.ts)
//   the tmem store        store_reader.h (frontswap object (region id, 0, 0), index = page)
//   served-record ring    ServedRing below / lib/dispatcher/native-faults.ts
//   region table          RegionTable below (process-wide, fixed slots)
//
//   serve(addr, flags)
//     region table lookup (pin the slot: users++)      not found -> kForward
//     state[page]   NEVER (anon)  zero page (read) / zeroed copy (write)    -> ACTIVE
//                   SAME          fill word (zero + read: zero page)         -> ACTIVE
//                   STORED        StoreReader lookup + decode + COPY         read: COPY|WP -> CLEAN
//                                                                            write: -> ACTIVE (pool copy to drop)
//                   STAGED        MOVE back from its slot (COPY if the slot is claimed by a
//                                 reader, or on another uffd); read of a clean one: COPY|WP -> CLEAN
//                   ACTIVE/CLEAN  (missing fault) served meanwhile (another thread, a readahead): UFFDIO_WAKE
//                   anything else, a WP fault, a lost CAS, a lock taken (kBusy), a full ring,
//                   a codec it cannot run, EAGAIN/EBUSY from the kernel      -> kForward
//     claim (page_state::claim) before, publish after, exactly as lib/dispatcher/faults.ts;
//     a served record queued for the JS dispatcher's bookkeeping (ServedRing).
//     then, for a STORED or SAME fault on the page a sequential run reaches next (ring words 8-10):
//     readahead   the next window pages (2, 4, .. kRaMaxWindow) while STORED or SAME, with room:
//                 STORED decoded into Scratch::run, one COPY|WP per kRaChunk pages -> CLEAN
//                 SAME   refilled into Scratch::run, one COPY per kRaChunk pages -> ACTIVE
//
// Async-signal-safety: serve() takes no lock, allocates nothing, throws
// nothing, touches no lazily-initialised thread_local and saves/restores errno.
// Scratch (a staging page, an object buffer and a zstd context) comes from a
// fixed pool taken with a CAS (acquire_scratch), or from the caller. Everything
// that allocates (init(), RegionTable::add/remove, Server setup) runs outside
// signal context.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tmem {

class StoreReader;

namespace fault_serve {

/** What serve() did with a fault. */
enum class Outcome : int {
  /** The page is installed (or the fault was stale and its waiters woken): the faulting thread may go on. */
  kServed = 0,
  /** Not served, nothing changed: hand the fault to the JS dispatcher exactly as it came. */
  kForward = 1,
};

/** Served-record kinds: what the JS dispatcher must account for (lib/dispatcher/native-faults.ts). */
enum RecordKind : int32_t {
  kRecNone = 0,          // a reserved cell left unused (the fault was forwarded after all)
  kRecZero = 1,          // NEVER -> ACTIVE                                 resident, FIFO tail
  kRecSame = 2,          // SAME -> ACTIVE                                  same count down, resident
  kRecPoolClean = 3,     // STORED -> CLEAN (COPY|WP, pool copy kept)        arg: the STORED aux word
  kRecPoolDirty = 4,     // STORED -> ACTIVE                                 arg: the STORED aux; drop pool copy
  kRecStagedClean = 5,   // STAGED (clean, read) -> CLEAN (COPY|WP)          arg: slot (to release)
  kRecStagedMoved = 6,   // STAGED -> ACTIVE, moved back (slot empty)        arg: slot; arg2: clean copy to drop
  kRecStagedCopied = 7,  // STAGED -> ACTIVE, copied back (slot still full)  arg: slot (to release); arg2 as above
  kRecPoolAhead = 8,     // STORED -> CLEAN read ahead of a fault (COPY|WP)   arg: the STORED aux word
  kRecSameAhead = 9,     // SAME -> ACTIVE read ahead of a fault              arg: the fill word
};

/** Most pages read ahead of one fault (512 KiB), as lib/dispatcher/readahead.ts MAX_WINDOW. */
constexpr uint32_t kRaMaxWindow = 128;
/** Stored pages per UFFDIO_COPY of a readahead run (each copy wakes a reader waiting in it). */
constexpr uint32_t kRaChunk = 8;

/** arg2 of kRecStaged*: the page was clean (STAGED_CLEAN); its copy (aux as a CLEAN page's) is stale. */
constexpr uint32_t kArg2Clean = 0x1u;

/**
 * The served-record ring: a bounded multi-producer, single-consumer lock-free
 * queue (Vyukov's sequence-per-cell design) in a SharedArrayBuffer of Int32
 * words, so that producers (the fault thread, signal handlers on program
 * threads) never wait and the JS dispatcher drains it with Atomics.
 *
 *   word 0  kMagic        word 1  capacity (cells, a power of two)
 *   word 2  enqueue pos   word 3  dequeue pos (the consumer's)
 *   word 4  pending       set to 1 by a producer, cleared by the consumer (wake coalescing)
 *   word 5  room          pages that may still become resident (the consumer sets it to
 *                         residentLimit - resident each drain; a serve that adds a resident
 *                         page takes one, and forwards when there is none: the fault then
 *                         waits for the dispatcher, which evicts, as the kernel's direct reclaim)
 *   word 6  wake room     a serve that leaves room at or below this wakes the consumer: reclaim
 *                         is due (kswapd's wake-up at the high watermark)
 *   word 7  wake any      set by the consumer before it sleeps: the next record wakes it
 *   words 8, 9, 10        the readahead stream: region of the last stored/same-filled fault, the
 *                         page a sequential run's next fault would be on (that fault's page + 1 +
 *                         the pages read ahead of it), the window of the last readahead (0: none)
 *   Other records do not wake the consumer: it drains them on its next turn (one wake-up per
 *   fault would put the dispatcher on the faulting thread's path).
 *   words 16.. cells of kCellWords: [seq, kind, region, page, arg, arg2, ns, 0]
 *   cell i starts with seq = i; a producer owning position p writes the cell and stores
 *   seq = p + 1 (release); the consumer reads it at seq == p + 1 and stores seq = p + capacity.
 */
class ServedRing {
 public:
  static constexpr int32_t kMagic = 0x53525647;  // 'SRVG'
  static constexpr size_t kHeaderWords = 16, kCellWords = 8;
  static constexpr size_t W_MAGIC = 0, W_CAP = 1, W_ENQ = 2, W_DEQ = 3, W_PENDING = 4, W_ROOM = 5, W_WAKE_ROOM = 6,
                          W_WAKE_ANY = 7, W_RA_REGION = 8, W_RA_NEXT = 9, W_RA_WINDOW = 10;

  /** Binds to `words` (n Int32 words) laid out as above; false if they are not (bad magic, size). */
  bool bind(int32_t* words, size_t n);
  bool bound() const { return w_ != nullptr; }
  /** Reserves a cell; -1 when the ring is full. Async-signal-safe. */
  int64_t reserve();
  /** Fills a reserved cell and hands it to the consumer. Async-signal-safe. */
  void commit(int64_t pos, int32_t kind, int32_t region, int32_t page, int32_t arg, int32_t arg2, int32_t ns);
  /** Sets the pending word; true if it was clear (the consumer should be woken). */
  bool mark_pending();
  /**
   * Notes a fault on stored or same-filled page (region, page) and returns how many pages to read
   * ahead of it: 0 if it is not where the run noted last would go on (the window closes), else the
   * window doubled (2, 4, .. kRaMaxWindow). Async-signal-safe.
   */
  uint32_t ra_window(int32_t region, int32_t page);
  /** Notes where a run's next fault would be once pages were read ahead of a fault. Async-signal-safe. */
  void ra_next(int32_t region, int32_t next);
  /**
   * Whether a record just committed needs the consumer now: it ends a readahead (`run`: its
   * records fill the ring), the consumer sleeps (W_WAKE_ANY), room is down to W_WAKE_ROOM
   * (reclaim is due) or a quarter of the ring is full. Any other record waits for the
   * consumer's next turn. Async-signal-safe.
   */
  bool wake_due(bool run);
  /**
   * Room is down to twice W_WAKE_ROOM: reclaim runs or is about to, and the dispatcher needs
   * the CPUs (the fault thread does not spin then). Async-signal-safe.
   */
  bool reclaim_near() const;
  /** Takes one page of room (false: none left, forward). Async-signal-safe. */
  bool take_room();
  /** Gives back a page of room taken by a serve that was forwarded after all. Async-signal-safe. */
  void give_room();

 private:
  int32_t* w_ = nullptr;
  uint32_t cap_ = 0;
};

/** Per-caller scratch: one page to decode into, a readahead run, one object buffer, a zstd context made beforehand. */
struct Scratch {
  alignas(4096) char page[4096];
  alignas(4096) char run[kRaChunk * 4096];
  alignas(64) uint8_t obj[4096 + 64];
  void* zstd_dctx = nullptr;
  int32_t taken = 0;
};

/**
 * Prepares the codecs (liblz4, libzstd) and the scratch pool. Call once from a
 * normal context before any serve() (idempotent, thread-safe). False if it failed
 * (then serve() forwards stored pages).
 */
bool init();

/** A scratch from the fixed pool (a CAS), or nullptr if all are taken (then forward). Async-signal-safe. */
Scratch* acquire_scratch();
/** Gives it back. Async-signal-safe. */
void release_scratch(Scratch* s);

/**
 * What the native server needs of one swap (one JS dispatcher): its uffd, the
 * staging ring, the store, the served-record ring. Made by the dispatcher
 * (lib/dispatcher/native-faults.ts through the binding); lives until every
 * region pointing at it is removed from the RegionTable.
 */
struct Server {
  /** The uffd the staging ring is registered on (MOVE back only into regions on this uffd). */
  int staging_uffd = -1;
  uint64_t staging_address = 0;
  uint32_t staging_slots = 0;
  /** The staging slot table: 4 * staging_slots Int32 words (pagestate.ts SLOT_*). */
  int32_t* slot_table = nullptr;
  /** The store holding frontswap's pool `frontswap_pool`; nullptr: stored pages are forwarded. */
  const StoreReader* store = nullptr;
  uint32_t frontswap_pool = 0;
  ServedRing ring;
  /**
   * Wakes the consumer when a record needs it (ServedRing::wake_due), from any thread or a
   * signal handler: set when no fault thread reads the uffd (only SIGBUS handlers serve, and
   * the dispatcher waits on the uffd itself: its doorbell, Uffd::wake_reader, is rung).
   * nullptr: the caller wakes it (serve()'s wake_consumer).
   */
  void (*wake)(void* arg) = nullptr;
  void* wake_arg = nullptr;
  /** Counters (relaxed atomics): faults served natively, faults forwarded. */
  uint64_t served = 0, forwarded = 0;
};

/**
 * The process-wide region table: fixed slots, readable from a signal handler.
 * A slot is published with its fields first and `live` last (release); a
 * reader pins it (users++, then re-checks live) for the whole serve(); remove()
 * clears live and waits until users drops to 0, so nothing reads a region's
 * buffers after remove() returns.
 */
struct RegionEntry {
  uint64_t base = 0;
  uint32_t pages = 0;
  int32_t id = 0;
  /** The uffd this region is registered on (the SIGBUS uffd for an inline region). */
  int uffd_fd = -1;
  uint8_t* state = nullptr;
  uint32_t* aux = nullptr;
  Server* server = nullptr;
  int32_t live = 0;
  int32_t users = 0;
};

class RegionTable {
 public:
  static constexpr int kSlots = 256;
  /** Publishes a region (anonymous regions only: a file region is never served natively). False if full. */
  static bool add(const RegionEntry& e);
  /** Unpublishes region `id` of `server` and waits until no reader uses it. Not from a signal handler. */
  static void remove(const Server* server, int32_t id);
  /** Unpublishes every region of `server` (the dispatcher is going away). Not from a signal handler. */
  static void remove_all(const Server* server);
  /** The pinned entry holding `addr`, or nullptr; unpin() it when done. Async-signal-safe. */
  static RegionEntry* pin(uint64_t addr);
  static void unpin(RegionEntry* e);
  /** True if `addr` lies in a published region (the SIGBUS helper's "is it ours"). Async-signal-safe. */
  static bool contains(uint64_t addr);
};

/**
 * Serves the fault at `addr` (rounded down to its page) with `flags`
 * (UFFD_PAGEFAULT_FLAG_WRITE / _WP as the kernel reports them) on a page of a
 * region in the RegionTable. `scratch`: the caller's, or nullptr to take one
 * from the pool. On kServed the state is published and a served record queued;
 * on kForward nothing changed. `*wake_consumer` is set when the JS dispatcher
 * should be woken to drain the ring (the pending word went 0 -> 1).
 * Async-signal-safe.
 */
Outcome serve(uint64_t addr, uint64_t flags, Scratch* scratch, bool* wake_consumer);

}  // namespace fault_serve
}  // namespace tmem
