// Shared helpers of the CUDA elementwise / reduce / movement kernels: launch geometry for
// grid-stride loops and strided-offset computation over a collapsed Strided descriptor.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "qgs/cuda_runtime.h"
#include "qgs/elementwise.h"

namespace qgs::cuda::ew {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items: enough to fill any current GPU, capped so the
// launch is always valid (the loop covers the rest).
inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  if (b > (1 << 16)) b = 1 << 16;
  return static_cast<unsigned>(b);
}

// Offsets of the first NIN inputs of s at flat output index i.
template <int NIN>
__device__ __forceinline__ void offsets(const Strided& s, int64_t i, int64_t* off) {
#pragma unroll
  for (int k = 0; k < NIN; ++k) off[k] = 0;
  for (int d = s.ndim - 1; d >= 0; --d) {
    const int64_t n = s.shape[d];
    const int64_t c = i % n;
    i /= n;
#pragma unroll
    for (int k = 0; k < NIN; ++k) off[k] += c * s.stride[k][d];
  }
}

}  // namespace qgs::cuda::ew
