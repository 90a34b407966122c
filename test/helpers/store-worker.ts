// Worker for test/store-workers.test.ts: attaches to a Store and hammers it.
import { parentPort, workerData } from 'node:worker_threads';
import { Store, StoreHandle } from '../../lib/tmem';
import { lock, unlock } from '../../lib/tmem/lock';

interface Job {
  handle: StoreHandle;
  id: number;
  ops: number;
  pp: number;
  ep: number;
  keyLocks: SharedArrayBuffer;
  nShared: number;
}
const job = workerData as Job;
const s = Store.attach(job.handle);
const kl = new Int32Array(job.keyLocks); // per shared key: [lock, version]

/** Payload: [u32 key][u32 version][u32 writer] then bytes derived from them; length varies. */
export function payload(buf: Uint8Array, key: number, version: number, writer: number): number {
  const len = 12 + ((key * 131 + version * 17) % 4000);
  const dv = new DataView(buf.buffer, buf.byteOffset);
  dv.setUint32(0, key, true);
  dv.setUint32(4, version, true);
  dv.setUint32(8, writer, true);
  for (let i = 12; i < len; i++) buf[i] = (key + version * 7 + i) & 255;
  return len;
}

function checkPayload(buf: Uint8Array, n: number): [number, number] {
  const dv = new DataView(buf.buffer, buf.byteOffset);
  const key = dv.getUint32(0, true),
    version = dv.getUint32(4, true);
  const want = 12 + ((key * 131 + version * 17) % 4000);
  if (n !== want) throw new Error(`torn page: length ${n} != ${want}`);
  for (let i = 12; i < n; i++)
    if (buf[i] !== ((key + version * 7 + i) & 255)) throw new Error(`torn page at byte ${i}`);
  return [key, version];
}

const src = new Uint8Array(4096),
  dst = new Uint8Array(4096);
let seed = job.id * 7919 + 1;
const rnd = (n: number) => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};
const own = new Map<number, number>(); // own persistent key -> version
let version = 0,
  ephHits = 0;
for (let k = 0; k < job.ops; k++) {
  if (job.id === 1 && k % 500 === 499) s.zpool(job.pp).compact(); // objects move under the readers
  const r = rnd(100);
  const key = rnd(64);
  if (r < 35) {
    // own persistent keys: object = worker id
    const len = payload(src, key, ++version, job.id);
    if (!s.put(job.pp, job.id, 0, 0, key, src, len)) throw new Error('persistent put refused');
    own.set(key, version);
  } else if (r < 50) {
    const n = s.get(job.pp, job.id, 0, 0, key, dst);
    const want = own.get(key);
    if (want === undefined) {
      if (n !== -1) throw new Error('hit on an absent own key');
    } else {
      const [kk, v] = checkPayload(dst, n);
      if (kk !== key || v !== want) throw new Error(`own key ${key}: version ${v} != ${want}`);
    }
  } else if (r < 55) {
    if (s.flushPage(job.pp, job.id, 0, 0, key) !== own.delete(key)) throw new Error('flushPage result');
  } else if (r < 70) {
    // shared keys (object 1000): writes serialised per key, version in payload
    const sk = key % job.nShared;
    lock(kl, sk * 2);
    const v = ++kl[sk * 2 + 1];
    const len = payload(src, sk, v, job.id);
    const ok = s.put(job.pp, 1000, 0, 0, sk, src, len);
    unlock(kl, sk * 2);
    if (!ok) throw new Error('shared put refused');
  } else if (r < 85) {
    const sk = key % job.nShared;
    const n = s.get(job.pp, 1000, 0, 0, sk, dst);
    if (n >= 0) {
      const [kk] = checkPayload(dst, n);
      if (kk !== sk) throw new Error('shared key mismatch');
    }
  } else if (r < 93) {
    // ephemeral: everyone on one object, hits must be intact
    const len = payload(src, key, ++version, job.id);
    s.put(job.ep, 7, 7, 7, key, src, len);
  } else {
    const n = s.get(job.ep, 7, 7, 7, key, dst);
    if (n >= 0) {
      checkPayload(dst, n);
      ephHits++;
    }
  }
}
parentPort!.postMessage({ own: [...own.entries()], ephHits });
