/**
 * Child process for the stats socket tests (test/stats-socket.test.ts):
 *   node stats-child.js swap      opens a real swap with statsSocket: true, plus a
 *                                 4 MiB stats source (a reply too big for the socket
 *                                 buffer, so a client that does not read leaves the
 *                                 server mid-write)
 *   node stats-child.js plain     waits for a line on stdin, then publishes a small
 *                                 stats source (no swap: runs as any uid)
 *
 * Writes `published <socket path>` to stderr once it publishes and `listening`
 * once the socket is there; exits 0 when stdin ends (closing its swap). An
 * uncaught exception (a client that crashed it) exits 1 with the stack.
 */
import * as fs from 'node:fs';
import { open } from '../../lib';
import { publishStats, statsSocketPath } from '../../lib/stats-server';

const say = (s: string): void => {
  fs.writeSync(2, `${s}\n`);
};

async function main(): Promise<void> {
  const mode = process.argv[2];
  let close = (): Promise<void> => Promise.resolve();
  if (mode === 'swap') {
    const swap = await open({ residentLimit: '1MiB', statsSocket: true });
    const region = swap.region('1MiB');
    new Uint8Array(region.buffer).fill(7);
    const filler = 'x'.repeat(4 * 2 ** 20);
    publishStats(() => ({ filler }));
    close = () => swap.close();
  } else {
    await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
    publishStats(() => ({ real: true }));
  }
  const file = statsSocketPath(process.pid);
  say(`published ${file}`);
  const poll = setInterval(() => {
    if (fs.existsSync(file)) {
      clearInterval(poll);
      say('listening');
    }
  }, 10);
  process.stdin.on('end', () => {
    clearInterval(poll);
    close().then(
      () => process.exit(0),
      (e: unknown) => {
        say(`child: close failed: ${String(e)}`);
        process.exit(6);
      },
    );
  });
  process.stdin.resume();
}

main().catch((e: unknown) => {
  say(`child: failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(5);
});
