// CUDA runtime wrappers: every call checked, errors become qgs::KernelError.
#include <cuda_runtime.h>

#include <string>

#include "qgs/common.h"
#include "qgs/cuda_runtime.h"

namespace qgs::cuda {
namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    throw KernelError(std::string(what) + ": CUDA error " + std::to_string(static_cast<int>(e)) + " (" +
                      cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + ")");
  }
}
}  // namespace

int device_count(std::string* reason) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (reason) *reason = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky-free error so later calls are not confused
    return 0;
  }
  if (n == 0 && reason) *reason = "no CUDA device found";
  return n;
}

std::string device_name() {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
  return p.name;
}

void* malloc_device(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes == 0 ? 1 : bytes), "cudaMalloc");
  return p;
}
void free_device(void* p) noexcept {
  if (p) cudaFree(p);
}
void copy_h2d(void* dst, const void* src, size_t bytes) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
}
void copy_d2h(void* dst, const void* src, size_t bytes) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}
void copy_d2d(void* dst, const void* src, size_t bytes) {
  if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy D2D");
}
void memset_device(void* dst, int value, size_t bytes) {
  if (bytes) check(cudaMemset(dst, value, bytes), "cudaMemset");
}
void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }
void check_last(const char* what) { check(cudaGetLastError(), what); }

namespace {
__global__ void add_inplace_kernel(float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) a[i] += b[i];
}
}  // namespace

void add_inplace(float* a, const float* b, int64_t n) {
  if (n <= 0) return;
  int64_t blocks = (n + 255) / 256;
  add_inplace_kernel<<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), 256>>>(a, b, n);
  check_last("add_inplace");
}

}  // namespace qgs::cuda
