// Internal helpers shared by the two CPU entry points of the pgloss family (pgloss.cpp and
// fused_linear_pg.cpp). Not part of the kernel API.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "qgs/pgloss.h"

namespace qgs::pg_detail {

// exp(x) for x in about [−87, 88] (inputs are clamped), Cephes' expf polynomial (≈1 ulp). Written
// branch-free so the compiler vectorises loops that call it: libm's expf does not vectorise
// without -ffast-math, and this loop is the whole cost of the memory-bound loss.
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float k = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ki = static_cast<int32_t>(k) + 127;
  const int32_t bits = ki << 23;
  float s;
  std::memcpy(&s, &bits, sizeof s);
  return p * s;
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
