/**
 * Stats endpoint: lets `tmem stats <pid>` watch a running program's swaps.
 *
 * When the environment has TMEM_STATS=1 (or open() gets `statsSocket: true`),
 * the process listens on a Unix socket `tmem-<pid>.sock` in the OS temporary
 * directory (mode 0600). A client that connects gets one JSON line:
 * `{ pid, time, swaps: [SwapStats, ...] }`, and the connection closes. The
 * server is unref'd (it never keeps the process alive) and its socket file is
 * removed on exit.
 */
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';

/** Where the stats socket of process `pid` lives. */
export function statsSocketPath(pid: number): string {
  return path.join(os.tmpdir(), `tmem-${pid}.sock`);
}

type Source = () => unknown;
const sources = new Set<Source>();
let server: net.Server | undefined;

/** Adds a stats source (a swap); starts the server on first use. */
export function publishStats(source: Source): () => void {
  sources.add(source);
  if (!server) start();
  return () => {
    sources.delete(source);
  };
}

function start(): void {
  const file = statsSocketPath(process.pid);
  try {
    fs.unlinkSync(file); // a stale socket of an earlier process with this pid
  } catch {
    /* none */
  }
  server = net.createServer((sock) => {
    const body = { pid: process.pid, time: Date.now(), swaps: [...sources].map((s) => s()) };
    sock.end(JSON.stringify(body) + '\n');
  });
  server.on('error', () => {
    /* stats are best effort; the program goes on */
  });
  server.listen(file, () => {
    try {
      fs.chmodSync(file, 0o600);
    } catch {
      /* gone */
    }
  });
  server.unref();
  process.on('exit', () => {
    try {
      fs.unlinkSync(file);
    } catch {
      /* gone */
    }
  });
}

/** Reads the stats of process `pid` once (for the CLI). */
export function fetchStats(pid: number, timeoutMs = 2000): Promise<{ pid: number; time: number; swaps: unknown[] }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(statsSocketPath(pid));
    let data = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`tmem: process ${pid} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('data', (d) => (data += d.toString()));
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(data));
      } catch (e) {
        reject(e);
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
        ? new Error(`tmem: no stats endpoint for process ${pid} (start it with TMEM_STATS=1, or open({ statsSocket: true }))`)
        : e);
    });
  });
}
