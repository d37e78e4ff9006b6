// Internal helpers shared by the two CPU entry points of the pgloss family (pgloss.cpp and
// fused_linear_pg.cpp). Not part of the kernel API.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "qgs/pgloss.h"

// The 8-float vector helpers below are always inlined into SIMD clones, so the "AVX vector return
// without AVX changes the ABI" note never applies to a real call boundary.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace qgs::pg_detail {

// Explicit 8-lane SIMD through GCC vector extensions. Auto-vectorisation of these loops is fragile
// (GCC turns the clamps into branches and then gives up, leaving the AVX2 clone scalar), so the hot
// loops are written on 8-float vectors: AVX2/AVX-512 clones get ymm code, the baseline clone two
// SSE halves. Unaligned loads and stores go through memcpy (vmovups).
typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

__attribute__((always_inline)) inline f8 splat(float x) { return f8{x, x, x, x, x, x, x, x}; }
__attribute__((always_inline)) inline f8 load8(const float* p) {
  f8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((always_inline)) inline void store8(float* p, f8 v) { std::memcpy(p, &v, sizeof v); }
__attribute__((always_inline)) inline f8 vmin(f8 a, f8 b) { return a < b ? a : b; }
__attribute__((always_inline)) inline f8 vmax(f8 a, f8 b) { return a > b ? a : b; }
__attribute__((always_inline)) inline f8 vsel(i8 c, f8 a, f8 b) { return c ? a : b; }
// c ? a : 0 as one bitwise AND (cheaper than a blend).
__attribute__((always_inline)) inline f8 vand(i8 c, f8 a) { return (f8)(c & (i8)a); }
__attribute__((always_inline)) inline float hsum(f8 v) {
  float s = 0.f;
  for (int k = 0; k < 8; ++k) s += v[k];
  return s;
}
__attribute__((always_inline)) inline float hmin(f8 v) {
  float s = v[0];
  for (int k = 1; k < 8; ++k) s = v[k] < s ? v[k] : s;
  return s;
}
__attribute__((always_inline)) inline float hmax(f8 v) {
  float s = v[0];
  for (int k = 1; k < 8; ++k) s = v[k] > s ? v[k] : s;
  return s;
}

// exp(x) on 8 lanes, Cephes' expf polynomial (≈1 ulp); inputs clamped to [−87, 88] so the
// exponent bits never overflow (callers clamp log-ratios to ±20 anyway).
__attribute__((always_inline)) inline f8 fast_exp8(f8 x) {
  x = vmin(vmax(x, splat(-87.0f)), splat(88.0f));
  // Round to nearest by adding and subtracting 1.5·2^23.
  const f8 k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  f8 r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  f8 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const i8 ki = (__builtin_convertvector(k, i8) + 127) << 23;
  return p * (f8)ki;  // same-size vector cast = bit reinterpretation
}

// Aggregation weights w_i per row (loss = Σ_i w_i Σ_t m ℓ) and the normalizer actually used.
struct RowWeights {
  std::vector<float> w;
  std::vector<double> counts;  // Σ_t m per row, filled only when a mask exists and counts are needed
  double normalizer = 0.0;
};
RowWeights row_weights(const PgLossInputs& in);

// The fused sweep over rows with precomputed weights: loss (may be null), dlogp (may be null), stats.
void run_rows(float* loss, float* dlogp, double* stats, const PgLossInputs& in, const RowWeights& rw);

}  // namespace qgs::pg_detail
