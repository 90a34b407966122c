// The node-addon-api face of native/fault_serve.h and native/fault_thread.h:
// `new FaultServer(options)` in the dispatcher Worker binds a fault_serve::Server to
// the swap's uffd, staging ring, store and served-record ring, and (thread: true)
// starts the native fault thread on the uffd.
//
//   new FaultServer({ uffd, staging: { address, slots, table }, store, frontswapPool,
//                     ring, thread, follow })
//   addRegion({ id, base, pages, state, aux })   publish an anonymous region, on the uffd or (inline) its
//                                                SIGBUS sibling (false: table full)
//   removeRegion(id)                             unpublish, waiting for native readers
//   read(out, timeoutMs)                         forwarded events, as Uffd.read (thread only)
//   serve(address, flags)                        fault_serve::serve once from JS (tests): 0 served, 1 forward
//   counters()                                   { served, forwarded, events, moves }
//   faultCpu()                                   the CPU the last faulting thread ran on (-1: none seen)
//   close()                                      stop the thread, unpublish every region
//
// Every SharedArrayBuffer it points into is kept alive by a reference held here;
// an env cleanup hook closes it before the Worker's buffers go (a Worker that dies
// stops its fault thread before the deadman starts: hooks run last-in first-out).
#define NAPI_VERSION 9
#define NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#include <napi.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>

#include "binding_args.h"
#include "fault_serve.h"
#include "fault_thread.h"
#include "store_reader.h"
#include "sys_error.h"
#include "uffd.h"

namespace tmem_binding {
void BindStoreReader(Napi::Env env, Napi::Object h, const std::string& name, tmem::StoreReader* reader);
bool in_open_region(int uffd_fd, uint64_t addr, uint64_t len);
int open_region_uffd(uint64_t addr, uint64_t len);
int inline_sibling_fd(int main_fd);

namespace {

using tmem::fault_serve::RegionEntry;
using tmem::fault_serve::RegionTable;

double num(Napi::Env env, Napi::Object o, const char* key, const std::string& name, double min, double max) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) fail(env, name + "." + key + ": expected a number", "ERR_INVALID_ARG_TYPE", false);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max && std::floor(d) == d)) {
    fail(env,
         name + "." + key + ": expected an integer from " + std::to_string(static_cast<int64_t>(min)) + " to " +
             std::to_string(static_cast<uint64_t>(max)),
         "ERR_OUT_OF_RANGE", true);
  }
  return d;
}

Napi::Object obj(Napi::Env env, Napi::Value v, const std::string& name) {
  if (!v.IsObject()) fail(env, name + ": expected an object", "ERR_INVALID_ARG_TYPE", false);
  return v.As<Napi::Object>();
}

class FaultServerWrap : public Napi::ObjectWrap<FaultServerWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(
        env, "FaultServer",
        {InstanceMethod<&FaultServerWrap::AddRegion>("addRegion"),
         InstanceMethod<&FaultServerWrap::RemoveRegion>("removeRegion"), InstanceMethod<&FaultServerWrap::Read>("read"),
         InstanceMethod<&FaultServerWrap::Serve>("serve"), InstanceMethod<&FaultServerWrap::Counters>("counters"),
         InstanceMethod<&FaultServerWrap::FaultCpu>("faultCpu"), InstanceMethod<&FaultServerWrap::Close>("close")});
  }

  FaultServerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FaultServerWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = obj(env, info.Length() > 0 ? info[0] : env.Undefined(), "options");
    Napi::Object d = obj(env, o.Get("uffd"), "options.uffd");
    const int fd = static_cast<int>(num(env, d, "fd", "options.uffd", 0, 1 << 30));
    const uint64_t features = static_cast<uint64_t>(num(env, d, "features", "options.uffd", 0, 9007199254740991.0));
    const uint64_t ioctls = static_cast<uint64_t>(num(env, d, "ioctls", "options.uffd", 0, 9007199254740991.0));
    const bool umo = d.Get("userModeOnly").ToBoolean();
    Napi::Object st = obj(env, o.Get("staging"), "options.staging");
    server_.staging_uffd = fd;
    server_.staging_address = static_cast<uint64_t>(num(env, st, "address", "options.staging", 1, 9007199254740991.0));
    server_.staging_slots = static_cast<uint32_t>(num(env, st, "slots", "options.staging", 1, 1 << 24));
    auto table = sab_bytes(env, st.Get("table"), "options.staging.table");
    if (table.second < 4 * 4 * size_t(server_.staging_slots))
      fail(env, "options.staging.table: smaller than 4 words per slot", "ERR_INVALID_ARG_VALUE", false);
    if (!in_open_region(fd, server_.staging_address, uint64_t(server_.staging_slots) * tmem::kPageSize))
      fail(env, "options.staging: not an open tmem region on this userfaultfd", "ERR_INVALID_ARG_VALUE", false);
    server_.slot_table = reinterpret_cast<int32_t*>(table.first);
    Napi::Value sv = o.Get("store");
    if (sv.IsObject()) {
      BindStoreReader(env, sv.As<Napi::Object>(), "options.store", &reader_);
      server_.store = &reader_;
      server_.frontswap_pool = static_cast<uint32_t>(num(env, o, "frontswapPool", "options", 0, 1023));
    }
    auto ring = sab_bytes(env, o.Get("ring"), "options.ring");
    if (!server_.ring.bind(reinterpret_cast<int32_t*>(ring.first), ring.second / 4))
      fail(env, "options.ring: not a served-record ring (bad magic or size)", "ERR_INVALID_ARG_VALUE", false);
    tmem::fault_serve::init();
    keep_ = Napi::Persistent(o);
    fd_ = fd;
    if (!o.Get("thread").ToBoolean()) {
      // No fault thread: the dispatcher reads the uffd, and SIGBUS handlers that serve natively
      // wake it through the uffd's doorbell (async-signal-safe).
      try {
        waker_ = std::make_unique<tmem::Uffd>(fd, features, ioctls, umo);
      } catch (const tmem::SysError& e) {
        fail(env, std::string("options.uffd: ") + e.what(), "ERR_INVALID_ARG_VALUE", false);
      }
      server_.wake = [](void* u) { static_cast<tmem::Uffd*>(u)->wake_reader(); };
      server_.wake_arg = waker_.get();
    } else {
      const int64_t spin_us =
          o.Get("spinUs").IsUndefined() ? 0 : static_cast<int64_t>(num(env, o, "spinUs", "options", 0, 10000));
      try {
        auto reader = std::make_unique<tmem::Uffd>(fd, features, ioctls, umo);
        thread_ = std::make_unique<tmem::FaultThread>(std::move(reader), &server_, o.Get("follow").ToBoolean(),
                                                      spin_us * 1000);
      } catch (const tmem::SysError& e) {
        Napi::Error err = Napi::Error::New(env, e.what());
        err.Set("code", Napi::String::New(env, e.code()));
        err.Set("errno", Napi::Number::New(env, e.err()));
        err.Set("syscall", Napi::String::New(env, e.syscall()));
        throw err;
      } catch (const std::system_error& e) {
        Napi::Error err = Napi::Error::New(env, std::string("tmem: the fault thread could not start: ") + e.what());
        err.Set("code", Napi::String::New(env, "ERR_TMEM_FAULT_THREAD"));
        throw err;
      }
    }
    env_ = env;
    napi_add_env_cleanup_hook(env, &FaultServerWrap::Cleanup, this);
    hooked_ = true;
  }

  ~FaultServerWrap() override {
    if (hooked_) napi_remove_env_cleanup_hook(env_, &FaultServerWrap::Cleanup, this);
    shutdown();
  }

 private:
  static void Cleanup(void* arg) {
    auto* self = static_cast<FaultServerWrap*>(arg);
    self->hooked_ = false;
    self->shutdown();
  }

  void shutdown() {
    if (thread_) thread_->stop();
    RegionTable::remove_all(&server_);
    closed_ = true;
  }

  void check_open(Napi::Env env) {
    if (closed_) fail(env, "FaultServer is closed", "ERR_TMEM_CLOSED", false);
  }

  Napi::Value AddRegion(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_open(env);
    Napi::Object r = obj(env, info.Length() > 0 ? info[0] : env.Undefined(), "region");
    RegionEntry e;
    e.id = static_cast<int32_t>(num(env, r, "id", "region", 0, 2147483647.0));
    e.base = static_cast<uint64_t>(num(env, r, "base", "region", 1, 9007199254740991.0));
    e.pages = static_cast<uint32_t>(num(env, r, "pages", "region", 1, 4294967295.0));
    auto state = sab_bytes(env, r.Get("state"), "region.state");
    auto aux = sab_bytes(env, r.Get("aux"), "region.aux");
    if (state.second < e.pages || aux.second < 4 * size_t(e.pages))
      fail(env, "region.state/aux: smaller than the region's pages", "ERR_INVALID_ARG_VALUE", false);
    // On this uffd, or (an inline region) on its SIGBUS sibling: installs go to the one it is on.
    const int rfd = open_region_uffd(e.base, uint64_t(e.pages) * tmem::kPageSize);
    if (rfd < 0 || (rfd != fd_ && rfd != inline_sibling_fd(fd_)))
      fail(env, "region: not an open tmem region on this userfaultfd", "ERR_INVALID_ARG_VALUE", false);
    e.uffd_fd = rfd;
    e.state = state.first;
    e.aux = reinterpret_cast<uint32_t*>(aux.first);
    e.server = &server_;
    RegionTable::remove(&server_, e.id);  // re-added: the old entry goes first
    regions_.erase(e.id);
    if (!RegionTable::add(e)) return Napi::Boolean::New(env, false);
    regions_[e.id] = Napi::Persistent(r);
    return Napi::Boolean::New(env, true);
  }

  Napi::Value RemoveRegion(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) fail(env, "id: expected a number", "ERR_INVALID_ARG_TYPE", false);
    const int32_t id = info[0].As<Napi::Number>().Int32Value();
    RegionTable::remove(&server_, id);
    regions_.erase(id);  // after remove(): no native reader uses its buffers now
    return env.Undefined();
  }

  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!thread_) fail(env, "FaultServer.read: no fault thread (thread: false)", "ERR_TMEM_CLOSED", false);
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      fail(env, "out: expected a Float64Array (4 slots per event)", "ERR_INVALID_ARG_TYPE", false);
    }
    Napi::Float64Array out = info[0].As<Napi::Float64Array>();
    int max = static_cast<int>(out.ElementLength() / 4);
    if (max < 1) fail(env, "out: must hold at least one event (4 slots)", "ERR_OUT_OF_RANGE", true);
    if (max > 64) max = 64;
    double t = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
    if (!(t >= -1 && t <= 2147483647 && std::floor(t) == t))
      fail(env, "timeoutMs: expected -1 (forever) or 0..2^31-1", "ERR_OUT_OF_RANGE", true);
    tmem::UffdEvent ev[64];
    const int n = thread_->read(ev, max, static_cast<int>(t));
    double* o = out.Data();
    for (int i = 0; i < n; i++) {
      o[4 * i] = ev[i].kind;
      o[4 * i + 1] =
          ev[i].kind == UFFD_EVENT_REMAP ? static_cast<double>(ev[i].arg2) : static_cast<double>(ev[i].flags);
      o[4 * i + 2] = static_cast<double>(ev[i].address);
      o[4 * i + 3] = static_cast<double>(ev[i].arg1);
    }
    if (n == 0 && !thread_->running()) {
      const std::string why = thread_->error();
      Napi::Error err = Napi::Error::New(env, "tmem: the fault thread stopped" + (why.empty() ? "" : ": " + why));
      err.Set("code", Napi::String::New(env, "ERR_TMEM_FAULT_THREAD"));
      throw err;
    }
    return Napi::Number::New(env, n);
  }

  Napi::Value Serve(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_open(env);
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
      fail(env, "serve(address, flags): expected two numbers", "ERR_INVALID_ARG_TYPE", false);
    const uint64_t addr = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
    const uint64_t flags = static_cast<uint64_t>(info[1].As<Napi::Number>().DoubleValue());
    bool wake = false;
    auto r = tmem::fault_serve::serve(addr, flags, nullptr, &wake);
    if (r == tmem::fault_serve::Outcome::kServed && wake && thread_) thread_->wake_consumer();
    return Napi::Number::New(env, static_cast<int>(r));
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object c = Napi::Object::New(env);
    c.Set("served", static_cast<double>(__atomic_load_n(&server_.served, __ATOMIC_RELAXED)));
    c.Set("forwarded", static_cast<double>(__atomic_load_n(&server_.forwarded, __ATOMIC_RELAXED)));
    c.Set("events", static_cast<double>(thread_ ? thread_->counters().events.load() : 0));
    c.Set("moves", static_cast<double>(thread_ ? thread_->counters().moves.load() : 0));
    return c;
  }

  Napi::Value FaultCpu(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), thread_ ? thread_->fault_cpu() : -1);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    shutdown();
    regions_.clear();
    return info.Env().Undefined();
  }

  tmem::fault_serve::Server server_;
  tmem::StoreReader reader_;
  std::unique_ptr<tmem::FaultThread> thread_;
  std::unique_ptr<tmem::Uffd> waker_;  // thread: false: an attached Uffd whose doorbell wakes the dispatcher
  Napi::ObjectReference keep_;
  std::map<int32_t, Napi::ObjectReference> regions_;
  napi_env env_ = nullptr;
  int fd_ = -1;
  bool hooked_ = false;
  bool closed_ = false;
};

}  // namespace

Napi::Function InitFaultServer(Napi::Env env) { return FaultServerWrap::Init(env); }

}  // namespace tmem_binding
