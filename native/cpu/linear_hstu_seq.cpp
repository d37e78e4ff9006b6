// Fused inference forward of one Linear HSTU block over a packed token sequence (contract in
// qgs/linear_hstu_step.h, "sequence form"). Composed, the block is ~20 tensor ops over [T, ·]
// intermediates (LayerNorm, projection, SiLU, a split into four strided copies, the chunked
// recurrence, LayerNorm, gate, output projection, residual): at T = 1,000 tokens its allocations,
// copies and the chunked recurrence's Q Kᵀ blocks cost ~2 ms of a ~3 ms cold serving encode. Here:
// LayerNorm, projection (only its V and K rows when no output is wanted) and SiLU per block of rows
// while the block is in L1/L2, split over the pool; the recurrence token by token per (sequence,
// head) on a state held in a small buffer; then LayerNorm ⊙ U and the output projection onto x + bo,
// again per block of rows. The products are tile_gemm.h's register-blocked ones: as one BLAS call
// (10M multiply-adds at T = 1,000, below the size where BLAS threads pay) the projection ran on one
// thread while the pool's other thread waited, and its [T, P] result went through memory once more
// for the SiLU.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

// The vector helpers return 32-byte vectors from always-inlined functions: the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "hfg_simd.h"
#include "layer_norm_row.h"
#include "qgs/elementwise.h"
#include "qgs/linear_hstu_step.h"
#include "qgs/parallel.h"
#include "scratch.h"
#include "tile_gemm.h"

namespace qgs {

void linear_hstu_seq_check(const LinearHstuStepWeights& w, const LinearHstuSeqSizes& s, const float* write) {
  const std::string op = "linearHstuBlock: ";
  QGS_REQUIRE(s.T >= 0, op + "T (tokens) must be >= 0, got " + std::to_string(s.T));
  linear_hstu_weights_check(op, w, s.D, s.H, s.dk, s.dv, true);  // tokens write unless their weight is 0
  QGS_REQUIRE(s.B >= 1, op + "B (sequences) must be >= 1, got " + std::to_string(s.B));
  QGS_REQUIRE(s.offsets, op + "offsets must be non-null");
  QGS_REQUIRE(s.offsets[0] == 0, op + "offsets[0] must be 0, got " + std::to_string(s.offsets[0]));
  for (int64_t b = 0; b < s.B; ++b)
    QGS_REQUIRE(s.offsets[b + 1] >= s.offsets[b], op + "offsets must be non-decreasing, got offsets[" + std::to_string(b + 1) +
                                                      "] = " + std::to_string(s.offsets[b + 1]) + " < offsets[" +
                                                      std::to_string(b) + "] = " + std::to_string(s.offsets[b]));
  QGS_REQUIRE(s.offsets[s.B] == s.T, op + "offsets[B] must equal T = " + std::to_string(s.T) + ", got " +
                                         std::to_string(s.offsets[s.B]));
  if (write)
    for (int64_t t = 0; t < s.T; ++t)
      QGS_REQUIRE(write[t] >= 0.f && write[t] <= 1.f,
                  op + "write[" + std::to_string(t) + "] must be in [0, 1], got " + std::to_string(write[t]));
}

namespace cpu {
namespace {

using hfg_simd::load8;
using hfg_simd::store8;
using hfg_simd::v8f;

// Rows of a block: the tile products' scratch is kRows × r16(width) floats.
constexpr int64_t kRows = 32;

// Bᵀ for the tile products: out[d, j] = W[rows[j], d] for the selected rows of W [·, D] (row-major),
// zero-padded to ldb = r16(n) columns, so a product with it needs no tail handling.
struct PaddedT {
  std::vector<float> b;
  int64_t n = 0, ldb = 0;
};

PaddedT transpose_rows(const float* W, int64_t D, const int64_t* row0, const int64_t* count, int ranges) {
  PaddedT t;
  for (int r = 0; r < ranges; ++r) t.n += count[r];
  t.ldb = tile::r16(t.n);
  t.b.assign(static_cast<size_t>(D * t.ldb), 0.f);
  int64_t j = 0;
  for (int r = 0; r < ranges; ++r)
    for (int64_t i = 0; i < count[r]; ++i, ++j)
      for (int64_t d = 0; d < D; ++d) t.b[d * t.ldb + j] = W[(row0[r] + i) * D + d];
  return t;
}

// dst [T, n] = SiLU(LNin(x) · Wselᵀ + bsel), n = Σ count: the selected row ranges of the projection,
// concatenated. One pool piece does LayerNorm, product, bias and SiLU for kRows rows at a time.
void project_silu(float* dst, const float* x, const LinearHstuStepWeights& w, int64_t T, int64_t D, const int64_t* row0,
                  const int64_t* count, int ranges) {
  const PaddedT wt = transpose_rows(w.proj_w, D, row0, count, ranges);
  std::vector<float> bias(static_cast<size_t>(wt.n), 0.f);
  if (w.proj_b) {
    int64_t j = 0;
    for (int r = 0; r < ranges; ++r)
      for (int64_t i = 0; i < count[r]; ++i) bias[j++] = w.proj_b[row0[r] + i];
  }
  const int64_t n = wt.n, ldb = wt.ldb;
  // Widths that are whole 16-float strips (the QGS shapes) are written in place; others go through
  // a padded block and are copied out.
  const bool direct = n == ldb;
  parallel_for(T, kRows, [&](int64_t r0, int64_t r1) {
    auto y = scratch(kRows * D);
    auto pad = direct ? nullptr : scratch(kRows * ldb);
    float mean, rstd;
    for (int64_t a = r0; a < r1; a += kRows) {
      const int64_t m = std::min(kRows, r1 - a);
      float* c = direct ? dst + a * n : pad.get();
      for (int64_t i = 0; i < m; ++i) ln_row(y.get() + i * D, &mean, &rstd, x + (a + i) * D, w.ln_in_w, w.ln_in_b, D, w.eps_in);
      tile::mm(c, ldb, y.get(), D, wt.b.data(), ldb, m, D, ldb, false);
      for (int64_t i = 0; i < m; ++i) {
        float* QGS_RESTRICT ci = c + i * ldb;
        for (int64_t j = 0; j < n; ++j) ci[j] += bias[j];
      }
      // Inside the pool's region this runs on the calling thread (vectorised, no nested split).
      unary_f32(UnaryOp::Silu, c, c, m * ldb, 0.f, 0.f);
      if (!direct)
        for (int64_t i = 0; i < m; ++i) std::memcpy(dst + (a + i) * n, c + i * ldb, sizeof(float) * n);
    }
  });
}

// Where one token's pieces sit: u, q (output path only), v and k as row pointers + row strides.
struct Columns {
  const float *u, *v, *q, *k;
  int64_t su, sv, sq, sk;
};

// S = S0, or zeros without an initial state.
void start_state(float* S, const float* S0, int64_t per) {
  if (S0) {
    std::memcpy(S, S0, static_cast<size_t>(per) * sizeof(float));
  } else {
    std::fill(S, S + per, 0.f);
  }
}

// The recurrence of sequence b, head h over its tokens: o rows (null = not wanted) and the final S.
QGS_SIMD_CLONES void scan(float* o, float* S_final, const float* S0, const float* write, const Columns& c, float gamma,
                          int64_t t0, int64_t t1, int64_t h, int64_t dk, int64_t dv, int64_t Hv, float* QGS_RESTRICT S) {
  const int64_t per = dk * dv;
  start_state(S, S0, per);
  for (int64_t t = t0; t < t1; ++t) {
    const float wt = write ? write[t] : 1.f;
    const float a = wt * gamma + (1.f - wt);
    const float* QGS_RESTRICT k = c.k + t * c.sk + h * dk;
    const float* QGS_RESTRICT v = c.v + t * c.sv + h * dv;
    if (o) {
      const float* QGS_RESTRICT q = c.q + t * c.sq + h * dk;
      float* QGS_RESTRICT oh = o + t * Hv + h * dv;
      for (int64_t j = 0; j < dv; ++j) oh[j] = 0.f;
      for (int64_t i = 0; i < dk; ++i) {
        const float ki = wt * k[i], qi = q[i];
        float* QGS_RESTRICT Si = S + i * dv;
#pragma omp simd
        for (int64_t j = 0; j < dv; ++j) {
          const float nv = a * Si[j] + ki * v[j];
          Si[j] = nv;
          oh[j] += qi * nv;
        }
      }
    } else if (wt != 0.f) {  // a w = 0 token leaves S as it is (a = 1, no value)
      for (int64_t i = 0; i < dk; ++i) {
        const float ki = wt * k[i];
        float* QGS_RESTRICT Si = S + i * dv;
#pragma omp simd
        for (int64_t j = 0; j < dv; ++j) Si[j] = a * Si[j] + ki * v[j];
      }
    }
  }
  if (S_final) std::memcpy(S_final, S, static_cast<size_t>(per) * sizeof(float));
}

// Token t's step for head h: its decay a (γ where it writes, 1 where it does not), its key row, and
// its value row scaled by its write weight (dv = 8·NV).
template <int NV>
struct TokenStep {
  float a;
  const float* k;
  v8f vw[NV];
};

template <int NV>
__attribute__((always_inline)) inline TokenStep<NV> token_step(const Columns& c, const float* write, float gamma, int64_t t,
                                                               int64_t h, int64_t dk) {
  TokenStep<NV> s;
  const float wt = write ? write[t] : 1.f;
  s.a = wt * gamma + (1.f - wt);
  s.k = c.k + t * c.sk + h * dk;
  const float* v = c.v + t * c.sv + h * 8 * NV;
  for (int n = 0; n < NV; ++n) s.vw[n] = load8(v + 8 * n) * wt;
  return s;
}

// scan() for dv = 8·NV (the common head widths) in explicit 8-float vectors: the output
// accumulators stay in registers, split over four interleaved quarters of the dk rows so consecutive
// FMAs do not wait on each other (the generic loop's o[] load-add-store chain was ~1/3 of a
// 1,000-token encode).
template <int NV>
QGS_SIMD_CLONES void scan_v8(float* o, float* S_final, const float* S0, const float* write, const Columns& c, float gamma,
                             int64_t t0, int64_t t1, int64_t h, int64_t dk, int64_t Hv, float* QGS_RESTRICT S) {
  constexpr int DV = 8 * NV;
  const int64_t per = dk * DV;
  start_state(S, S0, per);
  if (o == nullptr) {
    // State only: two tokens per pass over S, S ← a₁a₂ S + a₂ k₁ v₁ᵀ + k₂ v₂ᵀ (v scaled by its write
    // weight), which halves the loads and stores of S that bound this loop.
    int64_t t = t0;
    for (; t + 2 <= t1; t += 2) {
      const TokenStep<NV> s1 = token_step<NV>(c, write, gamma, t, h, dk), s2 = token_step<NV>(c, write, gamma, t + 1, h, dk);
      const float a12 = s1.a * s2.a;
      for (int64_t i = 0; i < dk; ++i) {
        float* r = S + i * DV;
        const float c1 = s2.a * s1.k[i], c2 = s2.k[i];
        for (int n = 0; n < NV; ++n) store8(r + 8 * n, load8(r + 8 * n) * a12 + s1.vw[n] * c1 + s2.vw[n] * c2);
      }
    }
    if (t < t1) {
      const TokenStep<NV> st = token_step<NV>(c, write, gamma, t, h, dk);
      for (int64_t i = 0; i < dk; ++i) {
        float* r = S + i * DV;
        for (int n = 0; n < NV; ++n) store8(r + 8 * n, load8(r + 8 * n) * st.a + st.vw[n] * st.k[i]);
      }
    }
    if (S_final) std::memcpy(S_final, S, static_cast<size_t>(per) * sizeof(float));
    return;
  }
  for (int64_t t = t0; t < t1; ++t) {
    const TokenStep<NV> st = token_step<NV>(c, write, gamma, t, h, dk);
    const float a = st.a;
    const float* k = st.k;
    const v8f* vw = st.vw;
    {  // o is non-null here (the state-only case returned above)
      const float* q = c.q + t * c.sq + h * dk;
      // R accumulator chains over the dk rows: with two at dv = 16, the chained FMAs (dk / 2 deep,
      // 4–5 cycles each) bounded a token, not the state's loads and stores. R · NV ≤ 8 of the 16
      // AVX2 registers.
      constexpr int R = NV >= 4 ? 2 : 4;
      v8f acc[4][NV];
      for (int r = 0; r < 4; ++r)
        for (int n = 0; n < NV; ++n) acc[r][n] = v8f{};
      int64_t i = 0;
      for (; i + R <= dk; i += R) {
        for (int r = 0; r < R; ++r) {
          float* row = S + (i + r) * DV;
          const float kr = k[i + r], qr = q[i + r];
          for (int n = 0; n < NV; ++n) {
            const v8f nv = load8(row + 8 * n) * a + vw[n] * kr;
            store8(row + 8 * n, nv);
            acc[r][n] += nv * qr;
          }
        }
      }
      for (; i < dk; ++i) {
        float* row = S + i * DV;
        for (int n = 0; n < NV; ++n) {
          const v8f nv = load8(row + 8 * n) * a + vw[n] * k[i];
          store8(row + 8 * n, nv);
          acc[0][n] += nv * q[i];
        }
      }
      float* oh = o + t * Hv + h * DV;
      for (int n = 0; n < NV; ++n) store8(oh + 8 * n, (acc[0][n] + acc[1][n]) + (acc[2][n] + acc[3][n]));
    }
  }
  if (S_final) std::memcpy(S_final, S, static_cast<size_t>(per) * sizeof(float));
}

}  // namespace

void linear_hstu_seq_forward(float* out, float* state_out, const float* x, const float* state_in, const float* write,
                             const LinearHstuStepWeights& w, const LinearHstuSeqSizes& s) {
  linear_hstu_seq_check(w, s, write);
  QGS_REQUIRE(out || state_out, "linearHstuBlock: out and state_out are both null (nothing to compute)");
  const int64_t T = s.T, B = s.B, D = s.D, H = s.H, dk = s.dk, dv = s.dv;
  const int64_t Hv = H * dv, Hk = H * dk, P = H * (2 * dv + 2 * dk);
  QGS_REQUIRE(T == 0 || x, "linearHstuBlock: x must be non-null");
  const bool want_out = out != nullptr;

  // 1–2. SiLU(LNin(x) W + b): all of [U | V | Q | K] for the output path, only V and K for the state.
  std::unique_ptr<float[]> p;
  Columns c{};
  if (T > 0) {
    if (want_out) {
      p = scratch(T * P);
      const int64_t row0[1] = {0}, count[1] = {P};
      project_silu(p.get(), x, w, T, D, row0, count, 1);
      c = {p.get(), p.get() + Hv, p.get() + 2 * Hv, p.get() + 2 * Hv + Hk, P, P, P, P};
    } else {
      p = scratch(T * (Hv + Hk));
      const int64_t row0[2] = {Hv, 2 * Hv + Hk}, count[2] = {Hv, Hk};
      project_silu(p.get(), x, w, T, D, row0, count, 2);
      c = {nullptr, p.get(), nullptr, p.get() + Hv, 0, Hv + Hk, 0, Hv + Hk};
    }
  }

  // 3. The recurrence, one (sequence, head) per work item.
  auto o = want_out ? scratch(std::max<int64_t>(T * Hv, 1)) : nullptr;
  parallel_for(B * H, 1, [&](int64_t u0, int64_t u1) {
    auto S = scratch(dk * dv);
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t b = unit / H, h = unit % H;
      const int64_t off = (b * H + h) * dk * dv;
      float* so = state_out ? state_out + off : nullptr;
      const float* si = state_in ? state_in + off : nullptr;
      const int64_t t0 = s.offsets[b], t1 = s.offsets[b + 1];
      switch (dv) {
        case 8: scan_v8<1>(o.get(), so, si, write, c, w.decay[h], t0, t1, h, dk, Hv, S.get()); break;
        case 16: scan_v8<2>(o.get(), so, si, write, c, w.decay[h], t0, t1, h, dk, Hv, S.get()); break;
        case 32: scan_v8<4>(o.get(), so, si, write, c, w.decay[h], t0, t1, h, dk, Hv, S.get()); break;
        default: scan(o.get(), so, si, write, c, w.decay[h], t0, t1, h, dk, dv, Hv, S.get());
      }
    }
  });
  if (!want_out || T == 0) return;

  // 4. out = x + bo + (LNout(o) ⊙ u) Woᵀ, kRows rows at a time.
  const int64_t row0[1] = {0}, count[1] = {D};
  // Wo is [D, Hv]: its transpose [Hv, D] is "rows 0..D of Wo" laid out as columns.
  const PaddedT wo = transpose_rows(w.out_w, Hv, row0, count, 1);
  parallel_for(T, kRows, [&](int64_t r0, int64_t r1) {
    auto mrow = scratch(kRows * Hv);
    auto acc = scratch(kRows * wo.ldb);
    float mean, rstd;
    for (int64_t a = r0; a < r1; a += kRows) {
      const int64_t m = std::min(kRows, r1 - a);
      for (int64_t i = 0; i < m; ++i) {
        float* mi = mrow.get() + i * Hv;
        ln_row(mi, &mean, &rstd, o.get() + (a + i) * Hv, w.ln_out_w, w.ln_out_b, Hv, w.eps_out);
        const float* u = c.u + (a + i) * c.su;
        for (int64_t j = 0; j < Hv; ++j) mi[j] *= u[j];
      }
      tile::mm(acc.get(), wo.ldb, mrow.get(), Hv, wo.b.data(), wo.ldb, m, Hv, wo.ldb, false);
      for (int64_t i = 0; i < m; ++i) {
        const float* xr = x + (a + i) * D;
        const float* ar = acc.get() + i * wo.ldb;
        float* yr = out + (a + i) * D;
        for (int64_t d = 0; d < D; ++d) yr[d] = xr[d] + (w.out_b ? w.out_b[d] : 0.f) + ar[d];
      }
    }
  });
}

}  // namespace cpu
}  // namespace qgs
