/**
 * The dispatcher's side of the remote tier: one native blocking connection
 * (native/resp_conn.h) per server, owned by the dispatcher thread, so that a
 * fault on a remote page is served with no event loop in between.
 *
 *   nodes[i]     host/port of server i (one server, or the cluster's masters)
 *   slots        cluster only: slot (CRC16 of the hash tag, 16384) -> node index,
 *                as the main thread read it from the cluster (lib/remote/session.ts)
 *   per node     conn (write-back, prefetch, everything but a fault's own GETDEL),
 *                fault (a second connection: a fault's GETDEL, sent with start() and
 *                collected with poll() while the dispatcher serves other faults),
 *                runId (INFO server's run_id at the first connection),
 *                downUntil (ms: after a failure the node is left alone for a second, and
 *                twice as long after each failure in a row, up to 30 s: a hung server that
 *                accepts connections costs a handshake's deadline per try), failures in a row
 *
 * A new connection first reads `run_id`: if it changed, the server restarted
 * and lost every key (no persistence), and `onLost(node)` lets the caller forget
 * that node's pages. MOVED/ASK replies (the slot map changed) count in `moved`;
 * the main thread then reads the map again and sends it (setMap).
 */
import { native, REPLY_BULK, REPLY_ERROR, type RemoteConn } from '../native';
import { RespEncoder } from './resp';
import type { RemoteNode } from './options';
import { slotOfTag } from './slot';

/** What the main thread hands the dispatcher (DispatcherOptions.remote). */
export interface RemoteConfig {
  cluster: boolean;
  nodes: RemoteNode[];
  /** Cluster: node index per slot (16384 entries), 0xffff where no node serves the slot. */
  slots: Uint16Array | null;
  keyPrefix: string;
  swapId: string;
  timeoutMs: number;
  /** TTL (ms) of a mapped file's clean page (cleancache's ephemeral pages). */
  ephemeralTtlMs: number;
  /** Bytes of values the swap may keep remote (Infinity: no limit). */
  maxBytes: number;
  /** Bring persistent pages back into the pool when it has room. */
  repatriate: boolean;
}

const ECONNREFUSED = -111;
/** Largest value a page key holds: [generation][object of at most a page + its header]. */
const PAGE_VALUE_MAX = 4096 + 64 + 4;
const EHOSTUNREACH = -113;
/** A node that failed is not asked again for this long (ms). */
export const NODE_BACKOFF_MS = 1000;
/** The longest back-off of a node that keeps failing (ms). */
export const NODE_BACKOFF_MAX_MS = 30000;

interface Node {
  spec: RemoteNode;
  conn: RemoteConn;
  fault: RemoteConn;
  runId: string;
  downUntil: number;
  /** Failures in a row (0 after any request that succeeds). */
  streak: number;
}

export class RemoteNodes {
  private nodes: Node[] = [];
  private slots: Uint16Array | null;
  readonly out = new Uint8Array(1 << 20);
  readonly info = new Int32Array(3 * 2048);
  /** The fault connections' replies (one request in flight at a time, for the whole swap). */
  readonly fout = new Uint8Array(PAGE_VALUE_MAX + 64);
  readonly finfo = new Int32Array(3);
  private readonly hs = new RespEncoder();
  /** Requests that failed (refused, reset, deadline, garbage), MOVED/ASK replies. */
  failures = 0;
  moved = 0;
  lastError = 0;
  /** Called when a node's run_id changed: it restarted and lost our keys. */
  onLost: (node: number) => void = () => {};

  constructor(readonly cfg: RemoteConfig) {
    this.slots = cfg.slots;
    this.setMap(cfg.nodes, cfg.slots);
  }

  /** A new node list / slot map (cluster): connections to nodes kept are reused. */
  setMap(nodes: RemoteNode[], slots: Uint16Array | null): void {
    const old = this.nodes;
    this.nodes = nodes.map((spec) => {
      const same = old.find((n) => n.spec.host === spec.host && n.spec.port === spec.port);
      return (
        same ?? {
          spec,
          conn: new native.RemoteConn(spec.host, spec.port),
          fault: new native.RemoteConn(spec.host, spec.port),
          runId: '',
          downUntil: 0,
          streak: 0,
        }
      );
    });
    for (const n of old) {
      if (this.nodes.includes(n)) continue;
      n.conn.close();
      n.fault.close();
    }
    this.slots = slots;
  }

  get count(): number {
    return this.nodes.length;
  }

  /** The node serving a hash tag, or -1 (a cluster slot with no node). */
  nodeOfTag(tag: string): number {
    if (!this.slots) return 0;
    const n = this.slots[slotOfTag(tag)];
    return n === 0xffff ? -1 : n;
  }

  /** The node is usable now (not backing off after a failure). */
  usable(node: number): boolean {
    return node >= 0 && node < this.nodes.length && performance.now() >= this.nodes[node].downUntil;
  }

  /** Sends enc's pipeline to `node`: the number of replies (enc.commands), or -errno. */
  run(node: number, enc: RespEncoder, timeoutMs = this.cfg.timeoutMs): number {
    // The fault connection too, now: a fault should not wait for a connection and its
    // handshake (on a hung server, for the whole deadline, with the dispatcher stopped).
    const c = this.ready(node, 'conn', timeoutMs);
    if (c < 0) return c;
    const f = this.ready(node, 'fault', timeoutMs);
    if (f < 0) return f;
    const n = this.nodes[node];
    const r = n.conn.exchange(enc.buf, enc.length, enc.commands, timeoutMs, this.out, this.info);
    if (r < 0) return this.down(n, r);
    n.streak = 0;
    for (let i = 0; i < r; i++) {
      if (this.info[3 * i] === REPLY_ERROR) {
        const t = this.text(i);
        if (t.startsWith('MOVED') || t.startsWith('ASK')) this.moved++;
      }
    }
    return r;
  }

  /**
   * Sends enc's one command to `node` on its fault connection: 0, then poll() until it
   * answers; or -errno (nothing is due then).
   */
  start(node: number, enc: RespEncoder, timeoutMs = this.cfg.timeoutMs): number {
    const c = this.ready(node, 'fault', timeoutMs);
    if (c < 0) return c;
    const n = this.nodes[node];
    const r = n.fault.send(enc.buf, enc.length, 1, timeoutMs);
    return r < 0 ? this.down(n, r) : 0;
  }

  /** The node's connection `which`, connected (handshake done) if it was not: 0, or -errno (then down). */
  private ready(node: number, which: 'conn' | 'fault', timeoutMs: number): number {
    if (node < 0 || node >= this.nodes.length) return EHOSTUNREACH;
    const n = this.nodes[node];
    if (performance.now() < n.downUntil) return ECONNREFUSED;
    if (n[which].connected) return 0;
    const c = this.connect(node, n[which], timeoutMs);
    return c < 0 ? this.down(n, c) : 0;
  }

  /**
   * The reply to start()'s command: 1 (fkind(0), fbytes(0)), 0 not yet (never with `wait`,
   * which blocks until it or the deadline), or -errno (past the deadline, a failure).
   */
  poll(node: number, wait: boolean): number {
    const n = this.nodes[node];
    if (!n || !n.fault.busy) return -22; // EINVAL: nothing was started there
    const r = n.fault.receive(this.fout, this.finfo, wait);
    if (r < 0) return this.down(n, r);
    if (r > 0) n.streak = 0;
    if (r > 0 && this.finfo[0] === REPLY_ERROR) {
      const t = Buffer.from(this.fout.buffer, this.finfo[1], this.finfo[2]).toString('latin1');
      if (t.startsWith('MOVED') || t.startsWith('ASK')) this.moved++;
    }
    return r;
  }

  fkind(): number {
    return this.finfo[0];
  }

  fbytes(): Uint8Array {
    return this.fout.subarray(this.finfo[1], this.finfo[1] + this.finfo[2]);
  }

  private down(n: Node, err: number): number {
    n.conn.close();
    n.fault.close();
    n.downUntil = performance.now() + Math.min(NODE_BACKOFF_MAX_MS, NODE_BACKOFF_MS * 2 ** Math.min(n.streak, 5));
    n.streak++;
    this.failures++;
    this.lastError = err;
    return err;
  }

  /** Connects and checks run_id (AUTH first when the URL had a password). */
  private connect(node: number, conn: RemoteConn, timeoutMs: number): number {
    const n = this.nodes[node];
    const c = conn.connect(timeoutMs);
    if (c < 0) return c;
    const hs = this.hs;
    hs.reset();
    if (n.spec.password !== undefined)
      hs.command(n.spec.user ? ['AUTH', n.spec.user, n.spec.password] : ['AUTH', n.spec.password]);
    hs.command(['INFO', 'server']);
    const r = conn.exchange(hs.buf, hs.length, hs.commands, timeoutMs, this.out, this.info);
    if (r < 0) return r;
    const last = r - 1;
    if (this.info[3 * last] !== REPLY_BULK || (r === 2 && this.info[0] === REPLY_ERROR)) return -13; // EACCES
    const m = /run_id:([0-9a-f]+)/.exec(this.text(last));
    const runId = m ? m[1] : '';
    if (n.runId !== '' && runId !== n.runId) {
      n.runId = runId;
      this.onLost(node);
    }
    n.runId = runId;
    return 0;
  }

  kind(i: number): number {
    return this.info[3 * i];
  }

  /** The bytes of reply i (a view into `out`, valid until the next run). */
  bytes(i: number): Uint8Array {
    return this.out.subarray(this.info[3 * i + 1], this.info[3 * i + 1] + this.info[3 * i + 2]);
  }

  text(i: number): string {
    return Buffer.from(this.out.buffer, this.out.byteOffset + this.info[3 * i + 1], this.info[3 * i + 2]).toString(
      'latin1',
    );
  }

  close(): void {
    for (const n of this.nodes) {
      n.conn.close();
      n.fault.close();
    }
  }
}
