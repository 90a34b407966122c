/**
 * Cache keys as bytes: the index (lib/cache/index-table.ts) keeps only a key's hash, and the
 * key's bytes are stored in the region in front of its value, so that keys cost no heap.
 *
 * A key is a string or a number, compared as a Map compares them (SameValueZero: NaN is one
 * key, -0 and 0 are one key; the string '1' and the number 1 are two keys). Encoding: one tag
 * byte, then the UTF-8 bytes of a well-formed string (tag 0), the 8 bytes of a float64 (tag
 * 1, -0 stored as 0 and every NaN as one NaN), or the UTF-16 code units of a string with a
 * lone surrogate (tag 2: UTF-8 would turn it into U+FFFD and make two keys one).
 */
import { invalidArgType, outOfRange } from '../errors';

/** The longest encoded key, bytes (tag byte included). */
export const MAX_KEY_BYTES = 65536;

const TAG_UTF8 = 0,
  TAG_NUMBER = 1,
  TAG_UTF16 = 2;

const encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8');

/** A key's bytes, written into one reused buffer (valid until the next encode). */
export class KeyEncoder {
  /** The encoded key: bytes[0 .. length). */
  readonly bytes = new Uint8Array(MAX_KEY_BYTES);
  length = 0;
  hash = 0;
  private readonly f64 = new Float64Array(1);
  private readonly f64Bytes = new Uint8Array(this.f64.buffer);

  /**
   * Encodes `key` and hashes it.
   * @throws TypeError ERR_INVALID_ARG_TYPE for a key that is neither a string nor a number;
   *   RangeError ERR_OUT_OF_RANGE for a key longer than MAX_KEY_BYTES encoded
   */
  encode(key: unknown): void {
    const b = this.bytes;
    if (typeof key === 'string') {
      if (key.length >= MAX_KEY_BYTES) throw tooLong(key);
      if ((key as unknown as { isWellFormed(): boolean }).isWellFormed()) {
        b[0] = TAG_UTF8;
        const { read, written } = encoder.encodeInto(key, b.subarray(1, MAX_KEY_BYTES));
        if (read !== key.length) throw tooLong(key);
        this.length = 1 + written;
      } else {
        if (1 + 2 * key.length > MAX_KEY_BYTES) throw tooLong(key);
        b[0] = TAG_UTF16;
        for (let i = 0; i < key.length; i++) {
          const u = key.charCodeAt(i);
          b[1 + 2 * i] = u & 0xff;
          b[2 + 2 * i] = u >>> 8;
        }
        this.length = 1 + 2 * key.length;
      }
    } else if (typeof key === 'number') {
      b[0] = TAG_NUMBER;
      this.f64[0] = key === 0 ? 0 : Number.isNaN(key) ? NaN : key;
      b.set(this.f64Bytes, 1);
      this.length = 9;
    } else {
      throw invalidArgType(
        `key must be a string or a number, got ${key === null ? 'null' : Array.isArray(key) ? 'an array' : typeof key}`,
      );
    }
    this.hash = hashBytes(b, this.length);
  }
}

function tooLong(key: string): RangeError {
  return outOfRange(
    `key must be at most ${MAX_KEY_BYTES - 1} bytes encoded (UTF-8), got a string of ${key.length} characters`,
  );
}

/** The key whose encoding is `bytes`. */
export function decodeKey(bytes: Uint8Array): string | number {
  switch (bytes[0]) {
    case TAG_NUMBER: {
      const f = new Float64Array(1);
      new Uint8Array(f.buffer).set(bytes.subarray(1, 9));
      return f[0];
    }
    case TAG_UTF16: {
      // Code unit by code unit: a TextDecoder would replace the lone surrogates.
      const units = new Uint16Array((bytes.length - 1) >>> 1);
      for (let i = 0; i < units.length; i++) units[i] = bytes[1 + 2 * i] | (bytes[2 + 2 * i] << 8);
      let s = '';
      for (let i = 0; i < units.length; i += 4096) s += String.fromCharCode(...units.subarray(i, i + 4096));
      return s;
    }
    default:
      return utf8.decode(bytes.subarray(1));
  }
}

/** 32-bit FNV-1a of bytes[0 .. n), with a final avalanche (murmur3's fmix32) for the table's low bits. */
export function hashBytes(bytes: Uint8Array, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
