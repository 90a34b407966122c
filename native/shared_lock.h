// Native side of the SharedArrayBuffer locks of lib/tmem/lock.ts (follows its
// word layout exactly):
//
//   mutex word:   0 = free, 1 = held, 2 = held and a JS thread may be sleeping
//   rwlock word:  bits 0..28 readers inside, bit 29 writer waiting, bit 30 writer inside
//
// Native code only ever *tries* these locks (one CAS; on failure the caller hands
// the work back to JavaScript): a native thread must never wait for a lock a JS
// thread holds while that JS thread may be waiting on a fault this native
// thread serves. A native unlock cannot wake a JS Atomics.wait sleeper (V8 keeps
// its own waiter list, not a futex on the word), so every wait in lock.ts is
// timed: a sleeper rechecks the word within a millisecond.
#pragma once

#include <cstdint>

namespace tmem {
namespace shared_lock {

constexpr int32_t kWriter = 1 << 30;
constexpr int32_t kWriterWaiting = 1 << 29;

/** lock.ts tryLock: take the mutex at `w` if it is free (0 -> 1). */
inline bool try_lock(int32_t* w) {
  int32_t expected = 0;
  return __atomic_compare_exchange_n(w, &expected, 1, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/** lock.ts unlock, without the notify (JS sleepers poll: their waits are timed). */
inline void unlock(int32_t* w) {
  if (__atomic_fetch_sub(w, 1, __ATOMIC_SEQ_CST) != 1) __atomic_store_n(w, 0, __ATOMIC_SEQ_CST);
}

/** lock.ts readLock, tried: false when a writer is inside or waiting. */
inline bool try_read_lock(int32_t* w) {
  for (int tries = 0; tries < 16; tries++) {
    int32_t v = __atomic_load_n(w, __ATOMIC_SEQ_CST);
    if ((v & (kWriter | kWriterWaiting)) != 0) return false;
    if (__atomic_compare_exchange_n(w, &v, v + 1, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return true;
  }
  return false;
}

/** lock.ts readUnlock (a waiting JS writer polls: its wait is timed). */
inline void read_unlock(int32_t* w) { __atomic_fetch_sub(w, 1, __ATOMIC_SEQ_CST); }

}  // namespace shared_lock
}  // namespace tmem
