/**
 * ioredis clients for what the main thread does on the remote tier (the lease,
 * the cluster slot map, clean-up): a well-kept client, with its own reconnection
 * turned off and fail-fast settings (REMOTE.md: ioredis's defaults queue requests
 * while the server is down and retry them 20 times, which hides a restart).
 *
 * ioredis is an optional dependency, loaded only when `remote` is configured; its
 * sockets are unref'd so that a program that forgets swap.close() still exits.
 */
import type { Cluster, Redis } from 'ioredis';
import type { CheckedRemote, RemoteNode } from './options';

export type RedisClient = Redis | Cluster;

/** Requests of the main thread (lease, scan, unlink) fail after this long (ms). */
const COMMAND_TIMEOUT_MS = 5000;

function loadIoredis(): typeof import('ioredis') {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('ioredis') as typeof import('ioredis');
  } catch (e) {
    const err = new Error(
      `the remote tier needs the 'ioredis' package (an optional dependency of tmem), which could not be loaded: ${(e as Error).message}`,
    ) as Error & { code: string };
    err.code = 'ERR_TMEM_NO_REDIS_CLIENT';
    throw err;
  }
}

function nodeOptions(n: RemoteNode): { username?: string; password?: string } {
  return { ...(n.user ? { username: n.user } : {}), ...(n.password !== undefined ? { password: n.password } : {}) };
}

/** Unrefs the client's sockets (each node's, for a cluster). */
export function unrefClient(c: RedisClient): void {
  const all: Redis[] = 'nodes' in c && typeof c.nodes === 'function' && c.isCluster ? c.nodes() : [c as Redis];
  for (const r of all) (r.stream as { unref?: () => void } | undefined)?.unref?.();
}

/** Connects a client to the server or cluster of `remote`; rejects (its error's code: ECONNREFUSED ...) if it cannot. */
export async function connectClient(remote: Pick<CheckedRemote, 'cluster' | 'seeds'>): Promise<RedisClient> {
  const { Redis, Cluster } = loadIoredis();
  const failFast = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    autoResendUnfulfilledCommands: false,
    lazyConnect: true,
    connectTimeout: COMMAND_TIMEOUT_MS,
  };
  let c: RedisClient;
  if (remote.cluster) {
    c = new Cluster(
      remote.seeds.map((s) => ({ host: s.host, port: s.port })),
      {
        lazyConnect: true,
        enableOfflineQueue: false,
        clusterRetryStrategy: () => null,
        slotsRefreshTimeout: COMMAND_TIMEOUT_MS,
        redisOptions: { ...failFast, ...nodeOptions(remote.seeds[0]) },
      },
    );
  } else {
    const s = remote.seeds[0];
    c = new Redis({ host: s.host, port: s.port, ...nodeOptions(s), ...failFast, retryStrategy: () => null });
  }
  let lastError: unknown;
  c.on('error', (e) => {
    lastError = e; // surfaced by the requests that fail (or connect()); an 'error' without a listener would throw
  });
  c.on('connect', () => unrefClient(c));
  try {
    await c.connect();
  } catch (e) {
    c.disconnect();
    throw lastError ?? e; // the socket's error (ECONNREFUSED ...) rather than "Connection is closed."
  }
  unrefClient(c);
  return c;
}

/** The cluster's masters and the node index of each slot (0xffff: none), from the client's slot map. */
export function slotMap(c: Cluster): { nodes: RemoteNode[]; slots: Uint16Array } {
  const nodes: RemoteNode[] = [];
  const index = new Map<string, number>();
  const slots = new Uint16Array(16384).fill(0xffff);
  for (let s = 0; s < 16384; s++) {
    const key = c.slots[s]?.[0];
    if (!key) continue;
    let i = index.get(key);
    if (i === undefined) {
      const at = key.lastIndexOf(':');
      i = nodes.length;
      nodes.push({ host: key.slice(0, at), port: Number(key.slice(at + 1)) });
      index.set(key, i);
    }
    slots[s] = i;
  }
  return { nodes, slots };
}

/** The servers to scan: the masters of a cluster, or the one server. */
export function masters(c: RedisClient): Redis[] {
  return c.isCluster ? (c as Cluster).nodes('master') : [c as Redis];
}
