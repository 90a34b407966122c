#include "lz4_block.h"

#include <dlfcn.h>

#include <mutex>

namespace tmem {
namespace lz4 {

namespace {
using DecompressFn = int (*)(const char*, char*, int, int);
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

}  // namespace lz4
}  // namespace tmem
