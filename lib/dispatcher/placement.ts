/**
 * Thread placement: the dispatcher follows the faulting threads (the `pin`
 * option). Every fault event carries the faulting thread's id
 * (UFFD_FEATURE_THREAD_ID: event slot 3); at most every FOLLOW_MS the
 * dispatcher looks up the CPU that thread last ran on (it is blocked in the
 * fault there: /proc/self/task/TID/stat) and, when it differs from the CPU the
 * dispatcher is bound to, moves its own affinity there. Only the dispatcher's
 * own thread is ever re-bound: no thread of the program has its affinity
 * changed.
 *
 * With a native fault thread (`faults: 'thread'`) the fault thread follows the
 * faulting threads instead, and the dispatcher is the reclaimer (kswapd's role):
 * while it evicts it keeps off their CPU (keepAway: bound to the other CPUs it
 * may use, when there are any), so that compression never waits for the CPU a
 * program thread and its fault thread run on.
 *
 *   place.cpu        the CPU the dispatcher is bound to (-1: not bound yet)
 *   place.nextCheck  when the next look-up may happen (performance.now() ms)
 *   place.moves      how often it moved (diagnostics)
 */
import * as fs from 'node:fs';
import { native } from '../native';
import { opts } from './env';

const FOLLOW_MS = 10;
export const place = { cpu: -1, nextCheck: 0, moves: 0, enabled: opts.follow, avoided: -1 };

/** A fault from thread `tid` is being served: follow its CPU (rate-limited). */
export function follow(tid: number): void {
  if (!place.enabled || tid <= 0) return;
  const now = performance.now();
  if (now < place.nextCheck) return;
  place.nextCheck = now + FOLLOW_MS;
  const cpu = native.threadCpu(tid);
  if (cpu < 0 || cpu === place.cpu) return;
  try {
    native.setAffinity([cpu]);
    place.cpu = cpu;
    place.moves++;
  } catch (e) {
    // Not a CPU this thread may use (a cpuset changed under the process): stop following.
    place.enabled = false;
    fs.writeSync(2, `tmem: the dispatcher stops following faulting threads: ${(e as Error).message}\n`);
  }
}

/** The CPUs the dispatcher may use (its affinity when it started: the program's). */
const allowed: number[] = (() => {
  try {
    return native.getAffinity();
  } catch {
    return [];
  }
})();

/**
 * The reclaimer keeps off the CPU the faulting threads run on (as the fault thread last saw it;
 * rate-limited): bound to the other CPUs it may use. Nothing changes with one CPU, or when that
 * CPU is not one of them.
 */
export function keepAway(fault: { faultCpu(): number }): void {
  if (!place.enabled) return;
  const now = performance.now();
  if (now < place.nextCheck) return;
  place.nextCheck = now + FOLLOW_MS;
  const cpu = fault.faultCpu();
  if (cpu < 0 || cpu === place.avoided) return;
  const others = allowed.filter((c) => c !== cpu);
  if (others.length === 0 || others.length === allowed.length) return;
  try {
    native.setAffinity(others);
    place.avoided = cpu;
    place.cpu = others.length === 1 ? others[0] : -1;
    place.moves++;
  } catch (e) {
    place.enabled = false;
    fs.writeSync(2, `tmem: the dispatcher stops keeping off the faulting threads' CPU: ${(e as Error).message}\n`);
  }
}
