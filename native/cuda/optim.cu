// CUDA optimiser kernels (same contracts as native/cpu/optim.cpp): one fused grid-stride pass.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "qgs/common.h"
#include "qgs/cuda_runtime.h"
#include "qgs/optim.h"

namespace qgs::cuda {

namespace {
constexpr int kThreads = 256;
unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 65535))); }

__device__ __forceinline__ void adam_elem(float* p, float* m, float* v, float g, float lr, float b1, float b2, float eps, float decay,
                                          float ib1, float isb2) {
  float mi = b1 * *m + (1.f - b1) * g;
  float vi = b2 * *v + (1.f - b2) * g * g;
  *m = mi;
  *v = vi;
  *p = *p * decay - lr * (mi * ib1) / (sqrtf(vi) * isb2 + eps);
}

__global__ void adamw_k(float* p, float* m, float* v, const float* g, int64_t n, float lr, float b1, float b2, float eps, float decay,
                        float ib1, float isb2) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    adam_elem(p + i, m + i, v + i, g[i], lr, b1, b2, eps, decay, ib1, isb2);
}

__global__ void sparse_adam_k(float* p, float* m, float* v, const int32_t* rows, const float* g, int64_t nrows, int64_t dim, float lr,
                              float b1, float b2, float eps, float decay, float ib1, float isb2) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < nrows * dim; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off = int64_t(rows[i / dim]) * dim + i % dim;
    adam_elem(p + off, m + off, v + off, g[i], lr, b1, b2, eps, decay, ib1, isb2);
  }
}

__global__ void sparse_adagrad_k(float* p, float* acc, const int32_t* rows, const float* g, int64_t nrows, int64_t dim, float lr,
                                 float eps, float decay) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < nrows * dim; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off = int64_t(rows[i / dim]) * dim + i % dim;
    float gi = g[i];
    float a = acc[off] + gi * gi;
    acc[off] = a;
    p[off] = p[off] * decay - lr * gi / (sqrtf(a) + eps);
  }
}

__global__ void sum_squares_k(double* out, const float* x, int64_t n) {
  __shared__ double sh[kThreads];
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) s += double(x[i]) * x[i];
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(out, sh[0]);
}

__global__ void scale_k(float* x, int64_t n, float s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) x[i] *= s;
}

// Rows are checked on the host (a row list is small): duplicates would race in the kernel.
void check_rows(const char* op, const int32_t* rows, int64_t nrows, int64_t vocab) {
  std::vector<int32_t> s(static_cast<size_t>(nrows));
  copy_d2h(s.data(), rows, s.size() * sizeof(int32_t));
  std::sort(s.begin(), s.end());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] < 0 || s[i] >= vocab)
      throw KernelError(std::string(op) + ": rows: expected ids in [0, " + std::to_string(vocab) + "), got " + std::to_string(s[i]));
    if (i > 0 && s[i] == s[i - 1]) throw KernelError(std::string(op) + ": rows: expected unique ids, got " + std::to_string(s[i]) + " twice");
  }
}

void check_hyper(const char* op, float lr, float eps) {
  QGS_REQUIRE(std::isfinite(lr) && lr >= 0.f, std::string(op) + ": lr: expected a finite number >= 0, got " + std::to_string(lr));
  QGS_REQUIRE(eps > 0.f, std::string(op) + ": eps: expected > 0, got " + std::to_string(eps));
}
}  // namespace

void adamw_step(float* p, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                float bc1, float bc2) {
  check_hyper("adamw", lr, eps);
  QGS_REQUIRE(bc1 > 0.f && bc2 > 0.f, "adamw: bias corrections must be > 0 (step >= 1)");
  if (n <= 0) return;
  adamw_k<<<grid_for(n), kThreads>>>(p, m, v, g, n, lr, beta1, beta2, eps, 1.f - lr * weight_decay, 1.f / bc1, 1.f / std::sqrt(bc2));
  check_last("adamw_step");
}

void sparse_adam_step(float* p, float* m, float* v, const int32_t* rows, const float* g, int64_t nrows, int64_t vocab, int64_t dim,
                      float lr, float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2) {
  check_hyper("sparseAdam", lr, eps);
  QGS_REQUIRE(bc1 > 0.f && bc2 > 0.f, "sparseAdam: bias corrections must be > 0 (step >= 1)");
  check_rows("sparseAdam", rows, nrows, vocab);
  if (nrows * dim <= 0) return;
  sparse_adam_k<<<grid_for(nrows * dim), kThreads>>>(p, m, v, rows, g, nrows, dim, lr, beta1, beta2, eps, 1.f - lr * weight_decay,
                                                      1.f / bc1, 1.f / std::sqrt(bc2));
  check_last("sparse_adam_step");
}

void sparse_adagrad_step(float* p, float* acc, const int32_t* rows, const float* g, int64_t nrows, int64_t vocab, int64_t dim, float lr,
                         float eps, float weight_decay) {
  check_hyper("sparseAdagrad", lr, eps);
  check_rows("sparseAdagrad", rows, nrows, vocab);
  if (nrows * dim <= 0) return;
  sparse_adagrad_k<<<grid_for(nrows * dim), kThreads>>>(p, acc, rows, g, nrows, dim, lr, eps, 1.f - lr * weight_decay);
  check_last("sparse_adagrad_step");
}

double sum_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  double* d = static_cast<double*>(malloc_device(sizeof(double)));
  double s = 0;
  try {
    memset_device(d, 0, sizeof(double));
    sum_squares_k<<<std::min<unsigned>(grid_for(n), 1024), kThreads>>>(d, x, n);
    check_last("sum_squares");
    copy_d2h(&s, d, sizeof s);
  } catch (...) {
    free_device(d);
    throw;
  }
  free_device(d);
  return s;
}

void scale_inplace(float* x, int64_t n, float s) {
  if (n <= 0) return;
  scale_k<<<grid_for(n), kThreads>>>(x, n, s);
  check_last("scale_inplace");
}

}  // namespace qgs::cuda
