/**
 * Page compression for the fault path and for eviction, without allocation.
 *
 * Stored object format (what the tmem pool holds for one page):
 *
 *   4096 bytes     a raw page (it did not compress under HUGE_THRESHOLD): the
 *                  page itself, so that it fits the pool's 4096-byte limit
 *   2..3073 bytes  byte 0 is the codec (1 = LZ4 block, 2 = zstd frame), the
 *                  payload follows
 *
 * The length alone tells a raw page (see isRaw). native/page_codec.cc decodes
 * the same format on the fault path.
 *
 * LZ4 is the system's liblz4 through the addon (LZ4_compress_default and
 * LZ4_decompress_safe into caller buffers; the same plain block that lz4-napi
 * writes behind its 4-byte length). When liblz4.so.1 is missing, lz4-napi is
 * used (it allocates a Buffer per call). zstd is the system's libzstd the
 * same way (ZSTD_compressCCtx / ZSTD_decompressDCtx with per-thread contexts);
 * only where libzstd.so.1 is missing is zstd-napi used (an optional
 * dependency; its low-level CCtx/DCtx write into caller buffers too). With
 * neither, the 'zstd' compressor is refused with ERR_TMEM_NO_ZSTD and idle
 * recompression is off by default.
 *
 * Same-filled pages (zswap/zram): a page whose 32-bit words are all equal is
 * not compressed at all; the caller keeps the word.
 */
import { native } from './native';

export const PAGE = 4096;
export const CODEC_LZ4 = 1;
export const CODEC_ZSTD = 2;
/** Length of a stored raw page. */
export const RAW_LENGTH = PAGE;
/** Compressed pages larger than this are stored raw (zram's "huge" pages). */
export const HUGE_THRESHOLD = 3072;

export type CompressorName = 'lz4' | 'zstd';

/** True if a stored object of this length is a raw page. */
export function isRaw(len: number): boolean {
  return len === RAW_LENGTH;
}

interface ZstdBinding {
  CCtx: new () => { setParameter(p: number, v: number): void; compress2(dst: Uint8Array, src: Uint8Array): number };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  CParameter: { compressionLevel: number };
}
interface Lz4Napi {
  compressSync(b: Buffer): Buffer;
  uncompressSync(b: Buffer): Buffer;
}

let zstdMod: ZstdBinding | null | undefined;
/** zstd-napi's binding, or null when the optional dependency is not installed. */
function zstdNapi(): ZstdBinding | null {
  if (zstdMod === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional dependency, loaded on first use
      zstdMod = require('zstd-napi/binding') as ZstdBinding;
    } catch {
      zstdMod = null;
    }
  }
  return zstdMod;
}
function zstd(): ZstdBinding {
  const z = zstdNapi();
  if (!z) {
    const err = new Error(
      "tmem: zstd is not available: libzstd.so.1 was not found (install the system's zstd library, e.g. Debian's libzstd1) and the optional dependency zstd-napi is not installed",
    );
    (err as NodeJS.ErrnoException).code = 'ERR_TMEM_NO_ZSTD';
    throw err;
  }
  return z;
}

/** True if pages can be compressed with zstd here (libzstd.so.1, else zstd-napi). */
export function zstdAvailable(): boolean {
  return native.zstdCompressAvailable || zstdNapi() !== null;
}
let lz4Mod: Lz4Napi | undefined;
function lz4napi(): Lz4Napi {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only where the addon has no LZ4 of its own
  lz4Mod ??= require('lz4-napi') as Lz4Napi;
  return lz4Mod;
}

/**
 * Returns the 32-bit word that fills the whole page, or -1 if the page is not
 * same-filled. `words` views the page (1024 words).
 */
export function sameFilled(words: Uint32Array | Int32Array, offsetWords: number): number {
  const v = words[offsetWords];
  for (let i = offsetWords + 1, end = offsetWords + PAGE / 4; i < end; i++) if (words[i] !== v) return -1;
  return v >>> 0;
}

/** One thread's compressor: owns its contexts and scratch buffers. */
export class PageCodec {
  readonly name: CompressorName;
  private readonly level: number;
  private cctx?: InstanceType<ZstdBinding['CCtx']>;
  private dctx?: InstanceType<ZstdBinding['DCtx']>;
  private readonly nativeLz4 = native.lz4Available;
  private readonly nativeZstd = native.zstdCompressAvailable;
  private readonly nativeUnzstd = native.zstdAvailable;

  constructor(name: CompressorName, level = 3) {
    if (name !== 'lz4' && name !== 'zstd')
      throw new RangeError(`compressor must be 'lz4' or 'zstd', got '${String(name)}'`);
    this.name = name;
    this.level = level;
    if (name === 'zstd' && !this.nativeZstd) zstd(); // throws ERR_TMEM_NO_ZSTD now, not on the first page
  }

  /**
   * Compresses one page src[srcOff..srcOff+4096) into dst at 0 in the stored
   * format. Returns the object length (1 + payload); a page that does not
   * compress under HUGE_THRESHOLD is written raw (4096 bytes, see isRaw).
   * `dst` must hold at least 4097 bytes.
   */
  compress(src: Uint8Array, srcOff: number, dst: Uint8Array): number {
    let n: number;
    if (this.name === 'lz4') {
      if (this.nativeLz4) {
        n = native.lz4Compress(src, srcOff, PAGE, dst, 1); // no view per page: nothing for the GC
      } else {
        const out = lz4napi().compressSync(Buffer.from(src.buffer, src.byteOffset + srcOff, PAGE));
        n = out.length - 4;
        if (n <= HUGE_THRESHOLD) dst.set(out.subarray(4), 1);
        else n = 0;
      }
      if (n > 0 && n <= HUGE_THRESHOLD) {
        dst[0] = CODEC_LZ4;
        return n + 1;
      }
    } else if (this.nativeZstd) {
      n = native.zstdCompress(src, srcOff, PAGE, dst.subarray(0, 1 + HUGE_THRESHOLD), 1, this.level);
      if (n > 0 && n <= HUGE_THRESHOLD) {
        dst[0] = CODEC_ZSTD;
        return n + 1;
      }
    } else {
      if (!this.cctx) {
        const z = zstd();
        this.cctx = new z.CCtx();
        this.cctx.setParameter(z.CParameter.compressionLevel, this.level);
      }
      try {
        n = this.cctx.compress2(dst.subarray(1, 1 + HUGE_THRESHOLD), src.subarray(srcOff, srcOff + PAGE));
      } catch {
        n = 0; // destination too small: the page does not compress enough
      }
      if (n > 0 && n <= HUGE_THRESHOLD) {
        dst[0] = CODEC_ZSTD;
        return n + 1;
      }
    }
    dst.set(src.subarray(srcOff, srcOff + PAGE), 0);
    return RAW_LENGTH;
  }

  /**
   * Decompresses a stored object src[off..off+len) into dst[dstOff..+4096).
   * Any codec can be read whatever this codec compresses with.
   * @throws Error if the object is malformed (never hands back wrong bytes)
   */
  decompress(src: Uint8Array, off: number, len: number, dst: Uint8Array, dstOff: number): void {
    if (isRaw(len)) {
      dst.set(src.subarray(off, off + PAGE), dstOff);
      return;
    }
    const codec = src[off];
    let n: number;
    if (codec === CODEC_LZ4) {
      if (this.nativeLz4) {
        n = native.lz4Decompress(src, off + 1, len - 1, dst, dstOff);
      } else {
        const framed = Buffer.alloc(len + 3);
        framed.writeUInt32LE(PAGE, 0);
        framed.set(src.subarray(off + 1, off + len), 4);
        const out = lz4napi().uncompressSync(framed);
        dst.set(out, dstOff);
        n = out.length;
      }
    } else if (codec === CODEC_ZSTD && this.nativeUnzstd) {
      n = native.zstdDecompress(src, off + 1, len - 1, dst.subarray(dstOff, dstOff + PAGE), 0);
    } else if (codec === CODEC_ZSTD) {
      this.dctx ??= new (zstd().DCtx)();
      n = this.dctx.decompress(dst.subarray(dstOff, dstOff + PAGE), src.subarray(off + 1, off + len));
    } else {
      throw new Error(`tmem: stored object has unknown codec ${codec}`);
    }
    if (n !== PAGE) throw new Error(`tmem: stored object decompressed to ${n} bytes, expected ${PAGE}`);
  }
}
