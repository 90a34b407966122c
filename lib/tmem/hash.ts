/*
 * Hashing and key splitting for the tmem index. Everything here works on 32-bit integers so
 * that the hot path allocates nothing.
 *
 * An object id is three 64-bit words; each word is kept as two Int32 halves (lo, hi). A word
 * given as a number must be an integer from 0 to 2^53 - 1; as a bigint, from 0 to 2^64 - 1.
 */

/**
 * murmur3 finaliser, returning the top 30 bits so that the result is a V8 small integer (a
 * 31/32-bit value would be boxed in a heap number when passed between functions).
 */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 2;
}

/** Bits in a hash from this module. */
export const HASH_BITS = 30;

/** 30-bit hash of (pool, object id halves). */
export function oidHash(
  pool: number,
  lo0: number,
  hi0: number,
  lo1: number,
  hi1: number,
  lo2: number,
  hi2: number,
): number {
  let h = mix32(Math.imul(pool + 1, 0x9e3779b1) ^ lo0);
  h = mix32(h ^ hi0 ^ 0x27d4eb2f);
  h = mix32(h ^ lo1);
  h = mix32(h ^ hi1 ^ 0x165667b1);
  h = mix32(h ^ lo2);
  return mix32(h ^ hi2 ^ 0x61c88647);
}

/** Largest object id word accepted as a number. */
export const MAX_OID_NUMBER = Number.MAX_SAFE_INTEGER;

/** True when `w` is a valid object id word given as a number. */
export function isOidNumber(w: unknown): w is number {
  return typeof w === 'number' && w >= 0 && w <= MAX_OID_NUMBER && Math.floor(w) === w;
}

/** Low 32 bits of a numeric object id word, as an Int32. */
export function lo32(w: number): number {
  return w | 0;
}

/** High 32 bits (of 53) of a numeric object id word, as an Int32. */
export function hi32(w: number): number {
  return (w / 4294967296) | 0;
}

/** Low 32 bits of a bigint word, as an Int32. */
export function bigLo32(w: bigint): number {
  return Number(BigInt.asIntN(32, w));
}

/** High 32 bits of a bigint word, as an Int32. */
export function bigHi32(w: bigint): number {
  return Number(BigInt.asIntN(32, w >> 32n));
}
