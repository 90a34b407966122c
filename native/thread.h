// Thread placement: where the thread that serves a fault runs decides its cost
// (waking an idle vCPU is a VM exit: ~51 us against ~6 us on the same CPU).
#pragma once

#include <cstdint>
#include <vector>

namespace tmem {

/** sched_setaffinity(0): pins the calling thread to `cpus`. Throws SysError. */
void set_affinity(const std::vector<int>& cpus);
/** sched_getaffinity(0): the CPUs the calling thread may run on. */
std::vector<int> get_affinity();
/** sched_getcpu(): the CPU the calling thread runs on now. */
int current_cpu();
/** gettid(). */
int64_t current_tid();
/** The CPU thread `tid` of this process last ran on (/proc/self/task/TID/stat field 39), or -1. */
int thread_cpu(int64_t tid);

}  // namespace tmem
