/**
 * Stats endpoint: lets `tmem stats <pid>` watch a running program's swaps.
 *
 * When the environment has TMEM_STATS=1 (or open() gets `statsSocket: true`),
 * the process listens on a Unix socket `tmem-<pid>.sock` in a directory only
 * its user can write (README "Stats socket"):
 *
 *   $XDG_RUNTIME_DIR                  if set, absolute, ours, mode 0700, not a symlink
 *   <os temp dir>/tmem-<uid>          otherwise: made with mkdir 0700, then checked
 *                                     with lstat (a directory, not a symlink, ours,
 *                                     mode exactly 0700)
 *
 * A directory that fails the check (another user made it first) is not used:
 * the program goes on without a stats socket and says so once (a process
 * warning, code TMEM_STATS_SOCKET). Sockets of pids that no longer run are
 * removed from the directory when the server starts.
 *
 * A client that connects gets one JSON line, `{ pid, time, swaps: [SwapStats, ...] }`,
 * and the connection closes. Nothing a client does reaches the program: every
 * connection has an error handler, input is read and dropped (a client that
 * sends more than INPUT_LIMIT bytes is cut off), a connection lives at most
 * CONNECTION_MS whether or not the client reads, and at most MAX_CONNECTIONS
 * are open at once. The server is unref'd (it never keeps the process alive)
 * and its socket file is removed on exit.
 *
 * The client side (fetchStats) looks where the target process would serve
 * (from its environment in /proc/<pid>/environ, and from ours) and uses a
 * socket only if it and its directory belong to the uid that runs the target.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import * as fs from 'node:fs';

/** Longest a connection may stay open (a client that never reads is cut off then). */
export const CONNECTION_MS = 5000;
/** Concurrent connections served; more are refused by the kernel's backlog / closed at once. */
export const MAX_CONNECTIONS = 16;
/** Bytes of (ignored) client input read before the connection is cut. */
export const INPUT_LIMIT = 64 * 1024;

const SOCKET_NAME = /^tmem-(\d+)\.sock$/;
const socketName = (pid: number): string => `tmem-${pid}.sock`;

/** Why `dir` is not a directory only `uid` can write, or null if it is. */
export function notPrivate(dir: string, uid: number): string | null {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    return `cannot be examined (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
  }
  if (st.isSymbolicLink()) return 'is a symlink';
  if (!st.isDirectory()) return 'is not a directory';
  if (st.uid !== uid) return `is owned by uid ${st.uid}, not ${uid}`;
  if ((st.mode & 0o7777) !== 0o700) return `has mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, not 0700`;
  return null;
}

/** os.tmpdir() as a process with environment `env` computes it. */
function tmpdirOf(env: NodeJS.ProcessEnv): string {
  let d = env.TMPDIR || env.TMP || env.TEMP || '/tmp';
  if (d.length > 1 && d.endsWith('/')) d = d.slice(0, -1);
  return d;
}

/** The directories a process of `uid` with environment `env` may serve from, in order. */
function candidateDirs(env: NodeJS.ProcessEnv, uid: number): string[] {
  const out: string[] = [];
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg)) out.push(xdg);
  out.push(path.join(tmpdirOf(env), `tmem-${uid}`));
  return out;
}

/**
 * The directory this process serves its stats socket from, made if needed.
 * @throws Error saying why no private directory could be had
 */
export function statsSocketDir(): string {
  const dir = path.dirname(statsSocketPath(process.pid));
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && path.resolve(xdg) === dir) return dir; // checked by statsSocketPath()
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.chmodSync(dir, 0o700); // the umask may have taken bits off; it is ours, just made
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new Error(`tmem: cannot make the stats socket directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const why = notPrivate(dir, process.getuid!());
  if (why)
    throw new Error(
      `tmem: the stats socket directory ${dir} ${why}; not serving stats (another user may have made it first)`,
    );
  return dir;
}

/** Where this process (its uid and environment) serves, or would serve, the stats socket of process `pid`. */
export function statsSocketPath(pid: number): string {
  const uid = process.getuid!();
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg) && notPrivate(xdg, uid) === null) return path.join(xdg, socketName(pid));
  return path.join(tmpdirOf(process.env), `tmem-${uid}`, socketName(pid));
}

type Source = () => unknown;
const sources = new Set<Source>();
let started = false;

/** Adds a stats source (a swap); starts the server on first use. */
export function publishStats(source: Source): () => void {
  sources.add(source);
  if (!started) {
    started = true;
    start();
  }
  return () => {
    sources.delete(source);
  };
}

function warn(message: string): void {
  process.emitWarning(message, { code: 'TMEM_STATS_SOCKET' });
}

/** Removes sockets of processes that no longer run (ours only: the directory is private). */
function removeStale(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const uid = process.getuid!();
  for (const name of names) {
    const m = SOCKET_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const file = path.join(dir, name);
    try {
      const st = fs.lstatSync(file);
      if (!st.isSocket() || st.uid !== uid) continue;
      if (pid !== process.pid) {
        try {
          process.kill(pid, 0);
          continue; // alive (or alive under another uid: EPERM)
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ESRCH') continue;
        }
      }
      fs.unlinkSync(file); // a dead process's, or an earlier process's with our pid
    } catch {
      /* gone meanwhile */
    }
  }
}

function answer(): string {
  const swaps: unknown[] = [];
  for (const s of sources) {
    try {
      swaps.push(s());
    } catch (e) {
      swaps.push({ error: String(e) });
    }
  }
  return JSON.stringify({ pid: process.pid, time: Date.now(), swaps }) + '\n';
}

function serve(sock: net.Socket): void {
  // Nothing the client does may throw in the program: errors (ECONNRESET, EPIPE) end this connection only.
  sock.on('error', () => sock.destroy());
  const deadline = setTimeout(() => sock.destroy(), CONNECTION_MS);
  deadline.unref();
  sock.on('close', () => clearTimeout(deadline));
  let input = 0;
  sock.on('data', (d: Buffer) => {
    input += d.length; // the protocol has no requests: input is dropped
    if (input > INPUT_LIMIT) sock.destroy();
  });
  let body: string;
  try {
    body = answer();
  } catch (e) {
    body = JSON.stringify({ pid: process.pid, time: Date.now(), error: String(e) }) + '\n';
  }
  // Once the reply is with the kernel, the client can read it after we close.
  sock.end(body, () => sock.destroy());
}

function start(): void {
  let dir: string;
  try {
    dir = statsSocketDir();
  } catch (e) {
    warn((e as Error).message);
    return;
  }
  removeStale(dir);
  const file = path.join(dir, socketName(process.pid));
  const server = net.createServer(serve);
  server.maxConnections = MAX_CONNECTIONS;
  server.on('error', (e) => {
    warn(`tmem: the stats socket ${file} could not be served: ${e.message}`);
    server.close();
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

/** The environment process `pid` started with, or {} if we may not read it. */
function environOf(pid: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  try {
    for (const kv of fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
  } catch {
    /* another user's process, or gone */
  }
  return env;
}

/** An Error with a code, as the CLI reports it. */
function codeError(message: string, code: string): Error {
  const e = new Error(message) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

/**
 * The stats socket of process `pid`: where it would serve, and owned (socket
 * and directory) by the uid that runs it.
 * @throws Error ERR_TMEM_NO_SUCH_PROCESS, ERR_TMEM_NO_STATS_SOCKET, or
 *   ERR_TMEM_STATS_SOCKET_UNTRUSTED (a socket is there but another user owns it or its directory)
 */
export function findStatsSocket(pid: number): string {
  let uid: number;
  try {
    uid = fs.statSync(`/proc/${pid}`).uid;
  } catch {
    throw codeError(`tmem: there is no process ${pid}`, 'ERR_TMEM_NO_SUCH_PROCESS');
  }
  const dirs = [...new Set([...candidateDirs(environOf(pid), uid), ...candidateDirs(process.env, uid)])];
  const refused: string[] = [];
  for (const dir of dirs) {
    const file = path.join(dir, socketName(pid));
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch {
      continue;
    }
    const why =
      notPrivate(dir, uid) ??
      (!st.isSocket()
        ? 'holds a non-socket at that name'
        : st.uid !== uid
          ? `holds a socket owned by uid ${st.uid}`
          : null);
    if (why === null) return file;
    refused.push(`${file}: the directory ${why}`);
  }
  if (refused.length > 0) {
    throw codeError(
      `tmem: refusing the stats socket of process ${pid} (run by uid ${uid}): ${refused.join('; ')}. ` +
        'Another user may have placed it; it is not read.',
      'ERR_TMEM_STATS_SOCKET_UNTRUSTED',
    );
  }
  throw codeError(
    `tmem: no stats endpoint for process ${pid} (start it with TMEM_STATS=1, or open({ statsSocket: true }))`,
    'ERR_TMEM_NO_STATS_SOCKET',
  );
}

/** Reads the stats of process `pid` once (for the CLI). */
export async function fetchStats(
  pid: number,
  timeoutMs = 2000,
): Promise<{ pid: number; time: number; swaps: unknown[] }> {
  const file = findStatsSocket(pid); // its error rejects the returned promise
  return new Promise((resolve, reject) => {
    const sock = net.connect(file);
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (e: Error | null, v?: { pid: number; time: number; swaps: unknown[] }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (e) reject(e);
      else resolve(v!);
    };
    const timer = setTimeout(
      () => done(new Error(`tmem: process ${pid} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('end', () => {
      try {
        const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { pid: number; time: number; swaps: unknown[] };
        if (v === null || typeof v !== 'object' || v.pid !== pid || !Array.isArray(v.swaps))
          throw new Error('not a stats answer of that process');
        done(null, v);
      } catch (e) {
        done(new Error(`tmem: process ${pid} sent a malformed stats answer: ${(e as Error).message}`));
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      done(
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? codeError(
              `tmem: no stats endpoint for process ${pid} (start it with TMEM_STATS=1, or open({ statsSocket: true }))`,
              'ERR_TMEM_NO_STATS_SOCKET',
            )
          : e,
      );
    });
  });
}
