// The native tests' harness: CHECK throws on a false condition (so a test
// stops at its first failure and the next one runs), run() reports one test,
// and finish() prints the totals and gives main()'s exit code.
#pragma once

#include <cstdio>
#include <functional>
#include <stdexcept>

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "  CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      throw std::runtime_error("check failed");                                         \
    }                                                                                   \
  } while (0)

namespace tmem_test {
inline int g_failed = 0, g_passed = 0;

inline void run(const char* name, const std::function<void()>& fn) {
  std::fflush(stdout);
  try {
    fn();
    g_passed++;
    std::printf("ok   %s\n", name);
  } catch (const std::exception& e) {
    g_failed++;
    std::printf("FAIL %s: %s\n", name, e.what());
  }
}

inline int finish() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
}  // namespace tmem_test
