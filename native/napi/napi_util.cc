#include "napi_util.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include <sys/mman.h>

#ifdef QGS_WITH_CUDA
#include "qgs/cuda_runtime.h"
#endif

namespace qgs::napi {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
// Host buffers from kOwnMapping up get their own mapping when a cache keeps them for reuse (see
// HostMappingCache), from kDedicatedMapping up always; the rest are malloc'd (glibc's heap).
constexpr size_t kOwnMapping = size_t(64) << 10;
constexpr size_t kDedicatedMapping = size_t(32) << 20;

// The mapped length for a buffer of n >= kOwnMapping bytes: below 2 MiB, 4 size classes per power
// of two (at most 25% slack; few distinct lengths, so freed blocks fit later requests); from 2 MiB
// on, whole huge pages.
size_t mapped_length(size_t n) {
  if (n >= kHugePage) return (n + kHugePage - 1) / kHugePage * kHugePage;
  size_t p = kOwnMapping;
  while (p * 2 <= n) p *= 2;
  const size_t step = p / 4;
  return (n + step - 1) / step * step;
}

// A mapping of len (= mapped_length(n)) bytes; from 2 MiB on 2 MiB-aligned with a transparent-huge-
// page hint (touching a fresh 50 MB output 4 KiB page at a time cost more than the kernels writing
// it: ~70% of a training step in the HFG bench, before the cache).
void* map_block(size_t len) {
  if (len < kHugePage) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  uintptr_t base = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (base + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > base) munmap(raw, aligned - base);
  size_t tail = (base + len + kHugePage) - (aligned + len);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + len), tail);
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(aligned), len, MADV_HUGEPAGE);
#endif
  return reinterpret_cast<void*>(aligned);
}
}  // namespace

HostMappingCache::~HostMappingCache() { trim(); }

void* HostMappingCache::take(size_t len) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = free_.find(len);
  if (it == free_.end()) return nullptr;
  void* p = it->second.back().ptr;  // the most recently freed: likeliest still in cache/TLB
  it->second.pop_back();
  if (it->second.empty()) free_.erase(it);
  bytes_ -= len;
  return p;
}

void HostMappingCache::give(void* ptr, size_t len) {
  std::vector<std::pair<void*, size_t>> drop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (len > limit_) {
      drop.emplace_back(ptr, len);
    } else {
      free_[len].push_back({seq_++, ptr});
      bytes_ += len;
      while (bytes_ > limit_) {  // least recently freed first (each class's front is its oldest)
        auto oldest = free_.begin();
        for (auto it = free_.begin(); it != free_.end(); ++it)
          if (it->second.front().seq < oldest->second.front().seq) oldest = it;
        drop.emplace_back(oldest->second.front().ptr, oldest->first);
        oldest->second.erase(oldest->second.begin());
        bytes_ -= oldest->first;
        if (oldest->second.empty()) free_.erase(oldest);
      }
    }
  }
  for (const auto& [p, n] : drop) munmap(p, n);  // outside the lock
}

size_t HostMappingCache::trim() {
  std::map<size_t, std::vector<Entry>> drop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    drop.swap(free_);
    bytes_ = 0;
  }
  size_t n = 0;
  for (const auto& [len, entries] : drop)
    for (const Entry& e : entries) munmap(e.ptr, len), n += len;
  return n;
}

size_t HostMappingCache::cached_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

Buffer::Buffer(size_t n, Device d, std::shared_ptr<HostMappingCache> c) : bytes(n), device(d) {
  if (d == Device::CPU && (n >= kDedicatedMapping || (n >= kOwnMapping && c && c->enabled()))) {
    const size_t len = mapped_length(n);
    if (c) ptr = c->take(len);
    if (!ptr) ptr = map_block(len);
    if (!ptr) throw std::bad_alloc();
    mapped = len;
    cache = std::move(c);
  } else if (d == Device::CPU) {
    // 64-byte aligned by hand inside a plain malloc block (the raw pointer is kept in the 8 bytes
    // just before ptr). glibc's aligned_alloc fragmented the heap here: every freed multi-MB block
    // was a few bytes too small for the next same-size aligned request, so a loop of
    // `ops.exp(x4MB).dispose()` grew RSS by 4 MB per call (2.4 GB after 600 calls) and each op paid
    // fresh page faults (~8 ms per 4 MB). Same-size malloc requests reuse freed blocks exactly.
    size_t padded = ((n + 63) / 64) * 64;
    void* raw = std::malloc(padded + 64);
    if (!raw) throw std::bad_alloc();
    ptr = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(raw) + 64) & ~uintptr_t(63));
    reinterpret_cast<void**>(ptr)[-1] = raw;
  } else {
#ifdef QGS_WITH_CUDA
    ptr = qgs::cuda::malloc_device(n);
#else
    throw KernelError("this build of qgs-engine has no CUDA support (build with QGS_CUDA=ON)");
#endif
  }
}

Buffer::~Buffer() {
  if (mapped != 0) {
    if (cache) {
      cache->give(ptr, mapped);
    } else {
      munmap(ptr, mapped);
    }
  } else if (device == Device::CPU) {
    std::free(reinterpret_cast<void**>(ptr)[-1]);
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::free_device(ptr);
#endif
  }
}

void throw_type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
void throw_error(Napi::Env env, const std::string& msg) { throw Napi::Error::New(env, msg); }

static std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return "number " + std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "string '" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBoolean()) return "boolean";
  if (v.IsTypedArray()) return "typed array";
  if (v.IsArray()) return "array";
  if (v.IsFunction()) return "function";
  return "object";
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw_type_error(info.Env(), std::string(name) + ": expected an integer, got " + describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == static_cast<double>(static_cast<int64_t>(d))) || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + ": expected an integer in [" + std::to_string(lo) + ", " +
                                                std::to_string(hi) + "], got " + describe(v));
  }
  return static_cast<int64_t>(d);
}

double num_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw_type_error(info.Env(), std::string(name) + ": expected a number, got " + describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) throw_type_error(info.Env(), std::string(name) + ": expected a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsString()) throw_type_error(info.Env(), std::string(name) + ": expected a string, got " + describe(v));
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> ints_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  std::vector<int64_t> out;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    auto a = v.As<Napi::Int32Array>();
    out.assign(a.Data(), a.Data() + a.ElementLength());
    return out;
  }
  if (!v.IsArray()) throw_type_error(info.Env(), std::string(name) + ": expected an array of integers or an Int32Array, got " + describe(v));
  auto a = v.As<Napi::Array>();
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value e = a.Get(k);
    if (!e.IsNumber()) throw_type_error(info.Env(), std::string(name) + "[" + std::to_string(k) + "]: expected an integer, got " + describe(e));
    double d = e.As<Napi::Number>().DoubleValue();
    if (d != static_cast<double>(static_cast<int64_t>(d)))
      throw_type_error(info.Env(), std::string(name) + "[" + std::to_string(k) + "]: expected an integer, got " + describe(e));
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

Device common_device(const char* op, std::initializer_list<const View*> views) {
  const View* first = nullptr;
  for (const View* v : views) {
    if (!v || !v->ptr) continue;
    if (!first) {
      first = v;
    } else if (v->device != first->device) {
      throw KernelError(std::string(op) + ": all tensors must be on one device, got " + device_name(first->device) +
                        " and " + device_name(v->device));
    }
  }
  return first ? first->device : Device::CPU;
}

void require_cpu(const Napi::CallbackInfo& info, const char* op, const std::vector<View>& all) {
  for (const View& v : all)
    if (v.ptr != nullptr && v.device != Device::CPU)
      throw_error(info.Env(), std::string(op) + ": CPU tensors only (on a GPU, use the composed ops)");
}

void require_cuda_build(Napi::Env env, const char* op) {
#ifndef QGS_WITH_CUDA
  throw_error(env, std::string(op) + ": tensor is on cuda but this build of qgs-engine has no CUDA kernels");
#else
  (void)env;
  (void)op;
#endif
}

}  // namespace qgs::napi
