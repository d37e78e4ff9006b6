// CUDA elementwise kernels: same contracts as native/cpu/elementwise.cpp (see
// qgs/elementwise.h). Grid-stride loops; the op is a template parameter so each kernel is a tight
// loop; a 1-d (collapsed) descriptor takes a division-free path. Every launch is checked.
#include <cuda_runtime.h>

#include <string>
#include <type_traits>

#include "ew_common.cuh"

namespace qgs::cuda {
namespace {
using ew::blocks_for;
using ew::kThreads;
using ew::offsets;

template <int OP>
__device__ __forceinline__ float bin_f(float x, float y) {
  switch (OP) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    case 3: return x / y;
    case 4: return (x > y || x != x) ? x : y;
    case 5: return (x < y || x != x) ? x : y;
    case 6: return x > y ? 1.f : 0.f;
    case 7: return x < y ? 1.f : 0.f;
    default: return x == y ? 1.f : 0.f;
  }
}

template <int OP>
__device__ __forceinline__ int32_t bin_i(int32_t x, int32_t y) {
  // Wrapping arithmetic through uint32 (signed overflow is undefined).
  switch (OP) {
    case 0: return static_cast<int32_t>(static_cast<uint32_t>(x) + static_cast<uint32_t>(y));
    case 1: return static_cast<int32_t>(static_cast<uint32_t>(x) - static_cast<uint32_t>(y));
    case 2: return static_cast<int32_t>(static_cast<uint32_t>(x) * static_cast<uint32_t>(y));
    case 4: return x > y ? x : y;
    default: return x < y ? x : y;
  }
}

template <int OP>
__global__ void binary_f32_kernel(float* out, const float* a, const float* b, Strided s, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  if (s.ndim == 1) {
    const int64_t sa = s.stride[0][0], sb = s.stride[1][0];
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) out[i] = bin_f<OP>(a[i * sa], b[i * sb]);
    return;
  }
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    int64_t off[2];
    offsets<2>(s, i, off);
    out[i] = bin_f<OP>(a[off[0]], b[off[1]]);
  }
}

template <int OP>
__global__ void binary_i32_kernel(int32_t* out, const int32_t* a, const int32_t* b, Strided s, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    int64_t off[2];
    offsets<2>(s, i, off);
    out[i] = bin_i<OP>(a[off[0]], b[off[1]]);
  }
}

template <int OP>
__global__ void binary_backward_kernel(float* da, float* db, const float* dy, const float* a, const float* b, Strided s,
                                       int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    int64_t off[2];
    offsets<2>(s, i, off);
    const float x = a[off[0]], y = b[off[1]], g = dy[i];
    if (OP == 2) {  // mul
      if (da) da[i] = g * y;
      if (db) db[i] = g * x;
    } else if (OP == 3) {  // div
      if (da) da[i] = g / y;
      if (db) db[i] = -g * x / (y * y);
    } else {  // max (4) / min (5): ties split evenly
      const float wa = x == y ? 0.5f : ((OP == 4 ? x > y : x < y) ? 1.f : 0.f);
      if (da) da[i] = g * wa;
      if (db) db[i] = g * (1.f - wa);
    }
  }
}

__global__ void where_kernel(float* out, const float* c, const float* a, const float* b, Strided s, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    int64_t off[3];
    offsets<3>(s, i, off);
    out[i] = c[off[0]] != 0.f ? a[off[1]] : b[off[2]];
  }
}

__device__ __forceinline__ float sigm(float v) { return 1.f / (1.f + expf(-v)); }

template <int OP>
__device__ __forceinline__ float un_f(float v, float p1, float p2) {
  switch (OP) {
    case 0: return -v;
    case 1: return expf(v);
    case 2: return logf(v);
    case 3: return sqrtf(v);
    case 4: return tanhf(v);
    case 5: return sigm(v);
    case 6: return v * sigm(v);
    case 7: return v > 0.f ? v : 0.f;
    case 8: return 0.5f * v * erfcf(-v * 0.70710678118654752f);  // erfc: no cancellation for v << 0
    case 9: return fabsf(v);
    case 10: return v * v;
    case 11: return v * p1 + p2;
    case 12: return powf(v, p1);
    default: return v < p1 ? p1 : (v > p2 ? p2 : v);
  }
}

// dx = g * f'(.), reading x (input) or y (output) as in the CPU kernel.
template <int OP>
__device__ __forceinline__ float un_b(float g, float x, float y, float p1, float p2) {
  switch (OP) {
    case 0: return -g;
    case 1: return g * y;
    case 2: return g / x;
    case 3: return 0.5f * g / y;
    case 4: return g * (1.f - y * y);
    case 5: return g * y * (1.f - y);
    case 6: {
      const float s = sigm(x);
      return g * s * (1.f + x * (1.f - s));
    }
    case 7: return x > 0.f ? g : 0.f;
    case 8: {
      const float cdf = 0.5f * erfcf(-x * 0.70710678118654752f);
      const float pdf = 0.3989422804014327f * expf(-0.5f * x * x);
      return g * (cdf + x * pdf);
    }
    case 9: return x > 0.f ? g : (x < 0.f ? -g : 0.f);
    case 10: return 2.f * g * x;
    case 11: return g * p1;
    case 12: return p1 == 0.f ? 0.f : g * p1 * powf(x, p1 - 1.f);
    default: return (x >= p1 && x <= p2) ? g : 0.f;
  }
}

template <int OP>
__global__ void unary_kernel(float* out, const float* x, int64_t n, float p1, float p2) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) out[i] = un_f<OP>(x[i], p1, p2);
}

template <int OP>
__global__ void unary_backward_kernel(float* dx, const float* dy, const float* x, const float* y, int64_t n, float p1,
                                      float p2) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    dx[i] = un_b<OP>(dy[i], x ? x[i] : 0.f, y ? y[i] : 0.f, p1, p2);
  }
}

__global__ void dropout_kernel(float* out, const float* x, int64_t n, float p, float scale, uint64_t seed) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    out[i] = dropout_uniform(seed, static_cast<uint64_t>(i)) >= p ? x[i] * scale : 0.f;
  }
}

// Calls f(std::integral_constant<int, OP>) for a run-time op code in [0, N).
template <int N, typename F, int I = 0>
void dispatch(int op, F&& f) {
  if constexpr (I < N) {
    if (op == I) {
      f(std::integral_constant<int, I>{});
      return;
    }
    dispatch<N, F, I + 1>(op, static_cast<F&&>(f));
  }
}

}  // namespace

void binary_f32(BinaryOp op, float* out, const float* a, const float* b, const Strided& s0) {
  Strided s = s0;
  const int64_t n = collapse(s, 2);
  if (n == 0) return;
  dispatch<9>(static_cast<int>(op), [&](auto k) {
    binary_f32_kernel<decltype(k)::value><<<blocks_for(n), kThreads>>>(out, a, b, s, n);
  });
  check_last("binary_f32");
}

void binary_i32(BinaryOp op, int32_t* out, const int32_t* a, const int32_t* b, const Strided& s0) {
  QGS_REQUIRE(op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul || op == BinaryOp::Max || op == BinaryOp::Min,
              "binary_i32: op " + std::to_string(static_cast<int>(op)) + " is not supported for i32");
  Strided s = s0;
  const int64_t n = collapse(s, 2);
  if (n == 0) return;
  dispatch<6>(static_cast<int>(op), [&](auto k) {
    constexpr int K = decltype(k)::value;
    if constexpr (K != 3) binary_i32_kernel<K><<<blocks_for(n), kThreads>>>(out, a, b, s, n);
  });
  check_last("binary_i32");
}

void binary_backward_f32(BinaryOp op, float* da, float* db, const float* dy, const float* a, const float* b,
                         const Strided& s0) {
  QGS_REQUIRE(op == BinaryOp::Mul || op == BinaryOp::Div || op == BinaryOp::Max || op == BinaryOp::Min,
              "binary_backward: op " + std::to_string(static_cast<int>(op)) + " has no backward kernel");
  Strided s = s0;
  const int64_t n = collapse(s, 2);
  if (n == 0) return;
  dispatch<6>(static_cast<int>(op), [&](auto k) {
    constexpr int K = decltype(k)::value;
    if constexpr (K >= 2) binary_backward_kernel<K><<<blocks_for(n), kThreads>>>(da, db, dy, a, b, s, n);
  });
  check_last("binary_backward_f32");
}

void where_f32(float* out, const float* cond, const float* a, const float* b, const Strided& s0) {
  Strided s = s0;
  const int64_t n = collapse(s, 3);
  if (n == 0) return;
  where_kernel<<<blocks_for(n), kThreads>>>(out, cond, a, b, s, n);
  check_last("where_f32");
}

void unary_f32(UnaryOp op, float* out, const float* x, int64_t n, float p1, float p2) {
  QGS_REQUIRE(n >= 0, "unary: n must be >= 0");
  if (n == 0) return;
  dispatch<14>(static_cast<int>(op), [&](auto k) {
    unary_kernel<decltype(k)::value><<<blocks_for(n), kThreads>>>(out, x, n, p1, p2);
  });
  check_last("unary_f32");
}

void unary_backward_f32(UnaryOp op, float* dx, const float* dy, const float* x, const float* y, int64_t n, float p1,
                        float p2) {
  QGS_REQUIRE(n >= 0, "unary_backward: n must be >= 0");
  if (n == 0) return;
  dispatch<14>(static_cast<int>(op), [&](auto k) {
    unary_backward_kernel<decltype(k)::value><<<blocks_for(n), kThreads>>>(dx, dy, x, y, n, p1, p2);
  });
  check_last("unary_backward_f32");
}

void dropout_f32(float* out, const float* x, int64_t n, float p, uint64_t seed) {
  QGS_REQUIRE(p >= 0.f && p < 1.f, "dropout: p must be in [0, 1), got " + std::to_string(p));
  if (n == 0) return;
  dropout_kernel<<<blocks_for(n), kThreads>>>(out, x, n, p, 1.f / (1.f - p), seed);
  check_last("dropout_f32");
}

}  // namespace qgs::cuda
