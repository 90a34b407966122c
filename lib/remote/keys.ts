/**
 * The keys the remote tier writes (short, and safe for Redis Cluster):
 *
 *   <prefix>F{<swap id>:<region>:<page >> 6>}<page & 63>   a page of a region (frontswap);
 *                               no TTL: a full server refuses it rather than dropping it
 *   <prefix>C{<swap id>:<region>:<page >> 6>}<page & 63>   a clean page of a mapped file
 *                               (cleancache: ephemeral), SET with PX ephemeralTtl: the
 *                               server's volatile-lru drops these first, and a miss reads the file
 *   <prefix>L{<swap id>}        the swap's lease (PX leaseTtl, renewed); once it is gone
 *                               the swap's page keys may be deleted (gc.ts)
 *
 * The hash tag {...} is the same for the 64 pages of a chunk: a chunk lives in one
 * cluster slot, so a batch of neighbouring pages is one node and one round trip.
 * A page key's value is [generation u32 LE][the page's pool object]; the swap
 * keeps, per page, the generation and a CRC-32 of the whole value, so a stale,
 * foreign or corrupted value is never taken for the page.
 */
import { randomBytes } from 'node:crypto';

/** Pages per chunk (one hash tag). */
export const CHUNK = 64;

/** A new swap id: 16 hex digits. */
export function newSwapId(): string {
  return randomBytes(8).toString('hex');
}

/** The hash tag of a page's chunk (what the cluster slot is computed from). */
export function chunkTag(swapId: string, region: number, page: number): string {
  return `${swapId}:${region}:${Math.floor(page / CHUNK)}`;
}

export function pageKey(prefix: string, swapId: string, region: number, page: number): string {
  return `${prefix}F{${chunkTag(swapId, region, page)}}${page % CHUNK}`;
}

export function cleanKey(prefix: string, swapId: string, region: number, page: number): string {
  return `${prefix}C{${chunkTag(swapId, region, page)}}${page % CHUNK}`;
}

export function leaseKey(prefix: string, swapId: string): string {
  return `${prefix}L{${swapId}}`;
}

/** SCAN MATCH pattern of every page key, persistent or clean (of every swap), under `prefix`. */
export function allPagesPattern(prefix: string): string {
  return `${prefix}[FC]{*`;
}

/** SCAN MATCH pattern of one swap's page keys (both kinds). */
export function swapPagesPattern(prefix: string, swapId: string): string {
  return `${prefix}[FC]{${swapId}:*`;
}

/** The swap id of a page key (either kind) under `prefix`, or undefined. */
export function swapIdOf(prefix: string, key: string): string | undefined {
  if (!key.startsWith(`${prefix}F{`) && !key.startsWith(`${prefix}C{`)) return undefined;
  const rest = key.slice(prefix.length + 2);
  const colon = rest.indexOf(':');
  return colon > 0 ? rest.slice(0, colon) : undefined;
}
