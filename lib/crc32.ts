/**
 * CRC-32 (IEEE 802.3, the polynomial of zlib and gzip) of a page, for the swap
 * file's per-slot checksums.
 *
 * zlib.crc32 is Node's own (zlib's SIMD code) from Node 20.15 and 22.2 on;
 * where it is missing (Node 20.0-20.14, 22.0-22.1) a table-driven version
 * computes the same value (no npm dependency for a dozen lines).
 */
import * as zlib from 'node:zlib';

let table: Int32Array | undefined;

/** The byte-at-a-time CRC-32 of `data`, same result as zlib.crc32(data). */
export function crc32Portable(data: Uint8Array): number {
  if (!table) {
    table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c;
    }
  }
  let c = -1;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

type Crc32 = (data: Uint8Array) => number;
const native = (zlib as { crc32?: Crc32 }).crc32;

/** CRC-32 of `data` as an unsigned 32-bit number. */
export const crc32: Crc32 = typeof native === 'function' ? (data) => native(data) : crc32Portable;
