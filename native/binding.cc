// The Node binding: converts arguments and errors, nothing more.
//
// Every method checks its arguments and throws TypeError/RangeError naming the
// argument before anything reaches the kernel; SysError from the core becomes
// an Error with `code`, `errno` and `syscall`. The documented JS surface is
// lib/native.ts.
//
// Process-wide state (shared by the main thread and Workers, each of which
// loads this addon into its own environment):
//   g_regions   address -> Mapping for every region created here; resolve
//               calls check that their destination lies inside one region
//               registered with that uffd, so a Worker can only write into
//               memory tmem owns.
//   g_uffds     uffd fd -> the owning Uffd's Deadman, so that a Worker's exit
//               can hand the fd to the deadman (see deadman.h).
//   g_inline    uffd fd -> its SIGBUS sibling, the userfaultfd that inline
//               regions of the same swap are registered with (inline_fault.h).
//               Resolve calls on a Uffd go to whichever of the two holds the
//               destination (a MOVE: the destination's; the kernel wants
//               only the destination registered with the uffd it is called on).
#define NAPI_VERSION 9
// A Worker being terminated can still be inside (or call) a method: a napi
// call then fails and the Napi::Error cannot be thrown into JS. Without this,
// node-addon-api throws again from ThrowAsJavaScriptException -> std::terminate.
#define NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#include <napi.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "deadman.h"
#include "file_io.h"
#include "inline_fault.h"
#include "memory.h"
#include "page_codec.h"
#include "sys_error.h"
#include "thread.h"
#include "uffd.h"

namespace tmem_binding {
Napi::Function InitStoreReader(Napi::Env env);  // binding_store.cc
Napi::Function InitRemoteConn(Napi::Env env);   // binding_remote.cc
Napi::Function InitSharedStore(Napi::Env env);  // binding_shared.cc
Napi::Function InitFaultServer(Napi::Env env);  // binding_faults.cc
bool in_open_region(int uffd_fd, uint64_t addr, uint64_t len);
int open_region_uffd(uint64_t addr, uint64_t len);
int inline_sibling_fd(int main_fd);
}  // namespace tmem_binding

namespace {

using tmem::kPageSize;

// ---- process-wide registries ------------------------------------------------

/** Region memory; unmapped when the Region and every ArrayBuffer over it are gone. */
struct Mapping {
  uint64_t addr;
  uint64_t len;
  int uffd_fd;
  std::atomic<bool> open{true};
  /** Inline regions: the entry in the SIGBUS handler's table, and the forward area (a Mapping of the main uffd). */
  int inline_entry = -1;
  std::shared_ptr<Mapping> forward;
  ~Mapping() {
    if (inline_entry >= 0) tmem::inline_fault::remove(inline_entry);  // before the memory goes
    try {
      tmem::unmap(addr, len);
    } catch (...) {
    }
  }
};

std::mutex g_mu;
std::map<uint64_t, std::shared_ptr<Mapping>> g_regions;   // by start address
std::map<int, std::shared_ptr<tmem::Deadman>> g_deadmen;  // by uffd fd
std::map<int, std::shared_ptr<tmem::Uffd>> g_inline;      // by the main uffd's fd: its SIGBUS sibling

// Bumped whenever a region is added, closed or dropped: invalidates every
// thread's lookup cache, so that the fault path checks its destination without
// a lock or a reference count.
std::atomic<uint64_t> g_regions_gen{1};
struct RegionCache {
  uint64_t gen = 0, addr = 0, len = 0;
  int fd = -1;
};
thread_local RegionCache t_region_cache;

std::shared_ptr<Mapping> find_region(uint64_t addr) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_regions.upper_bound(addr);
  if (it == g_regions.begin()) return nullptr;
  --it;
  const auto& m = it->second;
  if (addr >= m->addr && addr < m->addr + m->len) return m;
  return nullptr;
}

}  // namespace

/** For binding_faults.cc: [addr, addr+len) lies inside one open region registered with uffd_fd. */
bool tmem_binding::in_open_region(int uffd_fd, uint64_t addr, uint64_t len) {
  auto m = find_region(addr);
  return m && m->open.load() && m->uffd_fd == uffd_fd && addr + len > addr && addr + len <= m->addr + m->len;
}

/** For binding_faults.cc: the uffd fd the open region holding [addr, addr+len) is registered with, or -1. */
int tmem_binding::open_region_uffd(uint64_t addr, uint64_t len) {
  auto m = find_region(addr);
  if (!m || !m->open.load() || addr + len <= addr || addr + len > m->addr + m->len) return -1;
  return m->uffd_fd;
}

/** For binding_faults.cc: the fd of main uffd `main_fd`'s SIGBUS sibling (inline regions), or -1. */
int tmem_binding::inline_sibling_fd(int main_fd) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_inline.find(main_fd);
  return it == g_inline.end() ? -1 : it->second->fd();
}

namespace {

// ---- ArrayBuffers over region memory -----------------------------------------------
//
// Each external ArrayBuffer holds its Mapping through an entry of g_holds, released by the
// buffer's finalizer. A failed napi_create_external_arraybuffer may or may not have run the
// finalizer already (Node.js 20 runs it when the length is over buffer.constants.MAX_LENGTH,
// 2^32: node::Buffer::New frees on failure, and node-addon-api's ArrayBuffer::New then frees
// its finalizer data a second time, aborting the process). Releasing an entry by its id is
// idempotent, so the failure path here frees nothing twice and leaks nothing.

std::mutex g_holds_mu;
std::map<uint64_t, std::shared_ptr<Mapping>> g_holds;
uint64_t g_next_hold = 1;

void release_hold(napi_env, void*, void* hint) {
  std::shared_ptr<Mapping> last;  // unmapped (if last) outside the lock
  std::lock_guard<std::mutex> lock(g_holds_mu);
  auto it = g_holds.find(reinterpret_cast<uintptr_t>(hint));
  if (it == g_holds.end()) return;
  last = std::move(it->second);
  g_holds.erase(it);
}

/** An ArrayBuffer over `m`'s memory that keeps it mapped while it is reachable. */
Napi::ArrayBuffer region_buffer(Napi::Env env, const std::shared_ptr<Mapping>& m) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(g_holds_mu);
    id = g_next_hold++;
    g_holds[id] = m;
  }
  napi_value v = nullptr;
  napi_status st = napi_create_external_arraybuffer(env, reinterpret_cast<void*>(m->addr), m->len, release_hold,
                                                    reinterpret_cast<void*>(static_cast<uintptr_t>(id)), &v);
  if (st != napi_ok) {
    release_hold(env, nullptr, reinterpret_cast<void*>(static_cast<uintptr_t>(id)));
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);  // Node's ERR_BUFFER_TOO_LARGE: ours says more
    }
    Napi::RangeError e = Napi::RangeError::New(
        env, "an ArrayBuffer of " + std::to_string(m->len) +
                 " bytes over region memory could not be created: napi_create_external_arraybuffer refused it "
                 "(Node.js 20 allows at most buffer.constants.MAX_LENGTH, 4 GiB; Node.js 22 and later 2^53-1)");
    e.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
    throw e;
  }
  return Napi::ArrayBuffer(env, v);
}

// ---- argument checking -------------------------------------------------------

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] void range_error(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

double number_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    type_error(info.Env(), std::string(name) + " must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || v != std::floor(v)) {
    range_error(info.Env(), std::string(name) + " must be an integer, got " + std::to_string(v));
  }
  return v;
}

/** A page-aligned address (a Number: user addresses fit in 53 bits). */
uint64_t addr_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double v = number_arg(info, i, name);
  if (v <= 0 || v > 9007199254740991.0) range_error(info.Env(), std::string(name) + " must be a positive address");
  uint64_t a = static_cast<uint64_t>(v);
  if (a % kPageSize) range_error(info.Env(), std::string(name) + " must be page aligned (a multiple of 4096)");
  return a;
}

/** A length in bytes: > 0 and a multiple of the page size. */
uint64_t len_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double v = number_arg(info, i, name);
  if (v <= 0)
    range_error(info.Env(), std::string(name) + " must be > 0, got " + std::to_string(static_cast<int64_t>(v)));
  uint64_t n = static_cast<uint64_t>(v);
  if (n % kPageSize)
    range_error(info.Env(), std::string(name) + " must be a multiple of 4096, got " + std::to_string(n));
  return n;
}

uint32_t flags_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || info[i].IsUndefined()) return 0;
  double v = number_arg(info, i, name);
  if (v < 0 || v > 0xffff) range_error(info.Env(), std::string(name) + " must be a small bit mask");
  return static_cast<uint32_t>(v);
}

using tmem::hex;

/**
 * Checks that [addr, addr+len) lies inside one open region registered with `fd` or with `sibling`
 * (its SIGBUS sibling, or -1); returns the fd of the one it is registered with.
 */
int check_in_region(Napi::Env env, int fd, int sibling, uint64_t addr, uint64_t len, const char* name) {
  const RegionCache& c = t_region_cache;
  const uint64_t gen = g_regions_gen.load(std::memory_order_acquire);
  if (c.gen == gen && (c.fd == fd || (sibling >= 0 && c.fd == sibling)) && addr >= c.addr &&
      addr + len <= c.addr + c.len && addr + len > addr) {
    return c.fd;
  }
  auto m = find_region(addr);
  if (!m || !m->open.load()) {
    range_error(env, std::string(name) + " (" + hex(addr) + ") is not inside an open tmem region");
  }
  if (m->uffd_fd != fd && (sibling < 0 || m->uffd_fd != sibling))
    range_error(env, std::string(name) + " lies in a region registered with another userfaultfd");
  if (addr + len > m->addr + m->len) {
    range_error(env, std::string(name) + " + length runs past the end of its region (region is " +
                         std::to_string(m->len) + " bytes)");
  }
  t_region_cache = RegionCache{gen, m->addr, m->len, m->uffd_fd};  // the generation read before the lookup
  return m->uffd_fd;
}

/** Bytes of a TypedArray, DataView, ArrayBuffer or SharedArrayBuffer. */
struct Bytes {
  uint8_t* data;
  size_t len;
};
Bytes bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (i < info.Length()) {
    napi_value v = info[i];
    bool is;
    if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
      napi_typedarray_type type;
      size_t length, offset;
      void* data;
      napi_value ab;
      NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset), Bytes{});
      size_t elem = 1;
      switch (type) {
        case napi_int16_array:
        case napi_uint16_array: elem = 2; break;
        case napi_int32_array:
        case napi_uint32_array:
        case napi_float32_array: elem = 4; break;
        case napi_float64_array:
        case napi_bigint64_array:
        case napi_biguint64_array: elem = 8; break;
        default: break;
      }
      return Bytes{static_cast<uint8_t*>(data), length * elem};
    }
    if (napi_is_dataview(env, v, &is) == napi_ok && is) {
      size_t length, offset;
      void* data;
      napi_value ab;
      NAPI_THROW_IF_FAILED(env, napi_get_dataview_info(env, v, &length, &data, &ab, &offset), Bytes{});
      return Bytes{static_cast<uint8_t*>(data), length};
    }
    if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
      void* data;
      size_t length;
      NAPI_THROW_IF_FAILED(env, napi_get_arraybuffer_info(env, v, &data, &length), Bytes{});
      return Bytes{static_cast<uint8_t*>(data), length};
    }
    if (info[i].IsObject()) {  // SharedArrayBuffer: go through a Uint8Array over it
      Napi::Object global = env.Global();
      Napi::Value sab_ctor = global.Get("SharedArrayBuffer");
      if (info[i].As<Napi::Object>().InstanceOf(sab_ctor.As<Napi::Function>())) {
        Napi::Function u8 = global.Get("Uint8Array").As<Napi::Function>();
        Napi::Value view = u8.New({info[i]});
        Napi::Uint8Array arr = view.As<Napi::Uint8Array>();
        return Bytes{arr.Data(), arr.ByteLength()};
      }
    }
  }
  type_error(env, std::string(name) + " must be a TypedArray, DataView or (Shared)ArrayBuffer");
}

Napi::Error sys_error(Napi::Env env, const tmem::SysError& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, e.code()));
  err.Set("errno", Napi::Number::New(env, e.err()));
  err.Set("syscall", Napi::String::New(env, e.syscall()));
  return err;
}

#define SYSCALL_GUARD(body)           \
  try {                               \
    body                              \
  } catch (const tmem::SysError& e) { \
    throw sys_error(info.Env(), e);   \
  }

/** Names of the _UFFDIO_* bits in an ioctls mask. */
Napi::Array ioctl_names(Napi::Env env, uint64_t ioctls) {
  static const char* kIoctls[] = {"REGISTER", "UNREGISTER",   "WAKE",     "COPY",  "ZEROPAGE",
                                  "MOVE",     "WRITEPROTECT", "CONTINUE", "POISON"};
  Napi::Array names = Napi::Array::New(env);
  uint32_t j = 0;
  for (int bit = 0; bit < 9; bit++)
    if (ioctls & (uint64_t{1} << bit)) names.Set(j++, kIoctls[bit]);
  if (ioctls & (uint64_t{1} << _UFFDIO_API)) names.Set(j++, "API");
  return names;
}

// ---- Uffd ---------------------------------------------------------------------

class UffdWrap : public Napi::ObjectWrap<UffdWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Uffd",
                       {
                           StaticMethod<&UffdWrap::Attach>("attach"),
                           InstanceMethod<&UffdWrap::Describe>("describe"),
                           InstanceMethod<&UffdWrap::Read>("read"),
                           InstanceMethod<&UffdWrap::WakeReader>("wakeReader"),
                           InstanceMethod<&UffdWrap::Copy>("copy"),
                           InstanceMethod<&UffdWrap::CopyObject>("copyObject"),
                           InstanceMethod<&UffdWrap::Zeropage>("zeropage"),
                           InstanceMethod<&UffdWrap::Move>("move"),
                           InstanceMethod<&UffdWrap::Wake>("wake"),
                           InstanceMethod<&UffdWrap::Unshare>("unshare"),
                           InstanceMethod<&UffdWrap::WriteProtect>("writeProtect"),
                           InstanceMethod<&UffdWrap::Poison>("poison"),
                           InstanceMethod<&UffdWrap::ArmDeadman>("armDeadman"),
                           InstanceMethod<&UffdWrap::DisarmDeadman>("disarmDeadman"),
                           InstanceMethod<&UffdWrap::Close>("close"),
                           InstanceAccessor<&UffdWrap::Fd>("fd"),
                           InstanceAccessor<&UffdWrap::Closed>("closed"),
                       });
  }

  // new Uffd(mode: 0 auto | 1 full | 2 user, extraFeatures)
  // new Uffd(descriptor, true)  -- internal path used by attach()
  UffdWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UffdWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() >= 2 && info[1].IsBoolean() && info[1].As<Napi::Boolean>()) {
      if (!info[0].IsObject()) type_error(env, "descriptor must be the object from uffd.describe()");
      Napi::Object d = info[0].As<Napi::Object>();
      for (const char* key : {"fd", "features", "ioctls"}) {
        if (!d.Get(key).IsNumber())
          type_error(env,
                     std::string("descriptor.") + key + " must be a number (pass the object from uffd.describe())");
      }
      if (!d.Get("userModeOnly").IsBoolean())
        type_error(env, "descriptor.userModeOnly must be a boolean (pass the object from uffd.describe())");
      int fd = d.Get("fd").As<Napi::Number>().Int32Value();
      uint64_t features = static_cast<uint64_t>(d.Get("features").As<Napi::Number>().Int64Value());
      uint64_t ioctls = static_cast<uint64_t>(d.Get("ioctls").As<Napi::Number>().Int64Value());
      bool umo = d.Get("userModeOnly").As<Napi::Boolean>();
      {
        std::lock_guard<std::mutex> lock(g_mu);
        if (!g_deadmen.count(fd)) range_error(env, "descriptor.fd is not an open tmem userfaultfd");
      }
      SYSCALL_GUARD({ uffd_ = std::make_unique<tmem::Uffd>(fd, features, ioctls, umo); })
      return;
    }
    uint32_t mode =
        info.Length() > 0 && !info[0].IsUndefined() ? static_cast<uint32_t>(number_arg(info, 0, "mode")) : 0;
    if (mode > 2) range_error(env, "mode must be 0 (auto), 1 (full) or 2 (user-mode-only)");
    double extra = info.Length() > 1 && !info[1].IsUndefined() ? number_arg(info, 1, "features") : 0;
    if (extra < 0) range_error(env, "features must be a UFFD_FEATURE_* bit mask");
    SYSCALL_GUARD(
        { uffd_ = std::make_unique<tmem::Uffd>(static_cast<tmem::UffdMode>(mode), static_cast<uint64_t>(extra)); })
    deadman_ = std::make_shared<tmem::Deadman>(uffd_.get());
    std::lock_guard<std::mutex> lock(g_mu);
    g_deadmen[uffd_->fd()] = deadman_;
  }

  ~UffdWrap() override { shutdown(); }

  tmem::Uffd* uffd(Napi::Env env) {
    if (!uffd_) throw Napi::Error::New(env, "userfaultfd is closed");
    return uffd_.get();
  }

  /** The SIGBUS sibling of this uffd (inline regions), created on first use when `create`; null if none. */
  std::shared_ptr<tmem::Uffd> sibling(Napi::Env env, bool create) {
    tmem::Uffd* u = uffd(env);
    if (sibling_) return sibling_;
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_inline.find(u->fd());
    if (it != g_inline.end()) return sibling_ = it->second;
    if (!create) return nullptr;
    // The features a main uffd has (WP, MOVE, POISON where offered) and SIGBUS (ENOTSUP when missing).
    auto s = std::make_shared<tmem::Uffd>(tmem::UffdMode::kAuto, UFFD_FEATURE_SIGBUS);
    g_inline[u->fd()] = s;
    return sibling_ = s;
  }

  /** The uffd (this one or its SIGBUS sibling) that [addr, addr+len) is registered with; throws RangeError if neither.
   */
  tmem::Uffd* target(Napi::Env env, uint64_t addr, uint64_t len, const char* name) {
    tmem::Uffd* u = uffd(env);
    const int sib_fd = sibling_ ? sibling_->fd() : -1;
    int fd;
    if (sib_fd >= 0) {
      fd = check_in_region(env, u->fd(), sib_fd, addr, len, name);
    } else {
      // An inline region may have been added since this wrapper last looked (it is an attached one).
      const RegionCache& c = t_region_cache;
      const bool cached = c.gen == g_regions_gen.load(std::memory_order_acquire) && c.fd == u->fd() && addr >= c.addr &&
                          addr + len <= c.addr + c.len;
      if (cached) return u;
      auto s = sibling(env, false);
      fd = check_in_region(env, u->fd(), s ? s->fd() : -1, addr, len, name);
    }
    return fd == u->fd() ? u : sibling_.get();
  }

 private:
  static Napi::Value Attach(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsObject())
      type_error(info.Env(), "descriptor must be the object from uffd.describe()");
    Napi::FunctionReference* ctor = info.Env().GetInstanceData<Napi::FunctionReference>();
    return ctor->New({info[0], Napi::Boolean::New(info.Env(), true)});
  }

  Napi::Value Describe(const Napi::CallbackInfo& info) {
    tmem::Uffd* u = uffd(info.Env());
    Napi::Object d = Napi::Object::New(info.Env());
    d.Set("fd", u->fd());
    d.Set("features", static_cast<double>(u->features()));
    d.Set("ioctls", static_cast<double>(u->ioctls() & 0xffffffffu));
    d.Set("userModeOnly", u->user_mode_only());
    d.Set("viaDev", u->via_dev());
    return d;
  }

  // read(out: Float64Array, timeoutMs) -> n events | 0 timeout | -1 woken.
  // Each event fills 4 slots: kind, flags (remap: len), address, arg (thread id / to / end / fd).
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      type_error(env, "out must be a Float64Array (4 slots per event)");
    }
    Napi::Float64Array out = info[0].As<Napi::Float64Array>();
    int max = static_cast<int>(out.ElementLength() / 4);
    if (max < 1) range_error(env, "out must hold at least one event (4 slots)");
    double t = info.Length() > 1 && !info[1].IsUndefined() ? number_arg(info, 1, "timeoutMs") : -1;
    if (t < -1 || t > 2147483647) range_error(env, "timeoutMs must be -1 (forever) or 0..2^31-1");
    tmem::Uffd* u = uffd(env);
    tmem::UffdEvent ev[64];
    if (max > 64) max = 64;
    int n = 0;
    SYSCALL_GUARD({ n = u->read_events(ev, max, static_cast<int>(t)); })
    double* o = out.Data();
    for (int i = 0; i < n; i++) {
      o[4 * i] = ev[i].kind;
      o[4 * i + 1] =
          ev[i].kind == UFFD_EVENT_REMAP ? static_cast<double>(ev[i].arg2) : static_cast<double>(ev[i].flags);
      o[4 * i + 2] = static_cast<double>(ev[i].address);
      o[4 * i + 3] = static_cast<double>(ev[i].arg1);
    }
    return Napi::Number::New(env, n);
  }

  Napi::Value WakeReader(const Napi::CallbackInfo& info) {
    uffd(info.Env())->wake_reader();
    return info.Env().Undefined();
  }

  // copy(dst, src, srcOffset, flags: 1 dontwake | 2 write-protect) -> bytes | -EAGAIN | -ESRCH
  // Copies one page (or as many pages as src holds from srcOffset, rounded down).
  Napi::Value Copy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t dst = addr_arg(info, 0, "dst");
    Bytes src = bytes_arg(info, 1, "src");
    double off = info.Length() > 2 && !info[2].IsUndefined() ? number_arg(info, 2, "srcOffset") : 0;
    if (off < 0 || static_cast<size_t>(off) >= src.len) range_error(env, "srcOffset must be inside src");
    uint32_t flags = flags_arg(info, 3, "flags");
    double lenv =
        info.Length() > 4 && !info[4].IsUndefined() ? static_cast<double>(len_arg(info, 4, "length")) : kPageSize;
    uint64_t len = static_cast<uint64_t>(lenv);
    if (static_cast<size_t>(off) + len > src.len) range_error(env, "src must hold length bytes from srcOffset");
    tmem::Uffd* u = target(env, dst, len, "dst");
    int64_t r = 0;
    SYSCALL_GUARD({ r = u->copy(dst, src.data + static_cast<size_t>(off), len, flags & 2, flags & 1); })
    return Napi::Number::New(env, static_cast<double>(r));
  }

  // copyObject(dst, src, srcOffset, srcLength, flags: 1 dontwake | 2 write-protect)
  // The fault path for a stored page in one call: decode the object (the format
  // of lib/compress.ts: 4096 bytes = a raw page; else byte 0 is the codec, 1 LZ4
  // block, 2 zstd frame) into this thread's staging page and UFFDIO_COPY it.
  Napi::Value CopyObject(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t dst = addr_arg(info, 0, "dst");
    Bytes src = bytes_arg(info, 1, "src");
    double off = number_arg(info, 2, "srcOffset");
    double len = number_arg(info, 3, "srcLength");
    if (off < 0 || len < 2 || len > kPageSize + 1 || off + len > static_cast<double>(src.len)) {
      range_error(env, "srcOffset/srcLength must lie inside src (an object of 2..4097 bytes)");
    }
    uint32_t flags = flags_arg(info, 4, "flags");
    tmem::Uffd* u = target(env, dst, kPageSize, "dst");
    const uint8_t* obj = src.data + static_cast<size_t>(off);
    const size_t n = static_cast<size_t>(len);
    alignas(4096) static thread_local char stage[kPageSize];
    std::string err;
    const void* page = tmem::decode_page(obj, n, stage, &err);
    if (!page) throw Napi::Error::New(env, "tmem: " + err);
    int64_t r = 0;
    SYSCALL_GUARD({ r = u->copy(dst, page, kPageSize, flags & 2, flags & 1); })
    return Napi::Number::New(env, static_cast<double>(r));
  }

  // zeropage(dst, len, flags: 1 dontwake)
  Napi::Value Zeropage(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t dst = addr_arg(info, 0, "dst");
    uint64_t len = len_arg(info, 1, "length");
    uint32_t flags = flags_arg(info, 2, "flags");
    tmem::Uffd* u = target(env, dst, len, "dst");
    int64_t r = 0;
    SYSCALL_GUARD({ r = u->zeropage(dst, len, flags & 1); })
    return Napi::Number::New(env, static_cast<double>(r));
  }

  // move(dst, src, len, flags: 1 dontwake | 2 allow src holes) -> bytes | -errno
  Napi::Value Move(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t dst = addr_arg(info, 0, "dst");
    uint64_t src = addr_arg(info, 1, "src");
    uint64_t len = len_arg(info, 2, "length");
    uint32_t flags = flags_arg(info, 3, "flags");
    tmem::Uffd* u = uffd(env);
    if (!(u->features() & UFFD_FEATURE_MOVE)) {
      throw sys_error(env, tmem::SysError("ioctl(UFFDIO_MOVE)", ENOTSUP, "the kernel has no UFFD_FEATURE_MOVE"));
    }
    u = target(env, dst, len, "dst");  // the kernel wants the destination registered with the uffd it is called on
    target(env, src, len, "src");
    int64_t r = 0;
    SYSCALL_GUARD({ r = u->move(dst, src, len, flags & 2, flags & 1); })
    return Napi::Number::New(env, static_cast<double>(r));
  }

  // unshare(addr, len) -> bytes made exclusive, or -errno (see tmem::unshare_pages)
  Napi::Value Unshare(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t addr = addr_arg(info, 0, "address");
    uint64_t len = len_arg(info, 1, "length");
    target(env, addr, len, "address");
    return Napi::Number::New(env, static_cast<double>(tmem::unshare_pages(addr, len)));
  }

  Napi::Value Wake(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t addr = addr_arg(info, 0, "address");
    uint64_t len = len_arg(info, 1, "length");
    tmem::Uffd* u = target(env, addr, len, "address");
    SYSCALL_GUARD({ u->wake(addr, len); })
    return env.Undefined();
  }

  // writeProtect(addr, len, protect, flags: 1 dontwake)
  Napi::Value WriteProtect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t addr = addr_arg(info, 0, "address");
    uint64_t len = len_arg(info, 1, "length");
    if (info.Length() < 3 || !info[2].IsBoolean()) type_error(env, "protect must be a boolean");
    bool protect = info[2].As<Napi::Boolean>();
    uint32_t flags = flags_arg(info, 3, "flags");
    tmem::Uffd* u = target(env, addr, len, "address");
    SYSCALL_GUARD({ u->write_protect(addr, len, protect, flags & 1); })
    return env.Undefined();
  }

  Napi::Value Poison(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t addr = addr_arg(info, 0, "address");
    uint64_t len = len_arg(info, 1, "length");
    tmem::Uffd* u = target(env, addr, len, "address");
    return Napi::Number::New(env, static_cast<double>(u->poison(addr, len, false)));
  }

  // armDeadman(why): called by the dispatcher in its own thread. If this
  // environment is torn down (the Worker exits or crashes) before
  // disarmDeadman(), the deadman takes over the uffd.
  Napi::Value ArmDeadman(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    tmem::Uffd* u = uffd(env);
    std::string why = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value()
                                                              : std::string("its thread exited");
    std::shared_ptr<tmem::Deadman> dm;
    {
      std::lock_guard<std::mutex> lock(g_mu);
      auto it = g_deadmen.find(u->fd());
      if (it == g_deadmen.end()) throw Napi::Error::New(env, "userfaultfd is closed");
      dm = it->second;
    }
    if (armed_) return env.Undefined();
    auto* hook = new ArmedHook{std::weak_ptr<tmem::Deadman>(dm), why, &armed_};
    armed_ = true;
    hook_ = hook;
    napi_add_env_cleanup_hook(env, &ArmedHook::Fire, hook);
    return env.Undefined();
  }

  Napi::Value DisarmDeadman(const Napi::CallbackInfo& info) {
    if (armed_ && hook_) {
      napi_remove_env_cleanup_hook(info.Env(), &ArmedHook::Fire, hook_);
      delete hook_;
      hook_ = nullptr;
      armed_ = false;
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (armed_ && hook_) DisarmDeadman(info);
    shutdown();
    return info.Env().Undefined();
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), uffd_ ? uffd_->fd() : -1); }
  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !uffd_); }

  void shutdown() {
    if (!uffd_) return;
    if (uffd_->owned()) {
      {
        std::lock_guard<std::mutex> lock(g_mu);
        g_deadmen.erase(uffd_->fd());
      }
      if (deadman_) deadman_->stop();
      deadman_.reset();
      std::lock_guard<std::mutex> lock(g_mu);
      g_inline.erase(uffd_->fd());  // closed with the last Region holding it (and attached wrappers)
    }
    sibling_.reset();
    uffd_.reset();
  }

  struct ArmedHook {
    std::weak_ptr<tmem::Deadman> deadman;
    std::string why;
    bool* armed;
    static void Fire(void* arg) {
      auto* h = static_cast<ArmedHook*>(arg);
      if (auto dm = h->deadman.lock()) dm->start(h->why);
      delete h;
    }
  };

  std::unique_ptr<tmem::Uffd> uffd_;
  std::shared_ptr<tmem::Uffd> sibling_;
  std::shared_ptr<tmem::Deadman> deadman_;
  bool armed_ = false;
  ArmedHook* hook_ = nullptr;
};

// ---- Region -------------------------------------------------------------------

class RegionWrap : public Napi::ObjectWrap<RegionWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Region",
                       {
                           InstanceAccessor<&RegionWrap::Address>("address"),
                           InstanceAccessor<&RegionWrap::Size>("size"),
                           InstanceAccessor<&RegionWrap::Buffer>("buffer"),
                           InstanceAccessor<&RegionWrap::Closed>("closed"),
                           InstanceAccessor<&RegionWrap::Ioctls>("ioctls"),
                           InstanceAccessor<&RegionWrap::ForwardAddress>("forwardAddress"),
                           InstanceMethod<&RegionWrap::Close>("close"),
                       });
  }

  // new Region(uffd, size, registerMode, inline)  registerMode: UFFDIO_REGISTER_MODE_* (default MISSING)
  // inline: registered with the uffd's SIGBUS sibling, faults forwarded through a forward
  // area of 2 * size bytes registered MISSING with `uffd` (inline_fault.h).
  RegionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RegionWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) type_error(env, "uffd must be a Uffd");
    Napi::Object uo = info[0].As<Napi::Object>();
    UffdWrap* uw = nullptr;
    napi_status st = napi_unwrap(env, uo, reinterpret_cast<void**>(&uw));
    if (st != napi_ok || !uw) type_error(env, "uffd must be a Uffd");
    tmem::Uffd* u = uw->uffd(env);
    uint64_t len = len_arg(info, 1, "size");
    if (len > (uint64_t{1} << 46)) range_error(env, "size must be at most 64 TiB");
    uint32_t mode =
        info.Length() > 2 && !info[2].IsUndefined() ? flags_arg(info, 2, "mode") : UFFDIO_REGISTER_MODE_MISSING;
    if (mode == 0 || (mode & ~(UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP))) {
      range_error(env, "mode must be MISSING (1), WP (2) or both (3)");
    }
    if ((mode & UFFDIO_REGISTER_MODE_WP) && !(u->features() & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
      throw sys_error(env, tmem::SysError("ioctl(UFFDIO_REGISTER)", ENOTSUP, "the kernel has no write-protect faults"));
    }
    bool inl = false;
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      if (!info[3].IsBoolean()) type_error(env, "inline must be a boolean");
      inl = info[3].As<Napi::Boolean>();
    }
    if (inl && len > (uint64_t{1} << 44)) range_error(env, "an inline region must be at most 16 TiB");
    std::shared_ptr<tmem::Uffd> sib;
    if (inl) {
      SYSCALL_GUARD({
        sib = uw->sibling(env, true);
        tmem::inline_fault::install();
      })
    }
    tmem::Uffd* reg_uffd = inl ? sib.get() : u;
    uint64_t addr = 0, fwd = 0;
    SYSCALL_GUARD({ addr = tmem::map_anonymous(len); })
    try {
      range_ioctls_ = reg_uffd->register_range(addr, len, mode);
      if (inl) {
        fwd = tmem::map_anonymous(2 * len);
        u->register_range(fwd, 2 * len, UFFDIO_REGISTER_MODE_MISSING);
      }
    } catch (const tmem::SysError& e) {
      try {
        tmem::unmap(addr, len);  // nothing is left half-registered (unmapping unregisters)
        if (fwd) tmem::unmap(fwd, 2 * len);
      } catch (...) {
      }
      throw sys_error(env, e);
    }
    mapping_ = std::make_shared<Mapping>();
    mapping_->addr = addr;
    mapping_->len = len;
    mapping_->uffd_fd = reg_uffd->fd();
    if (inl) {
      auto f = std::make_shared<Mapping>();
      f->addr = fwd;
      f->len = 2 * len;
      f->uffd_fd = u->fd();
      mapping_->forward = f;
      sibling_ = sib;
    }
    uffd_ref_ = Napi::Persistent(uo);
    std::lock_guard<std::mutex> lock(g_mu);
    if (inl) {
      try {
        mapping_->inline_entry = tmem::inline_fault::add(addr, len, fwd);
      } catch (const tmem::SysError& e) {
        mapping_.reset();  // unmaps both
        throw sys_error(env, e);
      }
      g_regions[fwd] = mapping_->forward;
    }
    g_regions[addr] = mapping_;
    g_regions_gen.fetch_add(1, std::memory_order_acq_rel);
  }

  ~RegionWrap() override {
    // Not closed by the program: keep the memory registered semantics simple by
    // unregistering from the registry; the mapping is unmapped with its last
    // ArrayBuffer.
    if (mapping_) {
      std::lock_guard<std::mutex> lock(g_mu);
      g_regions.erase(mapping_->addr);
      if (mapping_->forward) g_regions.erase(mapping_->forward->addr);
      g_regions_gen.fetch_add(1, std::memory_order_acq_rel);
    }
  }

 private:
  Napi::Value Address(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), mapping_ ? static_cast<double>(mapping_->addr) : 0);
  }
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), mapping_ ? static_cast<double>(mapping_->len) : 0);
  }
  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !open()); }
  // The range ioctls UFFDIO_REGISTER reported for this region ('COPY', 'MOVE', ...).
  Napi::Value Ioctls(const Napi::CallbackInfo& info) { return ioctl_names(info.Env(), range_ioctls_); }
  // Inline regions: the forward area's address (inline_fault.h); 0 for the others.
  Napi::Value ForwardAddress(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(),
                             mapping_ && mapping_->forward ? static_cast<double>(mapping_->forward->addr) : 0);
  }
  bool open() const { return mapping_ && mapping_->open.load(); }

  // The same ArrayBuffer while it lives; a new one over the same memory if it
  // was collected. Each holds a reference to the mapping.
  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!open()) throw Napi::Error::New(env, "region is closed");
    if (!buffer_ref_.IsEmpty()) {
      Napi::Value v = buffer_ref_.Value();
      if (!v.IsEmpty() && !v.IsUndefined()) return v;
    }
    Napi::ArrayBuffer ab = region_buffer(env, mapping_);
    buffer_ref_ = Napi::Weak(ab);
    handed_out_.push_back(Napi::Weak(ab));
    return ab;
  }

  // close(): unregister, give the memory back, detach every ArrayBuffer handed out.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!open()) return env.Undefined();
    mapping_->open = false;
    const std::shared_ptr<Mapping>& fwd = mapping_->forward;
    if (fwd) fwd->open = false;
    {
      std::lock_guard<std::mutex> lock(g_mu);
      g_regions.erase(mapping_->addr);
      if (fwd) g_regions.erase(fwd->addr);
      g_regions_gen.fetch_add(1, std::memory_order_acq_rel);
    }
    UffdWrap* uw = nullptr;
    if (!uffd_ref_.IsEmpty() && napi_unwrap(env, uffd_ref_.Value(), reinterpret_cast<void**>(&uw)) == napi_ok && uw) {
      try {
        tmem::Uffd* u = fwd ? sibling_.get() : uw->uffd(env);
        u->unregister_range(mapping_->addr, mapping_->len);
        u->wake(mapping_->addr, mapping_->len);  // nobody may stay asleep on a region that is gone
      } catch (...) {
        // the uffd was closed first: the kernel already unregistered the range
      }
      if (fwd) {
        // A SIGBUS taken before the unregister finds the region closed and retries the
        // access; a thread waiting on the forward area is woken and retries it too.
        tmem::inline_fault::close(mapping_->inline_entry);
        try {
          tmem::Uffd* u = uw->uffd(env);
          u->unregister_range(fwd->addr, fwd->len);
          u->wake(fwd->addr, fwd->len);
        } catch (...) {
        }
      }
    }
    ::madvise(reinterpret_cast<void*>(mapping_->addr), mapping_->len, MADV_DONTNEED);
    for (auto& ref : handed_out_) {
      if (ref.IsEmpty()) continue;
      Napi::Value v = ref.Value();
      if (!v.IsEmpty() && v.IsArrayBuffer()) {
        Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
        if (!ab.IsDetached()) ab.Detach();
      }
    }
    handed_out_.clear();
    buffer_ref_.Reset();
    uffd_ref_.Reset();
    mapping_.reset();  // unmapped now, or when the last ArrayBuffer is collected
    return env.Undefined();
  }

  std::shared_ptr<Mapping> mapping_;
  std::shared_ptr<tmem::Uffd> sibling_;  // inline regions: the SIGBUS uffd they are registered with
  uint64_t range_ioctls_ = 0;            // what UFFDIO_REGISTER says the range supports
  Napi::ObjectReference uffd_ref_;
  Napi::Reference<Napi::ArrayBuffer> buffer_ref_;
  std::vector<Napi::Reference<Napi::ArrayBuffer>> handed_out_;
};

// ---- free functions -------------------------------------------------------------

// attachBuffer(address): an ArrayBuffer, in the calling thread's environment,
// over the open region that starts at `address` (for Workers that use a region
// created by the main thread). The memory stays mapped while it is reachable;
// it cannot be detached by the region's close(): after close it reads as zeros.
Napi::Value AttachBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t addr = addr_arg(info, 0, "address");
  auto m = find_region(addr);
  if (!m || !m->open.load() || m->addr != addr) range_error(env, "address must be the start of an open tmem region");
  return region_buffer(env, m);
}

// inlineForwarded(): faults of inline regions forwarded to a dispatcher so far, in this process.
Napi::Value InlineForwarded(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tmem::inline_fault::forwarded()));
}

// inlineServed(): faults of inline regions served in their SIGBUS handler (no dispatcher), in this process.
Napi::Value InlineServed(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tmem::inline_fault::served()));
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tmem::UffdProbe p;
  SYSCALL_GUARD({ p = tmem::Uffd::probe(); })
  Napi::Object o = Napi::Object::New(env);
  o.Set("features", static_cast<double>(p.features));
  o.Set("ioctls", static_cast<double>(p.ioctls & 0xffffffffu));  // _UFFDIO_API (bit 63) omitted
  o.Set("ioctlNames", ioctl_names(env, p.ioctls));
  o.Set("devUserfaultfd", p.dev_userfaultfd);
  o.Set("fullMode", p.full_mode);
  Napi::Array names = Napi::Array::New(env);
  uint32_t k = 0;
  for (int bit = 0; bit < 64; bit++)
    if (p.features & (uint64_t{1} << bit)) names.Set(k++, tmem::feature_name(bit));
  o.Set("featureNames", names);
  return o;
}

// madvise(ranges: Float64Array [addr, len, addr, len, ...], count, advice)
// Every range must lie inside an open region.
Napi::Value Madvise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    type_error(env, "ranges must be a Float64Array of (address, length) pairs");
  }
  Napi::Float64Array r = info[0].As<Napi::Float64Array>();
  double count = number_arg(info, 1, "count");
  if (count < 0 || count * 2 > r.ElementLength()) range_error(env, "count must be between 0 and ranges.length / 2");
  double advice = number_arg(info, 2, "advice");
  if (advice != MADV_DONTNEED && advice != MADV_COLD && advice != MADV_PAGEOUT && advice != MADV_WILLNEED) {
    range_error(env, "advice must be MADV_DONTNEED (4), MADV_WILLNEED (3), MADV_COLD (20) or MADV_PAGEOUT (21)");
  }
  size_t n = static_cast<size_t>(count);
  std::vector<uint64_t> ranges(2 * n);
  for (size_t i = 0; i < n; i++) {
    double a = r[2 * i], l = r[2 * i + 1];
    if (a <= 0 || l <= 0 || a != std::floor(a) || l != std::floor(l) || static_cast<uint64_t>(a) % kPageSize ||
        static_cast<uint64_t>(l) % kPageSize) {
      range_error(env,
                  "ranges[" + std::to_string(i) + "] must be a page-aligned address and a positive multiple of 4096");
    }
    ranges[2 * i] = static_cast<uint64_t>(a);
    ranges[2 * i + 1] = static_cast<uint64_t>(l);
    auto m = find_region(ranges[2 * i]);
    if (!m || !m->open.load() || ranges[2 * i] + ranges[2 * i + 1] > m->addr + m->len) {
      range_error(env, "ranges[" + std::to_string(i) + "] is not inside an open tmem region");
    }
  }
  SYSCALL_GUARD({ tmem::madvise_ranges(ranges.data(), n, static_cast<int>(advice)); })
  return env.Undefined();
}

// mapped(address, length) -> pages of [address, address + length) that are mapped now
// (mincore(2): a present page table entry), inside an open region. Eviction asks it of a
// staging slot when UFFDIO_MOVE answers an error, to know whether the page went anyway.
Napi::Value Mapped(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a = number_arg(info, 0, "address");
  double l = number_arg(info, 1, "length");
  if (a <= 0 || l <= 0 || a != std::floor(a) || l != std::floor(l) || static_cast<uint64_t>(a) % kPageSize ||
      static_cast<uint64_t>(l) % kPageSize || l > 64 * kPageSize) {
    range_error(env, "address must be page-aligned and length a multiple of 4096 up to 64 pages");
  }
  uint64_t addr = static_cast<uint64_t>(a), len = static_cast<uint64_t>(l);
  auto m = find_region(addr);
  if (!m || !m->open.load() || addr + len > m->addr + m->len)
    range_error(env, "address/length is not inside an open tmem region");
  unsigned char vec[64];
  if (::mincore(reinterpret_cast<void*>(addr), static_cast<size_t>(len), vec) < 0)
    throw sys_error(env, tmem::SysError("mincore", errno));
  uint32_t n = 0;
  for (uint64_t i = 0; i < len / kPageSize; i++) n += vec[i] & 1;
  return Napi::Number::New(env, n);
}

// discardBuffer(buffer, offset, length) -> bytes: madvise(MADV_DONTNEED) over
// the whole pages inside [offset, offset + length) of a (Shared)ArrayBuffer:
// gives the arena's free frames back to the OS; they read as zeros afterwards.
Napi::Value DiscardBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = bytes_arg(info, 0, "buffer");
  double off = number_arg(info, 1, "offset");
  double len = number_arg(info, 2, "length");
  if (off < 0 || len <= 0 || off + len > static_cast<double>(b.len))
    range_error(env, "offset/length must lie inside buffer");
  // Only whole pages inside the range (a buffer's data need not be page aligned).
  uint64_t first = reinterpret_cast<uint64_t>(b.data) + static_cast<uint64_t>(off);
  uint64_t start = (first + kPageSize - 1) & ~(kPageSize - 1);
  uint64_t end = (first + static_cast<uint64_t>(len)) & ~(kPageSize - 1);
  if (end <= start) return Napi::Number::New(env, 0);
  if (::madvise(reinterpret_cast<void*>(start), static_cast<size_t>(end - start), MADV_DONTNEED) < 0) {
    throw sys_error(env, tmem::SysError("madvise", errno, "discarding " + std::to_string(end - start) + " bytes"));
  }
  return Napi::Number::New(env, static_cast<double>(end - start));
}

Napi::Value SetAffinity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) type_error(env, "cpus must be an array of CPU numbers");
  Napi::Array a = info[0].As<Napi::Array>();
  if (a.Length() == 0) range_error(env, "cpus must name at least one CPU");
  std::vector<int> cpus;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) type_error(env, "cpus[" + std::to_string(i) + "] must be a number");
    double c = v.As<Napi::Number>().DoubleValue();
    if (c < 0 || c >= CPU_SETSIZE || c != std::floor(c))
      range_error(env, "cpus[" + std::to_string(i) + "] must be a CPU number 0..1023");
    cpus.push_back(static_cast<int>(c));
  }
  SYSCALL_GUARD({ tmem::set_affinity(cpus); })
  return env.Undefined();
}

Napi::Value GetAffinity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int> cpus;
  SYSCALL_GUARD({ cpus = tmem::get_affinity(); })
  Napi::Array a = Napi::Array::New(env, cpus.size());
  for (size_t i = 0; i < cpus.size(); i++) a.Set(static_cast<uint32_t>(i), cpus[i]);
  return a;
}

Napi::Value CurrentCpu(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tmem::current_cpu()); }
Napi::Value Gettid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tmem::current_tid()));
}
Napi::Value ThreadCpu(const Napi::CallbackInfo& info) {
  double tid = number_arg(info, 0, "tid");
  if (tid <= 0) range_error(info.Env(), "tid must be a positive thread id");
  return Napi::Number::New(info.Env(), tmem::thread_cpu(static_cast<int64_t>(tid)));
}

/** The arguments of lz4Compress/lz4Decompress/zstd*: (src, srcOffset, srcLength, dst, dstOffset), checked. */
struct BlockArgs {
  const char* src;
  int src_len;
  char* dst;
  int dst_capacity;
};
BlockArgs block_args(const Napi::CallbackInfo& info, bool lib_available, const char* lib) {
  Napi::Env env = info.Env();
  if (!lib_available) throw Napi::Error::New(env, std::string(lib) + " is not available");
  Bytes src = bytes_arg(info, 0, "src");
  double so = number_arg(info, 1, "srcOffset");
  double sl = number_arg(info, 2, "srcLength");
  Bytes dst = bytes_arg(info, 3, "dst");
  double d_off = number_arg(info, 4, "dstOffset");
  if (so < 0 || sl <= 0 || so + sl > static_cast<double>(src.len))
    range_error(env, "srcOffset/srcLength must lie inside src");
  if (d_off < 0 || d_off > static_cast<double>(dst.len)) range_error(env, "dstOffset must lie inside dst");
  return BlockArgs{reinterpret_cast<const char*>(src.data + static_cast<size_t>(so)), static_cast<int>(sl),
                   reinterpret_cast<char*>(dst.data + static_cast<size_t>(d_off)),
                   static_cast<int>(dst.len - static_cast<size_t>(d_off))};
}

// lz4Decompress(src, srcOffset, srcLength, dst, dstOffset) -> bytes written; throws on bad data.
Napi::Value Lz4Decompress(const Napi::CallbackInfo& info) {
  BlockArgs a = block_args(info, tmem::lz4::available(), "liblz4.so.1");
  int n = tmem::lz4::decompress(a.src, a.dst, a.src_len, a.dst_capacity);
  if (n < 0)
    throw Napi::Error::New(info.Env(),
                           "lz4 block is malformed (LZ4_decompress_safe returned " + std::to_string(n) + ")");
  return Napi::Number::New(info.Env(), n);
}

// lz4Compress(src, srcOffset, srcLength, dst, dstOffset) -> bytes written, 0 if dst is too small.
Napi::Value Lz4Compress(const Napi::CallbackInfo& info) {
  BlockArgs a = block_args(info, tmem::lz4::available(), "liblz4.so.1");
  return Napi::Number::New(info.Env(), tmem::lz4::compress(a.src, a.dst, a.src_len, a.dst_capacity));
}

// zstdCompress(src, srcOffset, srcLength, dst, dstOffset, level) -> bytes written, 0 if dst is too small.
Napi::Value ZstdCompress(const Napi::CallbackInfo& info) {
  BlockArgs a = block_args(info, tmem::zstd::compress_available(), "libzstd.so.1 (ZSTD_compressCCtx)");
  double level = number_arg(info, 5, "level");
  if (level != static_cast<int>(level) || level < 1 || level > 22)
    range_error(info.Env(), "level must be an integer 1..22");
  long n = tmem::zstd::compress(a.src, static_cast<size_t>(a.src_len), a.dst, static_cast<size_t>(a.dst_capacity),
                                static_cast<int>(level));
  if (n < 0) throw Napi::Error::New(info.Env(), "zstd: could not create a compression context");
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// zstdDecompress(src, srcOffset, srcLength, dst, dstOffset) -> bytes written; throws on bad data.
Napi::Value ZstdDecompress(const Napi::CallbackInfo& info) {
  BlockArgs a = block_args(info, tmem::zstd::available(), "libzstd.so.1");
  long n = tmem::zstd::decompress(a.src, static_cast<size_t>(a.src_len), a.dst, static_cast<size_t>(a.dst_capacity));
  if (n < 0) throw Napi::Error::New(info.Env(), "zstd frame is malformed or does not fit dst");
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// ---- FileIo -------------------------------------------------------------------

/** Mapped-file I/O off the fault thread (native/file_io.h); completions ring the uffd's doorbell. */
class FileIoWrap : public Napi::ObjectWrap<FileIoWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "FileIo",
                       {
                           InstanceMethod<&FileIoWrap::OpenFile>("openFile"),
                           InstanceMethod<&FileIoWrap::CloseFile>("closeFile"),
                           InstanceMethod<&FileIoWrap::Write>("write"),
                           InstanceMethod<&FileIoWrap::Sync>("sync"),
                           InstanceMethod<&FileIoWrap::Read>("read"),
                           InstanceMethod<&FileIoWrap::TryRead>("tryRead"),
                           InstanceMethod<&FileIoWrap::Take>("take"),
                           InstanceMethod<&FileIoWrap::Generation>("generation"),
                           InstanceMethod<&FileIoWrap::IdentityKey>("identityKey"),
                           InstanceMethod<&FileIoWrap::Close>("close"),
                           InstanceAccessor<&FileIoWrap::Pending>("pending"),
                       });
  }

  // new FileIo(uffd): completions wake uffd's reader (its doorbell).
  FileIoWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FileIoWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) type_error(env, "uffd must be a Uffd");
    UffdWrap* uw = nullptr;
    napi_status st = napi_unwrap(env, info[0], reinterpret_cast<void**>(&uw));
    if (st != napi_ok || !uw) type_error(env, "uffd must be a Uffd");
    io_ = std::make_unique<tmem::FileIo>(uw->uffd(env)->waker());
  }

 private:
  tmem::FileIo* io(Napi::Env env) {
    if (!io_) throw Napi::Error::New(env, "FileIo is closed");
    return io_.get();
  }
  int handle_arg(const Napi::CallbackInfo& info) {
    double h = number_arg(info, 0, "handle");
    if (h < 1 || h > 2147483647.0) range_error(info.Env(), "handle must be a handle from openFile()");
    return static_cast<int>(h);
  }
  size_t page_len_arg(const Napi::CallbackInfo& info, size_t i) {
    double n = number_arg(info, i, "length");
    if (n < 0 || n > static_cast<double>(kPageSize)) range_error(info.Env(), "length must be 0..4096");
    return static_cast<size_t>(n);
  }
  int64_t position_arg(const Napi::CallbackInfo& info, size_t i) {
    double p = number_arg(info, i, "position");
    if (p < 0 || p > 9007199254740991.0) range_error(info.Env(), "position must be a file offset >= 0");
    return static_cast<int64_t>(p);
  }
  /** A byte range [offset, offset + len) of a buffer argument, checked. */
  uint8_t* range_arg(const Napi::CallbackInfo& info, size_t i, const char* name, size_t len) {
    Bytes b = bytes_arg(info, i, name);
    double off = number_arg(info, i + 1, "offset");
    if (off < 0 || off + static_cast<double>(len) > static_cast<double>(b.len)) {
      range_error(info.Env(), std::string(name) + ": offset + length must lie inside it");
    }
    return b.data + static_cast<size_t>(off);
  }

  // openFile(fd) -> handle (the fd is dup()ed)
  Napi::Value OpenFile(const Napi::CallbackInfo& info) {
    double fd = number_arg(info, 0, "fd");
    if (fd < 0 || fd > 2147483647.0) range_error(info.Env(), "fd must be a file descriptor");
    int h = 0;
    SYSCALL_GUARD({ h = io(info.Env())->open_file(static_cast<int>(fd)); })
    return Napi::Number::New(info.Env(), h);
  }
  Napi::Value CloseFile(const Napi::CallbackInfo& info) {
    io(info.Env())->close_file(handle_arg(info));
    return info.Env().Undefined();
  }
  // write(handle, src, srcOffset, length, position) -> job id
  Napi::Value Write(const Napi::CallbackInfo& info) {
    int h = handle_arg(info);
    size_t len = page_len_arg(info, 3);
    uint8_t* src = range_arg(info, 1, "src", len);
    int64_t pos = position_arg(info, 4);
    uint64_t id = 0;
    SYSCALL_GUARD({ id = io(info.Env())->write(h, src, len, pos); })
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  }
  // sync(handle) -> job id
  Napi::Value Sync(const Napi::CallbackInfo& info) {
    int h = handle_arg(info);
    uint64_t id = 0;
    SYSCALL_GUARD({ id = io(info.Env())->sync(h); })
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  }
  // read(handle, length, position) -> job id
  Napi::Value Read(const Napi::CallbackInfo& info) {
    int h = handle_arg(info);
    size_t len = page_len_arg(info, 1);
    int64_t pos = position_arg(info, 2);
    uint64_t id = 0;
    SYSCALL_GUARD({ id = io(info.Env())->read(h, len, pos); })
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  }
  // tryRead(handle, dst, dstOffset, length, position) -> bytes, or -errno (-EAGAIN: it would wait)
  Napi::Value TryRead(const Napi::CallbackInfo& info) {
    int h = handle_arg(info);
    size_t len = page_len_arg(info, 3);
    uint8_t* dst = range_arg(info, 1, "dst", len);
    int64_t pos = position_arg(info, 4);
    int64_t n = 0;
    SYSCALL_GUARD({ n = io(info.Env())->try_read(h, dst, len, pos); })
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }
  // take(out: Float64Array(3) [id, op, result], dst, dstOffset) -> false when nothing finished
  Napi::Value Take(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[0].As<Napi::Float64Array>().ElementLength() < 3) {
      type_error(env, "out must be a Float64Array of at least 3 elements");
    }
    Napi::Float64Array out = info[0].As<Napi::Float64Array>();
    uint8_t* dst = range_arg(info, 1, "dst", kPageSize);
    tmem::FileIo::Completion c;
    if (!io(env)->take(&c, dst)) return Napi::Boolean::New(env, false);
    out[0] = static_cast<double>(c.id);
    out[1] = c.op;
    out[2] = static_cast<double>(c.result);
    return Napi::Boolean::New(env, true);
  }
  Napi::Value Generation(const Napi::CallbackInfo& info) {
    int h = handle_arg(info);
    uint32_t g = 0;
    SYSCALL_GUARD({ g = io(info.Env())->generation(h); })
    return Napi::Number::New(info.Env(), g);
  }
  // [lo, hi]: the file's identity now hashed to 64 bits (shared pools' key); [0, 0] if statx failed.
  Napi::Value IdentityKey(const Napi::CallbackInfo& info) {
    int h = handle_arg(info);
    uint64_t k = 0;
    SYSCALL_GUARD({ k = io(info.Env())->identity_key(h); })
    Napi::Array a = Napi::Array::New(info.Env(), 2);
    a.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(k & 0xffffffffu)));
    a.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(k >> 32)));
    return a;
  }
  Napi::Value Pending(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), io_ ? static_cast<double>(io_->pending()) : 0);
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    io_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<tmem::FileIo> io_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function uffd = UffdWrap::Init(env);
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(uffd)));
  exports.Set("Uffd", uffd);
  exports.Set("Region", RegionWrap::Init(env));
  exports.Set("FileIo", FileIoWrap::Init(env));
  exports.Set("StoreReader", tmem_binding::InitStoreReader(env));
  exports.Set("RemoteConn", tmem_binding::InitRemoteConn(env));
  exports.Set("SharedStore", tmem_binding::InitSharedStore(env));
  exports.Set("FaultServer", tmem_binding::InitFaultServer(env));
  exports.Set("probe", Napi::Function::New<Probe>(env, "probe"));
  exports.Set("attachBuffer", Napi::Function::New<AttachBuffer>(env, "attachBuffer"));
  exports.Set("madvise", Napi::Function::New<Madvise>(env, "madvise"));
  exports.Set("mapped", Napi::Function::New<Mapped>(env, "mapped"));
  exports.Set("discardBuffer", Napi::Function::New<DiscardBuffer>(env, "discardBuffer"));
  exports.Set("setAffinity", Napi::Function::New<SetAffinity>(env, "setAffinity"));
  exports.Set("getAffinity", Napi::Function::New<GetAffinity>(env, "getAffinity"));
  exports.Set("currentCpu", Napi::Function::New<CurrentCpu>(env, "currentCpu"));
  exports.Set("gettid", Napi::Function::New<Gettid>(env, "gettid"));
  exports.Set("threadCpu", Napi::Function::New<ThreadCpu>(env, "threadCpu"));
  exports.Set("inlineForwarded", Napi::Function::New<InlineForwarded>(env, "inlineForwarded"));
  exports.Set("inlineServed", Napi::Function::New<InlineServed>(env, "inlineServed"));
  exports.Set("lz4Decompress", Napi::Function::New<Lz4Decompress>(env, "lz4Decompress"));
  exports.Set("lz4Compress", Napi::Function::New<Lz4Compress>(env, "lz4Compress"));
  exports.Set("lz4Available", Napi::Boolean::New(env, tmem::lz4::available()));
  exports.Set("zstdAvailable", Napi::Boolean::New(env, tmem::zstd::available()));
  exports.Set("zstdCompress", Napi::Function::New<ZstdCompress>(env, "zstdCompress"));
  exports.Set("zstdDecompress", Napi::Function::New<ZstdDecompress>(env, "zstdDecompress"));
  exports.Set("zstdCompressAvailable", Napi::Boolean::New(env, tmem::zstd::compress_available()));
  return exports;
}

}  // namespace

NODE_API_MODULE(tmem, Init)
