// Uffd: one userfaultfd and everything tmem does with it. No Node in here.
//
//   open        /dev/userfaultfd (USERFAULTFD_IOC_NEW), else the userfaultfd(2)
//               syscall; full mode where permitted, else UFFD_USER_MODE_ONLY
//   UFFDIO_API  negotiate features (THREAD_ID, WP, MOVE, POISON, ...)
//   register    MISSING and/or WP over page-aligned ranges
//   read        batches of uffd_msg with a plain blocking read(2), as a minimal
//               handler does; another thread wakes the reader (new work,
//               shutdown) through the doorbell: a native thread that touches a
//               registered page, so that the wake-up is itself a uffd event
//               (a poll() over the uffd and an eventfd cost 0.45 us a fault)
//   resolve     COPY (optionally leaving the page write-protected), ZEROPAGE,
//               MOVE, WAKE, WRITEPROTECT, POISON
//
// Fault-path conventions (as in userfaultfd-rs and Firecracker's handler):
//   * EEXIST on COPY/ZEROPAGE: the page is already there; that is success.
//   * EAGAIN: the mapping changed under us (or a partial copy); the resolve
//     call returns -EAGAIN so the caller can drain events and retry.
//   * ESRCH: the faulting process is gone; returned as -ESRCH.
//   * Partial counts (the kernel's `copy`/`zeropage`/`move` fields, which can
//     hold a negative errno) are checked and the rest is retried.
// Anything else throws SysError.
//
// A user-mode-only uffd (UFFD_USER_MODE_ONLY) only sees faults taken in user
// mode: a syscall that reads a missing page of a region (write(2) from a region
// buffer) fails with EFAULT instead of waiting for the handler.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "uffd_abi.h"

namespace tmem {

constexpr size_t kPageSize = 4096;

/** Which mode to open a userfaultfd in. */
enum class UffdMode {
  kAuto,      // full if permitted, else user-mode-only
  kFull,      // kernel-mode faults too; needs root, CAP_SYS_PTRACE or /dev/userfaultfd access
  kUserOnly,  // UFFD_USER_MODE_ONLY
};

/** What the kernel offers, from a throwaway UFFDIO_API with features = 0. */
struct UffdProbe {
  uint64_t features = 0;         // UFFD_FEATURE_* the kernel supports
  uint64_t ioctls = 0;           // 1 << _UFFDIO_* available on the fd
  bool dev_userfaultfd = false;  // /dev/userfaultfd could be opened
  bool full_mode = false;        // a uffd without UFFD_USER_MODE_ONLY could be opened
};

/** One decoded userfaultfd event. */
struct UffdEvent {
  uint8_t kind;      // UFFD_EVENT_PAGEFAULT, _FORK, _REMAP, _REMOVE, _UNMAP
  uint64_t flags;    // pagefault: UFFD_PAGEFAULT_FLAG_WRITE | _WP | _MINOR
  uint64_t address;  // pagefault: faulting address (page aligned); remap: from; remove/unmap: start
  uint64_t arg1;     // pagefault: thread id; remap: to; remove/unmap: end; fork: new uffd
  uint64_t arg2;     // remap: len
};

class Doorbell;

class Uffd {
 public:
  /** Features tmem asks for when the kernel has them. */
  static constexpr uint64_t kWantedFeatures =
      UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON;

  /** Probe what the kernel offers without keeping a uffd. */
  static UffdProbe probe();

  /**
   * Opens and initialises a userfaultfd.
   * @param mode       full / user-mode-only / auto
   * @param features   extra UFFD_FEATURE_* (e.g. EVENT_REMOVE); those the kernel
   *                   lacks make the call throw ENOTSUP naming them. With
   *                   UFFD_FEATURE_SIGBUS (faults raise SIGBUS in the faulting
   *                   thread, no events) the uffd has no doorbell and no reader.
   */
  Uffd(UffdMode mode, uint64_t extra_features);
  /** Adopts an fd (not owned) opened by another Uffd of this process, e.g. in a Worker. Throws EBADF if unknown. */
  Uffd(int fd, uint64_t features, uint64_t ioctls, bool user_mode_only);
  ~Uffd();
  Uffd(const Uffd&) = delete;
  Uffd& operator=(const Uffd&) = delete;

  int fd() const { return fd_; }
  uint64_t features() const { return features_; }
  uint64_t ioctls() const { return ioctls_; }
  bool user_mode_only() const { return user_mode_only_; }
  bool via_dev() const { return via_dev_; }
  bool owned() const { return owned_; }

  /** UFFDIO_REGISTER; mode is UFFDIO_REGISTER_MODE_*. Returns the range's ioctls. */
  uint64_t register_range(uint64_t addr, uint64_t len, uint64_t mode);
  /** UFFDIO_UNREGISTER. */
  void unregister_range(uint64_t addr, uint64_t len);

  /**
   * Reads up to `max` events. Blocks up to `timeout_ms` (-1: forever in
   * read(2), 0: poll). Returns the number of events, 0 on timeout, or -1 when
   * woken by wake_reader() with no other event (the wake is consumed).
   */
  int read_events(UffdEvent* out, int max, int timeout_ms);
  /** Makes a (current or next) read_events return -1. Async-signal-safe. */
  void wake_reader();
  /** wake_reader() as a function any thread may call at any time: it does nothing once the uffd is closed. */
  std::function<void()> waker() const;
  /** The doorbell page's address (never a region's). */
  uint64_t doorbell_address() const;

  /** UFFDIO_COPY. Returns bytes copied, or -EAGAIN / -ESRCH. */
  int64_t copy(uint64_t dst, const void* src, uint64_t len, bool write_protect, bool dont_wake);
  /** UFFDIO_ZEROPAGE. Returns bytes mapped, or -EAGAIN / -ESRCH. */
  int64_t zeropage(uint64_t dst, uint64_t len, bool dont_wake);
  /** UFFDIO_MOVE. Returns bytes moved, or -EAGAIN / -ESRCH / -ENOENT (hole at src) / -EBUSY. */
  int64_t move(uint64_t dst, uint64_t src, uint64_t len, bool allow_src_holes, bool dont_wake);
  /** UFFDIO_WAKE: wakes threads waiting on faults in the range. */
  void wake(uint64_t addr, uint64_t len);
  /** UFFDIO_WRITEPROTECT: set (protect=true) or clear write protection. */
  void write_protect(uint64_t addr, uint64_t len, bool protect, bool dont_wake);
  /** UFFDIO_POISON: later accesses raise SIGBUS. Returns bytes poisoned or -errno. */
  int64_t poison(uint64_t addr, uint64_t len, bool dont_wake);

 private:
  int fd_ = -1;
  std::shared_ptr<Doorbell> doorbell_;
  uint64_t features_ = 0;
  void set_nonblocking(bool on);
  uint64_t ioctls_ = 0;
  bool pending_wake_ = false;  // a ring read together with other events
  bool user_mode_only_ = false;
  bool via_dev_ = false;
  bool owned_ = true;
};

/** Names of the UFFD_FEATURE_* bits set in `features`, comma separated. */
const char* feature_name(int bit);

}  // namespace tmem
