// Private helpers of the HFG CPU kernels (hfg.cpp: grouped attention; hfg_context_layer.cpp: the
// fused inference layer): 8-wide float vectors, a vectorisable exp for non-positive arguments and
// the masked softmax over a padded key block. Include after `#pragma GCC optimize("no-trapping-math")`
// (see hfg.cpp); the helpers are always inlined into the callers' SIMD clones.
#pragma once
#include <cstdint>
#include <limits>

#include "exp_poly.h"
#include "qgs/common.h"

namespace qgs::cpu::hfg_simd {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kBlock = 16;  // softmax runs over keys padded to a multiple of this

#if defined(__GNUC__)
#define QGS_HFG_INLINE inline __attribute__((always_inline))
#else
#define QGS_HFG_INLINE inline
#endif

inline int64_t padded_keys(int64_t Tk) { return (Tk + kBlock - 1) / kBlock * kBlock; }

// 8-wide float vectors (GCC/Clang vector extensions): AVX registers in the AVX2/AVX-512 clones, SSE
// pairs in the baseline one. Used where the compiler's own vectorisation falls short: horizontal
// reductions (its omp-simd epilogue stored the vector and summed 8 scalars in a chain), and
// accumulator arrays it kept on the stack.
typedef float v8f __attribute__((vector_size(32)));

QGS_HFG_INLINE v8f load8(const float* p) {
  v8f v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// Stores by value (no address of a local array is taken, so the array can stay in registers).
QGS_HFG_INLINE void store8(float* p, v8f v) { __builtin_memcpy(p, &v, sizeof v); }

// Horizontal max / sum of the 8 lanes in a shuffle tree.
QGS_HFG_INLINE float hmax8(v8f v) {
  v8f t = __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
  v = v > t ? v : t;
  t = __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
  v = v > t ? v : t;
  t = __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);
  v = v > t ? v : t;
  return v[0];
}
QGS_HFG_INLINE float hsum8(v8f v) {
  v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
  v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
  v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);
  return v[0];
}

// 0 for present keys, -inf for masked keys and for the padding up to KP.
QGS_HFG_INLINE void row_bias(float* bias, const float* m, int64_t Tk, int64_t KP) {
  for (int64_t j = 0; j < KP; ++j) bias[j] = (j < Tk && (m == nullptr || m[j] != 0.f)) ? 0.f : kNegInf;
}

// p[j] = exp(x[j]) for x[j] <= 0, j < n (exp_poly); x < -87.3 (including -inf for masked keys)
// gives exactly 0.
QGS_HFG_INLINE void exp_nonpositive(float* QGS_RESTRICT p, const float* QGS_RESTRICT x, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float xj = x[j];
    const float e = exp_poly(xj < -87.3f ? -87.3f : xj);
    p[j] = xj < -87.3f ? 0.f : e;
  }
}

// p ← softmax over the padded key block (KP a multiple of 16) of scale · s + bias; s is overwritten
// with the shifted logits. Returns false when every key is masked (p is then undefined).
QGS_HFG_INLINE bool masked_softmax(float* QGS_RESTRICT p, float* QGS_RESTRICT s, const float* QGS_RESTRICT bias,
                                   int64_t KP, float scale) {
  v8f mxv = v8f{} + kNegInf;
  for (int64_t j = 0; j < KP; j += 8) {
    const v8f x = load8(s + j) * scale + load8(bias + j);
    store8(s + j, x);
    mxv = x > mxv ? x : mxv;
  }
  const float mx = hmax8(mxv);
  if (mx == kNegInf) return false;
  for (int64_t j = 0; j < KP; j += 8) store8(s + j, load8(s + j) - mx);
  exp_nonpositive(p, s, KP);
  v8f sumv = {};
  for (int64_t j = 0; j < KP; j += 8) sumv += load8(p + j);
  const float inv = 1.f / hsum8(sumv);  // sum >= 1: the max key contributes exp(0)
  for (int64_t j = 0; j < KP; j += 8) store8(p + j, load8(p + j) * inv);
  return true;
}

}  // namespace qgs::cpu::hfg_simd
