// CUDA movement kernels (same contracts as native/cpu/movement.cpp): strided copy of 4-byte words,
// gather along an axis, and its scatter-add backward. Indices are checked on the host by the
// binding before any launch.
#include <cuda_runtime.h>

#include "ew_common.cuh"

namespace qgs::cuda {
namespace {
using ew::blocks_for;
using ew::kThreads;
using ew::offsets;

// Descriptor input 0 = destination, input 1 = source (over the copy's index space).
__global__ void strided_copy_kernel(uint32_t* dst, const uint32_t* src, Strided s, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    int64_t off[2];
    offsets<2>(s, i, off);
    dst[off[0]] = src[off[1]];
  }
}

__global__ void gather_kernel(uint32_t* out, const uint32_t* x, const int32_t* idx, int64_t n, int64_t inner, int64_t m,
                              int64_t total) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += step) {
    const int64_t i = t % inner;
    const int64_t j = (t / inner) % m;
    const int64_t o = t / (inner * m);
    out[t] = x[(o * n + idx[j]) * inner + i];
  }
}

__global__ void zero_kernel(float* p, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) p[i] = 0.f;
}

// Deterministic: one thread per (o, i) column walks j in order, so repeated indices never race.
__global__ void gather_backward_columns(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n,
                                        int64_t inner, int64_t m) {
  const int64_t cols = outer * inner;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < cols; t += step) {
    const int64_t o = t / inner, i = t % inner;
    for (int64_t j = 0; j < m; ++j) dx[(o * n + idx[j]) * inner + i] += dy[(o * m + j) * inner + i];
  }
}

// Few columns, many indices: atomics give the parallelism (summation order then varies run to run).
__global__ void gather_backward_atomic(float* dx, const float* dy, const int32_t* idx, int64_t n, int64_t inner, int64_t m,
                                       int64_t total) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += step) {
    const int64_t i = t % inner;
    const int64_t j = (t / inner) % m;
    const int64_t o = t / (inner * m);
    atomicAdd(dx + (o * n + idx[j]) * inner + i, dy[t]);
  }
}

}  // namespace

void strided_copy(uint32_t* dst, const int64_t* dst_stride, const uint32_t* src, const int64_t* src_stride,
                  const int64_t* shape, int ndim) {
  Strided s;
  s.ndim = ndim;
  for (int d = 0; d < ndim; ++d) {
    s.shape[d] = shape[d];
    s.stride[0][d] = dst_stride[d];
    s.stride[1][d] = src_stride[d];
  }
  const int64_t n = collapse(s, 2);
  if (n == 0) return;
  strided_copy_kernel<<<blocks_for(n), kThreads>>>(dst, src, s, n);
  check_last("strided_copy");
}

void gather(uint32_t* out, const uint32_t* x, const int32_t* idx, int64_t outer, int64_t n, int64_t inner, int64_t m) {
  QGS_REQUIRE(outer >= 0 && n >= 0 && inner >= 0 && m >= 0, "gather: sizes must be >= 0");
  const int64_t total = outer * m * inner;
  if (total == 0) return;
  gather_kernel<<<blocks_for(total), kThreads>>>(out, x, idx, n, inner, m, total);
  check_last("gather");
}

void gather_backward_f32(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n, int64_t inner,
                         int64_t m) {
  QGS_REQUIRE(outer >= 0 && n >= 0 && inner >= 0 && m >= 0, "gather_backward: sizes must be >= 0");
  const int64_t nx = outer * n * inner;
  if (nx == 0) return;
  zero_kernel<<<blocks_for(nx), kThreads>>>(dx, nx);
  check_last("gather_backward (zero)");
  const int64_t cols = outer * inner, total = outer * m * inner;
  if (total == 0) return;
  if (cols >= 4096 || m <= 64) {
    gather_backward_columns<<<blocks_for(cols), kThreads>>>(dx, dy, idx, outer, n, inner, m);
  } else {
    gather_backward_atomic<<<blocks_for(total), kThreads>>>(dx, dy, idx, n, inner, m, total);
  }
  check_last("gather_backward");
}

}  // namespace qgs::cuda
