/**
 * The memory cgroup this process runs in, v1 or v2, as the budget reads it.
 *
 *   /proc/self/cgroup     "N:memory:/path" (v1) or "0::/path" (v2): the process's cgroup
 *   /proc/self/mountinfo  where that hierarchy is mounted, and which of its directories the
 *                         mount shows as its root (a container sees its own cgroup as "/")
 *   v1 files              memory.stat (hierarchical_memory_limit: the smallest limit of the
 *                         cgroup and its ancestors; inactive_file, active_file), memory.usage_in_bytes,
 *                         memory.failcnt (times usage hit the limit)
 *   v2 files              memory.max, memory.high (the smaller of the two, over the cgroup and
 *                         every ancestor), memory.current, memory.stat (in/active_file),
 *                         memory.pressure (PSI of the cgroup), memory.events (oom_kill)
 *
 * Every read is synchronous and small (procfs/cgroupfs files of a few hundred bytes); a file
 * that cannot be read yields undefined, never an exception: a cgroup can vanish.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** What a cgroup reading says; undefined fields could not be read. */
export interface CgroupReading {
  /** The limit in bytes (the smallest over the cgroup and its ancestors), or undefined when there is none. */
  limit?: number;
  /** Bytes charged to the cgroup now. */
  usage?: number;
  /** Bytes of inactive file cache in that usage (the kernel drops them first). */
  inactiveFile?: number;
  /** Bytes of active file cache in that usage (reclaimable too, after the inactive list: the swap file's own writes land here). */
  activeFile?: number;
  /** v1: times usage hit the limit (memory.failcnt); v2: memory.events' `max` count. */
  limitHits?: number;
}

/** A memory cgroup found for this process. */
export interface MemoryCgroup {
  version: 1 | 2;
  /** Its directory in the cgroup filesystem. */
  dir: string;
  /** The directories of the limits that apply (v2: the cgroup and its ancestors under the mount). */
  limitDirs: string[];
  /** PSI file of this cgroup (v2 memory.pressure), if the kernel has it. */
  pressureFile?: string;
}

/** A v1 "no limit": PAGE_COUNTER_MAX pages, about 2^63 bytes. Anything this large is no limit. */
const UNLIMITED = 2 ** 60;

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function readNumber(file: string): number | undefined {
  const t = readText(file)?.trim();
  if (t === undefined || t === '') return undefined;
  if (t === 'max') return Infinity;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** `key value` lines (memory.stat, memory.events) to a map. */
function readKeyed(file: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of (readText(file) ?? '').split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v !== undefined) m.set(k, Number(v));
  }
  return m;
}

interface Mount {
  root: string;
  point: string;
  fstype: string;
  superOptions: string[];
}

function mounts(mountinfo: string): Mount[] {
  const out: Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options [optional fields] - fstype source super-options
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(' ');
    const b = line.slice(sep + 3).split(' ');
    if (a.length < 5 || b.length < 3) continue;
    out.push({ root: unescape(a[3]), point: unescape(a[4]), fstype: b[0], superOptions: b[2].split(',') });
  }
  return out;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The directory of cgroup `cg` (a path in its hierarchy) under a mount of that hierarchy. */
function under(m: Mount, cg: string): string | undefined {
  const rel = path.posix.relative(m.root, cg);
  if (rel.startsWith('..')) return undefined; // the mount does not show this cgroup
  return path.join(m.point, rel);
}

/**
 * Finds this process's memory cgroup: v1 where the memory controller is mounted as v1,
 * else v2 where the unified hierarchy has the memory controller. Undefined when neither.
 * `procSelf` is for tests of other processes ('/proc/<pid>').
 */
export function findMemoryCgroup(procSelf = '/proc/self'): MemoryCgroup | undefined {
  const cgroups = readText(`${procSelf}/cgroup`);
  const mountinfo = readText(`${procSelf}/mountinfo`);
  if (cgroups === undefined || mountinfo === undefined) return undefined;
  const ms = mounts(mountinfo);
  let v2Path: string | undefined;
  for (const line of cgroups.split('\n')) {
    const first = line.indexOf(':'),
      second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const cg = line.slice(second + 1);
    if (line.slice(0, first) === '0' && controllers === '') {
      v2Path = cg;
      continue;
    }
    if (!controllers.split(',').includes('memory')) continue;
    for (const m of ms) {
      if (m.fstype !== 'cgroup' || !m.superOptions.includes('memory')) continue;
      const dir = under(m, cg);
      if (dir && fs.existsSync(path.join(dir, 'memory.limit_in_bytes'))) return { version: 1, dir, limitDirs: [dir] };
    }
  }
  if (v2Path === undefined) return undefined;
  for (const m of ms) {
    if (m.fstype !== 'cgroup2') continue;
    const dir = under(m, v2Path);
    if (!dir || !fs.existsSync(path.join(dir, 'memory.current'))) continue; // no memory controller here
    const limitDirs: string[] = [];
    for (let d = dir; ; d = path.dirname(d)) {
      limitDirs.push(d);
      if (d === m.point || path.dirname(d) === d) break;
    }
    const pressure = path.join(dir, 'memory.pressure');
    return { version: 2, dir, limitDirs, pressureFile: fs.existsSync(pressure) ? pressure : undefined };
  }
  return undefined;
}

/** Reads the cgroup's limit, usage and limit hits now. */
export function readCgroup(cg: MemoryCgroup): CgroupReading {
  if (cg.version === 1) {
    const stat = readKeyed(path.join(cg.dir, 'memory.stat'));
    const limit = stat.get('hierarchical_memory_limit') ?? readNumber(path.join(cg.dir, 'memory.limit_in_bytes'));
    return {
      limit: limit !== undefined && limit < UNLIMITED ? limit : undefined,
      usage: readNumber(path.join(cg.dir, 'memory.usage_in_bytes')),
      inactiveFile: stat.get('total_inactive_file') ?? stat.get('inactive_file'),
      activeFile: stat.get('total_active_file') ?? stat.get('active_file'),
      limitHits: readNumber(path.join(cg.dir, 'memory.failcnt')),
    };
  }
  let limit = Infinity;
  for (const d of cg.limitDirs) {
    for (const f of ['memory.max', 'memory.high']) {
      const v = readNumber(path.join(d, f));
      if (v !== undefined && v < limit) limit = v;
    }
  }
  const stat = readKeyed(path.join(cg.dir, 'memory.stat'));
  const events = readKeyed(path.join(cg.dir, 'memory.events'));
  return {
    limit: limit < UNLIMITED ? limit : undefined,
    usage: readNumber(path.join(cg.dir, 'memory.current')),
    inactiveFile: stat.get('inactive_file'),
    activeFile: stat.get('active_file'),
    limitHits: (events.get('max') ?? 0) + (events.get('high') ?? 0),
  };
}

/**
 * This process's anonymous and shared-memory resident pages in bytes (RssAnon + RssShmem of
 * /proc/self/status), or undefined: what a memory cgroup is charged for on this process's
 * behalf. Its file-backed resident pages (the node binary, shared libraries: ~40 MiB) are
 * left out: they are charged to whichever cgroup first read them, and when that is this one
 * they are in its usage already.
 */
export function processAnonRss(): number | undefined {
  const t = readText('/proc/self/status');
  if (t === undefined) return undefined;
  let kib = 0;
  let found = false;
  for (const m of t.matchAll(/^(RssAnon|RssShmem):\s+(\d+) kB$/gm)) {
    kib += Number(m[2]);
    found = true;
  }
  return found ? kib * 1024 : undefined;
}

/** This process's resident set in bytes (/proc/self/statm), or undefined. */
export function processRss(): number | undefined {
  const t = readText('/proc/self/statm');
  if (t === undefined) return undefined;
  const pages = Number(t.split(' ')[1]);
  return Number.isFinite(pages) ? pages * 4096 : undefined;
}
