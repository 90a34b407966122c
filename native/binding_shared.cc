// The node-addon-api face of native/shared_pool.h: `new SharedStore(name, bytes, member, create = true)`.
//
//   get(keyLo, keyHi, page, dst)        -> 1 hit (dst holds the page) | 0 miss | -1 bad
//   put(keyLo, keyHi, page, src, off)   -> 1 stored | 2 already there | 0 lock busy
//   publishHeld(bytes); othersHeld(); reclaimDead(); group(); usedBytes()
//   audit()                             -> a scan of the whole index (tests, `tmem stats --audit`)
//   size, shmId (getters); close()
//   lockForTest(); putAndDieForTest(keyLo, keyHi, page, src, stage); scribbleForTest(seed, n)
//
// dst and src are Uint8Arrays (src: a page at byte offset off; dst: at least 4096 bytes).
// A key is the file's 64-bit identity as two unsigned 32-bit words.
#include <napi.h>

#include <cmath>
#include <memory>
#include <string>

#include "binding_args.h"
#include "shared_pool.h"
#include "sys_error.h"

namespace tmem_binding {
namespace {

constexpr size_t kPage = tmem::SharedPool::kPage;

double num(const Napi::CallbackInfo& info, size_t i, const char* name, double lo, double hi) {
  if (info.Length() <= i || !info[i].IsNumber())
    fail(info.Env(), std::string(name) + " must be a number", "ERR_INVALID_ARG_TYPE", false);
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi && std::floor(d) == d))
    fail(info.Env(),
         std::string(name) + " must be an integer from " + std::to_string(static_cast<int64_t>(lo)) + " to " +
             std::to_string(static_cast<int64_t>(hi)),
         "ERR_OUT_OF_RANGE", true);
  return d;
}

uint64_t key_arg(const Napi::CallbackInfo& info) {
  uint64_t lo = static_cast<uint64_t>(num(info, 0, "keyLo", 0, 4294967295.0));
  uint64_t hi = static_cast<uint64_t>(num(info, 1, "keyHi", 0, 4294967295.0));
  return (hi << 32) | lo;
}

uint8_t* page_arg(const Napi::CallbackInfo& info, size_t i, const char* name, size_t off) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    fail(info.Env(), std::string(name) + " must be a Uint8Array", "ERR_INVALID_ARG_TYPE", false);
  Napi::Uint8Array a = info[i].As<Napi::Uint8Array>();
  if (off > a.ByteLength() || a.ByteLength() - off < kPage)
    fail(info.Env(), std::string(name) + " must hold a 4096-byte page at its offset", "ERR_OUT_OF_RANGE", true);
  return a.Data() + off;
}

Napi::Error error_of(Napi::Env env, const std::exception& e) {
  if (const tmem::SysError* se = dynamic_cast<const tmem::SysError*>(&e)) {
    Napi::Error err = Napi::Error::New(env, se->what());
    err.Set("code", Napi::String::New(env, se->code()));
    err.Set("errno", Napi::Number::New(env, se->err()));
    err.Set("syscall", Napi::String::New(env, se->syscall()));
    return err;
  }
  Napi::Error err = Napi::Error::New(env, e.what());
  const char* code = tmem::shared_pool_error_code(e);
  err.Set("code", Napi::String::New(env, code ? code : "TMEM_SHARED_ERROR"));
  return err;
}

class SharedStoreWrap : public Napi::ObjectWrap<SharedStoreWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "SharedStore",
                       {
                           InstanceMethod<&SharedStoreWrap::Get>("get"),
                           InstanceMethod<&SharedStoreWrap::Put>("put"),
                           InstanceMethod<&SharedStoreWrap::PublishHeld>("publishHeld"),
                           InstanceMethod<&SharedStoreWrap::OthersHeld>("othersHeld"),
                           InstanceMethod<&SharedStoreWrap::ReclaimDead>("reclaimDead"),
                           InstanceMethod<&SharedStoreWrap::Group>("group"),
                           InstanceMethod<&SharedStoreWrap::AuditIndex>("audit"),
                           InstanceMethod<&SharedStoreWrap::UsedBytes>("usedBytes"),
                           InstanceMethod<&SharedStoreWrap::Close>("close"),
                           InstanceMethod<&SharedStoreWrap::LockForTest>("lockForTest"),
                           InstanceMethod<&SharedStoreWrap::PutAndDieForTest>("putAndDieForTest"),
                           InstanceMethod<&SharedStoreWrap::ScribbleForTest>("scribbleForTest"),
                           InstanceAccessor<&SharedStoreWrap::Size>("size"),
                           InstanceAccessor<&SharedStoreWrap::ShmId>("shmId"),
                       });
  }

  explicit SharedStoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SharedStoreWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) fail(env, "name must be a string", "ERR_INVALID_ARG_TYPE", false);
    double bytes = num(info, 1, "bytes", 1 << 20, 1ull << 44);
    bool member = info.Length() > 2 && info[2].ToBoolean().Value();
    bool create = info.Length() <= 3 || info[3].IsUndefined() || info[3].ToBoolean().Value();
    try {
      pool_ = std::make_unique<tmem::SharedPool>(info[0].As<Napi::String>().Utf8Value(), static_cast<uint64_t>(bytes),
                                                 member, create);
    } catch (const std::exception& e) {
      throw error_of(env, e);
    }
  }

 private:
  tmem::SharedPool* pool(Napi::Env env) {
    if (!pool_) throw Napi::Error::New(env, "SharedStore is closed");
    return pool_.get();
  }
  Napi::Value Get(const Napi::CallbackInfo& info) {
    uint64_t key = key_arg(info);
    uint32_t page = static_cast<uint32_t>(num(info, 2, "page", 0, 4294967295.0));
    uint8_t* dst = page_arg(info, 3, "dst", 0);
    return Napi::Number::New(info.Env(), pool(info.Env())->get(key, page, dst));
  }
  Napi::Value Put(const Napi::CallbackInfo& info) {
    uint64_t key = key_arg(info);
    uint32_t page = static_cast<uint32_t>(num(info, 2, "page", 0, 4294967295.0));
    size_t off = static_cast<size_t>(num(info, 4, "offset", 0, 9007199254740991.0));
    const uint8_t* src = page_arg(info, 3, "src", off);
    return Napi::Number::New(info.Env(), pool(info.Env())->put(key, page, src));
  }
  Napi::Value PublishHeld(const Napi::CallbackInfo& info) {
    pool(info.Env())->publish_held(static_cast<uint64_t>(num(info, 0, "bytes", 0, 9007199254740991.0)));
    return info.Env().Undefined();
  }
  Napi::Value OthersHeld(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(pool(info.Env())->others_held()));
  }
  Napi::Value ReclaimDead(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), pool(info.Env())->reclaim_dead());
  }
  Napi::Value Group(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    tmem::SharedPool::GroupStats g = pool(env)->group();
    Napi::Object o = Napi::Object::New(env);
    o.Set("members", Napi::Number::New(env, g.members));
    o.Set("heldBytes", Napi::Number::New(env, static_cast<double>(g.held_bytes)));
    o.Set("puts", Napi::Number::New(env, static_cast<double>(g.puts)));
    o.Set("hits", Napi::Number::New(env, static_cast<double>(g.hits)));
    o.Set("misses", Napi::Number::New(env, static_cast<double>(g.misses)));
    o.Set("duplicates", Napi::Number::New(env, static_cast<double>(g.duplicates)));
    o.Set("bad", Napi::Number::New(env, static_cast<double>(g.bad)));
    o.Set("logBytesWritten", Napi::Number::New(env, static_cast<double>(g.head)));
    o.Set("lockSteals", Napi::Number::New(env, static_cast<double>(g.steals)));
    o.Set("storedPages", Napi::Number::New(env, static_cast<double>(g.stored_pages)));
    o.Set("storedBytes", Napi::Number::New(env, static_cast<double>(g.stored_bytes)));
    return o;
  }
  Napi::Value AuditIndex(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    tmem::SharedPool::Audit a = pool(env)->audit();
    Napi::Object o = Napi::Object::New(env);
    o.Set("entries", Napi::Number::New(env, static_cast<double>(a.entries)));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(a.bytes)));
    o.Set("duplicates", Napi::Number::New(env, static_cast<double>(a.duplicates)));
    return o;
  }
  Napi::Value UsedBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(pool(info.Env())->used_bytes()));
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    pool_.reset();
    return info.Env().Undefined();
  }
  Napi::Value LockForTest(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), pool(info.Env())->lock_for_test());
  }
  Napi::Value PutAndDieForTest(const Napi::CallbackInfo& info) {
    uint64_t key = key_arg(info);
    uint32_t page = static_cast<uint32_t>(num(info, 2, "page", 0, 4294967295.0));
    const uint8_t* src = page_arg(info, 3, "src", 0);
    int stage = static_cast<int>(num(info, 4, "stage", 1, 3));
    pool(info.Env())->put_and_die_for_test(key, page, src, stage);
    return info.Env().Undefined();
  }
  // A hostile member: n writes of random bytes (1-64 of them) at random offsets of the segment.
  Napi::Value ScribbleForTest(const Napi::CallbackInfo& info) {
    uint64_t x = static_cast<uint64_t>(num(info, 0, "seed", 0, 9007199254740991.0)) | 1;
    double n = num(info, 1, "writes", 0, 1e9);
    tmem::SharedPool* p = pool(info.Env());
    uint8_t* base = p->base();
    const uint64_t size = p->size();
    for (double i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      uint64_t off = x % size;
      size_t len = 1 + (x >> 40) % 64;
      for (size_t k = 0; k < len && off + k < size; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        __atomic_store_n(base + off + k, static_cast<uint8_t>(x), __ATOMIC_RELAXED);
      }
    }
    return info.Env().Undefined();
  }
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(pool(info.Env())->size()));
  }
  Napi::Value ShmId(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), pool(info.Env())->shm_id());
  }

  std::unique_ptr<tmem::SharedPool> pool_;
};

}  // namespace

Napi::Function InitSharedStore(Napi::Env env) { return SharedStoreWrap::Init(env); }

}  // namespace tmem_binding
