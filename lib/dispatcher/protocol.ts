/**
 * What the main thread and the dispatcher Worker share.
 *
 *   ctl    Int32Array on a SharedArrayBuffer: CTL_STOP, CTL_EXITING flags
 *   stats  Float64Array on a SharedArrayBuffer, one per swap (G_*) and one per
 *          region (R_*), written by the dispatcher, read by stats()
 *   hist   Float64Array histogram of fault service times, HIST_BUCKETS
 *          log-spaced buckets (4 per octave from 0.25 us)
 *   port   a MessagePort for requests (drained synchronously by the
 *          dispatcher with receiveMessageOnPort after wakeReader()) and replies
 */
import type { BudgetInit } from '../budget/sampler';
import type { RemoteConfig } from '../remote/nodes';
import type { RemoteNode } from '../remote/options';

export const CTL_STOP = 0;
export const CTL_EXITING = 1;
export const CTL_READY = 2;
/** Set (and notified) once the main thread posted the store's handle on the port. */
export const CTL_STORE = 3;
/** Set (and notified) by the Worker once it waits for the store: its modules are loaded. */
export const CTL_WANT_STORE = 4;
export const CTL_SLOTS = 5;

// Swap-wide counters.
export const G_RESIDENT = 0; // region pages mapped (including staged pages)
export const G_STAGED = 1; // pages in the staging area (second chance)
export const G_STORED = 2; // pages held by frontswap in the persistent pool
export const G_SAME = 3; // same-filled pages (held as one word)
export const G_POOL_BYTES = 4; // arena bytes the pools use
export const G_COMPRESSED_BYTES = 5; // bytes of compressed objects in the persistent pool
export const G_FAULTS_ZERO = 6;
export const G_FAULTS_POOL = 7;
export const G_FAULTS_SAME = 8;
export const G_FAULTS_STAGED = 9;
export const G_FAULTS_FILE = 10;
export const G_FAULTS_CLEANCACHE = 11;
export const G_FAULTS_WP = 12;
export const G_EVICTIONS = 13; // pages that left residency (stored, same-filled or dropped)
export const G_EVICT_NO_COMPRESS = 14; // evictions of clean pages whose compressed copy was kept
export const G_REFUSED_POOL_LIMIT = 15;
export const G_REFUSED_ALLOC = 16;
export const G_HUGE = 17; // objects in the persistent pool stored raw (compressed worse than 3/4 page), now
export const G_CLEANCACHE_PUTS = 18;
export const G_CLEANCACHE_HITS = 19;
export const G_CLEANCACHE_MISSES = 20;
export const G_FILE_WRITES = 21;
export const G_SECOND_CHANCE = 22; // staged pages touched again and moved back
export const G_RETRIES = 23; // EAGAIN from the kernel
export const G_CLEANCACHE_PAGES = 24; // unused: stats() reads the cleancache pool's own page count
export const G_SWAP_SLOTS = 25; // slots of the swap file
export const G_SWAP_PAGES = 26; // pages in the swap file now
export const G_SWAP_WRITEBACK = 27; // pages written to the swap file (refused by the pool or written back)
export const G_SWAP_INS = 28; // faults served from the swap file
export const G_SWAP_READAHEAD_HITS = 29;
export const G_SWAP_CSUM_ERRORS = 30;
export const G_SWAP_IO_ERRORS = 31;
export const G_IDLE = 32; // stored pages seen idle (not touched for idle.after)
export const G_RECOMPRESSED = 33;
export const G_RECOMPRESS_SAVED = 34; // bytes saved by recompression
export const G_RECOMPRESS_NO_GAIN = 35; // pages no algorithm helps (never retried)
export const G_IDLE_WRITEBACK = 36; // idle pages written back to the swap file
export const G_SWAP_CACHED = 37; // resident clean pages whose swap file slot is kept (swap cache)
export const G_UNSHARED = 38; // pages eviction made exclusive again (shared copy-on-write since a fork)
export const G_UNEVICTABLE = 39; // pages set aside by eviction because the kernel holds them (pinned), now
export const G_FILE_WRITE_ERRORS = 40; // write-backs to mapped files that failed (the pages stayed dirty)
export const G_POOL_READAHEAD = 41; // pages loaded from the pool ahead of a sequential run of faults (readahead.ts)
export const G_FAULTS_NATIVE = 42; // faults served by native code (fault_serve: the fault thread), no JavaScript
export const G_POOL_FULL_COUNT = 44; // times the pool started refusing stores (zswap's accept hysteresis)
export const G_POOL_ACCEPT_COUNT = 45; // times it accepted again after refusing
// The memory budget (budget.ts): the effective limits now, tmem's metadata, and the pages that
// stayed resident over the limit because nothing below the pool took them.
export const G_RESIDENT_LIMIT = 48; // pages
export const G_POOL_LIMIT = 49; // bytes
export const G_BUDGET_METADATA = 50; // bytes of page state and index (budget mode only)
export const G_BUDGET_NOT_HELD = 51; // stores refused with nothing below the pool, resident over its limit
export const G_BUDGET_BYTES = 52; // the budget now (0: none)
export const G_PRESSURE = 53; // memory pressure 0..1 (lib/budget/pressure.ts)
export const G_PRESSURE_CAUSE = 54; // PRESSURE_CAUSES index of what raised it
export const G_OUTSIDE = 55; // bytes the process uses outside tmem, as estimated (lib/budget/sampler.ts)
export const G_MARGIN = 56; // bytes kept free below the cgroup's limit
export const G_CGROUP_LIMIT = 57; // the cgroup's limit at the last look (-1: none or unread)
export const G_CGROUP_USAGE = 58; // its usage at the last look (-1: unread)
/** G_PRESSURE_CAUSE values. */
export const PRESSURE_CAUSES = ['', 'psi', 'near-limit', 'limit'] as const;
// The remote tier (lib/dispatcher/remote.ts).
export const G_REMOTE_PAGES = 59; // pages whose value the remote store holds (state REMOTE), now
export const G_REMOTE_PUTS = 60; // pages sent and acknowledged
export const G_REMOTE_REFUSED = 61; // puts the server refused (OOM at maxmemory): the page stayed in the swap file
export const G_REMOTE_HITS = 62; // faults served from the remote store
export const G_REMOTE_MISSES = 63; // values the server no longer had (nil): read from the swap file
export const G_REMOTE_BAD = 64; // values with a wrong length, generation or CRC-32: never used, read from the swap file
export const G_REMOTE_ERRORS = 65; // requests that failed (refused, reset, deadline, bytes that are not RESP)
export const G_REMOTE_SKIPPED = 66; // faults sent straight to the swap file while their server was backing off
export const G_REMOTE_LOST = 67; // pages forgotten because their server restarted empty (run_id changed)
export const G_REMOTE_PREFETCHED = 68; // pages fetched with a fault's page, into the pool
export const G_REMOTE_MOVED = 69; // MOVED/ASK replies (the cluster's slot map changed)
export const G_FAULTS_REMOTE = 70; // faults served from the remote store (G_REMOTE_HITS's pages, once installed)
export const G_MOVE_ANOMALIES = 71; // UFFDIO_MOVE answers the page tables contradicted (staging.ts movePage/strayFound)
export const G_ARENA_TRIMMED = 72; // bytes of free arena frames given back to the OS by the budget's looks (budget.ts)
// Shared pools (lib/dispatcher/shared.ts): this member's figures.
export const G_SHARED_HITS = 73; // faults served from the shared pool
export const G_SHARED_MISSES = 74; // faults of shared files the pool did not have (read from the file)
export const G_SHARED_PUTS = 75; // clean pages this member stored in the shared pool
export const G_SHARED_ALREADY = 76; // clean pages another member (or this one) had already stored: nothing written
export const G_SHARED_BUSY = 77; // puts given up: the pool's lock was held too long
export const G_SHARED_BAD = 78; // records that failed their checks: never used, read from the file
export const G_SHARED_OTHERS = 79; // bytes the group's other members hold (their published budget use)
export const G_SHARED_USED = 80; // bytes of the shared segment in use
// The remote tier, continued (lib/dispatcher/remote.ts).
export const G_REMOTE_BYTES = 81; // bytes of values the remote store holds for this swap (both kinds), now
export const G_REMOTE_CLEAN_PAGES = 82; // mapped files' clean pages the remote store holds (ephemeral, TTL), now
export const G_REMOTE_CLEAN_PUTS = 83; // clean pages sent and acknowledged
export const G_REMOTE_CLEAN_HITS = 84; // faults of mapped files served from the remote store
export const G_REMOTE_OVER_LIMIT = 85; // pages not sent: remote.maxBytes reached
export const G_REMOTE_REPATRIATED = 86; // persistent pages brought back into the pool in the background
export const G_EVICT_RUN_PAGES = 87; // pages evicted in runs: one UFFDIO_MOVE for several pages (reclaim.ts stageRun)
export const G_EVICT_CLEAN_BATCHED = 88; // clean pages evicted by one process_madvise for a batch (reclaim.ts dropCleanBatch)
export const G_SLOTS = 89;

// Per-region counters.
export const R_RESIDENT = 0;
export const R_STORED = 1;
export const R_SAME = 2;
export const R_FAULTS_ZERO = 3;
export const R_FAULTS_POOL = 4;
export const R_FAULTS_FILE = 5;
export const R_EVICTIONS = 6;
export const R_DIRTY = 7;
export const R_FAULTS_SWAP = 8;
export const R_FAULTS_SAME = 9;
export const R_FAULTS_STAGED = 10;
export const R_FAULTS_CLEANCACHE = 11;
export const R_FAULTS_REMOTE = 12;
export const R_SLOTS = 16;

export const HIST_BUCKETS = 96;
/** Lower bound in microseconds of histogram bucket i. */
export function bucketLow(i: number): number {
  return 0.25 * 2 ** (i / 4);
}
/** Histogram bucket of a duration in microseconds. */
export function bucketOf(us: number): number {
  if (us <= 0.25) return 0;
  const b = Math.floor(4 * Math.log2(us / 0.25));
  return b >= HIST_BUCKETS ? HIST_BUCKETS - 1 : b;
}

export type RegionKind = 'anon' | 'file';

export interface RegionSpec {
  id: number;
  address: number;
  size: number;
  kind: RegionKind;
  stats: SharedArrayBuffer;
  /** File regions: an fd open in this process, the file's size, writable or not, its path (for messages). */
  fd?: number;
  fileSize?: number;
  writable?: boolean;
  path?: string;
  /** Inline regions (faults: 'inline'): the forward area's address (native/inline_fault.h, dispatcher/inline.ts). */
  forward?: number;
}

export type Request =
  | { op: 'addRegion'; reqId: number; region: RegionSpec }
  | { op: 'evict'; reqId: number; id: number }
  | { op: 'flush'; reqId: number; id: number }
  | { op: 'closeRegion'; reqId: number; id: number }
  | { op: 'setLimits'; reqId: number; limits: LimitsUpdate }
  | { op: 'remoteMap'; reqId: number; nodes: RemoteNode[]; slots: Uint16Array | null }
  | { op: 'stop'; reqId: number };

/** A run-time change of the limits (budget.ts); a field left out keeps its value. */
export interface LimitsUpdate {
  /** The whole budget in bytes (0: none, fixed limits). */
  budgetBytes?: number;
  /** A cap on resident pages (Infinity: none; without a budget, the resident limit itself). */
  residentLimitPages?: number;
  /** A cap on the pool's bytes (Infinity: none, the arena's size). */
  poolLimitBytes?: number;
  /** Eviction stops at this fraction of the resident limit. */
  lowWatermark?: number;
  /** Memory pressure, 0 (none) to 1: the resident set gives up to half of itself, idle pages go harder. */
  pressure?: number;
}

export interface Reply {
  reqId: number;
  ok: boolean;
  error?: string;
  /** A failed syscall behind the error (a mapped file's write-back): Node's error fields. */
  code?: string;
  errno?: number;
  syscall?: string;
  value?: number;
}

export interface DispatcherOptions {
  /** The effective limits (in budget mode, recomputed by the dispatcher: budget.ts). */
  residentLimitPages: number;
  lowWatermarkPages: number;
  poolLimitBytes: number;
  /** The memory budget in bytes (memoryLimit; 0 or absent: the fixed limits above). */
  budgetBytes?: number;
  /** Caps the program set with a budget (residentLimit, poolLimit); absent: none. */
  residentCapPages?: number;
  poolCapBytes?: number;
  lowWatermark?: number;
  /** Bytes of address space the pool arena reserves (absent: poolLimitBytes). */
  arenaBytes?: number;
  /** Where the budget comes from, the cgroup, pressure (lib/budget/sampler.ts); absent: fixed, no pressure. */
  budget?: BudgetInit;
  acceptThresholdPercent: number;
  compressor: 'lz4' | 'zstd';
  allocator: 'zsmalloc' | 'zbud';
  stagingPages: number;
  /** The dispatcher follows the faulting threads' CPU (the `pin` option); no program thread's affinity is changed. */
  follow: boolean;
  /** Where faults are served (lib/options.ts FaultPath). */
  faults: 'thread' | 'dispatcher' | 'inline';
  /** Microseconds the fault thread polls after a fault before it sleeps (the `faultSpin` option). */
  faultSpinUs: number;
  swapFileFd: number; // -1: no swap file
  swapFileSize: number;
  swapFileEncrypt: boolean; // seal every slot with AES-256-GCM (lib/swapfile.ts)
  idle: {
    afterMs: number;
    recompress: boolean;
    recompressLevel: number;
    writeback: 'huge' | 'idle' | false;
    budget: number;
  };
  /** The remote tier (lib/remote/nodes.ts), when `remote` is configured. */
  remote?: RemoteConfig;
  /** The shared pool this swap's read-only mapped files use (lib/shared.ts), when `shared` is configured. */
  shared?: { name: string; size: number };
}
