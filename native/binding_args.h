// Argument checks shared by the binding's translation units (binding_store.cc,
// binding_faults.cc): errors thrown with a Node-style `code`, SharedArrayBuffer bytes.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace tmem_binding {

/** Throws a RangeError (range) or a TypeError with `code` set. */
[[noreturn]] inline void fail(Napi::Env env, const std::string& msg, const char* code, bool range) {
  if (range) {
    Napi::RangeError e = Napi::RangeError::New(env, msg);
    e.Set("code", Napi::String::New(env, code));
    throw e;
  }
  Napi::TypeError e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  throw e;
}

/** Bytes of a SharedArrayBuffer (through a Uint8Array over it); a TypeError naming `name` otherwise. */
inline std::pair<uint8_t*, size_t> sab_bytes(Napi::Env env, Napi::Value v, const std::string& name) {
  Napi::Object global = env.Global();
  if (v.IsObject() && v.As<Napi::Object>().InstanceOf(global.Get("SharedArrayBuffer").As<Napi::Function>())) {
    Napi::Uint8Array arr = global.Get("Uint8Array").As<Napi::Function>().New({v}).As<Napi::Uint8Array>();
    return {arr.Data(), arr.ByteLength()};
  }
  fail(env, name + ": expected a SharedArrayBuffer", "ERR_INVALID_ARG_TYPE", false);
}

}  // namespace tmem_binding
