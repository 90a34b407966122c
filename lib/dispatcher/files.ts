/**
 * Mapped files (kind 'file' regions) over native FileIo threads. Every file
 * syscall that can sleep on a filesystem lock runs on the FileIo threads,
 * never on the dispatcher (a write(2) into the file holds its inode lock while
 * it faults on region memory the dispatcher must serve).
 *
 *   reads    a page-cache hit is read inline with preadv2(RWF_NOWAIT), which never
 *            sleeps on I/O or a lock; anything else (not cached, a lock held, a
 *            filesystem without RWF_NOWAIT such as tmpfs) is read on the FileIo reader
 *            thread while the dispatcher goes on serving faults (the page is READING;
 *            readJobs: job id -> ReadJob, r.reads: page -> ReadJob)
 *   writes   a dirty page's bytes are copied into a write slot and queued on the FileIo
 *            writer thread; the slot keeps them until the write completes
 *              wslotBytes  [slot 0] ... [slot WSLOTS-1]   (allocated with the first write)
 *              wslotRegion / wslotPage   whose bytes each slot holds
 *              writeJobs   job id -> slot;  r.inflight: page -> its newest job
 *            A fault on the page meanwhile is served from the slot; a failed write makes
 *            the page dirty again (resident), counts the error and leaves the file's dirty
 *            pages alone for a second; flush()/close() report it.
 *   flush    a FlushOp: its writes, then an fdatasync behind them (syncJobs), then the reply;
 *            flushes wait for a free write slot in waitingFlushes
 *   barriers empty writes queued behind a region's write-backs: the reply to evict() is
 *            sent when they are reached
 *   cleancache   a page goes in only if it was read at the file's current generation, and a
 *            hit is used only after checking the generation (statx: size, mtime, ctime, inode,
 *            device) once per epoch (a batch of faults, an eviction slice); a change drops the
 *            file's cleancache pages (invalidate_inode), as the kernel's page cache is never
 *            older than the file.
 */
import { getSystemErrorMap } from 'node:util';
import { native, COPY_WP, PAGEFAULT_FLAG_WRITE, FILEIO_READ, FILEIO_WRITE, type FileIo } from '../native';
import { PAGE } from '../compress';
import * as P from './protocol';
import { G, uffd, codec, backends, objBuf, pageBuf, reply, replyError, EAGAIN, EEXIST, EOPNOTSUPP } from './env';
import { NEVER, ACTIVE, CLEAN, STAGED, READING, STAGED_CLEAN, claim, publish } from './pagestate';
import { byId, releaseRegion, type RegionState, type ReadJob } from './regions';
import {
  ring,
  staging,
  stagingBytes,
  slotDeferred,
  slotPending,
  queueRelease,
  flushReleases,
  moveUnshared,
  strayFound,
  skipStrays,
} from './staging';
import { becomeResident, finalizeOldest } from './reclaim';
import { flushWriteback } from './writeback';
import { unrecoverable, pushRetry } from './faults';
import { isShared, rekey, sharedGet } from './shared';
import { startCleanFetch, cleanGone, cleanRegionGone } from './remote';

interface FlushOp {
  r: RegionState;
  reqId: number;
  close: boolean;
  /** Next page to look at; the fdatasync is queued once it reaches the end. */
  page: number;
  written: number;
  errorsAtStart: number;
  rounds: number;
}

let io: FileIo | undefined;
/** The FileIo threads, started with the first mapped file. */
export function fileIo(): FileIo {
  io ??= new native.FileIo(uffd);
  return io;
}
/** Stops the FileIo threads (the dispatcher is stopping). */
export function closeFileIo(): void {
  io?.close();
}

const WSLOTS = 256; // write-back in flight, in pages (1 MiB)
let wslotBytes = new Uint8Array(0); // allocated with the first writable mapping
const wslotRegion = new Int32Array(WSLOTS);
const wslotPage = new Uint32Array(WSLOTS);
const wslotFree: number[] = [];
const writeJobs = new Map<number, number>(); // job id -> write slot
const readJobs = new Map<number, ReadJob>();
const syncJobs = new Map<number, FlushOp>();
/** Empty writes queued behind a region's write-backs: reply to the request when they are reached. */
const barriers = new Map<number, { reqId: number; value: number }>();
/** Flushes waiting for a free write slot. */
const waitingFlushes: FlushOp[] = [];
const ioOut = new Float64Array(3);
const ioPage = new Uint8Array(PAGE);
const WRITE_BACKOFF_MS = 1000;
/** Bumped per batch of faults and per eviction slice: a file's generation is checked once per epoch. */
const gen = { epoch: 0 };

export function nextEpoch(): void {
  gen.epoch++;
}

function errnoName(errno: number): string {
  return getSystemErrorMap().get(-errno)?.[0] ?? `errno ${errno}`;
}
function errnoText(errno: number): string {
  const e = getSystemErrorMap().get(-errno);
  return e ? `${e[0]} (${e[1]})` : `errno ${errno}`;
}

/** The file's generation, checked once per epoch; a change drops its cleancache pages. */
export function fileGeneration(r: RegionState): number {
  if (r.genEpoch !== gen.epoch) {
    r.genEpoch = gen.epoch;
    const g = fileIo().generation(r.file);
    if (g !== r.gen) {
      backends.cleancache.invalidateInode(r.id);
      cleanRegionGone(r); // and the remote tier's copies
      r.gen = g;
      rekey(r, () => fileIo().identityKey(r.file)); // a changed file: a new key in the shared pool
    }
  }
  return r.gen;
}

/** A fault on a NEVER page of a mapped file: the write slot, cleancache, or the file. */
export function fileFault(r: RegionState, page: number, addr: number, write: boolean): boolean {
  const job = r.inflight.get(page);
  if (job !== undefined) {
    // Its newest bytes are still on their way to the file: they are in the write slot.
    const k = writeJobs.get(job)!;
    const res = uffd.copy(addr, wslotBytes, k * PAGE, write ? 0 : COPY_WP);
    if (res < 0) return res !== EAGAIN;
    G[P.G_FAULTS_FILE]++;
    r.stats[P.R_FAULTS_FILE]++;
    return fileLoaded(r, page, write);
  }
  fileGeneration(r);
  if (isShared(r) && sharedGet(r, page, pageBuf)) {
    const res = uffd.copy(addr, pageBuf, 0, write ? 0 : COPY_WP);
    if (res < 0) return res !== EAGAIN; // the page stays in the shared pool either way
    G[P.G_CLEANCACHE_HITS]++;
    r.stats[P.R_FAULTS_CLEANCACHE]++;
    return fileLoaded(r, page, write);
  }
  const n = backends.cleancache.get(r.id, page, objBuf);
  if (n >= 0) {
    codec.decompress(objBuf, 0, n, pageBuf, 0);
    const res = uffd.copy(addr, pageBuf, 0, write ? 0 : COPY_WP);
    if (res < 0) {
      // Not installed: the page goes back (exclusive get removed it).
      backends.cleancache.put(r.id, page, objBuf, n);
      return res !== EAGAIN;
    }
    G[P.G_CLEANCACHE_HITS]++;
    r.stats[P.R_FAULTS_CLEANCACHE]++;
    return fileLoaded(r, page, write);
  }
  G[P.G_CLEANCACHE_MISSES]++;
  // The remote tier's copy: its GETDEL goes out and the page is READING until the reply
  // (remote.ts pollFetch() -> cleanFetched()); other faults are served meanwhile.
  if (startCleanFetch(r, page, addr, write)) return true;
  return readFile(r, page, addr, write);
}

/**
 * The reply to a clean page's remote fetch is in: `ok`, its bytes are in pageBuf (checked);
 * else (a miss, an error, a check that failed) the page is read from the file.
 */
export function cleanFetched(r: RegionState, page: number, addr: number, write: boolean, ok: boolean): void {
  publish(r.state, page, NEVER);
  if (ok) {
    const res = uffd.copy(addr, pageBuf, 0, write ? 0 : COPY_WP);
    if (res >= 0) {
      G[P.G_FAULTS_REMOTE]++;
      r.stats[P.R_FAULTS_REMOTE]++;
      fileLoaded(r, page, write);
      return;
    }
    if (res !== EAGAIN) return; // the process is going away
    // Not installed now: the file still has the page; read it from there.
  }
  if (!readFile(r, page, addr, write)) pushRetry(addr, write ? PAGEFAULT_FLAG_WRITE : 0);
}

/** A fault on a NEVER page of a mapped file that no cache had: the file (inline when the page cache has it). */
function readFile(r: RegionState, page: number, addr: number, write: boolean): boolean {
  const pos = page * PAGE;
  const want = Math.min(PAGE, Math.max(0, (r.spec.fileSize ?? 0) - pos));
  const got = want === 0 ? 0 : r.nowait ? fileIo().tryRead(r.file, pageBuf, 0, want, pos) : EOPNOTSUPP;
  if (got === EOPNOTSUPP) r.nowait = false;
  if (got === EAGAIN || got === EOPNOTSUPP) {
    const id = fileIo().read(r.file, want, pos);
    const rd: ReadJob = { id, r, page, write };
    readJobs.set(id, rd);
    r.reads.set(page, rd);
    publish(r.state, page, READING);
    return true;
  }
  if (got < 0)
    return unrecoverable(r, page, addr, `reading ${r.spec.path ?? 'the mapped file'} failed: ${errnoText(-got)}`);
  return fileRead(r, page, addr, write, got);
}

/** Installs a page read from the file (`got` bytes in pageBuf; the rest reads as zero). */
function fileRead(r: RegionState, page: number, addr: number, write: boolean, got: number): boolean {
  if (got < PAGE) pageBuf.fill(0, got);
  const res = uffd.copy(addr, pageBuf, 0, write ? 0 : COPY_WP);
  if (res < 0) return res !== EAGAIN;
  G[P.G_FAULTS_FILE]++;
  r.stats[P.R_FAULTS_FILE]++;
  return fileLoaded(r, page, write);
}

function fileLoaded(r: RegionState, page: number, write: boolean): boolean {
  if (write && r.spec.writable) r.stats[P.R_DIRTY]++;
  r.loadGen[page] = r.gen;
  becomeResident(r, page, write ? ACTIVE : CLEAN);
  return true;
}

function readDone(id: number, result: number): void {
  const rd = readJobs.get(id);
  if (!rd) return;
  readJobs.delete(id);
  const { r, page } = rd;
  if (r.closed || r.reads.get(page) !== rd) return;
  r.reads.delete(page);
  publish(r.state, page, NEVER);
  const addr = r.base + page * PAGE;
  if (result < 0) {
    unrecoverable(r, page, addr, `reading ${r.spec.path ?? 'the mapped file'} failed: ${errnoText(-result)}`);
    return;
  }
  pageBuf.set(ioPage.subarray(0, result));
  if (!fileRead(r, page, addr, rd.write, result)) pushRetry(addr, rd.write ? PAGEFAULT_FLAG_WRITE : 0);
}

/** The region is released: its reads in flight finish on their own and are dropped. */
export function forgetReads(r: RegionState): void {
  for (const rd of r.reads.values()) readJobs.delete(rd.id);
  r.reads.clear();
}

/**
 * Queues a dirty page's bytes (src at off) for the file. False if it cannot be
 * now (no free write slot, or the file failed a moment ago and `force` is not
 * set): the page then stays dirty where it is.
 */
export function writeBack(r: RegionState, page: number, src: Uint8Array, off: number, force: boolean): boolean {
  if (!force && performance.now() < r.writeBackoffUntil) return false;
  if (wslotBytes.length === 0) {
    wslotBytes = new Uint8Array(WSLOTS * PAGE);
    for (let k = WSLOTS - 1; k >= 0; k--) wslotFree.push(k);
  }
  const k = wslotFree.pop();
  if (k === undefined) return false;
  wslotBytes.set(src.subarray(off, off + PAGE), k * PAGE);
  const pos = page * PAGE;
  const len = Math.max(0, Math.min(PAGE, (r.spec.fileSize ?? 0) - pos));
  const id = fileIo().write(r.file, wslotBytes, k * PAGE, len, pos);
  writeJobs.set(id, k);
  wslotRegion[k] = r.id;
  wslotPage[k] = page;
  r.inflight.set(page, id);
  r.stats[P.R_DIRTY] = Math.max(0, r.stats[P.R_DIRTY] - 1);
  return true;
}

function writeDone(id: number, result: number): void {
  const k = writeJobs.get(id);
  if (k === undefined) return;
  writeJobs.delete(id);
  const r = byId.get(wslotRegion[k]);
  const page = wslotPage[k];
  if (r && !r.closed) {
    const newest = r.inflight.get(page) === id;
    if (newest) r.inflight.delete(page);
    if (result >= 0) {
      G[P.G_FILE_WRITES]++;
    } else {
      G[P.G_FILE_WRITE_ERRORS]++;
      r.writeErrors++;
      r.lastWriteError = { errno: -result, syscall: 'pwrite' };
      r.writeBackoffUntil = performance.now() + WRITE_BACKOFF_MS;
      // A newer write of the page is queued behind this one: it carries newer bytes.
      if (newest && redirty(r, page, k)) return;
    }
  }
  wslotFree.push(k);
}

/** A write-back failed: the page is dirty again, wherever it is now; nothing is lost. True if slot k stays in use. */
function redirty(r: RegionState, page: number, k: number): boolean {
  const addr = r.base + page * PAGE;
  switch (r.state[page]) {
    case NEVER: {
      // Evicted: bring its bytes back in, resident and dirty.
      backends.cleancache.invalidatePage(r.id, page);
      cleanGone(r, page);
      const res = uffd.copy(addr, wslotBytes, k * PAGE, 0);
      if (res === -3) return false; // the process is going away
      if (res < 0) {
        // Cannot be installed now (EAGAIN): the bytes stay in their slot, queued again.
        const id = fileIo().write(
          r.file,
          wslotBytes,
          k * PAGE,
          Math.max(0, Math.min(PAGE, (r.spec.fileSize ?? 0) - page * PAGE)),
          page * PAGE,
        );
        writeJobs.set(id, k);
        r.inflight.set(page, id);
        return true;
      }
      r.stats[P.R_DIRTY]++;
      r.loadGen[page] = r.gen;
      becomeResident(r, page, ACTIVE);
      return false;
    }
    case CLEAN:
      uffd.writeProtect(addr, PAGE, false);
      publish(r.state, page, ACTIVE);
      r.stats[P.R_DIRTY]++;
      return false;
    case STAGED:
      // Claimed to change its aux. A claim that fails: a fault just took it back (dirty).
      if (claim(r.state, page, STAGED)) {
        if (r.aux[page] & STAGED_CLEAN) {
          r.aux[page] &= ~STAGED_CLEAN;
          r.stats[P.R_DIRTY]++;
        }
        publish(r.state, page, STAGED);
      }
      return false;
    default:
      return false; // ACTIVE: dirty already
  }
}

/** Takes every finished FileIo job. */
export function drainIo(): void {
  if (!io || (writeJobs.size === 0 && readJobs.size === 0 && syncJobs.size === 0 && barriers.size === 0)) return;
  let wrote = false;
  while (io.take(ioOut, ioPage, 0)) {
    const id = ioOut[0],
      op = ioOut[1],
      result = ioOut[2];
    const barrier = barriers.get(id);
    if (barrier) {
      barriers.delete(id);
      reply(barrier.reqId, true, barrier.value);
    } else if (op === FILEIO_WRITE) {
      writeDone(id, result);
      wrote = true;
    } else if (op === FILEIO_READ) {
      readDone(id, result);
    } else {
      const f = syncJobs.get(id);
      if (f) {
        syncJobs.delete(id);
        finishFlush(f, result);
      }
    }
  }
  if (wrote) {
    for (let i = waitingFlushes.length; i > 0 && waitingFlushes.length > 0 && wslotFree.length > 0; i--) {
      progressFlush(waitingFlushes.shift()!);
    }
  }
}

/** Replies to request `reqId` with `value` once the region's write-backs queued so far are done. */
export function replyAfterWrites(r: RegionState, reqId: number, value: number): void {
  if (r.isFile && r.inflight.size > 0) barriers.set(fileIo().write(r.file, ioPage, 0, 0, 0), { reqId, value });
  else reply(reqId, true, value);
}

/** flush() and close() of a writable mapping: write its dirty pages, then fdatasync; reply when that is done. */
export function startFlush(r: RegionState, reqId: number, close: boolean): void {
  progressFlush({ r, reqId, close, page: 0, written: 0, errorsAtStart: r.writeErrors, rounds: 0 });
}

function progressFlush(op: FlushOp): void {
  const r = op.r;
  if (r.closed) {
    reply(op.reqId, true, op.written);
    return;
  }
  for (; op.page < r.pages; op.page++) {
    const page = op.page;
    const st = r.state[page];
    if (st === ACTIVE) {
      const done = flushResident(r, page);
      if (done < 0) {
        waitingFlushes.push(op); // resumed when a write completes and frees a slot
        return;
      }
      op.written += done;
    } else if (st === STAGED && (r.aux[page] & STAGED_CLEAN) === 0) {
      // Claimed while its bytes are queued and its aux changes; a claim that fails: look again.
      if (!claim(r.state, page, STAGED)) {
        op.page--;
        continue;
      }
      const slot = r.aux[page] & 0x7fffffff;
      if (!writeBack(r, page, stagingBytes, slot * PAGE, true)) {
        publish(r.state, page, STAGED);
        waitingFlushes.push(op);
        return;
      }
      r.aux[page] |= STAGED_CLEAN;
      publish(r.state, page, STAGED);
      op.written++;
    }
  }
  syncJobs.set(fileIo().sync(r.file), op);
}

/**
 * Writes one resident dirty page: moved out (writers now fault and wait), its
 * bytes queued, then copied back write-protected in one step (COPY_WP: a write
 * after this faults and marks it dirty again, none lands unseen). Returns 1, 0
 * (nothing there any more), or -1 when no write slot is free (try again later).
 */
function flushResident(r: RegionState, page: number): number {
  if (wslotBytes.length > 0 && wslotFree.length === 0) return -1;
  const addr = r.base + page * PAGE;
  while (!skipStrays()) finalizeOldest(); // a BUSY head page is another thread's for a moment
  if (r.state[page] !== ACTIVE) return 0;
  const slot = ring.tail;
  if (slotDeferred[slot]) flushWriteback();
  if (slotPending[slot]) flushReleases();
  const res = moveUnshared(staging.address + slot * PAGE, addr, 1);
  if (res === EEXIST) strayFound(slot);
  if (res !== PAGE) return 0;
  const queued = writeBack(r, page, stagingBytes, slot * PAGE, true);
  const back = uffd.copy(addr, stagingBytes, slot * PAGE, queued ? COPY_WP : 0);
  if (back !== PAGE) throw new Error(`tmem: could not return flushed page ${page} (errno ${-back})`);
  queueRelease(slot);
  flushReleases();
  if (!queued) return -1;
  publish(r.state, page, CLEAN);
  return 1;
}

function finishFlush(op: FlushOp, result: number): void {
  const r = op.r;
  if (r.closed) {
    reply(op.reqId, true, op.written);
    return;
  }
  const failed =
    result < 0
      ? { errno: -result, syscall: 'fdatasync' }
      : r.writeErrors > op.errorsAtStart
        ? r.lastWriteError
        : undefined;
  if (failed) {
    // A failed close() leaves the region open and usable: close() can be retried.
    const what = op.close ? 'close()' : 'flush()';
    replyError(
      op.reqId,
      `${what} could not write ${r.spec.path ?? 'the mapped file'}: ${errnoText(failed.errno)} in ${failed.syscall}; ` +
        'its dirty pages are kept (retry once the cause is fixed)',
      errnoName(failed.errno),
      failed.errno,
      failed.syscall,
    );
    return;
  }
  if (op.close) {
    // Pages dirtied, or written back by eviction, after this round's pass: one more round.
    if ((r.inflight.size > 0 || hasDirty(r)) && op.rounds < 4) {
      op.rounds++;
      op.page = 0;
      op.errorsAtStart = r.writeErrors;
      progressFlush(op);
      return;
    }
    releaseRegion(r);
    reply(op.reqId, true);
    return;
  }
  reply(op.reqId, true, op.written);
}

function hasDirty(r: RegionState): boolean {
  for (let page = 0; page < r.pages; page++) {
    const st = r.state[page];
    if (st === ACTIVE || (st === STAGED && (r.aux[page] & STAGED_CLEAN) === 0)) return true;
  }
  return false;
}
