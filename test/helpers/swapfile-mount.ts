/**
 * A small filesystem for the swap file ENOSPC test: a tmpfs with a size limit,
 * else a loop-mounted ext2 image; null (with the reasons) when neither can be
 * mounted here (not root, no mount in a container...).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface SmallFs {
  dir: string;
  how: string;
  /** Lazy unmount (umount -l); never throws. */
  unmount(): void;
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { timeout: 10000, stdio: ['ignore', 'ignore', 'pipe'] });
}

function why(e: unknown): string {
  const err = e as { stderr?: Buffer; message?: string };
  const s = err.stderr?.toString().trim();
  return s || err.message || String(e);
}

/** Mounts a filesystem of about `bytes` bytes at a new directory under `parent`. */
export function mountSmallFs(parent: string, bytes: number, reasons: string[]): SmallFs | null {
  const dir = fs.mkdtempSync(path.join(parent, 'small-'));
  const unmount = (): void => {
    try { run('umount', ['-l', dir]); } catch { /* not mounted */ }
  };
  try {
    run('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / 1024)}k,mode=0700`, 'tmpfs', dir]);
    return { dir, how: `tmpfs size=${Math.ceil(bytes / 1024)}k`, unmount };
  } catch (e) {
    reasons.push(`mount -t tmpfs: ${why(e)}`);
  }
  const image = path.join(parent, 'small.img');
  try {
    fs.writeFileSync(image, Buffer.alloc(0));
    fs.truncateSync(image, Math.max(bytes, 256 * 1024));
    run('mkfs.ext2', ['-q', '-F', '-m', '0', image]);
    run('mount', ['-o', 'loop', image, dir]);
    return { dir, how: `loop-mounted ext2 image of ${bytes} bytes`, unmount };
  } catch (e) {
    reasons.push(`loop-mounted ext2 image: ${why(e)}`);
  }
  return null;
}
