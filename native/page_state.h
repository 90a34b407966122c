// The per-region page state shared by the JS dispatcher and native fault code.
// docs/layout.md is the description both sides follow (with the staging slot table,
// the served-record ring and the region table); lib/dispatcher/pagestate.ts mirrors this:
//
//   state: one byte per page (a SharedArrayBuffer of `pages` bytes)
//   aux:   one uint32 per page (a SharedArrayBuffer of 4 * pages bytes)
//
//   NEVER 0 ACTIVE 1 CLEAN 2 STAGED 3 STORED 4 SAME 5 SWAPPED 6 READING 7 BUSY 8 REMOTE 9
//
//   aux of STAGED:  slot | kStagedClean
//   aux of STORED:  store time (bits 0-29) | kIdleSeen | kNoGain
//   aux of SAME:    the 32-bit fill word
//   aux of SWAPPED: the swap file slot
//   aux of REMOTE:  the swap file slot (the remote store has the page too; not fast: JS serves it)
//   aux of CLEAN:   kKeptSlot | slot, or 0
//
// BUSY protocol: whoever changes a page in a fast state (NEVER, SAME, STORED,
// STAGED) first claims it by CAS expected -> BUSY, reads/writes aux only while
// it holds BUSY, and ends with a release store of the next state. A native
// reader that loses the CAS hands the fault to JS.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tmem {
namespace page_state {

enum : uint8_t {
  NEVER = 0,
  ACTIVE = 1,
  CLEAN = 2,
  STAGED = 3,
  STORED = 4,
  SAME = 5,
  SWAPPED = 6,
  READING = 7,
  BUSY = 8,
  REMOTE = 9
};

constexpr uint32_t kStagedClean = 0x80000000u;
constexpr uint32_t kKeptSlot = 0x80000000u;
constexpr uint32_t kIdleSeen = 0x40000000u;
constexpr uint32_t kNoGain = 0x80000000u;
constexpr uint32_t kTimeMask = 0x3fffffffu;
constexpr uint32_t kSlotMask = 0x7fffffffu;

/** True for the states a native fault path may serve (NEVER only for anonymous regions). */
inline bool is_fast(uint8_t s) { return s == NEVER || s == STAGED || s == STORED || s == SAME; }

/** Atomic load of page `page`'s state byte. */
inline uint8_t load(const uint8_t* state, size_t page) { return __atomic_load_n(state + page, __ATOMIC_ACQUIRE); }

/** Claim page `page` from `expected` to BUSY; false if the state was not `expected`. */
inline bool claim(uint8_t* state, size_t page, uint8_t expected) {
  return __atomic_compare_exchange_n(state + page, &expected, static_cast<uint8_t>(BUSY), false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE);
}

/** End a claim: publish `next` (release, so aux written under BUSY is seen first). */
inline void publish(uint8_t* state, size_t page, uint8_t next) {
  __atomic_store_n(state + page, next, __ATOMIC_RELEASE);
}

}  // namespace page_state
}  // namespace tmem
