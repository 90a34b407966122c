/**
 * The ArrayBuffers tmem hands out over region memory (region.buffer, attachRegion()): how
 * large they can be on this Node.js, and keeping them out of postMessage transfer lists.
 *
 * Size: such a buffer is an external ArrayBuffer (napi_create_external_arraybuffer). On
 * Node.js 20 that call goes through node::Buffer::New, which refuses more than
 * buffer.constants.MAX_LENGTH bytes (2^32, 4 GiB); Node.js 22 and later allow 2^53-1. tmem
 * checks the size before it maps anything, so a region too large for this Node.js is a
 * RangeError (ERR_OUT_OF_RANGE), never a half-created region.
 *
 * Transfer: the memory belongs to the region; transferring the buffer cannot move it to
 * another thread. Node.js 20 silently copies it instead (the receiver's writes never reach
 * the region, and the copy faults in every page); Node.js 22+ throws a DataCloneError that
 * does not say what to do. tmem wraps MessagePort.prototype.postMessage (once, on the first
 * region buffer handed out in a thread) to throw ERR_TMEM_UNTRANSFERABLE naming share() and
 * attachRegion() when a region buffer is in the transfer list; every other call goes through
 * unchanged. Worker.postMessage and parentPort.postMessage go through that method.
 */
import { constants as bufferConstants } from 'node:buffer';
import { MessagePort } from 'node:worker_threads';
import { outOfRange, untransferable } from './errors';

/** Bytes of the largest external ArrayBuffer this Node.js creates. */
export function maxBufferBytes(): number {
  return bufferConstants.MAX_LENGTH;
}

function sizeText(bytes: number): string {
  for (const [unit, n] of [
    ['TiB', 2 ** 40],
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes} bytes`;
}

/**
 * Throws ERR_OUT_OF_RANGE when `bytes` is more than an ArrayBuffer over region memory can
 * hold on this Node.js.
 */
export function checkBufferSize(bytes: number, what: string): void {
  const max = maxBufferBytes();
  if (bytes <= max) return;
  throw outOfRange(
    `${what} is ${sizeText(bytes)}: more than the ${sizeText(max)} an ArrayBuffer over external memory can hold ` +
      `on Node.js ${process.versions.node} (buffer.constants.MAX_LENGTH, the limit of napi_create_external_arraybuffer; ` +
      'Node.js 22 and later allow 2^53-1 bytes)',
  );
}

const regionBuffers = new WeakSet<ArrayBuffer>();
let guarded = false;

function checkTransfer(transfer: unknown): void {
  const list = Array.isArray(transfer)
    ? transfer
    : transfer !== null && typeof transfer === 'object' && Array.isArray((transfer as { transfer?: unknown }).transfer)
      ? (transfer as { transfer: unknown[] }).transfer
      : undefined;
  if (!list) return;
  for (const x of list) {
    if (x instanceof ArrayBuffer && regionBuffers.has(x)) {
      throw untransferable(
        "tmem: a region's buffer cannot be transferred: its memory is the region's, a transfer would copy it " +
          "and the receiver's writes would not reach the region. Post region.share() instead (it is structured-" +
          'cloneable) and call attachRegion() on it in the Worker.',
      );
    }
  }
}

function installGuard(): void {
  guarded = true;
  const proto = MessagePort.prototype as unknown as { postMessage: (...args: unknown[]) => void };
  const original = proto.postMessage;
  Object.defineProperty(proto, 'postMessage', {
    value: function postMessage(this: MessagePort, ...args: unknown[]): void {
      if (args.length > 1) checkTransfer(args[1]);
      Reflect.apply(original, this, args);
    },
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/** Records `ab` as region memory (kept out of transfer lists) and returns it. */
export function markRegionBuffer(ab: ArrayBuffer): ArrayBuffer {
  regionBuffers.add(ab);
  if (!guarded) installGuard();
  return ab;
}
