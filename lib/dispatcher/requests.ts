/**
 * Requests from the main thread (protocol.ts), drained synchronously from the
 * port with receiveMessageOnPort after the main thread wakes the reader.
 *
 *   batch.depth   > 0 while a batch of faults is being served (or evict() polls
 *                 for faults inside one): then only addRegion is handled at once
 *                 (a fault may be for the new region); evict/flush/close would read
 *                 new events into the buffer the outer batch is still walking, or
 *                 free a region under it. They wait in `deferred`.
 *   control.running   false once 'stop' was handled: the loop ends
 */
import * as P from './protocol';
import { port, reply } from './env';
import { byId, addRegion, releaseRegion } from './regions';
import { flushReleases } from './staging';
import { evictRegion } from './reclaim';
import { startFlush, replyAfterWrites } from './files';
import { receiveMessageOnPort } from 'node:worker_threads';
import { setLimits } from './budget';
import { setMap } from './remote';

export const batch = { depth: 0 };
export const control = { running: true };
const deferred: P.Request[] = [];

/** Handles one request; false for 'stop'. */
function handle(req: P.Request): boolean {
  try {
    switch (req.op) {
      case 'addRegion':
        addRegion(req.region);
        reply(req.reqId, true);
        return true;
      case 'evict': {
        const r = byId.get(req.id);
        const n = r ? evictRegion(r) : 0;
        // A writable mapping's evicted dirty pages are on the writer thread: reply once they are written.
        if (r) replyAfterWrites(r, req.reqId, n);
        else reply(req.reqId, true, n);
        return true;
      }
      case 'flush': {
        const r = byId.get(req.id);
        if (r && r.isFile && r.spec.writable)
          startFlush(r, req.reqId, false); // replies when written
        else reply(req.reqId, true, 0);
        return true;
      }
      case 'closeRegion': {
        const r = byId.get(req.id);
        if (r && r.isFile && r.spec.writable) {
          startFlush(r, req.reqId, true); // replies once the file has every dirty page
          return true;
        }
        if (r) releaseRegion(r);
        reply(req.reqId, true);
        return true;
      }
      case 'setLimits':
        setLimits(req.limits); // a lower limit: eviction (or the shrinker) runs from the next loop turn
        reply(req.reqId, true);
        return true;
      case 'remoteMap':
        setMap(req);
        reply(req.reqId, true);
        return true;
      case 'stop':
        flushReleases();
        reply(req.reqId, true);
        return false;
    }
  } catch (e) {
    reply(req.reqId, false, undefined, e instanceof Error ? e.message : String(e));
  }
  return true;
}

/** Takes every request waiting on the port (inside a batch, all but addRegion are deferred). */
export function drainRequests(): void {
  for (;;) {
    const m = receiveMessageOnPort(port);
    if (!m) break;
    const req = m.message as P.Request;
    if (batch.depth > 0 && req.op !== 'addRegion') deferred.push(req);
    else if (!handle(req)) control.running = false;
  }
  if (batch.depth === 0) runDeferred();
}

/** Handles the requests deferred during a batch. */
export function runDeferred(): void {
  while (deferred.length > 0 && batch.depth === 0) {
    if (!handle(deferred.shift()!)) control.running = false;
  }
}

export function hasDeferred(): boolean {
  return deferred.length > 0;
}
