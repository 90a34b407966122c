// The node-addon-api face of native/resp_conn.h: `new RemoteConn(host, port)`,
// a blocking connection to a Redis server that the dispatcher thread owns.
//
//   connect(timeoutMs)                                  -> 0 | -errno
//   exchange(req, len, n, timeoutMs, out, info)         -> n | -errno (see resp_conn.h)
//   send(req, len, n, timeoutMs)                        -> 0 | -errno
//   receive(out, info, wait)                            -> n | 0 (not yet) | -errno
//   close(); connected, busy (getters)
//
// req and out are Uint8Arrays, info an Int32Array of at least 3 * n words.
#include <napi.h>

#include <cmath>
#include <memory>
#include <string>

#include "resp_conn.h"

namespace tmem_binding {
namespace {

[[noreturn]] void type_error(Napi::Env env, const std::string& msg, const char* code) {
  Napi::TypeError e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  throw e;
}

[[noreturn]] void range_error(Napi::Env env, const std::string& msg) {
  Napi::RangeError e = Napi::RangeError::New(env, msg);
  e.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
  throw e;
}

double int_arg(const Napi::CallbackInfo& info, size_t i, const char* name, double lo, double hi) {
  if (info.Length() <= i || !info[i].IsNumber())
    type_error(info.Env(), std::string(name) + " must be a number", "ERR_INVALID_ARG_TYPE");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi && std::floor(d) == d))
    range_error(info.Env(), std::string(name) + " must be an integer from " + std::to_string(static_cast<int64_t>(lo)) +
                                " to " + std::to_string(static_cast<int64_t>(hi)));
  return d;
}

class RemoteConnWrap : public Napi::ObjectWrap<RemoteConnWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RemoteConn",
                       {
                           InstanceMethod<&RemoteConnWrap::Connect>("connect"),
                           InstanceMethod<&RemoteConnWrap::Exchange>("exchange"),
                           InstanceMethod<&RemoteConnWrap::Send>("send"),
                           InstanceMethod<&RemoteConnWrap::Receive>("receive"),
                           InstanceMethod<&RemoteConnWrap::Close>("close"),
                           InstanceAccessor<&RemoteConnWrap::Connected>("connected"),
                           InstanceAccessor<&RemoteConnWrap::Busy>("busy"),
                       });
  }

  explicit RemoteConnWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RemoteConnWrap>(info) {
    if (info.Length() < 1 || !info[0].IsString())
      type_error(info.Env(), "host must be a string", "ERR_INVALID_ARG_TYPE");
    int port = static_cast<int>(int_arg(info, 1, "port", 1, 65535));
    conn_ = std::make_unique<tmem::RespConn>(info[0].As<Napi::String>().Utf8Value(), port);
  }

 private:
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    int t = static_cast<int>(int_arg(info, 0, "timeoutMs", 1, 3600000));
    return Napi::Number::New(info.Env(), conn_->connect(t));
  }

  Napi::Value Exchange(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[0].IsTypedArray() || !info[4].IsTypedArray() || !info[5].IsTypedArray())
      type_error(env, "exchange(req: Uint8Array, len, n, timeoutMs, out: Uint8Array, info: Int32Array)",
                 "ERR_INVALID_ARG_TYPE");
    Napi::Uint8Array req = info[0].As<Napi::Uint8Array>();
    Napi::Uint8Array out = info[4].As<Napi::Uint8Array>();
    Napi::TypedArray inf = info[5].As<Napi::TypedArray>();
    if (req.TypedArrayType() != napi_uint8_array || out.TypedArrayType() != napi_uint8_array ||
        inf.TypedArrayType() != napi_int32_array)
      type_error(env, "exchange: req and out must be Uint8Arrays, info an Int32Array", "ERR_INVALID_ARG_TYPE");
    double len = int_arg(info, 1, "len", 0, static_cast<double>(req.ByteLength()));
    double n = int_arg(info, 2, "n", 1, static_cast<double>(inf.ElementLength() / 3));
    int t = static_cast<int>(int_arg(info, 3, "timeoutMs", 1, 3600000));
    int32_t* words = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(inf.ArrayBuffer().Data()) + inf.ByteOffset());
    int r = conn_->exchange(req.Data(), static_cast<size_t>(len), static_cast<int>(n), t, out.Data(), out.ByteLength(),
                            words);
    return Napi::Number::New(env, r);
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      type_error(env, "send(req: Uint8Array, len, n, timeoutMs)", "ERR_INVALID_ARG_TYPE");
    Napi::Uint8Array req = info[0].As<Napi::Uint8Array>();
    double len = int_arg(info, 1, "len", 0, static_cast<double>(req.ByteLength()));
    double n = int_arg(info, 2, "n", 1, 1 << 20);
    int t = static_cast<int>(int_arg(info, 3, "timeoutMs", 1, 3600000));
    pending_ = static_cast<int>(n);
    return Napi::Number::New(env, conn_->send(req.Data(), static_cast<size_t>(len), pending_, t));
  }

  Napi::Value Receive(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsBoolean())
      type_error(env, "receive(out: Uint8Array, info: Int32Array, wait: boolean)", "ERR_INVALID_ARG_TYPE");
    Napi::Uint8Array out = info[0].As<Napi::Uint8Array>();
    Napi::TypedArray inf = info[1].As<Napi::TypedArray>();
    if (out.TypedArrayType() != napi_uint8_array || inf.TypedArrayType() != napi_int32_array)
      type_error(env, "receive: out must be a Uint8Array, info an Int32Array", "ERR_INVALID_ARG_TYPE");
    if (conn_->busy() && inf.ElementLength() < 3 * static_cast<size_t>(pending_))
      range_error(env, "receive: info has fewer than 3 words per reply due");
    int32_t* words = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(inf.ArrayBuffer().Data()) + inf.ByteOffset());
    int r = conn_->receive(out.Data(), out.ByteLength(), words, info[2].As<Napi::Boolean>().Value());
    return Napi::Number::New(env, r);
  }

  Napi::Value Busy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), conn_->busy()); }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    conn_->close();
    return info.Env().Undefined();
  }

  Napi::Value Connected(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), conn_->connected()); }

  std::unique_ptr<tmem::RespConn> conn_;
  int pending_ = 0;  // replies due for the last send(): receive()'s info must hold them
};

}  // namespace

Napi::Function InitRemoteConn(Napi::Env env) { return RemoteConnWrap::Init(env); }

}  // namespace tmem_binding
