// Elementwise, reduction and movement kernels (issue 2, section 4). Plain functions over raw
// pointers and sizes, in qgs::cpu and (same signatures + nothing else) qgs::cuda. Outputs first.
//
// Broadcasting is described by a Strided descriptor: the output is contiguous with shape `shape`;
// each input k is read at offset sum_d idx[d] * stride[k][d] (stride 0 = broadcast dimension).
// Callers (the N-API layer) build it from numpy broadcasting rules; kernels collapse it first.
#pragma once
#include <cstdint>

#include "qgs/common.h"

namespace qgs {

constexpr int kMaxDims = 16;

struct Strided {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  // Element strides of up to 3 inputs over the output index space.
  int64_t stride[3][kMaxDims] = {};
};

// Removes size-1 dimensions and merges adjacent dimensions that are contiguous for every one of the
// first `nin` inputs, so the common cases become 1-d (same shape, scalar) or 2-d (row/column
// broadcast). Returns the number of output elements.
int64_t collapse(Strided& s, int nin);

// Numbers are part of the binding contract (src/ops/elementwise.ts uses the same values).
enum class BinaryOp : int { Add = 0, Sub = 1, Mul = 2, Div = 3, Max = 4, Min = 5, Greater = 6, Less = 7, Equal = 8 };

// Unary ops; p1/p2 are the parameters of the parametric ones.
enum class UnaryOp : int {
  Neg = 0,
  Exp = 1,
  Log = 2,
  Sqrt = 3,
  Tanh = 4,
  Sigmoid = 5,
  Silu = 6,
  Relu = 7,
  Gelu = 8,  // exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
  Abs = 9,
  Square = 10,
  Affine = 11,  // x * p1 + p2 (mulScalar, addScalar)
  Pow = 12,     // x ^ p1
  Clamp = 13,   // min(max(x, p1), p2)
};

enum class ReduceOp : int { Sum = 0, Max = 1, Min = 2 };

}  // namespace qgs

namespace qgs::cpu {

// out = a op b over s (inputs 0 = a, 1 = b). Comparisons write 1.0f / 0.0f.
void binary_f32(BinaryOp op, float* out, const float* a, const float* b, const Strided& s);
// i32: Add, Sub, Mul (wrapping, like two's-complement hardware), Max, Min.
void binary_i32(BinaryOp op, int32_t* out, const int32_t* a, const int32_t* b, const Strided& s);
// Full-size (output-shaped) partial gradients of Mul, Div, Max, Min; da or db may be null.
// Max/Min split the gradient evenly on ties (torch.maximum semantics).
void binary_backward_f32(BinaryOp op, float* da, float* db, const float* dy, const float* a, const float* b,
                         const Strided& s);
// out = cond != 0 ? a : b over s (inputs 0 = cond, 1 = a, 2 = b).
void where_f32(float* out, const float* cond, const float* a, const float* b, const Strided& s);

void unary_f32(UnaryOp op, float* out, const float* x, int64_t n, float p1, float p2);
// dx = dy * f'(.); x is the input, y the forward output. Exp/Sqrt/Tanh/Sigmoid read y; Log, Silu,
// Relu, Gelu, Abs, Square, Pow, Clamp read x; Neg/Affine read neither (pass null).
void unary_backward_f32(UnaryOp op, float* dx, const float* dy, const float* x, const float* y, int64_t n, float p1,
                        float p2);

// x viewed as [outer, r, inner] -> out [outer, inner]. Sum accumulates in double and is scaled by
// `scale` (1/r gives the mean). Max/Min need r > 0 and propagate NaN. The result does not depend
// on the thread count (fixed chunking).
void reduce_f32(ReduceOp op, float* out, const float* x, int64_t outer, int64_t r, int64_t inner, double scale);

// Copies 4-byte words: dst[sum idx*dst_stride] = src[sum idx*src_stride] over `shape`
// (transpose, broadcastTo, slice and its backward, concat/split pieces). Works for f32 and i32.
void strided_copy(uint32_t* dst, const int64_t* dst_stride, const uint32_t* src, const int64_t* src_stride,
                  const int64_t* shape, int ndim);

// x [outer, n, inner] (4-byte words), idx [m] in [0, n) -> out [outer, m, inner].
// Indices must be checked by the caller (the binding does; see gather_check_indices).
void gather(uint32_t* out, const uint32_t* x, const int32_t* idx, int64_t outer, int64_t n, int64_t inner, int64_t m);
// dx [outer, n, inner] = scatter-add of dy [outer, m, inner]; dx is overwritten (zeroed first).
void gather_backward_f32(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n, int64_t inner,
                         int64_t m);
// Throws KernelError naming the first index outside [0, n).
void gather_check_indices(const int32_t* idx, int64_t m, int64_t n);
// Bags of table rows: out[i, :] = Σ_j w_ij · table[ids[i·m + j], :] for i < N, with table [V, D] and
// ids [N, m] in [0, V) (checked: KernelError naming the first bad one). Slots whose id equals
// padding_idx (-1: none) are skipped; w_ij = w[i·m + j] (w [N, m]) or 1 (w null), and with `mean` the
// row is divided by its count of non-padding slots (a bag of padding only is 0). Slots of weight 0
// are skipped too. Row i's slots are added in order j = 0..m-1. CPU, inference (no backward): the
// serving encode's term pooling.
void embedding_bag_f32(float* out, const float* table, int64_t V, int64_t D, const int32_t* ids, const float* w, int64_t N,
                       int64_t m, bool mean, int64_t padding_idx);

// out = keep(i) ? x * scale : 0, keep(i) = dropout_uniform(seed, i) >= p, scale = 1 / (1 - p).
// The same call on dy gives the backward. Counter-based: independent of threads and device.
void dropout_f32(float* out, const float* x, int64_t n, float p, uint64_t seed);

}  // namespace qgs::cpu

namespace qgs {

// Counter-based uniform in [0, 1) with 24 random bits (exact in float): splitmix64 finaliser of
// (seed, index). Shared by the CPU and CUDA kernels so their masks are identical.
#if defined(__CUDACC__)
__host__ __device__
#endif
inline float dropout_uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0xD1B54A32D192ED03ull + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace qgs

namespace qgs::cuda {

void binary_f32(BinaryOp op, float* out, const float* a, const float* b, const Strided& s);
void binary_i32(BinaryOp op, int32_t* out, const int32_t* a, const int32_t* b, const Strided& s);
void binary_backward_f32(BinaryOp op, float* da, float* db, const float* dy, const float* a, const float* b,
                         const Strided& s);
void where_f32(float* out, const float* cond, const float* a, const float* b, const Strided& s);
void unary_f32(UnaryOp op, float* out, const float* x, int64_t n, float p1, float p2);
void unary_backward_f32(UnaryOp op, float* dx, const float* dy, const float* x, const float* y, int64_t n, float p1,
                        float p2);
void reduce_f32(ReduceOp op, float* out, const float* x, int64_t outer, int64_t r, int64_t inner, double scale);
void strided_copy(uint32_t* dst, const int64_t* dst_stride, const uint32_t* src, const int64_t* src_stride,
                  const int64_t* shape, int ndim);
void gather(uint32_t* out, const uint32_t* x, const int32_t* idx, int64_t outer, int64_t n, int64_t inner, int64_t m);
void gather_backward_f32(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n, int64_t inner,
                         int64_t m);
void dropout_f32(float* out, const float* x, int64_t n, float p, uint64_t seed);

}  // namespace qgs::cuda
