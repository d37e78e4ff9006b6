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
#include <algorithm>
#include <cmath>
#include <cstring>
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

// Each pool piece allocates and zeroes its own scratch (~60 KB at the QGS shape): about four pieces
// per thread keep the load balanced without a scratch per tile (at one tile a piece, zeroing 16
// scratches was ~3% of a 1,000-candidate head).
int64_t tiles_per_piece(int64_t tiles) { return std::max<int64_t>(1, tiles / (4 * static_cast<int64_t>(num_threads()))); }

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
  // saves the D² multiply-adds of a separate Wo product per candidate. Built per call (weights are
  // not cached across calls): D·D·dh multiply-adds as row updates of Woᵀ, which vectorise.
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

// One tile of nc candidates: tokens at x (candidate i's token t at x + (i·T + t)·ldx), key mask rows
// at key_mask (T apart, or null), results at out (rows ldo apart). With `shared`, token 0's x rows
// are not read (their LN1 and query side come from shared.y0 / shared.u).
QGS_SIMD_CLONES
void tile_forward(int64_t nc, float* out, int64_t ldo, const float* x, int64_t ldx, const float* key_mask,
                  const HfgContextLayerWeights& w, const Prepared& pw, Scratch& sc, int64_t T, int64_t D, int64_t H,
                  int64_t F, const SharedToken0* shared = nullptr) {
  const int64_t Dp = r16(D), Fp = r16(F), dh = D / H, KP = padded_keys(T);
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
  for (int64_t i = 0; i < nc; ++i) {
    float* x1 = sc.x1.data() + i * Dp;
    const float* x0 = x + i * T * ldx;
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

}  // namespace

void hfg_context_layer_forward(float* out, const float* x, const float* key_mask, const HfgContextLayerWeights& w,
                               int64_t N, int64_t T, int64_t D, int64_t H, int64_t F) {
  hfg_context_layer_check(N, T, D, H, F, w);
  if (N == 0) return;
  QGS_REQUIRE(out && x, "hfgContextLayer: out and x must be non-null");
  const Prepared pw = prepare(w, D, H, F);
  const int64_t tiles = (N + kTile - 1) / kTile;
  parallel_for(tiles, tiles_per_piece(tiles), [&](int64_t b, int64_t e) {
    Scratch sc(T, D, H, F);
    for (int64_t t = b; t < e; ++t) {
      const int64_t n0 = t * kTile;
      tile_forward(std::min(kTile, N - n0), out + n0 * D, D, x + n0 * T * D, D, key_mask ? key_mask + n0 * T : nullptr, w,
                   pw, sc, T, D, H, F);
    }
  });
}

namespace {

// ---- the whole ranking head ----

struct HeadPrepared {
  Prepared layer;
  std::vector<float> gw;  // [F, G·Dp]: group g's projection in columns g·Dp .. g·Dp + D
  std::vector<float> m2;  // Wm2ᵀ [M, Dp]
  // Per request r (the context token every candidate of r shares): LN1(ctx_r + type_0) [R, Dp], its
  // query side u [R, H·Dp], and the context's share of the match MLP's first layer,
  // c1_r = Wm1[:, :D] ctx_r + bm1 [R, Mp].
  std::vector<float> y0, u, c1;
  std::vector<float> m1;  // Wm1ᵀ [3D, Mp]
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

struct HeadScratch {
  Scratch layer;
  std::vector<float> x, pooled, min, h1, h2, mb;
  HeadScratch(const RankHeadSizes& s)
      : layer(s.G + 2, s.D, s.H, s.FF),
        x(static_cast<size_t>(kTile * (s.G + 2) * r16(s.D)), 0.f),
        pooled(static_cast<size_t>(kTile * r16(s.D)), 0.f),
        min(static_cast<size_t>(kTile * s.D), 0.f),
        h1(static_cast<size_t>(kTile * r16(s.M)), 0.f),
        h2(static_cast<size_t>(kTile * r16(s.D)), 0.f),
        mb(static_cast<size_t>(s.D * r16(s.M)), 0.f) {}
};

QGS_SIMD_CLONES
void head_tile(int64_t n0, int64_t nc, float* logits, const float* ctx, const int32_t* req, const float* item,
               const int32_t* item_ids, const float* feats, const RankHeadWeights& w, const HeadPrepared& hp, HeadScratch& sc,
               const RankHeadSizes& s) {
  const int64_t D = s.D, G = s.G, T = G + 2, F = s.F, M = s.M;
  const int64_t Dp = r16(D), Mp = r16(M), ldx = Dp, row = T * Dp;
  float* x = sc.x.data();
  const float* fe = feats + n0 * F;
  // Group tokens straight into their slots of the token rows (columns 2·Dp ..), then + bias + type.
  if (G > 0) {
    if (F > 0) tile::mm(x + 2 * Dp, row, fe, F, hp.gw.data(), G * Dp, nc, F, G * Dp, false);
    else
      for (int64_t i = 0; i < nc; ++i)
        for (int64_t c = 2 * Dp; c < row; ++c) x[i * row + c] = 0.f;
  }
  // Per candidate: the context and item tokens, the group tokens' bias + type, and the match MLP's
  // per-candidate input, the item (D wide rows of sc.min; the rest is per request, hp.c1 / hp.m1r).
  float* mi = sc.min.data();
  for (int64_t i = 0; i < nc; ++i) {
    float* xi = x + i * row;
    float* r = mi + i * D;
    const float* ci = ctx + static_cast<int64_t>(req[n0 + i]) * D;
    const float* ii = item + (item_ids ? static_cast<int64_t>(item_ids[n0 + i]) : n0 + i) * D;
    for (int64_t c = 0; c < D; ++c) {
      xi[c] = ci[c] + w.type_emb[c];
      xi[Dp + c] = ii[c] + w.type_emb[D + c];
      r[c] = ii[c];
    }
    for (int64_t g = 0; g < G; ++g) {
      float* xg = xi + (2 + g) * Dp;
      const float* tg = w.type_emb + (2 + g) * D;
      const float* bg = w.group_b ? w.group_b + g * D : nullptr;
      for (int64_t c = 0; c < D; ++c) xg[c] += tg[c] + (bg ? bg[c] : 0.f);
    }
  }
  float* pooled = sc.pooled.data();
  const SharedToken0 shared{hp.y0.data(), hp.u.data(), req + n0};
  tile_forward(nc, pooled, Dp, x, ldx, nullptr, w.layer, hp.layer, sc.layer, T, D, s.H, s.FF, &shared);
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
    const float* c1 = hp.c1.data() + static_cast<int64_t>(req[n0 + i]) * Mp;
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

void hfg_rank_head_forward(float* logits, const float* ctx, const int32_t* req, const float* item,
                           const int32_t* item_ids, const float* feats, const RankHeadWeights& w, const RankHeadSizes& s) {
  hfg_rank_head_check(w, s);
  if (s.N == 0) return;
  QGS_REQUIRE(logits && ctx && req && item && (feats || s.F == 0), "rankHead: logits, ctx, req, item and feats must be non-null");
  for (int64_t n = 0; n < s.N; ++n)
    QGS_REQUIRE(req[n] >= 0 && req[n] < s.R, "rankHead: req[" + std::to_string(n) + "] must be in [0, " + std::to_string(s.R) +
                                                 "), got " + std::to_string(req[n]));
  if (item_ids)
    for (int64_t n = 0; n < s.N; ++n)
      QGS_REQUIRE(item_ids[n] >= 0 && item_ids[n] < s.V, "rankHead: item_ids[" + std::to_string(n) + "] must be in [0, " +
                                                             std::to_string(s.V) + "), got " + std::to_string(item_ids[n]));
  const int64_t D = s.D, G = s.G, F = s.F, M = s.M, Dp = r16(D);
  HeadPrepared hp;
  hp.layer = prepare(w.layer, D, s.H, s.FF);
  hp.gw.assign(static_cast<size_t>(F * G * Dp), 0.f);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t o = 0; o < D; ++o)
      for (int64_t f = 0; f < F; ++f) hp.gw[f * G * Dp + g * Dp + o] = w.group_w[(g * D + o) * F + f];
  hp.m1 = transposed_padded(w.match_w1, M, 3 * D);
  hp.m2 = transposed_padded(w.match_w2, D, M);
  // The per-request context parts (R is small: the requests of one batch).
  const int64_t Mp = r16(M), HDp = s.H * Dp, R = s.R;
  hp.y0.assign(static_cast<size_t>(R * Dp), 0.f);
  hp.u.assign(static_cast<size_t>(R * HDp), 0.f);
  hp.c1.assign(static_cast<size_t>(R * Mp), 0.f);
  {
    std::vector<float> x0(static_cast<size_t>(D)), q(static_cast<size_t>(R * Dp), 0.f);
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t c = 0; c < D; ++c) x0[c] = ctx[r * D + c] + w.type_emb[c];
      layer_norm_row(hp.y0.data() + r * Dp, x0.data(), w.layer.ln1_w, w.layer.ln1_b, D, w.layer.eps1);
    }
    query_side(R, hp.y0.data(), Dp, q.data(), hp.u.data(), w.layer, hp.layer, D, s.H);
    tile::mm(hp.c1.data(), Mp, ctx, D, hp.m1.data(), Mp, R, D, Mp, false);
    if (w.match_b1)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t c = 0; c < M; ++c) hp.c1[r * Mp + c] += w.match_b1[c];
  }
  const int64_t tiles = (s.N + kTile - 1) / kTile;
  parallel_for(tiles, tiles_per_piece(tiles), [&](int64_t b, int64_t e) {
    HeadScratch sc(s);
    for (int64_t t = b; t < e; ++t) {
      const int64_t n0 = t * kTile;
      head_tile(n0, std::min(kTile, s.N - n0), logits, ctx, req, item, item_ids, feats, w, hp, sc, s);
    }
  });
}

}  // namespace cpu
}  // namespace qgs
