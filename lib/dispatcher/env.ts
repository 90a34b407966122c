/**
 * The dispatcher Worker's environment, set up once when this module is first
 * imported (by worker.ts, before any other dispatcher module): what the main
 * thread handed over (workerData), the userfaultfd, the store, the codec and
 * the scratch buffers every part of the dispatcher shares. Nothing here
 * changes after setup except the counters in G and hist, and `life`.
 *
 *   init (workerData) -> uffd (attached, deadman armed), opts, port
 *   ctl   Int32Array  over init.ctl    CTL_* flags   (protocol.ts)
 *   G     Float64Array over init.stats  G_* counters, then R_* per region
 *   hist  Float64Array over init.hist   fault service time histogram
 *   backends  frontswap + cleancache over the store's arena (its handle may
 *             come as the first message on the port: receiveStore())
 *   pageBuf / pageWords / zeroPage / objBuf   one page (and one object) of scratch
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import * as fs from 'node:fs';
import { native, type UffdDescriptor } from '../native';
import { PageCodec, PAGE } from '../compress';
import * as P from './protocol';
import { openBackends, type Backends } from './backends';

interface Init {
  uffd: UffdDescriptor;
  port: MessagePort;
  ctl: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  hist: SharedArrayBuffer;
  store: unknown;
  options: P.DispatcherOptions;
}

export const ENOENT = -2,
  EAGAIN = -11,
  EBUSY = -16,
  EEXIST = -17,
  EOPNOTSUPP = -95;

/** `stoppedCleanly`: the loop ended on a 'stop' request (else the exit is reported on stderr). */
export const life = { stoppedCleanly: false };

process.on('uncaughtException', (e) => {
  // Say why before the Worker ends: the main thread may be blocked in a fault
  // and never see the 'error' event (the deadman then takes over).
  fs.writeSync(2, `tmem: the dispatcher failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
process.on('exit', (code) => {
  if (!life.stoppedCleanly)
    fs.writeSync(2, `tmem: the dispatcher Worker is exiting (code ${code}) without being stopped\n`);
});

const init = workerData as Init;
export const opts = init.options;
export const ctl = new Int32Array(init.ctl);
export const G = new Float64Array(init.stats);
export const hist = new Float64Array(init.hist);
export const port = init.port;
export const uffd = native.Uffd.attach(init.uffd);
uffd.armDeadman('the dispatcher Worker exited');

/**
 * The store's handle comes as the first message on the port: the main thread reserves the
 * arena only once this Worker waits for it (see Swap._start), so that under an
 * address-space limit the arena fails with a tmem error rather than V8 failing here.
 */
function receiveStore(): unknown {
  // The main thread reserves the arena once this is set: by now this isolate's start-up
  // (its modules, their buffers) has taken its address space, so that the main thread's
  // headroom check (address-space.ts) sees it.
  Atomics.store(ctl, P.CTL_WANT_STORE, 1);
  Atomics.notify(ctl, P.CTL_WANT_STORE);
  for (;;) {
    const m = receiveMessageOnPort(port);
    if (m) return (m.message as { store: unknown }).store;
    Atomics.wait(ctl, P.CTL_STORE, 0);
  }
}
/** The store's handle (backends.ts StoreInit), for the native fault path. */
export const storeInit = init.store ?? receiveStore();
export const backends: Backends = openBackends(storeInit, opts);
export const codec = new PageCodec(opts.compressor);

export const pageBuf = new Uint8Array(PAGE);
export const pageWords = new Uint32Array(pageBuf.buffer);
export const zeroPage = new Uint8Array(PAGE);
export const objBuf = new Uint8Array(PAGE + 64);
/** Stored pages are decoded and copied in by one native call (liblz4 and libzstd found). */
export const nativeDecode = native.lz4Available && native.zstdAvailable;

/** The idle pass runs (zram idle recompression or write-back configured). */
export const idleEnabled =
  opts.idle.afterMs > 0 && (opts.idle.recompress || (opts.idle.writeback !== false && opts.swapFileFd >= 0));
/** The stored FIFO feeds write-back (swap file) and the idle pass; without both it is not kept. */
export const storedFifoUsed = opts.swapFileFd >= 0 || idleEnabled;

const t0 = Date.now();
/** Seconds since the dispatcher started (a STORED page's store time). */
export function nowSec(): number {
  return Math.floor((Date.now() - t0) / 1000);
}

export function reply(reqId: number, ok: boolean, value?: number, error?: string): void {
  const m: P.Reply = { reqId, ok, value, error };
  port.postMessage(m);
}

/** A failed request whose cause is a syscall: the reply carries Node's error fields. */
export function replyError(reqId: number, error: string, code: string, errno: number, syscall: string): void {
  const m: P.Reply = { reqId, ok: false, error, code, errno, syscall };
  port.postMessage(m);
}
