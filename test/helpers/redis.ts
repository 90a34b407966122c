/**
 * Real Redis servers for the remote tier's tests (Debian's redis-server; never a mock):
 * each on a free loopback port, with no persistence, its pid kept, stopped in teardown.
 *
 *   startRedis(t)        one server: { port, url, pid, cli(...), kill(), restart(), stop(), cont() }
 *   startCluster(t, 3)   three masters joined with `redis-cli --cluster create`, cluster_state:ok
 *   garbageServer(t)     a real TCP server that answers every request with bytes that are not RESP
 */
import type { ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

/** A port nothing listens on now (bound to 0, then closed). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class RedisServer {
  proc: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly dir: string,
    readonly extra: string[],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.proc?.pid ?? -1;
  }

  /** Starts (or restarts, empty) the server and waits until it answers PING. */
  async start(): Promise<void> {
    const args = [
      '--bind',
      '127.0.0.1',
      '--port',
      String(this.port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.dir,
      ...this.extra,
    ];
    const p = spawn('redis-server', args, { stdio: 'ignore' });
    this.proc = p;
    const end = Date.now() + 30000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`redis-server on port ${this.port} exited (${p.exitCode})`);
      if (this.cli('PING').trim() === 'PONG') return;
      if (Date.now() > end) throw new Error(`redis-server on port ${this.port} did not answer in 30 s`);
      await sleep(20);
    }
  }

  /** redis-cli against this server; its stdout. */
  cli(...args: string[]): string {
    const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), ...args], {
      encoding: 'utf8',
      timeout: 10000,
    });
    return r.stdout ?? '';
  }

  /** Many commands through one redis-cli (one per line of its stdin). */
  cliPipe(lines: string[]): string {
    const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port)], {
      encoding: 'utf8',
      input: lines.join('\n') + '\n',
      timeout: 30000,
    });
    return r.stdout ?? '';
  }

  /** SIGKILL, and waits for the process to be gone. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    process.kill(p.pid!, 'SIGCONT');
    p.kill('SIGKILL');
    await gone;
  }

  /** Killed and started again: empty (no persistence), a new run_id. */
  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** SIGSTOP: the server hangs (its socket accepts, nothing answers). */
  stop(): void {
    process.kill(this.pid, 'SIGSTOP');
  }

  cont(): void {
    process.kill(this.pid, 'SIGCONT');
  }
}

/** One server on a free port, stopped (SIGKILL) when the test ends. */
export async function startRedis(t: ExecutionContext, extra: string[] = []): Promise<RedisServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-redis-'));
  const s = new RedisServer(await freePort(), dir, extra);
  t.teardown(async () => {
    await s.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await s.start();
  return s;
}

/** `n` masters joined into a cluster (redis-cli --cluster create), once every node says cluster_state:ok. */
export async function startCluster(t: ExecutionContext, n = 3): Promise<RedisServer[]> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < n; i++) {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-redis-'));
    const s = new RedisServer(port, dir, [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      path.join(dir, 'nodes.conf'),
      '--cluster-node-timeout',
      '5000',
    ]);
    t.teardown(async () => {
      await s.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    await s.start();
    nodes.push(s);
  }
  const r = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'],
    { encoding: 'utf8', timeout: 60000 },
  );
  if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stdout}${r.stderr}`);
  const end = Date.now() + 60000;
  while (!nodes.every((s) => s.cli('CLUSTER', 'INFO').includes('cluster_state:ok'))) {
    if (Date.now() > end) throw new Error('the cluster did not reach cluster_state:ok in 60 s');
    await sleep(50);
  }
  return nodes;
}

/**
 * A real TCP server, in another process (a blocking RemoteConn in this one would stop its
 * event loop), that answers whatever it is sent with `reply` (bytes that are not RESP).
 * Killed in teardown.
 */
export async function garbageServer(t: ExecutionContext, reply = 'HTTP/1.1 400 Bad Request\r\n\r\n'): Promise<number> {
  const code = `const net = require('net');
    const reply = Buffer.from(${JSON.stringify(Buffer.from(reply).toString('base64'))}, 'base64');
    const srv = net.createServer((s) => { s.on('data', () => s.write(reply)); s.on('error', () => {}); });
    srv.listen(0, '127.0.0.1', () => process.stdout.write(srv.address().port + '\\n'));`;
  const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    p.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    let out = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    p.once('exit', (c) => reject(new Error(`the garbage server exited (${c})`)));
  });
}
