/**
 * The budget's looks at the cgroup and at pressure, taken by the dispatcher Worker (the
 * reclaim thread) every SAMPLE_MS: a main thread busy in a long synchronous loop (filling a
 * buffer) runs no timer, and that is when the budget matters most.
 *
 *   mode 'cgroup'   budget = the cgroup's limit - what the process uses outside tmem - a margin
 *   pressure        PSI and the cgroup's limit (pressure.ts), 0..1
 *
 * "Outside tmem" is the larger of the process's anonymous resident set and the cgroup's usage
 * less its inactive file cache, less what tmem holds (resident region pages, the arena frames
 * the pool has committed, its metadata); with no cgroup, the whole resident set less the same.
 * (The whole resident set would count the node binary's ~40 MiB of file pages, which the
 * cgroup is usually not charged for: measured, that left a 128 MiB cgroup's budget at its floor.)
 * It rises at once and falls by a fiftieth of the difference per look (about a fifth per
 * second), so that memory a garbage collection frees for a moment is not handed to tmem only
 * to be taken back.
 *
 * The margin, max(16 MiB, limit/16), at most 256 MiB: what the process may grow by between
 * two looks (V8 grows its heap in steps of a few MiB, a young generation of up to 16 MiB per
 * isolate, a Worker's start) and the kernel memory the cgroup is charged for but the resident
 * set does not show (page tables, socket buffers, slab).
 */
import { processAnonRss, processRss, readCgroup, type CgroupReading, type MemoryCgroup } from './cgroup';
import { PressureGauge } from './pressure';

/**
 * How often the cgroup and PSI are read, ms. 100, not 500: a program filling memory in a
 * synchronous loop grows by tens of MiB in half a second, and at 500 ms a child in a 128 MiB
 * cgroup (test/cache.test.ts) was OOM-killed 4 times in 5 on Node 22 (5 of 5 survived at
 * 100 ms). A look reads three small cgroup files.
 */
export const SAMPLE_MS = 100;
const MiB = 2 ** 20;
/** The smallest budget: a cgroup whose limit leaves less still gets this (and a warning when it cannot be held). */
export const MIN_BUDGET = 4 * MiB;

/** What the main thread hands the dispatcher about the budget. */
export interface BudgetInit {
  mode: 'cgroup' | 'memoryLimit' | 'fixed';
  /** The memory cgroup found at open() (any mode: its usage feeds pressure). */
  cgroup?: MemoryCgroup;
  /** React to pressure (the `pressure` option). */
  pressure: boolean;
}

/** The margin kept free below a cgroup limit of `limit` bytes. */
export function marginFor(limit: number): number {
  return Math.min(256 * MiB, Math.max(16 * MiB, limit / 16));
}

/** The budget a cgroup limit leaves when the rest of the process uses `outside` bytes. */
export function cgroupBudget(limit: number, outside: number): number {
  return Math.max(MIN_BUDGET, Math.floor(limit - outside - marginFor(limit)));
}

/**
 * Bytes the process uses outside tmem, when tmem holds `tmemBytes`. With a cgroup reading: the
 * larger of this process's anonymous resident set and the cgroup's usage less its file cache.
 * File cache is left out, active or not: the kernel reclaims it at the limit before anything
 * else, and the swap file's own writes sit there (counted, they squeezed the budget to its
 * floor while the kernel dropped them anyway).
 */
export function outsideNow(r: CgroupReading | undefined, tmemBytes: number): number {
  const cg = r?.usage !== undefined ? r.usage - (r.inactiveFile ?? 0) - (r.activeFile ?? 0) : undefined;
  const rss = (cg !== undefined ? processAnonRss() : processRss()) ?? 0;
  return Math.max(0, Math.max(rss, cg ?? 0) - tmemBytes);
}

/** One look's outcome. */
export interface Sample {
  /** The new budget (mode 'cgroup' with a limit), else undefined. */
  budgetBytes?: number;
  pressure: number;
  cause: string;
  reading?: CgroupReading;
  outside: number;
  margin: number;
}

/** Successive looks at the cgroup and PSI. */
export class BudgetSampler {
  private readonly gauge: PressureGauge;
  private outside = 0;
  /** False once the program set a budget itself (setLimits): the cgroup's limit is no longer followed. */
  follow: boolean;

  constructor(private readonly init: BudgetInit) {
    this.follow = init.mode === 'cgroup';
    this.gauge = new PressureGauge(init.pressure ? (init.cgroup?.pressureFile ?? '/proc/pressure/memory') : undefined);
  }

  /** Looks now; `tmemBytes` is what tmem holds. */
  sample(tmemBytes: number, nowMs: number): Sample {
    const r = this.init.cgroup ? readCgroup(this.init.cgroup) : undefined;
    const now = outsideNow(r, tmemBytes);
    this.outside = now >= this.outside ? now : this.outside - (this.outside - now) / 50;
    const out: Sample = { pressure: 0, cause: '', reading: r, outside: this.outside, margin: 0 };
    if (this.follow && r?.limit !== undefined) {
      out.budgetBytes = cgroupBudget(r.limit, this.outside);
      out.margin = marginFor(r.limit);
    }
    if (this.init.pressure) {
      out.pressure = this.gauge.update(r, nowMs);
      out.cause = this.gauge.cause;
    }
    return out;
  }
}
