// Fused inference of one HFG-Attention layer read out at token 0 (contract in qgs/hfg.h). This is
// the serving fast path of the ranking head: the composed ops run ~25 native calls over [N, T, D]
// tensors (each allocating, page-faulting and re-reading its operands); here a tile of candidates
// goes through LayerNorm → Q/K/V → attention → Wo → LayerNorm → FFN → LayerNorm while its tokens
// stay in L1/L2, and only the [N, D] result is written.
//
// Tiles of kTile candidates are independent, so the pool splits them. The products are the register-
// blocked tile GEMMs of tile_gemm.h (BLAS must not be called inside parallel_for) on weights that
// are transposed and zero-padded to 16 columns once per call. Only token 0 needs a query, an output
// projection and the FFN, so those run on kTile rows, the key/value projections on kTile·T rows.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "qgs/hfg.h"
#include "qgs/parallel.h"
#include "tile_gemm.h"

// Same reason as in hfg.cpp: the masked selects only vectorise without trapping math.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include "hfg_simd.h"

namespace qgs {

void hfg_context_layer_check(int64_t N, int64_t T, int64_t D, int64_t H, int64_t F, const HfgContextLayerWeights& w) {
  const std::string op = "hfgContextLayer: ";
  QGS_REQUIRE(N >= 0, op + "N (candidates) must be >= 0, got " + std::to_string(N));
  QGS_REQUIRE(T >= 1 && T <= kHfgMaxKeys, op + "T (tokens) must be in [1, " + std::to_string(kHfgMaxKeys) + "], got " + std::to_string(T));
  QGS_REQUIRE(D >= 1 && D <= 4096, op + "D (width) must be in [1, 4096], got " + std::to_string(D));
  QGS_REQUIRE(H >= 1 && D % H == 0 && D / H <= kHfgMaxHeadDim,
              op + "H (heads) must divide D with D / H <= " + std::to_string(kHfgMaxHeadDim) + ", got H = " +
                      std::to_string(H) + ", D = " + std::to_string(D));
  QGS_REQUIRE(F >= 1 && F <= 65536, op + "F (FFN width) must be in [1, 65536], got " + std::to_string(F));
  QGS_REQUIRE(w.wqkv && w.wo && w.w1 && w.w2, op + "the weights wqkv, wo, w1 and w2 must be non-null");
  QGS_REQUIRE(w.eps1 > 0 && w.eps2 > 0 && w.eps_out > 0 && std::isfinite(w.eps1) && std::isfinite(w.eps2) &&
                  std::isfinite(w.eps_out),
              op + "LayerNorm eps must be positive and finite");
  const int a = static_cast<int>(w.activation);
  QGS_REQUIRE(a >= 0 && a <= 3, op + "activation must be relu, gelu, silu or tanh (0..3), got " + std::to_string(a));
}

namespace cpu {
namespace {

using namespace hfg_simd;
using tile::r16;

constexpr int64_t kTile = 32;  // candidates per tile: kTile·T token rows of scratch, L2-resident

// y = LN(x) over n values (two passes in float: n is a token width, not a long reduction).
QGS_HFG_INLINE void layer_norm_row(float* QGS_RESTRICT y, const float* QGS_RESTRICT x, const float* w, const float* b,
                                   int64_t n, float eps) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  const float mu = s / static_cast<float>(n);
  float v = 0.f;
#pragma omp simd reduction(+ : v)
  for (int64_t i = 0; i < n; ++i) v += (x[i] - mu) * (x[i] - mu);
  const float rs = 1.f / __builtin_sqrtf(v / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mu) * rs * (w ? w[i] : 1.f) + (b ? b[i] : 0.f);
}

// x ← act(x + bias) over n values. GELU is the exact erf form, 0.5·x·erfc(−x/√2), with erfc from the
// Numerical Recipes Chebyshev fit (relative error < 1.2e-7 for all arguments, so the negative tail is
// as accurate as the composed op's libm erfc); every exp argument is ≤ 0, so all four activations
// share the vectorised exp_nonpositive. `e` is scratch of 3n floats.
QGS_HFG_INLINE void activate(float* QGS_RESTRICT x, const float* bias, int64_t n, HfgActivation act,
                             float* QGS_RESTRICT e) {
  if (bias)
    for (int64_t i = 0; i < n; ++i) x[i] += bias[i];
  switch (act) {
    case HfgActivation::Relu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.f ? x[i] : 0.f;
      return;
    case HfgActivation::Gelu: {
      float* QGS_RESTRICT r = e + n;
      float* QGS_RESTRICT t = e + 2 * n;
      for (int64_t i = 0; i < n; ++i) {
        const float z = __builtin_fabsf(x[i]) * 0.70710678118654752f;
        const float ti = 1.f / (1.f + 0.5f * z);
        t[i] = ti;
        const float p =
            -1.26551223f +
            ti * (1.00002368f +
                  ti * (0.37409196f +
                        ti * (0.09678418f +
                              ti * (-0.18628806f +
                                    ti * (0.27886807f + ti * (-1.13520398f + ti * (1.48851587f + ti * (-0.82215223f + ti * 0.17087277f))))))));
        const float a = p - z * z;
        e[i] = a < 0.f ? a : 0.f;
      }
      exp_nonpositive(r, e, n);
      for (int64_t i = 0; i < n; ++i) {
        const float c = t[i] * r[i];  // erfc(|x|/√2)
        x[i] = 0.5f * x[i] * (x[i] >= 0.f ? 2.f - c : c);
      }
      return;
    }
    case HfgActivation::Silu: {
      float* QGS_RESTRICT r = e + n;
      for (int64_t i = 0; i < n; ++i) e[i] = -__builtin_fabsf(x[i]);
      exp_nonpositive(r, e, n);
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] * (x[i] >= 0.f ? 1.f : r[i]) / (1.f + r[i]);
      return;
    }
    case HfgActivation::Tanh: {
      float* QGS_RESTRICT r = e + n;
      for (int64_t i = 0; i < n; ++i) e[i] = -2.f * __builtin_fabsf(x[i]);
      exp_nonpositive(r, e, n);
      for (int64_t i = 0; i < n; ++i) {
        const float th = (1.f - r[i]) / (1.f + r[i]);
        x[i] = x[i] >= 0.f ? th : -th;
      }
      return;
    }
  }
}

// W [out, in] → Wᵀ padded to [in, r16(out)] (zero columns beyond `out`), for tile::mm's B operand.
std::vector<float> transposed_padded(const float* w, int64_t out, int64_t in) {
  const int64_t ld = r16(out);
  std::vector<float> t(static_cast<size_t>(in * ld), 0.f);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) t[i * ld + o] = w[o * in + i];
  return t;
}

struct Prepared {
  std::vector<float> wq, wk, wv, wo, w1, w2;  // transposed + padded
};

struct Scratch {
  std::vector<float> y, k, v, q, a, x1, z, f, e, s, p, bias;
};

QGS_SIMD_CLONES
void tile_forward(int64_t n0, int64_t nc, float* out, const float* x, const float* key_mask,
                  const HfgContextLayerWeights& w, const Prepared& pw, Scratch& sc, int64_t T, int64_t D, int64_t H,
                  int64_t F) {
  const int64_t Dp = r16(D), Fp = r16(F), dh = D / H, KP = padded_keys(T);
  const int64_t rows = nc * T;
  const float scale = 1.f / __builtin_sqrtf(static_cast<float>(dh));
  float* y = sc.y.data();
  // LN1 of every token of the tile: rows of Dp floats, padding columns stay 0 (set at allocation).
  for (int64_t r = 0; r < rows; ++r) layer_norm_row(y + r * Dp, x + (n0 * T + r) * D, w.ln1_w, w.ln1_b, D, w.eps1);
  // K, V for all tokens; Q for token 0 only (rows T·Dp apart).
  tile::mm(sc.k.data(), Dp, y, Dp, pw.wk.data(), Dp, rows, D, Dp, false);
  tile::mm(sc.v.data(), Dp, y, Dp, pw.wv.data(), Dp, rows, D, Dp, false);
  tile::mm(sc.q.data(), Dp, y, T * Dp, pw.wq.data(), Dp, nc, D, Dp, false);
  const float* bq = w.bqkv;
  const float* bk = w.bqkv ? w.bqkv + D : nullptr;
  const float* bv = w.bqkv ? w.bqkv + 2 * D : nullptr;
  if (w.bqkv) {
    for (int64_t r = 0; r < rows; ++r) {
      float* kr = sc.k.data() + r * Dp;
      float* vr = sc.v.data() + r * Dp;
      for (int64_t c = 0; c < D; ++c) {
        kr[c] += bk[c];
        vr[c] += bv[c];
      }
    }
    for (int64_t i = 0; i < nc; ++i)
      for (int64_t c = 0; c < D; ++c) sc.q[i * Dp + c] += bq[c];
  }
  // Attention of token 0 over the T tokens, per head; a [nc, Dp].
  float* s = sc.s.data();
  float* p = sc.p.data();
  float* bias = sc.bias.data();
  for (int64_t i = 0; i < nc; ++i) {
    row_bias(bias, key_mask ? key_mask + (n0 + i) * T : nullptr, T, KP);
    float* ai = sc.a.data() + i * Dp;
    for (int64_t h = 0; h < H; ++h) {
      const float* qh = sc.q.data() + i * Dp + h * dh;
      for (int64_t t = 0; t < KP; ++t) s[t] = 0.f;
      for (int64_t t = 0; t < T; ++t) {
        const float* kt = sc.k.data() + (i * T + t) * Dp + h * dh;
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (int64_t c = 0; c < dh; ++c) acc += qh[c] * kt[c];
        s[t] = acc;
      }
      float* ah = ai + h * dh;
      for (int64_t c = 0; c < dh; ++c) ah[c] = 0.f;
      if (!masked_softmax(p, s, bias, KP, scale)) continue;  // every key masked: a = 0
      for (int64_t t = 0; t < T; ++t) {
        const float pt = p[t];
        const float* vt = sc.v.data() + (i * T + t) * Dp + h * dh;
#pragma omp simd
        for (int64_t c = 0; c < dh; ++c) ah[c] += pt * vt[c];
      }
    }
  }
  // x1 = x_0 + Wo a + bo; z = LN2(x1).
  tile::mm(sc.x1.data(), Dp, sc.a.data(), Dp, pw.wo.data(), Dp, nc, D, Dp, false);
  for (int64_t i = 0; i < nc; ++i) {
    float* x1 = sc.x1.data() + i * Dp;
    const float* x0 = x + (n0 + i) * T * D;
    for (int64_t c = 0; c < D; ++c) x1[c] += x0[c] + (w.bo ? w.bo[c] : 0.f);
    layer_norm_row(sc.z.data() + i * Dp, x1, w.ln2_w, w.ln2_b, D, w.eps2);
  }
  // FFN: f = act(W1 z + b1) [nc, Fp]; x1 += W2 f + b2 (accumulated into x1 by the GEMM).
  tile::mm(sc.f.data(), Fp, sc.z.data(), Dp, pw.w1.data(), Fp, nc, D, Fp, false);
  for (int64_t i = 0; i < nc; ++i) activate(sc.f.data() + i * Fp, w.b1, F, w.activation, sc.e.data());
  tile::mm(sc.x1.data(), Dp, sc.f.data(), Fp, pw.w2.data(), Dp, nc, F, Dp, true);
  for (int64_t i = 0; i < nc; ++i) {
    float* x1 = sc.x1.data() + i * Dp;
    if (w.b2)
      for (int64_t c = 0; c < D; ++c) x1[c] += w.b2[c];
    layer_norm_row(out + (n0 + i) * D, x1, w.lno_w, w.lno_b, D, w.eps_out);
  }
}

}  // namespace

void hfg_context_layer_forward(float* out, const float* x, const float* key_mask, const HfgContextLayerWeights& w,
                               int64_t N, int64_t T, int64_t D, int64_t H, int64_t F) {
  hfg_context_layer_check(N, T, D, H, F, w);
  if (N == 0) return;
  QGS_REQUIRE(out && x, "hfgContextLayer: out and x must be non-null");
  Prepared pw;
  pw.wq = transposed_padded(w.wqkv, D, D);
  pw.wk = transposed_padded(w.wqkv + D * D, D, D);
  pw.wv = transposed_padded(w.wqkv + 2 * D * D, D, D);
  pw.wo = transposed_padded(w.wo, D, D);
  pw.w1 = transposed_padded(w.w1, F, D);
  pw.w2 = transposed_padded(w.w2, D, F);
  const int64_t Dp = r16(D), Fp = r16(F), KP = padded_keys(T);
  const int64_t tiles = (N + kTile - 1) / kTile;
  parallel_for(tiles, 1, [&](int64_t b, int64_t e) {
    Scratch sc;
    const size_t rows = static_cast<size_t>(kTile * T);
    sc.y.assign(rows * Dp, 0.f);
    sc.k.assign(rows * Dp, 0.f);
    sc.v.assign(rows * Dp, 0.f);
    for (auto* v : {&sc.q, &sc.a, &sc.x1, &sc.z}) v->assign(static_cast<size_t>(kTile * Dp), 0.f);
    sc.f.assign(static_cast<size_t>(kTile * Fp), 0.f);
    sc.e.assign(static_cast<size_t>(3 * Fp), 0.f);
    sc.s.assign(static_cast<size_t>(KP), 0.f);
    sc.p.assign(static_cast<size_t>(KP), 0.f);
    sc.bias.assign(static_cast<size_t>(KP), 0.f);
    for (int64_t t = b; t < e; ++t) {
      const int64_t n0 = t * kTile;
      tile_forward(n0, std::min(kTile, N - n0), out, x, key_mask, w, pw, sc, T, D, H, F);
    }
  });
}

}  // namespace cpu
}  // namespace qgs
