/**
 * The main thread's half of the memory budget (README "The memory budget", "Pressure"):
 * where the budget comes from at open(), its figures for stats(), and saying when it
 * cannot be held. The looks at the cgroup and at pressure are the dispatcher's
 * (lib/budget/sampler.ts, lib/dispatcher/budget.ts), which publishes them in shared counters.
 *
 *   mode 'cgroup'       the cgroup's limit less what the process uses outside tmem and a margin
 *   mode 'memoryLimit'  the memoryLimit option (or swap.setLimits({ memoryLimit }))
 *   mode 'fixed'        no budget: residentLimit and poolLimit as given
 *
 *   every POLL_MS (a timer that never keeps the process alive):
 *     the dispatcher's count of stores nothing would take -> 'budgetExceeded' (once per episode:
 *     until resident pages are back under their limit) and one process warning per swap
 *     (code TMEM_BUDGET_EXCEEDED) naming the cause and the fix
 *     the pressure level going above 0 or back to 0 -> 'memoryPressure'
 */
import type { EventEmitter } from 'node:events';
import * as P from '../dispatcher/protocol';
import { emitSwapEvent, POLL_MS } from '../events';
import { findMemoryCgroup, readCgroup } from './cgroup';
import { cgroupBudget, outsideNow, type BudgetInit } from './sampler';

const MiB = 2 ** 20;

/** The budget's figures, as stats().budget shows them. */
export interface BudgetStats {
  /** Where the budget comes from: the cgroup's limit, the memoryLimit option, or none ('fixed'). */
  mode: 'cgroup' | 'memoryLimit' | 'fixed';
  /** The budget in bytes now (0 when fixed). */
  bytes: number;
  /** The resident limit now (bytes): what the pool leaves of the budget, or residentLimit. */
  residentLimit: number;
  /** The pool's limit now, bytes. */
  poolLimit: number;
  /** Bytes of tmem's own page state and index counted in the budget. */
  metadataBytes: number;
  /** The cgroup: its version, limit and usage at the last look (mode 'cgroup' or a cgroup seen). */
  cgroup?: { version: 1 | 2; limit: number | null; usage: number | null };
  /** Bytes the process uses outside tmem, as last estimated (mode 'cgroup'). */
  outsideBytes: number;
  /** The margin kept free of the cgroup's limit, bytes (mode 'cgroup'). */
  marginBytes: number;
  /** Memory pressure now, 0 (none) to 1; what raised it: 'psi', 'near-limit', 'limit' or ''. */
  pressure: number;
  pressureCause: string;
  /**
   * Times a page could go nowhere while resident pages were over their limit: the pool was
   * full and nothing below it took the page (no swap file, or it was full or failing), so
   * the budget was not held. See the 'budgetExceeded' event.
   */
  notHeld: number;
}

/** Payload of 'budgetExceeded'. */
export interface BudgetExceededEvent {
  /** What could not be done, in words. */
  cause: string;
  /** What would fix it, in words. */
  fix: string;
  budgetBytes: number;
  residentBytes: number;
  residentLimit: number;
  poolBytes: number;
  poolLimit: number;
}

/** Payload of 'memoryPressure': the level went from 0 to more, or back to 0. */
export interface MemoryPressureEvent {
  level: number;
  cause: string;
}

/** What the controller needs of its Swap. */
export interface BudgetHost {
  emitter: EventEmitter;
  G: Float64Array;
  /** Arena bytes the pools hold now. */
  poolBytes(): number;
  swapFile: boolean;
  compressor: 'lz4' | 'zstd';
}

/** How open() sized things: what the dispatcher gets (BudgetInit) and the budget it starts with. */
export interface BudgetConfig extends BudgetInit {
  /** The budget open() started with (0: fixed). */
  bytes: number;
}

/** The budget open() starts with: from memoryLimit, the cgroup, or none. */
export function initialBudget(memoryLimit: number | 'auto' | 'fixed', pressure?: boolean): BudgetConfig {
  const cgroup = findMemoryCgroup();
  if (typeof memoryLimit === 'number')
    return { mode: 'memoryLimit', bytes: memoryLimit, cgroup, pressure: pressure ?? true };
  if (memoryLimit === 'auto' && cgroup) {
    const r = readCgroup(cgroup);
    if (r.limit !== undefined)
      return { mode: 'cgroup', bytes: cgroupBudget(r.limit, outsideNow(r, 0)), cgroup, pressure: pressure ?? true };
  }
  // Fixed limits: the program sized things itself; pressure only when asked for.
  return { mode: 'fixed', bytes: 0, cgroup, pressure: pressure ?? false };
}

/** Says when the budget cannot be held, and gives stats().budget. */
export class BudgetController {
  private timer?: NodeJS.Timeout;
  private notHeldSeen = 0;
  private exceeded = false;
  private warned = false;
  private pressed = false;

  constructor(
    private readonly host: BudgetHost,
    private readonly cfg: BudgetConfig,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The program set a budget itself (swap.setLimits({ memoryLimit })): the cgroup's is no longer followed. */
  setBudget(bytes: number): void {
    this.cfg.mode = 'memoryLimit';
    this.cfg.bytes = bytes;
  }

  /** One look at the dispatcher's counters (also on close, so that nothing is missed). */
  poll(): void {
    const G = this.host.G;
    const level = G[P.G_PRESSURE];
    if (level > 0 !== this.pressed) {
      this.pressed = level > 0;
      emitSwapEvent(this.host.emitter, 'memoryPressure', {
        level,
        cause: P.PRESSURE_CAUSES[G[P.G_PRESSURE_CAUSE]] ?? '',
      });
    }
    const n = G[P.G_BUDGET_NOT_HELD];
    const over = G[P.G_RESIDENT] > G[P.G_RESIDENT_LIMIT];
    if (n > this.notHeldSeen && !this.exceeded) {
      this.exceeded = true;
      const e = this.describe();
      emitSwapEvent(this.host.emitter, 'budgetExceeded', e);
      if (!this.warned) {
        this.warned = true;
        process.emitWarning(`tmem: the memory budget cannot be held: ${e.cause}. Fix: ${e.fix}`, {
          code: 'TMEM_BUDGET_EXCEEDED',
        });
      }
    } else if (this.exceeded && !over && n === this.notHeldSeen) {
      this.exceeded = false; // held again: a later failure is a new episode
    }
    this.notHeldSeen = n;
  }

  private describe(): BudgetExceededEvent {
    const G = this.host.G;
    const mib = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;
    const poolBytes = this.host.poolBytes();
    const poolLimit = G[P.G_POOL_LIMIT];
    const residentBytes = G[P.G_RESIDENT] * 4096;
    const residentLimit = G[P.G_RESIDENT_LIMIT] * 4096;
    const budgetBytes = G[P.G_BUDGET_BYTES];
    const below = this.host.swapFile
      ? G[P.G_SWAP_IO_ERRORS] > 0
        ? 'the swap file is failing (see swapFileError)'
        : 'the swap file is full'
      : 'there is no swap file below it';
    const cause =
      `the pool is full (${mib(poolBytes)} of its ${mib(poolLimit)} limit) and ${below}, ` +
      `so pages stay resident: ${mib(residentBytes)} resident against a limit of ${mib(residentLimit)}` +
      (budgetBytes > 0
        ? ` (budget ${mib(budgetBytes)}, from ${this.cfg.mode === 'cgroup' ? 'the cgroup' : 'memoryLimit'})`
        : '');
    const fixes = [
      this.host.swapFile ? 'a larger swap file (swapFile.size)' : 'a swap file (open({ swapFile: { path, size } }))',
      this.cfg.mode === 'cgroup'
        ? "a larger budget (raise the cgroup's memory limit)"
        : this.cfg.mode === 'memoryLimit'
          ? 'a larger budget (memoryLimit)'
          : 'a larger budget (memoryLimit, or poolLimit)',
    ];
    if (this.host.compressor === 'lz4') fixes.push("compressor: 'zstd' (which packs more into the same pool)");
    return { cause, fix: fixes.join(', or '), budgetBytes, residentBytes, residentLimit, poolBytes, poolLimit };
  }

  /** stats().budget */
  stats(): BudgetStats {
    const G = this.host.G;
    const cgLimit = G[P.G_CGROUP_LIMIT],
      cgUsage = G[P.G_CGROUP_USAGE];
    return {
      mode: this.cfg.mode,
      bytes: this.cfg.mode === 'fixed' ? 0 : G[P.G_BUDGET_BYTES],
      residentLimit: G[P.G_RESIDENT_LIMIT] * 4096,
      poolLimit: G[P.G_POOL_LIMIT],
      metadataBytes: G[P.G_BUDGET_METADATA],
      cgroup: this.cfg.cgroup
        ? {
            version: this.cfg.cgroup.version,
            limit: cgLimit >= 0 ? cgLimit : null,
            usage: cgUsage >= 0 ? cgUsage : null,
          }
        : undefined,
      outsideBytes: G[P.G_OUTSIDE],
      marginBytes: this.cfg.mode === 'cgroup' ? G[P.G_MARGIN] : 0,
      pressure: G[P.G_PRESSURE],
      pressureCause: P.PRESSURE_CAUSES[G[P.G_PRESSURE_CAUSE]] ?? '',
      notHeld: G[P.G_BUDGET_NOT_HELD],
    };
  }
}
