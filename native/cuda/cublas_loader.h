// cuBLAS loaded at run time with dlopen (there are no cuBLAS headers or link libraries on the build
// machine; the GPU machine ships libcublas.so.12/13). Only the few entry points GEMM needs are
// declared here, with the ABI of cublas_api.h (CUDA 12/13).
#pragma once
#include <cuda_runtime.h>

#include <string>

namespace qgs::cuda::cublas {

using Status = int;  // cublasStatus_t: 0 = CUBLAS_STATUS_SUCCESS
struct Context;
using Handle = Context*;  // cublasHandle_t
enum Op : int { kOpN = 0, kOpT = 1 };  // cublasOperation_t

struct Table {
  bool ok = false;
  std::string description;  // "cublas (libcublas.so.12)" or why it is unavailable
  Status (*create)(Handle*) = nullptr;
  Status (*destroy)(Handle) = nullptr;
  Status (*set_stream)(Handle, cudaStream_t) = nullptr;
  Status (*sgemm)(Handle, Op, Op, int, int, int, const float*, const float*, int, const float*, int, const float*, float*,
                  int) = nullptr;
  Status (*sgemm_strided_batched)(Handle, Op, Op, int, int, int, const float*, const float*, int, long long, const float*,
                                  int, long long, const float*, float*, int, long long, int) = nullptr;
};

// The process-wide table: initialised once (thread-safe static), read-only afterwards.
const Table& table();

// This thread's cuBLAS handle (created on first use, destroyed at thread exit); nullptr when
// cuBLAS is unavailable.
Handle thread_handle();

// Throws KernelError("<what>: cuBLAS status N (<name>)") when s != 0.
void check(Status s, const char* what);

}  // namespace qgs::cuda::cublas
