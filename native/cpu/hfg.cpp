// HFG grouped attention on the CPU (contract in qgs/hfg.h). One (n, h) pair is a "row": its Tq
// queries attend over the same Tk keys. Rows are independent, so the pool splits rows; a row's work
// is tiny (Tq·Tk·d ≈ 3k multiply-adds for the HFG shapes), so a chunk holds many rows and everything
// a row touches stays in L1. Inner loops run over the head dimension d (contiguous) and are
// vectorised; the functions carry QGS_SIMD_CLONES so AVX-512 / AVX2 / baseline is picked at run time.
#include "qgs/hfg.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "qgs/parallel.h"

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

// Rows per parallel chunk: about 32k multiply-adds, so small batches still split and large ones do
// not pay per-chunk overhead.
int64_t row_grain(int64_t Tq, int64_t Tk, int64_t d) { return std::max<int64_t>(1, 32768 / (Tq * Tk * d)); }

// Scores of query qi against the row's keys (masked keys get -inf); returns the max over present
// keys (-inf when none is present).
inline float scores(float* QGS_RESTRICT s, const float* QGS_RESTRICT qi, const float* QGS_RESTRICT kr,
                    const float* QGS_RESTRICT m, int64_t Tk, int64_t d, float scale) {
  float mx = kNegInf;
  for (int64_t j = 0; j < Tk; ++j) {
    if (m != nullptr && m[j] == 0.f) {
      s[j] = kNegInf;
      continue;
    }
    const float* kj = kr + j * d;
    float acc = 0.f;
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < d; ++c) acc += qi[c] * kj[c];
    s[j] = acc * scale;
    mx = std::max(mx, s[j]);
  }
  return mx;
}

// Turns scores into probabilities in place (masked keys → 0). mx must be finite or the row is
// treated as fully masked by the caller.
inline void softmax_in_place(float* s, int64_t Tk, float mx) {
  float sum = 0.f;
  for (int64_t j = 0; j < Tk; ++j) {
    s[j] = std::exp(s[j] - mx);  // exp(-inf) = 0 for masked keys
    sum += s[j];
  }
  const float inv = 1.f / sum;  // sum >= 1: the max key contributes exp(0)
  for (int64_t j = 0; j < Tk; ++j) s[j] *= inv;
}

QGS_SIMD_CLONES
void forward_rows(int64_t r0, int64_t r1, float* out, const float* q, const float* k, const float* v,
                  const float* key_mask, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale) {
  float p[kHfgMaxKeys];
  for (int64_t r = r0; r < r1; ++r) {
    const float* m = key_mask != nullptr ? key_mask + (r / H) * Tk : nullptr;
    const float* kr = k + r * Tk * d;
    const float* vr = v + r * Tk * d;
    for (int64_t i = 0; i < Tq; ++i) {
      const float* qi = q + (r * Tq + i) * d;
      float* QGS_RESTRICT oi = out + (r * Tq + i) * d;
      for (int64_t c = 0; c < d; ++c) oi[c] = 0.f;
      const float mx = scores(p, qi, kr, m, Tk, d, scale);
      if (mx == kNegInf) continue;  // every key masked: the output stays zero
      softmax_in_place(p, Tk, mx);
      for (int64_t j = 0; j < Tk; ++j) {
        const float w = p[j];
        if (w == 0.f) continue;
        const float* QGS_RESTRICT vj = vr + j * d;
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) oi[c] += w * vj[c];
      }
    }
  }
}

QGS_SIMD_CLONES
void backward_rows(int64_t r0, int64_t r1, float* dq, float* dk, float* dv, const float* dout, const float* q,
                   const float* k, const float* v, const float* key_mask, int64_t H, int64_t Tq, int64_t Tk,
                   int64_t d, float scale) {
  float p[kHfgMaxKeys], dp[kHfgMaxKeys];
  for (int64_t r = r0; r < r1; ++r) {
    const float* m = key_mask != nullptr ? key_mask + (r / H) * Tk : nullptr;
    const float* kr = k + r * Tk * d;
    const float* vr = v + r * Tk * d;
    float* dkr = dk + r * Tk * d;
    float* dvr = dv + r * Tk * d;
    std::fill(dkr, dkr + Tk * d, 0.f);
    std::fill(dvr, dvr + Tk * d, 0.f);
    for (int64_t i = 0; i < Tq; ++i) {
      const float* QGS_RESTRICT qi = q + (r * Tq + i) * d;
      const float* QGS_RESTRICT doi = dout + (r * Tq + i) * d;
      float* QGS_RESTRICT dqi = dq + (r * Tq + i) * d;
      for (int64_t c = 0; c < d; ++c) dqi[c] = 0.f;
      const float mx = scores(p, qi, kr, m, Tk, d, scale);
      if (mx == kNegInf) continue;  // fully masked: zero gradients
      softmax_in_place(p, Tk, mx);
      float D = 0.f;
      for (int64_t j = 0; j < Tk; ++j) {
        dp[j] = 0.f;
        if (p[j] == 0.f) continue;
        const float* vj = vr + j * d;
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (int64_t c = 0; c < d; ++c) acc += doi[c] * vj[c];
        dp[j] = acc;
        D += p[j] * acc;
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
          dqi[c] += a * kj[c];
          dkj[c] += a * qi[c];
          dvj[c] += pj * doi[c];
        }
      }
    }
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
