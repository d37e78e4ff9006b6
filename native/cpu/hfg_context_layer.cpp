// Fused inference of one HFG-Attention layer read out at token 0 (contract in qgs/hfg.h). This is
// the serving fast path of the ranking head: the composed ops run ~25 native calls over [N, T, D]
// tensors (each allocating, page-faulting and re-reading its operands); here a tile of candidates
// goes through LayerNorm → Q/K/V → attention → Wo → LayerNorm → FFN → LayerNorm while its tokens
// stay in L1/L2, and only the [N, D] result is written.
//
// Tiles of kTile candidates are independent, so the pool splits them. The products are the register-
// blocked tile GEMMs of tile_gemm.h (BLAS must not be called inside parallel_for) on weights that
// are transposed and zero-padded to 16 columns once per call. Only token 0 needs a query, an output
// projection and the FFN; its keys and values fold into the query side (see tile_forward), so only
// the LayerNorm and the scores touch all T tokens.
//
// The ranking head (hfg_rank_head_forward) adds the token construction, the match MLP and the logit;
// its weight preparation is kept in a RankHeadPlan (serving makes one per model), and when the group
// projection is block-diagonal its group tokens are handled in feature space (see GroupFold).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "qgs/hfg.h"
#include "qgs/parallel.h"
#include "plan_copy.h"
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

void hfg_rank_head_check(const RankHeadWeights& w, const RankHeadSizes& s) {
  const std::string op = "rankHead: ";
  QGS_REQUIRE(s.G >= 0 && s.G + 2 <= kHfgMaxKeys, op + "G (groups) must be in [0, " + std::to_string(kHfgMaxKeys - 2) + "], got " + std::to_string(s.G));
  hfg_context_layer_check(s.N, s.G + 2, s.D, s.H, s.FF, w.layer);
  QGS_REQUIRE(s.R >= 1 || s.N == 0, op + "R (requests) must be >= 1, got " + std::to_string(s.R));
  QGS_REQUIRE(s.F >= 0 && s.F <= 65536, op + "F (feature columns) must be in [0, 65536], got " + std::to_string(s.F));
  QGS_REQUIRE(s.M >= 1 && s.M <= 65536, op + "M (match width) must be in [1, 65536], got " + std::to_string(s.M));
  QGS_REQUIRE(w.type_emb && w.match_w1 && w.match_w2 && w.logit_w && (s.G == 0 || s.F == 0 || w.group_w),
              op + "type_emb, group_w, match_w1, match_w2 and logit_w must be non-null");
  QGS_REQUIRE(std::isfinite(w.logit_b), op + "logit_b must be finite");
}

namespace cpu {
namespace {

using namespace hfg_simd;
using tile::r16;

constexpr int64_t kTile = 32;  // candidates per tile: kTile·T token rows of scratch, L2-resident

// Runs fn(tile, scratch) for every tile: one pool piece per thread, each with one scratch (zeroed at
// allocation, ~60 KB at the QGS shape), claiming tiles from a shared counter so the load balances.
// (Four pieces per thread, each with its own scratch, zeroed ~0.5 MB per 1,000-candidate head.)
template <class Scr, class Make, class Fn>
void for_each_tile(int64_t tiles, Make make, Fn fn) {
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(tiles, num_threads()), 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      if (next.load(std::memory_order_relaxed) >= tiles) return;  // the other pieces took them all
      Scr sc = make();
      for (int64_t t = next.fetch_add(1); t < tiles; t = next.fetch_add(1)) fn(t, sc);
    }
  });
}

// y = LN(x) over n values (two passes in float: n is a token width, not a long reduction).
QGS_HFG_INLINE void layer_norm_row(float* QGS_RESTRICT y, const float* QGS_RESTRICT x, const float* w, const float* b,
                                   int64_t n, float eps) {
  if ((n & 7) == 0) {
    // Whole 8-lane vectors with shuffle-tree sums (the omp-simd reductions below summed a spilled
    // vector in a chain of 8 scalar adds, twice per row; 7 rows per candidate in the ranking head).
    v8f sv = load8(x);
    for (int64_t i = 8; i < n; i += 8) sv += load8(x + i);
    const float mu = hsum8(sv) / static_cast<float>(n);
    v8f d = load8(x) - mu;
    v8f vv = d * d;
    for (int64_t i = 8; i < n; i += 8) {
      d = load8(x + i) - mu;
      vv += d * d;
    }
    const float rs = 1.f / __builtin_sqrtf(hsum8(vv) / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; i += 8) {
      v8f v = (load8(x + i) - mu) * rs;
      if (w) v *= load8(w + i);
      if (b) v += load8(b + i);
      store8(y + i, v);
    }
    return;
  }
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
  std::vector<float> wq;      // Wqᵀ [D, Dp]
  std::vector<float> wk;      // Wk as is, rows padded: [D (outputs, head-major), Dp]
  std::vector<float> wov;     // [H·Dp, Dp]: rows h·Dp + i hold (Wo Wv_h)ᵀ, so z · wov = Wo Σ_h Wv_h z_h
  std::vector<float> bvo;     // [H, Dp]: Wo bv_h (bv_h: bv in head h's columns, 0 elsewhere); empty without bqkv
  std::vector<float> w1, w2;  // transposed + padded
};

Prepared prepare(const HfgContextLayerWeights& w, int64_t D, int64_t H, int64_t F) {
  const int64_t Dp = r16(D), dh = D / H;
  Prepared pw;
  pw.wq = transposed_padded(w.wqkv, D, D);
  const float* wk = w.wqkv + D * D;
  const float* wv = w.wqkv + 2 * D * D;
  pw.wk.assign(static_cast<size_t>(D * Dp), 0.f);
  for (int64_t o = 0; o < D; ++o)
    for (int64_t i = 0; i < D; ++i) pw.wk[o * Dp + i] = wk[o * D + i];
  // The output projection folds into the value projection (Wo Σ_h Wv_h z_h = Σ_h (Wo Wv_h) z_h), which
  // saves the D² multiply-adds of a separate Wo product per candidate. Built once per RankHeadPlan
  // (per call for hfgContextLayer): D·D·dh multiply-adds as row updates of Woᵀ, which vectorise.
  const std::vector<float> wot = transposed_padded(w.wo, D, D);  // Woᵀ [D, Dp]
  pw.wov.assign(static_cast<size_t>(H * Dp * Dp), 0.f);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < D; ++i) {
      float* QGS_RESTRICT row = pw.wov.data() + (h * Dp + i) * Dp;
      for (int64_t c = h * dh; c < (h + 1) * dh; ++c) {
        const float v = wv[c * D + i];
        const float* QGS_RESTRICT wo_c = wot.data() + c * Dp;
        for (int64_t o = 0; o < Dp; ++o) row[o] += v * wo_c[o];
      }
    }
  if (w.bqkv) {
    const float* bv = w.bqkv + 2 * D;
    pw.bvo.assign(static_cast<size_t>(H * Dp), 0.f);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t c = h * dh; c < (h + 1) * dh; ++c)
        for (int64_t o = 0; o < Dp; ++o) pw.bvo[h * Dp + o] += bv[c] * wot[c * Dp + o];
  }
  pw.w1 = transposed_padded(w.w1, F, D);
  pw.w2 = transposed_padded(w.w2, D, F);
  return pw;
}

struct Scratch {
  std::vector<float> y, q, u, z, x1, ln, f, e, s, p, bias;
  std::vector<unsigned char> present;  // [kTile·H]: the head saw at least one key
  Scratch(int64_t T, int64_t D, int64_t H, int64_t F) {
    const size_t Dp = static_cast<size_t>(r16(D)), Fp = static_cast<size_t>(r16(F)), KP = static_cast<size_t>(padded_keys(T));
    const size_t tile = static_cast<size_t>(kTile), h = static_cast<size_t>(H);
    y.assign(tile * static_cast<size_t>(T) * Dp, 0.f);
    for (auto* v : {&q, &x1, &ln}) v->assign(tile * Dp, 0.f);
    u.assign(tile * h * Dp, 0.f);
    z.assign(tile * h * Dp, 0.f);
    present.assign(tile * h, 0);
    f.assign(tile * Fp, 0.f);
    e.assign(3 * Fp, 0.f);
    for (auto* v : {&s, &p, &bias}) v->assign(KP, 0.f);
  }
};

// Only token 0 asks a query, so the key and value projections of the T tokens fold into it:
//   s_t = ⟨q_h, Wk_h y_t + bk_h⟩ = ⟨Wk_hᵀ q_h, y_t⟩ + const     (the constant cancels in the softmax)
//   a_h = Σ_t p_t (Wv_h y_t + bv_h) = Wv_h (Σ_t p_t y_t) + bv_h  (Σ_t p_t = 1 when a key is present)
// which costs ~2·D² per candidate for u_h = Wk_hᵀ q_h and Wv_h z_h instead of 2·T·D² for projecting
// every token (T = 7 in QGS: ~3× fewer multiply-adds for the layer).
// The query side of nr token-0 rows (LN1 outputs y0, rows ldy apart): q = Wq y0 + bq (scratch q,
// [nr, Dp]) and u_h = Wk_hᵀ q_h → u [nr, H·Dp].
QGS_SIMD_CLONES
void query_side(int64_t nr, const float* y0, int64_t ldy, float* q, float* u, const HfgContextLayerWeights& w,
                const Prepared& pw, int64_t D, int64_t H) {
  const int64_t Dp = r16(D), dh = D / H, HDp = H * Dp;
  tile::mm(q, Dp, y0, ldy, pw.wq.data(), Dp, nr, D, Dp, false);
  if (w.bqkv)
    for (int64_t i = 0; i < nr; ++i)
      for (int64_t c = 0; c < D; ++c) q[i * Dp + c] += w.bqkv[c];
  for (int64_t h = 0; h < H; ++h) tile::mm(u + h * Dp, HDp, q + h * dh, Dp, pw.wk.data() + h * dh * Dp, Dp, nr, dh, Dp, false);
}

// Token 0's LN1 output and query side computed once per context row (the ranking head: every
// candidate of a request shares its context token): candidate i uses row `row[i]` of y0 [·, Dp] and
// u [·, H·Dp] instead of recomputing them.
struct SharedToken0 {
  const float* y0 = nullptr;
  const float* u = nullptr;
  const int32_t* row = nullptr;
};

// The layer after attention, for token 0: sc.x1 holds Wo · (attention output) [nc, Dp]; then
// x1 += x_0 + bo (x_0 rows ldx0 apart), LN2, FFN with its residual, LN_out into out (rows ldo apart).
QGS_SIMD_CLONES
void layer_tail(int64_t nc, float* out, int64_t ldo, const float* x0rows, int64_t ldx0, const HfgContextLayerWeights& w,
                const Prepared& pw, Scratch& sc, int64_t D, int64_t F) {
  const int64_t Dp = r16(D), Fp = r16(F);
  for (int64_t i = 0; i < nc; ++i) {
    float* x1 = sc.x1.data() + i * Dp;
    const float* x0 = x0rows + i * ldx0;
    for (int64_t c = 0; c < D; ++c) x1[c] += x0[c] + (w.bo ? w.bo[c] : 0.f);
    layer_norm_row(sc.ln.data() + i * Dp, x1, w.ln2_w, w.ln2_b, D, w.eps2);
  }
  // FFN: f = act(W1 LN2(x1) + b1) [nc, Fp]; x1 += W2 f + b2 (accumulated into x1 by the GEMM).
  tile::mm(sc.f.data(), Fp, sc.ln.data(), Dp, pw.w1.data(), Fp, nc, D, Fp, false);
  for (int64_t i = 0; i < nc; ++i) activate(sc.f.data() + i * Fp, w.b1, F, w.activation, sc.e.data());
  tile::mm(sc.x1.data(), Dp, sc.f.data(), Fp, pw.w2.data(), Dp, nc, F, Dp, true);
  for (int64_t i = 0; i < nc; ++i) {
    float* x1 = sc.x1.data() + i * Dp;
    if (w.b2)
      for (int64_t c = 0; c < D; ++c) x1[c] += w.b2[c];
    layer_norm_row(out + i * ldo, x1, w.lno_w, w.lno_b, D, w.eps_out);
  }
}

// One tile of nc candidates: tokens at x (candidate i's token t at x + (i·T + t)·ldx), key mask rows
// at key_mask (T apart, or null), results at out (rows ldo apart). With `shared`, token 0's x rows
// are not read (their LN1 and query side come from shared.y0 / shared.u).
QGS_SIMD_CLONES
void tile_forward(int64_t nc, float* out, int64_t ldo, const float* x, int64_t ldx, const float* key_mask,
                  const HfgContextLayerWeights& w, const Prepared& pw, Scratch& sc, int64_t T, int64_t D, int64_t H,
                  int64_t F, const SharedToken0* shared = nullptr) {
  const int64_t Dp = r16(D), dh = D / H, KP = padded_keys(T);
  const int64_t rows = nc * T, HDp = H * Dp;
  const float scale = 1.f / __builtin_sqrtf(static_cast<float>(dh));
  float* y = sc.y.data();
  if (shared == nullptr) {
    // LN1 of every token of the tile: rows of Dp floats, padding columns stay 0 (set at allocation).
    for (int64_t r = 0; r < rows; ++r) layer_norm_row(y + r * Dp, x + r * ldx, w.ln1_w, w.ln1_b, D, w.eps1);
    // q = Wq y_0 + bq (token-0 rows are T·Dp apart); u_h = Wk_hᵀ q_h → u [nc, H·Dp].
    query_side(nc, y, T * Dp, sc.q.data(), sc.u.data(), w, pw, D, H);
  } else {
    for (int64_t i = 0; i < nc; ++i) {
      const int64_t r = shared->row[i];
      std::memcpy(y + i * T * Dp, shared->y0 + r * Dp, sizeof(float) * Dp);
      std::memcpy(sc.u.data() + i * HDp, shared->u + r * HDp, sizeof(float) * HDp);
      for (int64_t t = 1; t < T; ++t)
        layer_norm_row(y + (i * T + t) * Dp, x + (i * T + t) * ldx, w.ln1_w, w.ln1_b, D, w.eps1);
    }
  }
  // Per candidate and head: scores over the T tokens, masked softmax, z_h = Σ_t p_t y_t → z [nc, H·Dp].
  float* s = sc.s.data();
  float* p = sc.p.data();
  float* bias = sc.bias.data();
  for (int64_t i = 0; i < nc; ++i) {
    row_bias(bias, key_mask ? key_mask + i * T : nullptr, T, KP);
    const float* yi = y + i * T * Dp;
    for (int64_t h = 0; h < H; ++h) {
      const float* uh = sc.u.data() + i * HDp + h * Dp;
      // Dp is a multiple of 16: whole 8-lane vectors, padding columns are 0 in both operands.
      for (int64_t t = 0; t < T; ++t) {
        const float* yt = yi + t * Dp;
        v8f acc = load8(uh) * load8(yt);
        for (int64_t c = 8; c < Dp; c += 8) acc += load8(uh + c) * load8(yt + c);
        s[t] = hsum8(acc);
      }
      for (int64_t t = T; t < KP; ++t) s[t] = 0.f;  // masked_softmax overwrote them last time
      float* zh = sc.z.data() + i * HDp + h * Dp;
      for (int64_t c = 0; c < Dp; ++c) zh[c] = 0.f;
      const bool any = masked_softmax(p, s, bias, KP, scale);
      sc.present[i * H + h] = any;
      if (!any) continue;  // every key masked: a_h = 0
      // Tokens innermost, so each 8-column accumulator stays in a register (the other order stored
      // and reloaded z_h once per token: the hottest instruction of the layer in perf).
      for (int64_t c = 0; c < Dp; c += 8) {
        v8f acc = p[0] * load8(yi + c);
        for (int64_t t = 1; t < T; ++t) acc += p[t] * load8(yi + t * Dp + c);
        store8(zh + c, acc);
      }
    }
  }
  // x1 = x_0 + Wo Σ_h (Wv_h z_h + bv_h where the head saw a key) + bo [nc, Dp] (Wo folded, see
  // prepare); LN2(x1).
  tile::mm(sc.x1.data(), Dp, sc.z.data(), HDp, pw.wov.data(), Dp, nc, HDp, Dp, false);
  if (!pw.bvo.empty())
    for (int64_t i = 0; i < nc; ++i)
      for (int64_t h = 0; h < H; ++h)
        if (sc.present[i * H + h])
          for (int64_t c = 0; c < D; ++c) sc.x1[i * Dp + c] += pw.bvo[h * Dp + c];
  layer_tail(nc, out, ldo, x, T * ldx, w, pw, sc, D, F);
}

}  // namespace

void hfg_context_layer_forward(float* out, const float* x, const float* key_mask, const HfgContextLayerWeights& w,
                               int64_t N, int64_t T, int64_t D, int64_t H, int64_t F) {
  hfg_context_layer_check(N, T, D, H, F, w);
  if (N == 0) return;
  QGS_REQUIRE(out && x, "hfgContextLayer: out and x must be non-null");
  const Prepared pw = prepare(w, D, H, F);
  const int64_t tiles = (N + kTile - 1) / kTile;
  for_each_tile<Scratch>(tiles, [&] { return Scratch(T, D, H, F); }, [&](int64_t t, Scratch& sc) {
    const int64_t n0 = t * kTile;
    tile_forward(std::min(kTile, N - n0), out + n0 * D, D, x + n0 * T * D, D, key_mask ? key_mask + n0 * T : nullptr, w, pw,
                 sc, T, D, H, F);
  });
}

namespace {

// ---- the whole ranking head ----

// ---- group tokens folded into feature space ----
//
// A group token is affine in the candidate's features, x_g = A_g f + β_g (A_g: rows g·D .. of
// group_w, β_g = group_b_g + type_{2+g}), and every use of it in the layer is linear in its LN1
// output y_g = rs_g γ ⊙ (Ã_g f + β̃_g) + δ (Ã_g, β̃_g: A_g and β_g with their mean over the D
// outputs removed; γ, δ: LN1's weight and bias; rs_g = 1/√(var_g + ε)). So, per candidate:
//   var_g      = (fᵀ Q_g f + 2 q_gᵀ f + k_g) / D    Q_g = Ã_gᵀ Ã_g, q_g = Ã_gᵀ β̃_g, k_g = |β̃_g|²
//   score_g,h  = rs_g (e_hᵀ f + d_g,h) + c_h          e_h = Ãᵀ (γ ⊙ u_h), d_g,h = (γ ⊙ u_h)·β̃_g,
//                                                     c_h = u_h·δ (u_h: the request's query side)
//   Wo Σ_g p_g,h Wv_h y_g = Σ_g ρ_g,h P_h,g f + Σ_g ρ_g,h m_g,h + (Σ_g p_g,h) n_h
// with ρ_g,h = p_g,h rs_g, P_h,g = Wo Wv_h diag(γ) Ã_g, m_g,h = Wo Wv_h (γ ⊙ β̃_g), n_h = Wo Wv_h δ.
// When every feature column feeds at most one group (what RankingPlan's block-diagonal projection
// is), Σ_g ρ_g,h P_h,g f = P_h φ_h with φ_h[j] = ρ_{g(j),h} f_j: one product of H·(F + G + 1)
// coefficients per candidate replaces the group projection, G LayerNorm rows, G·H width-D scores and
// the value sums over G tokens. Only the item token is normalised and scored at width D.
struct GroupFold {
  bool on = false;
  int64_t K = 0;                  // H·(F + G + 1) coefficients per candidate
  std::vector<int32_t> group_of;  // [F]: the group a feature column feeds, or -1 (none)
  std::vector<int32_t> group_or0;  // [F]: group_of, with 0 for none (its B row is zero)
  std::vector<int64_t> start, count;  // per group: its columns, as positions in cols
  std::vector<int32_t> cols;      // feature columns grouped by group
  std::vector<double> Q, q, k;    // per group: Q_g [count × count] at offset qoff[g], q_g [count] at start[g], k_g
  std::vector<int64_t> qoff;      // per group: offset of Q_g in Q
  std::vector<float> at;          // Ãᵀ [F, Dp]: row j = column j of Ã_{g(j)} (0 for ungrouped j)
  std::vector<float> bt;          // β̃ [G, Dp]
  std::vector<float> b;           // [K, Dp]: rows of P_h, m_h, n_h per head (the product's B)
};

// The model side of the head: weights transposed, padded and folded (RankHeadPlan keeps one).
struct HeadPrepared {
  Prepared layer;
  std::vector<float> gw;  // [F, G·Dp]: group g's projection in columns g·Dp .. g·Dp + D (generic path only)
  std::vector<float> m1;  // Wm1ᵀ [3D, Mp]
  std::vector<float> m2;  // Wm2ᵀ [M, Dp]
  GroupFold fold;         // fold.on: group tokens handled in feature space (see GroupFold)
};

// The per-request side, for each request r (the context token every candidate of r shares):
// LN1(ctx_r + type_0) y0 [R, Dp], its query side u [R, H·Dp], and the context's share of the match
// MLP's first layer, c1_r = Wm1[:, :D] ctx_r + bm1 [R, Mp]; with the fold also e [R, H, F],
// d [R, H, G], c [R, H], token 0's score s0 [R, H] and value w0 [R, H, Dp] = Wo Wv_h y0_r.
struct HeadRequests {
  std::vector<float> y0, u, c1;
  std::vector<float> e, d, c, s0, w0;
};

// The match MLP's first layer as a function of the item alone: Wm1 [ctx; item; ctx ⊙ item] + bm1 =
// c1_r + B_r item with B_r = Wm1[:, D:2D] + Wm1[:, 2D:] diag(ctx_r) — D instead of 2D multiply-adds
// per output for each candidate. B_rᵀ [D, Mp] into b; built per run of a request's candidates in a
// tile (D·M multiply-adds, vs D·M saved per candidate), so memory does not grow with R.
void match_item_matrix(float* b, const HeadPrepared& hp, const float* ctx_r, int64_t D, int64_t Mp) {
  for (int64_t d = 0; d < D; ++d) {
    const float cd = ctx_r[d];
    const float* wi = hp.m1.data() + (D + d) * Mp;
    const float* wp = hp.m1.data() + (2 * D + d) * Mp;
    float* bd = b + d * Mp;
    for (int64_t c = 0; c < Mp; ++c) bd[c] = wi[c] + cd * wp[c];
  }
}

// The model part of the fold (see GroupFold); leaves fold.on false when a feature column feeds two
// groups, or when the per-candidate quadratic forms would cost more than the projection they replace.
void prepare_fold(GroupFold& fo, const RankHeadWeights& w, const Prepared& pl, const RankHeadSizes& s) {
  const int64_t D = s.D, G = s.G, F = s.F, H = s.H, Dp = r16(D);
  if (G == 0) return;
  fo.group_of.assign(static_cast<size_t>(F), -1);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j = 0; j < F; ++j) {
      bool used = false;
      for (int64_t o = 0; o < D && !used; ++o) used = w.group_w[(g * D + o) * F + j] != 0.f;
      if (!used) continue;
      if (fo.group_of[j] >= 0) return;  // shared column: the generic path
      fo.group_of[j] = static_cast<int32_t>(g);
    }
  fo.group_or0.resize(static_cast<size_t>(F));
  for (int64_t j = 0; j < F; ++j) fo.group_or0[j] = std::max(fo.group_of[j], 0);
  fo.start.assign(static_cast<size_t>(G), 0);
  fo.count.assign(static_cast<size_t>(G), 0);
  fo.qoff.assign(static_cast<size_t>(G), 0);
  int64_t quad = 0;
  for (int64_t g = 0; g < G; ++g) {
    fo.start[g] = static_cast<int64_t>(fo.cols.size());
    for (int64_t j = 0; j < F; ++j)
      if (fo.group_of[j] == g) fo.cols.push_back(static_cast<int32_t>(j));
    fo.count[g] = static_cast<int64_t>(fo.cols.size()) - fo.start[g];
    fo.qoff[g] = quad;
    quad += fo.count[g] * fo.count[g];
  }
  if (quad > D * static_cast<int64_t>(fo.cols.size())) return;
  // Centred columns Ãᵀ and biases β̃, and the quadratic forms in float64.
  fo.at.assign(static_cast<size_t>(F * Dp), 0.f);
  fo.bt.assign(static_cast<size_t>(G * Dp), 0.f);
  fo.Q.assign(static_cast<size_t>(quad), 0.0);
  fo.q.assign(static_cast<size_t>(fo.cols.size()), 0.0);
  fo.k.assign(static_cast<size_t>(G), 0.0);
  std::vector<double> bb(static_cast<size_t>(D));
  std::vector<double> ac(static_cast<size_t>(F * D), 0.0);  // centred columns in float64
  for (int64_t g = 0; g < G; ++g) {
    double mean = 0.0;
    for (int64_t o = 0; o < D; ++o) {
      bb[o] = (w.group_b ? double(w.group_b[g * D + o]) : 0.0) + w.type_emb[(2 + g) * D + o];
      mean += bb[o];
    }
    mean /= double(D);
    for (int64_t o = 0; o < D; ++o) {
      bb[o] -= mean;
      fo.bt[g * Dp + o] = static_cast<float>(bb[o]);
      fo.k[g] += bb[o] * bb[o];
    }
    for (int64_t a_i = 0; a_i < fo.count[g]; ++a_i) {
      const int64_t j = fo.cols[fo.start[g] + a_i];
      double cm = 0.0;
      for (int64_t o = 0; o < D; ++o) cm += w.group_w[(g * D + o) * F + j];
      cm /= double(D);
      double qa = 0.0;
      for (int64_t o = 0; o < D; ++o) {
        const double v = double(w.group_w[(g * D + o) * F + j]) - cm;
        ac[j * D + o] = v;
        fo.at[j * Dp + o] = static_cast<float>(v);
        qa += v * bb[o];
      }
      fo.q[fo.start[g] + a_i] = qa;
    }
    for (int64_t a_i = 0; a_i < fo.count[g]; ++a_i)
      for (int64_t b_i = 0; b_i < fo.count[g]; ++b_i) {
        const int64_t ja = fo.cols[fo.start[g] + a_i], jb = fo.cols[fo.start[g] + b_i];
        double acc = 0.0;
        for (int64_t o = 0; o < D; ++o) acc += ac[ja * D + o] * ac[jb * D + o];
        fo.Q[fo.qoff[g] + a_i * fo.count[g] + b_i] = acc;
      }
  }
  // B rows per head h (K = H·(F + G + 1)): P_h columns, m_h,g, n_h — all through Wo Wv_h (pl.wov).
  const int64_t per = F + G + 1;
  fo.K = H * per;
  fo.b.assign(static_cast<size_t>(fo.K * Dp), 0.f);
  const float* gam = w.layer.ln1_w;
  const float* del = w.layer.ln1_b;
  auto through_wov = [&](float* dst, int64_t h, const double* v) {  // dst[o] = Σ_i wov_h[o, i] v[i]
    for (int64_t i = 0; i < D; ++i) {
      if (v[i] == 0.0) continue;
      const float* row = pl.wov.data() + (h * Dp + i) * Dp;
      for (int64_t o = 0; o < D; ++o) dst[o] += static_cast<float>(v[i]) * row[o];
    }
  };
  std::vector<double> v(static_cast<size_t>(D));
  for (int64_t h = 0; h < H; ++h) {
    float* bh = fo.b.data() + h * per * Dp;
    for (int64_t j = 0; j < F; ++j) {
      if (fo.group_of[j] < 0) continue;
      for (int64_t o = 0; o < D; ++o) v[o] = (gam ? double(gam[o]) : 1.0) * ac[j * D + o];
      through_wov(bh + j * Dp, h, v.data());
    }
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t o = 0; o < D; ++o) v[o] = (gam ? double(gam[o]) : 1.0) * fo.bt[g * Dp + o];
      through_wov(bh + (F + g) * Dp, h, v.data());
    }
    if (del) {
      for (int64_t o = 0; o < D; ++o) v[o] = del[o];
      through_wov(bh + (F + G) * Dp, h, v.data());
    }
  }
  fo.on = true;
}

// The per-request part of the fold: e, d, c, s0 and w0 for every context row (R is small).
void prepare_fold_requests(HeadRequests& rq, const RankHeadWeights& w, const HeadPrepared& hp, const RankHeadSizes& s) {
  const GroupFold& fm = hp.fold;
  const int64_t D = s.D, G = s.G, F = s.F, H = s.H, R = s.R, Dp = r16(D), HDp = H * Dp;
  const float* gam = w.layer.ln1_w;
  const float* del = w.layer.ln1_b;
  rq.e.assign(static_cast<size_t>(R * H * F), 0.f);
  rq.d.assign(static_cast<size_t>(R * H * G), 0.f);
  rq.c.assign(static_cast<size_t>(R * H), 0.f);
  rq.s0.assign(static_cast<size_t>(R * H), 0.f);
  rq.w0.assign(static_cast<size_t>(R * H * Dp), 0.f);
  std::vector<float> gu(static_cast<size_t>(D));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t h = 0; h < H; ++h) {
      const float* u = rq.u.data() + r * HDp + h * Dp;
      const float* y0 = rq.y0.data() + r * Dp;
      float c = 0.f, s0 = 0.f;
      for (int64_t o = 0; o < D; ++o) {
        gu[o] = (gam ? gam[o] : 1.f) * u[o];
        c += del ? u[o] * del[o] : 0.f;
        s0 += u[o] * y0[o];
      }
      rq.c[r * H + h] = c;
      rq.s0[r * H + h] = s0;
      for (int64_t j = 0; j < F; ++j) {
        if (fm.group_of[j] < 0) continue;
        float acc = 0.f;
        for (int64_t o = 0; o < D; ++o) acc += fm.at[j * Dp + o] * gu[o];
        rq.e[(r * H + h) * F + j] = acc;
      }
      for (int64_t g = 0; g < G; ++g) {
        float acc = 0.f;
        for (int64_t o = 0; o < D; ++o) acc += fm.bt[g * Dp + o] * gu[o];
        rq.d[(r * H + h) * G + g] = acc;
      }
      float* w0 = rq.w0.data() + (r * H + h) * Dp;
      for (int64_t i = 0; i < D; ++i) {
        const float* row = hp.layer.wov.data() + (h * Dp + i) * Dp;
        for (int64_t o = 0; o < D; ++o) w0[o] += y0[i] * row[o];
      }
    }
}

struct HeadScratch {
  Scratch layer;
  std::vector<float> x, pooled, min, h1, h2, mb, coef, rs, pk;
  HeadScratch(const RankHeadSizes& s, int64_t fold_k)
      : layer(s.G + 2, s.D, s.H, s.FF),
        x(static_cast<size_t>(kTile * (s.G + 2) * r16(s.D)), 0.f),
        pooled(static_cast<size_t>(kTile * r16(s.D)), 0.f),
        min(static_cast<size_t>(kTile * s.D), 0.f),
        h1(static_cast<size_t>(kTile * r16(s.M)), 0.f),
        h2(static_cast<size_t>(kTile * r16(s.D)), 0.f),
        mb(static_cast<size_t>(s.D * r16(s.M)), 0.f),
        coef(static_cast<size_t>(kTile * std::max<int64_t>(fold_k, 1)), 0.f),
        rs(static_cast<size_t>(std::max<int64_t>(s.G, 1)), 0.f),
        pk(static_cast<size_t>(kTile * s.H), 0.f) {}
};

// The layer for one tile with the group tokens folded (GroupFold): token 0's score and value from
// the request, the item token normalised and scored at width D, the group tokens from the features;
// then layer_tail. x holds each candidate's token-0 and item rows (rows `row` apart), fe its features.
QGS_SIMD_CLONES
void fold_tile(int64_t n0, int64_t nc, float* pooled, const float* x, int64_t row, const int32_t* req, const float* fe,
               const RankHeadWeights& w, const HeadPrepared& hp, const HeadRequests& rq, HeadScratch& hs,
               const RankHeadSizes& s) {
  const GroupFold& fo = hp.fold;
  const int64_t D = s.D, G = s.G, F = s.F, H = s.H, T = G + 2, Dp = r16(D), HDp = H * Dp, KP = padded_keys(T);
  const int64_t per = F + G + 1;
  const float scale = 1.f / __builtin_sqrtf(static_cast<float>(D / H));
  const HfgContextLayerWeights& lw = w.layer;
  Scratch& sc = hs.layer;
  float* sv = sc.s.data();
  float* p = sc.p.data();
  float* bias = sc.bias.data();
  float* rs = hs.rs.data();
  row_bias(bias, nullptr, T, KP);
  for (int64_t i = 0; i < nc; ++i) {
    const int64_t r = req[n0 + i];
    const float* f = fe + i * F;
    float* y1 = sc.y.data() + i * Dp;
    layer_norm_row(y1, x + i * row + Dp, lw.ln1_w, lw.ln1_b, D, lw.eps1);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t n = fo.count[g];
      const int32_t* cols = fo.cols.data() + fo.start[g];
      const double* Q = fo.Q.data() + fo.qoff[g];
      const double* q = fo.q.data() + fo.start[g];
      double quad = fo.k[g];
      for (int64_t a = 0; a < n; ++a) {
        const double va = f[cols[a]];
        double qa = 2.0 * q[a];
        for (int64_t b = 0; b < n; ++b) qa += Q[a * n + b] * f[cols[b]];
        quad += va * qa;
      }
      // The variance in float64 (rounding can dip below 0), the rest in float as layer_norm_row does
      // (a float64 square root and division per group were a tenth of this function).
      const float var = quad > 0.0 ? static_cast<float>(quad / static_cast<double>(D)) : 0.f;
      rs[g] = 1.f / __builtin_sqrtf(var + lw.eps1);
    }
    float* z = sc.z.data() + i * HDp;
    float* cf = hs.coef.data() + i * fo.K;
    for (int64_t h = 0; h < H; ++h) {
      const float* u = rq.u.data() + r * HDp + h * Dp;
      const float* e = rq.e.data() + (r * H + h) * F;
      const float* d = rq.d.data() + (r * H + h) * G;
      const float c = rq.c[r * H + h];
      sv[0] = rq.s0[r * H + h];
      v8f acc = load8(u) * load8(y1);
      for (int64_t k = 8; k < Dp; k += 8) acc += load8(u + k) * load8(y1 + k);
      sv[1] = hsum8(acc);
      for (int64_t g = 0; g < G; ++g) {
        const int32_t* cols = fo.cols.data() + fo.start[g];
        float t = d[g];
        for (int64_t a = 0; a < fo.count[g]; ++a) t += e[cols[a]] * f[cols[a]];
        sv[2 + g] = rs[g] * t + c;
      }
      for (int64_t t = T; t < KP; ++t) sv[t] = 0.f;
      masked_softmax(p, sv, bias, KP, scale);  // no mask: tokens 0 and 1 are always keys
      hs.pk[i * H + h] = p[0];
      for (int64_t k = 0; k < Dp; k += 8) store8(z + h * Dp + k, load8(y1 + k) * p[1]);
      // ρ_g = p_g rs_g at ch[F + g]; φ_j = ρ_{g(j)} f_j (ungrouped columns have a zero row in B).
      float* ch = cf + h * per;
      float P = 0.f;
      for (int64_t g = 0; g < G; ++g) {
        ch[F + g] = p[2 + g] * rs[g];
        P += p[2 + g];
      }
      ch[F + G] = P;
      for (int64_t j = 0; j < F; ++j) ch[j] = ch[F + fo.group_or0[j]] * f[j];
    }
  }
  // Wo Σ_h Wv_h z_h: the item token's share through wov, the groups' through the fold's B.
  tile::mm(sc.x1.data(), Dp, sc.z.data(), HDp, hp.layer.wov.data(), Dp, nc, HDp, Dp, false);
  tile::mm(sc.x1.data(), Dp, hs.coef.data(), fo.K, fo.b.data(), Dp, nc, fo.K, Dp, true);
  for (int64_t i = 0; i < nc; ++i) {
    const int64_t r = req[n0 + i];
    float* x1 = sc.x1.data() + i * Dp;  // Dp wide: the padding columns of w0 and bvo are 0
    for (int64_t h = 0; h < H; ++h) {
      const float p0 = hs.pk[i * H + h];
      const float* w0 = rq.w0.data() + (r * H + h) * Dp;
      if (hp.layer.bvo.empty())
        for (int64_t k = 0; k < Dp; k += 8) store8(x1 + k, load8(x1 + k) + load8(w0 + k) * p0);
      else
        for (int64_t k = 0; k < Dp; k += 8)
          store8(x1 + k, load8(x1 + k) + load8(w0 + k) * p0 + load8(hp.layer.bvo.data() + h * Dp + k));
    }
  }
  layer_tail(nc, pooled, Dp, x, row, lw, hp.layer, sc, D, s.FF);
}

QGS_SIMD_CLONES
void head_tile(int64_t n0, int64_t nc, float* logits, const float* ctx, const int32_t* req, const float* item,
               const int32_t* item_ids, const float* feats, const RankHeadWeights& w, const HeadPrepared& hp,
               const HeadRequests& rq, HeadScratch& sc, const RankHeadSizes& s) {
  const int64_t D = s.D, G = s.G, T = G + 2, F = s.F, M = s.M;
  const int64_t Dp = r16(D), Mp = r16(M), ldx = Dp, row = T * Dp;
  float* x = sc.x.data();
  const float* fe = feats + n0 * F;
  const bool fold = hp.fold.on;
  // Group tokens straight into their slots of the token rows (columns 2·Dp ..), then + bias + type
  // (not needed when they are folded into feature space).
  if (G > 0 && !fold) {
    if (F > 0) tile::mm(x + 2 * Dp, row, fe, F, hp.gw.data(), G * Dp, nc, F, G * Dp, false);
    else
      for (int64_t i = 0; i < nc; ++i)
        for (int64_t c = 2 * Dp; c < row; ++c) x[i * row + c] = 0.f;
  }
  // Per candidate: the context and item tokens, the group tokens' bias + type, and the match MLP's
  // per-candidate input, the item (D wide rows of sc.min; the rest is per request, rq.c1 / B_r).
  float* mi = sc.min.data();
  const auto item_row = [&](int64_t i) { return item + (item_ids ? static_cast<int64_t>(item_ids[n0 + i]) : n0 + i) * D; };
  constexpr int64_t kAhead = 4;  // candidates: the item rows are random reads from the catalogue table
  for (int64_t i = 0; i < std::min(kAhead, nc); ++i)
    for (int64_t c = 0; c < D; c += 16) __builtin_prefetch(item_row(i) + c);
  for (int64_t i = 0; i < nc; ++i) {
    if (i + kAhead < nc)
      for (int64_t c = 0; c < D; c += 16) __builtin_prefetch(item_row(i + kAhead) + c);
    float* QGS_RESTRICT xi = x + i * row;
    float* QGS_RESTRICT r = mi + i * D;
    const float* QGS_RESTRICT ci = ctx + static_cast<int64_t>(req[n0 + i]) * D;
    const float* QGS_RESTRICT ii = item_row(i);
    const float* QGS_RESTRICT te = w.type_emb;
    for (int64_t c = 0; c < D; ++c) {
      xi[c] = ci[c] + te[c];
      xi[Dp + c] = ii[c] + te[D + c];
      r[c] = ii[c];
    }
    for (int64_t g = 0; g < G && !fold; ++g) {
      float* xg = xi + (2 + g) * Dp;
      const float* tg = w.type_emb + (2 + g) * D;
      const float* bg = w.group_b ? w.group_b + g * D : nullptr;
      for (int64_t c = 0; c < D; ++c) xg[c] += tg[c] + (bg ? bg[c] : 0.f);
    }
  }
  float* pooled = sc.pooled.data();
  if (fold) {
    fold_tile(n0, nc, pooled, x, row, req, fe, w, hp, rq, sc, s);
  } else {
    const SharedToken0 shared{rq.y0.data(), rq.u.data(), req + n0};
    tile_forward(nc, pooled, Dp, x, ldx, nullptr, w.layer, hp.layer, sc.layer, T, D, s.H, s.FF, &shared);
  }
  // match = relu(Wm2 relu(Wm1 [ctx; item; ctx ⊙ item] + bm1) + bm2) with h1 = B_r item + c1_r (see
  // HeadPrepared): one product per run of candidates of the same request (a batch lists a request's
  // candidates together, so a tile usually holds one or two runs).
  float* h1 = sc.h1.data();
  float* h2 = sc.h2.data();
  for (int64_t i0 = 0; i0 < nc;) {
    const int32_t r = req[n0 + i0];
    int64_t i1 = i0 + 1;
    while (i1 < nc && req[n0 + i1] == r) ++i1;
    match_item_matrix(sc.mb.data(), hp, ctx + static_cast<int64_t>(r) * D, D, Mp);
    tile::mm(h1 + i0 * Mp, Mp, mi + i0 * D, D, sc.mb.data(), Mp, i1 - i0, D, Mp, false);
    i0 = i1;
  }
  for (int64_t i = 0; i < nc; ++i) {
    const float* c1 = rq.c1.data() + static_cast<int64_t>(req[n0 + i]) * Mp;
    for (int64_t c = 0; c < M; ++c) {
      const float v = h1[i * Mp + c] + c1[c];
      h1[i * Mp + c] = v > 0.f ? v : 0.f;
    }
  }
  tile::mm(h2, Dp, h1, Mp, hp.m2.data(), Dp, nc, M, Dp, false);
  const float* lw = w.logit_w;
  for (int64_t i = 0; i < nc; ++i) {
    float acc = w.logit_b;
    const float* pi = pooled + i * Dp;
    const float* hi = h2 + i * Dp;
    for (int64_t c = 0; c < D; ++c) {
      const float v = hi[c] + (w.match_b2 ? w.match_b2[c] : 0.f);
      acc += pi[c] * lw[c] + (v > 0.f ? v : 0.f) * lw[D + c];
    }
    for (int64_t f = 0; f < F; ++f) acc += fe[i * F + f] * lw[2 * D + f];
    logits[n0 + i] = acc;
  }
}

}  // namespace

// The model side of the head, prepared once: the weights copied (the plan does not depend on the
// caller's buffers staying alive or unchanged), transposed, padded and folded.
struct RankHeadPlan {
  RankHeadSizes s;  // N, R, V unused
  RankHeadWeights w;  // points into owned
  std::vector<std::vector<float>> owned;
  HeadPrepared hp;
};

void RankHeadPlanDeleter::operator()(RankHeadPlan* p) const { delete p; }

RankHeadPlanPtr make_rank_head_plan(const RankHeadWeights& w, const RankHeadSizes& sizes) {
  RankHeadSizes s = sizes;
  s.N = 0, s.R = 1, s.V = 0;
  hfg_rank_head_check(w, s);
  RankHeadPlanPtr plan(new RankHeadPlan);
  plan->s = s;
  const int64_t D = s.D, G = s.G, F = s.F, M = s.M, FF = s.FF, Dp = r16(D);
  auto& o = plan->owned;
  RankHeadWeights& c = plan->w;
  c = w;
  c.type_emb = keep(o, w.type_emb, (G + 2) * D);
  c.group_w = keep(o, w.group_w, G * D * F);
  c.group_b = keep(o, w.group_b, G * D);
  c.match_w1 = keep(o, w.match_w1, M * 3 * D);
  c.match_b1 = keep(o, w.match_b1, M);
  c.match_w2 = keep(o, w.match_w2, D * M);
  c.match_b2 = keep(o, w.match_b2, D);
  c.logit_w = keep(o, w.logit_w, 2 * D + F);
  HfgContextLayerWeights& l = c.layer;
  l.ln1_w = keep(o, w.layer.ln1_w, D), l.ln1_b = keep(o, w.layer.ln1_b, D);
  l.wqkv = keep(o, w.layer.wqkv, 3 * D * D), l.bqkv = keep(o, w.layer.bqkv, 3 * D);
  l.wo = keep(o, w.layer.wo, D * D), l.bo = keep(o, w.layer.bo, D);
  l.ln2_w = keep(o, w.layer.ln2_w, D), l.ln2_b = keep(o, w.layer.ln2_b, D);
  l.w1 = keep(o, w.layer.w1, FF * D), l.b1 = keep(o, w.layer.b1, FF);
  l.w2 = keep(o, w.layer.w2, D * FF), l.b2 = keep(o, w.layer.b2, D);
  l.lno_w = keep(o, w.layer.lno_w, D), l.lno_b = keep(o, w.layer.lno_b, D);
  HeadPrepared& hp = plan->hp;
  hp.layer = prepare(c.layer, D, s.H, FF);
  prepare_fold(hp.fold, c, hp.layer, s);
  if (!hp.fold.on) {  // the generic path's group projection (the fold reads the features directly)
    hp.gw.assign(static_cast<size_t>(F * G * Dp), 0.f);
    for (int64_t g = 0; g < G; ++g)
      for (int64_t r = 0; r < D; ++r)
        for (int64_t f = 0; f < F; ++f) hp.gw[f * G * Dp + g * Dp + r] = c.group_w[(g * D + r) * F + f];
  }
  hp.m1 = transposed_padded(c.match_w1, M, 3 * D);
  hp.m2 = transposed_padded(c.match_w2, D, M);
  return plan;
}

RankHeadSizes rank_head_plan_sizes(const RankHeadPlan& plan) { return plan.s; }

void hfg_rank_head_forward(float* logits, const float* ctx, const int32_t* req, const float* item, const int32_t* item_ids,
                           const float* feats, const RankHeadPlan& plan, int64_t N, int64_t R, int64_t V) {
  RankHeadSizes s = plan.s;
  s.N = N, s.R = R, s.V = V;
  QGS_REQUIRE(N >= 0, "rankHead: N (candidates) must be >= 0, got " + std::to_string(N));
  QGS_REQUIRE(R >= 1 || N == 0, "rankHead: R (requests) must be >= 1, got " + std::to_string(R));
  if (N == 0) return;
  QGS_REQUIRE(logits && ctx && req && item && (feats || s.F == 0), "rankHead: logits, ctx, req, item and feats must be non-null");
  for (int64_t n = 0; n < N; ++n)
    QGS_REQUIRE(req[n] >= 0 && req[n] < R, "rankHead: req[" + std::to_string(n) + "] must be in [0, " + std::to_string(R) +
                                               "), got " + std::to_string(req[n]));
  if (item_ids)
    for (int64_t n = 0; n < N; ++n)
      QGS_REQUIRE(item_ids[n] >= 0 && item_ids[n] < V, "rankHead: item_ids[" + std::to_string(n) + "] must be in [0, " +
                                                           std::to_string(V) + "), got " + std::to_string(item_ids[n]));
  const RankHeadWeights& w = plan.w;
  const HeadPrepared& hp = plan.hp;
  const int64_t D = s.D, M = s.M, Dp = r16(D), Mp = r16(M), HDp = s.H * Dp;
  // The per-request context parts (R is small: the requests of one batch).
  HeadRequests rq;
  rq.y0.assign(static_cast<size_t>(R * Dp), 0.f);
  rq.u.assign(static_cast<size_t>(R * HDp), 0.f);
  rq.c1.assign(static_cast<size_t>(R * Mp), 0.f);
  {
    std::vector<float> x0(static_cast<size_t>(D)), q(static_cast<size_t>(R * Dp), 0.f);
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t c = 0; c < D; ++c) x0[c] = ctx[r * D + c] + w.type_emb[c];
      layer_norm_row(rq.y0.data() + r * Dp, x0.data(), w.layer.ln1_w, w.layer.ln1_b, D, w.layer.eps1);
    }
    query_side(R, rq.y0.data(), Dp, q.data(), rq.u.data(), w.layer, hp.layer, D, s.H);
    if (hp.fold.on) prepare_fold_requests(rq, w, hp, s);
    tile::mm(rq.c1.data(), Mp, ctx, D, hp.m1.data(), Mp, R, D, Mp, false);
    if (w.match_b1)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t c = 0; c < M; ++c) rq.c1[r * Mp + c] += w.match_b1[c];
  }
  const int64_t tiles = (N + kTile - 1) / kTile;
  for_each_tile<HeadScratch>(tiles, [&] { return HeadScratch(s, hp.fold.K); }, [&](int64_t t, HeadScratch& sc) {
    const int64_t n0 = t * kTile;
    head_tile(n0, std::min(kTile, N - n0), logits, ctx, req, item, item_ids, feats, w, hp, rq, sc, s);
  });
}

void hfg_rank_head_forward(float* logits, const float* ctx, const int32_t* req, const float* item,
                           const int32_t* item_ids, const float* feats, const RankHeadWeights& w, const RankHeadSizes& s) {
  hfg_rank_head_check(w, s);
  if (s.N == 0) return;
  const RankHeadPlanPtr plan = make_rank_head_plan(w, s);
  hfg_rank_head_forward(logits, ctx, req, item, item_ids, feats, *plan, s.N, s.R, s.V);
}

}  // namespace cpu
}  // namespace qgs
