// The node-addon-api face of native/store_reader.h: `new StoreReader(storeHandle)`
// binds a native reader to the SharedArrayBuffers of a lib/tmem Store (the
// StoreHandle from Store.handle()), keeping them alive as long as it lives.
//
//   lookup(pool, o0, o1, o2, index, dst)  -> length | -1 absent | -2 busy | -3 bad state
//   lookupPage(pool, o0, o1, o2, index, page) -> 4096 (decoded page) | -1 | -2 | -3
//
// Object id words are Numbers (integers 0 .. 2^53-1, as Store.put takes them).
#include <napi.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "binding_args.h"
#include "page_codec.h"
#include "store_reader.h"

namespace tmem_binding {
namespace {

tmem::SharedWords words(Napi::Env env, Napi::Value v, const std::string& name) {
  auto b = sab_bytes(env, v, name);
  return tmem::SharedWords{reinterpret_cast<int32_t*>(b.first), b.second / 4};
}

Napi::Array array_prop(Napi::Env env, Napi::Object o, const char* key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) fail(env, name + ": expected an array of SharedArrayBuffers", "ERR_INVALID_ARG_TYPE", false);
  return v.As<Napi::Array>();
}

uint32_t u32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, double max) {
  double d = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= 0 && d <= max && std::floor(d) == d)) {
    fail(info.Env(),
         std::string(name) + ": expected an integer from 0 to " + std::to_string(static_cast<uint64_t>(max)),
         info.Length() > i && info[i].IsNumber() ? "ERR_OUT_OF_RANGE" : "ERR_INVALID_ARG_TYPE", true);
  }
  return static_cast<uint32_t>(d);
}

/** An object id word as lib/tmem/hash.ts splits it: lo32 = w | 0, hi32 = (w / 2^32) | 0. */
void oid_word(const Napi::CallbackInfo& info, size_t i, const char* name, int32_t* out) {
  double d = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= 0 && d <= 9007199254740991.0 && std::floor(d) == d)) {
    fail(info.Env(), std::string(name) + ": expected an integer from 0 to 2^53-1", "ERR_INVALID_ARG_TYPE", false);
  }
  const uint64_t w = static_cast<uint64_t>(d);
  out[0] = static_cast<int32_t>(static_cast<uint32_t>(w));
  out[1] = static_cast<int32_t>(static_cast<uint32_t>(w >> 32));
}

}  // namespace

/** Binds `reader` to the buffers of StoreHandle `h`; throws a TypeError naming `name` if they are not a store. */
void BindStoreReader(Napi::Env env, Napi::Object h, const std::string& name, tmem::StoreReader* reader) {
  Napi::Value av = h.Get("arena");
  if (!av.IsObject()) fail(env, name + ".arena: expected an ArenaHandle", "ERR_INVALID_ARG_TYPE", false);
  Napi::Object a = av.As<Napi::Object>();
  Napi::Array ch = array_prop(env, a, "chunks", name + ".arena.chunks");
  std::vector<std::pair<uint8_t*, size_t>> chunks;
  for (uint32_t i = 0; i < ch.Length(); i++) chunks.push_back(sab_bytes(env, ch.Get(i), name + ".arena.chunks[i]"));
  Napi::Array ms = array_prop(env, h, "metas", name + ".metas");
  std::vector<tmem::SharedWords> metas;
  for (uint32_t i = 0; i < ms.Length(); i++) metas.push_back(words(env, ms.Get(i), name + ".metas[i]"));
  std::string err;
  if (!reader->bind(words(env, h.Get("control"), name + ".control"), std::move(metas),
                    words(env, a.Get("control"), name + ".arena.control"), std::move(chunks), &err)) {
    fail(env, name + ": " + err, "ERR_INVALID_ARG_VALUE", false);
  }
}

namespace {

class StoreReaderWrap : public Napi::ObjectWrap<StoreReaderWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "StoreReader",
                       {InstanceMethod<&StoreReaderWrap::Lookup>("lookup"),
                        InstanceMethod<&StoreReaderWrap::LookupPage>("lookupPage")});
  }

  StoreReaderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StoreReaderWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject())
      fail(env, "handle: expected a StoreHandle", "ERR_INVALID_ARG_TYPE", false);
    Napi::Object h = info[0].As<Napi::Object>();
    BindStoreReader(env, h, "handle", &reader_);
    keep_ = Napi::Persistent(h);  // the buffers live as long as this reader
  }

 private:
  struct Key {
    uint32_t pool, index;
    int32_t oid[6];
  };
  Key key(const Napi::CallbackInfo& info) {
    Key k;
    k.pool = u32_arg(info, 0, "pool", 1023);
    oid_word(info, 1, "o0", k.oid);
    oid_word(info, 2, "o1", k.oid + 2);
    oid_word(info, 3, "o2", k.oid + 4);
    k.index = u32_arg(info, 4, "index", 4294967295.0);
    return k;
  }
  Napi::Uint8Array dst_arg(const Napi::CallbackInfo& info, size_t min) {
    if (info.Length() < 6 || !info[5].IsTypedArray() ||
        info[5].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      fail(info.Env(), "dst: expected a Uint8Array", "ERR_INVALID_ARG_TYPE", false);
    }
    Napi::Uint8Array d = info[5].As<Napi::Uint8Array>();
    if (d.ByteLength() < min)
      fail(info.Env(), "dst: expected at least " + std::to_string(min) + " bytes", "ERR_OUT_OF_RANGE", true);
    return d;
  }

  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Key k = key(info);
    Napi::Uint8Array d = dst_arg(info, 1);
    return Napi::Number::New(info.Env(), reader_.lookup(k.pool, k.oid, k.index, d.Data(), d.ByteLength()));
  }

  Napi::Value LookupPage(const Napi::CallbackInfo& info) {
    Key k = key(info);
    Napi::Uint8Array d = dst_arg(info, 4096);
    alignas(64) static thread_local uint8_t obj[4097 + 64];
    int n = reader_.lookup(k.pool, k.oid, k.index, obj, 4097);
    if (n < 0) return Napi::Number::New(info.Env(), n);
    std::string err;
    const void* page = tmem::decode_page(obj, static_cast<size_t>(n), reinterpret_cast<char*>(d.Data()), &err);
    if (!page) return Napi::Number::New(info.Env(), tmem::StoreReader::kBad);
    if (page != d.Data()) std::memcpy(d.Data(), page, 4096);
    return Napi::Number::New(info.Env(), 4096);
  }

  tmem::StoreReader reader_;
  Napi::ObjectReference keep_;
};

}  // namespace

Napi::Function InitStoreReader(Napi::Env env) { return StoreReaderWrap::Init(env); }

}  // namespace tmem_binding
