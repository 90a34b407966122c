/**
 * The swap file has no name while open (lib/swapfile.ts unlinks it at once, or
 * makes it with O_TMPFILE): tests that look at its bytes reach it through this
 * process's /proc/self/fd, as `<path> (deleted)` (named form) or
 * `<dir>/#<ino> (deleted)` (directory form).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** /proc/self/fd/N of the open swap file made at `where` (its path, or its directory); throws if none. */
export function openSwapFilePath(where: string): string {
  const found: string[] = [];
  for (const n of fs.readdirSync('/proc/self/fd')) {
    let link: string;
    try {
      link = fs.readlinkSync(`/proc/self/fd/${n}`);
    } catch {
      continue; // closed meanwhile (the fd of readdir itself)
    }
    if (!link.endsWith(' (deleted)')) continue;
    const name = link.slice(0, -' (deleted)'.length);
    if (name === where || (path.dirname(name) === where && path.basename(name).startsWith('#')))
      found.push(`/proc/self/fd/${n}`);
  }
  if (found.length !== 1) throw new Error(`expected one open swap file at ${where}, found ${found.length}`);
  return found[0];
}
