/**
 * The file the shared-pool tests map: page p's bytes are a function of p alone, so a
 * member checks every byte it reads without holding a copy. Text-like (LZ4 takes it
 * to about a third) with a few pseudo-random bytes per line, so no two pages are equal.
 */
import * as fs from 'node:fs';

export const PAGE = 4096;

/** Writes page p's bytes into dst at off. */
export function filePage(dst: Uint8Array, off: number, p: number): void {
  let x = (p + 1) * 2654435761;
  for (let line = 0; line < PAGE / 64; line++) {
    const o = off + line * 64;
    const head = `page ${p} line ${line} `;
    for (let i = 0; i < 64; i++) dst[o + i] = i < head.length ? head.charCodeAt(i) : 46;
    for (let i = 48; i < 64; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      dst[o + i] = 97 + ((x >>> 0) % 26);
    }
  }
}

/** Creates `path` of `pages` pages (1 MiB at a time). */
export function writeSharedFile(path: string, pages: number): void {
  const fd = fs.openSync(path, 'w', 0o600);
  const chunk = Buffer.alloc(256 * PAGE);
  try {
    for (let p = 0; p < pages; p += 256) {
      const n = Math.min(256, pages - p);
      for (let k = 0; k < n; k++) filePage(chunk, k * PAGE, p + k);
      fs.writeSync(fd, chunk, 0, n * PAGE, p * PAGE);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Index of the first byte of page p (in buf at off) that is not the file's, or -1. */
export function badByte(buf: Uint8Array, off: number, p: number, scratch: Uint8Array): number {
  filePage(scratch, 0, p);
  for (let i = 0; i < PAGE; i++) if (buf[off + i] !== scratch[i]) return i;
  return -1;
}
