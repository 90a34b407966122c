// Page codecs for the fault path, from the system's liblz4.so.1 and libzstd.so.1.
//
// Stored object format (lib/compress.ts), as the tmem pool holds it:
//
//   exactly 4096 bytes   a raw page
//   byte 0 = 1           LZ4 block follows
//   byte 0 = 2           zstd frame follows
//   byte 0 = 3           raw page follows (4097 bytes in all)
//
// lz4-napi (used to compress) writes a plain LZ4 block behind a 4-byte
// little-endian length, but its uncompressSync allocates a Buffer per call,
// which would feed the garbage collector on every fault. liblz4 is opened
// with dlopen (no headers needed) so that a page decodes straight into a
// caller-owned staging page. If the library is absent, available() is false
// and callers fall back to lz4-napi. Eviction compresses with the same library
// (LZ4_compress_default, 2x faster than lz4-napi's compressSync and without a
// Buffer per page); both write the same plain LZ4 block. zstd is opened the
// same way (libzstd.so.1) and compresses too, so that zstd-napi is only a
// fallback where the system library is missing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tmem {
namespace lz4 {

/** True if liblz4.so.1 was found and exports LZ4_decompress_safe and LZ4_compress_default. */
bool available();
/** LZ4_decompress_safe: returns bytes written to dst, or < 0 on malformed input. */
int decompress(const char* src, char* dst, int src_len, int dst_capacity);
/** LZ4_compress_default: returns bytes written, or 0 if dst is too small. */
int compress(const char* src, char* dst, int src_len, int dst_capacity);
/** LZ4_decompress_safe's address once available() was true (nullptr before): callable from a signal handler. */
using DecompressFn = int (*)(const char*, char*, int, int);
DecompressFn decompress_fn();

}  // namespace lz4

/**
 * Decodes a stored object into one page. Returns a pointer to the page's bytes:
 * `obj` itself for a raw object, else `stage` (4096 bytes, caller-owned).
 * Returns nullptr and sets *err if the object is unknown or does not decode to
 * exactly one page.
 */
const void* decode_page(const uint8_t* obj, size_t n, char* stage, std::string* err);

namespace zstd {
/** True if libzstd.so.1 was found and exports ZSTD_createDCtx and ZSTD_decompressDCtx. */
bool available();
/** ZSTD_decompressDCtx of one frame with a per-thread context: bytes written, or < 0 on error. */
long decompress(const char* src, size_t src_len, char* dst, size_t dst_capacity);
/** A new decompression context (ZSTD_createDCtx; allocates: not from a signal handler), or nullptr. */
void* create_dctx();
/**
 * ZSTD_decompressDCtx of one frame with the caller's context (made by create_dctx()):
 * bytes written, or < 0. Allocates nothing once the context exists.
 */
long decompress_with(void* dctx, const char* src, size_t src_len, char* dst, size_t dst_capacity);
/** True if libzstd.so.1 also exports ZSTD_createCCtx and ZSTD_compressCCtx. */
bool compress_available();
/**
 * ZSTD_compressCCtx of one frame at `level` with a per-thread context: bytes
 * written, 0 if dst is too small, < 0 if the library is missing.
 */
long compress(const char* src, size_t src_len, char* dst, size_t dst_capacity, int level);
}  // namespace zstd
}  // namespace tmem
