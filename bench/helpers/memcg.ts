/**
 * A memory cgroup made for a test or the demo (root): v1 where the memory controller is
 * mounted as v1 (memory.limit_in_bytes), else v2 (memory.max, swap off), with a child
 * process started inside it (a shell moves itself in, then execs node), and removed
 * afterwards.
 *
 *   peak()      v1 memory.max_usage_in_bytes, v2 memory.peak: the most the cgroup was charged
 *   oomKills()  v1 memory.oom_control oom_kill, v2 memory.events oom_kill
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A cgroup of ours. */
export interface Memcg {
  version: 1 | 2;
  dir: string;
  limit: number;
  peak(): number;
  oomKills(): number;
  /** Removes the cgroup (its processes must have ended); retried briefly while the kernel empties it. */
  remove(): void;
}

function read(file: string): string {
  return fs.readFileSync(file, 'utf8');
}

function keyed(file: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)`, 'm').exec(read(file));
  return m ? Number(m[1]) : 0;
}

/** Where a memory cgroup can be made here, or why not. */
export function memcgRoot(): { version: 1 | 2; root: string } | { reason: string } {
  if (process.platform !== 'linux') return { reason: 'not Linux' };
  if (process.getuid?.() !== 0) return { reason: 'not root: making a memory cgroup needs root' };
  let mountinfo: string;
  try {
    mountinfo = read('/proc/self/mountinfo');
  } catch {
    return { reason: 'no /proc/self/mountinfo' };
  }
  let v2: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(' ');
    const b = line.slice(sep + 3).split(' ');
    if (a[3] !== '/') continue; // a bind mount of a sub-cgroup: not ours to make cgroups in
    if (b[0] === 'cgroup' && (b[2] ?? '').split(',').includes('memory')) return { version: 1, root: a[4] };
    if (b[0] === 'cgroup2') {
      try {
        if (read(path.join(a[4], 'cgroup.controllers')).split(/\s+/).includes('memory')) v2 = a[4];
      } catch {
        /* not readable */
      }
    }
  }
  if (v2) return { version: 2, root: v2 };
  return { reason: 'no memory cgroup controller (neither v1 nor v2 has one mounted)' };
}

/** Makes a memory cgroup `name` of `limit` bytes. */
export function makeMemcg(name: string, limit: number): Memcg {
  const where = memcgRoot();
  if ('reason' in where) throw new Error(`cannot make a memory cgroup: ${where.reason}`);
  const dir = path.join(where.root, name);
  if (where.version === 2) {
    try {
      fs.writeFileSync(path.join(where.root, 'cgroup.subtree_control'), '+memory');
    } catch {
      /* already on, or not allowed: the mkdir below says */
    }
  }
  fs.mkdirSync(dir);
  try {
    if (where.version === 1) {
      fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limit));
    } else {
      fs.writeFileSync(path.join(dir, 'memory.max'), String(limit));
      try {
        fs.writeFileSync(path.join(dir, 'memory.swap.max'), '0');
      } catch {
        /* no swap accounting */
      }
    }
  } catch (e) {
    fs.rmdirSync(dir);
    throw e;
  }
  const version = where.version;
  return {
    version,
    dir,
    limit,
    peak: () => Number(read(path.join(dir, version === 1 ? 'memory.max_usage_in_bytes' : 'memory.peak')).trim()) || 0,
    oomKills: () => keyed(path.join(dir, version === 1 ? 'memory.oom_control' : 'memory.events'), 'oom_kill'),
    remove() {
      for (let i = 0; i < 50; i++) {
        try {
          fs.rmdirSync(dir);
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100); // its last process is still exiting
        }
      }
      fs.rmdirSync(dir);
    },
  };
}

/** Starts `node args...` inside the cgroup (it is in before node runs); stdout and stderr piped. */
export function spawnInMemcg(cg: Memcg, args: string[], timeoutMs: number): ChildProcess {
  const procs = path.join(cg.dir, 'cgroup.procs');
  return spawn('/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', procs, process.execPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
}
