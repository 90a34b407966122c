#include "file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "sys_error.h"
#include "uffd.h"

namespace tmem {

namespace {

/** What says a file is still the one whose pages we hold. */
struct Identity {
  int64_t size = 0;
  int64_t mtime_s = 0, ctime_s = 0;
  uint32_t mtime_ns = 0, ctime_ns = 0;
  uint64_t ino = 0, dev = 0;
  bool operator==(const Identity& o) const {
    return size == o.size && mtime_s == o.mtime_s && mtime_ns == o.mtime_ns && ctime_s == o.ctime_s &&
           ctime_ns == o.ctime_ns && ino == o.ino && dev == o.dev;
  }
  bool operator!=(const Identity& o) const { return !(*this == o); }
};

/** statx of an open file; false (errno set) if it failed. */
bool identify(int fd, Identity* out) {
  struct statx sx;
  if (::statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_SIZE | STATX_MTIME | STATX_CTIME | STATX_INO, &sx) !=
      0) {
    return false;
  }
  out->size = static_cast<int64_t>(sx.stx_size);
  out->mtime_s = sx.stx_mtime.tv_sec;
  out->mtime_ns = sx.stx_mtime.tv_nsec;
  out->ctime_s = sx.stx_ctime.tv_sec;
  out->ctime_ns = sx.stx_ctime.tv_nsec;
  out->ino = sx.stx_ino;
  out->dev = (static_cast<uint64_t>(sx.stx_dev_major) << 32) | sx.stx_dev_minor;
  return true;
}

// tmpfs reads (shmem_file_read_iter) take no inode lock, only a page's folio
// lock for a moment, which no writer holds while it faults on user memory (the
// copy from user memory is done with faults disabled); but tmpfs has no
// RWF_NOWAIT. A plain pread is as safe there, and saves the reader thread.
constexpr long kTmpfsMagic = 0x01021994;

struct File {
  explicit File(int d) : fd(d) {
    struct statfs sf;
    plain_read_ok = ::fstatfs(d, &sf) == 0 && sf.f_type == kTmpfsMagic;
  }
  ~File() { ::close(fd); }
  const int fd;
  bool plain_read_ok = false;
  std::mutex mu;  // guards snap/have/gen; never held across a syscall
  Identity snap;
  bool have = false;
  uint32_t gen = 1;

  /** Compares `now` (or a failed statx) with the snapshot; bumps the generation on a change. */
  uint32_t observe(bool ok, const Identity& now) {
    std::lock_guard<std::mutex> lock(mu);
    if (!ok) {
      gen++;
      have = false;
    } else if (!have || now != snap) {
      if (have) gen++;
      snap = now;
      have = true;
    }
    return gen;
  }
  /** Our own write changed the file: the new identity is the snapshot, no generation change. */
  void adopt(bool ok, const Identity& now) {
    std::lock_guard<std::mutex> lock(mu);
    have = ok;
    if (ok) snap = now;
  }
};

struct Job {
  uint64_t id;
  FileIo::Op op;
  std::shared_ptr<File> file;
  int64_t offset;
  size_t len;
  int64_t result = 0;
  uint8_t data[kPageSize];
};

int64_t do_write(Job& j) {
  File& f = *j.file;
  Identity before;
  const bool ok = identify(f.fd, &before);
  if (!ok) return -errno;
  f.observe(true, before);  // someone else changed the file since our last look: a new generation
  // Write-back never extends the file: bytes past its current end (another
  // process truncated it) are dropped, as the kernel drops a mapping's dirty
  // pages past a truncation.
  if (j.offset >= before.size) return 0;
  const size_t len = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(j.len), before.size - j.offset));
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(f.fd, j.data + done, len - done, j.offset + static_cast<int64_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    done += static_cast<size_t>(n);
  }
  Identity after;
  const bool ok2 = identify(f.fd, &after);
  f.adopt(ok2, after);
  return static_cast<int64_t>(done);
}

// Reads up to len bytes at offset, looping over short reads and EINTR; stops at
// end of file. flags are preadv2's (0: a plain read, RWF_NOWAIT: never sleep).
// Returns the bytes read or -errno.
int64_t read_full(int fd, uint8_t* dst, size_t len, int64_t offset, int flags) {
  size_t got = 0;
  while (got < len) {
    struct iovec v = {dst + got, len - got};
    ssize_t n = ::preadv2(fd, &v, 1, offset + static_cast<int64_t>(got), flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<int64_t>(got);
}

int64_t do_read(Job& j) { return read_full(j.file->fd, j.data, j.len, j.offset, 0); }

int64_t execute(Job& j) {
  switch (j.op) {
    case FileIo::kWrite: return do_write(j);
    case FileIo::kRead: return do_read(j);
    case FileIo::kSync:
      // msync(MS_SYNC) is vfs_fsync_range(datasync=1): data and what finds it (the size), not timestamps.
      return ::fdatasync(j.file->fd) == 0 ? 0 : -errno;
  }
  return -EINVAL;
}

}  // namespace

struct FileIo::State {
  std::mutex mu;
  bool stop = false;
  std::deque<std::unique_ptr<Job>> writes, reads, done;
  std::condition_variable writes_cv, reads_cv;
  std::map<int, std::shared_ptr<File>> files;
  int next_handle = 1;
  uint64_t next_id = 1;
  size_t pending = 0;
  std::function<void()> notify;

  std::shared_ptr<File> file(int handle) {
    auto it = files.find(handle);
    if (it == files.end()) throw SysError("tmem FileIo", EBADF, "no open file with handle " + std::to_string(handle));
    return it->second;
  }
};

namespace {

void run(std::shared_ptr<FileIo::State> s, bool writer) {
  auto& queue = writer ? s->writes : s->reads;
  auto& cv = writer ? s->writes_cv : s->reads_cv;
  std::unique_lock<std::mutex> lock(s->mu);
  for (;;) {
    cv.wait(lock, [&] { return s->stop || !queue.empty(); });
    if (s->stop) return;
    std::unique_ptr<Job> job = std::move(queue.front());
    queue.pop_front();
    lock.unlock();
    job->result = execute(*job);
    job->file.reset();  // the last job of a closed file closes its descriptor here
    lock.lock();
    if (s->stop) return;
    s->done.push_back(std::move(job));
    std::function<void()> notify = s->notify;
    lock.unlock();
    if (notify) notify();
    lock.lock();
  }
}

}  // namespace

FileIo::FileIo(std::function<void()> notify) : state_(std::make_shared<State>()) {
  state_->notify = std::move(notify);
  std::thread(run, state_, true).detach();
  std::thread(run, state_, false).detach();
}

FileIo::~FileIo() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->stop = true;
  state_->notify = nullptr;
  state_->writes.clear();
  state_->reads.clear();
  state_->done.clear();
  state_->files.clear();
  state_->writes_cv.notify_all();
  state_->reads_cv.notify_all();
}

int FileIo::open_file(int fd) {
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) throw SysError("fcntl(F_DUPFD_CLOEXEC)", errno, "fd " + std::to_string(fd));
  auto f = std::make_shared<File>(dup);
  Identity now;
  const bool ok = identify(dup, &now);
  f->observe(ok, now);
  std::lock_guard<std::mutex> lock(state_->mu);
  int h = state_->next_handle++;
  state_->files[h] = std::move(f);
  return h;
}

void FileIo::close_file(int handle) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->files.erase(handle);
}

namespace {
std::unique_ptr<Job> make_job(FileIo::State& s, int handle, FileIo::Op op, size_t len, int64_t offset) {
  if (len > kPageSize) throw SysError("tmem FileIo", EINVAL, "a job is at most one page");
  if (offset < 0) throw SysError("tmem FileIo", EINVAL, "negative file offset");
  auto j = std::make_unique<Job>();
  j->id = s.next_id++;
  j->op = op;
  j->file = s.file(handle);
  j->offset = offset;
  j->len = len;
  return j;
}
}  // namespace

uint64_t FileIo::write(int handle, const void* src, size_t len, int64_t offset) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto j = make_job(*state_, handle, kWrite, len, offset);
  std::memcpy(j->data, src, len);
  const uint64_t id = j->id;
  state_->writes.push_back(std::move(j));
  state_->pending++;
  state_->writes_cv.notify_one();
  return id;
}

uint64_t FileIo::sync(int handle) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto j = make_job(*state_, handle, kSync, 0, 0);
  const uint64_t id = j->id;
  state_->writes.push_back(std::move(j));
  state_->pending++;
  state_->writes_cv.notify_one();
  return id;
}

uint64_t FileIo::read(int handle, size_t len, int64_t offset) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto j = make_job(*state_, handle, kRead, len, offset);
  const uint64_t id = j->id;
  state_->reads.push_back(std::move(j));
  state_->pending++;
  state_->reads_cv.notify_one();
  return id;
}

int64_t FileIo::try_read(int handle, void* dst, size_t len, int64_t offset) {
  std::shared_ptr<File> f;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    f = state_->file(handle);
  }
  return read_full(f->fd, static_cast<uint8_t*>(dst), len, offset, f->plain_read_ok ? 0 : RWF_NOWAIT);
}

bool FileIo::take(Completion* out, void* read_dst) {
  std::unique_ptr<Job> j;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->done.empty()) return false;
    j = std::move(state_->done.front());
    state_->done.pop_front();
    state_->pending--;
  }
  out->id = j->id;
  out->op = j->op;
  out->result = j->result;
  if (j->op == kRead && j->result > 0) std::memcpy(read_dst, j->data, static_cast<size_t>(j->result));
  return true;
}

size_t FileIo::pending() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->pending;
}

uint32_t FileIo::generation(int handle) {
  std::shared_ptr<File> f;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    f = state_->file(handle);
  }
  Identity now;
  const bool ok = identify(f->fd, &now);
  return f->observe(ok, now);
}

uint64_t FileIo::identity_key(int handle) {
  std::shared_ptr<File> f;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    f = state_->file(handle);
  }
  Identity id;
  if (!identify(f->fd, &id)) return 0;
  const uint64_t fields[7] = {id.dev,
                              id.ino,
                              static_cast<uint64_t>(id.size),
                              static_cast<uint64_t>(id.mtime_s),
                              id.mtime_ns,
                              static_cast<uint64_t>(id.ctime_s),
                              id.ctime_ns};
  uint64_t h = 0x6a09e667f3bcc908ull;
  for (uint64_t v : fields) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
  }
  return h == 0 ? 1 : h;
}

}  // namespace tmem
