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
#include <vector>

#include "qgs/parallel.h"

// The selects in the softmax (clamp, masked → 0) are floating-point comparisons; under the default
// -ftrapping-math GCC will not if-convert them and the loops stay scalar. Nothing here relies on FP
// exception flags, so this file opts out (the build flags are shared, hence the pragma). Functions
// from headers keep the default options and GCC will not inline them across the mismatch, so the
// hot loops use builtins (__builtin_floorf), not <cmath> wrappers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
// The 8-wide vector helpers below are always inlined, so no v8f crosses a call boundary and the
// baseline clone's "AVX vector return without AVX changes the ABI" note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include "hfg_simd.h"

namespace qgs {

void hfg_check_sizes(int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d) {
  QGS_REQUIRE(N >= 0, "groupedAttention: N (rows) must be >= 0, got " + std::to_string(N));
  QGS_REQUIRE(H >= 1, "groupedAttention: H (heads) must be >= 1, got " + std::to_string(H));
  QGS_REQUIRE(Tq >= 1, "groupedAttention: Tq (queries) must be >= 1, got " + std::to_string(Tq));
  QGS_REQUIRE(Tk >= 1 && Tk <= kHfgMaxKeys, "groupedAttention: Tk (keys) must be in [1, " + std::to_string(kHfgMaxKeys) +
                                               "], got " + std::to_string(Tk));
  QGS_REQUIRE(d >= 1 && d <= kHfgMaxHeadDim, "groupedAttention: d (head dim) must be in [1, " +
                                                 std::to_string(kHfgMaxHeadDim) + "], got " + std::to_string(d));
}

namespace cpu {
namespace {

// Rows per parallel chunk: about 256k multiply-adds (~50 rows of the HFG shapes), so small batches
// still split and large ones do not pay per-chunk overhead (scratch allocation, padding zero-fill).
int64_t row_grain(int64_t Tq, int64_t Tk, int64_t d) { return std::max<int64_t>(1, 262144 / (Tq * Tk * d)); }

using namespace hfg_simd;

// xT[c * KP + j] = x[j * d + c] for j < Tk: a row's keys (or values) laid out so that one query's
// scores over a 16-key block are 16-wide FMAs with a broadcast query element — no horizontal sums (a
// dot product per key spent more on its horizontal reduction than on the FMAs). The padded keys
// j >= Tk are zeroed once per chunk by zero_padding (they are never written here).
template <int DC>
QGS_HFG_INLINE void transpose_keys(float* QGS_RESTRICT xT, const float* QGS_RESTRICT x, int64_t Tk, int64_t KP,
                                   int64_t d_rt) {
  const int64_t d = DC > 0 ? DC : d_rt;
  for (int64_t j = 0; j < Tk; ++j) {
    const float* QGS_RESTRICT xj = x + j * d;
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) xT[c * KP + j] = xj[c];
  }
}

inline void zero_padding(float* xT, int64_t Tk, int64_t KP, int64_t d) {
  for (int64_t c = 0; c < d; ++c)
    for (int64_t j = Tk; j < KP; ++j) xT[c * KP + j] = 0.f;
}

// s_q[j] = ⟨a_q, x_j⟩ for NQ vectors a_q (rows of a, d apart; results rows of s, KP apart) and all
// KP (padded) keys, from the transposed block xT. NQ vectors at once: 2·NQ independent FMA chains
// per 16-key block (one chain is bound by the FMA latency) and each xT load serves NQ FMAs.
template <int DC, int NQ>
QGS_HFG_INLINE void scores(float* QGS_RESTRICT s, const float* QGS_RESTRICT a, const float* QGS_RESTRICT xT,
                           int64_t KP, int64_t d_rt) {
  const int64_t d = DC > 0 ? DC : d_rt;
  for (int64_t b = 0; b < KP; b += kBlock) {
    alignas(64) float sb[NQ][kBlock] = {};
    for (int64_t c = 0; c < d; ++c) {
      const float* QGS_RESTRICT xc = xT + c * KP + b;
      for (int qq = 0; qq < NQ; ++qq) {
        const float ac = a[qq * d + c];
#pragma omp simd
        for (int64_t jj = 0; jj < kBlock; ++jj) sb[qq][jj] += ac * xc[jj];
      }
    }
    for (int qq = 0; qq < NQ; ++qq) {
#pragma omp simd
      for (int64_t jj = 0; jj < kBlock; ++jj) s[qq * KP + b + jj] = sb[qq][jj];
    }
  }
}

// scores for n vectors: blocks of 4, then the remainder one at a time.
template <int DC>
QGS_HFG_INLINE void scores_n(float* QGS_RESTRICT s, const float* QGS_RESTRICT a, const float* QGS_RESTRICT xT,
                             int64_t n, int64_t KP, int64_t d_rt) {
  const int64_t d = DC > 0 ? DC : d_rt;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) scores<DC, 4>(s + i * KP, a + i * d, xT, KP, d);
  for (; i < n; ++i) scores<DC, 1>(s + i * KP, a + i * d, xT, KP, d);
}

// [x0+x1, x2+x3, y0+y1, y2+y3 | x4+x5, x6+x7, y4+y5, y6+y7] (vhaddps).
QGS_HFG_INLINE v8f hadd8(v8f x, v8f y) {
  return __builtin_shufflevector(x, y, 0, 2, 8, 10, 4, 6, 12, 14) +
         __builtin_shufflevector(x, y, 1, 3, 9, 11, 5, 7, 13, 15);
}

// Lane j of the result = the sum of the lanes of a[j].
QGS_HFG_INLINE v8f reduce8(const v8f* a) {
  const v8f c0 = hadd8(hadd8(a[0], a[1]), hadd8(a[2], a[3]));
  const v8f c1 = hadd8(hadd8(a[4], a[5]), hadd8(a[6], a[7]));
  return __builtin_shufflevector(c0, c1, 0, 1, 2, 3, 8, 9, 10, 11) +
         __builtin_shufflevector(c0, c1, 4, 5, 6, 7, 12, 13, 14, 15);
}

// out = Σ_{j < n} w[j·stride] · x_j (rows of x are d wide), accumulated in registers and stored
// once. The fixed head dims keep the accumulator in v8f registers: a zeroed stack array compiled
// to a `rep stos` per call, ~11% of the backward kernel.
template <int DC>
QGS_HFG_INLINE void weighted_rows(float* QGS_RESTRICT out, const float* QGS_RESTRICT w, const float* QGS_RESTRICT x,
                                  int64_t stride, int64_t n, int64_t d_rt) {
  if constexpr (DC > 0 && DC % 8 == 0) {
    (void)d_rt;
    constexpr int V = DC / 8;
    v8f acc[V];
    for (int c = 0; c < V; ++c) acc[c] = v8f{};
    for (int64_t j = 0; j < n; ++j) {
      const float wj = w[j * stride];
      const float* xj = x + j * DC;
      for (int c = 0; c < V; ++c) acc[c] += wj * load8(xj + 8 * c);
    }
    for (int c = 0; c < V; ++c) store8(out + 8 * c, acc[c]);
  } else {
    const int64_t d = DC > 0 ? DC : d_rt;
    alignas(64) float acc[DC > 0 ? DC : kHfgMaxHeadDim];
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) acc[c] = 0.f;
    for (int64_t j = 0; j < n; ++j) {
      const float wj = w[j * stride];
      const float* QGS_RESTRICT xj = x + j * d;
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) acc[c] += wj * xj[c];
    }
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) out[c] = acc[c];
  }
}

// weighted_rows for two outputs over the same n rows at once (dk_j and dv_j): twice the independent
// accumulator chains per loop, half the loop overhead.
template <int DC>
QGS_HFG_INLINE void weighted_rows2(float* QGS_RESTRICT out1, float* QGS_RESTRICT out2, const float* QGS_RESTRICT w1,
                                   const float* QGS_RESTRICT w2, const float* QGS_RESTRICT x1,
                                   const float* QGS_RESTRICT x2, int64_t stride, int64_t n, int64_t d_rt) {
  if constexpr (DC > 0 && DC % 8 == 0) {
    (void)d_rt;
    constexpr int V = DC / 8;
    v8f acc1[V], acc2[V];
    for (int c = 0; c < V; ++c) acc1[c] = v8f{}, acc2[c] = v8f{};
    for (int64_t j = 0; j < n; ++j) {
      const float a = w1[j * stride], b = w2[j * stride];
      const float* x1j = x1 + j * DC;
      const float* x2j = x2 + j * DC;
      for (int c = 0; c < V; ++c) {
        acc1[c] += a * load8(x1j + 8 * c);
        acc2[c] += b * load8(x2j + 8 * c);
      }
    }
    for (int c = 0; c < V; ++c) store8(out1 + 8 * c, acc1[c]), store8(out2 + 8 * c, acc2[c]);
  } else {
    weighted_rows<DC>(out1, w1, x1, stride, n, d_rt);
    weighted_rows<DC>(out2, w2, x2, stride, n, d_rt);
  }
}

// Fixed head dimensions (multiples of 8): dot products on 8-wide vectors with the horizontal sums of
// eight keys merged into one shuffle tree (GCC/Clang vector extensions: vhaddps-style pairs on AVX2,
// two SSE halves on the baseline clone). No transposed copy of the keys is needed: per query and
// 10 keys this is ~80 instructions where transposing + broadcasting took ~180.
// s[i * KP + j] = ⟨a_i, x_j⟩ for i < n, j < Tk, and 0 for Tk <= j < KP (rows of a and x are DC wide).
template <int DC>
QGS_HFG_INLINE void row_dots(float* QGS_RESTRICT s, const float* QGS_RESTRICT a, const float* QGS_RESTRICT x,
                             int64_t n, int64_t Tk, int64_t KP) {
  static_assert(DC > 0 && DC % 8 == 0, "row_dots needs a head dim that is a multiple of 8");
  constexpr int V = DC / 8;
  for (int64_t i = 0; i < n; ++i) {
    v8f ai[V];
    for (int c = 0; c < V; ++c) ai[c] = load8(a + i * DC + 8 * c);
    for (int64_t j0 = 0; j0 < KP; j0 += 8) {
      v8f acc[8];
      for (int jj = 0; jj < 8; ++jj) {
        v8f t = {};
        if (j0 + jj < Tk) {
          const float* xj = x + (j0 + jj) * DC;
          for (int c = 0; c < V; ++c) t += ai[c] * load8(xj + 8 * c);
        }
        acc[jj] = t;
      }
      store8(s + i * KP + j0, reduce8(acc));
    }
  }
}

// Scores of a row's n vectors against its Tk keys into s (n × KP): row_dots for the fixed head
// dims; any other d (DC == 0) goes through the transposed key block xT (filled by the caller).
template <int DC>
QGS_HFG_INLINE void row_scores(float* QGS_RESTRICT s, const float* QGS_RESTRICT a, const float* QGS_RESTRICT x,
                               const float* QGS_RESTRICT xT, int64_t n, int64_t Tk, int64_t KP, int64_t d) {
  if constexpr (DC > 0) {
    (void)xT;
    (void)d;
    row_dots<DC>(s, a, x, n, Tk, KP);
  } else {
    (void)x;
    scores_n<DC>(s, a, xT, n, KP, d);
  }
}

// DC > 0: the head dimension is the compile-time constant DC, so every loop over it unrolls and the
// per-query accumulators stay in registers (these are the sizes HFG models use). DC == 0: any d.
// S is Tq × KP scratch for the row's scores.
template <int DC>
QGS_HFG_INLINE void forward_rows_impl(int64_t r0, int64_t r1, float* out, const float* q, const float* k,
                                      const float* v, const float* key_mask, int64_t H, int64_t Tq, int64_t Tk,
                                      int64_t d_rt, float scale, float* S) {
  const int64_t d = DC > 0 ? DC : d_rt;
  const int64_t KP = padded_keys(Tk);
  alignas(64) float bias[kHfgMaxKeys], p[kHfgMaxKeys];
  alignas(64) float kT[DC > 0 ? 1 : kHfgMaxHeadDim * kHfgMaxKeys];  // the generic path's transposed keys
  if (DC == 0) zero_padding(kT, Tk, KP, d);
  for (int64_t r = r0; r < r1; ++r) {
    row_bias(bias, key_mask != nullptr ? key_mask + (r / H) * Tk : nullptr, Tk, KP);
    const float* kr = k + r * Tk * d;
    if (DC == 0) transpose_keys<DC>(kT, kr, Tk, KP, d);
    const float* vr = v + r * Tk * d;
    row_scores<DC>(S, q + r * Tq * d, kr, kT, Tq, Tk, KP, d);
    for (int64_t i = 0; i < Tq; ++i) {
      float* QGS_RESTRICT oi = out + (r * Tq + i) * d;
      if (masked_softmax(p, S + i * KP, bias, KP, scale)) {
        weighted_rows<DC>(oi, p, vr, 1, Tk, d);
      } else {  // every key is masked: zeros
        for (int64_t c = 0; c < d; ++c) oi[c] = 0.f;
      }
    }
  }
}

// Backward of one row in two phases, so that every output row is accumulated in registers and
// written once (no zero-fill and read-modify-write of dk/dv per query):
//  1. per query i: recompute p_i (scores + softmax), dp_ij = ⟨do_i, v_j⟩, a_ij = scale·p_ij·(dp_ij − D_i)
//     with D_i = Σ_j p_ij dp_ij; dq_i = Σ_j a_ij k_j. Keep P and A (Tq × KP).
//  2. per key j: dk_j = Σ_i a_ij q_i, dv_j = Σ_i p_ij do_i.
// A masked or underflowed key has p = 0 and so a = 0: it gets zero gradients.
template <int DC>
QGS_HFG_INLINE void backward_rows_impl(int64_t r0, int64_t r1, float* dq, float* dk, float* dv, const float* dout,
                                       const float* q, const float* k, const float* v, const float* key_mask,
                                       int64_t H, int64_t Tq, int64_t Tk, int64_t d_rt, float scale, float* P,
                                       float* A, float* DP) {
  const int64_t d = DC > 0 ? DC : d_rt;
  const int64_t KP = padded_keys(Tk);
  alignas(64) float bias[kHfgMaxKeys];
  // the generic path's transposed keys and values
  alignas(64) float kT[DC > 0 ? 1 : kHfgMaxHeadDim * kHfgMaxKeys], vT[DC > 0 ? 1 : kHfgMaxHeadDim * kHfgMaxKeys];
  if (DC == 0) zero_padding(kT, Tk, KP, d), zero_padding(vT, Tk, KP, d);
  for (int64_t r = r0; r < r1; ++r) {
    row_bias(bias, key_mask != nullptr ? key_mask + (r / H) * Tk : nullptr, Tk, KP);
    const float* kr = k + r * Tk * d;
    const float* vr = v + r * Tk * d;
    if (DC == 0) transpose_keys<DC>(kT, kr, Tk, KP, d), transpose_keys<DC>(vT, vr, Tk, KP, d);
    const float* qr = q + r * Tq * d;
    const float* dor = dout + r * Tq * d;
    row_scores<DC>(A, qr, kr, kT, Tq, Tk, KP, d);    // A holds the scores until a_i overwrites them
    row_scores<DC>(DP, dor, vr, vT, Tq, Tk, KP, d);  // dp_ij = ⟨do_i, v_j⟩
    for (int64_t i = 0; i < Tq; ++i) {
      float* QGS_RESTRICT pi = P + i * KP;
      float* QGS_RESTRICT ai = A + i * KP;
      const float* QGS_RESTRICT dp = DP + i * KP;
      if (!masked_softmax(pi, ai, bias, KP, scale)) {
        for (int64_t j = 0; j < KP; ++j) pi[j] = 0.f;
      }
      v8f Dv = {};
      for (int64_t j = 0; j < KP; j += 8) Dv += load8(pi + j) * load8(dp + j);  // masked / padded keys: p = 0
      const float D = hsum8(Dv);
      for (int64_t j = 0; j < KP; j += 8) store8(ai + j, scale * load8(pi + j) * (load8(dp + j) - D));
      weighted_rows<DC>(dq + (r * Tq + i) * d, ai, kr, 1, Tk, d);
    }
    for (int64_t j = 0; j < Tk; ++j) {
      weighted_rows2<DC>(dk + (r * Tk + j) * d, dv + (r * Tk + j) * d, A + j, P + j, qr, dor, KP, Tq, d);
    }
  }
}

// One cloned (AVX-512 / AVX2 / baseline) entry per direction; the switch picks a specialisation.
QGS_SIMD_CLONES
void forward_rows(int64_t r0, int64_t r1, float* out, const float* q, const float* k, const float* v,
                  const float* m, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale, float* S) {
  switch (d) {
    case 8: return forward_rows_impl<8>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale, S);
    case 16: return forward_rows_impl<16>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale, S);
    case 32: return forward_rows_impl<32>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale, S);
    case 64: return forward_rows_impl<64>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale, S);
    default: return forward_rows_impl<0>(r0, r1, out, q, k, v, m, H, Tq, Tk, d, scale, S);
  }
}

QGS_SIMD_CLONES
void backward_rows(int64_t r0, int64_t r1, float* dq, float* dk, float* dv, const float* dout, const float* q,
                   const float* k, const float* v, const float* m, int64_t H, int64_t Tq, int64_t Tk, int64_t d,
                   float scale, float* P, float* A, float* DP) {
  switch (d) {
    case 8: return backward_rows_impl<8>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale, P, A, DP);
    case 16: return backward_rows_impl<16>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale, P, A, DP);
    case 32: return backward_rows_impl<32>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale, P, A, DP);
    case 64: return backward_rows_impl<64>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale, P, A, DP);
    default: return backward_rows_impl<0>(r0, r1, dq, dk, dv, dout, q, k, v, m, H, Tq, Tk, d, scale, P, A, DP);
  }
}

}  // namespace

void grouped_attention_forward(float* out, const float* q, const float* k, const float* v, const float* key_mask,
                               int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale) {
  hfg_check_sizes(N, H, Tq, Tk, d);
  QGS_REQUIRE(std::isfinite(scale), "groupedAttention: scale must be finite");
  if (N == 0) return;
  QGS_REQUIRE(out && q && k && v, "groupedAttention: out, q, k and v must be non-null");
  // Scores of one row (Tq × padded Tk) per chunk: Tq is unbounded, so heap, not stack.
  const size_t scratch = static_cast<size_t>(Tq * padded_keys(Tk));
  parallel_for(N * H, row_grain(Tq, Tk, d), [&](int64_t b, int64_t e) {
    std::vector<float> S(scratch);
    forward_rows(b, e, out, q, k, v, key_mask, H, Tq, Tk, d, scale, S.data());
  });
}

void grouped_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, const float* key_mask, int64_t N, int64_t H, int64_t Tq, int64_t Tk,
                                int64_t d, float scale) {
  hfg_check_sizes(N, H, Tq, Tk, d);
  QGS_REQUIRE(std::isfinite(scale), "groupedAttention backward: scale must be finite");
  if (N == 0) return;
  QGS_REQUIRE(dq && dk && dv && dout && q && k && v, "groupedAttention backward: dq, dk, dv, dout, q, k and v must be non-null");
  // P, A and DP (Tq × padded Tk each) per chunk: Tq is unbounded, so heap, not stack.
  const size_t scratch = static_cast<size_t>(Tq * padded_keys(Tk));
  parallel_for(N * H, row_grain(Tq, Tk, d), [&](int64_t b, int64_t e) {
    std::vector<float> pa(3 * scratch);
    backward_rows(b, e, dq, dk, dv, dout, q, k, v, key_mask, H, Tq, Tk, d, scale, pa.data(), pa.data() + scratch,
                  pa.data() + 2 * scratch);
  });
}

}  // namespace cpu
}  // namespace qgs
