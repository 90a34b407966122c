// RespConn: see resp_conn.h.
#include "resp_conn.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tmem {
namespace {

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

/** Waits for `events` on fd until deadline (ms, CLOCK_MONOTONIC). 0 ready, -ETIMEDOUT, -errno. */
int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return -ETIMEDOUT;
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return 0;
    if (r == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

// Largest bulk reply accepted (a page and its header are a few KiB; Redis's own limit is 512 MB).
constexpr int64_t kMaxBulk = 64 << 20;

}  // namespace

void RespConn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  rlen_ = pos_ = 0;
  want_ = done_ = 0;
  out_len_ = 0;
}

int RespConn::fail(int err) {
  close();
  return err;
}

int RespConn::connect(int timeout_ms) {
  close();
  int64_t deadline = now_ms() + timeout_ms;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(port_);
  int g = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &res);
  if (g != 0) return -EHOSTUNREACH;
  int err = -ECONNREFUSED;
  for (addrinfo* a = res; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = -errno;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        err = -errno;
        ::close(fd);
        continue;
      }
      int w = wait_fd(fd, POLLOUT, deadline);
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (w == 0 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0) w = -soerr;
      if (w != 0) {
        err = w;
        ::close(fd);
        continue;
      }
    }
    fd_ = fd;
    break;
  }
  ::freeaddrinfo(res);
  if (fd_ < 0) return err;
  if (rbuf_.size() < 65536) rbuf_.resize(65536);
  rlen_ = pos_ = 0;
  return 0;
}

int RespConn::parse_one(uint8_t* out, size_t out_cap, size_t* out_len, int32_t* info) {
  const uint8_t* b = rbuf_.data() + pos_;
  size_t avail = rlen_ - pos_;
  // The header line, up to CRLF.
  const void* nl = avail > 0 ? memchr(b, '\n', avail) : nullptr;
  if (!nl) return avail > 16 * 1024 ? -EPROTO : 0;    // no RESP header line is that long
  size_t line = static_cast<const uint8_t*>(nl) - b;  // index of '\n'
  if (line < 2 || b[line - 1] != '\r') return -EPROTO;
  uint8_t type = b[0];
  const uint8_t* text = b + 1;
  size_t text_len = line - 2;
  auto copy_out = [&](const uint8_t* src, size_t len) -> bool {
    if (*out_len + len > out_cap) return false;
    memcpy(out + *out_len, src, len);
    info[1] = static_cast<int32_t>(*out_len);
    info[2] = static_cast<int32_t>(len);
    *out_len += len;
    return true;
  };
  switch (type) {
    case '+':
    case '-':
    case ':': {
      if (type == ':') {
        for (size_t i = 0; i < text_len; i++)
          if (!((text[i] >= '0' && text[i] <= '9') || (i == 0 && text[i] == '-'))) return -EPROTO;
        if (text_len == 0) return -EPROTO;
      }
      info[0] = type == '+' ? KIND_SIMPLE : type == '-' ? KIND_ERROR : KIND_INTEGER;
      if (!copy_out(text, text_len)) return -ENOBUFS;
      pos_ += line + 1;
      return 1;
    }
    case '$': {
      if (text_len == 2 && text[0] == '-' && text[1] == '1') {
        info[0] = KIND_NIL;
        info[1] = static_cast<int32_t>(*out_len);
        info[2] = 0;
        pos_ += line + 1;
        return 1;
      }
      if (text_len == 0 || text_len > 10) return -EPROTO;
      int64_t n = 0;
      for (size_t i = 0; i < text_len; i++) {
        if (text[i] < '0' || text[i] > '9') return -EPROTO;
        n = n * 10 + (text[i] - '0');
      }
      if (n > kMaxBulk) return -EPROTO;
      size_t need = line + 1 + static_cast<size_t>(n) + 2;
      if (avail < need) {
        if (pos_ + need > rbuf_.size()) {
          // Make room: move the unparsed bytes to the front, grow if needed.
          memmove(rbuf_.data(), rbuf_.data() + pos_, avail);
          rlen_ = avail;
          pos_ = 0;
          if (need > rbuf_.size()) rbuf_.resize(need);
        }
        return 0;
      }
      const uint8_t* data = b + line + 1;
      if (data[n] != '\r' || data[n + 1] != '\n') return -EPROTO;
      info[0] = KIND_BULK;
      if (!copy_out(data, static_cast<size_t>(n))) return -ENOBUFS;
      pos_ += need;
      return 1;
    }
    default: return -EPROTO;  // an array, a RESP3 type or garbage
  }
}

int RespConn::exchange(const uint8_t* req, size_t len, int n, int timeout_ms, uint8_t* out, size_t out_cap,
                       int32_t* info) {
  int r = send(req, len, n, timeout_ms);
  if (r < 0) return r;
  return receive(out, out_cap, info, true);
}

int RespConn::send(const uint8_t* req, size_t len, int n, int timeout_ms) {
  if (fd_ < 0) return -ENOTCONN;
  if (want_ > 0) return fail(-EBUSY);  // replies of an earlier request still due
  deadline_ = now_ms() + timeout_ms;
  if (pos_ != rlen_) return fail(-EPROTO);  // bytes nobody asked for
  rlen_ = pos_ = 0;
  {
    // Bytes that came after the last exchange's replies: the stream is out of step
    // (a real server sends nothing unasked), and they would pass for this reply.
    uint8_t probe;
    ssize_t k = ::recv(fd_, &probe, 1, MSG_DONTWAIT | MSG_PEEK);
    if (k > 0) return fail(-EPROTO);
    if (k == 0) return fail(-ECONNRESET);
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return fail(-errno);
  }
  size_t sent = 0;
  while (sent < len) {
    ssize_t w = ::send(fd_, req + sent, len - sent, MSG_NOSIGNAL);
    if (w > 0) {
      sent += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int r = wait_fd(fd_, POLLOUT, deadline_);
      if (r != 0) return fail(r);
      continue;
    }
    return fail(w == 0 ? -EPIPE : -errno);
  }
  want_ = n;
  done_ = 0;
  out_len_ = 0;
  return 0;
}

int RespConn::receive(uint8_t* out, size_t out_cap, int32_t* info, bool wait) {
  if (fd_ < 0) return -ENOTCONN;
  if (want_ <= 0) return -EINVAL;  // nothing sent
  while (done_ < want_) {
    int p = parse_one(out, out_cap, &out_len_, info + 3 * done_);
    if (p < 0) return fail(p);
    if (p == 1) {
      done_++;
      continue;
    }
    if (rlen_ == rbuf_.size()) {
      if (pos_ > 0) {
        memmove(rbuf_.data(), rbuf_.data() + pos_, rlen_ - pos_);
        rlen_ -= pos_;
        pos_ = 0;
      } else {
        rbuf_.resize(rbuf_.size() * 2);
      }
    }
    ssize_t r = ::recv(fd_, rbuf_.data() + rlen_, rbuf_.size() - rlen_, MSG_DONTWAIT);
    if (r > 0) {
      rlen_ += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return fail(-ECONNRESET);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait) {
        if (now_ms() >= deadline_) return fail(-ETIMEDOUT);
        return 0;  // not yet: the caller polls again
      }
      int w = wait_fd(fd_, POLLIN, deadline_);
      if (w != 0) return fail(w);
      continue;
    }
    return fail(-errno);
  }
  int n = want_;
  want_ = 0;
  if (pos_ != rlen_) return fail(-EPROTO);  // more bytes than replies: the stream is out of step
  rlen_ = pos_ = 0;
  return n;
}

}  // namespace tmem
