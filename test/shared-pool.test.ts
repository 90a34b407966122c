/**
 * Shared pools (Xen tmem's shared ephemeral pools, README "Shared pools"): real processes
 * (node:cluster workers and unrelated ones) on one real System V segment, every byte of
 * every page they read checked against the file (bench/helpers/shared-member.ts).
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open } from '../lib';
import { auditShared, renderSample, toSample } from '../lib/cli/stats';
import { parseStatsArgs } from '../lib/cli/args';
import { writeSharedFile } from '../bench/helpers/shared-file';
import type { MemberResult } from '../bench/helpers/shared-member';
import { tempDir, withTimeout } from './helpers/harness';
import { noSecondUid, runAs } from './helpers/second-uid';

const MEMBER = path.join(__dirname, '..', 'bench', 'helpers', 'shared-member.js');
const CLI = path.join(__dirname, '..', 'lib', 'cli.js');
const MiB = 2 ** 20;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts a member (mode, settings); `lines` sees its stdout lines as they come, and may write to its stdin. */
function member(
  mode: string,
  cfg: object,
  timeoutMs: number,
  lines?: (l: string, kill: () => void, send: (s: string) => void) => void,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MEMBER, mode], {
      env: { ...process.env, TMEM_SHARED_CFG: JSON.stringify(cfg) },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: timeoutMs, // a hang guard only
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    const kill = (): boolean => child.kill('SIGKILL');
    const send = (x: string): boolean => child.stdin.write(x);
    child.stdin.on('error', () => undefined); // EPIPE: it has exited
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (lines) for (const l of d.split('\n')) if (l) lines(l, kill, send);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function parse<T>(r: Run, what: string): T {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code ?? r.signal}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

/** A pool name no other test run uses. */
const poolName = (t: string): string => `t-${t}-${process.pid}-${Date.now() % 100000}`;

/** A file of `pages` pages the members map (bench/helpers/shared-file.ts), in a directory the test removes. */
function sharedFile(t: ExecutionContext, what: string, pages: number): string {
  const file = path.join(tempDir(t, `tmem-shared-${what}-`), 'data');
  writeSharedFile(file, pages);
  return file;
}

/** native/shared_pool.cc segment_key: FNV-1a of "tmem-shared:<uid>:<name>", 31 bits. */
function segmentKey(uid: number, name: string): number {
  let h = 2166136261;
  for (const c of Buffer.from(`tmem-shared:${uid}:${name}`)) h = Math.imul(h ^ c, 16777619) >>> 0;
  const k = h & 0x7fffffff;
  return k === 0 ? 1 : k;
}

/** Whether /proc/sysvipc/shm (what `ipcs -m` lists) has a segment at `key`. */
function segmentAt(key: number): boolean {
  return fs
    .readFileSync('/proc/sysvipc/shm', 'utf8')
    .split('\n')
    .slice(1)
    .some((l) => l.trim() !== '' && Number(l.trim().split(/\s+/)[0]) === key);
}

test.serial(
  '4 cluster workers read one 256 MiB file at random: every byte is the file, the pool holds each page once (against 4 private swaps)',
  async (t) => {
    t.timeout(420_000);
    const pages = (256 * MiB) / 4096;
    const file = sharedFile(t, 'cluster', pages);
    const base = { file, pages, workers: 4, passes: 1, residentLimit: '4MiB', poolLimit: '512MiB' };

    const shared = parse<{ workers: MemberResult[] }>(
      await member('cluster', { ...base, shared: { name: poolName('cluster'), size: '192MiB' } }, 300_000),
      'shared cluster',
    ).workers;
    t.is(shared.length, 4);
    for (const w of shared) t.is(w.wrongPages, 0, `worker ${w.pid} read wrong bytes`);
    const g = shared[0].stats.shared!.group;
    const used = shared[0].stats.shared!.usedBytes;
    const audit = shared[0].audit!; // a scan of the index, taken just after those stats
    t.log(
      `shared: ${g.members} members, ${g.storedPages} pages stored (${(g.storedBytes / MiB).toFixed(1)} MiB, segment in use ${(used / MiB).toFixed(1)} MiB), ` +
        `audit ${audit.entries} pages, ${audit.duplicates} stored twice; ${g.hits} hits, ${g.misses} misses, ${g.puts} puts; ` +
        `fault p50 ${shared.map((w) => w.p50us.toFixed(0)).join('/')} us`,
    );
    t.is(g.members, 4);
    t.is(audit.duplicates, 0);
    // The counters stats() reads agree with the scan (puts may still trickle in between the two).
    t.true(Math.abs(g.storedPages - audit.entries) <= pages / 100, `counters ${g.storedPages}, scan ${audit.entries}`);
    t.true(g.storedPages <= pages);
    t.true(g.storedPages >= pages * 0.9, `only ${g.storedPages} of ${pages} pages stored`);
    // Each page is read by all 4 workers and stored once: most reads are hits on another's page.
    t.true(g.hits >= pages, `${g.hits} hits`);
    for (const w of shared) t.is(w.stats.compressedBytes, 0, 'a shared file leaves nothing in the private pool');

    const priv = parse<{ workers: MemberResult[] }>(await member('cluster', base, 300_000), 'private cluster').workers;
    for (const w of priv) t.is(w.wrongPages, 0);
    const privBytes = priv.reduce((s, w) => s + w.stats.poolBytes, 0);
    t.log(
      `private: 4 pools of ${priv.map((w) => (w.stats.poolBytes / MiB).toFixed(1)).join(' + ')} = ${(privBytes / MiB).toFixed(1)} MiB; ` +
        `shared segment in use ${(used / MiB).toFixed(1)} MiB (${((used / privBytes) * 100).toFixed(0)}%); ` +
        `fault p50 ${priv.map((w) => w.p50us.toFixed(0)).join('/')} us`,
    );
    t.true(used < privBytes / 2, `shared ${used} B against ${privBytes} B in 4 private pools`);
  },
);

test.serial(
  'a member SIGKILLed holding the lock or in the middle of a put: the others go on with every byte right, its slot is reclaimed',
  async (t) => {
    t.timeout(240_000);
    const pages = 4096;
    const file = sharedFile(t, 'kill', pages);
    const shared = { name: poolName('kill'), size: '64MiB' };
    const cfg = { file, pages, passes: 6, residentLimit: '2MiB', shared, waitStdin: true };
    // The readers take their final stats only when told, after the kills: they may read faster.
    const done: Promise<(s: string) => void>[] = [];
    const readers = [1, 2].map((seed) => {
      let told!: (send: (s: string) => void) => void;
      done.push(new Promise((resolve) => (told = resolve)));
      return member('read', { ...cfg, seed }, 200_000, (l, _kill, send) => l === 'read' && told(send));
    });
    await new Promise((r) => setTimeout(r, 1500)); // the readers have joined and are evicting
    // One takes the lock and is killed with it.
    let locked = false;
    const holder = await member('hold-lock', { shared }, 60_000, (l, kill) => {
      if (l === 'locked') {
        locked = true;
        setTimeout(kill, 200);
      }
    });
    t.true(locked, holder.stderr);
    t.is(holder.signal, 'SIGKILL');
    // Others die inside a put: after moving the ring's head, with the record half written, with the entry half written.
    for (const stage of [1, 2, 3]) {
      const r = await member('die-put', { shared, stage }, 60_000);
      t.is(r.signal, 'SIGKILL', `stage ${stage}: ${r.stderr}`);
    }
    // Both have read; a budget look (twice a second) of each frees the dead members' slots.
    const sends = await Promise.race([Promise.all(done), Promise.all(readers).then(() => [])]);
    await new Promise((r) => setTimeout(r, 1500));
    for (const send of sends) send('go\n');
    const results = (await Promise.all(readers)).map((r, i) => parse<MemberResult>(r, `reader ${i}`));
    for (const r of results) t.is(r.wrongPages, 0);
    const g = results[1].stats.shared!.group;
    t.log(
      `lock taken over ${g.lockSteals} times; members at the end ${g.members}; puts ${g.puts}, hits ${g.hits}, busy ${results.map((r) => r.stats.shared!.member.busy).join('/')}`,
    );
    t.true(g.lockSteals >= 1, 'the dead holder’s lock was taken over');
    t.true(g.members <= 2, `dead members' slots reclaimed (${g.members} members)`);
    t.true(g.puts > 0 && g.hits > 0);
  },
);

test.serial(
  'a member scribbling random bytes over the segment: the others never crash, never hang, never read a wrong byte',
  async (t) => {
    t.timeout(240_000);
    const pages = 4096;
    const file = sharedFile(t, 'scribble', pages);
    const shared = { name: poolName('scribble'), size: '32MiB' };
    const cfg = { file, pages, passes: 6, residentLimit: '4MiB', privatePages: 2048, shared };
    const readers = [member('read', { ...cfg, seed: 3 }, 200_000), member('read', { ...cfg, seed: 4 }, 200_000)];
    await new Promise((r) => setTimeout(r, 1500));
    // Three hostile members one after another. Once one has hit the header's magic or version, a
    // later one is refused at the door (TMEM_SHARED_FOREIGN) while the readers, already attached, go on.
    let scribbled = 0;
    let refused = 0;
    for (let round = 0; round < 3; round++) {
      const s = await member('scribble', { shared, ms: 1500, seed: 1000 * (round + 1) }, 60_000);
      if (s.code === 0 && s.stdout.includes('scribbled')) scribbled++;
      else if (round > 0 && s.code === 1 && /not a tmem shared pool of this version/.test(s.stderr)) refused++;
      else t.fail(`scribbler ${round}: exited ${s.code ?? s.signal}: ${s.stderr}`);
    }
    t.true(scribbled >= 1);
    t.log(`${scribbled} scribblers joined and wrote, ${refused} refused to join a damaged header`);
    const results = (await Promise.all(readers)).map((r, i) => parse<MemberResult>(r, `reader ${i}`));
    for (const r of results) {
      t.is(r.wrongPrivate, 0, 'a private region is never touched');
      // Random bytes never pass both CRC-32C checks; a forged record could (README "Who may share a pool").
      t.is(r.wrongPages, 0);
    }
    t.log(
      `records that failed their checks: ${results.map((r) => r.stats.shared!.member.bad).join('/')}; hits ${results.map((r) => r.stats.shared!.member.hits).join('/')}`,
    );
  },
);

test.serial(
  'memoryLimit counts the group: 2 members of a shared pool keep near one memoryLimit, 2 private ones take one each',
  async (t) => {
    t.timeout(420_000);
    const pages = (96 * MiB) / 4096;
    const file = sharedFile(t, 'budget', pages);
    const base = { file, pages, workers: 2, passes: 1, memoryLimit: '64MiB' };
    const priv = parse<{ workers: MemberResult[] }>(await member('cluster', base, 300_000), 'private').workers;
    const shared = parse<{ workers: MemberResult[] }>(
      await member('cluster', { ...base, shared: { name: poolName('budget'), size: '24MiB' } }, 300_000),
      'shared',
    ).workers;
    for (const w of [...priv, ...shared]) t.is(w.wrongPages, 0);
    const s = shared[0].stats.shared!;
    const rl = (ws: MemberResult[]): string =>
      ws.map((w) => (w.stats.budget.residentLimit / MiB).toFixed(1)).join(' + ');
    t.log(
      `private: residentLimit ${rl(priv)} MiB; shared: residentLimit ${rl(shared)} MiB, segment in use ${(s.usedBytes / MiB).toFixed(1)} MiB, ` +
        `members hold ${(s.group.heldBytes / MiB).toFixed(1)} MiB`,
    );
    t.true(s.usedBytes > 16 * MiB, `the segment filled (${s.usedBytes} B)`);
    // What each group holds: the members' resident, pool and metadata bytes (and the segment).
    // Two private members each take their own memoryLimit; the shared group keeps near one.
    const held = (w: MemberResult): number => w.stats.residentBytes + w.stats.poolBytes + w.stats.budget.metadataBytes;
    const privGroup = held(priv[0]) + held(priv[1]);
    const sharedGroup = s.group.heldBytes + s.usedBytes;
    t.log(`group: private ${(privGroup / MiB).toFixed(1)} MiB, shared ${(sharedGroup / MiB).toFixed(1)} MiB`);
    t.true(privGroup > 64 * MiB * 1.5, `private members use their own limits (${privGroup} B)`);
    t.true(sharedGroup < 64 * MiB * 1.25, `the shared group keeps near one memoryLimit (${sharedGroup} B)`);
  },
);

test('bad shared options are refused before anything is created', async (t) => {
  const bad: [unknown, string][] = [
    ['pool', 'ERR_INVALID_ARG_TYPE'],
    [{}, 'ERR_INVALID_ARG_TYPE'],
    [{ name: 'has space' }, 'ERR_INVALID_ARG_TYPE'],
    [{ name: 'x'.repeat(49) }, 'ERR_INVALID_ARG_TYPE'],
    [{ name: 'ok', size: '1MiB' }, 'ERR_OUT_OF_RANGE'],
    [{ name: 'ok', size: '65GiB' }, 'ERR_OUT_OF_RANGE'],
    [{ name: 'ok', size: 'lots' }, 'ERR_OUT_OF_RANGE'],
    [{ name: 'ok', sized: '8MiB' }, 'ERR_INVALID_ARG_VALUE'],
  ];
  for (const [shared, code] of bad) {
    const e = await t.throwsAsync(open({ shared } as never));
    t.is((e as NodeJS.ErrnoException).code, code, `${JSON.stringify(shared)}: ${e?.message}`);
    t.regex(e.message, /shared/);
  }
});

for (const how of ['exit', 'throw'] as const) {
  test.serial(
    `the only member ends by ${how === 'exit' ? 'process.exit(0)' : 'an uncaught exception'} without swap.close(): its segment is removed at exit`,
    async (t) => {
      t.timeout(150_000);
      const pages = 2048; // 8 MiB through a 2 MiB residentLimit: clean pages go to the pool
      const file = sharedFile(t, `leave-${how}`, pages);
      const name = poolName(`leave-${how}`);
      const key = segmentKey(process.getuid!(), name);
      t.teardown(() => void (segmentAt(key) && spawnSync('ipcrm', ['-M', String(key)])));
      t.false(segmentAt(key));
      let ready: { puts: number } | undefined;
      let listed = false;
      const r = await member(
        'leave',
        { file, pages, how, shared: { name, size: '16MiB' } },
        120_000,
        (l, _kill, send) => {
          if (!l.startsWith('ready ')) return;
          ready = JSON.parse(l.slice(6)) as { puts: number };
          listed = segmentAt(key); // alive, attached: the segment is there
          send('go\n');
        },
      );
      t.truthy(ready, r.stderr);
      t.true(ready!.puts > 0, 'the pool had pages');
      t.true(listed, 'the segment existed while the member ran');
      if (how === 'exit') t.is(r.code, 0, r.stderr);
      else {
        t.is(r.code, 1);
        t.regex(r.stderr, /a member that ends by an uncaught exception/);
      }
      t.false(segmentAt(key), `segment at key ${key} left behind`);
    },
  );
}

test('a segment another user made at the pool’s key is refused (TMEM_SHARED_FOREIGN), never joined (root: a second uid)', async (t) => {
  const why = noSecondUid();
  if (why) {
    t.log(`not run: ${why}`);
    t.pass();
    return;
  }
  const name = poolName('foreign');
  const key = segmentKey(process.getuid!(), name);
  // perl's shmget: the other user creates a world-writable segment at our key first.
  runAs(['perl', '-e', `use IPC::SysV qw(IPC_CREAT); shmget(${key}, 1048576, IPC_CREAT | 0666) // die "shmget: $!"`]);
  t.teardown(() => void spawnSync('ipcrm', ['-M', String(key)]));
  const e = await withTimeout(t.throwsAsync(open({ shared: { name } })), 30_000, 'open with a foreign segment');
  t.is((e as NodeJS.ErrnoException).code, 'TMEM_SHARED_FOREIGN', e?.message);
});

test('stats().shared of a member, and its line in `tmem stats`', async (t) => {
  const name = poolName('stats');
  const swap = await withTimeout(
    open({ residentLimit: '1MiB', shared: { name, size: '8MiB' }, statsSocket: true }),
    60_000,
    'open',
  );
  try {
    const s = swap.stats().shared!;
    t.is(s.name, name);
    t.is(s.bytes, 8 * MiB);
    t.true(s.usedBytes > 0 && s.usedBytes <= s.bytes);
    t.is(s.group.members, 1);
    t.is(s.group.storedPages, 0);
    t.is(s.group.storedBytes, 0);
    const sample = toSample({ pid: process.pid, time: Date.now(), swaps: [swap.stats()] }, null);
    t.deepEqual(sample.swaps[0].shared, {
      name,
      usedBytes: s.usedBytes,
      bytes: s.bytes,
      members: 1,
      storedPages: 0,
      hits: 0,
      misses: 0,
    });
    t.regex(
      renderSample(sample),
      new RegExp(`swap 0 shared pool '${name}': .* of 8\\.0 MiB in use, 0 pages, 1 member;`),
    );
    // `tmem stats --audit`: a scan of the index, from outside the member; none for a name with no segment.
    t.true(parseStatsArgs(['--audit', String(process.pid)]).audit);
    sample.swaps[0].shared!.audit = await auditShared(name);
    t.deepEqual(sample.swaps[0].shared!.audit, { pages: 0, bytes: 0, duplicates: 0 });
    t.regex(renderSample(sample), /swap 0 audit: 0 pages \(0 B\) in the index, 0 stored twice/);
    const gone = poolName('never-opened');
    t.deepEqual(await auditShared(gone), { error: 'the segment is gone (every member closed)' });
    t.false(segmentAt(segmentKey(process.getuid!(), gone)), 'an audit never creates a segment');
    // The command itself, against this process's stats socket.
    const cli = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const c = spawn(process.execPath, [CLI, 'stats', '--once', '--audit', String(process.pid)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 30_000,
        killSignal: 'SIGKILL',
      });
      let out = '';
      c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.once('error', reject);
      c.once('close', (code) => resolve({ code, out }));
    });
    t.is(cli.code, 0, cli.out);
    t.regex(cli.out, new RegExp(`swap 0 shared pool '${name}': .* 0 pages, 1 member;`));
    t.regex(cli.out, /swap 0 audit: 0 pages \(0 B\) in the index, 0 stored twice/);
  } finally {
    await swap.close();
  }
});
