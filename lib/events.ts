/**
 * What a service must alert on, as events of the Swap (an EventEmitter) and
 * as messages on node:diagnostics_channel:
 *
 *   event            channel                 when
 *   'poolFull'       tmem:pool-full          the pool refuses stores (poolLimit reached)
 *   'poolAccepting'  tmem:pool-accepting     it accepts again (below acceptThreshold)
 *   'swapFileError'  tmem:swap-file-error    swap file I/O errors (ENOSPC, EIO...)
 *   'checksumError'  tmem:checksum-error     a swap file slot failed its check, CRC-32 or authentication tag (the page is lost: SIGBUS)
 *   'dispatcherGone' tmem:dispatcher-gone    the dispatcher Worker failed or exited
 *   'budgetExceeded' tmem:budget-exceeded    the memory budget cannot be held (lib/budget/controller.ts)
 *   'memoryPressure' tmem:memory-pressure    memory pressure began (level > 0) or ended (level 0)
 *
 * The dispatcher keeps its state in shared counters; they are read every
 * POLL_MS (a timer that never keeps the process alive), so an event comes at
 * most that long after the fact, and several errors in one interval are one
 * event whose `count` says how many. 'dispatcherGone' is emitted at once.
 */
import * as dc from 'node:diagnostics_channel';
import type { EventEmitter } from 'node:events';
import * as P from './dispatcher/protocol';
import type { BudgetExceededEvent, MemoryPressureEvent } from './budget/controller';

/** How often the shared counters are read, ms. */
export const POLL_MS = 250;

/** Payload of 'poolFull' and 'poolAccepting'. */
export interface PoolEvent {
  /** Bytes the pools use now. */
  poolBytes: number;
  /** The pool's limit now, bytes (poolLimit, or its share of the memory budget). */
  poolLimit: number;
}
/** Payload of 'swapFileError' and 'checksumError'. */
export interface SwapFileErrorEvent {
  /** Errors of this kind since the last event. */
  count: number;
  /** Errors of this kind since open(). */
  total: number;
}
/** Payload of 'dispatcherGone'. */
export interface DispatcherGoneEvent {
  /** Why (the Worker's error, or its exit code). Later calls on the swap throw it. */
  error: Error;
}

/** The events of a Swap, by name. */
export interface SwapEventMap {
  poolFull: PoolEvent;
  poolAccepting: PoolEvent;
  swapFileError: SwapFileErrorEvent;
  checksumError: SwapFileErrorEvent;
  dispatcherGone: DispatcherGoneEvent;
  budgetExceeded: BudgetExceededEvent;
  memoryPressure: MemoryPressureEvent;
}

/** diagnostics_channel names; each message is the event's payload plus `swap`. */
export const CHANNELS: { readonly [K in keyof SwapEventMap]: string } = {
  poolFull: 'tmem:pool-full',
  poolAccepting: 'tmem:pool-accepting',
  swapFileError: 'tmem:swap-file-error',
  checksumError: 'tmem:checksum-error',
  dispatcherGone: 'tmem:dispatcher-gone',
  budgetExceeded: 'tmem:budget-exceeded',
  memoryPressure: 'tmem:memory-pressure',
};

const channels = Object.fromEntries(Object.entries(CHANNELS).map(([k, v]) => [k, dc.channel(v)])) as Record<
  keyof SwapEventMap,
  dc.Channel
>;

/** Emits `name` on the swap and publishes it on its channel. */
export function emitSwapEvent<K extends keyof SwapEventMap>(
  swap: EventEmitter,
  name: K,
  payload: SwapEventMap[K],
): void {
  const ch = channels[name];
  if (ch.hasSubscribers) ch.publish({ ...payload, swap });
  swap.emit(name, payload);
}

/** Reads the dispatcher's shared counters and turns their changes into events. */
export class SwapEventWatcher {
  private timer?: NodeJS.Timeout;
  private full = false;
  private fullCount = 0;
  private acceptCount = 0;
  private ioErrors = 0;
  private csumErrors = 0;

  constructor(
    private readonly swap: EventEmitter,
    private readonly G: Float64Array,
    private readonly poolLimit: () => number,
    private readonly poolBytes: () => number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look at the counters (also called on close, so that nothing is missed). */
  poll(): void {
    const G = this.G;
    // Transitions alternate (full, accepting, full, ...): several in one interval
    // collapse into one event each, ending in the state the pool is in now.
    const dFull = G[P.G_POOL_FULL_COUNT] - this.fullCount;
    const dAccept = G[P.G_POOL_ACCEPT_COUNT] - this.acceptCount;
    this.fullCount += dFull;
    this.acceptCount += dAccept;
    const pool = (): PoolEvent => ({ poolBytes: this.poolBytes(), poolLimit: this.poolLimit() });
    if (!this.full && dFull > 0) {
      this.full = true;
      emitSwapEvent(this.swap, 'poolFull', pool());
      if (dAccept >= dFull) {
        this.full = false;
        emitSwapEvent(this.swap, 'poolAccepting', pool());
      }
    } else if (this.full && dAccept > 0) {
      this.full = false;
      emitSwapEvent(this.swap, 'poolAccepting', pool());
      if (dFull >= dAccept) {
        this.full = true;
        emitSwapEvent(this.swap, 'poolFull', pool());
      }
    }
    const io = G[P.G_SWAP_IO_ERRORS];
    if (io > this.ioErrors) {
      const count = io - this.ioErrors;
      this.ioErrors = io;
      emitSwapEvent(this.swap, 'swapFileError', { count, total: io });
    }
    const cs = G[P.G_SWAP_CSUM_ERRORS];
    if (cs > this.csumErrors) {
      const count = cs - this.csumErrors;
      this.csumErrors = cs;
      emitSwapEvent(this.swap, 'checksumError', { count, total: cs });
    }
  }
}
