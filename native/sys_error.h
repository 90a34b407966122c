// SysError: a failed system call, with the call's name, errno and a message.
//
// Every failure that leaves the native core is one of these; the binding turns
// it into a JS Error with `code` ('EINVAL'), `errno` (22) and `syscall`
// ('ioctl(UFFDIO_REGISTER)'), as Node's own fs errors do.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace tmem {

/** "0x7f12..." for messages. */
std::string hex(uint64_t v);

/** Symbolic name of an errno value ("EAGAIN"), or "EUNKNOWN". */
const char* errno_name(int err);

class SysError : public std::runtime_error {
 public:
  /**
   * @param syscall  the call that failed, e.g. "ioctl(UFFDIO_COPY)"
   * @param err      the errno it set
   * @param detail   what it was doing, e.g. "range not page aligned"
   */
  SysError(std::string syscall, int err, const std::string& detail = "");
  const std::string& syscall() const { return syscall_; }
  int err() const { return err_; }
  const char* code() const { return errno_name(err_); }

 private:
  std::string syscall_;
  int err_;
};

}  // namespace tmem
