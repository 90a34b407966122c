#include "thread.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sys_error.h"

namespace tmem {

void set_affinity(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  if (::sched_setaffinity(0, sizeof set, &set) < 0) throw SysError("sched_setaffinity", errno);
}

std::vector<int> get_affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) < 0) throw SysError("sched_getaffinity", errno);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

int current_cpu() { return ::sched_getcpu(); }

int64_t current_tid() { return static_cast<int64_t>(::syscall(SYS_gettid)); }

int thread_cpu(int64_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%lld/stat", static_cast<long long>(tid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  // The command name (field 2) is in parentheses and may contain spaces: count
  // fields from the last ')'.
  char* p = std::strrchr(buf, ')');
  if (!p) return -1;
  int field = 2;
  for (; *p && field < 39; p++)
    if (*p == ' ') field++;
  return field == 39 ? std::atoi(p) : -1;
}

}  // namespace tmem
