/**
 * The `remote` option of open(): checked here, before anything connects.
 *
 *   remote: { url }                 one Redis server, 'redis://[user:password@]host[:port]'
 *   remote: { cluster: [url, ...] } a Redis Cluster, from one or more of its nodes (the slot
 *                                   map is read from the cluster, never written down here)
 *   keyPrefix  'tmem:'    every key tmem writes starts with it
 *   timeout    50 (ms)    the deadline of each request (a fault, a batch); a server that
 *                         misses it is left alone for a second (the swap file serves meanwhile)
 *   leaseTtl   60000 (ms) the lease of this swap's keys, renewed every third of it; once it
 *                         lapses (the process died) any tmem may delete them (`tmem remote gc`)
 *   ephemeralTtl 600000 (ms) the TTL of a mapped file's clean page sent remote (cleancache's
 *                         ephemeral pages: the server's volatile-lru drops them first)
 *   maxBytes   unlimited  how many bytes of values this swap may keep on the servers
 *   repatriate true       bring remote pages back into the pool when it has room (RAMster)
 */
import { invalidArgType, invalidArgValue, outOfRange } from '../errors';
import { parseSize } from '../size';

/** A server's address as the dispatcher's native connections need it. */
export interface RemoteNode {
  host: string;
  port: number;
  user?: string;
  password?: string;
}

export interface CheckedRemote {
  cluster: boolean;
  /** The server (one) or the cluster's seed nodes. */
  seeds: RemoteNode[];
  keyPrefix: string;
  timeoutMs: number;
  leaseTtlMs: number;
  ephemeralTtlMs: number;
  /** Bytes of values this swap may keep remote (Infinity: no limit). */
  maxBytes: number;
  repatriate: boolean;
}

const REMOTE_KEYS = [
  'url',
  'cluster',
  'keyPrefix',
  'timeout',
  'leaseTtl',
  'ephemeralTtl',
  'maxBytes',
  'repatriate',
] as const;

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${v}`;
  return typeof v;
}

/** Parses 'redis://[user:password@]host[:port]' (port 6379 by default). */
export function parseRedisUrl(v: unknown, name: string): RemoteNode {
  if (typeof v !== 'string')
    throw invalidArgType(`${name} must be a 'redis://host:port' URL string, got ${describe(v)}`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw invalidArgValue(`${name} must be a 'redis://host:port' URL, got '${v}'`);
  }
  if (u.protocol === 'rediss:')
    throw invalidArgValue(`${name}: TLS (rediss://) is not supported by the remote tier; got '${v}'`);
  if (u.protocol !== 'redis:') throw invalidArgValue(`${name} must be a redis:// URL, got '${v}'`);
  if (!u.hostname) throw invalidArgValue(`${name} has no host: '${v}'`);
  if (u.pathname && u.pathname !== '/' && u.pathname !== '/0')
    throw invalidArgValue(`${name}: only database 0 is supported (Redis Cluster has no other), got '${u.pathname}'`);
  if (u.search || u.hash) throw invalidArgValue(`${name}: query and fragment are not accepted, got '${v}'`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const node: RemoteNode = { host, port };
  if (u.password) node.password = decodeURIComponent(u.password);
  if (u.username) node.user = decodeURIComponent(u.username);
  if (node.user && !node.password) throw invalidArgValue(`${name}: a user name needs a password, got '${v}'`);
  return node;
}

function intOpt(v: unknown, name: string, dflt: number, lo: number, hi: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number') throw invalidArgType(`${name} must be a number of milliseconds, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < lo || v > hi)
    throw outOfRange(`${name} must be a whole number of milliseconds from ${lo} to ${hi}, got ${v}`);
  return v;
}

/** Checks open()'s `remote` option. */
export function checkRemoteOptions(v: unknown): CheckedRemote {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw invalidArgType(`remote must be an object { url } or { cluster: [urls] }, got ${describe(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!(REMOTE_KEYS as readonly string[]).includes(k))
      throw invalidArgValue(`unknown key in remote: '${k}'; accepted: ${REMOTE_KEYS.join(', ')}`);
  if ((o.url === undefined) === (o.cluster === undefined))
    throw invalidArgValue('remote needs exactly one of url (one server) and cluster (a list of cluster nodes)');
  let seeds: RemoteNode[];
  if (o.url !== undefined) seeds = [parseRedisUrl(o.url, 'remote.url')];
  else {
    if (!Array.isArray(o.cluster) || o.cluster.length === 0)
      throw invalidArgType(`remote.cluster must be a non-empty array of redis:// URLs, got ${describe(o.cluster)}`);
    seeds = (o.cluster as unknown[]).map((u, i) => parseRedisUrl(u, `remote.cluster[${i}]`));
  }
  let keyPrefix = 'tmem:';
  if (o.keyPrefix !== undefined) {
    if (typeof o.keyPrefix !== 'string')
      throw invalidArgType(`remote.keyPrefix must be a string, got ${describe(o.keyPrefix)}`);
    // eslint-disable-next-line no-control-regex
    if (o.keyPrefix.length > 64 || /[{}\s\x00-\x1f*?[\]\\]/.test(o.keyPrefix))
      throw invalidArgValue(
        `remote.keyPrefix must be at most 64 characters without braces, glob characters or spaces, got '${o.keyPrefix}'`,
      );
    keyPrefix = o.keyPrefix;
  }
  const timeoutMs = intOpt(o.timeout, 'remote.timeout', 50, 1, 60000);
  const leaseTtlMs = intOpt(o.leaseTtl, 'remote.leaseTtl', 60000, 1000, 86400000);
  const ephemeralTtlMs = intOpt(o.ephemeralTtl, 'remote.ephemeralTtl', 600000, 1000, 7 * 86400000);
  let maxBytes = Infinity;
  if (o.maxBytes !== undefined) {
    maxBytes = parseSize(o.maxBytes, 'remote.maxBytes');
    if (maxBytes < 65536) throw outOfRange(`remote.maxBytes must be at least 64KiB, got ${maxBytes} bytes`);
  }
  if (o.repatriate !== undefined && typeof o.repatriate !== 'boolean')
    throw invalidArgType(`remote.repatriate must be a boolean, got ${describe(o.repatriate)}`);
  const repatriate = o.repatriate !== false;
  return {
    cluster: o.cluster !== undefined,
    seeds,
    keyPrefix,
    timeoutMs,
    leaseTtlMs,
    ephemeralTtlMs,
    maxBytes,
    repatriate,
  };
}
