/**
 * The memory budget as the reclaim thread holds it (README "The memory budget").
 *
 *   limits      what the main thread asked for (open() options, then setLimits requests):
 *               budgetBytes (0: none, the fixed residentLimit/poolLimit of open()),
 *               residentCapPages / poolCapBytes (caps the program set itself; Infinity: none),
 *               lowWatermark (fraction), pressure (0..1, from the main thread's pressure watch)
 *   effective   opts.residentLimitPages, opts.lowWatermarkPages, opts.poolLimitBytes: what
 *               reclaim.ts, pool.ts and writeback.ts read, recomputed by applyLimits()
 *
 * The split of a budget (zswap-style): tmem's own metadata (page state, index) comes off
 * the top; the pool may grow to what is left less a minimum resident set (1/8 of it);
 * resident pages get everything the pool does not use yet. So a fresh swap runs all
 * resident, each page that compresses moves the line (the pool grows by its compressed
 * size, the resident limit shrinks by the same bytes), and once the pool is at its limit
 * the oldest pool entries go below it (the swap file) if there is one.
 *
 * applyLimits() runs at every eviction slice (the pool only grows by eviction; between
 * slices it can only shrink, which leaves the limit on the safe side), at each request and
 * at each look at the cgroup and pressure (budgetTick(), every SAMPLE_MS from the loop:
 * here, not on the main thread, whose timers do not run while the program computes).
 */
import * as P from './protocol';
import { G, opts, backends } from './env';
import { PAGE } from '../compress';
import { byId } from './regions';
import { residency } from './reclaim';
import { poolFull } from './pool';
import { BudgetSampler, SAMPLE_MS } from '../budget/sampler';
import { shared, sharedTick, groupBytes } from './shared';

/** Bytes of dispatcher page state per region page: state 1 + aux 4 + seq 4 + flags 1 (+ loadGen 4 for files). */
const STATE_BYTES = 10;
/** Bytes of tmem index per stored object (radix tree leaves and nodes, measured about 15). */
const INDEX_BYTES = 16;
const MIN_RESIDENT_PAGES = 16;

/** What was asked for; opts holds what follows from it. */
export const limits = {
  budgetBytes: opts.budgetBytes ?? 0,
  residentCapPages: opts.residentCapPages ?? Infinity,
  poolCapBytes: opts.poolCapBytes ?? Infinity,
  lowWatermark: opts.lowWatermark ?? opts.lowWatermarkPages / Math.max(1, opts.residentLimitPages),
  arenaBytes: opts.arenaBytes ?? opts.poolLimitBytes,
  pressure: 0,
};

/** Bytes of tmem's own bookkeeping now: page state of every region page, the index of every object. */
export function metadataBytes(): number {
  let pages = 0;
  for (const r of byId.values()) if (!r.closed) pages += r.pages * (r.isFile ? STATE_BYTES + 4 : STATE_BYTES);
  return pages + opts.stagingPages * 16 + G[P.G_STORED] * INDEX_BYTES;
}

/** Recomputes the effective limits from `limits` (budget split, caps, pressure). */
export function applyLimits(): void {
  let residentPages: number;
  let poolBytes: number;
  if (limits.budgetBytes > 0) {
    const meta = metadataBytes();
    // memoryLimit of a shared pool's member counts for the whole group (shared.ts); a cgroup's
    // usage already holds whatever shares the cgroup.
    const group = opts.budget?.mode === 'memoryLimit' ? groupBytes() : 0;
    const avail = Math.max(0, limits.budgetBytes - meta - group);
    const minResident = Math.max(MIN_RESIDENT_PAGES * PAGE, avail / 8);
    poolBytes = Math.min(limits.poolCapBytes, limits.arenaBytes, Math.max(4 * PAGE, avail - minResident));
    const used = backends.poolBytes();
    residentPages = Math.floor(Math.max(minResident, avail - Math.min(used, poolBytes)) / PAGE);
    residentPages = Math.min(residentPages, limits.residentCapPages);
    G[P.G_BUDGET_METADATA] = meta;
  } else {
    residentPages = limits.residentCapPages;
    poolBytes = Math.min(limits.poolCapBytes, limits.arenaBytes);
  }
  // Under pressure the resident set gives up to half of itself (the pool is shrunk by
  // the idle pass recompressing harder and writing back, idle.ts).
  if (limits.pressure > 0) residentPages = Math.floor(residentPages * (1 - limits.pressure / 2));
  residentPages = Math.max(MIN_RESIDENT_PAGES, residentPages);
  opts.residentLimitPages = residentPages;
  opts.lowWatermarkPages = Math.floor(residentPages * limits.lowWatermark);
  opts.poolLimitBytes = poolBytes;
  G[P.G_RESIDENT_LIMIT] = residentPages;
  G[P.G_POOL_LIMIT] = poolBytes;
  if (residency.resident > residentPages) residency.evicting = true;
}

/** A setLimits request: any of its fields replaces what was asked for before. */
export function setLimits(l: P.LimitsUpdate): void {
  if (l.budgetBytes !== undefined) {
    limits.budgetBytes = l.budgetBytes;
    if (sampler) sampler.follow = false; // the program's budget from now on, not the cgroup's
    G[P.G_BUDGET_BYTES] = l.budgetBytes;
  }
  if (l.residentLimitPages !== undefined) limits.residentCapPages = l.residentLimitPages;
  if (l.poolLimitBytes !== undefined) limits.poolCapBytes = l.poolLimitBytes;
  if (l.lowWatermark !== undefined) limits.lowWatermark = l.lowWatermark;
  if (l.pressure !== undefined) limits.pressure = l.pressure;
  applyLimits();
  // A pool over a lowered limit refuses stores from now on, and the shrinker writes its
  // oldest entries back to the swap file (writeback.ts) until it is under the threshold.
  poolFull();
}

/**
 * A staged page could not go anywhere (the pool refused it and nothing below took it):
 * it stays resident. Counted when that leaves resident pages over their limit, the
 * budget not held (the main thread warns once and emits 'budgetExceeded').
 */
export function notHeld(): void {
  if (residency.resident > opts.residentLimitPages) G[P.G_BUDGET_NOT_HELD]++;
}

const sampler =
  opts.budget && (opts.budget.mode === 'cgroup' || opts.budget.pressure) ? new BudgetSampler(opts.budget) : undefined;
const clock = { next: 0 };
G[P.G_BUDGET_BYTES] = limits.budgetBytes;
G[P.G_CGROUP_LIMIT] = -1;
G[P.G_CGROUP_USAGE] = -1;

/**
 * Milliseconds until the next look at the cgroup and pressure (-1: never). Without a sampler
 * the look is due only while free committed pool frames wait to be given back.
 */
export function budgetDueIn(now: number): number {
  if (!sampler && !shared && !trimDue()) return -1;
  return Math.max(0, Math.ceil(clock.next - now));
}

/** Whether the pool's free committed frames are worth giving back (see committedPool()). */
function trimDue(): boolean {
  const used = backends.poolBytes();
  return backends.committedBytes() - used > Math.max(2 ** 20, used / 8);
}

/**
 * The arena bytes the pool costs now. Frames a shrinking pool frees stay committed (a chunk
 * is given back only when all of its frames are free): measured, a pool of 2.9 MiB left 59 MiB
 * of its arena resident, uncounted, and the process was OOM-killed in a 128 MiB cgroup. So
 * when free committed frames pass an eighth of the pool (at least 1 MiB) they are given back
 * (MADV_DONTNEED), and what is left committed is what tmem counts as its pool.
 */
function committedPool(): number {
  if (trimDue()) G[P.G_ARENA_TRIMMED] += backends.trim();
  return Math.max(backends.poolBytes(), backends.committedBytes());
}

/**
 * A look at the cgroup and pressure when one is due: the budget and limits follow. Without a
 * sampler (fixed limits, pressure off) the look still gives free pool frames back on the same
 * clock; it is not a timer of its own, so a loop with nothing to do sleeps (nothing frees
 * frames then either).
 */
export function budgetTick(now: number): void {
  if (now < clock.next) return;
  clock.next = now + SAMPLE_MS;
  const pool = committedPool();
  const held = residency.resident * PAGE + pool + G[P.G_BUDGET_METADATA];
  if (shared) {
    sharedTick(held);
    if (!sampler) applyLimits();
  }
  if (!sampler) return;
  const s = sampler.sample(held, now);
  if (s.budgetBytes !== undefined) {
    limits.budgetBytes = s.budgetBytes;
    G[P.G_BUDGET_BYTES] = s.budgetBytes;
    G[P.G_MARGIN] = s.margin;
  }
  limits.pressure = s.pressure;
  G[P.G_PRESSURE] = s.pressure;
  G[P.G_PRESSURE_CAUSE] = Math.max(0, P.PRESSURE_CAUSES.indexOf(s.cause as (typeof P.PRESSURE_CAUSES)[number]));
  G[P.G_OUTSIDE] = s.outside;
  G[P.G_CGROUP_LIMIT] = s.reading?.limit ?? -1;
  G[P.G_CGROUP_USAGE] = s.reading?.usage ?? -1;
  applyLimits();
}
