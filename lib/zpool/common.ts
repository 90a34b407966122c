/*
 * Helpers shared by the zpool drivers.
 */

/** Throw unless `size` is an integer from 1 to 4096. */
export function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > 4096) {
    throw new RangeError(`size: expected an integer from 1 to 4096, got ${size}`);
  }
}

