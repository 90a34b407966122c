#include "sys_error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tmem {

const char* errno_name(int err) {
#define E(x) \
  { x, #x }
  static constexpr struct {
    int err;
    const char* name;
  } kNames[] = {E(EPERM),  E(ENOENT), E(ESRCH),  E(EINTR),  E(EIO),        E(ENXIO),    E(E2BIG),
                E(EBADF),  E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT),     E(EBUSY),    E(EEXIST),
                E(ENODEV), E(EINVAL), E(ENFILE), E(EMFILE), E(ENOTTY),     E(EFBIG),    E(ENOSPC),
                E(ESPIPE), E(EROFS),  E(ERANGE), E(ENOSYS), E(EOPNOTSUPP), E(EHWPOISON)};
#undef E
  for (const auto& n : kNames)
    if (n.err == err) return n.name;
  return "EUNKNOWN";
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

static std::string format(const std::string& syscall, int err, const std::string& detail) {
  std::string msg = syscall + " failed: " + errno_name(err) + " (" + std::strerror(err) + ")";
  if (!detail.empty()) msg += ": " + detail;
  return msg;
}

SysError::SysError(std::string syscall, int err, const std::string& detail)
    : std::runtime_error(format(syscall, err, detail)), syscall_(std::move(syscall)), err_(err) {}

}  // namespace tmem
