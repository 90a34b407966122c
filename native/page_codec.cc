#include "page_codec.h"

#include <dlfcn.h>

#include <mutex>

namespace tmem {
namespace lz4 {

namespace {
DecompressFn g_decompress = nullptr;
DecompressFn g_compress = nullptr;  // same signature: (src, dst, srcSize, dstCapacity)
std::once_flag g_once;

void load() {
  void* h = ::dlopen("liblz4.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return;
  g_decompress = reinterpret_cast<DecompressFn>(::dlsym(h, "LZ4_decompress_safe"));
  g_compress = reinterpret_cast<DecompressFn>(::dlsym(h, "LZ4_compress_default"));
  if (!g_compress) g_decompress = nullptr;
}
}  // namespace

bool available() {
  std::call_once(g_once, load);
  return g_decompress != nullptr;
}

int decompress(const char* src, char* dst, int src_len, int dst_capacity) {
  if (!available()) return -1;
  return g_decompress(src, dst, src_len, dst_capacity);
}

int compress(const char* src, char* dst, int src_len, int dst_capacity) {
  if (!available()) return 0;
  return g_compress(src, dst, src_len, dst_capacity);
}

DecompressFn decompress_fn() { return g_decompress; }

}  // namespace lz4

namespace zstd {
namespace {
using CreateFn = void* (*)();
using DecompressDCtxFn = size_t (*)(void*, void*, size_t, const void*, size_t);
using IsErrorFn = unsigned (*)(size_t);
using CompressCCtxFn = size_t (*)(void*, void*, size_t, const void*, size_t, int);
CreateFn g_create = nullptr;
DecompressDCtxFn g_decompress = nullptr;
IsErrorFn g_is_error = nullptr;
CreateFn g_create_cctx = nullptr;
CompressCCtxFn g_compress = nullptr;
std::once_flag g_once;
void load() {
  void* h = ::dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return;
  g_create = reinterpret_cast<CreateFn>(::dlsym(h, "ZSTD_createDCtx"));
  g_decompress = reinterpret_cast<DecompressDCtxFn>(::dlsym(h, "ZSTD_decompressDCtx"));
  g_is_error = reinterpret_cast<IsErrorFn>(::dlsym(h, "ZSTD_isError"));
  if (!g_create || !g_is_error) g_decompress = nullptr;
  g_create_cctx = reinterpret_cast<CreateFn>(::dlsym(h, "ZSTD_createCCtx"));
  g_compress = reinterpret_cast<CompressCCtxFn>(::dlsym(h, "ZSTD_compressCCtx"));
  if (!g_create_cctx || !g_decompress) g_compress = nullptr;
}
}  // namespace

bool available() {
  std::call_once(g_once, load);
  return g_decompress != nullptr;
}

long decompress(const char* src, size_t src_len, char* dst, size_t dst_capacity) {
  if (!available()) return -1;
  // One context per thread, made once: ZSTD_decompress() would set one up on
  // every call, which costs more than decoding a page.
  static thread_local void* dctx = g_create();
  if (!dctx) return -1;
  size_t r = g_decompress(dctx, dst, dst_capacity, src, src_len);
  if (g_is_error(r)) return -1;
  return static_cast<long>(r);
}

void* create_dctx() { return available() ? g_create() : nullptr; }

long decompress_with(void* dctx, const char* src, size_t src_len, char* dst, size_t dst_capacity) {
  if (!dctx || !g_decompress) return -1;
  size_t r = g_decompress(dctx, dst, dst_capacity, src, src_len);
  if (g_is_error(r)) return -1;
  return static_cast<long>(r);
}

bool compress_available() {
  std::call_once(g_once, load);
  return g_compress != nullptr;
}

long compress(const char* src, size_t src_len, char* dst, size_t dst_capacity, int level) {
  if (!compress_available()) return -1;
  // One context per thread, kept: it holds the level's tables between pages.
  static thread_local void* cctx = g_create_cctx();
  if (!cctx) return -1;
  size_t r = g_compress(cctx, dst, dst_capacity, src, src_len, level);
  if (g_is_error(r)) return 0;  // dstSize_tooSmall (or a bad level, checked by the caller)
  return static_cast<long>(r);
}
}  // namespace zstd
const void* decode_page(const uint8_t* obj, size_t n, char* stage, std::string* err) {
  constexpr size_t kPage = 4096;
  long got = -1;
  const void* page = nullptr;
  if (n == kPage) return obj;  // raw
  if (n < 2 || n > kPage + 1) {
    *err = "stored object has " + std::to_string(n) + " bytes (2..4097 expected)";
    return nullptr;
  }
  switch (obj[0]) {
    case 1:
      if (!lz4::available()) break;
      got = lz4::decompress(reinterpret_cast<const char*>(obj + 1), stage, static_cast<int>(n - 1), kPage);
      page = stage;
      break;
    case 2:
      if (!zstd::available()) break;
      got = zstd::decompress(reinterpret_cast<const char*>(obj + 1), n - 1, stage, kPage);
      page = stage;
      break;
    case 3:
      if (n == kPage + 1) return obj + 1;
      break;
    default: *err = "stored object has unknown codec " + std::to_string(obj[0]); return nullptr;
  }
  if (!page) {
    *err = "stored object has codec " + std::to_string(obj[0]) +
           " but its library is not available or its length is wrong";
    return nullptr;
  }
  if (got != static_cast<long>(kPage)) {
    *err = "stored object decodes to " + std::to_string(got) + " bytes, not a page: corrupt";
    return nullptr;
  }
  return page;
}

}  // namespace tmem
