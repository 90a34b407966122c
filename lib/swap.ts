/**
 * The public API: open() a swap, get regions (frontswap) and mapped files
 * (cleancache) as ArrayBuffers, read stats, close.
 *
 * Main-thread side only. Faults are served by the dispatcher Worker
 * (lib/dispatcher/worker.ts); this side creates regions (mmap + register),
 * tells the dispatcher about them, and reads the shared counters.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  native,
  REGISTER_MODE_MISSING,
  REGISTER_MODE_WP,
  FEATURE_MOVE,
  type Uffd,
  type Region as NativeRegion,
  type SharedStore,
} from './native';
import { parseSize, pageAlign } from './size';
import * as P from './dispatcher/protocol';
import { createStore, storeStats, type StoreHandle } from './dispatcher/backends';
import { ADDRESS_HEADROOM, addressSpaceLeft } from './address-space';
import { openSwapFile } from './swapfile';
import { checkOpenOptions, checkRegionOptions, checkMapFileOptions, type FaultMode } from './options';
import { closedError, dispatcherGone, ensureCode, invalidArgType, invalidArgValue, outOfRange } from './errors';
import { checkBufferSize, markRegionBuffer } from './buffers';
import { publishStats } from './stats-server';
import { EventEmitter } from 'node:events';
import { SwapEventWatcher, emitSwapEvent, type SwapEventMap } from './events';
import { withUserfaultfdHint } from './probe';
import * as os from 'node:os';
import { BudgetController, initialBudget, type BudgetConfig, type BudgetStats } from './budget/controller';
import { LIMITS } from './options';
import { Cache, type CacheOptions } from './cache';
import { RemoteSession } from './remote/session';
import type { CheckedRemote } from './remote/options';

/** Options of {@link open}. Sizes are bytes or strings like '256MiB'. */
export interface OpenOptions {
  /**
   * All the memory tmem may use, in bytes (resident region pages, staging, pool, index and
   * page state), split by tmem between resident pages and the pool: everything resident at
   * first, the pool growing as pages compress, a swap file (if any) below it. 'auto': the
   * memory cgroup's limit (v1 memory.limit_in_bytes, v2 memory.max/memory.high) less what
   * the process uses outside tmem and a margin, followed as both change; outside a cgroup
   * with a limit, the fixed residentLimit and poolLimit. Default: 'auto' when neither
   * residentLimit nor poolLimit is given; with either, those fixed limits. Given with a
   * budget, residentLimit and poolLimit cap their share of it. See README "The memory budget".
   */
  memoryLimit?: number | string;
  /**
   * React to memory pressure (default: true with a memory budget, false with fixed limits): PSI (the cgroup's memory.pressure, or
   * /proc/pressure/memory) and the cgroup's usage near or at its limit shrink the resident
   * set and make idle pages go to zstd and the swap file at once; the memory is given back
   * gradually once the pressure is gone. See README "Pressure".
   */
  pressure?: boolean;
  /** Bytes of region pages kept resident, over all regions (default '256MiB'). */
  residentLimit?: number | string;
  /** Eviction stops when resident bytes fall under this fraction of residentLimit (default 0.9). */
  lowWatermark?: number;
  /** Bytes the compressed pool may use, zswap's max pool (default '1GiB'). */
  poolLimit?: number | string;
  /** After the pool was full, stores resume below this percentage of poolLimit (zswap accept_thr_percent, default 90). */
  acceptThreshold?: number;
  /** 'lz4' (default) or 'zstd'. */
  compressor?: 'lz4' | 'zstd';
  /** zpool driver for the persistent (frontswap) pool: 'zsmalloc' (default) or 'zbud'. */
  allocator?: 'zsmalloc' | 'zbud';
  /**
   * The dispatcher follows the faulting threads (default true): it moves its own affinity to
   * the CPU of the thread whose fault it serves (checked at most every few milliseconds),
   * since serving a fault from another CPU costs a cross-CPU wake-up. No thread of the
   * program has its affinity changed, with or without it. false: the dispatcher runs where
   * the scheduler puts it. See README "Thread placement".
   */
  pin?: boolean;
  /** Size of the staging area that gives evicted pages a second chance (default residentLimit/8, at most 32MiB). */
  stagingSize?: number | string;
  /**
   * 'auto' (default): full mode where permitted, else user-mode-only with a
   * warning; true forces user-mode-only; false requires full mode.
   */
  userModeOnly?: boolean | 'auto';
  /**
   * The swap file tier under the pool: pages the pool refuses (full, or they do
   * not compress) and the pool's oldest entries when it is full go to this file.
   * `path` is a directory (an unnamed O_TMPFILE is made in it) or a path that
   * must not exist yet: the file is created there (O_EXCL|O_NOFOLLOW, mode
   * 0600) and unlinked at once, so nothing is left on disk even after SIGKILL.
   * An existing path (file, symlink, FIFO, device) is refused with EEXIST.
   * The file never grows past `size`. `encrypt` (default true) seals every
   * slot with AES-256-GCM under a random key that lives only in the dispatcher,
   * so the file is unreadable to anyone else and a changed slot is always
   * detected. See README "Swap file security".
   */
  swapFile?: { path: string; size: number | string; encrypt?: boolean };
  /**
   * The remote tier (RAMster on Redis): pages the pool's shrinker writes back to the swap
   * file also go to a Redis server (`url: 'redis://host:port'`) or a Redis Cluster
   * (`cluster: [urls]`), and a fault on one is served from there, checked (generation and
   * CRC-32 kept locally), else from the swap file, which keeps every such page (frontswap's
   * writethrough): a server that dies, hangs, restarts empty or runs out of memory loses
   * nothing. Without `swapFile` only mapped files' clean pages go remote (the file is their
   * second copy). Clean pages of mapped files the local cleancache does not take go remote
   * as keys with a TTL (`ephemeralTtl`, ms, 600000); remote pages come back into the pool in
   * the background when it has room (`repatriate`, true); `maxBytes` caps what this swap keeps
   * remote. `keyPrefix` ('tmem:'), `timeout` (ms per request, 50), `leaseTtl` (ms, 60000: keys
   * of a swap whose lease lapsed are deleted by the next open or `tmem remote gc`). See README
   * "Remote tier".
   */
  remote?: {
    url?: string;
    cluster?: string[];
    keyPrefix?: string;
    timeout?: number;
    leaseTtl?: number;
    ephemeralTtl?: number;
    maxBytes?: number | string;
    repatriate?: boolean;
  };
  /**
   * Xen tmem's shared pools: the clean pages of files this swap maps read-only live once in a
   * compressed pool that every process of this user opening the same `name` shares (node:cluster
   * workers, PM2 instances, unrelated processes), keyed by the file's identity (device, inode,
   * size, mtime, ctime). `size` (default '256MiB') is the segment's size when this process
   * creates it; a joiner takes the existing one's. Writable mappings and anonymous regions stay
   * private. With memoryLimit, the budget counts the whole group. See README "Shared pools".
   */
  shared?: { name: string; size?: number | string };
  /**
   * zram's idle page handling. Stored pages not touched for `after` ms (default
   * 60000; 0 turns it off) are idle: visited once a second, at most `budget`
   * pages a pass (default 256), they are recompressed with zstd at
   * `recompressLevel` (default 9) when that saves space (`recompress`, default
   * true; a page nothing helps is marked and never retried) and, with a swap
   * file, written back to it: `writeback` 'huge' (default: raw pages only),
   * 'idle' (all idle pages) or false.
   */
  idle?: {
    after?: number;
    recompress?: boolean;
    recompressLevel?: number;
    writeback?: 'huge' | 'idle' | false;
    budget?: number;
  };
  /**
   * Serve stats() on a Unix socket for `tmem stats <pid>` (default: true when
   * the environment has TMEM_STATS=1). See lib/stats-server.ts.
   */
  statsSocket?: boolean;
  /**
   * Who serves the faults of this swap's regions, unless region() or mapFile() says
   * otherwise: 'thread' (default), a native thread serves faults on zero, same-filled, staged
   * and stored pages with no JavaScript (following the faulting threads' CPU as `pin` says)
   * and hands the others (swap file, mapped files, remote) to the dispatcher Worker, which
   * also runs eviction (README "How it works"); 'dispatcher', the dispatcher Worker serves
   * every fault; 'inline', the faulting thread itself (a userfaultfd with UFFD_FEATURE_SIGBUS
   * and a SIGBUS handler that serves the same fast pages natively): no cross-thread wake-up,
   * every thread served on its own CPU. In an inline region a
   * syscall that reads or writes a page that is not resident fails with EFAULT (see
   * README "Inline faults").
   */
  faults?: FaultMode;
  /**
   * Microseconds the native fault thread (`faults: 'thread'`) keeps polling for the next
   * fault after serving one, yielding the CPU between polls, before it sleeps (default 50;
   * 0: it sleeps at once; at most 10000). Where idle CPUs halt at once (a VM's haltpoll
   * cpuidle with guest_halt_poll_ns = 0), waking a sleeping thread costs several times the
   * fault itself; the spin keeps a run of faults off that cost. See README "Thread placement".
   */
  faultSpin?: number;
}

/** Options of {@link Swap.region}. */
export interface RegionOptions {
  /** Who serves this region's faults: 'dispatcher' or 'inline' (default: open()'s `faults`). */
  faults?: FaultMode;
}

/** Options of {@link Swap.mapFile}. */
export interface MapFileOptions {
  /** Written pages go back to the file (default false). */
  writable?: boolean;
  /** Who serves this mapping's faults: 'dispatcher' or 'inline' (default: open()'s `faults`). */
  faults?: FaultMode;
}

/** Swap file figures. */
export interface SwapFileStats {
  /** Slots (pages) the file may hold. */
  slots: number;
  /** Pages held by the file and not resident, now. */
  pages: number;
  /**
   * Resident pages whose slot is kept, now (the kernel's SwapCached): read since
   * their swap-in and not written, so evicting them again writes nothing. A write
   * frees the slot. Slots are kept only while the file is at most half full.
   */
  cached: number;
  /** Bytes of the file in use: (pages + cached) * 4096. */
  bytes: number;
  /** Pages written to the file (each write of a page counts): refused by the pool, or written back from it. */
  writtenBack: number;
  /** Faults served from the file (the same count as `faults.swapFile`). */
  swapIns: number;
  readaheadHits: number;
  /** Slots whose check failed on read (CRC-32, or the authentication tag when encrypted); each was a SIGBUS, never wrong bytes. */
  checksumErrors: number;
  /** Whether slots are sealed with AES-256-GCM (`swapFile.encrypt`). */
  encrypted: boolean;
  /** Writes or reads that failed (ENOSPC, EIO); the pages stayed where they were. */
  ioErrors: number;
}

/** Fault service time percentiles in microseconds (time in the dispatcher, wake-up not included). */
export interface LatencyStats {
  /** Faults served (every source). */
  count: number;
  /** Median fault service time, microseconds (the upper bound of its histogram bucket). */
  p50: number;
  /** 90th percentile, microseconds. */
  p90: number;
  /** 99th percentile, microseconds. */
  p99: number;
  /** 99.9th percentile, microseconds. */
  p999: number;
  /**
   * Upper bounds of the histogram buckets, microseconds, ascending (a quarter
   * octave apart: 0.25 * 2^((i+1)/4)); the same array for every swap.
   */
  bounds: readonly number[];
  /**
   * Faults per bucket: counts[i] took less than bounds[i] (and at least
   * bounds[i-1]); the last entry, counts[bounds.length], took longer than
   * every bound. Not cumulative; add them up for a Prometheus histogram.
   */
  counts: number[];
}

/** zswap-like figures for a whole swap. */
export interface SwapStats {
  /** Region pages mapped now (including pages waiting in the staging area). */
  residentPages: number;
  residentBytes: number;
  /** Pages in the staging area (evicted, second chance, not yet compressed). */
  stagedPages: number;
  /** Pages held compressed in the persistent pool (frontswap) and not resident, now. */
  storedPages: number;
  /**
   * Resident pages whose compressed copy the persistent pool also keeps, now: loaded
   * by a read and not written since, so evicting them again compresses and stores
   * nothing. With `storedPages`, the objects of the persistent pool.
   */
  cleanCopies: number;
  /** Same-filled pages held as one word (zswap same_filled_pages), now. */
  samePages: number;
  /** Bytes of pages out of residency in memory: (storedPages + samePages) * 4096. */
  logicalBytes: number;
  /** Bytes of compressed objects in the pools (stored pages, clean copies, cleancache pages). */
  compressedBytes: number;
  /** Arena bytes the pools occupy (zswap pool_total_size). */
  poolBytes: number;
  /**
   * Bytes the pools' objects stand for over the bytes they take: (storedPages + cleanCopies
   * + cleancache.pages) * 4096 / compressedBytes; at least 1 (a page that does not compress
   * is stored raw), 0 while the pools are empty.
   */
  compressionRatio: number;
  /** Objects of the persistent pool stored raw (they compressed worse than 3/4 of a page: zram's huge pages), now. */
  hugePages: number;
  /**
   * Faults served, by source (each fault counts once): the zero page (never written), the
   * pool, a same-filled page, the staging area, the mapped file, cleancache, the swap file;
   * `writeProtect`: first writes to clean pages (not a page coming in). `pool` counts every
   * page loaded from the pool, those read ahead of a fault included (as the kernel's pswpin
   * counts swap readahead; `same` likewise); `poolReadahead` says how many were read ahead.
   */
  faults: {
    zero: number;
    pool: number;
    same: number;
    staged: number;
    file: number;
    cleancache: number;
    swapFile: number;
    /** Faults served from the remote store (`remote`); 0 without it. */
    remote: number;
    writeProtect: number;
    /**
     * Of the faults above, those served by native code with no JavaScript (the `faults:
     * 'thread'` path: zero, same-filled, staged and stored pages of anonymous regions).
     */
    native: number;
  };
  /** Pages that left residency (to the pool, as a same-filled word, to the swap file, or dropped). */
  evictions: number;
  /** Evictions of clean pages whose copy was kept (pool object or swap file slot): no compression, no store, no write. */
  evictionsWithoutCompression: number;
  /**
   * Pages eviction found shared copy-on-write with a child process (resident when the
   * process forked: child_process, cluster) and made exclusive again, unchanged, to
   * move them out.
   */
  unsharedPages: number;
  /**
   * Pages eviction took out in runs: with neighbours of the same region in one UFFDIO_MOVE
   * (one TLB shootdown for the run), as the kernel swaps out in clusters. Counted as they
   * are moved to the staging area, so a page touched while staged, which comes back and is
   * not evicted, counts here and not in `evictions`.
   */
  evictionRunPages: number;
  /**
   * Clean pages (their compressed copy current, write-protected since their load) eviction
   * dropped from the page table in batches, one process_madvise(2) for the batch (one TLB
   * flush), instead of moving each out. Counted in `evictions` and
   * `evictionsWithoutCompression` too.
   */
  evictionCleanBatched: number;
  /**
   * Pages eviction set aside, now, because the kernel would not let them go (pinned, as
   * during direct I/O into them): they stay resident and are retried after a second,
   * without being scanned in between.
   */
  unevictablePages: number;
  /**
   * Times a staging move's outcome was not what UFFDIO_MOVE answered: an error for a page
   * the kernel had moved (counted as staged), or a staging slot found holding a page the
   * ring did not put there (never reused). 0 unless the kernel misreports; each is
   * recovered without losing a byte, and the first one is reported on stderr.
   */
  moveAnomalies: number;
  /**
   * Bytes of free pool frames given back to the OS (MADV_DONTNEED) since open(): a pool that
   * shrinks frees frames inside chunks that stay in use, and the budget's look gives them back.
   */
  poolTrimmedBytes: number;
  /** Stores refused, by reason; a refused page stays resident. */
  refused: { poolLimit: number; alloc: number };
  /** Staged pages touched again and moved back. */
  secondChance: number;
  /**
   * Pages brought in ahead of a sequential run of faults on stored or same-filled pages (the
   * kernel's swap readahead; the window doubles up to 32 pages on each sequential fault);
   * stored ones are mapped write-protected with their pool copies kept. Counted in
   * `faults.pool` or `faults.same` too.
   */
  poolReadahead: number;
  cleancache: { puts: number; hits: number; misses: number; pages: number };
  /** Pages written back to mapped files. */
  fileWrites: number;
  /** Write-backs to mapped files that failed (ENOSPC, EIO): the pages stayed dirty and are written again later. */
  fileWriteErrors: number;
  latency: LatencyStats;
  /** True when syscalls that read non-resident region memory fail with EFAULT (user-mode-only uffd). */
  userModeOnly: boolean;
  /** The swap file tier, when configured. */
  swapFile?: SwapFileStats;
  /** The remote tier, when configured (`remote`). */
  remote?: RemoteStats;
  /** The shared pool, when configured (`shared`): this member's figures and the group's. */
  shared?: SharedStats;
  /** zram idle handling: pages seen idle, recompressed (and bytes saved), pages no algorithm helps, idle pages written back. */
  idle: { pages: number; recompressed: number; bytesSaved: number; noGain: number; writtenBack: number };
  /** The memory budget: where it comes from, its split now, pressure, and the times it could not be held. */
  budget: BudgetStats;
}

/** What {@link Swap.setLimits} changes; a key left out keeps its value. */
export interface LimitsOptions {
  /** A new budget (bytes or a size string, at least 4 MiB): from now on a fixed one, no longer the cgroup's. */
  memoryLimit?: number | string;
  /** Resident bytes (without a budget: the limit; with one: a cap on its resident share). */
  residentLimit?: number | string;
  /** Pool bytes (without a budget: the limit; with one: a cap); at most what open() reserved for the arena. */
  poolLimit?: number | string;
  /** Eviction stops at this fraction of the resident limit. */
  lowWatermark?: number;
}

/** A shared pool's figures ({@link SwapStats.shared}). */
export interface SharedStats {
  name: string;
  /** The segment's size, and the bytes of it in use (header, index, the part of the ring written). */
  bytes: number;
  usedBytes: number;
  /** This process: faults served from the pool, misses (read from the file), pages it stored,
   * pages it found already stored (nothing written), puts given up (lock held too long),
   * records that failed their checks (never used). */
  member: { hits: number; misses: number; puts: number; alreadyStored: number; busy: number; bad: number };
  /**
   * Every member: how many are alive, what they hold of their own memory (their budget use),
   * their counters summed, and the pool's contents from counters its puts keep in the segment
   * (no scan): pages stored and their records' bytes. Exact until the ring first wraps; after,
   * they also count the records of the one chunk (1/254 of the ring) it is overwriting.
   */
  group: {
    members: number;
    heldBytes: number;
    hits: number;
    misses: number;
    puts: number;
    storedPages: number;
    storedBytes: number;
    lockSteals: number;
  };
}

/** The remote tier's figures ({@link SwapStats.remote}). */
export interface RemoteStats {
  /** Pages the remote store holds now (each also in the swap file). */
  pages: number;
  /** Pages sent and acknowledged. */
  puts: number;
  /** Puts the server refused (OOM at maxmemory): those pages stayed in the swap file only. */
  refused: number;
  /** Faults served from the remote store. */
  hits: number;
  /** Values the server no longer had (evicted, flushed, restarted): read from the swap file. */
  misses: number;
  /** Values that failed their check (length, generation, CRC-32): never used; read from the swap file. */
  badValues: number;
  /** Requests that failed: refused, reset, past `timeout`, or a reply that is not RESP. */
  errors: number;
  /** Faults sent straight to the swap file while their server was backing off after a failure. */
  skipped: number;
  /** Pages forgotten because their server restarted empty (its run_id changed). */
  lost: number;
  /** Pages fetched along with a fault's page (the rest of its 64-page chunk), into the pool. */
  prefetched: number;
  /** MOVED/ASK replies seen (a cluster's slot map changed; it is read again). */
  moved: number;
  /** Bytes of values the remote store holds for this swap now (both kinds; `maxBytes` caps it). */
  bytes: number;
  /** Mapped files' clean pages the remote store holds now (keys with a TTL; not in `pages`). */
  cleanPages: number;
  /** Clean pages of mapped files sent and acknowledged. */
  cleanPuts: number;
  /** Faults of mapped files served from the remote store (also in `hits`). */
  cleanHits: number;
  /** Pages not sent because this swap's remote values had reached `maxBytes`. */
  overLimit: number;
  /** Persistent pages brought back into the pool in the background (`repatriate`). */
  repatriated: number;
  /** This swap's id in its keys (`<prefix>F{<id>:...`) and lease (`<prefix>L{<id>}`). */
  swapId: string;
}

/** Per-region figures. */
export interface RegionStats {
  /** Bytes of the region (whole pages). */
  size: number;
  /** Pages of this region mapped now (including pages in the staging area). */
  residentPages: number;
  /** Pages of this region held compressed in the persistent pool and not resident, now. */
  storedPages: number;
  /** Pages of this region held as a same-filled word, now. */
  samePages: number;
  /** Faults served for this region, by source, as in {@link SwapStats.faults} (write-protect faults apart). */
  faults: {
    zero: number;
    pool: number;
    same: number;
    staged: number;
    file: number;
    cleancache: number;
    swapFile: number;
    remote: number;
  };
  /** Pages of this region that left residency. */
  evictions: number;
  /** A writable file mapping: pages written since they were last written to the file, now (0 for other regions). */
  dirtyPages: number;
}

/** What {@link Region.share} hands to a Worker. */
export interface SharedRegion {
  id: number;
  address: number;
  size: number;
}

/**
 * In a Worker: an ArrayBuffer over a region another thread created (from its
 * share()). Faults on it are served by the same dispatcher. It is not detached
 * when the region closes: after close it reads zeros; stop using it first.
 */
export function attachRegion(shared: SharedRegion): ArrayBuffer {
  if (shared === null || typeof shared !== 'object' || typeof shared.address !== 'number') {
    throw invalidArgType('shared must be the object returned by region.share()');
  }
  try {
    return markRegionBuffer(native.attachBuffer(shared.address));
  } catch (e) {
    // The binding's argument errors ("address must be the start of an open tmem region").
    throw e instanceof RangeError
      ? ensureCode(e, 'ERR_OUT_OF_RANGE')
      : e instanceof TypeError
        ? ensureCode(e, 'ERR_INVALID_ARG_TYPE')
        : e;
  }
}

let nextRegionId = 1;
const liveSwaps = new Set<Swap>();
process.on('exit', () => {
  for (const s of liveSwaps) s._exiting();
});

/**
 * Opens a swap: a userfaultfd, a compressed store and the dispatcher Worker.
 * Resolves once the dispatcher serves faults; rejects (code ERR_TMEM_DISPATCHER_GONE) if it
 * died starting, leaving nothing open.
 * @throws TypeError / RangeError for bad options, before anything is created, with a `code`:
 *   ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE (an unknown key or name) or ERR_OUT_OF_RANGE
 */
export async function open(options: OpenOptions = {}): Promise<Swap> {
  const o = checkOpenOptions(options);
  const residentLimit = o.residentLimit,
    low = o.lowWatermark,
    umo = o.userModeOnly;
  let swapFile: { fd: number; size: number; path: string; encrypt: boolean } | undefined;
  if (o.swapFile) {
    const { fd } = openSwapFile(o.swapFile.path);
    swapFile = { fd, size: o.swapFile.size, path: o.swapFile.path, encrypt: o.swapFile.encrypt };
  }

  // The shared pool: joined here first, so that a foreign or unusable segment fails open()
  // before anything else exists (the dispatcher attaches again as the member).
  let shared: Swap['_shared'];
  if (o.shared) {
    try {
      shared = { store: new native.SharedStore(o.shared.name, o.shared.size, false), name: o.shared.name };
    } catch (e) {
      if (swapFile) closeSwapFile(swapFile);
      throw e;
    }
  }

  let remote: RemoteSession | undefined;
  if (o.remote) {
    try {
      remote = await RemoteSession.open(o.remote);
    } catch (e) {
      if (swapFile) closeSwapFile(swapFile);
      shared?.store.close();
      throw remoteUnreachable(e, o.remote);
    }
  }

  let uffd: Uffd;
  try {
    uffd = new native.Uffd(umo === 'auto' ? 0 : umo ? 2 : 1);
    if ((uffd.describe().features & FEATURE_MOVE) === 0) {
      uffd.close();
      const e = new Error(
        'tmem needs UFFDIO_MOVE (Linux 6.8 or later): eviction moves pages out atomically',
      ) as NodeJS.ErrnoException;
      e.code = 'ENOTSUP';
      throw e;
    }
  } catch (e) {
    if (swapFile) closeSwapFile(swapFile);
    await remote?.close();
    shared?.store.close();
    throw withUserfaultfdHint(e); // EPERM/ENOSYS: says what to change (seccomp profile, sysctl, /dev/userfaultfd)
  }
  if (umo === 'auto' && uffd.describe().userModeOnly) {
    process.emitWarning(
      'tmem: userfaultfd is in user-mode-only mode (no root, CAP_SYS_PTRACE or /dev/userfaultfd access): ' +
        'syscalls that read region memory that is not resident (fs.writeSync from a region buffer) fail with EFAULT',
      { code: 'TMEM_USER_MODE_ONLY' },
    );
  }
  // The budget (lib/budget/): from memoryLimit, the cgroup, or none. With one, the arena is
  // reserved for as much as the machine has (address space only, committed as it fills), so
  // that a budget raised later can use it; residentLimit and poolLimit, given, are caps.
  const budget = initialBudget(o.memoryLimit, o.pressure);
  const budgeted = budget.mode !== 'fixed';
  const arenaBytes =
    budgeted && !o.poolLimitGiven
      ? Math.min(LIMITS.poolLimit, Math.ceil(os.totalmem() / (64 * 2 ** 20)) * 64 * 2 ** 20)
      : o.poolLimit;
  const stagingBytes =
    budgeted && !o.stagingGiven ? Math.min(32 * 2 ** 20, Math.max(64 * 4096, budget.bytes / 8)) : o.stagingBytes;
  const swap = new Swap(
    uffd,
    {
      residentLimitPages: Math.floor((budgeted ? Math.min(residentLimit, budget.bytes) : residentLimit) / 4096),
      lowWatermarkPages: Math.floor((residentLimit / 4096) * low),
      poolLimitBytes: o.poolLimit,
      budgetBytes: budget.bytes,
      residentCapPages: !budgeted || o.residentLimitGiven ? Math.floor(residentLimit / 4096) : Infinity,
      poolCapBytes: !budgeted || o.poolLimitGiven ? o.poolLimit : Infinity,
      lowWatermark: low,
      arenaBytes,
      budget: { mode: budget.mode, cgroup: budget.cgroup, pressure: budget.pressure },
      acceptThresholdPercent: o.acceptThreshold,
      compressor: o.compressor,
      allocator: o.allocator,
      stagingPages: Math.floor(stagingBytes / 4096),
      follow: o.pin,
      faults: o.faults,
      faultSpinUs: o.faultSpin,
      swapFileFd: swapFile ? swapFile.fd : -1,
      swapFileSize: swapFile ? swapFile.size : 0,
      swapFileEncrypt: swapFile ? swapFile.encrypt : false,
      idle: o.idle,
      remote: remote?.dispatcherConfig(),
      shared: shared ? { name: shared.name, size: shared.store.size } : undefined,
    },
    swapFile,
    o.faults,
    budget,
  );
  swap._remote = remote;
  swap._shared = shared;
  try {
    await swap._start();
  } catch (e) {
    await swap._abort(); // nothing is left half-open: no uffd, no Worker, no swap file, no lease
    throw e;
  }
  if (remote) {
    let moved = 0;
    remote.onMap = () => moved !== (moved = swap._statsBuffer()[P.G_REMOTE_MOVED]);
    remote.sendMap = (m) =>
      void swap._request({ op: 'remoteMap', reqId: swap._nextReq(), ...m }).catch(() => undefined);
  }
  if (o.statsSocket) swap._unpublish = publishStats(() => swap.stats());
  return swap;
}

/**
 * A swap: the set of regions served by one dispatcher over one compressed store.
 *
 * It is an EventEmitter of what a service must alert on (lib/events.ts):
 * 'poolFull', 'poolAccepting', 'swapFileError', 'checksumError',
 * 'dispatcherGone'; the same go to diagnostics_channel ('tmem:pool-full', ...).
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- typed overloads of EventEmitter's on/once/off: signatures only, no member left uninitialised
export interface Swap {
  on<K extends keyof SwapEventMap>(event: K, listener: (e: SwapEventMap[K]) => void): this;
  once<K extends keyof SwapEventMap>(event: K, listener: (e: SwapEventMap[K]) => void): this;
  off<K extends keyof SwapEventMap>(event: K, listener: (e: SwapEventMap[K]) => void): this;
}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- see the interface above
export class Swap extends EventEmitter {
  private readonly ctl = new Int32Array(new SharedArrayBuffer(P.CTL_SLOTS * 4));
  private readonly statsBuf = new SharedArrayBuffer(P.G_SLOTS * 8);
  private readonly G = new Float64Array(this.statsBuf);
  private readonly histBuf = new SharedArrayBuffer(P.HIST_BUCKETS * 8);
  private readonly hist = new Float64Array(this.histBuf);
  private readonly port: MessagePort;
  private readonly workerPort: MessagePort;
  private worker?: Worker;
  private store?: StoreHandle;
  private readonly pending = new Map<number, { resolve: (v: number) => void; reject: (e: Error) => void }>();
  private reqId = 1;
  private dead?: Error;
  private closed = false;
  private closing?: Promise<void>;
  private stopping = false;
  private readonly regions = new Set<Region>();
  private readonly caches = new Set<Cache>();
  private events?: SwapEventWatcher;
  private budget?: BudgetController;
  /** @internal */
  _unpublish?: () => void;
  /** @internal the remote tier's main-thread side (lease, clean-up), when configured */
  _remote?: RemoteSession;
  /** @internal the main thread's look at the shared pool (stats); the dispatcher is the member. */
  _shared?: { store: SharedStore; name: string };

  /** @internal use {@link open} */
  constructor(
    private readonly uffd: Uffd,
    private readonly opts: P.DispatcherOptions,
    private readonly swapFile?: { fd: number; size: number; path: string; encrypt: boolean },
    private readonly faultMode: FaultMode = 'dispatcher',
    private readonly budgetCfg: BudgetConfig = { mode: 'fixed', bytes: 0, pressure: false },
  ) {
    super();
    const ch = new MessageChannel();
    this.port = ch.port1;
    this.workerPort = ch.port2;
  }

  /** @internal */
  async _start(): Promise<void> {
    const worker = new Worker(path.join(__dirname, 'dispatcher', 'worker.js'), {
      workerData: {
        uffd: this.uffd.describe(),
        port: this.workerPort,
        ctl: this.ctl.buffer,
        stats: this.statsBuf,
        hist: this.histBuf,
        store: undefined,
        options: this.opts,
      },
      transferList: [this.workerPort],
      stdout: false,
      stderr: false,
    });
    this.worker = worker;
    this.port.on('message', (m: P.Reply) => {
      const p = this.pending.get(m.reqId);
      if (!p) return;
      this.pending.delete(m.reqId);
      if (m.ok) p.resolve(m.value ?? 0);
      else p.reject(replyError(m));
    });
    this.port.unref();
    worker.on('error', (e) => this.die(dispatcherGone(`tmem: the dispatcher failed: ${e.message}`, e)));
    worker.on('exit', (code) => {
      if (!this.closed && !this.stopping)
        this.die(dispatcherGone(`tmem: the dispatcher exited unexpectedly (code ${code})`));
      // A request it could not answer (a stop racing its exit) settles now.
      this.die(dispatcherGone(`tmem: the dispatcher exited (code ${code})`), true);
    });
    // Started in three steps, each of which may fail and reject open():
    // 1. the Worker's isolate exists and loaded its modules (CTL_WANT_STORE): V8 reserved
    //    its heap and code range;
    // 2. the pool arena is reserved here, after that, so that under an address-space limit
    //    (ulimit -v) it is the arena that fails, with an error naming poolLimit, and not V8
    //    (which aborts the process when an isolate cannot reserve its code range or grow
    //    its heap): the arena is reserved only if ADDRESS_HEADROOM is left after it;
    // 3. the dispatcher ran its whole set-up (staging area, store, swap file) and serves
    //    faults (CTL_READY): an option it could not honour rejects open() here.
    const failed = new Promise<never>((_, reject) => {
      worker.once('error', (e) => reject(dispatcherGone(startFailure(e), e)));
      worker.once('exit', (code) =>
        reject(dispatcherGone(`tmem: the dispatcher exited while starting (code ${code}); its message is on stderr`)),
      );
    });
    failed.catch(() => undefined);
    const loaded = waitAsync(this.ctl, P.CTL_WANT_STORE, 0);
    if (loaded.async) await Promise.race([loaded.value as Promise<string>, failed]);
    const arenaBytes = this.opts.arenaBytes ?? this.opts.poolLimitBytes;
    // The store reserves more than the arena (its index and pool metadata: about 1.4x in
    // all): checked before (no reservation when even the arena cannot fit) and after.
    const left = addressSpaceLeft();
    if (left < arenaBytes + ADDRESS_HEADROOM) throw addressSpaceShort(arenaBytes, left);
    let store: StoreHandle;
    try {
      store = createStore(this.opts);
    } catch (e) {
      throw arenaFailure(e, arenaBytes);
    }
    const after = addressSpaceLeft();
    if (after < ADDRESS_HEADROOM) throw addressSpaceShort(left - after, left); // its buffers go with the next GC
    this.store = store;
    this.port.postMessage({ store: this.store.handle });
    Atomics.store(this.ctl, P.CTL_STORE, 1);
    Atomics.notify(this.ctl, P.CTL_STORE);
    const waiting = waitAsync(this.ctl, P.CTL_READY, 0);
    if (waiting.async) await Promise.race([waiting.value as Promise<string>, failed]);
    worker.unref();
    liveSwaps.add(this);
    this.events = new SwapEventWatcher(
      this,
      this.G,
      () => this.G[P.G_POOL_LIMIT],
      () => storeStats(store).poolBytes,
    );
    this.events.start();
    this.budget = new BudgetController(
      {
        emitter: this,
        G: this.G,
        poolBytes: () => storeStats(store).poolBytes,
        swapFile: this.swapFile !== undefined,
        compressor: this.opts.compressor,
      },
      this.budgetCfg,
    );
    this.budget.start();
  }

  private sharedStats(G: Float64Array): SharedStats {
    const sh = this._shared!;
    const g = sh.store.group(); // the segment's counters: a few loads, no scan
    return {
      name: sh.name,
      bytes: sh.store.size,
      usedBytes: sh.store.usedBytes(),
      member: {
        hits: G[P.G_SHARED_HITS],
        misses: G[P.G_SHARED_MISSES],
        puts: G[P.G_SHARED_PUTS],
        alreadyStored: G[P.G_SHARED_ALREADY],
        busy: G[P.G_SHARED_BUSY],
        bad: G[P.G_SHARED_BAD],
      },
      group: {
        members: g.members,
        heldBytes: g.heldBytes,
        hits: g.hits,
        misses: g.misses,
        puts: g.puts,
        storedPages: g.storedPages,
        storedBytes: g.storedBytes,
        lockSteals: g.lockSteals,
      },
    };
  }

  /** @internal undoes a failed _start(). */
  async _abort(): Promise<void> {
    this.closed = true;
    Atomics.notify(this.ctl, P.CTL_READY); // ends _start()'s wait, if it is still waiting
    if (this.worker) await this.worker.terminate().catch(() => undefined);
    this.port.close();
    this.workerPort.close();
    if (!this.uffd.closed) this.uffd.close();
    if (this.swapFile) closeSwapFile(this.swapFile);
    await this._remote?.close();
    this._shared?.store.close();
  }

  /**
   * The dispatcher is gone: every pending request rejects with `e` (code
   * ERR_TMEM_DISPATCHER_GONE) and so does every later call. With `pendingOnly`, only
   * settles what is still pending (the dispatcher exited after a stop).
   */
  private die(e: Error, pendingOnly = false): void {
    if (!pendingOnly) {
      if (this.dead) return;
      this.dead = e;
    }
    for (const p of this.pending.values()) p.reject(this.dead ?? e);
    this.pending.clear();
    this.port.unref();
    if (pendingOnly) return;
    this.events?.poll();
    this.events?.stop();
    this.budget?.stop();
    emitSwapEvent(this, 'dispatcherGone', { error: e });
  }

  /** @internal */
  _exiting(): void {
    Atomics.store(this.ctl, P.CTL_EXITING, 1);
    try {
      this.uffd.wakeReader();
    } catch {
      /* closed */
    }
  }

  private check(): void {
    if (this.dead) throw this.dead;
    if (this.closed || this.stopping) throw closedError('swap');
  }

  /** @internal the dispatcher is running and the swap is not closed. */
  _usable(): boolean {
    return !this.closed && !this.dead;
  }

  /**
   * @internal sends a request to the dispatcher and wakes it. The promise always settles: with
   * the reply, or rejected when the dispatcher dies (ERR_TMEM_DISPATCHER_GONE) or the swap
   * closes first (ERR_TMEM_CLOSED); while it is pending the port is ref'd, so the process
   * stays alive until it settles.
   */
  _request(req: P.Request, stopping = false): Promise<number> {
    if (!stopping) this.check();
    else if (this.dead) return Promise.reject(this.dead);
    return new Promise<number>((resolve, reject) => {
      this.pending.set(req.reqId, { resolve, reject });
      this.port.postMessage(req);
      this.uffd.wakeReader();
      this.port.ref();
    }).finally(() => {
      if (this.pending.size === 0) this.port.unref();
    });
  }

  /** @internal */
  _nextReq(): number {
    return this.reqId++;
  }

  /**
   * Anonymous memory (frontswap): an ArrayBuffer-backed region of `size`
   * bytes, rounded up to whole pages. Pages read as zero until written.
   * @param size bytes (a number or a string like '4GiB'), > 0
   * @param options `{ faults }`: 'dispatcher' or 'inline' (default: open()'s)
   */
  region(size: number | string, options?: RegionOptions): Region {
    this.check();
    const { faults } = checkRegionOptions(options, this.faultMode);
    const bytes = parseSize(size, 'size');
    if (bytes === 0) throw outOfRange('size must be > 0');
    if (bytes > 2 ** 46) throw outOfRange(`size must be at most 64TiB, got ${String(size)}`);
    checkBufferSize(pageAlign(bytes), 'region size');
    const r = new Region(this, this.uffd, pageAlign(bytes), bytes, 'anon', undefined, faults === 'inline');
    this.regions.add(r);
    return r;
  }

  /**
   * A file mapped into memory through tmem (cleancache): pages come from the
   * file on first touch; clean pages evicted go to an ephemeral pool and may be
   * dropped. With `writable`, written pages go back to the file on flush(),
   * on eviction and on close().
   * @param file path of an existing regular file
   * @param options `{ writable, faults }` (faults: 'dispatcher' or 'inline', default open()'s)
   */
  mapFile(file: string, options: MapFileOptions = {}): FileRegion {
    this.check();
    if (typeof file !== 'string' || file.length === 0) throw invalidArgType('file must be a non-empty path string');
    const { writable, faults } = checkMapFileOptions(options, this.faultMode);
    // Anything but a regular file is refused before it is opened (opening a
    // device can have effects, opening a FIFO blocks until a writer comes);
    // the open is non-blocking in case the path is swapped in between, and the
    // descriptor is checked to be the file that was looked at.
    const before = fs.statSync(file);
    if (!before.isFile()) throw notRegular(file, before);
    const fd = fs.openSync(file, (writable ? fs.constants.O_RDWR : fs.constants.O_RDONLY) | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw notRegular(file, st);
      if (st.ino !== before.ino || st.dev !== before.dev) {
        const e = new Error(
          `mapFile: ${JSON.stringify(file)} was replaced while it was being opened`,
        ) as NodeJS.ErrnoException;
        e.code = 'ERR_TMEM_FILE_CHANGED';
        throw e;
      }
      if (st.size === 0) throw outOfRange(`file is empty, nothing to map: ${file}`);
      checkBufferSize(pageAlign(st.size), `file ${file}`);
      const r = new FileRegion(this, this.uffd, pageAlign(st.size), st.size, fd, file, writable, faults === 'inline');
      this.regions.add(r);
      return r;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /**
   * Changes the limits while the swap runs: a lower one is met by evicting resident pages
   * (and, for the pool, writing its oldest pages back to the swap file, if there is one).
   * A `memoryLimit` replaces the budget (the cgroup's is no longer followed). Resolves once
   * the dispatcher applied it.
   * @throws TypeError / RangeError (ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE) for bad values
   */
  async setLimits(limits: LimitsOptions): Promise<void> {
    this.check();
    const l = checkLimits(limits, this.opts.arenaBytes ?? this.opts.poolLimitBytes);
    await this._request({ op: 'setLimits', reqId: this._nextReq(), limits: l });
    if (l.budgetBytes !== undefined) this.budget?.setBudget(l.budgetBytes);
  }

  /**
   * A Map-like store of JS values kept serialized in this swap's regions (README
   * "swap.cache(options)"): get, set, has, delete, size, iteration, clear, stats, close.
   * Keys are strings or numbers; values are serialized with v8.serialize (default), JSON,
   * as raw bytes, with msgpackr or with the program's own serializer.
   * @throws TypeError / RangeError with a code for bad options (ERR_INVALID_ARG_TYPE,
   *   ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE), Error ERR_TMEM_NO_MSGPACKR when
   *   serializer 'msgpackr' is asked for and not installed
   */
  cache<V = unknown>(options?: CacheOptions): Cache<V> {
    this.check();
    const c = new Cache<V>(this, options, (x) => this.caches.delete(x as Cache));
    this.caches.add(c as Cache);
    return c;
  }

  /** @internal */
  _forget(r: Region): void {
    this.regions.delete(r);
  }

  /** @internal */
  _statsBuffer(): Float64Array {
    return this.G;
  }

  /** Swap-wide figures (zswap's debugfs counters, zram's mm_stat). */
  stats(): SwapStats {
    const G = this.G;
    const s = this.store
      ? storeStats(this.store)
      : { poolBytes: 0, compressedBytes: 0, frontswapPages: 0, cleancachePages: 0 };
    const stored = G[P.G_STORED];
    const cached = G[P.G_SWAP_CACHED];
    return {
      residentPages: G[P.G_RESIDENT],
      residentBytes: G[P.G_RESIDENT] * 4096,
      stagedPages: G[P.G_STAGED],
      storedPages: stored,
      cleanCopies: Math.max(0, s.frontswapPages - stored),
      samePages: G[P.G_SAME],
      logicalBytes: (stored + G[P.G_SAME]) * 4096,
      compressedBytes: s.compressedBytes,
      poolBytes: s.poolBytes,
      compressionRatio: s.compressedBytes > 0 ? ((s.frontswapPages + s.cleancachePages) * 4096) / s.compressedBytes : 0,
      hugePages: G[P.G_HUGE],
      faults: {
        zero: G[P.G_FAULTS_ZERO],
        pool: G[P.G_FAULTS_POOL],
        same: G[P.G_FAULTS_SAME],
        staged: G[P.G_FAULTS_STAGED],
        file: G[P.G_FAULTS_FILE],
        cleancache: G[P.G_CLEANCACHE_HITS],
        swapFile: G[P.G_SWAP_INS],
        remote: G[P.G_FAULTS_REMOTE],
        writeProtect: G[P.G_FAULTS_WP],
        native: G[P.G_FAULTS_NATIVE],
      },
      evictions: G[P.G_EVICTIONS],
      evictionsWithoutCompression: G[P.G_EVICT_NO_COMPRESS],
      unsharedPages: G[P.G_UNSHARED],
      evictionRunPages: G[P.G_EVICT_RUN_PAGES],
      evictionCleanBatched: G[P.G_EVICT_CLEAN_BATCHED],
      unevictablePages: G[P.G_UNEVICTABLE],
      moveAnomalies: G[P.G_MOVE_ANOMALIES],
      poolTrimmedBytes: G[P.G_ARENA_TRIMMED],
      refused: { poolLimit: G[P.G_REFUSED_POOL_LIMIT], alloc: G[P.G_REFUSED_ALLOC] },
      secondChance: G[P.G_SECOND_CHANCE],
      poolReadahead: G[P.G_POOL_READAHEAD],
      cleancache: {
        puts: G[P.G_CLEANCACHE_PUTS],
        hits: G[P.G_CLEANCACHE_HITS],
        misses: G[P.G_CLEANCACHE_MISSES],
        pages: s.cleancachePages,
      },
      fileWrites: G[P.G_FILE_WRITES],
      fileWriteErrors: G[P.G_FILE_WRITE_ERRORS],
      latency: latencyFrom(this.hist),
      userModeOnly: this.uffd.closed ? false : this.uffd.describe().userModeOnly,
      idle: {
        pages: G[P.G_IDLE],
        recompressed: G[P.G_RECOMPRESSED],
        bytesSaved: G[P.G_RECOMPRESS_SAVED],
        noGain: G[P.G_RECOMPRESS_NO_GAIN],
        writtenBack: G[P.G_IDLE_WRITEBACK],
      },
      budget: this.budget
        ? this.budget.stats()
        : {
            mode: this.budgetCfg.mode,
            bytes: this.budgetCfg.bytes,
            residentLimit: G[P.G_RESIDENT_LIMIT] * 4096,
            poolLimit: G[P.G_POOL_LIMIT],
            metadataBytes: G[P.G_BUDGET_METADATA],
            outsideBytes: 0,
            marginBytes: 0,
            pressure: 0,
            pressureCause: '',
            notHeld: G[P.G_BUDGET_NOT_HELD],
          },
      shared: this._shared ? this.sharedStats(G) : undefined,
      remote: this._remote
        ? {
            pages: G[P.G_REMOTE_PAGES],
            puts: G[P.G_REMOTE_PUTS],
            refused: G[P.G_REMOTE_REFUSED],
            hits: G[P.G_REMOTE_HITS],
            misses: G[P.G_REMOTE_MISSES],
            badValues: G[P.G_REMOTE_BAD],
            errors: G[P.G_REMOTE_ERRORS],
            skipped: G[P.G_REMOTE_SKIPPED],
            lost: G[P.G_REMOTE_LOST],
            prefetched: G[P.G_REMOTE_PREFETCHED],
            moved: G[P.G_REMOTE_MOVED],
            bytes: G[P.G_REMOTE_BYTES],
            cleanPages: G[P.G_REMOTE_CLEAN_PAGES],
            cleanPuts: G[P.G_REMOTE_CLEAN_PUTS],
            cleanHits: G[P.G_REMOTE_CLEAN_HITS],
            overLimit: G[P.G_REMOTE_OVER_LIMIT],
            repatriated: G[P.G_REMOTE_REPATRIATED],
            swapId: this._remote.swapId,
          }
        : undefined,
      swapFile: this.swapFile
        ? {
            slots: G[P.G_SWAP_SLOTS],
            pages: Math.max(0, G[P.G_SWAP_PAGES] - cached),
            cached,
            bytes: G[P.G_SWAP_PAGES] * 4096,
            writtenBack: G[P.G_SWAP_WRITEBACK],
            swapIns: G[P.G_SWAP_INS],
            readaheadHits: G[P.G_SWAP_READAHEAD_HITS],
            checksumErrors: G[P.G_SWAP_CSUM_ERRORS],
            encrypted: this.opts.swapFileEncrypt,
            ioErrors: G[P.G_SWAP_IO_ERRORS],
          }
        : undefined,
    };
  }

  /**
   * Closes every region (flushing writable files), stops the dispatcher and frees the store.
   * Calls made while it runs get the same promise. Rejects with ERR_TMEM_DISPATCHER_GONE when
   * the dispatcher had died (everything is released all the same).
   */
  close(): Promise<void> {
    // A close() that could not write a file back keeps everything open: the next close()
    // tries again instead of returning the same rejection.
    this.closing ??= this.doClose().catch((e: unknown) => {
      if (!this.closed) this.closing = undefined;
      throw e;
    });
    return this.closing;
  }

  /** `await using swap = await open()`: close() at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private async doClose(): Promise<void> {
    for (const c of this.caches) c._swapClosing();
    this.caches.clear();
    if (!this.dead) {
      // A writable mapping whose file cannot be written (ENOSPC) rejects its
      // close(): then this close() rejects too and everything stays open, so
      // that no dirty page is lost; fix the cause and close again.
      let failed: { error: unknown } | undefined;
      for (const r of [...this.regions])
        await r.close().catch((error: unknown) => {
          failed ??= { error };
        });
      if (failed && !this.dead) throw failed.error;
      this.stopping = true;
      await this._request({ op: 'stop', reqId: this._nextReq() }, true).catch(() => undefined);
    }
    this.stopping = true;
    this.closed = true;
    liveSwaps.delete(this);
    this.events?.poll();
    this.events?.stop();
    this.budget?.poll();
    this.budget?.stop();
    this._unpublish?.();
    if (this.worker) await this.worker.terminate().catch(() => undefined);
    for (const r of [...this.regions]) r._abandon();
    for (const p of this.pending.values()) p.reject(closedError('swap'));
    this.pending.clear();
    this.port.close();
    this.uffd.close();
    if (this.swapFile) closeSwapFile(this.swapFile);
    await this._remote?.close(); // this swap's keys and lease (never rejects)
    this._shared?.store.close();
    this._shared = undefined;
    if (this.dead) throw this.dead;
  }
}

const LIMIT_KEYS = ['memoryLimit', 'residentLimit', 'poolLimit', 'lowWatermark'];

/** setLimits()'s argument, checked, as the dispatcher's request wants it. */
function checkLimits(limits: unknown, arenaBytes: number): P.LimitsUpdate {
  if (limits === null || typeof limits !== 'object' || Array.isArray(limits))
    throw invalidArgType('limits must be an object { memoryLimit, residentLimit, poolLimit, lowWatermark }');
  const o = limits as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!LIMIT_KEYS.includes(k))
      throw invalidArgValue(`unknown key in limits: '${k}'; accepted: ${LIMIT_KEYS.join(', ')}`);
  const out: P.LimitsUpdate = {};
  const size = (name: string, min: number, minText: string, max: number, maxText: string): number | undefined => {
    if (o[name] === undefined) return undefined;
    const b = parseSize(o[name], name);
    const given = typeof o[name] === 'string' ? o[name] : String(b);
    if (b < min) throw outOfRange(`${name} must be at least ${minText}, got ${given}`);
    if (b > max) throw outOfRange(`${name} must be at most ${maxText}, got ${given}`);
    return b;
  };
  const m = size('memoryLimit', 4 * 2 ** 20, '4MiB', LIMITS.residentLimit, '64TiB');
  if (m !== undefined) out.budgetBytes = m;
  const r = size('residentLimit', 16 * 4096, '64KiB (16 pages)', LIMITS.residentLimit, '64TiB');
  if (r !== undefined) out.residentLimitPages = Math.floor(r / 4096);
  const p = size('poolLimit', 16 * 4096, '64KiB', arenaBytes, `${arenaBytes} bytes (the arena open() reserved)`);
  if (p !== undefined) out.poolLimitBytes = p;
  if (o.lowWatermark !== undefined) {
    if (typeof o.lowWatermark !== 'number')
      throw invalidArgType(`lowWatermark must be a number (a fraction between 0 and 1), got ${typeof o.lowWatermark}`);
    if (!(o.lowWatermark > 0 && o.lowWatermark < 1))
      throw outOfRange(`lowWatermark must be a fraction between 0 and 1, got ${o.lowWatermark}`);
    out.lowWatermark = o.lowWatermark;
  }
  return out;
}

/** open()'s error when the remote store cannot be reached: the client's error (its code: ECONNREFUSED ...), named. */
function remoteUnreachable(e: unknown, r: CheckedRemote): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  const where = r.seeds.map((s) => `${s.host}:${s.port}`).join(', ');
  err.message = `tmem: the remote ${r.cluster ? 'cluster' : 'server'} (${where}) could not be reached: ${err.message}`;
  if (!(err as { code?: string }).code) (err as { code?: string }).code = 'ERR_TMEM_REMOTE_UNREACHABLE';
  return err;
}

/** open()'s error when the dispatcher Worker could not start. */
function startFailure(e: Error): string {
  const code = (e as { code?: string }).code;
  const hint =
    code === 'ERR_WORKER_INIT_FAILED' || code === 'ERR_WORKER_OUT_OF_MEMORY'
      ? ' (a Worker needs about 800 MB of address space: is it limited by ulimit -v?)'
      : '';
  return `tmem: the dispatcher failed to start: ${code ? `${code} ` : ''}${e.message}${hint}`;
}

/** Atomics.waitAsync (Node 16+; not yet in this TypeScript lib). */
function waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } {
  return (
    Atomics as unknown as {
      waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string };
    }
  ).waitAsync(a, i, v);
}

/** open()'s error when the arena would leave less than ADDRESS_HEADROOM of the address space. */
function addressSpaceShort(storeBytes: number, left: number): Error {
  const mib = (n: number): string => `${Math.floor(n / 2 ** 20)} MiB`;
  const err = new Error(
    `tmem: the pool arena (poolLimit) needs ${mib(storeBytes)} of address space and tmem keeps ` +
      `${mib(ADDRESS_HEADROOM)} free for the program's heaps, but only ${mib(Math.max(0, left))} are left ` +
      'under the address-space limit (ulimit -v): lower poolLimit, or raise the limit',
  );
  return Object.assign(err, { code: 'ERR_TMEM_ADDRESS_SPACE' });
}

/** open()'s error when the pool arena cannot be reserved (an address-space limit: ulimit -v). */
function arenaFailure(e: unknown, poolLimit: number): Error {
  if (!(e instanceof RangeError)) return e as Error;
  const err = new Error(
    `tmem: could not reserve ${poolLimit} bytes of address space for the pool arena (poolLimit): ${e.message}. ` +
      'The address space is limited (ulimit -v?): lower poolLimit, or raise the limit',
    { cause: e },
  );
  return Object.assign(err, { code: 'ERR_TMEM_ADDRESS_SPACE' });
}

/** The Error of a failed request; one caused by a syscall carries Node's code, errno and syscall. */
function replyError(m: P.Reply): Error {
  const e = new Error(`tmem: ${m.error}`) as NodeJS.ErrnoException;
  if (m.code !== undefined) {
    e.code = m.code;
    e.errno = m.errno;
    e.syscall = m.syscall;
  } else {
    e.code = 'ERR_TMEM_REQUEST_FAILED';
  }
  return e;
}

/** What a non-regular file is, for the error. */
function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

function notRegular(file: string, st: fs.Stats): Error {
  const e = new TypeError(
    `mapFile: file must be a regular file; ${JSON.stringify(file)} is ${fileKind(st)}`,
  ) as TypeError & { code: string };
  e.code = 'ERR_TMEM_NOT_REGULAR_FILE';
  return e;
}

/** An inline region could not be made: a kernel without UFFD_FEATURE_SIGBUS says so by name. */
function inlineFailure(e: unknown): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err && err.code === 'ENOTSUP') err.message = `faults: 'inline' needs UFFD_FEATURE_SIGBUS: ${err.message}`;
  return e;
}

/** The swap file has no name (lib/swapfile.ts): closing its fd frees it. */
function closeSwapFile(f: { fd: number }): void {
  try {
    fs.closeSync(f.fd);
  } catch {
    /* closed */
  }
}

function latencyFrom(hist: Float64Array): LatencyStats {
  // One snapshot: the dispatcher goes on counting while this runs, and count,
  // percentiles and counts must all describe the same histogram.
  const counts = Array.from(hist);
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  const at = (q: number): number => {
    if (total === 0) return 0;
    const want = q * total;
    let acc = 0;
    for (let i = 0; i < counts.length; i++) {
      acc += counts[i];
      if (acc >= want) return Math.round(P.bucketLow(i + 1) * 100) / 100;
    }
    return P.bucketLow(counts.length);
  };
  return {
    count: total,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    p999: at(0.999),
    bounds: LATENCY_BOUNDS,
    counts,
  };
}

/** Upper bounds (µs) of the dispatcher's latency buckets; the last bucket has none. */
const LATENCY_BOUNDS: readonly number[] = Object.freeze(
  Array.from({ length: P.HIST_BUCKETS - 1 }, (_, i) => P.bucketLow(i + 1)),
);

/** Anonymous memory served by tmem (a frontswap "type"). */
export class Region {
  readonly id = nextRegionId++;
  /** Bytes of the region (whole pages). */
  readonly size: number;
  protected readonly statsBuf = new SharedArrayBuffer(P.R_SLOTS * 8);
  private readonly R = new Float64Array(this.statsBuf);
  protected native?: NativeRegion;
  private closing?: Promise<void>;
  protected readonly added: Promise<number>;
  /** Faults are served in the faulting thread (`faults: 'inline'`). */
  readonly inline: boolean;

  /** @internal use {@link Swap.region} */
  constructor(
    protected readonly swap: Swap,
    uffd: Uffd,
    size: number,
    readonly requested: number,
    kind: P.RegionKind,
    file?: { fd: number; fileSize: number; writable: boolean; path: string },
    inline = false,
  ) {
    this.size = size;
    try {
      this.native = new native.Region(uffd, size, REGISTER_MODE_MISSING | REGISTER_MODE_WP, inline);
    } catch (e) {
      throw inline ? inlineFailure(e) : e;
    }
    this.inline = inline;
    const spec: P.RegionSpec = { id: this.id, address: this.native.address, size, kind, stats: this.statsBuf, ...file };
    if (inline) spec.forward = this.native.forwardAddress;
    this.added = swap._request({ op: 'addRegion', reqId: swap._nextReq(), region: spec });
    this.added.catch(() => undefined);
  }

  /** The region's memory. Use it like any ArrayBuffer; close() detaches it. */
  get buffer(): ArrayBuffer {
    if (!this.native || this.closing) throw closedError(`region ${this.id}`);
    return markRegionBuffer(this.native.buffer);
  }

  /**
   * A structured-cloneable description of this region for a Worker: pass it
   * with postMessage or workerData, then call {@link attachRegion} there.
   */
  share(): SharedRegion {
    if (!this.native || this.closing) throw closedError(`region ${this.id}`);
    return { id: this.id, address: this.native.address, size: this.size };
  }

  /** True once close() was called. */
  get closed(): boolean {
    return !!this.closing || !this.native;
  }

  /**
   * Pushes this region's resident pages out now (compressed into the pool, or
   * written back for files). Resolves with the number of pages evicted.
   */
  async evict(): Promise<number> {
    this.checkOpen();
    await this.added;
    return this.swap._request({ op: 'evict', reqId: this.swap._nextReq(), id: this.id });
  }

  /** This region's figures. */
  stats(): RegionStats {
    const R = this.R;
    return {
      size: this.size,
      residentPages: R[P.R_RESIDENT],
      storedPages: R[P.R_STORED],
      samePages: R[P.R_SAME],
      faults: {
        zero: R[P.R_FAULTS_ZERO],
        pool: R[P.R_FAULTS_POOL],
        same: R[P.R_FAULTS_SAME],
        staged: R[P.R_FAULTS_STAGED],
        file: R[P.R_FAULTS_FILE],
        cleancache: R[P.R_FAULTS_CLEANCACHE],
        swapFile: R[P.R_FAULTS_SWAP],
        remote: R[P.R_FAULTS_REMOTE],
      },
      evictions: R[P.R_EVICTIONS],
      dirtyPages: R[P.R_DIRTY],
    };
  }

  protected checkOpen(): void {
    if (this.closed) throw closedError(`region ${this.id}`);
  }

  /** `await using r = swap.region(n)`: close() at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Frees the region: its pool entries are invalidated (frontswap
   * invalidate_area), its ArrayBuffer detached. A file region is flushed first.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      try {
        await this.added;
        await this.swap._request({ op: 'closeRegion', reqId: this.swap._nextReq(), id: this.id });
      } catch (e) {
        // The dispatcher could not finish (a writable file that cannot be
        // written): the region stays open and usable, and close() can be
        // called again. Only a dead dispatcher leaves nothing to retry.
        if (this.swap._usable()) {
          this.closing = undefined;
          throw e;
        }
        this._abandon();
        throw e;
      }
      this._abandon();
    })();
    return this.closing;
  }

  /** @internal releases the native side without asking the dispatcher. */
  _abandon(): void {
    this.closing ??= Promise.resolve();
    if (this.native) {
      this.native.close();
      this.native = undefined;
    }
    this.swap._forget(this);
    this.afterClose();
  }

  protected afterClose(): void {}
}

/** A file mapped through tmem (cleancache for clean pages). */
export class FileRegion extends Region {
  /** @internal use {@link Swap.mapFile} */
  constructor(
    swap: Swap,
    uffd: Uffd,
    size: number,
    fileSize: number,
    private readonly fd: number,
    /** The mapped file's path. */ readonly path: string,
    /** Written pages go back to the file. */ readonly writable: boolean,
    inline = false,
  ) {
    super(swap, uffd, size, fileSize, 'file', { fd, fileSize, writable, path }, inline);
  }

  /** Bytes of the file (the buffer is rounded up to whole pages; bytes past the end read as zero). */
  get fileSize(): number {
    return this.requested;
  }

  /** Writes dirty pages to the file and fsyncs it. Resolves with the number of pages written. */
  async flush(): Promise<number> {
    this.checkOpen();
    if (!this.writable) return 0;
    await this.added;
    return this.swap._request({ op: 'flush', reqId: this.swap._nextReq(), id: this.id });
  }

  protected override afterClose(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }
}
