// Storage: the native object that owns a tensor's memory (64-byte aligned host memory or CUDA device
// memory). JS Tensor objects hold one. Memory is released deterministically by dispose(); the
// finalizer is a safety net. A zero-copy host view keeps its bytes alive until the view is collected.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "napi_util.h"
#include "qgs/parallel.h"
#ifdef QGS_WITH_CUDA
#include "qgs/cuda_runtime.h"
#endif

namespace qgs::napi {

namespace {

// Per-addon-instance state (one per Node environment / worker thread), never a C++ global.
struct LiveCounters {
  int64_t count = 0;
  int64_t bytes = 0;
  int64_t host_bytes = 0;  // live CPU bytes
  int64_t reported = 0;    // what V8 has been told (see report_host_memory)
};

// What V8 is told about native host memory: live CPU bytes beyond a 256 MiB allowance, in 8 MiB
// steps. V8 answers growth of reported external memory with full mark-compact collections; a
// training step allocates (and disposes, at scope exit) hundreds of MB of temporaries, so reporting
// every byte made V8 run ~70 full GCs per epoch (~20 ms each, 15-20% of training time) that could
// not free anything. Memory held beyond the allowance (e.g. leaked, never-disposed tensors) is
// still reported, so V8 still collects their finalizers under pressure. Only called from JS (never
// from a finalizer, where V8 must not be re-entered); a finalizer's release is picked up by the
// next call.
constexpr int64_t kUnreportedAllowance = int64_t(256) << 20;
constexpr int64_t kReportStep = int64_t(8) << 20;
void report_host_memory(Napi::Env env, LiveCounters& live) {
  const int64_t target = std::max<int64_t>(0, live.host_bytes - kUnreportedAllowance);
  const int64_t delta = target - live.reported;
  if (delta >= kReportStep || delta <= -kReportStep || (target == 0 && delta != 0)) {
    Napi::MemoryManagement::AdjustExternalMemory(env, delta);
    live.reported = target;
  }
}
struct InstanceData {
  Napi::FunctionReference storage_ctor;
  // Shared with every Storage so a finalizer running during environment teardown never touches
  // freed instance data.
  std::shared_ptr<LiveCounters> live = std::make_shared<LiveCounters>();
  // Large host mappings freed by this environment's storages, for reuse (see HostMappingCache).
  std::shared_ptr<HostMappingCache> host_cache = std::make_shared<HostMappingCache>(host_cache_limit());

  // QGS_HOST_CACHE_MB: the cache bound in MiB (default 1024; 0 disables).
  static size_t host_cache_limit() { return static_cast<size_t>(env_int("QGS_HOST_CACHE_MB", 0, int64_t(1) << 24, 1024)) << 20; }
};

class Storage : public Napi::ObjectWrap<Storage> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Storage",
                       {InstanceMethod("dispose", &Storage::Dispose),
                        InstanceMethod("hostView", &Storage::HostView),
                        InstanceMethod("copyFromHost", &Storage::CopyFromHost),
                        InstanceMethod("copyToHost", &Storage::CopyToHost),
                        InstanceMethod("copyFrom", &Storage::CopyFrom),
                        InstanceMethod("fill", &Storage::Fill),
                        InstanceAccessor("bytes", &Storage::Bytes, nullptr),
                        InstanceAccessor("device", &Storage::DeviceName, nullptr),
                        InstanceAccessor("disposed", &Storage::Disposed, nullptr)});
  }

  // new Storage(bytes, device)
  explicit Storage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Storage>(info) {
    Napi::Env env = info.Env();
    guarded(info, [&]() -> Napi::Value {
      int64_t bytes = int_arg(info, 0, "bytes", 0, int64_t(1) << 46);
      std::string dev = string_arg(info, 1, "device");
      Device d;
      if (dev == "cpu") {
        d = Device::CPU;
      } else if (dev == "cuda") {
        d = Device::CUDA;
      } else {
        throw_type_error(env, "device: expected 'cpu' or 'cuda', got '" + dev + "'");
      }
      auto* data = env.GetInstanceData<InstanceData>();
      buf_ = std::make_shared<Buffer>(static_cast<size_t>(bytes), d, data->host_cache);
      bytes_ = bytes;
      live_ = data->live;
      live_->count++;
      live_->bytes += bytes;
      if (d == Device::CPU) {
        live_->host_bytes += bytes;
        report_host_memory(env, *live_);
      }
      return env.Undefined();
    });
  }

  ~Storage() override { release(Env(), false); }

  Buffer* buffer() const { return buf_.get(); }
  bool disposed() const { return !buf_; }

 private:
  void release(Napi::Env env, bool from_js) {
    if (!buf_) return;
    bool cpu = buf_->device == Device::CPU;
    view_.Reset();
    buf_.reset();
    if (live_) {
      live_->count--;
      live_->bytes -= bytes_;
      if (cpu) live_->host_bytes -= bytes_;
    }
    if (cpu && from_js && live_) report_host_memory(env, *live_);
  }

  Buffer& live(Napi::Env env, const char* what) {
    if (!buf_) throw_error(env, std::string(what) + ": storage has been disposed");
    return *buf_;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    release(info.Env(), true);
    return info.Env().Undefined();
  }

  // A zero-copy ArrayBuffer over host memory. Created once per storage: V8 must not see two
  // external ArrayBuffers over one allocation. The ArrayBuffer holds a share of the buffer so the
  // bytes outlive dispose() for as long as a view is reachable.
  Napi::Value HostView(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Buffer& b = live(env, "hostView");
    if (b.device != Device::CPU) throw_error(env, "hostView: storage is on cuda; copy it to the cpu first");
    if (!view_.IsEmpty()) return view_.Value();
    auto* hold = new std::shared_ptr<Buffer>(buf_);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, b.ptr, b.bytes, [](Napi::Env, void*, std::shared_ptr<Buffer>* h) { delete h; }, hold);
    view_ = Napi::Persistent(ab);
    return ab;
  }

  // copyFromHost(typedArray, byteOffsetInStorage = 0)
  Napi::Value CopyFromHost(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      Buffer& b = live(env, "copyFromHost");
      if (!info[0].IsTypedArray()) throw_type_error(env, "copyFromHost: expected a typed array");
      auto ta = info[0].As<Napi::TypedArray>();
      size_t off = info.Length() > 1 ? static_cast<size_t>(int_arg(info, 1, "offset", 0)) : 0;
      size_t n = ta.ByteLength();
      if (off + n > b.bytes)
        throw_error(env, "copyFromHost: " + std::to_string(n) + " bytes at offset " + std::to_string(off) +
                             " exceed the storage size " + std::to_string(b.bytes));
      const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      if (b.device == Device::CPU) {
        if (n) std::memcpy(static_cast<uint8_t*>(b.ptr) + off, src, n);
      } else {
#ifdef QGS_WITH_CUDA
        qgs::cuda::copy_h2d(static_cast<uint8_t*>(b.ptr) + off, src, n);
#endif
      }
      return env.Undefined();
    });
  }

  // copyToHost(typedArray, byteOffsetInStorage = 0)
  Napi::Value CopyToHost(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      Buffer& b = live(env, "copyToHost");
      if (!info[0].IsTypedArray()) throw_type_error(env, "copyToHost: expected a typed array");
      auto ta = info[0].As<Napi::TypedArray>();
      size_t off = info.Length() > 1 ? static_cast<size_t>(int_arg(info, 1, "offset", 0)) : 0;
      size_t n = ta.ByteLength();
      if (off + n > b.bytes)
        throw_error(env, "copyToHost: " + std::to_string(n) + " bytes at offset " + std::to_string(off) +
                             " exceed the storage size " + std::to_string(b.bytes));
      uint8_t* dst = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      if (b.device == Device::CPU) {
        if (n) std::memcpy(dst, static_cast<const uint8_t*>(b.ptr) + off, n);
      } else {
#ifdef QGS_WITH_CUDA
        qgs::cuda::copy_d2h(dst, static_cast<const uint8_t*>(b.ptr) + off, n);
#endif
      }
      return env.Undefined();
    });
  }

  // copyFrom(otherStorage): whole-buffer copy between any devices (sizes must match).
  Napi::Value CopyFrom(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      Buffer& b = live(env, "copyFrom");
      View src = storage_arg(info, 0, "source");
      if (src.bytes != b.bytes)
        throw_error(env, "copyFrom: source has " + std::to_string(src.bytes) + " bytes, expected " + std::to_string(b.bytes));
      if (b.device == Device::CPU && src.device == Device::CPU) {
        if (b.bytes) std::memcpy(b.ptr, src.ptr, b.bytes);
        return env.Undefined();
      }
#ifdef QGS_WITH_CUDA
      if (b.device == Device::CUDA && src.device == Device::CPU) qgs::cuda::copy_h2d(b.ptr, src.ptr, b.bytes);
      else if (b.device == Device::CPU && src.device == Device::CUDA) qgs::cuda::copy_d2h(b.ptr, src.ptr, b.bytes);
      else qgs::cuda::copy_d2d(b.ptr, src.ptr, b.bytes);
#endif
      return env.Undefined();
    });
  }

  // fill(value, dtype): dtype 'f32' or 'i32'. CUDA fill of non-zero values goes through a host copy.
  Napi::Value Fill(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      Buffer& b = live(env, "fill");
      double v = num_arg(info, 0, "value");
      std::string dt = string_arg(info, 1, "dtype");
      size_t n = b.bytes / 4;
      if (b.device == Device::CPU) {
        if (dt == "f32") {
          float f = static_cast<float>(v);
          float* p = static_cast<float*>(b.ptr);
          for (size_t i = 0; i < n; ++i) p[i] = f;
        } else {
          int32_t f = static_cast<int32_t>(v);
          int32_t* p = static_cast<int32_t*>(b.ptr);
          for (size_t i = 0; i < n; ++i) p[i] = f;
        }
      } else {
#ifdef QGS_WITH_CUDA
        if (v == 0.0) {
          qgs::cuda::memset_device(b.ptr, 0, b.bytes);
        } else {
          std::unique_ptr<uint32_t[]> host(new uint32_t[n]);
          if (dt == "f32") {
            float f = static_cast<float>(v);
            for (size_t i = 0; i < n; ++i) std::memcpy(&host[i], &f, 4);
          } else {
            int32_t f = static_cast<int32_t>(v);
            for (size_t i = 0; i < n; ++i) std::memcpy(&host[i], &f, 4);
          }
          qgs::cuda::copy_h2d(b.ptr, host.get(), n * 4);
        }
#endif
      }
      return env.Undefined();
    });
  }

  Napi::Value Bytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(bytes_)); }
  Napi::Value DeviceName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), buf_ ? device_name(buf_->device) : "disposed");
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !buf_); }

  std::shared_ptr<Buffer> buf_;
  int64_t bytes_ = 0;
  Napi::Reference<Napi::ArrayBuffer> view_;
  std::shared_ptr<LiveCounters> live_;
};

}  // namespace

static View storage_view(const Napi::CallbackInfo& info, size_t i, const char* name, size_t min_bytes, bool optional) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  if (optional && (v.IsUndefined() || v.IsNull())) return View{nullptr, 0, Device::CPU};
  auto* data = env.GetInstanceData<InstanceData>();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(data->storage_ctor.Value()))
    throw_type_error(env, std::string(name) + ": expected a tensor storage");
  Storage* s = Storage::Unwrap(v.As<Napi::Object>());
  if (s->disposed()) throw_error(env, std::string(name) + ": tensor has been disposed");
  Buffer* b = s->buffer();
  if (b->bytes < min_bytes)
    throw_error(env, std::string(name) + ": storage holds " + std::to_string(b->bytes) + " bytes, expected at least " +
                         std::to_string(min_bytes));
  if (b->device == Device::CUDA) require_cuda_build(env, name);
  return View{b->ptr, b->bytes, b->device};
}

View storage_arg(const Napi::CallbackInfo& info, size_t i, const char* name, size_t min_bytes) {
  return storage_view(info, i, name, min_bytes, false);
}
View optional_storage_arg(const Napi::CallbackInfo& info, size_t i, const char* name, size_t min_bytes) {
  return storage_view(info, i, name, min_bytes, true);
}

QGS_BINDING(liveStorage) {
  auto* data = info.Env().GetInstanceData<InstanceData>();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("count", static_cast<double>(data->live->count));
  o.Set("bytes", static_cast<double>(data->live->bytes));
  o.Set("cachedBytes", static_cast<double>(data->host_cache->cached_bytes()));
  o.Set("reportedBytes", static_cast<double>(data->live->reported));
  return o;
}

// releaseCachedMemory() -> bytes unmapped: returns the cached large host mappings to the system.
QGS_BINDING(releaseCachedMemory) {
  auto* data = info.Env().GetInstanceData<InstanceData>();
  return Napi::Number::New(info.Env(), static_cast<double>(data->host_cache->trim()));
}

// addInto(dst, src, n): dst[i] += src[i] (f32). Used by autograd to accumulate gradients.
QGS_BINDING(addInto) {
  int64_t n = int_arg(info, 2, "n", 0);
  View dst = storage_arg(info, 0, "dst", static_cast<size_t>(n) * 4);
  View src = storage_arg(info, 1, "src", static_cast<size_t>(n) * 4);
  Device d = common_device("addInto", {&dst, &src});
  if (d == Device::CPU) {
    float* a = dst.as<float>();
    const float* b = src.as<float>();
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::add_inplace(dst.as<float>(), src.as<float>(), n);
#endif
  }
  return info.Env().Undefined();
}

QGS_BINDING(numThreads) { return Napi::Number::New(info.Env(), qgs::num_threads()); }

QGS_BINDING(blasThreads) { return Napi::Number::New(info.Env(), qgs::blas_threads()); }

// poolWake(): the pool's idle threads start spinning for work about to come (qgs::wake_pool).
QGS_BINDING(poolWake) {
  qgs::wake_pool();
  return info.Env().Undefined();
}

QGS_BINDING(setNumThreads) {
  qgs::set_num_threads(static_cast<int>(int_arg(info, 0, "threads", 0, 1024)));
  return Napi::Number::New(info.Env(), qgs::num_threads());
}

// cudaInfo() -> { built, devices, reason, name }
QGS_BINDING(cudaInfo) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef QGS_WITH_CUDA
  std::string reason;
  int n = qgs::cuda::device_count(&reason);
  o.Set("built", true);
  o.Set("devices", n);
  o.Set("reason", reason);
  o.Set("name", n > 0 ? qgs::cuda::device_name() : std::string());
#else
  o.Set("built", false);
  o.Set("devices", 0);
  o.Set("reason", "this build has no CUDA kernels");
  o.Set("name", "");
#endif
  return o;
}

QGS_BINDING(cudaSynchronize) {
#ifdef QGS_WITH_CUDA
  qgs::cuda::synchronize();
#endif
  return info.Env().Undefined();
}

QGS_BINDING(buildInfo) {
  Napi::Object o = Napi::Object::New(info.Env());
#ifdef QGS_WITH_CUDA
  o.Set("cuda", true);
#else
  o.Set("cuda", false);
#endif
#ifdef QGS_WITH_BLAS
  o.Set("blas", "openblas");
#else
  o.Set("blas", "none");
#endif
#if defined(__SANITIZE_ADDRESS__)
  o.Set("sanitizers", true);
#else
  o.Set("sanitizers", false);
#endif
  o.Set("physicalCores", qgs::physical_cores());
  return o;
}

void register_storage(Napi::Env env, Napi::Object exports) {
  auto* data = new InstanceData();
  Napi::Function ctor = Storage::Define(env);
  data->storage_ctor = Napi::Persistent(ctor);
  env.SetInstanceData<InstanceData>(data);
  exports.Set("Storage", ctor);
  QGS_EXPORT(exports, env, liveStorage);
  QGS_EXPORT(exports, env, releaseCachedMemory);
  QGS_EXPORT(exports, env, numThreads);
  QGS_EXPORT(exports, env, blasThreads);
  QGS_EXPORT(exports, env, addInto);
  QGS_EXPORT(exports, env, setNumThreads);
  QGS_EXPORT(exports, env, poolWake);
  QGS_EXPORT(exports, env, cudaInfo);
  QGS_EXPORT(exports, env, cudaSynchronize);
  QGS_EXPORT(exports, env, buildInfo);
}

}  // namespace qgs::napi
