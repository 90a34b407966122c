/**
 * `tmem stats <pid>`: watches the swaps of a running program through its stats
 * socket (lib/stats-server.ts: the program runs with TMEM_STATS=1). One sample
 * per interval; faults per second come from the difference of two samples.
 * `--audit` also scans each shared pool's index (what stats() no longer does).
 */
import * as fs from 'node:fs';
import { fetchStats } from '../stats-server';
import type { SwapStats } from '../swap';
import type { StatsOptions } from './args';

export interface SwapSample {
  residentBytes: number;
  poolBytes: number;
  compressedBytes: number;
  logicalBytes: number;
  compressionRatio: number;
  storedPages: number;
  samePages: number;
  swapFileBytes: number | null;
  swapFilePages: number | null;
  faults: number;
  /** Faults per second since the previous sample; null on the first. */
  faultsPerSecond: number | null;
  evictions: number;
  evictionsPerSecond: number | null;
  latencyP50: number;
  latencyP99: number;
  /**
   * With `shared`: the pool's name, its segment in use, members, the pages it holds (the
   * segment's counters), this process's hits and misses, and with `--audit` a scan of its index.
   */
  shared: {
    name: string;
    usedBytes: number;
    bytes: number;
    members: number;
    storedPages: number;
    hits: number;
    misses: number;
    audit?: SharedAudit | { error: string };
  } | null;
}

/** A scan of a shared pool's index (`tmem stats --audit`). */
export interface SharedAudit {
  /** Entries whose record is still in the ring and whose check holds, and their records' bytes. */
  pages: number;
  bytes: number;
  /** Entries naming a (file, page) another valid entry names: 0 when each page is stored once. */
  duplicates: number;
}

/**
 * Scans the index of the shared pool `name` of this user (never creates one): the audit
 * stats() does not do (1/16 of the segment, on this thread).
 */
export async function auditShared(name: string): Promise<SharedAudit | { error: string }> {
  const { native } = await import('../native');
  let store;
  try {
    store = new native.SharedStore(name, 2 ** 20, false, false);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { error: err.code === 'ENOENT' ? 'the segment is gone (every member closed)' : err.message };
  }
  try {
    const a = store.audit();
    return { pages: a.entries, bytes: a.bytes, duplicates: a.duplicates };
  } finally {
    store.close();
  }
}

/** Adds `--audit`'s scan to each shared pool of a sample of process `pid`. */
async function addAudits(s: StatsSample, pid: number): Promise<void> {
  let uid: number | undefined;
  try {
    uid = fs.statSync(`/proc/${pid}`).uid;
  } catch {
    /* gone: its pools are reported as such */
  }
  for (const w of s.swaps) {
    if (!w.shared) continue;
    // The segment's key and owner are the user's: another user (root too) finds a different one.
    w.shared.audit =
      uid !== undefined && uid !== process.geteuid!()
        ? { error: `run as uid ${uid}, the pool's user` }
        : await auditShared(w.shared.name);
  }
}

export interface StatsSample {
  pid: number;
  time: number;
  swaps: SwapSample[];
}

function totalFaults(s: SwapStats): number {
  const f = s.faults;
  return (
    f.zero +
    f.pool +
    f.same +
    f.staged +
    f.file +
    f.cleancache +
    (f.swapFile ?? s.swapFile?.swapIns ?? 0) +
    f.writeProtect
  );
}

/** Turns a raw answer into samples, with rates against the previous answer. */
export function toSample(
  raw: { pid: number; time: number; swaps: unknown[] },
  prev: { time: number; swaps: unknown[] } | null,
): StatsSample {
  const dt = prev ? (raw.time - prev.time) / 1000 : 0;
  return {
    pid: raw.pid,
    time: raw.time,
    swaps: (raw.swaps as SwapStats[]).map((s, i) => {
      const p = prev?.swaps[i] as SwapStats | undefined;
      const rate = (a: number, b: number | undefined): number | null =>
        p && b !== undefined && dt > 0 ? Math.max(0, Math.round((a - b) / dt)) : null;
      const faults = totalFaults(s);
      return {
        residentBytes: s.residentBytes,
        poolBytes: s.poolBytes,
        compressedBytes: s.compressedBytes,
        logicalBytes: s.logicalBytes,
        compressionRatio: Math.round(s.compressionRatio * 100) / 100,
        storedPages: s.storedPages,
        samePages: s.samePages,
        swapFileBytes: s.swapFile ? s.swapFile.bytes : null,
        swapFilePages: s.swapFile ? s.swapFile.pages : null,
        faults,
        faultsPerSecond: rate(faults, p ? totalFaults(p) : undefined),
        evictions: s.evictions,
        evictionsPerSecond: rate(s.evictions, p?.evictions),
        latencyP50: s.latency.p50,
        latencyP99: s.latency.p99,
        shared: s.shared
          ? {
              name: s.shared.name,
              usedBytes: s.shared.usedBytes,
              bytes: s.shared.bytes,
              members: s.shared.group.members,
              storedPages: s.shared.group.storedPages,
              hits: s.shared.member.hits,
              misses: s.shared.member.misses,
            }
          : null,
      };
    }),
  };
}

function bytes(n: number | null): string {
  if (n === null) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < u.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? x : x.toFixed(1)} ${u[i]}`;
}

/** The sample as a small table. */
export function renderSample(s: StatsSample): string {
  const head = [
    'swap',
    'resident',
    'pool',
    'stored',
    'ratio',
    'swap file',
    'faults/s',
    'evictions/s',
    'faults',
    'fault p50/p99 us',
  ];
  const rows = s.swaps.map((w, i) => [
    String(i),
    bytes(w.residentBytes),
    bytes(w.poolBytes),
    bytes(w.logicalBytes),
    w.compressionRatio ? `${w.compressionRatio.toFixed(2)}x` : '-',
    w.swapFileBytes === null ? 'none' : bytes(w.swapFileBytes),
    w.faultsPerSecond === null ? '-' : String(w.faultsPerSecond),
    w.evictionsPerSecond === null ? '-' : String(w.evictionsPerSecond),
    String(w.faults),
    `${w.latencyP50}/${w.latencyP99}`,
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]): string =>
    cells.map((x, c) => (c === 0 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join('  ');
  const out = [
    `tmem stats: pid ${s.pid}, ${new Date(s.time).toISOString()}, ${s.swaps.length} swap${s.swaps.length === 1 ? '' : 's'}`,
    line(head),
    ...rows.map(line),
  ];
  if (s.swaps.length === 0) out.push('(the process has no open swap)');
  s.swaps.forEach((w, i) => {
    const sh = w.shared;
    if (!sh) return;
    out.push(
      `swap ${i} shared pool '${sh.name}': ${bytes(sh.usedBytes)} of ${bytes(sh.bytes)} in use, ${sh.storedPages} pages, ` +
        `${sh.members} member${sh.members === 1 ? '' : 's'}; this process: ${sh.hits} hits, ${sh.misses} misses`,
    );
    const a = sh.audit;
    if (a)
      out.push(
        'error' in a
          ? `swap ${i} audit: ${a.error}`
          : `swap ${i} audit: ${a.pages} pages (${bytes(a.bytes)}) in the index, ${a.duplicates} stored twice`,
      );
  });
  out.push(
    'stored: bytes of pages out of residency (pool + same-filled); ratio: stored / compressed; - : needs two samples',
  );
  return out.join('\n') + '\n';
}

/** Runs `tmem stats`; resolves with the exit code. */
export async function runStats(o: StatsOptions, out: NodeJS.WriteStream = process.stdout): Promise<number> {
  let prev: { time: number; swaps: unknown[] } | null = null;
  const tty = out.isTTY === true && !o.json;
  let n = 0;
  let stop = false;
  const onSig = (): void => {
    stop = true;
  };
  process.once('SIGINT', onSig);
  try {
    for (;;) {
      let raw: { pid: number; time: number; swaps: unknown[] };
      try {
        raw = await fetchStats(o.pid);
      } catch (e) {
        const msg = (e as Error).message;
        if (n === 0) {
          process.stderr.write(`${msg}\n`);
          return 1;
        }
        process.stderr.write(`tmem stats: process ${o.pid} stopped answering (${msg})\n`);
        return 0;
      }
      const sample = toSample(raw, prev);
      if (o.audit) await addAudits(sample, o.pid);
      prev = raw;
      n++;
      if (o.json) out.write(JSON.stringify(sample) + '\n');
      else
        out.write(
          (tty && !o.once ? '\x1b[H\x1b[2J' : '') + renderSample(sample) + (tty && !o.once ? 'Ctrl-C to stop\n' : ''),
        );
      if (o.once || (o.count !== null && n >= o.count) || stop) return 0;
      await new Promise((resolve) => setTimeout(resolve, o.interval));
      if (stop) return 0;
    }
  } finally {
    process.off('SIGINT', onSig);
  }
}
