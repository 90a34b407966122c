/**
 * The stats socket (lib/stats-server.ts, README "Stats socket") under hostile
 * clients and a hostile local user:
 *
 * - clients that reset the connection, never read a reply too big for the
 *   socket buffer and then close, hold it open without reading, or write
 *   garbage: the program survives, keeps serving, and cuts the idle one off;
 * - another uid that made the socket directory and placed a forged socket
 *   first: `tmem stats` refuses it (needs root: a second and third uid);
 * - sockets of dead pids are removed when a program starts serving.
 *
 * The programs are real child processes (helpers/stats-child.ts) with their
 * temporary directory (TMPDIR) inside the test's directory.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fetchStats } from '../lib/stats-server';
import { tempDir, withTimeout } from './helpers/harness';
import { OTHER_UID, noSecondUid, spawnAs } from './helpers/second-uid';

const CHILD = path.join(__dirname, 'helpers', 'stats-child.js');
const VICTIM_UID = 65533;

interface Program {
  child: ChildProcess;
  stderr: () => string;
  line: (re: RegExp) => Promise<RegExpExecArray>;
  exit: Promise<number | null>;
}

function watch(child: ChildProcess): Program {
  let stderr = '';
  const waiters: Array<() => void> = [];
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr += d;
    for (const w of waiters.splice(0)) w();
  });
  const exit = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      resolve(code);
      for (const w of waiters.splice(0)) w();
    }),
  );
  const line = (re: RegExp): Promise<RegExpExecArray> =>
    withTimeout(
      new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(stderr);
          if (m) resolve(m);
          else if (child.exitCode !== null || child.signalCode !== null)
            reject(new Error(`child ended (${child.exitCode ?? child.signalCode}) before ${re}: ${stderr}`));
          else waiters.push(check);
        };
        check();
      }),
      30000,
      `child line ${re}`,
    );
  return { child, stderr: () => stderr, line, exit };
}

function childEnv(tmp: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
  delete env.XDG_RUNTIME_DIR;
  delete env.TMEM_STATS;
  return env;
}

/** Runs fetchStats as a client whose own temporary directory is `tmp` (as `tmem stats` run by that user would). */
async function fetchWithTmp(tmp: string, pid: number): Promise<{ pid: number; swaps: unknown[] }> {
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = tmp; // this test file's own process env (ava runs each file apart)
  try {
    return await fetchStats(pid, 10000);
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
}

const connect = (file: string): Promise<net.Socket> =>
  withTimeout(
    new Promise((resolve, reject) => {
      const s = net.connect(file, () => resolve(s));
      s.once('error', reject);
    }),
    10000,
    `connect ${file}`,
  );

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test.serial(
  'hostile stats clients (reset, never read a 4 MiB reply then close, hold without reading, garbage) do not crash the program; it keeps serving',
  async (t) => {
    const tmp = tempDir(t, 'tmem-stats-');
    const p = watch(
      spawn(process.execPath, [CHILD, 'swap'], { stdio: ['pipe', 'ignore', 'pipe'], env: childEnv(tmp) }),
    );
    t.teardown(() => {
      p.child.kill('SIGKILL');
    });
    const file = (await p.line(/published (\S+)/))[1];
    await p.line(/listening/);
    const pid = p.child.pid!;
    t.log(`program ${pid} serves ${file}`);
    const first = await fetchWithTmp(tmp, pid);
    t.is(first.pid, pid);

    // Held: connects, never reads, never closes; a byte now and then tells when the server cut it off.
    const held = await connect(file);
    held.pause();
    const heldCut = new Promise<string>((resolve) => {
      const tick = setInterval(() => {
        if (!held.destroyed) held.write('.');
      }, 250);
      const end = (why: string): void => {
        clearInterval(tick);
        resolve(why);
      };
      held.once('error', (e: NodeJS.ErrnoException) => end(e.code ?? e.message));
      held.once('close', () => end('close'));
    });

    for (let i = 0; i < 10; i++) (await connect(file)).destroy(); // connect and reset at once
    const unread: net.Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const s = await connect(file);
      s.pause(); // the server fills the socket buffer and waits to write the rest
      s.on('error', () => undefined);
      unread.push(s);
    }
    await sleep(300);
    for (const s of unread) s.destroy(); // ... then the client goes: EPIPE / ECONNRESET on the server's writes
    for (let i = 0; i < 5; i++) {
      const s = await connect(file);
      s.on('error', () => undefined);
      s.write(randomBytes(256 * 1024)); // garbage, more than the server reads
      await sleep(20);
      s.destroy();
    }
    const talker = await connect(file);
    talker.on('error', () => undefined);
    talker.end('{"not":"a request"}\n'); // a little garbage, then it reads the answer
    const got: Buffer[] = [];
    talker.on('data', (d: Buffer) => got.push(d));
    await withTimeout(new Promise((resolve) => talker.once('close', resolve)), 30000, 'talker close');

    const after = await fetchWithTmp(tmp, pid);
    t.is(after.pid, pid, 'the program still answers');
    t.true(after.swaps.length >= 2, 'with its swap and its big source');
    t.true(JSON.stringify(after.swaps[0]).includes('residentBytes'));
    t.log(`held client: ${await withTimeout(heldCut, 60000, 'the server cuts off a client that never reads')}`);
    t.is(p.child.exitCode, null, `the program is alive: ${p.stderr()}`);
    p.child.stdin!.end();
    t.is(await withTimeout(p.exit, 30000, 'program exit'), 0, `the program ends normally: ${p.stderr()}`);
    t.notRegex(p.stderr(), /Error|ECONNRESET|EPIPE/);
  },
);

test.serial(
  'a stats directory and socket another uid placed first are not used: the program does not serve there, the client refuses them (needs root)',
  async (t) => {
    const why = noSecondUid();
    if (why) {
      t.log(`skipped: ${why}`);
      t.pass();
      return;
    }
    const tmp = tempDir(t, 'tmem-stats-');
    fs.chmodSync(tmp, 0o1777); // a shared temporary directory, like /tmp
    const victim = watch(spawnAs([process.execPath, CHILD, 'plain'], VICTIM_UID, childEnv(tmp)));
    t.teardown(() => {
      victim.child.kill('SIGKILL');
    });
    const pid = victim.child.pid!;
    // The attacker knows the pid and the naming: it makes the directory and listens where the program would.
    const attacker = spawnAs(
      [
        process.execPath,
        '-e',
        `
    const net = require('net'), fs = require('fs');
    const [tmp, pid, uid] = process.argv.slice(1);
    const dir = tmp + '/tmem-' + uid;
    fs.mkdirSync(dir, { mode: 0o777 }); fs.chmodSync(dir, 0o777);
    const body = JSON.stringify({ pid: Number(pid), time: Date.now(), swaps: [{ forged: true }] }) + '\\n';
    let n = 0;
    for (const f of [dir + '/tmem-' + pid + '.sock', tmp + '/tmem-' + pid + '.sock']) {
      net.createServer((c) => { c.on('error', () => {}); c.end(body); }).listen(f, () => {
        fs.chmodSync(f, 0o777);
        if (++n === 2) process.stderr.write('listening\\n');
      });
    }`,
        tmp,
        String(pid),
        String(VICTIM_UID),
      ],
      OTHER_UID,
    );
    const a = watch(attacker);
    t.teardown(() => {
      attacker.kill('SIGKILL');
    });
    await a.line(/listening/);
    victim.child.stdin!.write('go\n');
    await victim.line(/published/);
    await sleep(200); // let its server try (not a bound: the client must refuse whatever the timing)

    const got = await fetchWithTmp(tmp, pid).then(
      (v) => ({ v }),
      (e: NodeJS.ErrnoException) => ({ e }),
    );
    t.log('v' in got ? `client got: ${JSON.stringify(got.v)}` : `client: ${got.e.code}: ${got.e.message}`);
    t.false('v' in got && JSON.stringify(got.v).includes('forged'), 'the forged figures are never shown');
    t.true('e' in got && got.e.code === 'ERR_TMEM_STATS_SOCKET_UNTRUSTED', 'the client says why it refused');
    await victim.line(/TMEM_STATS_SOCKET|stats socket directory/);
    t.regex(victim.stderr(), /is owned by uid 65534/, 'the program says why it does not serve stats');
    t.is(victim.child.exitCode, null, 'the program goes on');
    victim.child.stdin!.end();
    t.is(await withTimeout(victim.exit, 30000, 'victim exit'), 0);
  },
);

test.serial(
  'sockets of dead pids in the stats directory are removed when a program starts serving; a live one stays',
  async (t) => {
    const tmp = tempDir(t, 'tmem-stats-');
    const dir = path.join(tmp, `tmem-${process.getuid!()}`);
    fs.mkdirSync(dir, { mode: 0o700 });
    // A dead program's socket: it listened and was SIGKILLed.
    const dead = spawn(
      process.execPath,
      [
        '-e',
        `require('net').createServer().listen(process.argv[1] + '/tmem-' + process.pid + '.sock', () => process.stderr.write('up\\n'))`,
        dir,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const d = watch(dead);
    await d.line(/up/);
    dead.kill('SIGKILL');
    await withTimeout(d.exit, 30000, 'dead exit');
    const stale = path.join(dir, `tmem-${dead.pid!}.sock`);
    t.true(fs.lstatSync(stale).isSocket(), 'a stale socket is there');
    // A live process's socket (this one's).
    const live = path.join(dir, `tmem-${process.pid}.sock`);
    const liveServer = net.createServer();
    await new Promise<void>((resolve) => liveServer.listen(live, resolve));
    t.teardown(() => {
      liveServer.close();
    });

    const p = watch(
      spawn(process.execPath, [CHILD, 'plain'], { stdio: ['pipe', 'ignore', 'pipe'], env: childEnv(tmp) }),
    );
    t.teardown(() => {
      p.child.kill('SIGKILL');
    });
    p.child.stdin!.write('go\n');
    await p.line(/listening/);
    t.false(fs.existsSync(stale), "the dead pid's socket is gone");
    t.true(fs.existsSync(live), "a live pid's socket stays");
    const pid = p.child.pid!;
    t.is((await fetchWithTmp(tmp, pid)).pid, pid);
    p.child.stdin!.end();
    t.is(await withTimeout(p.exit, 30000, 'exit'), 0);
  },
);
