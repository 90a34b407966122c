/**
 * Idle pages (zram's idle handling): once a second, while nothing else is
 * pending, the oldest stored pages not touched for `idle.after` ms are visited
 * (idle.budget per pass), from the head of the stored FIFO (reclaim.ts):
 *
 *   STORED, aux = time | flags   now - time >= after: seen idle (IDLE_SEEN, G_IDLE)
 *     -> written back to the swap file   per idle.writeback ('huge': raw pages only, 'idle': all)
 *     -> recompressed with zstd at idle.recompressLevel when that saves >= 32 bytes
 *        (lz4 hot, zstd cold), or marked NO_GAIN when it does not (never retried)
 *     -> back to the stored FIFO's tail (visited)
 *
 * A visited page is claimed (BUSY, pagestate.ts) for the visit: it ends STORED again,
 * queued for write-back (BUSY until settled), or resident (bringBack).
 *
 * A replacing put that the pool refuses drops the old copy too (tmem's rule):
 * then the old object is put back, else the page comes back in (bringBack).
 */
import { PageCodec, PAGE, isRaw, CODEC_ZSTD } from '../compress';
import * as P from './protocol';
import { G, opts, uffd, codec, backends, objBuf, pageBuf, nowSec } from './env';
import { STORED, ACTIVE, IDLE_SEEN, NO_GAIN, TIME_MASK, claim, publish } from './pagestate';
import { byId, type RegionState } from './regions';
import { storedFifo, storedPush, becomeResident } from './reclaim';
import { poolObjectIs, poolObjectGone, storedLeaves } from './pool';
import { wb, swapUsable, queuePoolWriteback, flushWriteback } from './writeback';
import { limits } from './budget';

const zstdCold = opts.idle.recompress ? new PageCodec('zstd', opts.idle.recompressLevel) : undefined;
const recompBuf = new Uint8Array(PAGE + 64);
/** When the next pass is due (performance.now() ms). */
export const idle = { nextPass: 0 };

/** One pass over idle stored pages (zram idle recompression and writeback). */
export function idlePass(): void {
  const now = nowSec();
  // Under memory pressure every stored page counts as idle, and all go to the swap file.
  const pressed = limits.pressure > 0;
  const after = pressed ? 0 : opts.idle.afterMs / 1000;
  const writeAll = opts.idle.writeback === 'idle' || (pressed && opts.idle.writeback !== false);
  let budget = pressed ? opts.idle.budget * 4 : opts.idle.budget;
  while (budget > 0 && storedFifo.peek()) {
    const r = byId.get(storedFifo.outRegion);
    const page = storedFifo.outPage;
    if (!r || r.closed || r.seq[page] !== storedFifo.outStamp || r.state[page] !== STORED) {
      storedFifo.shift();
      continue;
    }
    if (now - (r.aux[page] & TIME_MASK) < after) break; // the rest are younger
    if (!claim(r.state, page, STORED)) break; // BUSY: being served now; the next pass looks again
    storedFifo.shift();
    const a = r.aux[page];
    budget--;
    if (!(a & IDLE_SEEN)) G[P.G_IDLE]++;
    let flags = (a | IDLE_SEEN) >>> 0;
    // Counted idle from now on: mark it at once, so storedLeaves() uncounts it whichever way
    // it leaves (write-back to the swap file, bringBack), not only after the visit ends.
    r.aux[page] = flags;
    const len = backends.frontswap.load(r.id, page, objBuf);
    if (len < 0) {
      publish(r.state, page, STORED);
      continue;
    }
    const raw = isRaw(len);
    if (swapUsable() && (writeAll || (opts.idle.writeback === 'huge' && raw))) {
      queuePoolWriteback(r, page, len, true); // BUSY until settled; counted once written
      continue;
    }
    if (zstdCold && !(a & NO_GAIN) && (isRaw(len) || objBuf[0] !== CODEC_ZSTD)) {
      codec.decompress(objBuf, 0, len, pageBuf, 0);
      const n = zstdCold.compress(pageBuf, 0, recompBuf);
      if (!isRaw(n) && n + 32 <= len) {
        // A put that replaces and is refused drops the old copy too (tmem's
        // rule): then put the old object back, else bring the page back in.
        if (backends.frontswap.store(r.id, page, recompBuf, n)) {
          poolObjectIs(r, page, n);
          G[P.G_RECOMPRESSED]++;
          G[P.G_RECOMPRESS_SAVED] += len - n;
        } else if (!backends.frontswap.store(r.id, page, objBuf, len)) {
          poolObjectGone(r, page);
          storedLeaves(r, page);
          bringBack(r, page, pageBuf); // publishes it ACTIVE
          continue;
        }
      } else {
        flags = (flags | NO_GAIN) >>> 0; // nothing helps this page: never again
        G[P.G_RECOMPRESS_NO_GAIN]++;
      }
    }
    storedPush(r, page); // to the tail: visited
    r.aux[page] = ((r.aux[page] & TIME_MASK) | (flags & ~TIME_MASK)) >>> 0;
    publish(r.state, page, STORED);
  }
  if (wb.count > 0) flushWriteback();
}

/** Installs a page's bytes back into its region (it becomes resident): the last resort, never a loss. */
function bringBack(r: RegionState, page: number, bytes: Uint8Array): void {
  const res = uffd.copy(r.base + page * PAGE, bytes, 0, 0);
  if (res < 0 && res !== -3)
    throw new Error(`tmem: could not bring page ${page} of region ${r.id} back (errno ${-res})`);
  becomeResident(r, page, ACTIVE);
}
