/**
 * The remote tier (lib/dispatcher/remote.ts) against real redis-servers started here:
 * a region many times the pool goes to the swap file and, with it, to Redis (one
 * server, a 3-master cluster); the server is SIGKILLed and restarted empty, SIGSTOPped,
 * made to refuse puts (maxmemory), has values corrupted in place (SETRANGE); a process
 * dies with its swap open (its keys are cleaned up). Pages come back into a pool with room
 * (repatriation); remote.maxBytes holds; a mapped file's clean pages go remote with a TTL
 * (no swap file), are corrupted, lost, or outlived by a change of the file. Every byte is
 * checked each time.
 * The swap runs in a child process (helpers/remote-child.ts): a hang fails one test.
 */
import test from 'ava';
import { fork } from 'node:child_process';
import * as path from 'node:path';
import type { Swap, SwapStats } from '../lib';
import { open } from '../lib';
import { main as cli } from '../lib/cli';
import { tempDir } from './helpers/harness';
import { haveRedis, startRedis, startCluster, type RedisServer } from './helpers/redis';

const CHILD = path.join(__dirname, 'helpers', 'remote-child.js');
const HANG_GUARD_MS = 120000;

interface Run {
  evicted: SwapStats;
  done?: { bad: number; stats: SwapStats };
  code: number | null;
  stderr: string;
}

/** Runs the child; `between` runs after its eviction, before it reads everything back. */
function runChild(
  args: Record<string, unknown>,
  between: (child: ReturnType<typeof fork>) => Promise<'go' | 'rewrite' | 'exit-without-close' | 'kill'>,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [JSON.stringify(args)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS);
    const run: Partial<Run> = {};
    child.on('message', (m: { kind: string; stats: SwapStats; bad?: number }) => {
      if (m.kind === 'evicted') {
        run.evicted = m.stats;
        between(child).then(
          (what) => (what === 'kill' ? child.kill('SIGKILL') : child.send(what)),
          (e: unknown) => {
            child.kill('SIGKILL');
            reject(e instanceof Error ? e : new Error(String(e)));
          },
        );
      } else if (m.kind === 'done') run.done = { bad: m.bad!, stats: m.stats };
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!run.evicted) reject(new Error(`the child exited (${code}) before evicting: ${stderr}`));
      else resolve({ ...(run as Run), code, stderr });
    });
  });
}

const base = { pages: 2048, poolLimit: '256KiB', residentLimit: '512KiB' };
const run = haveRedis ? test.serial : test.skip;

function keys(s: RedisServer, pattern = 'tmem:F{*'): string[] {
  return s
    .cli('--scan', '--pattern', pattern)
    .split('\n')
    .filter((k) => k.length > 0);
}

run('a region many times the pool goes to one Redis server and reads back every byte', async (t) => {
  const srv = await startRedis(t);
  const dir = tempDir(t, 'tmem-remote-');
  const r = await runChild({ ...base, dir, remote: { url: srv.url, timeout: 2000 } }, () => {
    t.true(keys(srv).length > 0, 'page keys on the server');
    return Promise.resolve('go');
  });
  t.is(r.code, 0, r.stderr);
  t.true(r.evicted.remote!.puts > base.pages / 2, `puts ${r.evicted.remote!.puts}`);
  t.is(r.done!.bad, 0);
  t.true(r.done!.stats.faults.remote > 0, 'faults served from Redis');
  t.is(r.done!.stats.remote!.badValues, 0);
  t.deepEqual(keys(srv), [], "the swap's keys are gone after close");
  t.is(srv.cli('EXISTS', `tmem:L{${r.evicted.remote!.swapId}}`).trim(), '0', 'and its lease');
});

run('a forward read of remote pages prefetches the next ones into a pool with room', async (t) => {
  const srv = await startRedis(t);
  // The pool writes back at 256 KiB, then has 8 MiB again for the read-back (a pool at its
  // limit has no room for prefetched pages: the steady state of the other tests).
  // Repatriation off: it would bring the pages back before the read-back (the next test).
  const remote = { url: srv.url, timeout: 2000, repatriate: false };
  const args = { ...base, poolLimit: '8MiB', writebackPoolLimit: '256KiB', remote };
  const r = await runChild({ ...args, dir: tempDir(t, 'tmem-remote-') }, () => Promise.resolve('go'));
  t.is(r.code, 0, r.stderr);
  t.true(r.evicted.remote!.puts > base.pages / 2, `puts ${r.evicted.remote!.puts}`);
  t.is(r.done!.bad, 0);
  const s = r.done!.stats;
  t.true(s.remote!.prefetched > 0, `prefetched ${s.remote!.prefetched}: ${JSON.stringify(s.remote)}`);
  // Seven neighbours per fetch: far fewer faults reach the server than pages it held.
  t.true(
    s.faults.remote < r.evicted.remote!.pages / 2,
    `remote faults ${s.faults.remote} of ${r.evicted.remote!.pages}`,
  );
  t.is(s.remote!.badValues, 0);
});

run('a 3-master Redis Cluster: pages spread over the masters, every byte back', async (t) => {
  const nodes = await startCluster(t, 3);
  const dir = tempDir(t, 'tmem-remote-');
  const perNode: number[] = [];
  const r = await runChild({ ...base, dir, remote: { cluster: [nodes[0].url], timeout: 2000 } }, () => {
    for (const n of nodes) perNode.push(keys(n).length);
    // The slot of a page key, as the server computes it, is the one tmem sent it to (else: MOVED).
    return Promise.resolve('go');
  });
  t.is(r.code, 0, r.stderr);
  t.true(
    perNode.every((n) => n > 0),
    `keys per master: ${perNode.join(', ')}`,
  );
  t.is(r.evicted.remote!.moved, 0, 'no MOVED: the slot map and the hash tags agree');
  t.is(r.done!.bad, 0);
  t.true(r.done!.stats.faults.remote > 0);
  for (const n of nodes) t.deepEqual(keys(n), []);

  // A mapped file's clean pages (C keys, the same hash tags) on the same cluster.
  const perNodeClean: number[] = [];
  const c = await runChild(
    { ...base, file: true, noSwapFile: true, dir, remote: { cluster: [nodes[0].url], timeout: 2000 } },
    () => {
      for (const n of nodes) perNodeClean.push(keys(n, 'tmem:C{*').length);
      return Promise.resolve('go');
    },
  );
  t.is(c.code, 0, c.stderr);
  t.true(
    perNodeClean.every((n) => n > 0),
    `clean keys per master: ${perNodeClean.join(', ')}`,
  );
  t.is(c.evicted.remote!.moved, 0);
  t.is(c.done!.bad, 0);
  t.true(c.done!.stats.remote!.cleanHits > 0, JSON.stringify(c.done!.stats.remote));
  for (const n of nodes) t.deepEqual(keys(n, 'tmem:[CF]{*'), []);
});

run('the server SIGKILLed and restarted empty: the pages come back from the swap file', async (t) => {
  const srv = await startRedis(t);
  const dir = tempDir(t, 'tmem-remote-');
  const r = await runChild({ ...base, dir, remote: { url: srv.url, timeout: 2000 } }, async () => {
    await srv.restart();
    return 'go';
  });
  t.is(r.code, 0, r.stderr);
  t.true(r.evicted.remote!.pages > 0);
  t.is(r.done!.bad, 0);
  const s = r.done!.stats.remote!;
  t.is(s.hits, 0, 'nothing was served from the empty server');
  t.true(s.lost + s.misses + s.skipped > 0, JSON.stringify(s));
});

run('the server hung (SIGSTOP): faults pass the deadline and read the swap file', async (t) => {
  const srv = await startRedis(t);
  const dir = tempDir(t, 'tmem-remote-');
  const r = await runChild({ ...base, dir, remote: { url: srv.url, timeout: 200 } }, () => {
    srv.stop();
    return Promise.resolve('go');
  });
  srv.cont();
  t.is(r.code, 0, r.stderr);
  t.is(r.done!.bad, 0);
  const s = r.done!.stats.remote!;
  t.true(s.errors > 0, 'a request passed its deadline');
  t.true(s.skipped > 0, 'later faults went straight to the swap file');
});

run('maxmemory reached: puts are refused and the pages stay in the swap file', async (t) => {
  const srv = await startRedis(t, ['--maxmemory', '2mb', '--maxmemory-policy', 'volatile-lru']);
  const dir = tempDir(t, 'tmem-remote-');
  const r = await runChild({ ...base, pages: 4096, dir, remote: { url: srv.url, timeout: 2000 } }, () =>
    Promise.resolve('go'),
  );
  t.is(r.code, 0, r.stderr);
  t.true(r.evicted.remote!.refused > 0, `refused ${r.evicted.remote!.refused}`);
  t.is(r.done!.bad, 0);
});

run('values corrupted in place (SETRANGE) are caught and never handed back', async (t) => {
  const srv = await startRedis(t);
  const dir = tempDir(t, 'tmem-remote-');
  let corrupted = 0;
  const r = await runChild({ ...base, dir, remote: { url: srv.url, timeout: 2000 } }, () => {
    const ks = keys(srv);
    const cmds: string[] = [];
    for (let i = 0; i < ks.length; i += 4) cmds.push(`SETRANGE ${ks[i]} 40 tmem`); // a byte of the object
    for (let i = 1; i < ks.length; i += 4) cmds.push(`SETRANGE ${ks[i]} 0 XXXX`); // its generation
    for (let i = 2; i < ks.length; i += 4) cmds.push(`SET ${ks[i]} short`); // truncated
    corrupted = cmds.length;
    srv.cliPipe(cmds);
    return Promise.resolve('go');
  });
  t.true(corrupted > 0);
  t.is(r.code, 0, r.stderr);
  t.is(r.done!.bad, 0, 'every byte as written');
  t.true(r.done!.stats.remote!.badValues > 0, JSON.stringify(r.done!.stats.remote));
});

run('a process that dies with its swap open: its keys are cleaned up once its lease lapses', async (t) => {
  const srv = await startRedis(t);
  const dir = tempDir(t, 'tmem-remote-');
  const remote = { url: srv.url, timeout: 2000, leaseTtl: 1000 };
  let live: Swap | undefined;
  const r = await runChild({ ...base, dir, remote }, async () => {
    // A swap opened while the other is alive: its clean-up on open leaves the live one's keys alone.
    live = await open({ residentLimit: '64KiB', swapFile: { path: dir, size: '1MiB' }, remote });
    const gc = await live._remote!.gc;
    t.is(gc?.swaps, 0);
    t.is(gc?.live, 1);
    return 'kill';
  });
  t.teardown(() => live?.close());
  t.is(r.done, undefined);
  const id = r.evicted.remote!.swapId;
  t.true(keys(srv, `tmem:F{${id}:*`).length > 0, 'the dead swap left keys');
  await new Promise((res) => setTimeout(res, 1500)); // its lease lapses; the live one's is renewed
  t.is(srv.cli('EXISTS', `tmem:L{${id}}`).trim(), '0');
  t.is(await cli(['remote', 'gc', srv.url]), 0);
  t.deepEqual(keys(srv, `tmem:F{${id}:*`), [], 'tmem remote gc deleted them');
  t.is(srv.cli('EXISTS', `tmem:L{${live!.stats().remote!.swapId}}`).trim(), '1', 'the live lease stays');

  // Another dead swap: the next open() cleans up after it.
  const r2 = await runChild({ ...base, dir, remote }, () => Promise.resolve('kill'));
  const id2 = r2.evicted.remote!.swapId;
  await new Promise((res) => setTimeout(res, 1500));
  const next = await open({ residentLimit: '64KiB', swapFile: { path: dir, size: '1MiB' }, remote });
  t.teardown(() => next.close());
  const gc = await next._remote!.gc;
  t.true(gc!.swaps >= 1 && gc!.keys > 0, JSON.stringify(gc));
  t.deepEqual(keys(srv, `tmem:F{${id2}:*`), []);
});

run('repatriation: remote pages come back into a pool that has room, and read back from there', async (t) => {
  const srv = await startRedis(t);
  const args = { ...base, poolLimit: '16MiB', writebackPoolLimit: '256KiB', repatriation: true };
  const r = await runChild({ ...args, dir: tempDir(t, 'tmem-remote-'), remote: { url: srv.url, timeout: 2000 } }, () =>
    Promise.resolve('go'),
  );
  t.is(r.code, 0, r.stderr);
  const e = r.evicted.remote!;
  t.true(e.puts > base.pages / 2, `puts ${e.puts}`);
  t.true(e.repatriated > base.pages / 2, `repatriated ${e.repatriated}: ${JSON.stringify(e)}`);
  t.is(e.pages, e.puts - e.repatriated - e.prefetched - e.hits - e.misses - e.badValues - e.lost, JSON.stringify(e));
  t.is(r.done!.bad, 0);
  t.true(
    r.done!.stats.faults.remote < base.pages / 8,
    `remote faults after repatriation ${r.done!.stats.faults.remote}`,
  );
});

run('remote.maxBytes caps the bytes this swap keeps on the server', async (t) => {
  const srv = await startRedis(t);
  const remote = { url: srv.url, timeout: 2000, maxBytes: '64KiB', repatriate: false };
  let used = 0;
  const r = await runChild({ ...base, dir: tempDir(t, 'tmem-remote-'), remote }, () => {
    const ks = keys(srv);
    if (ks.length > 0)
      used = srv
        .cliPipe(ks.map((k) => `STRLEN ${k}`))
        .trim()
        .split('\n')
        .map(Number)
        .reduce((a, b) => a + b, 0);
    return Promise.resolve('go');
  });
  t.is(r.code, 0, r.stderr);
  const e = r.evicted.remote!;
  t.true(e.puts > 0 && e.overLimit > 0, JSON.stringify(e));
  t.true(e.bytes <= 65536, `bytes ${e.bytes}`);
  t.is(used, e.bytes, 'the bytes on the server are the ones counted');
  t.is(r.done!.bad, 0);
});

/** The remote values under a pattern with their PTTL. */
function pttls(s: RedisServer, pattern: string): number[] {
  const ks = keys(s, pattern);
  return ks.length === 0
    ? []
    : s
        .cliPipe(ks.map((k) => `PTTL ${k}`))
        .trim()
        .split('\n')
        .map(Number);
}

const cleanBase = { ...base, file: true, noSwapFile: true };

run("a mapped file's clean pages go remote with a TTL, without a swap file, and read back", async (t) => {
  const srv = await startRedis(t);
  const remote = { url: srv.url, timeout: 2000, ephemeralTtl: 120000 };
  let ttls: number[] = [];
  const r = await runChild({ ...cleanBase, dir: tempDir(t, 'tmem-remote-'), remote }, () => {
    ttls = pttls(srv, 'tmem:C{*');
    return Promise.resolve('go');
  });
  t.is(r.code, 0, r.stderr);
  const e = r.evicted.remote!;
  t.true(e.cleanPuts > base.pages / 2, `clean puts ${e.cleanPuts}: ${JSON.stringify(e)}`);
  t.is(e.pages, 0, 'no persistent page goes remote without a second copy');
  t.is(ttls.length, e.cleanPages);
  t.true(
    ttls.every((ms) => ms > 0 && ms <= 120000),
    `every clean key has a TTL: ${ttls.slice(0, 5).join(', ')}`,
  );
  t.is(r.done!.bad, 0);
  const s = r.done!.stats;
  t.true(s.remote!.cleanHits > base.pages / 2, JSON.stringify(s.remote));
  // A hit the kernel refused to install (EAGAIN: the fault is retried, from the file) is not a remote fault.
  t.true(s.faults.remote <= s.remote!.cleanHits && s.faults.remote > base.pages / 2, JSON.stringify(s.faults));
  t.is(s.remote!.badValues, 0);
  t.deepEqual(keys(srv, 'tmem:[CF]{*'), [], "the swap's keys are gone after close");
});

run('clean pages corrupted, deleted, or on a server restarted empty: the file is read instead', async (t) => {
  for (const damage of ['corrupt', 'restart'] as const) {
    const srv = await startRedis(t);
    let hurt = 0;
    const r = await runChild(
      { ...cleanBase, dir: tempDir(t, 'tmem-remote-'), remote: { url: srv.url, timeout: 2000 } },
      async () => {
        const ks = keys(srv, 'tmem:C{*');
        if (damage === 'restart') {
          await srv.restart();
          return 'go';
        }
        const cmds: string[] = [];
        for (let i = 0; i < ks.length; i += 3) cmds.push(`SETRANGE ${ks[i]} 40 tmem`);
        for (let i = 1; i < ks.length; i += 3) cmds.push(`DEL ${ks[i]}`);
        hurt = cmds.length;
        srv.cliPipe(cmds);
        return 'go';
      },
    );
    t.is(r.code, 0, r.stderr);
    t.is(r.done!.bad, 0, `${damage}: every byte as in the file`);
    const s = r.done!.stats.remote!;
    if (damage === 'corrupt') {
      t.true(hurt > 0);
      t.true(s.badValues > 0 && s.misses > 0, JSON.stringify(s));
      t.true(s.cleanHits > 0, 'the untouched ones still served');
    } else {
      t.is(s.cleanHits, 0, JSON.stringify(s));
      t.true(s.lost + s.misses + s.errors > 0, JSON.stringify(s));
    }
  }
});

run('a mapped file rewritten while its clean pages are remote: the new bytes, never the old copies', async (t) => {
  const srv = await startRedis(t);
  const r = await runChild(
    { ...cleanBase, dir: tempDir(t, 'tmem-remote-'), remote: { url: srv.url, timeout: 2000 } },
    () => Promise.resolve('rewrite'),
  );
  t.is(r.code, 0, r.stderr);
  t.true(r.evicted.remote!.cleanPages > base.pages / 2, JSON.stringify(r.evicted.remote));
  t.is(r.done!.bad, 0, 'every byte of the new file');
  t.is(r.done!.stats.remote!.cleanHits, 0, JSON.stringify(r.done!.stats.remote));
});

run('a fault waiting for a hung server does not stop the others: the dispatcher serves them meanwhile', async (t) => {
  const srv = await startRedis(t);
  const child = fork(
    path.join(__dirname, 'helpers', 'remote-overlap.js'),
    [JSON.stringify({ url: srv.url, dir: tempDir(t, 'tmem-remote-'), pages: 1024 })],
    { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS);
  t.teardown(() => {
    clearTimeout(timer);
    srv.cont();
  });
  const result = await new Promise<Record<string, number | boolean>>((resolve, reject) => {
    child.on('message', (m: { kind: string; stats?: SwapStats } & Record<string, number | boolean>) => {
      if (m.kind === 'evicted') {
        t.true(m.stats!.remote!.pages > 0, JSON.stringify(m.stats!.remote));
        srv.stop(); // SIGSTOP: a GETDEL sent now waits until the deadline (2.5 s)
        child.send('go');
      } else if (m.kind === 'result') resolve(m);
    });
    child.on('exit', (code) => reject(new Error(`the child exited (${code}): ${stderr}`)));
  });
  t.log(JSON.stringify(result));
  t.true((result.stalledAt as number) < 1024, `the Worker stalled on a remote page: ${JSON.stringify(result)}`);
  t.is(result.servedWhileStalled, 256, 'every fault of the other region was served');
  t.false(result.workerMovedMeanwhile, "and while the Worker's fault still waited");
  t.is(result.errorsMeanwhile, 0, 'before its deadline');
  t.is(result.bad, 0, 'the Worker read every page right in the end (from the swap file)');
});
