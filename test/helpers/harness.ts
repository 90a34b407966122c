/**
 * Main-thread side of the native tests: start and stop a fault-server Worker,
 * read its event log, bound every wait with a timeout, and guard the
 * synchronous steps that fault with a watchdog (a blocked main thread cannot
 * run a timer).
 */
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Swap, SwapStats } from '../../lib';
import type { Uffd } from '../../lib/native';
import {
  ACTION,
  CTL_SLOTS,
  ERRORS,
  EVENTS,
  FaultServerData,
  LOG_EVENTS,
  MOVE_SRC,
  PARAM_SLOTS,
  STOP,
} from './fault-protocol';

/** Rejects with `what` if `p` does not settle within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The dispatcher bumps its counters after UFFDIO_COPY has woken the faulting
 * thread, so stats() read right after a touch may lag by a few microseconds:
 * wait (bounded by `ms`, polling every `pollMs`) until `ok` holds, then assert
 * on what was read.
 */
export async function statsWhen(swap: Swap, ok: (s: SwapStats) => boolean, ms = 2000, pollMs = 2): Promise<SwapStats> {
  const end = Date.now() + ms;
  let s = swap.stats();
  while (!ok(s) && Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    s = swap.stats();
  }
  return s;
}

/** A new temporary directory, removed when the test ends. */
export function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** How a child process ended, its stderr, and how long it ran. */
export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
}

/** Runs `node script ...args` (stdout ignored, stderr kept); SIGKILL after `timeoutMs`. */
export function runNodeChild(script: string, args: string[], timeoutMs: number): Promise<ChildResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stderr, ms: Date.now() - started }));
  });
}

/** One page-fault (or other) event as the fault-server logged it. */
export interface LoggedEvent {
  kind: number;
  flags: number;
  address: number;
  tid: number;
}

export interface FaultServer {
  worker: Worker;
  /** gettid() of the Worker thread. */
  tid: number;
  /** Messages of faults it could not resolve as asked. */
  errors: string[];
  /** Sets how MISSING faults are resolved from now on (ACTION_*); `moveSrc` for ACTION_MOVE_FROM. */
  setAction(action: number, moveSrc?: number): void;
  /** Events logged since the last call. */
  takeEvents(): LoggedEvent[];
  /** Faults not resolved as asked (also counted when the message has not arrived yet). */
  errorCount(): number;
  /** Sets STOP, wakes the reader, waits for the Worker to exit; resolves with its exit code. */
  stop(ms?: number): Promise<number>;
}

const SERVER = path.join(__dirname, 'fault-server.js');

/** Starts a fault-server Worker for `uffd` and waits until it is serving. */
export async function startFaultServer(
  uffd: Uffd,
  opts: { deadman?: boolean; timeoutMs?: number } = {},
): Promise<FaultServer> {
  const ctlSab = new SharedArrayBuffer(4 * CTL_SLOTS);
  const paramsSab = new SharedArrayBuffer(8 * PARAM_SLOTS);
  const logSab = new SharedArrayBuffer(8 * 4 * LOG_EVENTS);
  const ctl = new Int32Array(ctlSab);
  const params = new Float64Array(paramsSab);
  const log = new Float64Array(logSab);
  const data: FaultServerData = {
    descriptor: uffd.describe(),
    ctl: ctlSab,
    params: paramsSab,
    log: logSab,
    deadman: opts.deadman,
  };
  const worker = new Worker(SERVER, { workerData: data });
  const errors: string[] = [];
  let exitCode: number | undefined;
  const exited = new Promise<number>((resolve) =>
    worker.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  const ready = new Promise<number>((resolve, reject) => {
    worker.on('message', (m: { type: string; tid?: number; message?: string }) => {
      if (m.type === 'ready') resolve(m.tid as number);
      else if (m.type === 'error') errors.push(m.message as string);
    });
    worker.once('error', reject);
    void exited.then((code) => reject(new Error(`fault-server exited (${code}) before it was ready`)));
  });
  worker.on('error', (e) => errors.push(`worker error: ${String(e)}`));
  const tid = await withTimeout(ready, opts.timeoutMs ?? 5000, 'fault-server ready');
  let seen = 0;
  return {
    worker,
    tid,
    errors,
    setAction(action, moveSrc) {
      if (moveSrc !== undefined) params[MOVE_SRC] = moveSrc;
      Atomics.store(ctl, ACTION, action);
    },
    takeEvents() {
      const n = Math.min(Atomics.load(ctl, EVENTS), LOG_EVENTS);
      const out: LoggedEvent[] = [];
      for (; seen < n; seen++) {
        out.push({ kind: log[4 * seen], flags: log[4 * seen + 1], address: log[4 * seen + 2], tid: log[4 * seen + 3] });
      }
      return out;
    },
    errorCount: () => Atomics.load(ctl, ERRORS),
    async stop(ms = 5000) {
      if (exitCode !== undefined) return exitCode;
      Atomics.store(ctl, STOP, 1);
      uffd.wakeReader();
      try {
        return await withTimeout(exited, ms, 'fault-server exit after wakeReader()');
      } catch (e) {
        await worker.terminate(); // may itself hang if the Worker is blocked in native code; the test fails first
        throw e;
      }
    },
  };
}

/** Kills the process if a synchronous step overruns its deadline (see watchdog.ts). */
export class Watchdog {
  private readonly sab = new SharedArrayBuffer(16 + 256);
  private readonly gen = new Int32Array(this.sab, 0, 1);
  private readonly deadline = new Float64Array(this.sab, 8, 1);
  private readonly label = new Uint8Array(this.sab, 16, 256);
  private readonly worker: Worker;

  constructor() {
    this.worker = new Worker(path.join(__dirname, 'watchdog.js'), { workerData: { sab: this.sab } });
    this.worker.unref();
  }

  /** Runs `fn`; if it has not returned after `ms`, the process dies with SIGKILL and `what` on stderr. */
  guard<T>(what: string, ms: number, fn: () => T): T {
    this.label.fill(0);
    this.label.set(Buffer.from(what, 'utf8').subarray(0, 255));
    this.deadline[0] = Date.now() + ms;
    Atomics.add(this.gen, 0, 1);
    try {
      return fn();
    } finally {
      this.deadline[0] = 0;
      Atomics.add(this.gen, 0, 1);
    }
  }
}
