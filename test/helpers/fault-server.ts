/**
 * A Worker that serves the faults of a uffd opened by the main thread.
 *
 * It attaches with `native.Uffd.attach(descriptor)`, arms the deadman, and
 * loops on a blocking `read(ev, -1)`. MISSING faults are resolved as
 * ctl[ACTION] says (zero page, pattern copy, pattern copy left
 * write-protected, move from a staging page); WP faults are resolved by
 * clearing the protection of the page. Each event is logged to the shared
 * log before it is resolved (see fault-protocol.ts). A fault it cannot
 * resolve as asked still gets a zero page, so that the main thread never
 * sleeps forever; ctl[ERRORS] counts those and the message goes to the parent.
 *
 * The loop ends when the reader is woken (wakeReader) with ctl[STOP] set; it
 * then disarms the deadman and returns, and the Worker exits.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native, PAGEFAULT_FLAG_WP, UFFD_EVENT_PAGEFAULT, COPY_WP, PAGE_SIZE } from '../../lib/native';
import {
  ACTION,
  ACTION_MOVE_FROM,
  ACTION_PATTERN,
  ACTION_PATTERN_WP,
  ACTION_ZERO,
  ERRORS,
  EVENTS,
  FaultServerData,
  LOG_EVENTS,
  MOVE_SRC,
  STOP,
  fillPattern,
} from './fault-protocol';

const EAGAIN = -11;
const ESRCH = -3;

const data = workerData as FaultServerData;
const uffd = native.Uffd.attach(data.descriptor);
const ctl = new Int32Array(data.ctl);
const params = new Float64Array(data.params);
const log = new Float64Array(data.log);
const ev = new Float64Array(4 * 16);
const page = new Uint8Array(PAGE_SIZE);

function report(message: string): void {
  Atomics.add(ctl, ERRORS, 1);
  parentPort?.postMessage({ type: 'error', message });
}

/** Resolves one MISSING fault as ctl[ACTION] says; returns a description of what went wrong, or null. */
function resolveMissing(address: number): string | null {
  const action = Atomics.load(ctl, ACTION);
  for (let attempt = 0; attempt < 8; attempt++) {
    let r: number;
    switch (action) {
      case ACTION_ZERO:
        r = uffd.zeropage(address, PAGE_SIZE);
        break;
      case ACTION_PATTERN:
      case ACTION_PATTERN_WP:
        fillPattern(page, 0, address);
        r = uffd.copy(address, page, 0, action === ACTION_PATTERN_WP ? COPY_WP : 0);
        break;
      case ACTION_MOVE_FROM:
        r = uffd.move(address, params[MOVE_SRC], PAGE_SIZE);
        break;
      default:
        return `unknown action ${action}`;
    }
    if (r === PAGE_SIZE || r === ESRCH) return null;
    if (r !== EAGAIN) return `action ${action} at 0x${address.toString(16)} returned ${r}`;
  }
  return `action ${action} at 0x${address.toString(16)}: EAGAIN 8 times`;
}

function serve(): void {
  for (;;) {
    const n = uffd.read(ev, -1);
    if (n < 0) {
      if (Atomics.load(ctl, STOP) !== 0) return;
      continue;
    }
    for (let k = 0; k < n; k++) {
      const kind = ev[4 * k];
      const flags = ev[4 * k + 1];
      const address = ev[4 * k + 2];
      const at = Atomics.load(ctl, EVENTS);
      if (at < LOG_EVENTS) {
        log[4 * at] = kind;
        log[4 * at + 1] = flags;
        log[4 * at + 2] = address;
        log[4 * at + 3] = ev[4 * k + 3];
      }
      Atomics.store(ctl, EVENTS, at + 1);
      if (kind !== UFFD_EVENT_PAGEFAULT) continue;
      let problem: string | null;
      try {
        if (flags & PAGEFAULT_FLAG_WP) {
          uffd.writeProtect(address, PAGE_SIZE, false);
          problem = null;
        } else {
          problem = resolveMissing(address);
        }
      } catch (e) {
        problem = String((e as Error).stack ?? e);
      }
      if (problem !== null) {
        report(problem);
        try {
          // Nobody may sleep forever: map something (or unprotect) and wake.
          if (flags & PAGEFAULT_FLAG_WP) uffd.writeProtect(address, PAGE_SIZE, false);
          else uffd.zeropage(address, PAGE_SIZE);
        } catch (e) {
          report(`fallback failed: ${String(e)}`);
        }
      }
    }
  }
}

if (data.deadman !== false || data.throwAfterArm) uffd.armDeadman(data.why ?? 'fault-server');
if (data.throwAfterArm) throw new Error('fault-server: dying on purpose with the deadman armed');
parentPort?.postMessage({ type: 'ready', tid: native.gettid() });
serve();
uffd.disarmDeadman();
parentPort?.postMessage({ type: 'stopped' });
