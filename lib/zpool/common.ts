/*
 * Helpers shared by the zpool drivers.
 */

/** Throw unless `size` is an integer from 1 to 4096. */
export function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > 4096) {
    throw new RangeError(`size: expected an integer from 1 to 4096, got ${size}`);
  }
}

/** `n` if it is a positive integer, else a RangeError naming it `name`. */
export function positiveInt(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name}: expected a positive integer, got ${n}`);
  return n;
}
