/**
 * Memory pressure, as a level from 0 (none) to 1 (the kernel is about to kill), from what
 * the kernel exposes:
 *
 *   PSI        the cgroup's memory.pressure (v2) or /proc/pressure/memory (the whole host):
 *              the growth of `some total` (microseconds some task stalled on memory) over
 *              the time since the last look. 5% of the time stalled starts the level, 30% is 1.
 *   the limit  the cgroup's usage less its file cache within 5% of the limit raises the level
 *              to 0.5, and a limit hit since the last look (v1 memory.failcnt, v2
 *              memory.events max/high: the kernel had to reclaim to charge a page) to 1 while
 *              that usage is above 80% of the limit. Below it a hit is the kernel dropping file
 *              cache (a swap file's own writes fill a small cgroup with it): measured, counting
 *              those held the level at 1 for a whole run and kept tmem's pool empty.
 *
 * The level falls back by a tenth per look once the signals are gone, so tmem gives the
 * memory back gradually rather than at the first quiet moment. (v1's memory.pressure_level
 * notifications need an eventfd registered through cgroup.event_control, which Node cannot
 * make without native code; failcnt says the same thing one poll later.)
 */
import * as fs from 'node:fs';
import type { CgroupReading } from './cgroup';

const PSI_START = 0.05,
  PSI_FULL = 0.3,
  NEAR_LIMIT = 0.95,
  HIT_FLOOR = 0.8,
  DECAY = 0.1;

/** `some total=` of a PSI file in microseconds, or undefined (no PSI: kernel without CONFIG_PSI, or psi=0). */
export function readPsiTotal(file: string): number | undefined {
  let t: string;
  try {
    t = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^some .*total=(\d+)/m.exec(t);
  return m ? Number(m[1]) : undefined;
}

/** Turns successive looks at PSI and the cgroup into a pressure level. */
export class PressureGauge {
  private lastTotal?: number;
  private lastAt = 0;
  private lastHits?: number;
  /** The level now, 0..1. */
  level = 0;
  /** What raised it last ('psi', 'limit', 'near-limit'), for stats and events. */
  cause = '';

  constructor(private readonly psiFile: string | undefined) {}

  /** One look; `cg` is the cgroup reading of the same moment (undefined outside a cgroup). */
  update(cg: CgroupReading | undefined, nowMs: number): number {
    let want = 0;
    let cause = '';
    if (this.psiFile) {
      const total = readPsiTotal(this.psiFile);
      if (total !== undefined && this.lastTotal !== undefined && nowMs > this.lastAt) {
        const stalled = (total - this.lastTotal) / 1000 / (nowMs - this.lastAt);
        const l = Math.min(1, Math.max(0, (stalled - PSI_START) / (PSI_FULL - PSI_START)));
        if (l > want) [want, cause] = [l, 'psi'];
      }
      this.lastTotal = total;
    }
    if (cg?.limit !== undefined && cg.usage !== undefined) {
      const used = cg.usage - (cg.inactiveFile ?? 0) - (cg.activeFile ?? 0);
      if (used >= NEAR_LIMIT * cg.limit && want < 0.5) [want, cause] = [0.5, 'near-limit'];
      if (cg.limitHits !== undefined) {
        const hit = this.lastHits !== undefined && cg.limitHits > this.lastHits;
        if (hit && used >= HIT_FLOOR * cg.limit) [want, cause] = [1, 'limit'];
        this.lastHits = cg.limitHits;
      }
    }
    this.lastAt = nowMs;
    if (want >= this.level) {
      this.level = want;
      if (want > 0) this.cause = cause;
    } else {
      this.level = Math.max(want, this.level - DECAY);
      if (this.level < 0.01) this.level = 0;
    }
    if (this.level === 0) this.cause = '';
    return this.level;
  }
}
