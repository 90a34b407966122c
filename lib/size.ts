/**
 * Byte sizes given as numbers or strings: 4096, '256MiB', '1 GiB', '64k', '2G'.
 * Binary units (KiB, MiB, ...) and their one-letter forms (k, M, G, T) are
 * powers of 1024; KB, MB, GB, TB are powers of 1000.
 */
import { invalidArgType, outOfRange } from './errors';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  kb: 1e3,
  m: 2 ** 20,
  mib: 2 ** 20,
  mb: 1e6,
  g: 2 ** 30,
  gib: 2 ** 30,
  gb: 1e9,
  t: 2 ** 40,
  tib: 2 ** 40,
  tb: 1e12,
};

/**
 * Parses a size option.
 * @param value a non-negative integer number of bytes, or a string like '256MiB'
 * @param name the option's name, used in error messages
 * @throws TypeError (code ERR_INVALID_ARG_TYPE) if value is neither a number nor a string; RangeError
 *   (code ERR_OUT_OF_RANGE) if it is not a whole, finite, non-negative size
 */
export function parseSize(value: unknown, name: string): number {
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
    const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
    if (!m || unit === undefined) {
      throw outOfRange(`${name} must be a size like 4096, '64KiB', '256MiB' or '2GiB', got '${value}'`);
    }
    bytes = Math.round(Number(m[1]) * unit);
  } else {
    throw invalidArgType(
      `${name} must be a number of bytes or a string like '256MiB', got ${value === null ? 'null' : typeof value}`,
    );
  }
  if (!Number.isFinite(bytes) || !Number.isInteger(bytes) || bytes < 0) {
    throw outOfRange(`${name} must be a whole, non-negative number of bytes, got ${String(value)}`);
  }
  if (bytes > Number.MAX_SAFE_INTEGER) throw outOfRange(`${name} is too large: ${String(value)}`);
  return bytes;
}

/** Rounds up to a whole number of 4 KiB pages. */
export function pageAlign(bytes: number): number {
  return Math.ceil(bytes / 4096) * 4096;
}
