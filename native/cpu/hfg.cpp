// HFG grouped attention on the CPU (contract in qgs/hfg.h). One (n, h) pair is a "row": its Tq
// queries attend over the same Tk keys. Rows are independent, so the pool splits rows; a row's work
// is tiny (Tq·Tk·d ≈ 3k multiply-adds for the HFG shapes), so a chunk holds many rows and everything
// a row touches stays in L1.
//
// Vectorisation (the entry points carry QGS_SIMD_CLONES: AVX-512 / AVX2 / baseline picked at run time):
//  * the head dimension is a compile-time constant for d ∈ {8, 16, 32, 64} (a generic path serves any
//    other d), so dot products and axpys over d unroll fully and the per-query accumulator stays in
//    registers — with d only known at run time the short vector loops were dominated by their
//    prologue/remainder code (measured with callgrind);
//  * softmax: a branch-free polynomial exp over the key block padded to 16 (masked and padding keys
//    carry a -inf bias and come out exactly 0) instead of Tk scalar libm calls.
#include "qgs/hfg.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "qgs/parallel.h"

// The selects in the softmax (clamp, masked → 0) are floating-point comparisons; under the default
// -ftrapping-math GCC will not if-convert them and the loops stay scalar. Nothing here relies on FP
// exception flags, so this file opts out (the build flags are shared, hence the pragma).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

namespace qgs {

void hfg_check_sizes(int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d) {
  require(N >= 0, "groupedAttention: N (rows) must be >= 0, got " + std::to_string(N));
  require(H >= 1, "groupedAttention: H (heads) must be >= 1, got " + std::to_string(H));
  require(Tq >= 1, "groupedAttention: Tq (queries) must be >= 1, got " + std::to_string(Tq));
  require(Tk >= 1 && Tk <= kHfgMaxKeys, "groupedAttention: Tk (keys) must be in [1, " + std::to_string(kHfgMaxKeys) +
                                           "], got " + std::to_string(Tk));
  require(d >= 1 && d <= kHfgMaxHeadDim, "groupedAttention: d (head dim) must be in [1, " +
                                             std::to_string(kHfgMaxHeadDim) + "], got " + std::to_string(d));
}

namespace cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kBlock = 16;  // softmax runs over keys padded to a multiple of this

#if defined(__GNUC__)
#define QGS_HFG_INLINE inline __attribute__((always_inline))
#else
#define QGS_HFG_INLINE inline
#endif

// Rows per parallel chunk: about 32k multiply-adds, so small batches still split and large ones do
// not pay per-chunk overhead.
int64_t row_grain(int64_t Tq, int64_t Tk, int64_t d) { return std::max<int64_t>(1, 32768 / (Tq * Tk * d)); }

inline int64_t padded_keys(int64_t Tk) { return (Tk + kBlock - 1) / kBlock * kBlock; }

// 0 for present keys, -inf for masked keys and for the padding up to KP.
QGS_HFG_INLINE void row_bias(float* bias, const float* m, int64_t Tk, int64_t KP) {
  for (int64_t j = 0; j < KP; ++j) bias[j] = (j < Tk && (m == nullptr || m[j] != 0.f)) ? 0.f : kNegInf;
}

QGS_HFG_INLINE float dot(const float* QGS_RESTRICT a, const float* QGS_RESTRICT b, int64_t d) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t c = 0; c < d; ++c) acc += a[c] * b[c];
  return acc;
}

// p[j] = exp(x[j]) for x[j] <= 0, j < n: Cephes expf (range reduction by ln 2, degree-6 polynomial,
// ~1 ulp) written branch-free so it vectorises; the 2^k factor is built from exponent bits.
// x < -87.3 (including -inf for masked keys) gives exactly 0.
QGS_HFG_INLINE void exp_nonpositive(float* QGS_RESTRICT p, const float* QGS_RESTRICT x, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float xj = x[j];
    const float xc = xj < -87.3f ? -87.3f : xj;
    const float k = std::floor(xc * 1.44269504088896341f + 0.5f);
    const float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
    float t = 1.9875691500e-4f;
    t = t * r + 1.3981999507e-3f;
    t = t * r + 8.3334519073e-3f;
    t = t * r + 4.1665795894e-2f;
    t = t * r + 1.6666665459e-1f;
    t = t * r + 5.0000001201e-1f;
    const float y = t * r * r + r + 1.f;
    union {
      int32_t i;
      float f;
    } pow2;
    pow2.i = (static_cast<int32_t>(k) + 127) << 23;  // 2^k, k in [-126, 0]
    p[j] = xj < -87.3f ? 0.f : y * pow2.f;
  }
}

// p ← softmax over the padded key block of scale · s + bias (s is not modified). Returns false when
// every key is masked (p is then undefined).
QGS_HFG_INLINE bool masked_softmax(float* QGS_RESTRICT p, float* QGS_RESTRICT s, const float* QGS_RESTRICT bias,
                                   int64_t KP, float scale) {
  float mx = kNegInf;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < KP; ++j) {
    s[j] = s[j] * scale + bias[j];
    mx = s[j] > mx ? s[j] : mx;
  }
  if (mx == kNegInf) return false;
#pragma omp simd
  for (int64_t j = 0; j < KP; ++j) s[j] -= mx;
  exp_nonpositive(p, s, KP);
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < KP; ++j) sum += p[j];
  const float inv = 1.f / sum;  // sum >= 1: the max key contributes exp(0)
#pragma omp simd
  for (int64_t j = 0; j < KP; ++j) p[j] *= inv;
  return true;
}

// DC > 0: the head dimension is the compile-time constant DC, so every loop over it unrolls and the
// per-query accumulators stay in registers (these are the sizes HFG models use). DC == 0: any d.
template <int DC>
QGS_HFG_INLINE void forward_rows_impl(int64_t r0, int64_t r1, float* out, const float* q, const float* k,
                                      const float* v, const float* key_mask, int64_t H, int64_t Tq, int64_t Tk,
                                      int64_t d_rt, float scale) {
  const int64_t d = DC > 0 ? DC : d_rt;
  const int64_t KP = padded_keys(Tk);
  alignas(64) float bias[kHfgMaxKeys], s[kHfgMaxKeys], p[kHfgMaxKeys];
  alignas(64) float acc[DC > 0 ? DC : kHfgMaxHeadDim];
  for (int64_t j = 0; j < KP; ++j) s[j] = 0.f;  // padding scores (masked by the bias)
  for (int64_t r = r0; r < r1; ++r) {
    row_bias(bias, key_mask != nullptr ? key_mask + (r / H) * Tk : nullptr, Tk, KP);
    const float* kr = k + r * Tk * d;
    const float* vr = v + r * Tk * d;
    for (int64_t i = 0; i < Tq; ++i) {
      const float* QGS_RESTRICT qi = q + (r * Tq + i) * d;
      float* QGS_RESTRICT oi = out + (r * Tq + i) * d;
      for (int64_t j = 0; j < Tk; ++j) s[j] = dot(qi, kr + j * d, d);
      for (int64_t j = Tk; j < KP; ++j) s[j] = 0.f;
      for (int64_t c = 0; c < d; ++c) acc[c] = 0.f;
      if (masked_softmax(p, s, bias, KP, scale)) {  // else every key is masked: zeros
        for (int64_t j = 0; j < Tk; ++j) {
          const float pj = p[j];
          const float* QGS_RESTRICT vj = vr + j * d;
#pragma omp simd
          for (int64_t c = 0; c < d; ++c) acc[c] += pj * vj[c];
        }
      }
      for (int64_t c = 0; c < d; ++c) oi[c] = acc[c];
    }
  }
}

template <int DC>
QGS_HFG_INLINE void backward_rows_impl(int64_t r0, int64_t r1, float* dq, float* dk, float* dv, const float* dout,
                                       const float* q, const float* k, const float* v, const float* key_mask,
                                       int64_t H, int64_t Tq, int64_t Tk, int64_t d_rt, float scale) {
  const int64_t d = DC > 0 ? DC : d_rt;
  const int64_t KP = padded_keys(Tk);
  alignas(64) float bias[kHfgMaxKeys], s[kHfgMaxKeys], p[kHfgMaxKeys], dp[kHfgMaxKeys];
  alignas(64) float acc[DC > 0 ? DC : kHfgMaxHeadDim];
  for (int64_t r = r0; r < r1; ++r) {
    row_bias(bias, key_mask != nullptr ? key_mask + (r / H) * Tk : nullptr, Tk, KP);
    const float* kr = k + r * Tk * d;
    const float* vr = v + r * Tk * d;
    float* dkr = dk + r * Tk * d;
    float* dvr = dv + r * Tk * d;
    for (int64_t x = 0; x < Tk * d; ++x) dkr[x] = 0.f, dvr[x] = 0.f;
    for (int64_t i = 0; i < Tq; ++i) {
      const float* QGS_RESTRICT qi = q + (r * Tq + i) * d;
      const float* QGS_RESTRICT doi = dout + (r * Tq + i) * d;
      float* QGS_RESTRICT dqi = dq + (r * Tq + i) * d;
      for (int64_t j = 0; j < Tk; ++j) s[j] = dot(qi, kr + j * d, d);
      for (int64_t j = Tk; j < KP; ++j) s[j] = 0.f;
      for (int64_t c = 0; c < d; ++c) acc[c] = 0.f;
      if (masked_softmax(p, s, bias, KP, scale)) {  // else fully masked: zero gradients
        float D = 0.f;
        for (int64_t j = 0; j < Tk; ++j) {
          dp[j] = dot(doi, vr + j * d, d);
          D += p[j] * dp[j];  // masked keys have p = 0
        }
        for (int64_t j = 0; j < Tk; ++j) {
          const float pj = p[j];
          if (pj == 0.f) continue;  // masked (or underflowed) keys contribute nothing
          const float a = scale * pj * (dp[j] - D);
          const float* QGS_RESTRICT kj = kr + j * d;
          float* QGS_RESTRICT dkj = dkr + j * d;
          float* QGS_RESTRICT dvj = dvr + j * d;
#pragma omp simd
          for (int64_t c = 0; c < d; ++c) {
            acc[c] += a * kj[c];
            dkj[c] += a * qi[c];
            dvj[c] += pj * doi[c];
          }
        }
      }
      for (int64_t c = 0; c < d; ++c) dqi[c] = acc[c];
    }
  }
}

// One cloned (AVX-512 / AVX2 / baseline) entry per direction; the switch picks a specialisation.
QGS_SIMD_CLONES
void forward_rows(int64_t r0, int64_t r1, float* out, const float* q, const float* k, const float* v,
                  const float* m, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale) {
  switch (d) {
    case 8: return forward_rows_impl<8>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale);
    case 16: return forward_rows_impl<16>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale);
    case 32: return forward_rows_impl<32>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale);
    case 64: return forward_rows_impl<64>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale);
    default: return forward_rows_impl<0>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale);
  }
}

QGS_SIMD_CLONES
void backward_rows(int64_t r0, int64_t r1, float* dq, float* dk, float* dv, const float* dout, const float* q,
                   const float* k, const float* v, const float* m, int64_t H, int64_t Tq, int64_t Tk, int64_t d,
                   float scale) {
  switch (d) {
    case 8: return backward_rows_impl<8>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale);
    case 16: return backward_rows_impl<16>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale);
    case 32: return backward_rows_impl<32>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale);
    case 64: return backward_rows_impl<64>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale);
    default: return backward_rows_impl<0>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale);
  }
}

}  // namespace

void grouped_attention_forward(float* out, const float* q, const float* k, const float* v, const float* key_mask,
                               int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale) {
  hfg_check_sizes(N, H, Tq, Tk, d);
  require(std::isfinite(scale), "groupedAttention: scale must be finite");
  if (N == 0) return;
  require(out && q && k && v, "groupedAttention: out, q, k and v must be non-null");
  parallel_for(N * H, row_grain(Tq, Tk, d), [&](int64_t b, int64_t e) {
    forward_rows(b, e, out, q, k, v, key_mask, H, Tq, Tk, d, scale);
  });
}

void grouped_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, const float* key_mask, int64_t N, int64_t H, int64_t Tq, int64_t Tk,
                                int64_t d, float scale) {
  hfg_check_sizes(N, H, Tq, Tk, d);
  require(std::isfinite(scale), "groupedAttention backward: scale must be finite");
  if (N == 0) return;
  require(dq && dk && dv && dout && q && k && v, "groupedAttention backward: dq, dk, dv, dout, q, k and v must be non-null");
  parallel_for(N * H, row_grain(Tq, Tk, d), [&](int64_t b, int64_t e) {
    backward_rows(b, e, dq, dk, dv, dout, q, k, v, key_mask, H, Tq, Tk, d, scale);
  });
}

}  // namespace cpu
}  // namespace qgs
