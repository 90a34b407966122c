/**
 * The native fault path, JS side (`faults: 'thread'`, and `'inline'` whose SIGBUS handlers
 * serve with the same code and no thread): the FaultServer of this swap
 * (native/fault_serve.h, native/fault_thread.h), the regions it may serve, and the
 * served records it leaves for the dispatcher's bookkeeping.
 *
 *   kernel -> fault thread (native)   fast page (NEVER anon, SAME, STORED, STAGED): served,
 *                                     claimed BUSY -> next state, a served record queued;
 *                                     a sequential run of STORED/SAME faults: the next pages
 *                                     read ahead (ring words 8-10), a record each
 *                                     anything else: forwarded -> readEvents() here
 *   served-record ring (SharedArrayBuffer, docs/layout.md "Served records")
 *     [magic, capacity, enq, deq, pending, ...][cells: seq kind region page arg arg2 ns 0]
 *   drainServed()  each loop turn (and before eviction takes a page): per record, what
 *                  faults.ts does after serving that state itself: counters, the latency
 *                  histogram, residency and the FIFO tail, pool copy drops, slot releases
 *
 * Ordering (fault_serve.cc): a record is committed before the page's new state is published,
 * so a page seen ACTIVE/CLEAN has its record in the ring; eviction drains after reading a
 * page's state and leaves the page alone while a record may still be on its way.
 */
import * as fs from 'node:fs';
import { native, type FaultServer } from '../native';
import * as P from './protocol';
import { G, hist, uffd, opts, storeInit } from './env';
import { byId, type RegionState } from './regions';
import { stagingShare, queueRelease, unstaged } from './staging';
import { countResident, fifoPush, residency } from './reclaim';
import { storedLeaves, dropPoolCopy, dropCleanCopy } from './pool';
import type { StoreInit } from './backends';

/** Served-record kinds (fault_serve.h RecordKind). */
export const REC_NONE = 0,
  REC_ZERO = 1,
  REC_SAME = 2,
  REC_POOL_CLEAN = 3,
  REC_POOL_DIRTY = 4,
  REC_STAGED_CLEAN = 5,
  REC_STAGED_MOVED = 6,
  REC_STAGED_COPIED = 7,
  REC_POOL_AHEAD = 8,
  REC_SAME_AHEAD = 9;

/** Ring layout (fault_serve.h ServedRing). */
export const RING_MAGIC = 0x53525647,
  RING_HEADER = 16,
  RING_CELL = 8,
  W_MAGIC = 0,
  W_CAP = 1,
  W_ENQ = 2,
  W_DEQ = 3,
  W_PENDING = 4,
  W_ROOM = 5,
  W_WAKE_ROOM = 6,
  W_WAKE_ANY = 7,
  W_RA_REGION = 8,
  W_RA_NEXT = 9,
  W_RA_WINDOW = 10;

/** A served-record ring of `cells` cells (a power of two), laid out as fault_serve.h says. */
export function servedRing(cells: number): Int32Array {
  const w = new Int32Array(new SharedArrayBuffer(4 * (RING_HEADER + RING_CELL * cells)));
  w[W_MAGIC] = RING_MAGIC;
  w[W_CAP] = cells;
  for (let i = 0; i < cells; i++) w[RING_HEADER + i * RING_CELL] = i;
  return w;
}

const CELLS = 1024;
export const ring = servedRing(CELLS);
ring[W_ROOM] = opts.residentLimitPages;

function startServer(): FaultServer | undefined {
  if (opts.faults !== 'thread' && opts.faults !== 'inline') return undefined;
  const st = storeInit as StoreInit;
  try {
    return new native.FaultServer({
      uffd: uffd.describe(),
      staging: stagingShare(),
      store: st.store,
      frontswapPool: st.frontswapPool,
      ring: ring.buffer as SharedArrayBuffer,
      thread: opts.faults === 'thread',
      follow: opts.follow,
      spinUs: opts.faultSpinUs,
    });
  } catch (e) {
    // No thread could be made (a thread limit): every fault goes through the dispatcher.
    fs.writeSync(2, `tmem: the native fault thread could not start; faults go to the dispatcher: ${String(e)}\n`);
    return undefined;
  }
}

/** The native fault path; undefined when faults go through the dispatcher. */
export const server = startServer();
/**
 * The fault thread reads the uffd (faults: 'thread', and it started); else the dispatcher does,
 * and a server only serves inline regions' faults from their SIGBUS handler.
 */
export const threaded = server !== undefined && opts.faults === 'thread';

/**
 * The dispatcher's uffd.read(): from the fault thread's forwarded events, or the uffd itself.
 * Natively served faults wake the dispatcher only when it has work from them (ring word 6, 7,
 * fault_serve.h): while they keep coming it looks at the ring every NATIVE_POLL_MS instead,
 * and before it sleeps for longer it asks the next record to wake it.
 */
export function readEvents(out: Float64Array, timeoutMs: number): number {
  if (!server) return uffd.read(out, timeoutMs);
  if (timeoutMs !== 0 && performance.now() - lastRecords < NATIVE_QUIET_MS) {
    if (timeoutMs < 0 || timeoutMs > NATIVE_POLL_MS) timeoutMs = NATIVE_POLL_MS;
  } else if (timeoutMs !== 0) {
    Atomics.store(ring, W_WAKE_ANY, 1);
    if (Atomics.load(ring, W_ENQ) !== Atomics.load(ring, W_DEQ)) timeoutMs = 0; // records came meanwhile
  }
  // Without a fault thread (only SIGBUS handlers serve natively) a record that needs the
  // dispatcher rings the uffd's doorbell (fault_serve.h Server::wake): read() returns -1.
  const n = threaded ? server.read(out, timeoutMs) : uffd.read(out, timeoutMs);
  Atomics.store(ring, W_WAKE_ANY, 0);
  return n;
}
/** While natively served faults came within NATIVE_QUIET_MS, the ring is looked at every NATIVE_POLL_MS. */
const NATIVE_POLL_MS = 5,
  NATIVE_QUIET_MS = 100;
let lastRecords = -Infinity;

/**
 * Pages of room left below residentLimit at which background eviction starts when faults are
 * served natively (kswapd's high watermark): the native path serves a fault only while there
 * is room, so reclaim must start before the room is gone, or every fault at the limit would
 * wait for the dispatcher (direct reclaim). 1/16 of the limit, 1 to 64 pages; 0 without a
 * native server (the dispatcher serves every fault and evicts after it).
 */
export function reclaimHeadroom(): number {
  if (!server) return 0;
  return Math.max(1, Math.min(64, opts.residentLimitPages >> 4));
}

/** An anonymous region is open: the native path may serve it. */
export function nativeAdd(r: RegionState): void {
  // An inline region (on the SIGBUS uffd) is served by its SIGBUS handler; the others by the fault
  // thread. Without one (faults: 'inline') only inline regions are native.
  if (!server || r.isFile || (!threaded && r.spec.forward === undefined)) return;
  if (!server.addRegion(r.share())) {
    fs.writeSync(2, `tmem: the native region table is full; region ${r.id}'s faults go to the dispatcher\n`);
  }
}

/**
 * A region is going: no native reader uses it once this returns, and its records are drained
 * (the ones of other threads' faults in flight are waited for, briefly).
 */
export function nativeRemove(r: RegionState): void {
  if (!server) return;
  server.removeRegion(r.id);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 1000 && !drainServed(); i++) Atomics.wait(sleeper, 0, 0, 1);
}

/** Stops the fault thread (the loop is ending). */
export function closeNativeFaults(): void {
  if (!server) return;
  server.close();
  drainServed();
}

/**
 * Accounts for every served record committed so far. True if the ring is empty now (no fault
 * served natively is still on its way to the ring).
 */
export function drainServed(): boolean {
  if (!server) return true;
  const w = ring;
  Atomics.store(w, W_PENDING, 0);
  let pos = Atomics.load(w, W_DEQ);
  if (Atomics.load(w, W_ENQ) !== pos) lastRecords = performance.now();
  for (;;) {
    const c = RING_HEADER + (pos & (CELLS - 1)) * RING_CELL;
    if (Atomics.load(w, c) !== ((pos + 1) | 0)) break;
    const kind = w[c + 1],
      rid = w[c + 2],
      page = w[c + 3],
      arg = w[c + 4],
      arg2 = w[c + 5],
      ns = w[c + 6];
    Atomics.store(w, c, (pos + CELLS) | 0); // the cell is free again
    pos = (pos + 1) | 0;
    Atomics.store(w, W_DEQ, pos);
    if (kind !== REC_NONE) account(kind, rid, page, arg, arg2, ns);
  }
  // Room below residentLimit for the native path; none: the next fault waits for the dispatcher,
  // which serves it (passing the limit starts eviction, as ever).
  Atomics.store(w, W_ROOM, opts.residentLimitPages - residency.resident);
  Atomics.store(w, W_WAKE_ROOM, reclaimHeadroom());
  return Atomics.load(w, W_ENQ) === pos;
}

function account(kind: number, rid: number, page: number, arg: number, arg2: number, ns: number): void {
  const r = byId.get(rid);
  if (!r || r.closed) return; // cannot happen: a region leaves the table, then its records are drained
  if (kind === REC_POOL_AHEAD || kind === REC_SAME_AHEAD) {
    // Read ahead of a fault by the native server (fault_serve.cc read_ahead): counted as
    // lib/dispatcher/readahead.ts counts its own, not as a fault.
    if (kind === REC_POOL_AHEAD) {
      G[P.G_FAULTS_POOL]++;
      r.stats[P.R_FAULTS_POOL]++;
      storedLeaves(r, page, arg >>> 0);
    } else {
      G[P.G_FAULTS_SAME]++;
      r.stats[P.R_FAULTS_SAME]++;
      G[P.G_SAME]--;
      r.stats[P.R_SAME]--;
    }
    countResident(r, page);
    G[P.G_POOL_READAHEAD]++; // last: whoever sees it counted sees the page resident
    return;
  }
  G[P.G_FAULTS_NATIVE]++;
  hist[P.bucketOf(ns / 1000)]++;
  switch (kind) {
    case REC_ZERO:
      G[P.G_FAULTS_ZERO]++;
      r.stats[P.R_FAULTS_ZERO]++;
      countResident(r, page);
      return;
    case REC_SAME:
      G[P.G_FAULTS_SAME]++;
      r.stats[P.R_FAULTS_SAME]++;
      G[P.G_SAME]--;
      r.stats[P.R_SAME]--;
      countResident(r, page);
      return;
    case REC_POOL_CLEAN:
    case REC_POOL_DIRTY:
      G[P.G_FAULTS_POOL]++;
      r.stats[P.R_FAULTS_POOL]++;
      storedLeaves(r, page, arg >>> 0);
      if (kind === REC_POOL_DIRTY) dropPoolCopy(r, page);
      countResident(r, page);
      return;
    case REC_STAGED_CLEAN:
    case REC_STAGED_MOVED:
    case REC_STAGED_COPIED:
      if (kind !== REC_STAGED_MOVED) queueRelease(arg);
      if (arg2 !== -1) dropCleanCopy(r, page, arg2 >>> 0); // written: its clean copy is stale
      unstaged();
      G[P.G_FAULTS_STAGED]++;
      r.stats[P.R_FAULTS_STAGED]++;
      G[P.G_SECOND_CHANCE]++;
      fifoPush(r, page); // second chance: back to the tail
      return;
  }
}
