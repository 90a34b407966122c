/**
 * The main thread's part of a swap's remote tier (the dispatcher's part is
 * lib/dispatcher/remote.ts over lib/remote/nodes.ts):
 *
 *   open()     connect (ioredis), take the lease <prefix>L{id} (PX leaseTtl), read
 *              the cluster's slot map, start the clean-up of dead swaps' keys (gc.ts)
 *   every leaseTtl/3 (an unref'd timer)
 *              renew the lease; reconnect if the connection was lost; in a cluster,
 *              read the slot map again when the dispatcher saw MOVED/ASK (onMap)
 *   close()    delete this swap's keys and its lease, disconnect
 *
 * A lease that could not be renewed for a whole leaseTtl lapses, and another process's
 * gc may delete this swap's keys: its faults then miss and read the swap file (the
 * second copy of every page sent remote), so nothing is lost.
 */
import type { Cluster } from 'ioredis';
import { connectClient, slotMap, unrefClient, type RedisClient } from './client';
import { collectGarbage, deleteSwapKeys, type GcResult } from './gc';
import { leaseKey, newSwapId } from './keys';
import type { CheckedRemote } from './options';
import type { RemoteConfig } from './nodes';

export class RemoteSession {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The background clean-up started by open() (tests await it). */
  gc: Promise<GcResult | undefined> = Promise.resolve(undefined);
  /** Renewals that failed in a row. */
  renewFailures = 0;

  private constructor(
    readonly remote: CheckedRemote,
    private client: RedisClient,
    readonly swapId: string,
  ) {}

  static async open(remote: CheckedRemote): Promise<RemoteSession> {
    const client = await connectClient(remote);
    const s = new RemoteSession(remote, client, newSwapId());
    try {
      await client.set(leaseKey(remote.keyPrefix, s.swapId), String(process.pid), 'PX', remote.leaseTtlMs);
    } catch (e) {
      client.disconnect();
      throw e;
    }
    s.timer = setInterval(() => void s.renew(), Math.max(250, Math.floor(remote.leaseTtlMs / 3)));
    s.timer.unref();
    s.gc = collectGarbage(client, remote.keyPrefix, s.swapId).catch(() => undefined);
    return s;
  }

  /** What the dispatcher needs to reach the servers itself. */
  dispatcherConfig(): RemoteConfig {
    const base = {
      cluster: this.remote.cluster,
      keyPrefix: this.remote.keyPrefix,
      swapId: this.swapId,
      timeoutMs: this.remote.timeoutMs,
      ephemeralTtlMs: this.remote.ephemeralTtlMs,
      maxBytes: this.remote.maxBytes,
      repatriate: this.remote.repatriate,
    };
    if (!this.remote.cluster) return { ...base, nodes: [this.remote.seeds[0]], slots: null };
    const { nodes, slots } = slotMap(this.client as Cluster);
    const auth = this.remote.seeds[0];
    for (const n of nodes) {
      if (auth.password !== undefined) n.password = auth.password;
      if (auth.user) n.user = auth.user;
    }
    return { ...base, nodes, slots };
  }

  /** Asked at each renewal (cluster): true when the dispatcher saw MOVED/ASK since the last one. */
  onMap: (() => boolean) | undefined;
  /** Hands a slot map read again to the dispatcher. */
  sendMap: ((m: Pick<RemoteConfig, 'nodes' | 'slots'>) => void) | undefined;

  private async renew(): Promise<void> {
    if (this.closed) return;
    try {
      const st = this.client.status;
      if (st === 'end' || st === 'close') {
        await this.client.connect();
        unrefClient(this.client);
      }
      await this.client.set(
        leaseKey(this.remote.keyPrefix, this.swapId),
        String(process.pid),
        'PX',
        this.remote.leaseTtlMs,
      );
      this.renewFailures = 0;
      if (this.remote.cluster && this.onMap?.()) {
        await new Promise<void>((resolve) => (this.client as Cluster).refreshSlotsCache(() => resolve()));
        this.sendMap?.(this.currentMap());
      }
    } catch {
      this.renewFailures++;
    }
  }

  /** The slot map again (after refreshSlotsCache), for the dispatcher. */
  currentMap(): Pick<RemoteConfig, 'nodes' | 'slots'> {
    return this.dispatcherConfig();
  }

  /** Deletes this swap's keys and lease, and disconnects. Never rejects: a dead server leaves keys to its gc. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    try {
      await this.gc;
      await deleteSwapKeys(this.client, this.remote.keyPrefix, this.swapId);
    } catch {
      /* the server is gone or hung: the lease lapses and another open's gc deletes the keys */
    }
    this.client.disconnect();
  }
}
