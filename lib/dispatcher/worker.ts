/**
 * The dispatcher: the Worker that serves every page fault of a swap's regions
 * and evicts cold pages. One loop, one thread, pinned to the application's CPU.
 *
 *   loop:  uffd.read(events, timeout)     timeout -1 when idle, 0 while evicting
 *          for each page fault            look up region + page state, resolve
 *          on wake                        drain requests (receiveMessageOnPort)
 *          evict a slice                  a few pages, then poll for faults again
 *
 * Page states (one byte per page of every region):
 *
 *   NEVER    never resident. anon: zero on fault; file: cleancache, else the file
 *   ACTIVE   mapped, possibly written since it was loaded (dirty)
 *   CLEAN    mapped and write-protected; its copy elsewhere is current
 *            (anon: the compressed copy kept in the persistent pool, or,
 *             aux[page] = KEPT_SLOT | slot, its swap file slot, kept as the
 *             kernel's swap cache keeps it; file: the file itself)
 *   STAGED   moved out (UFFDIO_MOVE) to a staging slot: second chance; a touch
 *            moves it back at no copy (a read of a clean one copies it back
 *            write-protected, keeping it clean). aux[page] = slot | clean flag
 *   STORED   in the persistent pool (frontswap); aux[page] = store time in
 *            seconds (bits 0-29), IDLE_SEEN (bit 30), NO_GAIN (bit 31:
 *            recompression was tried and did not help; never retried)
 *   SAME     same-filled; aux[page] = the 32-bit word
 *   SWAPPED  in the swap file; aux[page] = its slot (lib/swapfile.ts)
 *   READING  a file page being read on the FileIo reader thread; the faulting
 *            threads wait until the read completes and the page is copied in
 *
 * Mapped files (the "mapped files" section below): every file syscall that
 * can sleep on a filesystem lock runs on native FileIo threads, never here (a
 * write(2) into the file holds its inode lock while it faults on region
 * memory this thread must serve). A dirty page written back keeps its bytes
 * in a write slot until the write completes: a fault on it is served from
 * there, and a failed write makes it dirty again (resident).
 *
 * Eviction policy (README "Eviction"): FIFO by load order with a second
 * chance. When resident pages pass residentLimit, the oldest resident pages
 * are moved (UFFDIO_MOVE, atomic against writers) into a staging ring; a page
 * touched while staged goes back to the tail of the FIFO. Pages reaching the
 * head of the staging ring are compressed and stored, and their slots are
 * released in batches with one madvise(MADV_DONTNEED) per contiguous run.
 * A clean page (compressed copy kept, write-protected since its load) needs
 * no compression: its slot is just released.
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
 * a scan (the kernel's unevictable list).
 *
 * With a swap file: a page the pool refuses (full, or it does not compress)
 * goes to the file instead of staying resident, and while the pool is over
 * its accept threshold its oldest entries are written back to the file
 * (zswap's shrinker). Both go through one write-back batch, written with one
 * pwrite per contiguous run of slots before the dispatcher polls again.
 *
 * Idle pages (zram): once a second, while nothing else is pending, the oldest
 * stored pages not touched for `idle.after` ms are visited (a budget per
 * pass): recompressed with zstd at a high level when that saves space (lz4
 * hot, zstd cold), marked NO_GAIN when it does not, and with a swap file
 * written back per `idle.writeback` ('huge': raw pages only, 'idle': all).
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import * as fs from 'node:fs';
import { getSystemErrorMap } from 'node:util';
import {
  native, EVENT_SLOTS, PAGEFAULT_FLAG_WP, PAGEFAULT_FLAG_WRITE, UFFD_EVENT_PAGEFAULT, COPY_WP,
  REGISTER_MODE_MISSING, MADV_DONTNEED, FILEIO_READ, FILEIO_WRITE, type UffdDescriptor, type FileIo,
} from '../native';
import { PageCodec, PAGE, sameFilled, isRaw, CODEC_ZSTD } from '../compress';
import * as P from './protocol';
import { openBackends, type Backends } from './backends';
import { PageFifo } from './fifo';
import { SwapFile, SwapFileError } from '../swapfile';

const NEVER = 0, ACTIVE = 1, CLEAN = 2, STAGED = 3, STORED = 4, SAME = 5, SWAPPED = 6, READING = 7;
const STAGED_CLEAN = 0x80000000; // flag in aux[] of a STAGED page
const KEPT_SLOT = 0x80000000; // flag in aux[] of a CLEAN page: its copy is swap file slot aux & SLOT_MASK
const SLOT_MASK = 0x7fffffff;
const ENOENT = -2, EAGAIN = -11, EBUSY = -16;
const RAW = 1, ASIDE = 2; // RegionState.flags
const IDLE_SEEN = 0x40000000, NO_GAIN = 0x80000000, TIME_MASK = 0x3fffffff; // aux[] of a STORED page
const t0 = Date.now();
function nowSec(): number {
  return Math.floor((Date.now() - t0) / 1000);
}

interface Init {
  uffd: UffdDescriptor;
  port: MessagePort;
  ctl: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  hist: SharedArrayBuffer;
  store: unknown;
  options: P.DispatcherOptions;
}

class RegionState {
  readonly pages: number;
  readonly state: Uint8Array;
  readonly aux: Uint32Array;
  readonly seq: Int32Array;
  /** Per page: RAW (its persistent pool object is stored raw, counted in G_HUGE), ASIDE (counted in G_UNEVICTABLE). */
  readonly flags: Uint8Array;
  readonly stats: Float64Array;
  closed = false;
  lastSwapIn = -2;
  // Mapped files only:
  /** FileIo handle of the file (a dup of spec.fd). */
  file = -1;
  /** preadv2(RWF_NOWAIT) works on this file: page-cache hits are read inline. */
  nowait = true;
  /** page -> the newest write job of that page still in flight. */
  readonly inflight = new Map<number, number>();
  /** page -> its read in flight (state READING). */
  readonly reads = new Map<number, ReadJob>();
  /** Write-backs that failed, and the last failure. */
  writeErrors = 0;
  lastWriteError?: { errno: number; syscall: string };
  /** After a failed write-back, eviction leaves the dirty pages alone until then (ms). */
  writeBackoffUntil = 0;
  /** The file's generation (FileIo.generation) that cleancache's pages belong to, and when it was checked. */
  gen = 0;
  genEpoch = -1;
  /** The generation each resident page was read at: only a page as new as the file goes to cleancache. */
  readonly loadGen: Uint32Array;
  constructor(readonly spec: P.RegionSpec) {
    this.pages = spec.size / PAGE;
    this.state = new Uint8Array(this.pages);
    this.aux = new Uint32Array(this.pages);
    this.seq = new Int32Array(this.pages);
    this.flags = new Uint8Array(this.pages);
    this.stats = new Float64Array(spec.stats);
    this.loadGen = new Uint32Array(spec.kind === 'file' ? this.pages : 0);
  }
  get base(): number { return this.spec.address; }
  get id(): number { return this.spec.id; }
  get isFile(): boolean { return this.spec.kind === 'file'; }
}

process.on('uncaughtException', (e) => {
  // Say why before the Worker ends: the main thread may be blocked in a fault
  // and never see the 'error' event (the deadman then takes over).
  fs.writeSync(2, `tmem: the dispatcher failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
let stoppedCleanly = false;
process.on('exit', (code) => {
  if (!stoppedCleanly) fs.writeSync(2, `tmem: the dispatcher Worker is exiting (code ${code}) without being stopped\n`);
});

const init = workerData as Init;
const opts = init.options;
const ctl = new Int32Array(init.ctl);
const G = new Float64Array(init.stats);
const hist = new Float64Array(init.hist);
const port = init.port;
const uffd = native.Uffd.attach(init.uffd);
uffd.armDeadman('the dispatcher Worker exited');
if (opts.cpu >= 0) native.setAffinity([opts.cpu]);

/**
 * The store's handle comes as the first message on the port: the main thread reserves the
 * arena only once this Worker's isolate exists (see Swap._start), so that under an
 * address-space limit the arena fails with a tmem error rather than V8 failing to start here.
 */
function receiveStore(): unknown {
  for (;;) {
    const m = receiveMessageOnPort(port);
    if (m) return (m.message as { store: unknown }).store;
    Atomics.wait(ctl, P.CTL_STORE, 0);
  }
}
const backends: Backends = openBackends(init.store ?? receiveStore(), opts);
const codec = new PageCodec(opts.compressor);

const events = new Float64Array(64 * EVENT_SLOTS);
const pageBuf = new Uint8Array(PAGE);
const pageWords = new Uint32Array(pageBuf.buffer);
const zeroPage = new Uint8Array(PAGE);
const objBuf = new Uint8Array(PAGE + 64);
/** Stored pages are decoded and copied in by one native call (liblz4 and libzstd found). */
const nativeDecode = native.lz4Available && native.zstdAvailable;

// Staging ring: slots [head, tail) in FIFO order; a slot whose page was moved
// back by a fault is a hole until the head passes it.
const S = opts.stagingPages;
const staging = new native.Region(uffd, S * PAGE, REGISTER_MODE_MISSING);
const stagingBytes = new Uint8Array(staging.buffer);
const stagingWords = new Uint32Array(staging.buffer);
const slotRegion = new Int32Array(S).fill(-1);
const slotPage = new Uint32Array(S);
// The swap file slot kept by the clean page in a staging slot (-1: none; its copy is in the pool or the file).
const slotKept = new Int32Array(S).fill(-1);
let slotHead = 0, slotTail = 0, slotUsed = 0; // used = tail - head (ring distance)
let staged = 0; // occupied slots
const slotPending = new Uint8Array(S); // released, madvise not yet issued
// Finalized but its page still sits in the slot, queued in the swap file write-back batch:
// the slot must not be reused (a MOVE into it fails with EEXIST) until flushWriteback() settles it.
const slotDeferred = new Uint8Array(S);
const release = new Float64Array(2 * 64);
let releaseCount = 0;

// Resident FIFO (live entries: ACTIVE or CLEAN pages) and stored FIFO (live
// entries: STORED pages, oldest first for write-back), lazily deleted through
// seq[page] stamps.
const fifo = new PageFifo();
const storedFifo = new PageFifo();
let stamp = 1;
// Pages the kernel would not let eviction take (pinned): off the FIFO, retried after ASIDE_MS.
const aside = new PageFifo();
const ASIDE_MS = 1000;
let asideRetryAt = 0;

// Swap file tier and its write-back batch.
const swap = opts.swapFileFd >= 0 ? new SwapFile(opts.swapFileFd, opts.swapFileSize, opts.swapFileEncrypt) : undefined;
const WB = 32;
const wbBuf = new Uint8Array(WB * PAGE);
const wbOwner = new Int32Array(WB);
const wbPage = new Uint32Array(WB);
const wbFrom = new Int32Array(WB); // staging slot, or -1: the page comes from the pool
let wbCount = 0;
const runOut = new Int32Array(1);
let swapBackoffUntil = 0;
if (swap) G[P.G_SWAP_SLOTS] = swap.slots;

const regions: RegionState[] = [];
const byId = new Map<number, RegionState>();
let lastRegion: RegionState | undefined;
let resident = 0;
let evicting = false;
let refuseUntilBelow = false; // zswap accept-threshold hysteresis

function fifoPush(r: RegionState, page: number): void {
  const s = (stamp = (stamp + 1) | 0);
  r.seq[page] = s;
  if (fifo.length > 2 * resident + 4096) fifo.compact(residentEntryLive);
  fifo.push(r.id, page, s);
}

function storedPush(r: RegionState, page: number): void {
  r.aux[page] = nowSec();
  const s = (stamp = (stamp + 1) | 0);
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

function findRegion(addr: number): RegionState | undefined {
  const l = lastRegion;
  if (l && addr >= l.base && addr < l.base + l.spec.size && !l.closed) return l;
  // regions[] is sorted by base address: binary search for the last base <= addr.
  let lo = 0, hi = regions.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (regions[mid].base <= addr) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (found < 0) return undefined;
  const r = regions[found];
  if (addr >= r.base + r.spec.size) return undefined;
  lastRegion = r;
  return r;
}

function becomeResident(r: RegionState, page: number, st: number, aux = 0): void {
  r.state[page] = st;
  r.aux[page] = aux;
  resident++;
  r.stats[P.R_RESIDENT]++;
  G[P.G_RESIDENT] = resident;
  fifoPush(r, page);
  if (resident > opts.residentLimitPages) evicting = true;
}

// ---- the fault path -----------------------------------------------------------

/** Resolves one fault. Returns false if the kernel said EAGAIN (retry later). */
function serveFault(addr: number, flags: number): boolean {
  let r = findRegion(addr);
  if (!r) {
    drainRequests(); // a region added just now
    r = findRegion(addr);
    if (!r) {
      // Not ours (any more): wake the thread so it sees the unregistered range.
      try { uffd.wake(addr, PAGE); } catch { /* range gone */ }
      return true;
    }
  }
  const page = (addr - r.base) / PAGE;
  const st = r.state[page];
  const write = (flags & PAGEFAULT_FLAG_WRITE) !== 0;

  if (flags & PAGEFAULT_FLAG_WP) {
    if (st === CLEAN) {
      uffd.writeProtect(addr, PAGE, false);
      r.state[page] = ACTIVE;
      if (r.isFile && r.spec.writable) r.stats[P.R_DIRTY]++;
      dropCleanCopy(r, page);
    } else {
      uffd.wake(addr, PAGE); // stale: the page moved; the thread retries and faults as missing
    }
    G[P.G_FAULTS_WP]++; // last: whoever sees it counted sees the page's new state too
    return true;
  }

  let res: number;
  switch (st) {
    case NEVER:
      if (r.isFile) return fileFault(r, page, addr, write);
      if (write) res = uffd.copy(addr, zeroPage, 0, 0);
      else res = uffd.zeropage(addr, PAGE);
      if (res < 0) return res !== -11;
      G[P.G_FAULTS_ZERO]++;
      r.stats[P.R_FAULTS_ZERO]++;
      becomeResident(r, page, ACTIVE);
      return true;
    case STORED: {
      // A file region's stored page is a private change to a read-only
      // mapping: CLEAN there means "the file has it", which it does not.
      const keep = !write && !r.isFile;
      if (nativeDecode) {
        // One native call: decode straight from the arena, copy in.
        const fsw = backends.frontswap;
        const n = fsw.view(r.id, page);
        if (n < 0) throw new Error(`tmem: region ${r.id} page ${page} is missing from the pool`);
        res = uffd.copyObject(addr, fsw.viewBytes, fsw.viewOffset, n, keep ? COPY_WP : 0);
      } else {
        const n = backends.frontswap.load(r.id, page, objBuf);
        if (n < 0) throw new Error(`tmem: region ${r.id} page ${page} is missing from the pool`);
        codec.decompress(objBuf, 0, n, pageBuf, 0);
        res = uffd.copy(addr, pageBuf, 0, keep ? COPY_WP : 0);
      }
      if (res < 0) return res !== -11;
      G[P.G_FAULTS_POOL]++;
      r.stats[P.R_FAULTS_POOL]++;
      storedLeaves(r, page);
      if (!keep) {
        dropPoolCopy(r, page);
        becomeResident(r, page, ACTIVE);
      } else {
        becomeResident(r, page, CLEAN); // the compressed copy stays: evicting it again is free
      }
      return true;
    }
    case SAME: {
      if (r.aux[page] === 0 && !write) {
        res = uffd.zeropage(addr, PAGE); // a zero page: map the shared one
      } else {
        pageWords.fill(r.aux[page]);
        res = uffd.copy(addr, pageBuf, 0, 0);
      }
      if (res < 0) return res !== -11;
      G[P.G_FAULTS_SAME]++;
      r.stats[P.R_FAULTS_SAME]++;
      G[P.G_SAME]--;
      r.stats[P.R_SAME]--;
      becomeResident(r, page, ACTIVE);
      return true;
    }
    case STAGED: {
      const a = r.aux[page];
      const slot = a & 0x7fffffff;
      const clean = (a & STAGED_CLEAN) !== 0;
      if (clean && !write) {
        // Read of a clean page: copy it in already write-protected (one atomic
        // step: no write can slip in unseen) and keep its clean copy. MOVE
        // would map it writable, and a writeProtect() after it comes too late.
        res = uffd.copy(addr, stagingBytes, slot * PAGE, COPY_WP);
        if (res < 0) return res !== -11;
        queueRelease(slot);
        r.state[page] = CLEAN;
        r.aux[page] = slotKept[slot] >= 0 ? (KEPT_SLOT | slotKept[slot]) >>> 0 : 0;
      } else {
        res = unstage(addr, slot);
        if (res < 0) {
          if (res === EAGAIN) return false;
          throw new Error(`tmem: moving staged page back failed with errno ${-res}`);
        }
        // Mapped writable now: dirty. An anon page's kept copy is stale.
        r.state[page] = ACTIVE;
        r.aux[page] = slotKept[slot] >= 0 ? (KEPT_SLOT | slotKept[slot]) >>> 0 : 0;
        if (clean) dropCleanCopy(r, page);
      }
      slotKept[slot] = -1;
      slotRegion[slot] = -1;
      staged--;
      G[P.G_STAGED] = staged;
      G[P.G_FAULTS_STAGED]++;
      r.stats[P.R_FAULTS_STAGED]++;
      G[P.G_SECOND_CHANCE]++;
      fifoPush(r, page); // second chance: back to the tail
      return true;
    }
    case SWAPPED:
      return swapIn(r, page, addr, write);
    case READING: {
      // Another thread faulted on a page being read: the copy at completion wakes it too.
      const rd = r.reads.get(page);
      if (rd && write) rd.write = true;
      return true;
    }
    default:
      // ACTIVE or CLEAN: another thread faulted on the same page and was served.
      uffd.wake(addr, PAGE);
      return true;
  }
}

/**
 * A fault on a page in the swap file: read, check, copy in. A read of an anon
 * page keeps its slot (the kernel's swap cache) and maps the page write-protected:
 * until a write-protect fault says it was written, evicting it again writes
 * nothing. As the kernel does (vm_swap_full), slots are kept only while the file
 * is at most half full (and not failing writes); a write, or a fuller file, frees
 * the slot at once.
 */
function swapIn(r: RegionState, page: number, addr: number, write: boolean): boolean {
  const slot = r.aux[page];
  const sequential = r.lastSwapIn === page - 1;
  let ok: boolean;
  try {
    ok = swap!.read(slot, pageBuf, 0, sequential);
  } catch (e) {
    if (!(e instanceof SwapFileError)) throw e; // a bug, not an I/O error: the dispatcher fails, loudly
    G[P.G_SWAP_IO_ERRORS]++;
    return unrecoverable(r, page, addr, (e as Error).message);
  }
  if (!ok) {
    G[P.G_SWAP_CSUM_ERRORS]++;
    return unrecoverable(r, page, addr, `${swap!.checkName} mismatch in swap file slot ${slot}`);
  }
  // A file region's swapped page is a private change: CLEAN there would mean "the file has it".
  const keep = !write && !r.isFile && 2 * swap!.usedCount <= swap!.slots && swapUsable();
  const res = uffd.copy(addr, pageBuf, 0, keep ? COPY_WP : 0);
  if (res < 0) return res !== -11;
  r.lastSwapIn = page;
  if (keep) {
    G[P.G_SWAP_CACHED]++;
    becomeResident(r, page, CLEAN, (KEPT_SLOT | slot) >>> 0);
  } else {
    swap!.freeSlot(slot);
    G[P.G_SWAP_PAGES] = swap!.usedCount;
    becomeResident(r, page, ACTIVE);
  }
  G[P.G_SWAP_READAHEAD_HITS] = swap!.readaheadHits;
  r.stats[P.R_FAULTS_SWAP]++;
  G[P.G_SWAP_INS]++; // last: whoever sees it counted sees the page's slot and state too
  return true;
}

/**
 * A page that cannot be restored: never hand back wrong bytes. Say which page
 * on stderr (synchronously: the process may die next) and poison it, so the
 * faulting thread gets SIGBUS at that address.
 */
function unrecoverable(r: RegionState, page: number, addr: number, why: string): boolean {
  fs.writeSync(2, `tmem: region ${r.id} page ${page} cannot be restored: ${why}; raising SIGBUS in the faulting thread\n`);
  const res = uffd.poison(addr, PAGE);
  if (res < 0 && res !== -17) process.abort();
  return true;
}

// ---- mapped files ---------------------------------------------------------------
//
// Reads: a page-cache hit is read inline with preadv2(RWF_NOWAIT), which never
// sleeps on I/O or a lock; anything else (not cached, a lock held, a filesystem
// without RWF_NOWAIT such as tmpfs) is read on the FileIo reader thread while
// this thread goes on serving faults (the page is READING meanwhile).
// Writes: a dirty page's bytes are copied into a write slot and queued on the
// FileIo writer thread; the slot keeps them until the write completes. A fault
// on the page meanwhile is served from the slot; a failed write makes the page
// dirty again (resident), counts the error and leaves the file's dirty pages
// alone for a second; flush()/close() report it. flush() is a FlushOp: its
// writes, then an fdatasync behind them, then the reply.
// Cleancache: a page goes in only if it was read at the file's current
// generation, and a hit is used only after checking the generation (statx:
// size, mtime, ctime, inode, device) once per batch; a change drops the file's
// cleancache pages (invalidate_inode), as the kernel's page cache is never
// older than the file.

interface ReadJob { id: number; r: RegionState; page: number; write: boolean }
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
function fileIo(): FileIo {
  io ??= new native.FileIo(uffd);
  return io;
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
const EOPNOTSUPP = -95;
const WRITE_BACKOFF_MS = 1000;
/** Bumped per batch of faults and per eviction slice: a file's generation is checked once per epoch. */
let epoch = 0;

function errnoName(errno: number): string {
  return getSystemErrorMap().get(-errno)?.[0] ?? `errno ${errno}`;
}
function errnoText(errno: number): string {
  const e = getSystemErrorMap().get(-errno);
  return e ? `${e[0]} (${e[1]})` : `errno ${errno}`;
}

/** The file's generation, checked once per epoch; a change drops its cleancache pages. */
function fileGeneration(r: RegionState): number {
  if (r.genEpoch !== epoch) {
    r.genEpoch = epoch;
    const g = fileIo().generation(r.file);
    if (g !== r.gen) {
      backends.cleancache.invalidateInode(r.id);
      r.gen = g;
    }
  }
  return r.gen;
}

function fileFault(r: RegionState, page: number, addr: number, write: boolean): boolean {
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
  const pos = page * PAGE;
  const want = Math.min(PAGE, Math.max(0, (r.spec.fileSize ?? 0) - pos));
  let got = want === 0 ? 0 : r.nowait ? fileIo().tryRead(r.file, pageBuf, 0, want, pos) : EOPNOTSUPP;
  if (got === EOPNOTSUPP) r.nowait = false;
  if (got === EAGAIN || got === EOPNOTSUPP) {
    const id = fileIo().read(r.file, want, pos);
    const rd: ReadJob = { id, r, page, write };
    readJobs.set(id, rd);
    r.reads.set(page, rd);
    r.state[page] = READING;
    return true;
  }
  if (got < 0) return unrecoverable(r, page, addr, `reading ${r.spec.path ?? 'the mapped file'} failed: ${errnoText(-got)}`);
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
  r.state[page] = NEVER;
  const addr = r.base + page * PAGE;
  if (result < 0) {
    unrecoverable(r, page, addr, `reading ${r.spec.path ?? 'the mapped file'} failed: ${errnoText(-result)}`);
    return;
  }
  pageBuf.set(ioPage.subarray(0, result));
  if (!fileRead(r, page, addr, rd.write, result)) pushRetry(addr, rd.write ? PAGEFAULT_FLAG_WRITE : 0);
}

/**
 * Queues a dirty page's bytes (src at off) for the file. False if it cannot be
 * now (no free write slot, or the file failed a moment ago and `force` is not
 * set): the page then stays dirty where it is.
 */
function writeBack(r: RegionState, page: number, src: Uint8Array, off: number, force: boolean): boolean {
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
      const res = uffd.copy(addr, wslotBytes, k * PAGE, 0);
      if (res === -3) return false; // the process is going away
      if (res < 0) {
        // Cannot be installed now (EAGAIN): the bytes stay in their slot, queued again.
        const id = fileIo().write(r.file, wslotBytes, k * PAGE, Math.max(0, Math.min(PAGE, (r.spec.fileSize ?? 0) - page * PAGE)), page * PAGE);
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
      r.state[page] = ACTIVE;
      r.stats[P.R_DIRTY]++;
      return false;
    case STAGED:
      if (r.aux[page] & STAGED_CLEAN) {
        r.aux[page] &= ~STAGED_CLEAN;
        r.stats[P.R_DIRTY]++;
      }
      return false;
    default:
      return false; // ACTIVE: dirty already
  }
}

/** Takes every finished FileIo job. */
function drainIo(): void {
  if (!io || (writeJobs.size === 0 && readJobs.size === 0 && syncJobs.size === 0 && barriers.size === 0)) return;
  let wrote = false;
  while (io.take(ioOut, ioPage, 0)) {
    const id = ioOut[0], op = ioOut[1], result = ioOut[2];
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

/** flush() and close() of a writable mapping: write its dirty pages, then fdatasync; reply when that is done. */
function startFlush(r: RegionState, reqId: number, close: boolean): void {
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
      const slot = r.aux[page] & 0x7fffffff;
      if (!writeBack(r, page, stagingBytes, slot * PAGE, true)) {
        waitingFlushes.push(op);
        return;
      }
      r.aux[page] |= STAGED_CLEAN;
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
  if (slotUsed === S) finalizeOldest();
  if (r.state[page] !== ACTIVE) return 0;
  const slot = slotTail;
  if (slotDeferred[slot]) flushWriteback();
  if (slotPending[slot]) flushReleases();
  const res = moveUnshared(staging.address + slot * PAGE, addr, 1);
  if (res !== PAGE) return 0;
  const queued = writeBack(r, page, stagingBytes, slot * PAGE, true);
  const back = uffd.copy(addr, stagingBytes, slot * PAGE, queued ? COPY_WP : 0);
  if (back !== PAGE) throw new Error(`tmem: could not return flushed page ${page} (errno ${-back})`);
  queueRelease(slot);
  flushReleases();
  if (!queued) return -1;
  r.state[page] = CLEAN;
  return 1;
}

function finishFlush(op: FlushOp, result: number): void {
  const r = op.r;
  if (r.closed) {
    reply(op.reqId, true, op.written);
    return;
  }
  const failed = result < 0 ? { errno: -result, syscall: 'fdatasync' }
    : r.writeErrors > op.errorsAtStart ? r.lastWriteError : undefined;
  if (failed) {
    // A failed close() leaves the region open and usable: close() can be retried.
    const what = op.close ? 'close()' : 'flush()';
    replyError(op.reqId, `${what} could not write ${r.spec.path ?? 'the mapped file'}: ${errnoText(failed.errno)} in ${failed.syscall}; ` +
      'its dirty pages are kept (retry once the cause is fixed)', errnoName(failed.errno), failed.errno, failed.syscall);
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

function storedLeaves(r: RegionState, page: number): void {
  if (r.aux[page] & IDLE_SEEN) G[P.G_IDLE]--;
  G[P.G_STORED]--;
  r.stats[P.R_STORED]--;
}
/** The page was written: its compressed copy is stale (frontswap_invalidate_page). */
function dropPoolCopy(r: RegionState, page: number): void {
  backends.frontswap.invalidatePage(r.id, page);
  poolObjectGone(r, page);
}

/** The page's object in the persistent pool is now `len` bytes long (hugePages counts the raw ones). */
function poolObjectIs(r: RegionState, page: number, len: number): void {
  const raw = isRaw(len) ? RAW : 0;
  G[P.G_HUGE] += (raw - (r.flags[page] & RAW)) / RAW;
  r.flags[page] = (r.flags[page] & ~RAW) | raw;
}

/** The page has no object in the persistent pool any more. */
function poolObjectGone(r: RegionState, page: number): void {
  if (r.flags[page] & RAW) G[P.G_HUGE]--;
  r.flags[page] &= ~RAW;
}

/**
 * A clean page (r.aux[page] as a CLEAN page's) is written or gone: its copy is
 * stale. Anon: the kept swap file slot is freed, else the pool's copy dropped;
 * a file page's copy is the file itself.
 */
function dropCleanCopy(r: RegionState, page: number): void {
  const a = r.aux[page];
  r.aux[page] = 0;
  if (a & KEPT_SLOT) {
    swap!.freeSlot(a & SLOT_MASK);
    G[P.G_SWAP_PAGES] = swap!.usedCount;
    G[P.G_SWAP_CACHED]--;
  } else if (!r.isFile) {
    dropPoolCopy(r, page);
  }
}

/**
 * UFFDIO_MOVE of one page that survives a fork: after any fork the page is shared
 * copy-on-write (until written, even once the child exec'd) and MOVE refuses it
 * with EBUSY; make it exclusive again (uffd.unshare: the kernel's write fault,
 * bytes unchanged, never waiting on a userfaultfd) and move once more. EBUSY
 * after that: the kernel holds the page (pinned for I/O); it stays where it is.
 */
function moveUnshared(dst: number, src: number, flags = 0): number {
  const res = uffd.move(dst, src, PAGE, flags);
  if (res !== EBUSY || uffd.unshare(src, PAGE) !== PAGE) return res;
  G[P.G_UNSHARED]++;
  return uffd.move(dst, src, PAGE, flags);
}

/** Puts the page in staging slot `slot` back at `addr`: moved, or copied if the kernel will not move it. */
function unstage(addr: number, slot: number): number {
  const res = moveUnshared(addr, staging.address + slot * PAGE);
  if (res !== EBUSY) return res;
  const c = uffd.copy(addr, stagingBytes, slot * PAGE, 0);
  if (c === PAGE) queueRelease(slot);
  return c;
}

// ---- eviction ---------------------------------------------------------------------

/** Moves (or drops) the oldest live resident page. False if none could be taken. */
function stageVictim(): boolean {
  retryAside();
  // At most one pass over the FIFO: a page that cannot be moved now (EAGAIN) is pushed
  // back to the tail, and looping until one can would spin forever if none can. A
  // pinned page leaves the FIFO for the aside list: it is not met again for a while.
  for (let tries = fifo.length; tries > 0 && fifo.length > 0; tries--) {
    if (slotUsed === S) return false;
    fifo.shift();
    const r = byId.get(fifo.outRegion);
    const page = fifo.outPage;
    if (!r || r.closed || r.seq[page] !== fifo.outStamp) continue;
    const st = r.state[page];
    if (st !== ACTIVE && st !== CLEAN) continue;
    if (stageOne(r, page) !== NOT_TAKEN) return true;
  }
  return false;
}

const NOT_TAKEN = 0, STAGED_NOW = 1, DROPPED = 2;

/**
 * Moves one resident page to the tail slot: STAGED_NOW; or, for a clean page the
 * kernel will not move, drops it (its copy is current): DROPPED, evicted already;
 * NOT_TAKEN if it stays resident (set aside if pinned).
 */
function stageOne(r: RegionState, page: number): number {
  leaveAside(r, page); // tried again now: set aside again below if still refused
  const st = r.state[page];
  const slot = slotTail;
  if (slotDeferred[slot]) flushWriteback();
  if (slotPending[slot]) flushReleases();
  const addr = r.base + page * PAGE;
  // A clean page is write-protected: unshare() cannot write it, and needs not.
  let res = st === CLEAN ? uffd.move(staging.address + slot * PAGE, addr, PAGE) : moveUnshared(staging.address + slot * PAGE, addr);
  if (res === EBUSY && st === CLEAN) {
    dropClean(r, page, addr);
    return DROPPED;
  }
  if (res === PAGE) {
    slotRegion[slot] = r.id;
    slotPage[slot] = page;
    slotKept[slot] = st === CLEAN && (r.aux[page] & KEPT_SLOT) ? r.aux[page] & SLOT_MASK : -1;
    slotTail = (slotTail + 1) % S;
    slotUsed++;
    staged++;
    G[P.G_STAGED] = staged;
    r.state[page] = STAGED;
    r.aux[page] = slot | (st === CLEAN ? STAGED_CLEAN : 0);
    return STAGED_NOW;
  }
  if (res === ENOENT) {
    // Nothing mapped there (the program discarded it): it reads as zeros now.
    if (st === CLEAN) dropCleanCopy(r, page);
    r.state[page] = NEVER;
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
  const a = r.aux[page];
  if (r.isFile) {
    r.state[page] = NEVER;
  } else if (a & KEPT_SLOT) {
    r.state[page] = SWAPPED;
    r.aux[page] = a & SLOT_MASK;
    G[P.G_SWAP_CACHED]--;
    G[P.G_EVICT_NO_COMPRESS]++;
  } else {
    cleanCopyStored(r, page);
  }
  leaveResidency(r);
  G[P.G_EVICTIONS]++;
  r.stats[P.R_EVICTIONS]++;
}
const dropRange = new Float64Array(2);

/** A clean anon page's kept pool copy is now the page (it left residency): frontswap holds it. */
function cleanCopyStored(r: RegionState, page: number): void {
  r.state[page] = STORED;
  storedPush(r, page);
  G[P.G_STORED]++;
  r.stats[P.R_STORED]++;
  G[P.G_EVICT_NO_COMPRESS]++;
}

/** A page eviction cannot take (pinned): off the FIFO until the aside list is retried. */
function setAside(r: RegionState, page: number): void {
  const s = (stamp = (stamp + 1) | 0);
  r.seq[page] = s;
  if (aside.length === 0) asideRetryAt = performance.now() + ASIDE_MS;
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
  if (aside.length === 0 || performance.now() < asideRetryAt) return;
  while (aside.shift()) {
    const r = byId.get(aside.outRegion);
    const page = aside.outPage;
    if (!r || r.closed || !residentEntryLive(aside.outRegion, page, aside.outStamp)) continue;
    leaveAside(r, page);
    fifoPush(r, page);
  }
}

function leaveResidency(r: RegionState): void {
  resident--;
  r.stats[P.R_RESIDENT]--;
  G[P.G_RESIDENT] = resident;
}

/** Finalizes the slot at the head of the staging ring. */
function finalizeOldest(): void {
  const slot = slotHead;
  slotHead = (slotHead + 1) % S;
  slotUsed--;
  const rid = slotRegion[slot];
  if (rid < 0) return; // moved back by a fault: already empty
  slotRegion[slot] = -1;
  const r = byId.get(rid)!;
  const page = slotPage[slot];
  const done = finalizePage(r, page, slot);
  if (done === DEFERRED) return; // in the write-back batch; settled by flushWriteback()
  if (done === REFUSED) {
    // Refused: the page goes back where it was, resident.
    const res = unstage(r.base + page * PAGE, slot);
    if (res !== PAGE) throw new Error(`tmem: could not return a refused page to region ${r.id} (errno ${-res})`);
    staged--;
    G[P.G_STAGED] = staged;
    r.state[page] = ACTIVE;
    fifoPush(r, page);
    // Nothing will take pages for a while: pause background eviction rather
    // than spin refusing on the CPU the application runs on.
    evictBackoffUntil = performance.now() + EVICT_BACKOFF_MS;
    return;
  }
  evicted(r, slot);
}

/** A staged page left residency for good: count it, free its staging slot. */
function evicted(r: RegionState, slot: number): void {
  staged--;
  G[P.G_STAGED] = staged;
  leaveResidency(r);
  G[P.G_EVICTIONS]++;
  r.stats[P.R_EVICTIONS]++;
  queueRelease(slot);
}

const REFUSED = 0, DONE = 1, DEFERRED = 2;

/** Stores the page in staging slot `slot`: DONE, REFUSED (it must stay resident) or DEFERRED (swap file batch). */
function finalizePage(r: RegionState, page: number, slot: number): number {
  const clean = (r.aux[page] & STAGED_CLEAN) !== 0;
  const off = slot * PAGE;
  if (r.isFile) {
    if (!clean) {
      if (!r.spec.writable) return storeAnon(r, page, off, slot); // private changes to a read-only mapping: frontswap keeps them
      // Dirty: its bytes go to the writer thread (and stay in a write slot until written).
      if (!writeBack(r, page, stagingBytes, off, false)) return REFUSED;
      r.state[page] = NEVER;
      return DONE;
    }
    // Clean file page: cleancache may keep it (ephemeral) if it is as new as the file.
    if (!r.inflight.has(page) && r.loadGen[page] === fileGeneration(r)) {
      const len = codec.compress(stagingBytes, off, objBuf);
      if (!isRaw(len) && !poolFull() && backends.cleancache.put(r.id, page, objBuf, len)) {
        G[P.G_CLEANCACHE_PUTS]++;
      }
    }
    r.state[page] = NEVER;
    return DONE;
  }
  if (clean) {
    const kept = slotKept[slot];
    slotKept[slot] = -1;
    if (kept >= 0) {
      // Unchanged since its swap-in: its slot still holds it. Nothing is written.
      r.state[page] = SWAPPED;
      r.aux[page] = kept;
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
    r.state[page] = SAME;
    r.aux[page] = word;
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
  poolObjectIs(r, page, len);
  r.state[page] = STORED;
  storedPush(r, page);
  G[P.G_STORED]++;
  r.stats[P.R_STORED]++;
  return DONE;
}

function swapUsable(): boolean {
  return swap !== undefined && swap.free > 0 && (swapBackoffUntil === 0 || performance.now() >= swapBackoffUntil);
}

/** Queues a staged page for the swap file (frontswap refused it). */
function toSwapFile(r: RegionState, page: number, off: number, slot: number): number {
  if (!swapUsable()) return REFUSED;
  if (wbCount === WB) flushWriteback();
  wbBuf.set(stagingBytes.subarray(off, off + PAGE), wbCount * PAGE);
  wbOwner[wbCount] = r.id;
  wbPage[wbCount] = page;
  wbFrom[wbCount] = slot;
  slotDeferred[slot] = 1;
  wbCount++;
  return DEFERRED;
}

/** Queues a stored page (its object loaded in objBuf) for the swap file; settled by flushWriteback(). */
function queuePoolWriteback(r: RegionState, page: number, len: number): void {
  if (wbCount === WB) flushWriteback();
  codec.decompress(objBuf, 0, len, wbBuf, wbCount * PAGE);
  wbOwner[wbCount] = r.id;
  wbPage[wbCount] = page;
  wbFrom[wbCount] = -1;
  wbCount++;
}

/** zswap's shrinker: writes the oldest pool entries back to the swap file. */
function writebackFromPool(max: number): number {
  let n = 0;
  while (n < max && storedFifo.shift()) {
    const r = byId.get(storedFifo.outRegion);
    const page = storedFifo.outPage;
    if (!r || r.closed || r.seq[page] !== storedFifo.outStamp || r.state[page] !== STORED) continue;
    const len = backends.frontswap.load(r.id, page, objBuf);
    if (len < 0) continue;
    queuePoolWriteback(r, page, len);
    n++;
  }
  flushWriteback();
  return n;
}

/** Writes the batch: one pwrite per run of free slots; settles every entry. */
function flushWriteback(): void {
  let i = 0;
  while (i < wbCount) {
    const n = swap!.allocRun(wbCount - i, runOut);
    if (n === 0) {
      settleFailed(i, wbCount - i, 'the swap file is full');
      break;
    }
    try {
      swap!.writeRun(runOut[0], i === 0 ? wbBuf : wbBuf.subarray(i * PAGE), n, wbOwner, wbPage, i);
    } catch (e) {
      swap!.release(runOut[0], n);
      if (!(e instanceof SwapFileError)) throw e; // a bug, not an I/O error: not counted as one
      settleFailed(i, n, e.message);
      i += n;
      continue;
    }
    for (let k = 0; k < n; k++) settleWritten(i + k, runOut[0] + k);
    i += n;
  }
  for (let k = 0; k < wbCount; k++) if (wbFrom[k] >= 0) slotDeferred[wbFrom[k]] = 0;
  wbCount = 0;
  G[P.G_SWAP_PAGES] = swap ? swap.usedCount : 0;
  flushReleases();
}

function settleWritten(k: number, fileSlot: number): void {
  const r = byId.get(wbOwner[k]);
  const page = wbPage[k];
  const from = wbFrom[k];
  if (!r || r.closed) {
    swap!.freeSlot(fileSlot);
    return;
  }
  if (from >= 0) {
    evicted(r, from);
  } else {
    dropPoolCopy(r, page);
    storedLeaves(r, page);
  }
  r.state[page] = SWAPPED;
  r.aux[page] = fileSlot;
  G[P.G_SWAP_WRITEBACK]++;
}

function settleFailed(from: number, n: number, why: string): void {
  G[P.G_SWAP_IO_ERRORS]++;
  swapBackoffUntil = performance.now() + 1000;
  lastSwapError = why;
  for (let k = from; k < from + n; k++) {
    const r = byId.get(wbOwner[k]);
    const slot = wbFrom[k];
    if (!r || r.closed) continue;
    if (slot < 0) {
      // From the pool: it stays there, and stays a candidate for the next write-back.
      if (r.state[wbPage[k]] === STORED) storedPush(r, wbPage[k]);
      continue;
    }
    // The page goes back where it was, resident: nothing is lost.
    const page = wbPage[k];
    const res = unstage(r.base + page * PAGE, slot);
    if (res !== PAGE) throw new Error(`tmem: could not return page ${page} of region ${r.id} after a swap file error (errno ${-res})`);
    staged--;
    G[P.G_STAGED] = staged;
    r.state[page] = ACTIVE;
    fifoPush(r, page);
  }
}
let lastSwapError = '';

/** zswap's max_pool_percent with accept_thr_percent hysteresis. */
function poolFull(): boolean {
  const used = backends.poolBytes();
  if (refuseUntilBelow) {
    if (used >= (opts.poolLimitBytes * opts.acceptThresholdPercent) / 100) return true;
    refuseUntilBelow = false;
    G[P.G_POOL_ACCEPT_COUNT]++; // for the main thread's 'poolAccepting' event
  }
  if (used + 2 * PAGE > opts.poolLimitBytes) {
    refuseUntilBelow = true;
    G[P.G_POOL_FULL_COUNT]++; // for the main thread's 'poolFull' event
    return true;
  }
  return false;
}

function queueRelease(slot: number): void {
  slotPending[slot] = 1;
  const addr = staging.address + slot * PAGE;
  if (releaseCount > 0) {
    const k = 2 * (releaseCount - 1);
    if (release[k] + release[k + 1] === addr) {
      release[k + 1] += PAGE;
      return;
    }
  }
  if (releaseCount === 64) flushReleases();
  release[2 * releaseCount] = addr;
  release[2 * releaseCount + 1] = PAGE;
  releaseCount++;
}

function flushReleases(): void {
  if (releaseCount === 0) return;
  native.madvise(release, releaseCount, MADV_DONTNEED);
  releaseCount = 0;
  slotPending.fill(0);
}

/** One slice of background eviction. */
function evictSlice(budget: number): void {
  epoch++;
  const stagingTarget = Math.min(S, Math.max(16, opts.residentLimitPages >> 3));
  for (let i = 0; i < budget; i++) {
    if (resident <= opts.lowWatermarkPages) {
      evicting = false;
      break;
    }
    if (staged < stagingTarget && slotUsed < S && fifo.length > 0 && stageVictim()) continue;
    if (slotUsed > 0) finalizeOldest();
    else if (!stageVictim()) {
      evicting = false; // nothing left that can be evicted
      break;
    }
  }
  if (wbCount > 0) flushWriteback();
  flushReleases();
}

const zstdCold = opts.idle.recompress ? new PageCodec('zstd', opts.idle.recompressLevel) : undefined;

/** One pass over idle stored pages (zram idle recompression and writeback). */
function idlePass(): void {
  const now = nowSec();
  const after = opts.idle.afterMs / 1000;
  let budget = opts.idle.budget;
  while (budget > 0 && storedFifo.peek()) {
    const r = byId.get(storedFifo.outRegion);
    const page = storedFifo.outPage;
    if (!r || r.closed || r.seq[page] !== storedFifo.outStamp || r.state[page] !== STORED) {
      storedFifo.shift();
      continue;
    }
    const a = r.aux[page];
    if (now - (a & TIME_MASK) < after) break; // the rest are younger
    storedFifo.shift();
    budget--;
    if (!(a & IDLE_SEEN)) G[P.G_IDLE]++;
    let flags = (a | IDLE_SEEN) >>> 0;
    // Counted idle from now on: mark it at once, so storedLeaves() uncounts it whichever way
    // it leaves (write-back to the swap file, bringBack), not only after the visit ends.
    r.aux[page] = flags;
    const len = backends.frontswap.load(r.id, page, objBuf);
    if (len < 0) continue;
    const raw = isRaw(len);
    if (swapUsable() && (opts.idle.writeback === 'idle' || (opts.idle.writeback === 'huge' && raw))) {
      queuePoolWriteback(r, page, len);
      G[P.G_IDLE_WRITEBACK]++;
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
          bringBack(r, page, pageBuf);
          continue;
        }
      } else {
        flags = (flags | NO_GAIN) >>> 0; // nothing helps this page: never again
        G[P.G_RECOMPRESS_NO_GAIN]++;
      }
    }
    storedPush(r, page); // to the tail: visited
    r.aux[page] = ((r.aux[page] & TIME_MASK) | (flags & ~TIME_MASK)) >>> 0;
  }
  if (wbCount > 0) flushWriteback();
}
const recompBuf = new Uint8Array(PAGE + 64);

/** Installs a page's bytes back into its region (it becomes resident): the last resort, never a loss. */
function bringBack(r: RegionState, page: number, bytes: Uint8Array): void {
  const res = uffd.copy(r.base + page * PAGE, bytes, 0, 0);
  if (res < 0 && res !== -3) throw new Error(`tmem: could not bring page ${page} of region ${r.id} back (errno ${-res})`);
  becomeResident(r, page, ACTIVE);
}
let nextIdlePass = 0;

/** While the pool is over its accept threshold, write its oldest entries back (a slice). */
function shrinkSlice(): boolean {
  if (!swapUsable() || storedFifo.length === 0) return false;
  const used = backends.poolBytes();
  if (used < (opts.poolLimitBytes * opts.acceptThresholdPercent) / 100) return false;
  writebackFromPool(8);
  if (++shrinkRounds % 16 === 0) backends.compact();
  return true;
}
let shrinkRounds = 0;

/** Pushes every resident and staged page of a region out now (region.evict()). */
function evictRegion(r: RegionState): number {
  batchDepth++;
  try {
    return evictRegionNow(r);
  } finally {
    batchDepth--;
  }
}

function evictRegionNow(r: RegionState): number {
  const before = r.stats[P.R_EVICTIONS];
  let n = 0;
  // Drain the ring first so staged pages of this region are stored too.
  while (slotUsed > 0) finalizeOldest();
  flushReleases();
  for (let page = 0; page < r.pages; page++) {
    const st = r.state[page];
    if (st !== ACTIVE && st !== CLEAN) continue;
    const taken = stageOne(r, page);
    if (taken === NOT_TAKEN) continue;
    if (taken === STAGED_NOW) finalizeOldest();
    if (wbCount === WB) flushWriteback();
    n++;
    if (releaseCount >= 32) flushReleases();
    if ((n & 15) === 0) {
      if (wbCount > 0) flushWriteback();
      serveAvailableFaults();
      // That may have served requests too: a close() of this region frees its pages (and the
      // main thread unmaps them next); staging another page of it would strand it in its slot.
      if (r.closed) break;
    }
  }
  if (wbCount > 0) flushWriteback();
  flushReleases();
  return r.stats[P.R_EVICTIONS] - before; // pages that really left (refused ones stayed)
}

/** Frees a region: its staged pages and pool entries go (frontswap invalidate_area, cleancache invalidate_inode). */
function releaseRegion(r: RegionState): void {
  // Staged pages of this region are dropped with their slots.
  for (let i = 0, slot = slotHead; i < slotUsed; i++, slot = (slot + 1) % S) {
    if (slotRegion[slot] === r.id) {
      slotRegion[slot] = -1;
      if (slotKept[slot] >= 0) {
        swap!.freeSlot(slotKept[slot]);
        G[P.G_SWAP_CACHED]--;
        slotKept[slot] = -1;
      }
      staged--;
      resident--;
      queueRelease(slot);
    }
  }
  flushReleases();
  for (let page = 0; page < r.pages; page++) {
    const st = r.state[page];
    if (r.flags[page] & RAW) G[P.G_HUGE]--; // invalidateArea below drops every pool object
    if (r.flags[page] & ASIDE) G[P.G_UNEVICTABLE]--;
    if (st === ACTIVE || st === CLEAN) {
      resident--;
      if (st === CLEAN && (r.aux[page] & KEPT_SLOT)) {
        swap!.freeSlot(r.aux[page] & SLOT_MASK);
        G[P.G_SWAP_CACHED]--;
      }
    } else if (st === STORED) storedLeaves(r, page);
    else if (st === SAME) G[P.G_SAME]--;
    else if (st === SWAPPED) swap!.freeSlot(r.aux[page]);
  }
  G[P.G_SWAP_PAGES] = swap ? swap.usedCount : 0;
  G[P.G_RESIDENT] = resident;
  G[P.G_STAGED] = staged;
  // frontswap's invalidate_area / cleancache's invalidate_inode
  backends.frontswap.invalidateArea(r.id);
  if (r.isFile) {
    backends.cleancache.invalidateInode(r.id);
    // Reads still in flight finish on their own and are dropped (r.closed); the
    // descriptor FileIo holds is closed when the last of them is done.
    if (r.file >= 0) fileIo().closeFile(r.file);
    for (const rd of r.reads.values()) readJobs.delete(rd.id);
    r.reads.clear();
  }
  r.closed = true;
  byId.delete(r.id);
  regions.splice(regions.indexOf(r), 1);
  if (lastRegion === r) lastRegion = undefined;
}

/** A new region overlaps one that was never released (its memory was unmapped without a close): forget the old one. */
function dropOverlapping(spec: P.RegionSpec): void {
  for (const old of [...regions]) {
    if (old.base < spec.address + spec.size && spec.address < old.base + old.spec.size) {
      fs.writeSync(2, `tmem: region ${old.id} was unmapped without being closed; region ${spec.id} now uses its memory\n`);
      releaseRegion(old);
    }
  }
}

// ---- requests and the loop ----------------------------------------------------------

function reply(reqId: number, ok: boolean, value?: number, error?: string): void {
  const m: P.Reply = { reqId, ok, value, error };
  port.postMessage(m);
}

/** A failed request whose cause is a syscall: the reply carries Node's error fields. */
function replyError(reqId: number, error: string, code: string, errno: number, syscall: string): void {
  const m: P.Reply = { reqId, ok: false, error, code, errno, syscall };
  port.postMessage(m);
}

function handle(req: P.Request): boolean {
  try {
    switch (req.op) {
      case 'addRegion': {
        dropOverlapping(req.region);
        const r = new RegionState(req.region);
        if (r.isFile) {
          r.file = fileIo().openFile(req.region.fd!);
          r.gen = fileIo().generation(r.file);
        }
        let at = regions.length;
        while (at > 0 && regions[at - 1].base > r.base) at--;
        regions.splice(at, 0, r); // kept sorted by base address
        byId.set(r.id, r);
        reply(req.reqId, true);
        return true;
      }
      case 'evict': {
        const r = byId.get(req.id);
        const n = r ? evictRegion(r) : 0;
        // A writable mapping's evicted dirty pages are on the writer thread: reply once they are written.
        if (r && r.isFile && r.inflight.size > 0) barriers.set(fileIo().write(r.file, ioPage, 0, 0, 0), { reqId: req.reqId, value: n });
        else reply(req.reqId, true, n);
        return true;
      }
      case 'flush': {
        const r = byId.get(req.id);
        if (r && r.isFile && r.spec.writable) startFlush(r, req.reqId, false); // replies when written
        else reply(req.reqId, true, 0);
        return true;
      }
      case 'closeRegion': {
        const r = byId.get(req.id);
        if (r && r.isFile && r.spec.writable) {
          startFlush(r, req.reqId, true); // replies once the file has every dirty page
          return true;
        }
        if (r) releaseRegion(r);
        reply(req.reqId, true);
        return true;
      }
      case 'stop':
        flushReleases();
        reply(req.reqId, true);
        return false;
    }
  } catch (e) {
    reply(req.reqId, false, undefined, e instanceof Error ? e.message : String(e));
  }
  return true;
}

let running = true;
const EVICT_BACKOFF_MS = 50;
let evictBackoffUntil = 0;
const idleEnabled = opts.idle.afterMs > 0 && (opts.idle.recompress || (opts.idle.writeback !== false && opts.swapFileFd >= 0));
/** The stored FIFO feeds write-back (swap file) and the idle pass; without both it is not kept. */
const storedFifoUsed = opts.swapFileFd >= 0 || idleEnabled;
let shrinking = false;
// While a batch of faults is being served (or evict() polls for faults inside
// one), only addRegion is handled at once (a fault may be for the new region):
// evict/flush/close would read new events into the buffer the outer batch is
// still walking, or free a region under it. They wait in `deferred`.
let batchDepth = 0;
const deferred: P.Request[] = [];

function drainRequests(): void {
  for (;;) {
    const m = receiveMessageOnPort(port);
    if (!m) break;
    const req = m.message as P.Request;
    if (batchDepth > 0 && req.op !== 'addRegion') deferred.push(req);
    else if (!handle(req)) running = false;
  }
  if (batchDepth === 0) runDeferred();
}

function runDeferred(): void {
  while (deferred.length > 0 && batchDepth === 0) {
    if (!handle(deferred.shift()!)) running = false;
  }
}

const retryAddr = new Float64Array(64);
const retryFlags = new Float64Array(64);
let retries = 0;

function pushRetry(addr: number, flags: number): void {
  if (retries >= 64) return;
  retryAddr[retries] = addr;
  retryFlags[retries] = flags;
  retries++;
}

function serveBatch(n: number): void {
  const t0 = performance.now();
  epoch++;
  batchDepth++;
  for (let i = 0; i < n; i++) {
    const k = i * EVENT_SLOTS;
    if (events[k] !== UFFD_EVENT_PAGEFAULT) continue;
    if (!serveFault(events[k + 2], events[k + 1]) && retries < 64) {
      retryAddr[retries] = events[k + 2];
      retryFlags[retries] = events[k + 1];
      retries++;
    }
  }
  batchDepth--;
  const us = ((performance.now() - t0) * 1000) / n;
  hist[P.bucketOf(us)] += n;
}

function serveAvailableFaults(): void {
  const n = uffd.read(events, 0);
  if (n > 0) serveBatch(n);
  else if (n < 0) drainRequests();
}

function retryPending(): void {
  const k = retries;
  retries = 0;
  for (let i = 0; i < k; i++) {
    G[P.G_RETRIES]++;
    if (!serveFault(retryAddr[i], retryFlags[i]) && retries < 64) {
      retryAddr[retries] = retryAddr[i];
      retryFlags[retries] = retryFlags[i];
      retries++;
    }
  }
}

function loop(): void {
  Atomics.store(ctl, P.CTL_READY, 1);
  Atomics.notify(ctl, P.CTL_READY);
  while (running) {
    const exiting = Atomics.load(ctl, P.CTL_EXITING) !== 0;
    const now = performance.now();
    const backingOff = evicting && now < evictBackoffUntil;
    const busy = (evicting && !backingOff) || retries > 0 || shrinking;
    let timeout = busy ? 0 : exiting ? 20 : backingOff ? Math.ceil(evictBackoffUntil - now) : -1;
    const idleWork = idleEnabled && storedFifo.length > 0;
    if (timeout < 0 && idleWork) timeout = Math.max(0, Math.ceil(nextIdlePass - performance.now()));
    const n = uffd.read(events, timeout);
    if (n > 0) serveBatch(n);
    else if (n < 0) drainRequests();
    drainIo();
    if (deferred.length > 0) runDeferred();
    if (retries > 0) retryPending();
    if (evicting) {
      if (performance.now() >= evictBackoffUntil) evictSlice(2);
    }
    else shrinking = swap !== undefined && refuseUntilBelow && shrinkSlice();
    if (idleWork && !evicting && n === 0 && performance.now() >= nextIdlePass) {
      idlePass();
      nextIdlePass = performance.now() + 1000;
    }
    if (exiting && n === 0) {
      // The process is exiting: give control back so the Worker can be stopped.
      setImmediate(loop);
      return;
    }
  }
  stoppedCleanly = true;
  io?.close();
  uffd.disarmDeadman();
  staging.close();
  port.close();
}



drainRequests();
loop();
