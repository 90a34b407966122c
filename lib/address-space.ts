/**
 * The address space a process has left under its limit (RLIMIT_AS: `ulimit -v`).
 *
 * V8 cannot run out of address space gracefully: a heap that cannot grow, or a
 * backing store that cannot be allocated, aborts the process (FATAL ERROR ...
 * JavaScript heap out of memory). open() therefore reserves the pool arena only
 * when, after it, the process keeps ADDRESS_HEADROOM for its heaps and threads.
 */
import fs from 'node:fs';

/** Address space open() leaves free after the arena (the isolates' heaps grow into it). */
export const ADDRESS_HEADROOM = 256 * 2 ** 20;

/** The soft RLIMIT_AS in bytes (Infinity when unlimited or unknown). */
export function addressSpaceLimit(): number {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return Infinity;
  }
  const m = /^Max address space\s+(\S+)/m.exec(text);
  if (!m || m[1] === 'unlimited') return Infinity;
  const n = Number(m[1]);
  return Number.isFinite(n) ? n : Infinity;
}

/** The bytes of address space this process maps now (VmSize). */
export function addressSpaceUsed(): number {
  try {
    const m = /^VmSize:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Bytes left under the limit (Infinity when there is none). */
export function addressSpaceLeft(): number {
  const limit = addressSpaceLimit();
  return limit === Infinity ? Infinity : limit - addressSpaceUsed();
}
