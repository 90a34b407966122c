/**
 * Eviction (README "Eviction"): FIFO by load order with a second chance.
 *
 *   resident FIFO   (region id, page, stamp) of ACTIVE/CLEAN pages, oldest first;
 *                   lazily deleted: an entry is live iff r.seq[page] === stamp
 *   stored FIFO     the same for STORED pages, oldest first: feeds the zswap
 *                   write-back (writeback.ts) and the idle pass (idle.ts)
 *   aside           pages the kernel would not let eviction take (pinned: direct
 *                   I/O in flight), off the FIFO, retried after ASIDE_MS (the
 *                   kernel's unevictable list)
 *   residency       resident (pages mapped, staged included: G_RESIDENT), evicting,
 *                   the FIFO stamp, the back-off after a refused store
 *
 *   resident --stageVictim--> staging slot (STAGED) --finalizeOldest--> STORED | SAME |
 *            (a touch: back to the FIFO tail)          SWAPPED (batch) | NEVER (file) | refused: resident
 *
 * When resident pages pass residentLimit, the oldest resident pages are moved
 * (UFFDIO_MOVE, atomic against writers) into the staging ring, the old pages
 * that follow one in its region with it as a run (one move, one TLB shootdown:
 * stageRun), as the kernel swaps out in clusters; a page touched
 * while staged goes back to the tail of the FIFO. Pages reaching the head of
 * the staging ring are compressed and stored, and their slots are released in
 * batches with one madvise(MADV_DONTNEED) per contiguous run. A clean page
 * (compressed copy kept, write-protected since its load) needs no compression:
 * the clean anonymous pages met in a row at the FIFO's head are claimed and
 * dropped from the page table together (dropCleanBatch: one process_madvise,
 * one TLB flush); a clean file page is staged and its slot just released.
 *
 *   resident (CLEAN, anon) --claim: BUSY--> cleanDrop batch --one process_madvise--> STORED | SWAPPED
 *
 * After a fork (child_process, cluster: fork then exec) every page resident
 * at that moment is shared copy-on-write, even once the child has exec'd, and
 * UFFDIO_MOVE refuses it (EBUSY) until it is written. Eviction then makes the
 * page exclusive again without changing it (uffd.unshare: the kernel's own
 * write fault, atomic against the program's writes, never waiting on a
 * userfaultfd) and moves it; a clean page (write-protected: no write can land
 * unseen) is simply dropped from the page table, its copy being current. A
 * page the kernel still refuses is pinned (direct I/O in flight): it is set
 * aside off the FIFO and retried after a second, so it never costs eviction
 * a scan.
 */
import { native, MADV_DONTNEED } from '../native';
import { PAGE, sameFilled, isRaw } from '../compress';
import * as P from './protocol';
import { G, opts, uffd, backends, codec, objBuf, nowSec, storedFifoUsed, ENOENT, EBUSY, EEXIST } from './env';
import {
  NEVER,
  ACTIVE,
  CLEAN,
  STAGED,
  STORED,
  SAME,
  SWAPPED,
  BUSY,
  STAGED_CLEAN,
  KEPT_SLOT,
  SLOT_MASK,
  claim,
  publish,
} from './pagestate';
import { PageFifo } from './fifo';
import { ASIDE, byId, type RegionState } from './regions';
import {
  S,
  staging,
  stagingBytes,
  stagingWords,
  ring,
  slotRegion,
  slotPage,
  slotKept,
  slotPending,
  slotDeferred,
  slotStray,
  landedAt,
  queueRelease,
  flushReleases,
  pendingReleases,
  moveUnshared,
  movePage,
  strayFound,
  skipStrays,
  unstage,
  unstaged,
} from './staging';
import { poolFull, cleanCopyStored, dropCleanCopy, nowStored } from './pool';
import { wb, WB, flushWriteback, toSwapFile, swapUsable } from './writeback';
import { writeBack, fileGeneration, nextEpoch } from './files';
import { serveAvailableFaults } from './faults';
import { drainServed, reclaimHeadroom } from './native-faults';
import { batch } from './requests';
import { applyLimits, notHeld } from './budget';
import { isShared, sharedPut } from './shared';
import { queueClean } from './remote';

const ASIDE_MS = 1000;
const EVICT_BACKOFF_MS = 50;

/** Resident FIFO (live entries: ACTIVE or CLEAN pages). */
export const fifo = new PageFifo();
/** Stored FIFO (live entries: STORED pages), oldest first for write-back and the idle pass. */
export const storedFifo = new PageFifo();
/** Pages the kernel would not let eviction take (pinned): off the FIFO, retried after ASIDE_MS. */
const aside = new PageFifo();

export const residency = {
  /** Pages mapped or staged (G_RESIDENT). */
  resident: 0,
  /** Background eviction is on (resident passed residentLimit, not yet down to lowWatermark). */
  evicting: false,
  /** A store was refused: background eviction pauses until then (ms). */
  backoffUntil: 0,
  stamp: 1,
  asideRetryAt: 0,
};

export function fifoPush(r: RegionState, page: number): void {
  const s = (residency.stamp = (residency.stamp + 1) | 0);
  r.seq[page] = s;
  if (fifo.length > 2 * residency.resident + 4096) fifo.compact(residentEntryLive);
  fifo.push(r.id, page, s);
}

export function storedPush(r: RegionState, page: number): void {
  r.aux[page] = nowSec();
  const s = (residency.stamp = (residency.stamp + 1) | 0);
  r.seq[page] = s;
  if (!storedFifoUsed) return; // nobody would ever pop it
  if (storedFifo.length > 2 * G[P.G_STORED] + 4096) storedFifo.compact(storedEntryLive);
  storedFifo.push(r.id, page, s);
}

function residentEntryLive(rid: number, page: number, s: number): boolean {
  const r = byId.get(rid);
  if (!r || r.closed || r.seq[page] !== s) return false;
  const st = r.state[page];
  return st === ACTIVE || st === CLEAN;
}

function storedEntryLive(rid: number, page: number, s: number): boolean {
  const r = byId.get(rid);
  return !!r && !r.closed && r.seq[page] === s && r.state[page] === STORED;
}

/** The page is mapped now (a fault served it): counted resident, at the FIFO's tail. */
export function becomeResident(r: RegionState, page: number, st: number, aux = 0): void {
  r.aux[page] = aux;
  publish(r.state, page, st);
  countResident(r, page);
}

/** A page mapped (its state published by whoever served it) is counted resident, at the FIFO's tail. */
export function countResident(r: RegionState, page: number): void {
  residency.resident++;
  r.stats[P.R_RESIDENT]++;
  G[P.G_RESIDENT] = residency.resident;
  fifoPush(r, page);
  if (residency.resident > opts.residentLimitPages - reclaimHeadroom()) residency.evicting = true;
}

export function leaveResidency(r: RegionState): void {
  residency.resident--;
  r.stats[P.R_RESIDENT]--;
  G[P.G_RESIDENT] = residency.resident;
}

/**
 * Moves (or drops) the oldest live resident page, with the old resident pages that follow
 * it in its region as one run (stageRun), at most `max` pages. False if none could be taken.
 */
function stageVictim(max: number, drops: number): boolean {
  retryAside();
  let dropped = false;
  // At most one pass over the FIFO: a page that cannot be moved now (EAGAIN) is pushed
  // back to the tail, and looping until one can would spin forever if none can. A
  // pinned page leaves the FIFO for the aside list: it is not met again for a while.
  for (let tries = fifo.length; tries > 0 && fifo.length > 0; tries--) {
    if (ring.used === S) break;
    fifo.shift();
    const r = byId.get(fifo.outRegion);
    const page = fifo.outPage;
    if (!r || r.closed || r.seq[page] !== fifo.outStamp) continue;
    const st = r.state[page];
    if (st !== ACTIVE && st !== CLEAN) continue;
    if (st === CLEAN && !r.isFile && cleanDrop.batching && drops > 0) {
      // Claimed now (CLEAN -> BUSY): a fault on it, once it is gone, waits for the JS
      // dispatcher (this thread), which serves it from its new state.
      if (cleanDrop.n === 0 && !readyToStage()) {
        fifoPush(r, page);
        break;
      }
      if (!claim(r.state, page, CLEAN)) continue; // changed meanwhile (only a serve could): not a victim now
      cleanDrop.add(r, page);
      if (--drops === 0 || cleanDrop.n === DROP_MAX) break;
      continue;
    }
    // Pages taken in their FIFO order: the clean ones before this one go first.
    if (cleanDrop.n > 0) dropped = dropCleanBatch() > 0;
    if (stageRun(r, page, fifo.outStamp, max) > 0) return true;
    if (stageOne(r, page) !== NOT_TAKEN) return true;
  }
  if (cleanDrop.n > 0) dropped = dropCleanBatch() > 0;
  return dropped;
}

/** Most clean pages dropCleanBatch() drops with one process_madvise(2). */
const DROP_MAX = 64;

/** The clean anonymous victims stageVictim() met in a row, claimed (BUSY), not dropped yet. */
const cleanDrop = {
  /** Off with TMEM_NO_CLEAN_BATCH=1 (A/B benchmarks): each clean victim staged as before. */
  batching: process.env.TMEM_NO_CLEAN_BATCH !== '1',
  n: 0,
  regions: new Array<RegionState | undefined>(DROP_MAX),
  pages: new Uint32Array(DROP_MAX),
  ranges: new Float64Array(2 * DROP_MAX),
  add(r: RegionState, page: number): void {
    const i = this.n++;
    this.regions[i] = r;
    this.pages[i] = page;
    this.ranges[2 * i] = r.base + page * PAGE;
    this.ranges[2 * i + 1] = PAGE;
  },
};

/**
 * Evicts the clean anonymous pages stageVictim() collected by dropping them from the page
 * table, all in one process_madvise(MADV_DONTNEED) (native.madvise: one TLB flush for the
 * batch, where staging moves each clean page scattered through the FIFO with a flush of
 * its own: bench/native/evict_flush zap-batch 5.6-8.9 us a page against 25-32 for a move
 * each). A clean page is write-protected and its compressed copy is current (the pool's,
 * or a kept swap slot), so nothing is copied or compressed; each was claimed (BUSY) when
 * collected, so a fault on it meanwhile is forwarded to this thread and served from the
 * state published here. File regions' clean pages are staged instead (cleancache puts).
 */
function dropCleanBatch(): number {
  const n = cleanDrop.n;
  cleanDrop.n = 0;
  try {
    native.madvise(cleanDrop.ranges, n, MADV_DONTNEED);
  } catch (e) {
    // Not expected for pages of open regions; they stay resident, clean, at the FIFO's tail.
    for (let i = 0; i < n; i++) {
      const r = cleanDrop.regions[i]!;
      publish(r.state, cleanDrop.pages[i], CLEAN);
      fifoPush(r, cleanDrop.pages[i]);
    }
    throw e;
  }
  for (let i = 0; i < n; i++) {
    const r = cleanDrop.regions[i]!;
    cleanDrop.regions[i] = undefined;
    droppedClean(r, cleanDrop.pages[i]);
  }
  G[P.G_EVICT_CLEAN_BATCHED] += n;
  return n;
}

/** Longest run stageRun() moves with one UFFDIO_MOVE. */
const RUN_MAX = 32;
/** stageRun()'s `stamp` for region.evict(): every resident page of the run, whatever its age. */
const ANY_AGE = -1;
const runStates = new Uint8Array(RUN_MAX);

/**
 * Stages `page` and the resident pages right after it in its region as one contiguous run:
 * one UFFDIO_MOVE into as many contiguous staging slots, which costs one TLB shootdown for
 * the run where a move per page costs one each (bench/native/evict_flush: 0.97 us a page in
 * runs of 32 against 16.7 us a page alone, with another thread of the process on the other
 * CPU). The kernel swaps out in clusters for the same reason. A page joins the run only if
 * it is resident (ACTIVE or CLEAN, not set aside) and, unless `stamp` is ANY_AGE, among the
 * older half of the resident pages (its FIFO stamp within resident/2 of the head's `stamp`):
 * a run never takes a hot page early. Returns the pages staged, 0 if no run of two or more
 * was possible or the kernel moved none (the caller then takes `page` alone with stageOne(),
 * which handles every answer the kernel can give; the rest of a run cut short stays
 * resident, in the FIFO).
 */
function stageRun(r: RegionState, page: number, stamp: number, max: number): number {
  let len = Math.min(max, RUN_MAX, r.pages - page);
  if (len < 2) return 0;
  // States first, then the drain: a page a native serve mapped shows its state only after
  // its record was committed, so once drained, every page seen resident here is counted.
  let n = 0;
  for (; n < len; n++) {
    const st = r.state[page + n];
    if ((st !== ACTIVE && st !== CLEAN) || r.flags[page + n] & ASIDE) break;
    runStates[n] = st;
  }
  if (n < 2 || !readyToStage()) return 0;
  const tail = ring.tail;
  len = Math.min(n, S - tail, S - ring.used); // contiguous slots, no wrap
  const window = Math.max(64, residency.resident >> 1);
  let wbBusy = false,
    pending = false;
  for (n = 1; n < len; n++) {
    const q = page + n;
    if (r.state[q] !== runStates[n] || slotStray[tail + n]) break;
    if (stamp !== ANY_AGE && ((r.seq[q] - stamp) | 0) > window) break; // young: not yet
    wbBusy ||= slotDeferred[tail + n] !== 0;
    pending ||= slotPending[tail + n] !== 0;
  }
  if (n < 2) return 0;
  if (wbBusy || slotDeferred[tail]) flushWriteback();
  if (pending || slotPending[tail]) flushReleases();
  for (let i = 0; i < n; i++) if (r.state[page + i] !== runStates[i]) n = i; // settled by the flushes: stop there
  if (n < 2) return 0;
  const src = r.base + page * PAGE;
  const dst = staging.address + tail * PAGE;
  let res: number;
  try {
    res = uffd.move(dst, src, n * PAGE, 0);
  } catch {
    res = 0; // e.g. EINVAL for a run the kernel will not take in one move: page by page instead
  }
  let k = res > 0 ? res / PAGE : 0;
  const cut = k < n && native.mapped(src + k * PAGE, PAGE) === 0; // page k gone, yet not counted
  if (cut && landedAt(dst + k * PAGE, res > 0 ? 'a run cut short' : `errno ${-res}`)) k++;
  for (let i = 0; i < k; i++) occupySlot(tail + i, r, page + i, runStates[i] === CLEAN);
  if (k > 1) G[P.G_EVICT_RUN_PAGES] += k;
  return k;
}

/**
 * Before a page is moved into staging: the fault thread's served records drained (a page a
 * native serve mapped shows its state only after its record was committed: a serve in flight
 * ends within microseconds, so look again a few times) and the tail past stray slots. False
 * if either cannot be had now.
 */
function readyToStage(): boolean {
  let drained = drainServed();
  for (let i = 0; i < 64 && !drained; i++) drained = drainServed();
  return drained && skipStrays();
}

/** Records a page just moved into `slot`, the ring's tail, and advances the tail past it. */
function occupySlot(slot: number, r: RegionState, page: number, clean: boolean): void {
  slotRegion[slot] = r.id;
  slotPage[slot] = page;
  slotKept[slot] = clean && r.aux[page] & KEPT_SLOT ? r.aux[page] & SLOT_MASK : -1;
  r.aux[page] = slot | (clean ? STAGED_CLEAN : 0);
  publish(r.state, page, STAGED); // last: its slot and aux are in place
  ring.tail = (slot + 1) % S;
  ring.used++;
  ring.staged++;
  G[P.G_STAGED] = ring.staged;
}

const NOT_TAKEN = 0,
  STAGED_NOW = 1,
  DROPPED = 2;

/**
 * Moves one resident page to the tail slot: STAGED_NOW; or, for a clean page the
 * kernel will not move, drops it (its copy is current): DROPPED, evicted already;
 * NOT_TAKEN if it stays resident (set aside if pinned).
 */
function stageOne(r: RegionState, page: number): number {
  leaveAside(r, page); // tried again now: set aside again below if still refused
  const st = r.state[page];
  // Served natively? Its record is accounted first; while it cannot be, the page goes to
  // the FIFO's tail, out of its load order.
  if (!readyToStage()) {
    fifoPush(r, page);
    return NOT_TAKEN;
  }
  const slot = ring.tail;
  if (slotDeferred[slot]) flushWriteback();
  if (slotPending[slot]) flushReleases();
  const addr = r.base + page * PAGE;
  // A clean page is write-protected: unshare() cannot write it, and needs not.
  const res =
    st === CLEAN ? movePage(staging.address + slot * PAGE, addr) : moveUnshared(staging.address + slot * PAGE, addr);
  if (res === EEXIST) {
    strayFound(slot); // the next try takes the next slot
    fifoPush(r, page);
    return NOT_TAKEN;
  }
  if (res === EBUSY && st === CLEAN) {
    dropClean(r, page, addr);
    return DROPPED;
  }
  if (res === PAGE) {
    occupySlot(slot, r, page, st === CLEAN);
    return STAGED_NOW;
  }
  if (res === ENOENT) {
    // Nothing mapped there (the program discarded it): it reads as zeros now.
    if (st === CLEAN) dropCleanCopy(r, page);
    publish(r.state, page, NEVER);
    leaveResidency(r);
    return NOT_TAKEN;
  }
  if (res === EBUSY) {
    // Exclusive and still refused: pinned (direct I/O in flight). Set it aside.
    setAside(r, page);
    return NOT_TAKEN;
  }
  // EAGAIN: keep it resident, try later.
  fifoPush(r, page);
  return NOT_TAKEN;
}

/**
 * Evicts a clean page the kernel will not move (shared since a fork, or pinned
 * for reading) by dropping it from the page table: it is write-protected, so its
 * copy (pool, kept swap slot, file) is current, and a write racing with this is
 * held in a write-protect fault, retried as a missing-page fault once the page
 * is gone and served from that copy. Nothing is copied or compressed.
 */
function dropClean(r: RegionState, page: number, addr: number): void {
  dropRange[0] = addr;
  dropRange[1] = PAGE;
  native.madvise(dropRange, 1, MADV_DONTNEED);
  droppedClean(r, page);
}
const dropRange = new Float64Array(2);

/** A clean page just dropped from the page table: its copy's state published, evicted. */
function droppedClean(r: RegionState, page: number): void {
  const a = r.aux[page];
  if (r.isFile) {
    publish(r.state, page, NEVER);
  } else if (a & KEPT_SLOT) {
    r.aux[page] = a & SLOT_MASK;
    publish(r.state, page, SWAPPED);
    G[P.G_SWAP_CACHED]--;
    G[P.G_EVICT_NO_COMPRESS]++;
  } else {
    cleanCopyStored(r, page);
  }
  leaveResidency(r);
  countEviction(r, page);
}

/** A page eviction cannot take (pinned): off the FIFO until the aside list is retried. */
function setAside(r: RegionState, page: number): void {
  const s = (residency.stamp = (residency.stamp + 1) | 0);
  r.seq[page] = s;
  if (aside.length === 0) residency.asideRetryAt = performance.now() + ASIDE_MS;
  aside.push(r.id, page, s);
  r.flags[page] |= ASIDE;
  G[P.G_UNEVICTABLE]++;
}

function leaveAside(r: RegionState, page: number): void {
  if (!(r.flags[page] & ASIDE)) return;
  r.flags[page] &= ~ASIDE;
  G[P.G_UNEVICTABLE]--;
}

/** Every ASIDE_MS, the pages set aside go back to the FIFO's tail for another try. */
function retryAside(): void {
  if (aside.length === 0 || performance.now() < residency.asideRetryAt) return;
  while (aside.shift()) {
    const r = byId.get(aside.outRegion);
    const page = aside.outPage;
    if (!r || r.closed || !residentEntryLive(aside.outRegion, page, aside.outStamp)) continue;
    leaveAside(r, page);
    fifoPush(r, page);
  }
}

/**
 * Finalizes the slot at the head of the staging ring: its page is claimed (STAGED ->
 * BUSY) and stored, or it was moved back by a fault (a hole). False if no progress:
 * the page is BUSY (another thread is serving it), the head stays; try again.
 */
export function finalizeOldest(): boolean {
  const slot = ring.head;
  const rid = slotRegion[slot];
  const r = rid < 0 ? undefined : byId.get(rid);
  const page = slotPage[slot];
  let mine = false;
  if (r) {
    if (claim(r.state, page, STAGED)) {
      mine = (r.aux[page] & SLOT_MASK) === slot;
      if (!mine) publish(r.state, page, STAGED); // staged again, in another slot: not this one's
    } else if (Atomics.load(r.state, page) === BUSY) {
      return false;
    }
  }
  ring.head = (ring.head + 1) % S;
  ring.used--;
  slotRegion[slot] = -1;
  if (!r || !mine) return true; // moved back by a fault: already empty
  const done = finalizePage(r, page, slot);
  if (done === DEFERRED) return true; // in the write-back batch (still BUSY); settled by flushWriteback()
  if (done === REFUSED) {
    // Refused: the page goes back where it was, resident.
    const res = unstage(r.base + page * PAGE, slot);
    if (res !== PAGE) throw new Error(`tmem: could not return a refused page to region ${r.id} (errno ${-res})`);
    unstaged();
    publish(r.state, page, ACTIVE);
    fifoPush(r, page);
    notHeld();
    // Nothing will take pages for a while: pause background eviction rather
    // than spin refusing on the CPU the application runs on.
    residency.backoffUntil = performance.now() + EVICT_BACKOFF_MS;
    return true;
  }
  evicted(r, slot);
  return true;
}

/** A staged page left residency for good: count it, free its staging slot. */
export function evicted(r: RegionState, slot: number): void {
  unstaged();
  leaveResidency(r);
  countEviction(r, slotPage[slot]);
  queueRelease(slot);
}

/**
 * Per evictRegion() running (they nest when a request is served between pages): the pages of
 * its region seen leaving, each once (a page a reader faults back in meanwhile may leave again).
 */
const tallies: { r: RegionState; seen: Uint8Array; pages: number }[] = [];

function countEviction(r: RegionState, page: number): void {
  G[P.G_EVICTIONS]++;
  r.stats[P.R_EVICTIONS]++;
  for (const t of tallies)
    if (t.r === r && t.seen[page] === 0) {
      t.seen[page] = 1;
      t.pages++;
    }
}

/** finalizePage() results; DEFERRED is also toSwapFile()'s. */
export const REFUSED = 0,
  DONE = 1,
  DEFERRED = 2;

/**
 * Stores the page in staging slot `slot` (claimed: BUSY): DONE (its new state published),
 * REFUSED (it must stay resident; still BUSY) or DEFERRED (swap file batch; still BUSY).
 */
function finalizePage(r: RegionState, page: number, slot: number): number {
  const clean = (r.aux[page] & STAGED_CLEAN) !== 0;
  const off = slot * PAGE;
  if (r.isFile) {
    if (!clean) {
      if (!r.spec.writable) return storeAnon(r, page, off, slot); // private changes to a read-only mapping: frontswap keeps them
      // Dirty: its bytes go to the writer thread (and stay in a write slot until written).
      if (!writeBack(r, page, stagingBytes, off, false)) return REFUSED;
      publish(r.state, page, NEVER);
      return DONE;
    }
    // Clean file page: cleancache may keep it (ephemeral) if it is as new as the file.
    if (!r.inflight.has(page) && r.loadGen[page] === fileGeneration(r)) {
      if (isShared(r)) {
        sharedPut(r, page, stagingBytes, off); // the group's pool, once for every member
        publish(r.state, page, NEVER);
        return DONE;
      }
      const len = codec.compress(stagingBytes, off, objBuf);
      if (!isRaw(len) && !poolFull() && backends.cleancache.put(r.id, page, objBuf, len)) {
        G[P.G_CLEANCACHE_PUTS]++;
      } else {
        queueClean(r, page, objBuf, len, r.gen); // the remote tier's, when there is one (a TTL; the file is its copy)
      }
    }
    publish(r.state, page, NEVER);
    return DONE;
  }
  if (clean) {
    const kept = slotKept[slot];
    slotKept[slot] = -1;
    if (kept >= 0) {
      // Unchanged since its swap-in: its slot still holds it. Nothing is written.
      r.aux[page] = kept;
      publish(r.state, page, SWAPPED);
      G[P.G_SWAP_CACHED]--;
      G[P.G_EVICT_NO_COMPRESS]++;
    } else {
      cleanCopyStored(r, page);
    }
    return DONE;
  }
  return storeAnon(r, page, off, slot);
}

function storeAnon(r: RegionState, page: number, off: number, slot: number): number {
  const word = sameFilled(stagingWords, off / 4);
  if (word >= 0) {
    r.aux[page] = word;
    publish(r.state, page, SAME);
    G[P.G_SAME]++;
    r.stats[P.R_SAME]++;
    return DONE;
  }
  if (poolFull()) {
    G[P.G_REFUSED_POOL_LIMIT]++;
    return toSwapFile(r, page, off, slot);
  }
  const len = codec.compress(stagingBytes, off, objBuf);
  if (isRaw(len) && swapUsable()) {
    return toSwapFile(r, page, off, slot); // incompressible: the file, not the pool
  }
  if (!backends.frontswap.store(r.id, page, objBuf, len)) {
    G[P.G_REFUSED_ALLOC]++;
    return toSwapFile(r, page, off, slot);
  }
  nowStored(r, page, len);
  return DONE;
}

/**
 * Steps of background eviction for one loop turn (a step stages a page or stores one): 2 below
 * the resident limit, as many as a fault brings in; over it, more the further over (4 + 1 per
 * 32 pages, at most 64), so that a program writing new pages as fast as it can is held to the
 * limit instead of eviction just keeping pace (the kernel throttles such a writer with direct
 * reclaim).
 */
export function evictionSteps(): number {
  const over = residency.resident - opts.residentLimitPages;
  return over <= 0 ? 2 : Math.min(64, 4 + (over >> 5));
}

/** One slice of background eviction. */
export function evictSlice(budget: number): void {
  nextEpoch();
  applyLimits(); // with a memory budget, the resident limit follows the pool's size
  const stagingTarget = Math.min(S, Math.max(16, opts.residentLimitPages >> 3));
  const runRoom = Math.min(RUN_MAX, stagingTarget >> 1);
  // Down to lowWatermark, and at least below where it started (reclaimHeadroom: native faults).
  const low = Math.min(opts.lowWatermarkPages, opts.residentLimitPages - reclaimHeadroom() - 1);
  for (let i = 0; i < budget; i++) {
    if (residency.resident <= low) {
      residency.evicting = false;
      break;
    }
    // Staging waits until a whole run fits (or the ring has nothing left to store), so pages
    // go out in runs (stageRun) instead of one at a time as each finalize makes room.
    const room = stagingTarget - ring.staged;
    // Clean victims are dropped in a batch (dropCleanBatch), at most down to `low`.
    const drops = Math.min(DROP_MAX, residency.resident - low);
    if (
      (room >= runRoom || (room > 0 && ring.used === 0)) &&
      ring.used < S &&
      fifo.length > 0 &&
      stageVictim(room, drops)
    )
      continue;
    if (ring.used > 0) {
      if (!finalizeOldest()) break; // the head page is BUSY elsewhere: next slice
    } else if (!stageVictim(stagingTarget, drops)) {
      residency.evicting = false; // nothing left that can be evicted
      break;
    }
  }
  if (wb.count > 0) flushWriteback();
  flushReleases();
}

/** Pushes every resident and staged page of a region out now (region.evict()). */
export function evictRegion(r: RegionState): number {
  batch.depth++;
  try {
    return evictRegionNow(r);
  } finally {
    batch.depth--;
  }
}

function evictRegionNow(r: RegionState): number {
  const mine = { r, seen: new Uint8Array(r.pages), pages: 0 };
  tallies.push(mine);
  try {
    scanRegion(r);
  } finally {
    tallies.splice(tallies.indexOf(mine), 1);
  }
  return mine.pages; // distinct pages that really left (refused ones stayed)
}

function scanRegion(r: RegionState): void {
  let n = 0;
  // Drain the ring first so staged pages of this region are stored too (a BUSY
  // head page is being served by another thread for a moment: wait for it).
  while (ring.used > 0) finalizeOldest();
  flushReleases();
  for (let page = 0; page < r.pages; page++) {
    const st = r.state[page];
    if (st !== ACTIVE && st !== CLEAN) continue;
    const run = stageRun(r, page, ANY_AGE, RUN_MAX);
    if (run > 0) {
      for (let i = 0; i < run; i++) finalizeOldest();
      page += run - 1;
    } else {
      const taken = stageOne(r, page);
      if (taken === NOT_TAKEN) continue;
      if (taken === STAGED_NOW) finalizeOldest();
    }
    if (wb.count === WB) flushWriteback();
    const before = n;
    n += Math.max(run, 1);
    if (pendingReleases() >= 32) flushReleases();
    if (n >> 4 !== before >> 4) {
      if (wb.count > 0) flushWriteback();
      serveAvailableFaults();
      // That may have served requests too: a close() of this region frees its pages (and the
      // main thread unmaps them next); staging another page of it would strand it in its slot.
      if (r.closed) break;
    }
  }
  if (wb.count > 0) flushWriteback();
  flushReleases();
}
