/**
 * The remote tier's pieces, against real sockets: the native blocking RESP connection
 * (native/resp_conn.h) with a real redis-server, a real TCP server sending garbage, a
 * hung server and a refused port; the cluster slot function against the server's own
 * CLUSTER KEYSLOT; open()'s `remote` option checks (nothing connects on a bad one);
 * REMOTE in both page-state layouts (pagestate.ts, native/page_state.h).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { native, REPLY_BULK, REPLY_ERROR, REPLY_INTEGER, REPLY_NIL, REPLY_SIMPLE } from '../lib/native';
import { RespEncoder } from '../lib/remote/resp';
import { slotOfKey } from '../lib/remote/slot';
import { pageKey } from '../lib/remote/keys';
import * as PS from '../lib/dispatcher/pagestate';
import { open } from '../lib';
import { tempDir } from './helpers/harness';
import { freePort, garbageServer, haveRedis, startCluster, startRedis } from './helpers/redis';

const ETIMEDOUT = -110,
  ECONNREFUSED = -111,
  EPROTO = -71,
  ENOTCONN = -107;
const run = haveRedis ? test.serial : test.skip;

function exchange(conn: InstanceType<typeof native.RemoteConn>, cmds: (string | Uint8Array)[][], timeoutMs = 5000) {
  const enc = new RespEncoder();
  for (const c of cmds) enc.command(c);
  const out = new Uint8Array(1 << 16);
  const info = new Int32Array(3 * cmds.length);
  const n = conn.exchange(enc.buf, enc.length, enc.commands, timeoutMs, out, info);
  const replies = [];
  for (let i = 0; i < Math.max(0, n); i++)
    replies.push({
      kind: info[3 * i],
      bytes: Buffer.from(out.subarray(info[3 * i + 1], info[3 * i + 1] + info[3 * i + 2])),
    });
  return { n, replies };
}

run('RemoteConn: binary values, nil, integers and error replies from a real server', async (t) => {
  const srv = await startRedis(t);
  const conn = new native.RemoteConn('127.0.0.1', srv.port);
  t.is(conn.exchange(new Uint8Array(1), 1, 1, 100, new Uint8Array(8), new Int32Array(3)), ENOTCONN);
  t.is(conn.connect(5000), 0);
  const value = new Uint8Array(4100);
  for (let i = 0; i < value.length; i++) value[i] = (i * 31 + 7) & 0xff; // every byte value, CR and LF included
  const r = exchange(conn, [
    ['SET', 'k', value],
    ['GET', 'k'],
    ['GET', 'missing'],
    ['INCR', 'n'],
    ['INCR', 'k'],
    ['GETDEL', 'k'],
    ['EXISTS', 'k'],
  ]);
  t.is(r.n, 7);
  t.deepEqual(
    r.replies.map((x) => x.kind),
    [REPLY_SIMPLE, REPLY_BULK, REPLY_NIL, REPLY_INTEGER, REPLY_ERROR, REPLY_BULK, REPLY_INTEGER],
  );
  t.true(Buffer.from(value).equals(r.replies[1].bytes), 'every byte of the value');
  t.true(Buffer.from(value).equals(r.replies[5].bytes));
  t.is(r.replies[3].bytes.toString(), '1');
  t.regex(r.replies[4].bytes.toString(), /^ERR/);
  t.is(r.replies[6].bytes.toString(), '0');
  t.true(conn.connected);
  conn.close();
  t.false(conn.connected);
});

run('RemoteConn: a server that sends garbage, one that hangs, a refused port', async (t) => {
  const port = await garbageServer(t);
  const g = new native.RemoteConn('127.0.0.1', port);
  t.is(g.connect(5000), 0);
  t.is(exchange(g, [['GET', 'k']]).n, EPROTO);
  t.false(g.connected, 'closed after garbage');
  // Garbage that looks like the start of a bulk reply, then the server closes.
  const half = await garbageServer(t, '$4096\r\nabc');
  const h = new native.RemoteConn('127.0.0.1', half);
  t.is(h.connect(5000), 0);
  const r = exchange(h, [['GET', 'k']], 300);
  t.true(r.n === ETIMEDOUT || r.n < 0, `got ${r.n}`);

  const srv = await startRedis(t);
  const c = new native.RemoteConn('127.0.0.1', srv.port);
  t.is(c.connect(5000), 0);
  srv.stop();
  t.teardown(() => srv.cont());
  t.is(exchange(c, [['PING']], 200).n, ETIMEDOUT, 'the deadline of a hung server');
  srv.cont();
  const refused = new native.RemoteConn('127.0.0.1', await freePort());
  t.is(refused.connect(5000), ECONNREFUSED);
});

run("the cluster slot of a page key is the server's CLUSTER KEYSLOT", async (t) => {
  const [n] = await startCluster(t, 3);
  const keys = [
    pageKey('tmem:', '0123456789abcdef', 1, 0),
    pageKey('tmem:', 'ffeeddccbbaa0099', 77, 64 * 1000 + 5),
    'plain',
    'a{}b',
    '{x}y',
  ];
  const lines = n
    .cliPipe(keys.map((k) => `CLUSTER KEYSLOT ${k}`))
    .trim()
    .split('\n');
  t.deepEqual(keys.map(slotOfKey), lines.map(Number));
});

test('bad remote options are refused with a code before anything connects', async (t) => {
  let connections = 0;
  const srv = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => srv.close());
  const url = `redis://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  const dir = tempDir(t, 'tmem-remote-opt-');
  const swapFile = { path: dir, size: '1MiB' };
  const cases: [unknown, string, RegExp][] = [
    [null, 'ERR_INVALID_ARG_TYPE', /remote must be an object/],
    [{ url, frob: 1 }, 'ERR_INVALID_ARG_VALUE', /unknown key in remote: 'frob'/],
    [{}, 'ERR_INVALID_ARG_VALUE', /exactly one of url/],
    [{ url, cluster: [url] }, 'ERR_INVALID_ARG_VALUE', /exactly one of url/],
    [{ url: 42 }, 'ERR_INVALID_ARG_TYPE', /remote.url must be/],
    [{ url: 'http://x' }, 'ERR_INVALID_ARG_VALUE', /redis:\/\//],
    [{ url: 'rediss://x:1' }, 'ERR_INVALID_ARG_VALUE', /TLS/],
    [{ url: 'redis://x:1/3' }, 'ERR_INVALID_ARG_VALUE', /database 0/],
    [{ cluster: [] }, 'ERR_INVALID_ARG_TYPE', /non-empty array/],
    [{ cluster: [url, 'nope'] }, 'ERR_INVALID_ARG_VALUE', /remote.cluster\[1\]/],
    [{ url, timeout: 0 }, 'ERR_OUT_OF_RANGE', /remote.timeout/],
    [{ url, timeout: '5' }, 'ERR_INVALID_ARG_TYPE', /remote.timeout/],
    [{ url, leaseTtl: 10 }, 'ERR_OUT_OF_RANGE', /remote.leaseTtl/],
    [{ url, keyPrefix: 'a{b' }, 'ERR_INVALID_ARG_VALUE', /keyPrefix/],
    [{ url, ephemeralTtl: 999 }, 'ERR_OUT_OF_RANGE', /remote.ephemeralTtl/],
    [{ url, ephemeralTtl: 1.5e3 + 0.5 }, 'ERR_OUT_OF_RANGE', /remote.ephemeralTtl/],
    [{ url, maxBytes: '12 parsecs' }, 'ERR_OUT_OF_RANGE', /remote.maxBytes/],
    [{ url, maxBytes: '1KiB' }, 'ERR_OUT_OF_RANGE', /remote.maxBytes must be at least 64KiB/],
    [{ url, maxBytes: true }, 'ERR_INVALID_ARG_TYPE', /remote.maxBytes/],
    [{ url, repatriate: 'yes' }, 'ERR_INVALID_ARG_TYPE', /remote.repatriate must be a boolean/],
  ];
  for (const [remote, code, message] of cases) {
    await t.throwsAsync(open({ swapFile, remote } as never), { code, message }, JSON.stringify(remote));
  }
  // Without swapFile a remote tier is accepted (only mapped files' clean pages go remote), but a bad one still throws first.
  await t.throwsAsync(open({ remote: { url, timeout: -1 } }), { code: 'ERR_OUT_OF_RANGE', message: /remote.timeout/ });
  t.is(connections, 0, 'nothing connected');
});

run('an unreachable server: open() rejects with the error, naming the server, and leaves nothing open', async (t) => {
  const port = await freePort();
  const dir = tempDir(t, 'tmem-remote-opt-');
  await t.throwsAsync(open({ swapFile: { path: dir, size: '1MiB' }, remote: { url: `redis://127.0.0.1:${port}` } }), {
    code: 'ECONNREFUSED',
    message: new RegExp(`remote server \\(127.0.0.1:${port}\\) could not be reached`),
  });
});

test('REMOTE is page state 9 in pagestate.ts and native/page_state.h, and not a fast state', (t) => {
  t.is(PS.REMOTE, 9);
  t.false(PS.isFast(PS.REMOTE, false));
  const h = fs.readFileSync(path.join(__dirname, '..', '..', 'native', 'page_state.h'), 'utf8');
  const names = [
    'NEVER',
    'ACTIVE',
    'CLEAN',
    'STAGED',
    'STORED',
    'SAME',
    'SWAPPED',
    'READING',
    'BUSY',
    'REMOTE',
  ] as const;
  for (const n of names) {
    const m = new RegExp(`\\b${n} = (\\d+)`).exec(h);
    t.truthy(m, `${n} in page_state.h`);
    t.is(Number(m![1]), PS[n], n);
  }
});
