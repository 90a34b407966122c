// See fault_thread.h.
#include "fault_thread.h"

#include <sched.h>
#include <time.h>

#include <cstdio>
#include <exception>
#include <vector>

#include "thread.h"

namespace tmem {
namespace {

constexpr int kBatch = 64;
constexpr int kPollMs = 200;
constexpr int64_t kFollowNs = 10 * 1000 * 1000;

int64_t now_ns() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

}  // namespace

FaultThread::FaultThread(std::unique_ptr<Uffd> reader, fault_serve::Server* server, bool follow, int64_t spin_ns)
    : uffd_(std::move(reader)), server_(server), follow_(follow), spin_ns_(spin_ns > 0 ? spin_ns : 0) {
  fault_serve::init();
  scratch_ = fault_serve::acquire_scratch();  // its own for good; nullptr: stored pages are forwarded
  thread_ = std::thread([this] { run(); });
}

void FaultThread::stop() {
  if (stop_.exchange(true)) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  if (uffd_) uffd_->wake_reader();
  if (thread_.joinable()) thread_.join();
  fault_serve::release_scratch(scratch_);
  scratch_ = nullptr;
  stopped_ = true;
  wake_consumer();
}

std::string FaultThread::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void FaultThread::wake_consumer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    records_ = true;
  }
  cv_.notify_one();
}

int FaultThread::read(UffdEvent* out, int max, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto ready = [this] { return !queue_.empty() || woken_ || records_ || stopped_.load(); };
  if (!ready()) {
    if (timeout_ms < 0) {
      cv_.wait(lock, ready);
    } else if (timeout_ms > 0) {
      cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready);
    }
  }
  records_ = false;
  int n = 0;
  while (n < max && !queue_.empty()) {
    out[n++] = queue_.front();
    queue_.pop_front();
  }
  if (n > 0) return n;
  if (woken_) {
    woken_ = false;
    return -1;
  }
  return 0;
}

void FaultThread::follow(uint64_t tid) {
  // Without following (pin: false) nothing is looked up: the dispatcher's keepAway() is off too.
  if (!follow_ || tid == 0) return;
  const int64_t now = now_ns();
  if (now < next_check_ns_) return;
  next_check_ns_ = now + kFollowNs;
  const int cpu = thread_cpu(static_cast<int64_t>(tid));
  if (cpu >= 0) fault_cpu_.store(cpu, std::memory_order_relaxed);
  if (cpu < 0 || cpu == cpu_) return;
  try {
    set_affinity({cpu});
    cpu_ = cpu;
    counters_.moves.fetch_add(1, std::memory_order_relaxed);
  } catch (const std::exception& e) {
    follow_ = false;  // not a CPU this thread may use (a cpuset changed): stop following
    std::fprintf(stderr, "tmem: the fault thread stops following faulting threads: %s\n", e.what());
  }
}

void FaultThread::run() {
  UffdEvent ev[kBatch];
  std::vector<UffdEvent> fwd;
  fwd.reserve(kBatch);
  int64_t spin_until = 0;  // polling without sleeping until then (spin_ns_ after a fault)
  while (!stop_.load(std::memory_order_relaxed)) {
    int n;
    // Not while reclaim runs: then the dispatcher needs the CPU a spinning thread would take
    // (measured: steady-state faults 1.4x slower and fills 0.75x with a spin that ignored it).
    const bool spinning = spin_until != 0 && !server_->ring.reclaim_near() && now_ns() < spin_until;
    try {
      // Spinning: a poll that does not wait, so the next fault of a run finds this thread
      // awake (a halted vCPU's wake costs more than the fault: docs/bench.md); the CPU is
      // yielded between polls to any thread that wants it. Else a blocking wait whose timeout
      // only bounds how long a stop waits when the doorbell cannot ring.
      n = uffd_->read_events(ev, kBatch, spinning ? 0 : kPollMs);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = e.what();
      break;
    }
    if (n == 0) {
      if (spinning) {
        ::sched_yield();
      } else {
        spin_until = 0;
      }
      continue;
    }
    bool woken = n < 0;
    if (!woken && spin_ns_ > 0) spin_until = now_ns() + spin_ns_;
    bool wake_js = false;
    fwd.clear();
    for (int i = 0; i < n; i++) {
      const UffdEvent& e = ev[i];
      counters_.events.fetch_add(1, std::memory_order_relaxed);
      if (e.kind == UFFD_EVENT_PAGEFAULT) {
        follow(e.arg1);
        bool wake = false;
        if (fault_serve::serve(e.address, e.flags, scratch_, &wake) == fault_serve::Outcome::kServed) {
          counters_.served.fetch_add(1, std::memory_order_relaxed);
          wake_js |= wake;
          continue;
        }
        counters_.forwarded.fetch_add(1, std::memory_order_relaxed);
      }
      fwd.push_back(e);
    }
    if (fwd.empty() && !woken && !wake_js) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const UffdEvent& e : fwd) queue_.push_back(e);
      if (woken) woken_ = true;
      if (wake_js) records_ = true;
    }
    cv_.notify_one();
  }
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  cv_.notify_all();
}

}  // namespace tmem
