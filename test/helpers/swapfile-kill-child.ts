/**
 * Child process for the "SIGKILL leaves nothing" test:
 *   node swapfile-kill-child.js PATH
 *
 * Opens a swap with a named swap file at PATH, pushes incompressible pages
 * into it (region.evict()), writes `ready <pages in the file>` to stderr and
 * waits to be killed. It never closes anything.
 */
import * as fs from 'node:fs';
import { open } from '../../lib';
import { PAGE, fillPage } from './swapfile-pattern';

async function main(): Promise<void> {
  const file = process.argv[2];
  const swap = await open({ residentLimit: '64KiB', poolLimit: '64KiB', swapFile: { path: file, size: '4MiB' } });
  const pages = 256;
  const region = swap.region(pages * PAGE);
  const bytes = new Uint8Array(region.buffer);
  for (let p = 0; p < pages; p++) fillPage(bytes, p * PAGE, p, 0, 7, 'random');
  await region.evict();
  fs.writeSync(2, `ready ${swap.stats().swapFile!.pages}\n`);
  setInterval(() => undefined, 1000);
}

main().catch((e: unknown) => {
  fs.writeSync(2, `child: failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(5);
});
