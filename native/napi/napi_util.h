// Helpers for the N-API layer: argument extraction with clear errors naming the argument, expected
// and actual values, and a guard that turns C++ exceptions into JS Errors (never a crash).
#pragma once
#include <napi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "qgs/common.h"

namespace qgs::napi {

enum class Device { CPU = 0, CUDA = 1 };
inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

// Recently freed host mappings, kept for reuse by a later allocation of the same length. Every
// host buffer of 64 KiB or more is its own page mapping whose length is rounded to a size class
// (4 per power of two below 2 MiB, 2 MiB multiples above), so the temporaries of a training step or
// of a ranking request find the blocks the previous one freed. Without it, each such temporary was
// a fresh mapping the kernel zeroed page by page on first touch: clear_page was ~40% of a training
// step's HFG kernels at N = 10^4, and ~70% of a 1 MB concat in the serving head (glibc mmaps those
// sizes afresh and unmaps them on free). One cache per Node environment (owned by the addon's
// instance data, shared with the buffers it served so it outlives them), bounded by `limit` bytes
// (QGS_HOST_CACHE_MB, default 1024; 0 disables). Thread-safe.
class HostMappingCache {
 public:
  explicit HostMappingCache(size_t limit) : limit_(limit) {}
  ~HostMappingCache();
  HostMappingCache(const HostMappingCache&) = delete;
  HostMappingCache& operator=(const HostMappingCache&) = delete;
  /** A cached mapping of exactly `len` bytes, or nullptr. */
  void* take(size_t len);
  /** Keeps the mapping for reuse, or unmaps it (over the limit: the least recently freed go first). */
  void give(void* ptr, size_t len);
  /** Unmaps everything held; returns the bytes released. */
  size_t trim();
  size_t cached_bytes();
  bool enabled() const { return limit_ > 0; }

 private:
  std::mutex mu_;
  struct Entry {
    uint64_t seq;  // when it was freed (eviction order)
    void* ptr;
  };
  std::map<size_t, std::vector<Entry>> free_;  // length → mappings, oldest first
  uint64_t seq_ = 0;
  size_t bytes_ = 0;
  size_t limit_;
};

// Owned allocation: 64-byte aligned host memory or CUDA device memory.
struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  /** Length of the buffer's own page mapping (host buffers >= 64 KiB), 0 for malloc'd ones. */
  size_t mapped = 0;
  /** Where a dedicated mapping returns on destruction (null: unmapped at once). */
  std::shared_ptr<HostMappingCache> cache;
  Buffer(size_t bytes, Device device, std::shared_ptr<HostMappingCache> cache = nullptr);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// A raw view on a Storage argument, valid for the duration of the call.
struct View {
  void* ptr;
  size_t bytes;
  Device device;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
};

// Storage argument i: must be a live Storage holding at least `min_bytes`.
View storage_arg(const Napi::CallbackInfo& info, size_t i, const char* name, size_t min_bytes = 0);
// Same, or nullptr-view when the argument is null/undefined.
View optional_storage_arg(const Napi::CallbackInfo& info, size_t i, const char* name, size_t min_bytes = 0);
// Float32 storage with exactly-at-least n elements.
inline float* f32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t n) {
  return storage_arg(info, i, name, static_cast<size_t>(n) * 4).as<float>();
}
inline int32_t* i32_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t n) {
  return storage_arg(info, i, name, static_cast<size_t>(n) * 4).as<int32_t>();
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo = INT64_MIN, int64_t hi = INT64_MAX);
double num_arg(const Napi::CallbackInfo& info, size_t i, const char* name);
bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* name);
// A JS array of integers or an Int32Array.
std::vector<int64_t> ints_arg(const Napi::CallbackInfo& info, size_t i, const char* name);

// All views must be on the same device; returns it.
Device common_device(const char* op, std::initializer_list<const View*> views);

[[noreturn]] void throw_type_error(Napi::Env env, const std::string& msg);
[[noreturn]] void throw_error(Napi::Env env, const std::string& msg);

// A JS typed array argument of element type T (napi kind K) with at least min_len elements, read and
// written in place (null/undefined → nullptr when optional). For plans' per-call inputs and results:
// small host arrays for which a Storage round trip would cost two copies and two allocations a call.
template <typename T, napi_typedarray_type K>
T* typed_array_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, const char* type, size_t min_len,
                   bool optional) {
  const Napi::Value v = info[i];
  if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != K)
    throw_type_error(info.Env(), std::string(op) + ": " + name + ": expected a " + type + (optional ? " or null" : ""));
  auto a = v.As<Napi::TypedArrayOf<T>>();
  if (a.ElementLength() < min_len)
    throw_error(info.Env(), std::string(op) + ": " + name + ": expected at least " + std::to_string(min_len) + " elements, got " +
                                std::to_string(a.ElementLength()));
  return a.Data();
}

// A prepared native object (a plan: unique_ptr-like Ptr) held by JS as a type-tagged External. The
// release binding resets `plan`, so a later call fails with a clear error instead of touching freed
// memory; the External's finalizer frees whatever is left.
template <class Ptr>
struct PlanHolder {
  Ptr plan;
};

// One family of plans: its type tag (tells our handles from any other External) and the names its
// errors use ("<op>: plan: expected <what> handle", "<op>: the plan was released").
struct PlanKind {
  napi_type_tag tag;
  const char* op;
  const char* what;
};

template <class Ptr>
Napi::Value wrap_plan(Napi::Env env, Ptr plan, const PlanKind& kind) {
  auto* holder = new PlanHolder<Ptr>{std::move(plan)};
  auto ext = Napi::External<PlanHolder<Ptr>>::New(env, holder, [](Napi::Env, PlanHolder<Ptr>* h) { delete h; });
  ext.TypeTag(&kind.tag);
  return ext;
}

template <class Ptr>
PlanHolder<Ptr>& plan_holder_arg(const Napi::CallbackInfo& info, size_t i, const PlanKind& kind) {
  const Napi::Value v = info[i];
  if (!v.IsExternal() || !v.As<Napi::External<PlanHolder<Ptr>>>().CheckTypeTag(&kind.tag))
    throw_error(info.Env(), std::string(kind.op) + ": plan: expected " + kind.what + " handle");
  return *v.As<Napi::External<PlanHolder<Ptr>>>().Data();
}

// The plan of argument i, refused once released.
template <class Ptr>
auto& live_plan_arg(const Napi::CallbackInfo& info, size_t i, const PlanKind& kind) {
  PlanHolder<Ptr>& h = plan_holder_arg<Ptr>(info, i, kind);
  if (!h.plan) throw_error(info.Env(), std::string(kind.op) + ": the plan was released");
  return *h.plan;
}

// Wraps a binding body so KernelError / std::exception become JS Errors.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const qgs::KernelError& e) {
    throw Napi::Error::New(info.Env(), e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), "out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("native error: ") + e.what());
  }
}

// Defines `static Napi::Value name(const Napi::CallbackInfo& info)` whose body runs guarded.
#define QGS_BINDING(name)                                                            \
  static Napi::Value name##_impl(const Napi::CallbackInfo& info);                    \
  static Napi::Value name(const Napi::CallbackInfo& info) {                          \
    return ::qgs::napi::guarded(info, [&]() { return name##_impl(info); });          \
  }                                                                                  \
  static Napi::Value name##_impl(const Napi::CallbackInfo& info)

#define QGS_EXPORT(exports, env, name) (exports).Set(#name, Napi::Function::New((env), (name), #name))

// Throws when a non-null view is not host memory: for the CPU-only fused inference kernels.
void require_cpu(const Napi::CallbackInfo& info, const char* op, const std::vector<View>& all);
// Throws a JS Error when a CUDA storage reaches a binding in a CPU-only build.
void require_cuda_build(Napi::Env env, const char* op);

// One register function per family (native/napi/<family>.cc).
void register_storage(Napi::Env env, Napi::Object exports);
void register_core_elementwise(Napi::Env env, Napi::Object exports);
void register_core_nn(Napi::Env env, Napi::Object exports);
void register_linrec(Napi::Env env, Napi::Object exports);
void register_hfg(Napi::Env env, Napi::Object exports);
void register_pgloss(Napi::Env env, Napi::Object exports);

}  // namespace qgs::napi
