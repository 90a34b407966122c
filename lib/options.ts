/**
 * open()'s options: every key and value is checked here, before anything is created, with
 * upper bounds, so that nothing the dispatcher Worker would only find out later (and die of)
 * gets through. Only `undefined` means "use the default": `null` is a wrong type.
 *
 * Errors carry Node's codes (lib/errors.ts): ERR_INVALID_ARG_TYPE for a wrong type,
 * ERR_INVALID_ARG_VALUE for an unknown key or name, ERR_OUT_OF_RANGE for a number outside
 * what is accepted.
 */
import { invalidArgType, invalidArgValue, outOfRange } from './errors';
import { parseSize } from './size';
import { PageCodec, zstdAvailable } from './compress';
import type { DispatcherOptions } from './dispatcher/protocol';
import { checkRemoteOptions, type CheckedRemote } from './remote/options';

const MiB = 2 ** 20,
  GiB = 2 ** 30,
  TiB = 2 ** 40;

/** Upper bounds of the size options, with where each comes from. */
export const LIMITS = {
  /** The largest region tmem maps (native/binding.cc). */
  residentLimit: 64 * TiB,
  /** The pool arena is SharedArrayBuffer chunks indexed by 32-bit frame numbers. */
  poolLimit: 16 * GiB,
  /** The staging area is one region, with per-slot tables in the dispatcher. */
  stagingSize: 1 * GiB,
  /** The dispatcher keeps 13 bytes of slot tables per 4 KiB slot in memory (3.4 GB at 1 TiB). */
  swapFileSize: 1 * TiB,
  sharedSize: 64 * 2 ** 30,
  /** idle.after in ms: setTimeout's limit (about 24.8 days). */
  idleAfterMs: 2 ** 31 - 1,
  /** idle.budget in pages per pass. */
  idleBudget: 2 ** 20,
} as const;

/**
 * How long the fault thread polls after a fault before it sleeps (µs). On a VM whose idle vCPUs
 * halt at once, waking the sleeping thread costs more than the fault it serves (README
 * "Thread placement"); 50 µs covers the gap between the faults of a run.
 */
export const DEFAULT_FAULT_SPIN_US = 50;

/** faultSpin's default: TMEM_FAULT_SPIN (µs) when the environment sets it, else DEFAULT_FAULT_SPIN_US. */
export function defaultFaultSpin(): number {
  const v = process.env.TMEM_FAULT_SPIN;
  if (v === undefined || v === '') return DEFAULT_FAULT_SPIN_US;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 10000) {
    throw outOfRange(`TMEM_FAULT_SPIN must be a whole number of microseconds from 0 to 10000, got '${v}'`);
  }
  return n;
}

const OPEN_KEYS = [
  'residentLimit',
  'lowWatermark',
  'poolLimit',
  'acceptThreshold',
  'compressor',
  'allocator',
  'pin',
  'stagingSize',
  'userModeOnly',
  'swapFile',
  'idle',
  'statsSocket',
  'faults',
  'faultSpin',
  'memoryLimit',
  'pressure',
  'remote',
  'shared',
] as const;
const SHARED_KEYS = ['name', 'size'] as const;
/** A shared pool's name: what every member of one application passes (README "Shared pools"). */
const SHARED_NAME = /^[A-Za-z0-9._-]{1,48}$/;
const SWAPFILE_KEYS = ['path', 'size', 'encrypt'] as const;
const IDLE_KEYS = ['after', 'recompress', 'recompressLevel', 'writeback', 'budget'] as const;

/**
 * Who serves a region's faults (the `faults` option of open(), region() and mapFile()):
 * 'dispatcher', the dispatcher Worker reading the userfaultfd; 'thread' (open() only: for
 * region() and mapFile() it means the same as 'dispatcher', the swap's userfaultfd), a
 * native thread that serves faults on pages in the fast states (zero, same-filled, staged,
 * stored) with no JavaScript and hands the rest to the dispatcher Worker; 'inline', the
 * faulting thread itself, in a SIGBUS handler (native/inline_fault.h; syscalls that touch
 * a missing page of such a region fail with EFAULT).
 */
export const FAULT_MODES = ['dispatcher', 'thread', 'inline'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];
/** The fault mode when none is given. */
export const DEFAULT_FAULT_MODE: FaultMode = 'thread';

/** Checks a `faults` option (undefined: `dflt`). */
export function checkFaultMode(v: unknown, name: string, dflt: FaultMode): FaultMode {
  return enumOpt(v, name, dflt, FAULT_MODES);
}

const REGION_KEYS = ['faults'] as const;
const MAPFILE_KEYS = ['writable', 'faults'] as const;

/** Checks region()'s options: `{ faults }`. */
export function checkRegionOptions(options: unknown, dflt: FaultMode): { faults: FaultMode } {
  if (options === undefined) return { faults: dflt };
  const o = checkObject(options, 'region options', REGION_KEYS, '{ faults }');
  return { faults: checkFaultMode(o.faults, 'options.faults', dflt) };
}

/** Checks mapFile()'s options: `{ writable, faults }`. */
export function checkMapFileOptions(options: unknown, dflt: FaultMode): { writable: boolean; faults: FaultMode } {
  const o = checkObject(options === undefined ? {} : options, 'mapFile options', MAPFILE_KEYS, '{ writable, faults }');
  return {
    writable: boolOpt(o.writable, 'options.writable', false),
    faults: checkFaultMode(o.faults, 'options.faults', dflt),
  };
}

/** open()'s options, checked, with their defaults filled in. */
export interface CheckedOptions {
  residentLimit: number;
  lowWatermark: number;
  poolLimit: number;
  acceptThreshold: number;
  compressor: 'lz4' | 'zstd';
  allocator: 'zsmalloc' | 'zbud';
  pin: boolean;
  stagingBytes: number;
  userModeOnly: boolean | 'auto';
  swapFile?: { path: string; size: number; encrypt: boolean };
  idle: DispatcherOptions['idle'];
  statsSocket: boolean;
  faults: FaultMode;
  /** Microseconds the fault thread keeps polling after a fault before it sleeps (0: at once). */
  faultSpin: number;
  /**
   * The memory budget: 'fixed' (residentLimit and poolLimit as given or defaulted), a
   * number of bytes (memoryLimit), or 'auto' (the cgroup's limit, lib/budget/).
   */
  memoryLimit: number | 'auto' | 'fixed';
  /** residentLimit / poolLimit were given: with a budget they are caps. */
  residentLimitGiven: boolean;
  poolLimitGiven: boolean;
  stagingGiven: boolean;
  /** undefined: on with a budget, off with fixed limits. */
  pressure?: boolean;
  remote?: CheckedRemote;
  shared?: { name: string; size: number };
}

export function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${v}`;
  if (typeof v === 'symbol') return v.toString();
  return typeof v === 'function' ? 'a function' : 'an object';
}

/** A plain object (not null, not an array) whose keys are all in `known`. */
export function checkObject(
  v: unknown,
  name: string,
  known: readonly string[],
  shape: string,
): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw invalidArgType(`${name} must be an object ${shape}, got ${describe(v)}`);
  }
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) {
      throw invalidArgValue(
        `${name === 'options' ? 'unknown option' : `unknown key in ${name}:`} '${k}'; accepted: ${known.join(', ')}`,
      );
    }
  }
  return v as Record<string, unknown>;
}

function boolOpt(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw invalidArgType(`${name} must be a boolean, got ${describe(v)}`);
  return v;
}

/** A number option; `range` says what is accepted, `ok` checks it. */
export function numberOpt(v: unknown, name: string, dflt: number, range: string, ok: (n: number) => boolean): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number') throw invalidArgType(`${name} must be a number (${range}), got ${describe(v)}`);
  if (!ok(v)) throw outOfRange(`${name} must be ${range}, got ${String(v)}`);
  return v;
}

function enumOpt<T extends string>(v: unknown, name: string, dflt: T, names: readonly T[]): T {
  if (v === undefined) return dflt;
  if (typeof v !== 'string')
    throw invalidArgType(`${name} must be ${names.map((n) => `'${n}'`).join(' or ')}, got ${describe(v)}`);
  if (!(names as readonly string[]).includes(v)) {
    throw invalidArgValue(`${name} must be ${names.map((n) => `'${n}'`).join(' or ')}, got '${v}'`, 'range');
  }
  return v as T;
}

export function sizeOpt(
  v: unknown,
  name: string,
  dflt: number | string,
  min: number,
  minText: string,
  max: number,
  maxText: string,
): number {
  const bytes = parseSize(v === undefined ? dflt : v, name);
  if (bytes < min) throw outOfRange(`${name} must be at least ${minText}, got ${String(v)}`);
  if (bytes > max) throw outOfRange(`${name} must be at most ${maxText}, got ${String(v)}`);
  return bytes;
}

/**
 * Checks open()'s options and fills in defaults.
 * @throws TypeError / RangeError with a code (see lib/errors.ts) naming the option
 */
export function checkOpenOptions(options: unknown): CheckedOptions {
  const o = checkObject(options === undefined ? {} : options, 'options', OPEN_KEYS, '(open() options)');
  const residentLimit = sizeOpt(
    o.residentLimit,
    'residentLimit',
    '256MiB',
    16 * 4096,
    '64KiB (16 pages)',
    LIMITS.residentLimit,
    '64TiB (the largest region)',
  );
  const lowWatermark = numberOpt(
    o.lowWatermark,
    'lowWatermark',
    0.9,
    'a fraction between 0 and 1',
    (n) => n > 0 && n < 1,
  );
  const poolLimit = sizeOpt(
    o.poolLimit,
    'poolLimit',
    '1GiB',
    16 * 4096,
    '64KiB',
    LIMITS.poolLimit,
    '16GiB (the arena indexes frames with 32-bit numbers)',
  );
  const acceptThreshold = numberOpt(
    o.acceptThreshold,
    'acceptThreshold',
    90,
    'a percentage in (0, 100]',
    (n) => n > 0 && n <= 100,
  );
  const compressor = enumOpt(o.compressor, 'compressor', 'lz4', ['lz4', 'zstd'] as const);
  if (compressor === 'zstd') new PageCodec('zstd'); // throws ERR_TMEM_NO_ZSTD where neither libzstd nor zstd-napi is found
  const allocator = enumOpt(o.allocator, 'allocator', 'zsmalloc', ['zsmalloc', 'zbud'] as const);
  const pin = boolOpt(o.pin, 'pin', true);
  const stagingBytes =
    o.stagingSize === undefined
      ? Math.min(32 * MiB, Math.max(64 * 4096, residentLimit / 8))
      : sizeOpt(o.stagingSize, 'stagingSize', 0, 16 * 4096, '64KiB', LIMITS.stagingSize, '1GiB');
  let userModeOnly: boolean | 'auto' = 'auto';
  if (o.userModeOnly !== undefined) {
    if (o.userModeOnly !== 'auto' && typeof o.userModeOnly !== 'boolean') {
      throw invalidArgType(`userModeOnly must be 'auto' or a boolean, got ${describe(o.userModeOnly)}`);
    }
    userModeOnly = o.userModeOnly;
  }
  let swapFile: CheckedOptions['swapFile'];
  if (o.swapFile !== undefined) {
    const sf = checkObject(o.swapFile, 'swapFile', SWAPFILE_KEYS, '{ path, size, encrypt }');
    if (typeof sf.path !== 'string' || sf.path.length === 0)
      throw invalidArgType(`swapFile.path must be a non-empty path string, got ${describe(sf.path)}`);
    if (sf.size === undefined)
      throw invalidArgType("swapFile.size must be given: a number of bytes or a string like '1GiB'");
    const size =
      Math.floor(
        sizeOpt(
          sf.size,
          'swapFile.size',
          0,
          4096,
          '4KiB',
          LIMITS.swapFileSize,
          '1TiB (the dispatcher keeps 13 bytes of slot tables per 4 KiB slot in memory)',
        ) / 4096,
      ) * 4096;
    const encrypt = boolOpt(sf.encrypt, 'swapFile.encrypt', true);
    swapFile = { path: sf.path, size, encrypt };
  }
  const idle = checkIdle(o.idle);
  const statsSocket = boolOpt(o.statsSocket, 'statsSocket', process.env.TMEM_STATS === '1');
  const faults = checkFaultMode(o.faults, 'faults', DEFAULT_FAULT_MODE);
  const faultSpin = numberOpt(
    o.faultSpin,
    'faultSpin',
    defaultFaultSpin(),
    'a whole number of microseconds from 0 to 10000',
    (n) => Number.isInteger(n) && n >= 0 && n <= 10000,
  );
  const memoryLimit = checkMemoryLimit(o.memoryLimit, o.residentLimit === undefined && o.poolLimit === undefined);
  const pressure = o.pressure === undefined ? undefined : boolOpt(o.pressure, 'pressure', true);
  const remote = o.remote === undefined ? undefined : checkRemoteOptions(o.remote);
  let shared: CheckedOptions['shared'];
  if (o.shared !== undefined) {
    const so = checkObject(o.shared, 'shared', SHARED_KEYS, '{ name, size }');
    if (typeof so.name !== 'string' || !SHARED_NAME.test(so.name))
      throw invalidArgType(
        `shared.name must be 1 to 48 letters, digits, '.', '_' or '-' (the same in every member), got ${describe(so.name)}`,
      );
    const size =
      Math.ceil(sizeOpt(so.size, 'shared.size', '256MiB', 4 * MiB, '4MiB', LIMITS.sharedSize, '64GiB') / 4096) * 4096;
    shared = { name: so.name, size };
  }
  return {
    memoryLimit,
    residentLimitGiven: o.residentLimit !== undefined,
    poolLimitGiven: o.poolLimit !== undefined,
    stagingGiven: o.stagingSize !== undefined,
    pressure,
    residentLimit,
    lowWatermark,
    poolLimit,
    acceptThreshold,
    compressor,
    allocator,
    pin,
    stagingBytes,
    userModeOnly,
    swapFile,
    idle,
    statsSocket,
    faults,
    faultSpin,
    remote,
    shared,
  };
}

/**
 * memoryLimit: a size (at least 4 MiB), 'auto' (the cgroup's limit), or undefined: 'auto'
 * when neither residentLimit nor poolLimit is given, else the fixed limits.
 */
function checkMemoryLimit(v: unknown, noSizes: boolean): number | 'auto' | 'fixed' {
  if (v === undefined) return noSizes ? 'auto' : 'fixed';
  if (v === 'auto') return 'auto';
  if (typeof v !== 'number' && typeof v !== 'string')
    throw invalidArgType(
      `memoryLimit must be a number of bytes, a size string like '512MiB' or 'auto', got ${describe(v)}`,
    );
  return sizeOpt(v, 'memoryLimit', 0, 4 * MiB, '4MiB', LIMITS.residentLimit, '64TiB');
}

function checkIdle(v: unknown): DispatcherOptions['idle'] {
  const i =
    v === undefined
      ? {}
      : checkObject(v, 'idle', IDLE_KEYS, '{ after, recompress, recompressLevel, writeback, budget }');
  const afterMs = numberOpt(
    i.after,
    'idle.after',
    60000,
    `a number of milliseconds from 0 to ${LIMITS.idleAfterMs}`,
    (n) => n >= 0 && n <= LIMITS.idleAfterMs,
  );
  const recompress = boolOpt(i.recompress, 'idle.recompress', zstdAvailable()); // zstd from libzstd.so.1 or zstd-napi
  const recompressLevel = numberOpt(
    i.recompressLevel,
    'idle.recompressLevel',
    9,
    'a zstd level 1..22',
    (n) => Number.isInteger(n) && n >= 1 && n <= 22,
  );
  let writeback: 'huge' | 'idle' | false = 'huge';
  if (i.writeback !== undefined) {
    if (i.writeback !== false && typeof i.writeback !== 'string') {
      throw invalidArgType(`idle.writeback must be 'huge', 'idle' or false, got ${describe(i.writeback)}`);
    }
    writeback =
      i.writeback === false ? false : enumOpt(i.writeback, 'idle.writeback', 'huge', ['huge', 'idle'] as const);
  }
  const budget = numberOpt(
    i.budget,
    'idle.budget',
    256,
    `a whole number of pages from 1 to ${LIMITS.idleBudget}`,
    (n) => Number.isInteger(n) && n >= 1 && n <= LIMITS.idleBudget,
  );
  return { afterMs, recompress, recompressLevel, writeback, budget };
}
