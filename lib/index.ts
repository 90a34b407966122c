/**
 * tmem: transcendent memory for Node.js.
 *
 * open() returns a Swap; swap.region(size) gives anonymous memory whose cold
 * pages are compressed into a pool (frontswap), swap.mapFile(path) maps a file
 * whose clean pages may be cached compressed (cleancache). Page faults on that
 * memory are real hardware faults served by a dispatcher Worker through
 * userfaultfd.
 */
export { open, attachRegion, Swap, Region, FileRegion } from './swap';
export type {
  SharedRegion,
  OpenOptions,
  SwapStats,
  RegionStats,
  LatencyStats,
  LimitsOptions,
  SharedStats,
} from './swap';
export type { BudgetStats, BudgetExceededEvent, MemoryPressureEvent } from './budget/controller';
export { Cache } from './cache';
export type { CacheKey, CacheStats, CacheOptions, CacheSerializer } from './cache';
export { parseSize } from './size';
export { probe } from './probe';
export type { ProbeResult } from './probe';
export { CHANNELS } from './events';
export type { SwapEventMap, PoolEvent, SwapFileErrorEvent, DispatcherGoneEvent } from './events';
