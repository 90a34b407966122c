/*
 * Atomics-based locks that live in SharedArrayBuffer words, so that every Worker that holds a
 * view of the same memory takes the same lock.
 *
 * Layout: each lock is one Int32 word at a caller-chosen index.
 *
 *   mutex word:   0 = free, 1 = held, 2 = held and someone may be sleeping on it
 *   rwlock word:  bits 0..29 = number of readers inside, bit 30 = writer inside,
 *                 bit 29 = writer waiting (new readers back off so a writer cannot starve)
 *
 * Invariants: a mutex is not re-entrant; whoever locks it unlocks it. Waiting spins a little,
 * then sleeps in Atomics.wait (allowed on the Node main thread as well as in Workers).
 *
 * Every wait is timed (SLEEP_MS), never untimed: native code (native/shared_lock.h, the native
 * fault path's store reader) takes these words with a CAS and releases them without a notify,
 * because V8 keeps its own list of Atomics.wait sleepers that no native thread can reach. A
 * sleeper rechecks the word at least every SLEEP_MS; an uncontended lock never sleeps at all.
 */

const SPIN = 64;
/** Longest sleep before a waiter rechecks a lock word (a native holder cannot wake it). */
const SLEEP_MS = 1;

/**
 * Take the mutex at `a[i]`, sleeping if another thread holds it.
 */
export function lock(a: Int32Array, i: number): void {
  let c = Atomics.compareExchange(a, i, 0, 1);
  if (c === 0) return;
  for (let s = 0; s < SPIN; s++) {
    if (Atomics.load(a, i) === 0) {
      c = Atomics.compareExchange(a, i, 0, 1);
      if (c === 0) return;
    }
  }
  if (c !== 2) c = Atomics.exchange(a, i, 2);
  while (c !== 0) {
    Atomics.wait(a, i, 2, SLEEP_MS);
    c = Atomics.exchange(a, i, 2);
  }
}

/**
 * Take the mutex at `a[i]` if it is free; returns true when taken.
 */
export function tryLock(a: Int32Array, i: number): boolean {
  return Atomics.compareExchange(a, i, 0, 1) === 0;
}

/**
 * Release the mutex at `a[i]` and wake one sleeper if any.
 */
export function unlock(a: Int32Array, i: number): void {
  if (Atomics.sub(a, i, 1) !== 1) {
    Atomics.store(a, i, 0);
    Atomics.notify(a, i, 1);
  }
}

const WRITER = 1 << 30;
const WRITER_WAITING = 1 << 29;
const READERS = WRITER_WAITING - 1;

/**
 * Enter the rwlock at `a[i]` as a reader (shared with other readers, excluded by a writer).
 */
export function readLock(a: Int32Array, i: number): void {
  for (;;) {
    const v = Atomics.load(a, i);
    if ((v & (WRITER | WRITER_WAITING)) === 0) {
      if (Atomics.compareExchange(a, i, v, v + 1) === v) return;
      continue;
    }
    Atomics.wait(a, i, v, SLEEP_MS);
  }
}

/**
 * Leave the rwlock at `a[i]` as a reader.
 */
export function readUnlock(a: Int32Array, i: number): void {
  const v = Atomics.sub(a, i, 1);
  if ((v & READERS) === 1 && (v & WRITER_WAITING) !== 0) Atomics.notify(a, i);
}

/**
 * Enter the rwlock at `a[i]` as the only writer; waits for readers to drain.
 */
export function writeLock(a: Int32Array, i: number): void {
  for (;;) {
    const v = Atomics.load(a, i);
    if ((v & (WRITER | READERS)) === 0) {
      if (Atomics.compareExchange(a, i, v, WRITER) === v) return;
      continue;
    }
    if ((v & WRITER_WAITING) === 0) {
      Atomics.compareExchange(a, i, v, v | WRITER_WAITING);
      continue;
    }
    Atomics.wait(a, i, v, SLEEP_MS);
  }
}

/**
 * Leave the rwlock at `a[i]` as the writer and wake everyone waiting.
 */
export function writeUnlock(a: Int32Array, i: number): void {
  Atomics.store(a, i, 0);
  Atomics.notify(a, i);
}
