/**
 * A small filesystem for the swap file ENOSPC test: a tmpfs with a size limit,
 * else a loop-mounted ext2 image; null (with the reasons) when neither can be
 * mounted here (not root, no mount in a container...).
 *
 * A test process that dies (watchdog SIGKILL, SIGBUS) runs no teardown and
 * leaves its mount behind; the directories carry the creating pid, so the next
 * run unmounts the ones whose process is gone (cleanStaleMounts).
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

const PREFIX = 'tmem-swapfile-small-';

/** Unmounts and removes small filesystems under `tmp` left by test processes that no longer exist. */
export function cleanStaleMounts(tmp: string): void {
  let mounts: string[];
  try {
    mounts = fs
      .readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '');
  } catch {
    return;
  }
  for (const mnt of mounts) {
    const dir = mnt.replace(/\\040/g, ' ');
    if (path.dirname(dir) !== tmp) continue;
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(path.basename(dir));
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // its process still runs
    } catch {
      /* gone */
    }
    try {
      run('umount', ['-l', dir]);
    } catch {
      /* not ours to unmount after all */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Mounts a filesystem of about `bytes` bytes at a new directory under `tmp`; the caller unmounts and removes it. */
export function mountSmallFs(tmp: string, bytes: number, reasons: string[]): SmallFs | null {
  cleanStaleMounts(tmp);
  const dir = fs.mkdtempSync(path.join(tmp, `${PREFIX}${process.pid}-`));
  const unmount = (): void => {
    try {
      run('umount', ['-l', dir]);
    } catch {
      /* not mounted */
    }
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(`${dir}.img`, { force: true });
  };
  try {
    run('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / 1024)}k,mode=0700`, 'tmpfs', dir]);
    return { dir, how: `tmpfs size=${Math.ceil(bytes / 1024)}k`, unmount };
  } catch (e) {
    reasons.push(`mount -t tmpfs: ${why(e)}`);
  }
  const image = `${dir}.img`;
  try {
    fs.writeFileSync(image, Buffer.alloc(0));
    fs.truncateSync(image, Math.max(bytes, 256 * 1024));
    run('mkfs.ext2', ['-q', '-F', '-m', '0', image]);
    run('mount', ['-o', 'loop', image, dir]);
    return { dir, how: `loop-mounted ext2 image of ${bytes} bytes`, unmount };
  } catch (e) {
    reasons.push(`loop-mounted ext2 image: ${why(e)}`);
  }
  unmount();
  return null;
}
