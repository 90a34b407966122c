/**
 * A memory cgroup for one child process (root; v1 `memory.limit_in_bytes` under the memory
 * controller's mount, or v2 `memory.max`), made under this process's own memory cgroup as
 * bench/native/kernel_swapin.cc does, and a child Node process started inside it: a shell joins
 * the cgroup and then execs node, so the whole Node process (its heap, the dispatcher Worker,
 * tmem's regions and pool) is charged to it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface MemoryCgroup {
  dir: string;
  v2: boolean;
  limit: number;
  /** Highest usage the cgroup saw (v1 memory.max_usage_in_bytes, v2 memory.peak), bytes. */
  peak(): number;
  /** OOM kills the cgroup saw (memory.oom_control's oom_kill, or memory.events' oom_kill). */
  oomKills(): number;
  remove(): void;
}

function ownMemcg(): { dir: string; v2: boolean } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'not root: making a memory cgroup needs root' };
  let v2path: string | undefined;
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[2].split(',').includes('memory')) {
      const d = path.join('/sys/fs/cgroup/memory', m[3]);
      if (fs.existsSync(path.join(d, 'memory.limit_in_bytes'))) return { dir: d, v2: false };
    }
    if (m[1] === '0' && m[2] === '') v2path = m[3];
  }
  if (v2path !== undefined) {
    for (const mnt of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
      const d = path.join(mnt, v2path);
      try {
        const sub = fs.readFileSync(path.join(d, 'cgroup.subtree_control'), 'utf8');
        if (sub.split(/\s+/).includes('memory')) return { dir: d, v2: true };
      } catch {
        /* not this mount */
      }
    }
  }
  return { skip: 'no memory cgroup controller to use (neither v1 nor v2 with memory in subtree_control)' };
}

/** A new memory cgroup limited to `limit` bytes (no swap for it), or why there cannot be one. */
export function makeMemoryCgroup(name: string, limit: number): MemoryCgroup | { skip: string } {
  const own = ownMemcg();
  if ('skip' in own) return own;
  const dir = path.join(own.dir, `${name}-${process.pid}-${Date.now()}`);
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    return { skip: `cannot make a memory cgroup under ${own.dir}: ${(e as Error).message}` };
  }
  const v2 = own.v2;
  fs.writeFileSync(path.join(dir, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(limit));
  if (v2) {
    try {
      fs.writeFileSync(path.join(dir, 'memory.swap.max'), '0');
    } catch {
      /* no swap controller */
    }
  } else {
    try {
      fs.writeFileSync(path.join(dir, 'memory.swappiness'), '0');
    } catch {
      /* not settable */
    }
  }
  const readNum = (f: string): number => Number(fs.readFileSync(path.join(dir, f), 'utf8').trim());
  return {
    dir,
    v2,
    limit,
    peak: () => readNum(v2 ? 'memory.peak' : 'memory.max_usage_in_bytes'),
    oomKills: () => {
      const text = fs.readFileSync(path.join(dir, v2 ? 'memory.events' : 'memory.oom_control'), 'utf8');
      const m = /oom_kill (\d+)/.exec(text);
      return m ? Number(m[1]) : 0;
    },
    remove: () => {
      for (let i = 0; i < 50; i++) {
        try {
          fs.rmdirSync(dir);
          return;
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100); // the child's exit is still being reaped
        }
      }
    },
  };
}

export interface CgroupChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `node ...nodeArgs script ...args` inside the cgroup (SIGKILL after timeoutMs). */
export function runNodeInCgroup(
  cg: MemoryCgroup,
  nodeArgs: string[],
  script: string,
  args: string[],
  timeoutMs: number,
): Promise<CgroupChildResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(
      '/bin/sh',
      [
        '-c',
        'echo $$ > "$0/cgroup.procs" && shift && exec "$@"',
        cg.dir,
        'x',
        process.execPath,
        ...nodeArgs,
        script,
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' },
    );
    let stdout = '',
      stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
}
