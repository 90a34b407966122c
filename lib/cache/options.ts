/**
 * swap.cache()'s options, checked before anything is created (the same rules and error codes
 * as open()'s: lib/options.ts). Only `undefined` means "the default".
 */
import { invalidArgType, invalidArgValue } from '../errors';
import { checkObject, describe, numberOpt, sizeOpt } from '../options';
import { SERIALIZERS, type CacheSerializer, type SerializerName } from './serializers';

/** Options of {@link Swap.cache}. Sizes are bytes or strings like '64MiB'. */
export interface CacheOptions {
  /**
   * How values become bytes: 'v8' (default: v8.serialize, the structured clone algorithm),
   * 'json', 'raw' (values are Uint8Array/Buffer, read back as Buffer), 'msgpackr' (needs the
   * msgpackr package) or an object { serialize(value): Uint8Array, deserialize(bytes) }.
   */
  serializer?: SerializerName | CacheSerializer;
  /** At most this many entries; past it the least recently used go (default: no limit). */
  maxEntries?: number;
  /** At most this many bytes of keys and values (serialized); past it the least recently used go (default: no limit). */
  maxBytes?: number | string;
  /** Bytes of each region the cache adds as it grows (default '64MiB', 64KiB..1GiB). Larger values get a region of their own. */
  chunkSize?: number | string;
}

/** The accepted keys of swap.cache()'s options. */
export const CACHE_KEYS = ['serializer', 'maxEntries', 'maxBytes', 'chunkSize'] as const;

/** Upper bounds of the cache's options. */
export const CACHE_LIMITS = {
  /** Entries are slots numbered with 32-bit integers. */
  maxEntries: 2 ** 30,
  chunkSize: 2 ** 30,
} as const;

/** Checked options with their defaults. */
export interface CheckedCacheOptions {
  serializer: SerializerName | CacheSerializer;
  maxEntries: number; // Infinity: no limit
  maxBytes: number; // Infinity: no limit
  chunkBytes: number;
}

/**
 * Checks swap.cache()'s options.
 * @throws TypeError / RangeError with a code (ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE,
 *   ERR_OUT_OF_RANGE) naming the option
 */
export function checkCacheOptions(options: unknown): CheckedCacheOptions {
  const o = checkObject(
    options === undefined ? {} : options,
    'options',
    CACHE_KEYS,
    '{ serializer, maxEntries, maxBytes, chunkSize }',
  );
  let serializer: SerializerName | CacheSerializer = 'v8';
  const s = o.serializer;
  if (s !== undefined) {
    if (typeof s === 'string') {
      if (!(SERIALIZERS as readonly string[]).includes(s))
        throw invalidArgValue(
          `serializer must be ${SERIALIZERS.map((n) => `'${n}'`).join(', ')} or { serialize, deserialize }, got '${s}'`,
          'range',
        );
      serializer = s as SerializerName;
    } else if (
      s !== null &&
      typeof s === 'object' &&
      typeof (s as CacheSerializer).serialize === 'function' &&
      typeof (s as CacheSerializer).deserialize === 'function'
    ) {
      serializer = s as CacheSerializer;
    } else {
      throw invalidArgType(
        `serializer must be ${SERIALIZERS.map((n) => `'${n}'`).join(', ')} or an object with serialize and deserialize functions, got ${describe(s)}`,
      );
    }
  }
  const maxEntries = numberOpt(
    o.maxEntries,
    'maxEntries',
    Infinity,
    `a whole number from 1 to ${CACHE_LIMITS.maxEntries}`,
    (n) => Number.isInteger(n) && n >= 1 && n <= CACHE_LIMITS.maxEntries,
  );
  const maxBytes =
    o.maxBytes === undefined
      ? Infinity
      : sizeOpt(o.maxBytes, 'maxBytes', 0, 1, '1 byte', Number.MAX_SAFE_INTEGER, 'Number.MAX_SAFE_INTEGER');
  const chunk = sizeOpt(o.chunkSize, 'chunkSize', '64MiB', 16 * 4096, '64KiB', CACHE_LIMITS.chunkSize, '1GiB');
  return { serializer, maxEntries, maxBytes, chunkBytes: Math.ceil(chunk / 4096) * 4096 };
}
