// FileIo: reads and writes of mapped files, off the thread that serves faults.
//
// A write(2) into file F holds F's inode lock while it copies from the
// caller's buffer; if that buffer is a region page that is not resident, the
// kernel waits, lock held, for the fault to be served. A fault thread that
// itself waits for F's lock (a pwrite or fsync of F, or a read of F on a
// filesystem whose reads take the lock, as XFS's do) never serves that fault:
// deadlock. So the thread that serves faults never makes a file syscall that
// can sleep on a lock:
//
//   writer thread   pwrite (clipped to the file's current size: write-back
//                   never extends a file) and fsync, in submission order
//   reader thread   pread of a page that preadv2(RWF_NOWAIT) could not read
//                   at once (not cached, or the read would wait for a lock)
//   try_read        the inline attempt: preadv2(RWF_NOWAIT) in the caller
//                   (tmpfs, which has no RWF_NOWAIT and whose reads take no
//                   inode lock: a plain pread)
//
// Jobs own their bytes (a write copies its page at submission, a read's page
// is copied out by take()) and files are dup()ed by open_file(): neither the
// caller's memory nor its descriptor has to outlive a job. The owner is told
// of completions by `notify` (called from the I/O threads) and collects them
// with take(). Destroying a FileIo drops the jobs still queued; a thread
// blocked in a syscall finishes it alone (the threads are detached).
//
// Each file also keeps a snapshot of its identity (size, mtime, ctime, inode,
// device) and a generation that is bumped whenever a statx finds it changed by
// someone else: cleancache uses it to never hand back a page older than the
// file. The writer refreshes the snapshot after its own writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace tmem {

class FileIo {
 public:
  enum Op : uint8_t { kRead = 0, kWrite = 1, kSync = 2 };

  /** A finished job. */
  struct Completion {
    uint64_t id;
    Op op;
    int64_t result;  // bytes read or written, 0 for fsync; -errno on failure
  };

  /** Starts the writer and reader threads. `notify` is called (from them) after each completion. */
  explicit FileIo(std::function<void()> notify);
  ~FileIo();
  FileIo(const FileIo&) = delete;
  FileIo& operator=(const FileIo&) = delete;

  /** dup()s `fd` (F_DUPFD_CLOEXEC) and takes its first snapshot. Returns a handle. Throws SysError. */
  int open_file(int fd);
  /** The handle is gone; its descriptor is closed once no queued job refers to it. */
  void close_file(int handle);

  /** Queues pwrite of `len` bytes (at most a page, copied now) at `offset`. Returns the job id. */
  uint64_t write(int handle, const void* src, size_t len, int64_t offset);
  /** Queues fsync behind the writes queued before it. Returns the job id. */
  uint64_t sync(int handle);
  /** Queues pread of `len` bytes (at most a page) at `offset` on the reader thread. Returns the job id. */
  uint64_t read(int handle, size_t len, int64_t offset);
  /**
   * Reads now, in the calling thread, with preadv2(RWF_NOWAIT): bytes read
   * (fewer than `len` only at end of file), or -errno: -EAGAIN when the read
   * would have to wait (data not cached, a lock held), -EOPNOTSUPP when the
   * filesystem cannot say. On tmpfs a plain pread (see file_io.cc).
   */
  int64_t try_read(int handle, void* dst, size_t len, int64_t offset);
  /** The next completion, if any; a read's bytes are copied to `read_dst` (a page). */
  bool take(Completion* out, void* read_dst);
  /** Jobs queued or running. */
  size_t pending() const;

  /**
   * statx of the file (AT_STATX_DONT_SYNC: never a network round trip) compared
   * with its snapshot; a difference bumps the generation. Returns the
   * generation. A failed statx bumps it too (nothing can be trusted then).
   */
  uint32_t generation(int handle);
  /**
   * The file's identity now (device, inode, size, mtime, ctime) hashed to 64 bits, never 0:
   * the key of its pages in a shared pool (shared_pool.h). 0 if statx failed.
   */
  uint64_t identity_key(int handle);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace tmem
