// Run-time loading of cuBLAS (see cublas_loader.h). The table is a function-local static: built
// once on first use (C++11 guarantees thread-safe initialisation) and never modified after.
#include "cublas_loader.h"

#include <dlfcn.h>

#include <string>

#include "qgs/common.h"

namespace qgs::cuda::cublas {

namespace {
Table load() {
  Table t;
  void* lib = nullptr;
  std::string name, errors;
  for (const char* cand : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) {
    lib = dlopen(cand, RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) {
      name = cand;
      break;
    }
    const char* e = dlerror();
    errors += std::string(errors.empty() ? "" : "; ") + (e ? e : cand);
  }
  if (lib == nullptr) {
    t.description = "cuBLAS not found (" + errors + ")";
    return t;
  }
  auto sym = [&](const char* s) { return dlsym(lib, s); };
  t.create = reinterpret_cast<decltype(t.create)>(sym("cublasCreate_v2"));
  t.destroy = reinterpret_cast<decltype(t.destroy)>(sym("cublasDestroy_v2"));
  t.set_stream = reinterpret_cast<decltype(t.set_stream)>(sym("cublasSetStream_v2"));
  t.sgemm = reinterpret_cast<decltype(t.sgemm)>(sym("cublasSgemm_v2"));
  t.sgemm_strided_batched = reinterpret_cast<decltype(t.sgemm_strided_batched)>(sym("cublasSgemmStridedBatched"));
  if (!t.create || !t.destroy || !t.sgemm || !t.sgemm_strided_batched) {
    t.description = name + " lacks cublasCreate_v2/cublasSgemm_v2/cublasSgemmStridedBatched";
    // The library stays loaded: unloading a half-initialised CUDA library is not worth the risk.
    return t;
  }
  t.ok = true;
  t.description = "cublas (" + name + ")";
  return t;
}

struct ThreadHandle {
  Handle h = nullptr;
  ~ThreadHandle() {
    if (h != nullptr) table().destroy(h);
  }
};
}  // namespace

const Table& table() {
  static const Table t = load();
  return t;
}

Handle thread_handle() {
  const Table& t = table();
  if (!t.ok) return nullptr;
  // One handle per thread: cuBLAS handles must not be used by two threads at once.
  thread_local ThreadHandle th;
  if (th.h == nullptr) check(t.create(&th.h), "cublasCreate");
  return th.h;
}

void check(Status s, const char* what) {
  if (s == 0) return;
  static const char* names[] = {"SUCCESS", "NOT_INITIALIZED", "?", "ALLOC_FAILED", "?", "?", "?", "INVALID_VALUE", "ARCH_MISMATCH"};
  std::string n = (s >= 0 && s < 9) ? names[s] : (s == 11 ? "MAPPING_ERROR" : s == 13 ? "EXECUTION_FAILED" : s == 14 ? "INTERNAL_ERROR" : s == 15 ? "NOT_SUPPORTED" : "?");
  throw KernelError(std::string(what) + ": cuBLAS status " + std::to_string(s) + " (CUBLAS_STATUS_" + n + ")");
}

}  // namespace qgs::cuda::cublas
