// benchutil.h - small helpers shared by the native baseline benchmarks.
//
// Timing (CLOCK_MONOTONIC in nanoseconds), CPU pinning of the calling thread,
// a deterministic PRNG with a Fisher-Yates shuffle, latency summaries
// (p50/p90/p99/p99.9/mean in microseconds) and the JSON fragments the
// benchmarks print. Header-only, C++17, no dependencies beyond libc.
#pragma once

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace benchutil {

inline uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// Number of CPUs this process may run on.
inline int online_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return CPU_COUNT(&set);
}

// The n-th CPU (0-based) of the process's allowed set, or -1.
inline int nth_allowed_cpu(int n) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set) && n-- == 0) return c;
  return -1;
}

// Pins the *calling thread* (sched_setaffinity with pid 0 acts on the caller).
inline bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

// splitmix64: deterministic, fast, good enough for shuffles and corpora.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};

template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

inline std::vector<size_t> identity_order(size_t n) {
  std::vector<size_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

// Latency summary of samples given in nanoseconds, reported in microseconds.
struct Summary {
  size_t n = 0;
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, mean = 0, min = 0, max = 0;
};

// Nearest-rank percentile on a sorted vector.
inline double percentile_sorted(const std::vector<uint64_t>& s, double p) {
  if (s.empty()) return 0;
  size_t rank = size_t(p / 100.0 * double(s.size()) + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > s.size()) rank = s.size();
  return double(s[rank - 1]);
}

inline Summary summarize(std::vector<uint64_t> ns) {
  Summary r;
  r.n = ns.size();
  if (ns.empty()) return r;
  std::sort(ns.begin(), ns.end());
  double sum = 0;
  for (uint64_t v : ns) sum += double(v);
  r.p50 = percentile_sorted(ns, 50) / 1e3;
  r.p90 = percentile_sorted(ns, 90) / 1e3;
  r.p99 = percentile_sorted(ns, 99) / 1e3;
  r.p999 = percentile_sorted(ns, 99.9) / 1e3;
  r.mean = sum / double(ns.size()) / 1e3;
  r.min = double(ns.front()) / 1e3;
  r.max = double(ns.back()) / 1e3;
  return r;
}

inline void print_summary(const char* label, const Summary& s) {
  std::printf("%-22s n=%-7zu p50=%8.2f  p90=%8.2f  p99=%8.2f  p99.9=%8.2f  mean=%8.2f  max=%9.2f us\n", label, s.n,
              s.p50, s.p90, s.p99, s.p999, s.mean, s.max);
}

// {"p50":..,"p90":..,"p99":..,"p999":..,"mean":..,"n":..}
inline std::string summary_json(const Summary& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"mean\":%.2f,\"n\":%zu}",
                s.p50, s.p90, s.p99, s.p999, s.mean, s.n);
  return buf;
}

}  // namespace benchutil
