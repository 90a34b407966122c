/**
 * The remote tier in the dispatcher (RAMster on Redis): below the pool, beside
 * the swap file. A page the pool's shrinker writes back to the swap file
 * (writeback.ts) is also sent to the remote store; once the server has it, its
 * state is REMOTE. The swap file copy stays (frontswap's writethrough): it is
 * the second copy that makes every failure of the server a miss, never a loss.
 *
 *   REMOTE page   aux = its swap file slot (as SWAPPED); here, per region:
 *                 gen[page]  the generation of the value sent (u32, never 0)
 *                 crc[page]  CRC-32 of the value [gen u32 LE][pool object]
 *   key           <prefix>F{<swap>:<region>:<page>>6}<page&63> (lib/remote/keys.ts),
 *                 on the node of its chunk's hash tag (lib/remote/nodes.ts)
 *
 *   write-back    queueObject() (the object, at batch time) -> written() (the swap
 *                 file has it: SWAPPED) -> flushRemote(): one pipeline of SETs per
 *                 node, one round trip; +OK -> REMOTE; OOM or any failure -> stays SWAPPED
 *   fault         startFetch(): GETDEL of the page alone, sent on the node's fault
 *                 connection (native, no event loop in between); the page is READING and
 *                 the dispatcher goes on serving other faults (a fault on another REMOTE
 *                 page is retried: one in flight at a time) and polls the reply each turn
 *                 (pollFetch()); checked (length, generation, CRC) before use; a miss, an
 *                 error, a deadline or a mismatch: the swap file. Then, once the page is
 *                 installed and its thread woken, prefetch(): when the region's remote faults run forward (this
 *                 one within PREFETCH + 1 pages after the last), one pipeline of GETs for
 *                 the next REMOTE pages of its chunk, into the pool when it accepts them.
 *                 Random faults prefetch nothing (measured: the checks and pool stores of
 *                 the seven values read with each random fault cost 14-26 us, and in the
 *                 steady state the pool refused every one of them).
 *   lost node     run_id changed (restarted empty): that node's pages are SWAPPED again
 *   release       a closed region's keys are UNLINKed (best effort; the swap's close
 *                 and the gc of the lease catch the rest)
 *   repatriation  repatriate(): while the dispatcher has nothing else to do and the pool
 *                 is under its accept threshold, the REMOTE pages come back into the pool,
 *                 a chunk's pipeline of GETs at a time (RAMster's selfshrinking: a page in
 *                 the pool no longer depends on the server); their slots and keys are freed
 *
 *   clean pages   mapped files' clean pages (cleancache's ephemeral pages) that the local
 *   of files      cleancache does not take go remote as <prefix>C{...} keys with a TTL
 *                 (PX ephemeralTtl), with no second copy: the file is theirs. Their state
 *                 stays NEVER; per region, gen[page] != 0 says the store has the page:
 *                 queueClean() (eviction) -> flushClean() once 32 wait or the loop is idle:
 *                 one pipeline of SET ... PX per node; +OK and the page still NEVER at the same file generation -> gen,
 *                 crc, len set. A fault (startCleanFetch(), before the file is read) takes
 *                 the copy with GETDEL on the fault connection (the page READING until the
 *                 reply, as a persistent page's), whatever the answer: a miss, an error or
 *                 a check that fails reads the file. A changed file (its generation) or a page brought
 *                 back another way forgets the copy (its key UNLINKed, else its TTL ends it).
 *
 *   Meta, per region (either kind): gen u32, crc u32, len u16 (the value's bytes, for
 *   G_REMOTE_BYTES and maxBytes: a page is not sent while the swap's remote values would
 *   pass it), last (the page of the region's last remote fault).
 */
import { PAGE } from '../compress';
import { crc32 } from '../crc32';
import { REPLY_BULK, REPLY_ERROR, REPLY_SIMPLE, PAGEFAULT_FLAG_WRITE } from '../native';
import { RemoteNodes } from '../remote/nodes';
import { RespEncoder } from '../remote/resp';
import { CHUNK, chunkTag, cleanKey, pageKey } from '../remote/keys';
import * as P from './protocol';
import { G, opts, codec, backends, pageBuf } from './env';
import { NEVER, READING, REMOTE, SWAPPED, publish } from './pagestate';
import { byId, regions, type RegionState } from './regions';
import { nowStored } from './pool';
import { swap } from './writeback';
import { swapIn, pushRetry } from './faults';
import { cleanFetched } from './files';

const cfg = opts.remote;
/** The servers, when `remote` is configured. */
export const remote = cfg ? new RemoteNodes(cfg) : undefined;

interface Meta {
  gen: Uint32Array;
  crc: Uint32Array;
  /** The value's length in bytes (generation included). */
  len: Uint16Array;
  /** The page of the region's last fault served from the remote store (-1: none yet). */
  last: number;
}
const metas = new Map<number, Meta>();
let nextGen = 1;

function meta(r: RegionState): Meta {
  let m = metas.get(r.id);
  if (!m)
    metas.set(
      r.id,
      (m = { gen: new Uint32Array(r.pages), crc: new Uint32Array(r.pages), len: new Uint16Array(r.pages), last: -1 }),
    );
  return m;
}

function newGen(): number {
  const gen = nextGen;
  nextGen = nextGen === 0xffffffff ? 1 : nextGen + 1;
  return gen;
}

/** The key of a page: persistent (F, a REMOTE page of an anonymous region) or clean (C, a mapped file's). */
function keyOf(r: RegionState, page: number): string {
  return r.isFile
    ? cleanKey(cfg!.keyPrefix, cfg!.swapId, r.id, page)
    : pageKey(cfg!.keyPrefix, cfg!.swapId, r.id, page);
}

/** The value of page `page` is no longer held (fetched, lost, forgotten): its bytes leave the count. */
function valueGone(m: Meta, page: number): void {
  G[P.G_REMOTE_BYTES] -= m.len[page];
  m.len[page] = 0;
}

/** Whether `bytes` more of values stay within remote.maxBytes (counted as over the limit when not). */
function underLimit(bytes: number): boolean {
  if (G[P.G_REMOTE_BYTES] + bytes <= cfg!.maxBytes) return true;
  G[P.G_REMOTE_OVER_LIMIT]++;
  return false;
}

function nodeOf(r: RegionState, page: number): number {
  return remote!.nodeOfTag(chunkTag(cfg!.swapId, r.id, page));
}

// ---- write-back ---------------------------------------------------------------

/** Entries of one write-back batch (writeback.ts's WB), by batch index. */
const QMAX = 64;
const VALUE = PAGE + 64 + 4;
const qObj = new Uint8Array(QMAX * VALUE);
const qLen = new Int32Array(QMAX); // object length, 0: not for the remote tier
const qRegion = new Int32Array(QMAX);
const qPage = new Uint32Array(QMAX);
const qSlot = new Int32Array(QMAX);
const pending: number[] = [];
const enc = new RespEncoder();
/** Keys whose values are stale (their page came back another way): UNLINKed at the next flush. */
const staleKeys: string[][] = [];
const STALE_MAX = 1 << 16;
let staleCount = 0;

/** Batch entry k is a pool page whose object is obj[0..len): it goes remote too once the swap file has it. */
export function queueObject(k: number, obj: Uint8Array, len: number): void {
  if (!remote || k >= QMAX) return;
  // The value: [generation u32 LE][object].
  qObj.set(obj.subarray(0, len), k * VALUE + 4);
  qLen[k] = len;
}

const pageObj = new Uint8Array(PAGE + 64);
/** Batch entry k is the page at bytes[off..off+PAGE) (the pool refused it): compressed, it goes remote too. */
export function queuePage(k: number, bytes: Uint8Array, off: number): void {
  if (!remote || k >= QMAX) return;
  queueObject(k, pageObj, codec.compress(bytes, off, pageObj));
}

/** Batch entry k was written to swap file slot `slot` (its page is SWAPPED now). */
export function written(k: number, r: RegionState, page: number, slot: number): void {
  if (k >= QMAX || qLen[k] === 0) return;
  qRegion[k] = r.id;
  qPage[k] = page;
  qSlot[k] = slot;
  pending.push(k);
}

/** The batch is settled: its written pages go to the remote store (one pipeline per node). */
export function flushRemote(): void {
  if (!remote) return;
  // Stale keys first: a key UNLINKed after this batch's SET of the same page would drop the new value.
  if (staleCount > 0) unlinkStale();
  if (pending.length > 0) sendPending();
  qLen.fill(0);
  G[P.G_REMOTE_MOVED] = remote.moved;
}

function sendPending(): void {
  const byNode = new Map<number, number[]>();
  for (const k of pending) {
    const r = byId.get(qRegion[k]);
    if (!r) continue;
    const node = nodeOf(r, qPage[k]);
    if (!remote!.usable(node)) continue;
    let l = byNode.get(node);
    if (!l) byNode.set(node, (l = []));
    l.push(k);
  }
  pending.length = 0;
  let sending = 0;
  for (const [node, all] of byNode) {
    const ks: number[] = [];
    for (const k of all) {
      if (!underLimit(sending + 4 + qLen[k])) continue; // stays in the swap file only
      sending += 4 + qLen[k];
      ks.push(k);
    }
    if (ks.length === 0) continue;
    const gens = setValues(node, ks, qObj, qLen, (k) => keyOf(byId.get(qRegion[k])!, qPage[k]), []);
    if (!gens) continue;
    for (let i = 0; i < ks.length; i++) {
      const k = ks[i];
      const r = byId.get(qRegion[k]);
      const page = qPage[k];
      if (remote!.kind(i) !== REPLY_SIMPLE) {
        if (remote!.kind(i) === REPLY_ERROR) G[P.G_REMOTE_REFUSED]++; // OOM: the page stays in the swap file only
        continue;
      }
      // The page may have changed since (never within this call today, but cheap to check).
      if (!r || r.closed || r.state[page] !== SWAPPED || r.aux[page] !== qSlot[k]) continue;
      const m = meta(r);
      m.gen[page] = gens[i];
      m.crc[page] = crc32(qObj.subarray(k * VALUE, k * VALUE + 4 + qLen[k]));
      m.len[page] = 4 + qLen[k];
      G[P.G_REMOTE_BYTES] += m.len[page];
      publish(r.state, page, REMOTE);
      G[P.G_REMOTE_PAGES]++;
      G[P.G_REMOTE_PUTS]++;
    }
  }
}

/**
 * One pipeline of SETs to `node`: for each batch entry k of `ks`, the value buf[k * VALUE ..
 * + 4 + len[k]) with a new generation in its first 4 bytes, under key(k), with `extra`
 * arguments (PX ttl). The generations, in the order sent; undefined when the request failed
 * (counted; the replies are then not there).
 */
function setValues(
  node: number,
  ks: number[],
  buf: Uint8Array,
  len: Int32Array,
  key: (k: number) => string,
  extra: string[],
): number[] | undefined {
  enc.reset();
  const gens: number[] = [];
  for (const k of ks) {
    const gen = newGen();
    const v = buf.subarray(k * VALUE, k * VALUE + 4 + len[k]);
    new DataView(v.buffer, v.byteOffset, 4).setUint32(0, gen, true);
    gens.push(gen);
    enc.command(['SET', key(k), v, ...extra]);
  }
  if (remote!.run(node, enc) < 0) {
    G[P.G_REMOTE_ERRORS]++;
    return undefined;
  }
  return gens;
}

function stale(r: RegionState, page: number): void {
  if (staleCount >= STALE_MAX) return; // the swap's close (or the lease's gc, or the key's TTL) deletes it
  staleKeys.push([keyOf(r, page), String(nodeOf(r, page))]);
  staleCount++;
}

function unlinkStale(): void {
  const byNode = new Map<number, string[]>();
  const keep: string[][] = [];
  for (const [key, node] of staleKeys) {
    const n = Number(node);
    if (!remote!.usable(n)) {
      keep.push([key, node]);
      continue;
    }
    let l = byNode.get(n);
    if (!l) byNode.set(n, (l = []));
    l.push(key);
  }
  staleKeys.length = 0;
  staleKeys.push(...keep);
  staleCount = keep.length;
  for (const [node, keys] of byNode) {
    for (let i = 0; i < keys.length; i += 256) {
      enc.reset();
      for (const k of keys.slice(i, i + 256)) enc.command(['UNLINK', k]);
      remote!.run(node, enc);
    }
  }
}

// ---- faults -----------------------------------------------------------------------

/** Pages of the chunk fetched with a fault's page (prefetch). */
export const PREFETCH = 7;
const fetchPages: number[] = [];
/** The page after whose fault prefetch() reads ahead (-1: none; set by fetch()). */
let prefetchFrom = -1;

/**
 * The remote fault in flight: its GETDEL was sent on the node's fault connection, and the
 * page is READING until the reply is in (pollFetch(), each loop turn, which polls without
 * waiting meanwhile). One at a time: a fault on another REMOTE page meanwhile is retried.
 */
const flight = {
  r: undefined as RegionState | undefined,
  page: 0,
  addr: 0,
  write: false,
  node: -1,
  /** The value's generation and CRC-32 as sent (the page's own are forgotten meanwhile). */
  gen: 0,
  crc: 0,
};

/** A remote fault's reply is due (the loop polls instead of sleeping). */
export function fetching(): boolean {
  return flight.r !== undefined;
}

/**
 * A fault on REMOTE page `page` (at `addr`): its GETDEL goes out and the dispatcher goes on
 * serving other faults while the server answers; the page is installed by pollFetch(),
 * from the reply once checked, else from the swap file. True (the fault is taken care of),
 * or false when another remote fault is in flight (the caller retries this one). When the
 * server cannot be asked now, the page is read from the swap file at once.
 */
export function startFetch(r: RegionState, page: number, addr: number, write: boolean): boolean {
  if (flight.r) return false;
  const m = meta(r);
  G[P.G_REMOTE_PAGES]--;
  valueGone(m, page);
  prefetchFrom = -1;
  const node = nodeOf(r, page);
  if (!remote!.usable(node)) {
    publish(r.state, page, SWAPPED);
    stale(r, page);
    G[P.G_REMOTE_SKIPPED]++;
    return served(r, page, addr, write, false);
  }
  enc.reset();
  enc.command(['GETDEL', keyOf(r, page)]);
  if (remote!.start(node, enc) < 0) {
    G[P.G_REMOTE_ERRORS]++;
    publish(r.state, page, SWAPPED);
    stale(r, page);
    return served(r, page, addr, write, false);
  }
  takeOff(r, m, page, addr, write, node); // its swap slot stays in aux
  return true;
}

/**
 * The page's GETDEL is on its way: the page is READING (a fault on it meanwhile waits with the
 * first) and the flight keeps what pollFetch() needs, the value's generation and CRC-32 included.
 */
function takeOff(r: RegionState, m: Meta, page: number, addr: number, write: boolean, node: number): void {
  flight.gen = m.gen[page];
  flight.crc = m.crc[page];
  publish(r.state, page, READING);
  flight.r = r;
  flight.page = page;
  flight.addr = addr;
  flight.write = write;
  flight.node = node;
}

/**
 * The reply to the fault in flight, if it is in (`wait`: wait for it, up to the deadline):
 * checked and installed, or the swap file read instead. Then prefetch when the region's
 * remote faults run forward.
 */
export function pollFetch(wait = false): void {
  const r = flight.r;
  if (!r) return;
  const n = remote!.poll(flight.node, wait);
  if (n === 0) return;
  flight.r = undefined;
  const { page, addr, write } = flight;
  if (r.closed) return; // released meanwhile (its slot freed there); the GETDEL took the key
  const m = meta(r);
  let ok = false;
  if (n < 0) {
    G[P.G_REMOTE_ERRORS]++;
    stale(r, page);
  } else if (checkValue(flight.gen, flight.crc, remote!.fkind(), remote!.fbytes())) {
    const v = remote!.fbytes();
    codec.decompress(v, 4, v.length - 4, pageBuf, 0);
    G[P.G_REMOTE_HITS]++;
    ok = true;
  }
  G[P.G_REMOTE_MOVED] = remote!.moved;
  if (r.isFile) {
    if (ok) G[P.G_REMOTE_CLEAN_HITS]++;
    cleanFetched(r, page, addr, write, ok);
    return;
  }
  if (ok) {
    if (m.last >= 0 && page > m.last && page - m.last <= PREFETCH + 1) prefetchFrom = page;
    m.last = page;
  }
  publish(r.state, page, SWAPPED);
  served(r, page, addr, write, ok);
  prefetch(r);
}

/** Installs the page (from pageBuf when `fromRemote`, else from the swap file); a refusal (EAGAIN) is retried. */
function served(r: RegionState, page: number, addr: number, write: boolean, fromRemote: boolean): boolean {
  if (!swapIn(r, page, addr, write, fromRemote)) pushRetry(addr, write ? PAGEFAULT_FLAG_WRITE : 0);
  return true;
}

/**
 * After a remote fault's page is installed (its thread already running again): the next
 * REMOTE pages of its chunk, in one pipeline, into the pool while it accepts them, when
 * fetch() found the region's remote faults running forward.
 */
export function prefetch(r: RegionState): void {
  const page = prefetchFrom;
  prefetchFrom = -1;
  if (page < 0 || r.closed || !poolRoom(PAGE)) return;
  const node = nodeOf(r, page);
  if (!remote!.usable(node)) return;
  const m = meta(r);
  enc.reset();
  fetchPages.length = 0;
  const end = Math.min(r.pages, (Math.floor(page / CHUNK) + 1) * CHUNK);
  for (let p = page + 1; p < end && fetchPages.length < PREFETCH; p++) {
    if (r.state[p] !== REMOTE) continue;
    fetchPages.push(p);
    enc.command(['GET', keyOf(r, p)]); // deleted once the pool has it (stale())
  }
  if (fetchPages.length === 0) return;
  if (remote!.run(node, enc) < 0) {
    G[P.G_REMOTE_ERRORS]++; // the pages stay REMOTE: their own faults try again (or back off)
    return;
  }
  for (let i = 0; i < fetchPages.length; i++) if (prefetched(r, m, fetchPages[i], i)) G[P.G_REMOTE_PREFETCHED]++;
  G[P.G_REMOTE_MOVED] = remote!.moved;
}

/** Reply i is the current value of page `page`: present, its generation and CRC-32 as sent. */
function check(m: Meta, page: number, i: number): boolean {
  return checkValue(m.gen[page], m.crc[page], remote!.kind(i), remote!.bytes(i));
}

/** A reply of kind `kind` with bytes `v` is the value sent with generation `want` and CRC-32 `crc`. */
function checkValue(want: number, crc: number, kind: number, v: Uint8Array): boolean {
  if (kind !== REPLY_BULK) {
    G[P.G_REMOTE_MISSES]++; // nil: the key was lost (evicted, flushed, a restart)
    return false;
  }
  if (v.length < 5 || v.length > PAGE + 64 + 4) {
    G[P.G_REMOTE_BAD]++;
    return false;
  }
  const gen = v[0] | (v[1] << 8) | (v[2] << 16) | (v[3] << 24);
  if (gen >>> 0 !== want || crc32(v) !== crc) {
    G[P.G_REMOTE_BAD]++;
    return false;
  }
  return true;
}

/**
 * Whether the pool has `bytes` of room under its limit. Not poolFull(): that one keeps
 * refusing until the pool is back under its accept threshold, which in the steady state
 * (every fault evicts a page into the pool) is almost always: measured, no page was ever
 * prefetched. A prefetched page is about to be used, so it may take the room; the shrinker
 * writes the pool's oldest entries back as usual.
 */
function poolRoom(bytes: number): boolean {
  return backends.poolBytes() + bytes <= opts.poolLimitBytes;
}

/**
 * A page read ahead of a fault or repatriated (REMOTE; its key still there): into the
 * pool if it takes it within `limit` bytes of pool, else left REMOTE. True if it went in.
 */
function prefetched(r: RegionState, m: Meta, page: number, i: number, limit = opts.poolLimitBytes): boolean {
  if (remote!.kind(i) !== REPLY_BULK || !check(m, page, i)) {
    // Lost or wrong: the page is read from the swap file from now on.
    publish(r.state, page, SWAPPED);
    G[P.G_REMOTE_PAGES]--;
    valueGone(m, page);
    stale(r, page);
    return false;
  }
  const v = remote!.bytes(i);
  const obj = v.subarray(4);
  if (backends.poolBytes() + obj.length > limit || !backends.frontswap.store(r.id, page, obj, obj.length)) return false;
  G[P.G_REMOTE_PAGES]--;
  valueGone(m, page);
  stale(r, page); // the pool has it: its key goes with the next batch
  swap!.freeSlot(r.aux[page]);
  G[P.G_SWAP_PAGES] = swap!.usedCount;
  nowStored(r, page, obj.length);
  return true;
}

// ---- clean pages of mapped files (cleancache's ephemeral pages) ----------------------

/** The clean pages of one batch: [generation][object] values, their region, page and file generation. */
const cObj = new Uint8Array(QMAX * VALUE);
const cLen = new Int32Array(QMAX);
const cRegion = new Int32Array(QMAX);
const cPage = new Uint32Array(QMAX);
const cFileGen = new Float64Array(QMAX);
let cCount = 0;

/**
 * A clean page of a mapped file leaves residency and the local cleancache did not take it:
 * its object (obj[0..len), compressed from a page as new as the file's generation `fileGen`)
 * goes to the remote store with the next flushClean().
 */
export function queueClean(r: RegionState, page: number, obj: Uint8Array, len: number, fileGen: number): void {
  if (!remote || len > PAGE + 64) return;
  if (cCount === QMAX) flushClean();
  cObj.set(obj.subarray(0, len), cCount * VALUE + 4);
  cLen[cCount] = len;
  cRegion[cCount] = r.id;
  cPage[cCount] = page;
  cFileGen[cCount] = fileGen;
  cCount++;
}

/** Clean pages sent in one pipeline once this many wait (fewer when the loop is idle). */
const CLEAN_BATCH = 32;

/**
 * Whether the queued clean pages should be sent now: a batch's worth, or any while the
 * loop is `idle`. Not after every eviction: in the steady state each fault evicts a page,
 * and a round trip per fault for its SET (measured: a clean-page fault then cost two round
 * trips) is what batching saves.
 */
export function cleanDue(idle: boolean): boolean {
  return cCount >= CLEAN_BATCH || (idle && cCount > 0);
}

/** Sends the queued clean pages: one pipeline of `SET key value PX ttl` per node. */
export function flushClean(): void {
  const n = cCount;
  cCount = 0;
  if (!remote || n === 0) return;
  if (staleCount > 0) unlinkStale(); // an UNLINK after this batch's SET of the same key would drop it
  const byNode = new Map<number, number[]>();
  let sending = 0;
  for (let k = 0; k < n; k++) {
    const r = byId.get(cRegion[k]);
    if (!r || r.closed) continue;
    const node = nodeOf(r, cPage[k]);
    if (!remote.usable(node) || !underLimit(sending + 4 + cLen[k])) continue;
    sending += 4 + cLen[k];
    let l = byNode.get(node);
    if (!l) byNode.set(node, (l = []));
    l.push(k);
  }
  const ttl = String(cfg!.ephemeralTtlMs);
  for (const [node, ks] of byNode) {
    const gens = setValues(node, ks, cObj, cLen, (k) => keyOf(byId.get(cRegion[k])!, cPage[k]), ['PX', ttl]);
    if (!gens) continue;
    for (let i = 0; i < ks.length; i++) {
      const k = ks[i];
      const r = byId.get(cRegion[k]);
      const page = cPage[k];
      if (remote.kind(i) !== REPLY_SIMPLE) {
        if (remote.kind(i) === REPLY_ERROR) G[P.G_REMOTE_REFUSED]++;
        continue;
      }
      if (!r || r.closed) continue;
      // Brought back meanwhile (a fault read the file), or the file changed: the value is not the page's.
      if (r.state[page] !== NEVER || r.gen !== cFileGen[k] || r.inflight.has(page)) {
        stale(r, page);
        continue;
      }
      const m = meta(r);
      if (m.gen[page] !== 0) forgetClean(m, page); // sent twice in this batch: the later value is the one kept
      m.gen[page] = gens[i];
      m.crc[page] = crc32(cObj.subarray(k * VALUE, k * VALUE + 4 + cLen[k]));
      m.len[page] = 4 + cLen[k];
      G[P.G_REMOTE_BYTES] += m.len[page];
      G[P.G_REMOTE_CLEAN_PAGES]++;
      G[P.G_REMOTE_CLEAN_PUTS]++;
    }
  }
  G[P.G_REMOTE_MOVED] = remote.moved;
}

/** The page's clean copy is no longer counted (its key is the caller's to UNLINK, or its TTL's). */
function forgetClean(m: Meta, page: number): void {
  m.gen[page] = 0;
  valueGone(m, page);
  G[P.G_REMOTE_CLEAN_PAGES]--;
}

/**
 * A fault on a NEVER page of a mapped file, before the file is read: when the remote store
 * has its copy, the GETDEL goes out on the fault connection and the page is READING until
 * the reply (pollFetch() -> files.ts cleanFetched()); true. False when there is no copy, or
 * it cannot be asked for now (another fault in flight, the server backing off: the copy is
 * forgotten): the caller reads the file. Either way the copy is taken.
 */
export function startCleanFetch(r: RegionState, page: number, addr: number, write: boolean): boolean {
  const m = metas.get(r.id);
  if (!m || m.gen[page] === 0) return false;
  const node = nodeOf(r, page);
  if (flight.r || !remote!.usable(node)) {
    if (!flight.r) G[P.G_REMOTE_SKIPPED]++;
    forgetClean(m, page);
    stale(r, page);
    return false;
  }
  enc.reset();
  enc.command(['GETDEL', keyOf(r, page)]);
  if (remote!.start(node, enc) < 0) {
    G[P.G_REMOTE_ERRORS]++;
    forgetClean(m, page);
    stale(r, page);
    return false;
  }
  takeOff(r, m, page, addr, write, node);
  forgetClean(m, page); // the copy is taken now, whatever the reply: the flight keeps what checks it
  return true;
}

/** The page of a mapped file is back another way (or stale): its remote copy goes. */
export function cleanGone(r: RegionState, page: number): void {
  const m = metas.get(r.id);
  if (!m || m.gen[page] === 0) return;
  forgetClean(m, page);
  stale(r, page);
}

/** The mapped file changed (its generation): every clean copy of it in the remote store goes. */
export function cleanRegionGone(r: RegionState): void {
  const m = metas.get(r.id);
  if (!m || G[P.G_REMOTE_CLEAN_PAGES] === 0) return;
  for (let page = 0; page < r.pages; page++) if (m.gen[page] !== 0) cleanGone(r, page);
}

// ---- repatriation (RAMster's selfshrinking) ---------------------------------------------

/** Pages asked for in one repatriation step (at most one chunk). */
const REPATRIATE_BATCH = 32;
/** Pages of state looked at in one step while searching for REMOTE pages. */
const REPATRIATE_SCAN = 16384;
/** Between steps (ms): background work, not a storm. */
export const REPATRIATE_EVERY_MS = 5;
/** After a step that brought nothing back (a server backing off, a pool that refused): a pause (ms). */
const IDLE_BACKOFF_MS = 1000;
const cursor = { region: 0, page: 0 };
let nextRepatriate = 0;

/**
 * Whether repatriate() has work now: persistent pages remote, the option on, and the pool
 * under its accept threshold (so that what comes back is not written back again at once).
 */
export function repatriating(): boolean {
  return (
    remote !== undefined &&
    cfg!.repatriate &&
    G[P.G_REMOTE_PAGES] > 0 &&
    backends.poolBytes() + 2 * PAGE < (opts.poolLimitBytes * opts.acceptThresholdPercent) / 100
  );
}

/** ms until the next repatriation step is due (0: now). */
export function repatriateDueIn(now: number): number {
  return Math.max(0, Math.ceil(nextRepatriate - now));
}

/**
 * One step of repatriation: the next REMOTE pages of one chunk (found from a cursor that
 * goes round the regions) in one pipeline of GETs, into the pool while it stays under its
 * accept threshold. Called by the loop when it has nothing else to do.
 */
export function repatriate(now: number): void {
  if (now < nextRepatriate || !repatriating()) return;
  nextRepatriate = now + REPATRIATE_EVERY_MS;
  const r = nextRemote();
  if (!r) return;
  const page = cursor.page;
  const end = Math.min(r.pages, (Math.floor(page / CHUNK) + 1) * CHUNK);
  cursor.page = end; // whatever happens, the next step looks further on
  const node = nodeOf(r, page);
  if (!remote!.usable(node)) {
    nextRepatriate = now + IDLE_BACKOFF_MS;
    return;
  }
  const m = meta(r);
  enc.reset();
  fetchPages.length = 0;
  for (let p = page; p < end && fetchPages.length < REPATRIATE_BATCH; p++) {
    if (r.state[p] !== REMOTE) continue;
    fetchPages.push(p);
    enc.command(['GET', keyOf(r, p)]); // deleted once the pool has it (stale())
  }
  if (remote!.run(node, enc) < 0) {
    G[P.G_REMOTE_ERRORS]++;
    nextRepatriate = now + IDLE_BACKOFF_MS;
    return;
  }
  const limit = (opts.poolLimitBytes * opts.acceptThresholdPercent) / 100;
  let back = 0;
  for (let i = 0; i < fetchPages.length; i++) if (prefetched(r, m, fetchPages[i], i, limit)) back++;
  G[P.G_REMOTE_REPATRIATED] += back;
  // The pool took none of them (no frame for them): not again and again for the same pages.
  if (back === 0) nextRepatriate = now + IDLE_BACKOFF_MS;
  G[P.G_REMOTE_MOVED] = remote!.moved;
}

/** The region of the next REMOTE page from the cursor (cursor.page: that page), looking at most REPATRIATE_SCAN pages. */
function nextRemote(): RegionState | undefined {
  let budget = REPATRIATE_SCAN;
  for (let seen = 0; seen <= regions.length && budget > 0; seen++) {
    if (cursor.region >= regions.length) {
      cursor.region = 0;
      cursor.page = 0;
    }
    const r = regions[cursor.region];
    if (r && !r.isFile && !r.closed) {
      const end = Math.min(r.pages, cursor.page + budget);
      for (let p = cursor.page; p < end; p++) {
        if (r.state[p] === REMOTE) {
          cursor.page = p;
          return r;
        }
      }
      budget -= end - cursor.page;
      cursor.page = end;
      if (end < r.pages) return undefined; // the rest of this region next time
    }
    cursor.region++;
    cursor.page = 0;
  }
  return undefined;
}

// ---- failures, release ------------------------------------------------------------

/** A node restarted empty: its pages are read from the swap file from now on. */
function lost(node: number): void {
  for (const r of regions) {
    const m = metas.get(r.id);
    if (!m) continue;
    for (let page = 0; page < r.pages; page++) {
      if (r.isFile) {
        if (m.gen[page] === 0 || nodeOf(r, page) !== node) continue;
        forgetClean(m, page); // the file has it
      } else {
        if (r.state[page] !== REMOTE || nodeOf(r, page) !== node) continue;
        publish(r.state, page, SWAPPED);
        G[P.G_REMOTE_PAGES]--;
        valueGone(m, page);
      }
      G[P.G_REMOTE_LOST]++;
    }
  }
}
if (remote) remote.onLost = lost;

/** Region r is being released: its REMOTE pages' keys go (their swap slots are freed by the caller). */
export function regionGone(r: RegionState): void {
  const m = metas.get(r.id);
  metas.delete(r.id);
  if (!remote || !m) return;
  for (let page = 0; page < r.pages; page++) {
    if (r.isFile) {
      if (m.gen[page] === 0) continue;
      forgetClean(m, page);
    } else {
      if (r.state[page] !== REMOTE) continue;
      G[P.G_REMOTE_PAGES]--;
      valueGone(m, page);
    }
    stale(r, page);
  }
  unlinkStale();
}

/** A new slot map from the main thread (cluster). */
export function setMap(m: Pick<NonNullable<P.DispatcherOptions['remote']>, 'nodes' | 'slots'>): void {
  remote?.setMap(m.nodes, m.slots);
}
