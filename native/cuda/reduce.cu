// CUDA reductions over [outer, r, inner] (same contract as native/cpu/reduce.cpp). Two shapes of
// work: with many outputs, one thread per output walks r (adjacent threads read adjacent inner
// elements, so loads coalesce when inner > 1); with few outputs and a long r (a full sum), one
// block per output strides over r and reduces in shared memory. Accumulation is in double; the
// thread-to-element assignment is fixed, so results are deterministic run to run.
#include <cuda_runtime.h>

#include <cmath>

#include "ew_common.cuh"

namespace qgs::cuda {
namespace {
using ew::blocks_for;
using ew::kThreads;

__device__ __forceinline__ double red_combine(int op, double acc, double v) {
  if (op == 0) return acc + v;
  if (acc != acc) return acc;  // NaN is sticky
  if (v != v) return v;
  return op == 1 ? (v > acc ? v : acc) : (v < acc ? v : acc);
}

__device__ __forceinline__ double red_identity(int op) {
  return op == 0 ? 0.0 : (op == 1 ? -INFINITY : INFINITY);
}

__global__ void reduce_thread_kernel(int op, float* out, const float* x, int64_t outer, int64_t r, int64_t inner,
                                     double scale) {
  const int64_t n = outer * inner;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += step) {
    const int64_t o = t / inner, i = t % inner;
    const float* p = x + o * r * inner + i;
    double acc = red_identity(op);
    for (int64_t k = 0; k < r; ++k) acc = red_combine(op, acc, static_cast<double>(p[k * inner]));
    out[t] = static_cast<float>(op == 0 ? acc * scale : acc);
  }
}

// One block per output (grid-stride over outputs), kThreads threads striding over r.
__global__ void reduce_block_kernel(int op, float* out, const float* x, int64_t outer, int64_t r, int64_t inner,
                                    double scale) {
  __shared__ double sh[kThreads];
  const int64_t n = outer * inner;
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    const int64_t o = t / inner, i = t % inner;
    const float* p = x + o * r * inner + i;
    double acc = red_identity(op);
    for (int64_t k = threadIdx.x; k < r; k += blockDim.x) acc = red_combine(op, acc, static_cast<double>(p[k * inner]));
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if (threadIdx.x < w) sh[threadIdx.x] = red_combine(op, sh[threadIdx.x], sh[threadIdx.x + w]);
      __syncthreads();
    }
    if (threadIdx.x == 0) out[t] = static_cast<float>(op == 0 ? sh[0] * scale : sh[0]);
    __syncthreads();  // sh is reused by the next output
  }
}

}  // namespace

void reduce_f32(ReduceOp op, float* out, const float* x, int64_t outer, int64_t r, int64_t inner, double scale) {
  QGS_REQUIRE(outer >= 0 && r >= 0 && inner >= 0, "reduce: sizes must be >= 0");
  if (outer == 0 || inner == 0) return;
  QGS_REQUIRE(op == ReduceOp::Sum || r > 0, "reduce: max/min over an empty axis (r = 0) has no value");
  const int64_t n = outer * inner;
  // Few outputs with a long reduced axis: a block each keeps the GPU busy.
  if (n < 8192 && r >= 1024) {
    const unsigned blocks = static_cast<unsigned>(n < (1 << 16) ? n : (1 << 16));
    reduce_block_kernel<<<blocks, kThreads>>>(static_cast<int>(op), out, x, outer, r, inner, scale);
  } else {
    reduce_thread_kernel<<<blocks_for(n), kThreads>>>(static_cast<int>(op), out, x, outer, r, inner, scale);
  }
  check_last("reduce_f32");
}

}  // namespace qgs::cuda
