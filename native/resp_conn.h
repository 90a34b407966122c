// RespConn: one blocking TCP connection to a Redis server, with a deadline on
// every exchange, and a RESP2 reply reader written by hand (about 150 lines)
// rather than hiredis: the addon is shipped prebuilt (it must load on hosts
// without libhiredis.so), and the remote tier's fault path needs only replies
// that are not arrays (+simple, -error, :integer, $bulk, $-1 nil).
//
// The dispatcher thread owns its connections and calls exchange() itself: a
// fault on a remote page is served without any event loop in between (the
// faulting thread stays blocked in the kernel until the page is copied in).
//
//   exchange(request bytes, n replies, deadline) -> n, or -errno:
//     ETIMEDOUT     the deadline passed (a hung server: SIGSTOP)
//     ECONNRESET / EPIPE / ECONNREFUSED ...  the server died or refused
//     EPROTO        the bytes read are not RESP (garbage), or an array reply
//     ENOBUFS       the replies do not fit the caller's buffer
//   After any failure the connection is closed: whatever was in flight is
//   unknown, so the caller treats every request of that exchange as failed.
//
//   send() + receive(): the same in two halves (the dispatcher serves other faults
//   while a remote fault's reply is on its way).
//
//   Per reply: info[3i] = kind (KIND_*), info[3i+1] = offset of its bytes in
//   `out`, info[3i+2] = their length (the text of +, - and :, a bulk's bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tmem {

class RespConn {
 public:
  enum Kind : int32_t { KIND_SIMPLE = 1, KIND_ERROR = 2, KIND_INTEGER = 3, KIND_BULK = 4, KIND_NIL = 5 };

  RespConn(std::string host, int port) : host_(std::move(host)), port_(port) {}
  ~RespConn() { close(); }
  RespConn(const RespConn&) = delete;
  RespConn& operator=(const RespConn&) = delete;

  /** Connects (TCP_NODELAY) within timeout_ms. 0, or -errno (-ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH...). */
  int connect(int timeout_ms);
  bool connected() const { return fd_ >= 0; }
  void close();

  /**
   * Sends req[0..len) and reads `n` replies within timeout_ms (from the call). Returns n, or
   * -errno (the connection is then closed).
   */
  int exchange(const uint8_t* req, size_t len, int n, int timeout_ms, uint8_t* out, size_t out_cap, int32_t* info);

  /**
   * exchange() in two halves, so that the caller can do other work while the server
   * answers: send() writes the request (blocking only while the socket is full) and
   * expects `n` replies by timeout_ms from now: 0, or -errno. receive() parses what has
   * arrived into out/info (the same buffers on every call until it completes): n when all
   * n replies are in, 0 when not yet (never with `wait`, which blocks until the deadline),
   * or -errno (-ETIMEDOUT past the deadline; the connection is then closed).
   */
  int send(const uint8_t* req, size_t len, int n, int timeout_ms);
  int receive(uint8_t* out, size_t out_cap, int32_t* info, bool wait);
  /** Replies are due (send() done, receive() not complete). */
  bool busy() const { return want_ > 0; }

 private:
  /** Parses one reply at rbuf_[pos_...): 1 done, 0 needs more bytes, -EPROTO/-ENOBUFS. */
  int parse_one(uint8_t* out, size_t out_cap, size_t* out_len, int32_t* info);
  int fail(int err);

  std::string host_;
  int port_;
  int fd_ = -1;
  std::vector<uint8_t> rbuf_;
  size_t rlen_ = 0;  // bytes in rbuf_
  size_t pos_ = 0;   // start of the first unparsed reply
  int want_ = 0;     // replies due for the request sent (0: none)
  int done_ = 0;     // of them, parsed
  size_t out_len_ = 0;
  int64_t deadline_ = 0;  // ms, CLOCK_MONOTONIC
};

}  // namespace tmem
