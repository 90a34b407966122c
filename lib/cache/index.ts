/**
 * swap.cache(): a Map-like store of JS values kept serialized in tmem regions. See
 * lib/cache/cache.ts (the store), allocator.ts (space in the regions), index-table.ts (the
 * index), keys.ts (keys as bytes), serializers.ts (values as bytes), options.ts.
 */
export { Cache, type CacheKey, type CacheStats } from './cache';
export { type CacheOptions, CACHE_KEYS } from './options';
export { type CacheSerializer } from './serializers';
