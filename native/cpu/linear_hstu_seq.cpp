// Fused inference forward of one Linear HSTU block over a packed token sequence (contract in
// qgs/linear_hstu_step.h, "sequence form"). Composed, the block is ~20 tensor ops over [T, ·]
// intermediates (LayerNorm, projection, SiLU, a split into four strided copies, the chunked
// recurrence, LayerNorm, gate, output projection, residual): at T = 1,000 tokens its allocations,
// copies and the chunked recurrence's Q Kᵀ blocks cost ~2 ms of a ~3 ms cold serving encode. Here:
// one LayerNorm pass, one BLAS projection (only its V and K rows when no output is wanted), SiLU in
// place, the recurrence token by token per (sequence, head) on a state held in a small buffer, and
// one BLAS output projection onto x + bo.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

// The vector helpers return 32-byte vectors from always-inlined functions: the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "hfg_simd.h"
#include "layer_norm_row.h"
#include "qgs/elementwise.h"
#include "qgs/linalg.h"
#include "qgs/linear_hstu_step.h"
#include "qgs/parallel.h"

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

// Uninitialised float scratch (every element is written before it is read).
std::unique_ptr<float[]> scratch(int64_t n) { return std::unique_ptr<float[]>(new float[static_cast<size_t>(n)]); }

// dst [T, rows] = SiLU(y [T, D] · W[row0 : row0 + rows]ᵀ + b[row0 : row0 + rows]).
void project_silu(float* dst, const float* y, const LinearHstuStepWeights& w, int64_t T, int64_t D, int64_t row0,
                  int64_t rows) {
  if (w.proj_b) broadcast_rows(dst, w.proj_b + row0, T, rows);
  gemm(dst, y, w.proj_w + row0 * D, 1, T, rows, D, false, true, 0, 0, 0, 1.f, w.proj_b ? 1.f : 0.f);
  unary_f32(UnaryOp::Silu, dst, dst, T * rows, 0.f, 0.f);
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

// scan() for dv = 8·NV (the common head widths) in explicit 8-float vectors: the output
// accumulators stay in registers, split over two interleaved halves of the dk rows so consecutive
// FMAs do not wait on each other (the generic loop's o[] load-add-store chain was ~1/3 of a
// 1,000-token encode).
template <int NV>
QGS_SIMD_CLONES void scan_v8(float* o, float* S_final, const float* S0, const float* write, const Columns& c, float gamma,
                             int64_t t0, int64_t t1, int64_t h, int64_t dk, int64_t Hv, float* QGS_RESTRICT S) {
  constexpr int DV = 8 * NV;
  const int64_t per = dk * DV;
  start_state(S, S0, per);
  for (int64_t t = t0; t < t1; ++t) {
    const float wt = write ? write[t] : 1.f;
    const float a = wt * gamma + (1.f - wt);
    const float* k = c.k + t * c.sk + h * dk;
    const float* v = c.v + t * c.sv + h * DV;
    v8f vw[NV];
    for (int n = 0; n < NV; ++n) vw[n] = load8(v + 8 * n) * wt;
    if (o) {
      const float* q = c.q + t * c.sq + h * dk;
      v8f acc0[NV], acc1[NV];
      for (int n = 0; n < NV; ++n) acc0[n] = acc1[n] = v8f{};
      int64_t i = 0;
      for (; i + 2 <= dk; i += 2) {
        float* r0 = S + i * DV;
        float* r1 = r0 + DV;
        const float k0 = k[i], k1 = k[i + 1], q0 = q[i], q1 = q[i + 1];
        for (int n = 0; n < NV; ++n) {
          const v8f n0 = load8(r0 + 8 * n) * a + vw[n] * k0;
          const v8f n1 = load8(r1 + 8 * n) * a + vw[n] * k1;
          store8(r0 + 8 * n, n0);
          store8(r1 + 8 * n, n1);
          acc0[n] += n0 * q0;
          acc1[n] += n1 * q1;
        }
      }
      if (i < dk) {
        float* r0 = S + i * DV;
        for (int n = 0; n < NV; ++n) {
          const v8f n0 = load8(r0 + 8 * n) * a + vw[n] * k[i];
          store8(r0 + 8 * n, n0);
          acc0[n] += n0 * q[i];
        }
      }
      float* oh = o + t * Hv + h * DV;
      for (int n = 0; n < NV; ++n) store8(oh + 8 * n, acc0[n] + acc1[n]);
    } else if (wt != 0.f) {
      for (int64_t i = 0; i < dk; ++i) {
        float* r = S + i * DV;
        const float ki = k[i];
        for (int n = 0; n < NV; ++n) store8(r + 8 * n, load8(r + 8 * n) * a + vw[n] * ki);
      }
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

  // 1. y = LNin(x), rows split across the pool.
  auto y = scratch(std::max<int64_t>(T * D, 1));
  parallel_for(T, 64, [&](int64_t r0, int64_t r1) {
    float mean, rstd;
    for (int64_t r = r0; r < r1; ++r) ln_row(y.get() + r * D, &mean, &rstd, x + r * D, w.ln_in_w, w.ln_in_b, D, w.eps_in);
  });

  // 2. SiLU projection: all of [U | V | Q | K] for the output path, only V and K for the state.
  std::unique_ptr<float[]> p, pv, pk;
  Columns c{};
  if (T > 0) {
    if (want_out) {
      p = scratch(T * P);
      project_silu(p.get(), y.get(), w, T, D, 0, P);
      c = {p.get(), p.get() + Hv, p.get() + 2 * Hv, p.get() + 2 * Hv + Hk, P, P, P, P};
    } else {
      pv = scratch(T * Hv);
      pk = scratch(T * Hk);
      project_silu(pv.get(), y.get(), w, T, D, Hv, Hv);
      project_silu(pk.get(), y.get(), w, T, D, 2 * Hv + Hk, Hk);
      c = {nullptr, pv.get(), nullptr, pk.get(), 0, Hv, 0, Hk};
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

  // 4. m = LNout(o) ⊙ u (in place in o), out = x + bo, then out += m Woᵀ.
  parallel_for(T, 64, [&](int64_t r0, int64_t r1) {
    auto row = scratch(Hv);
    float mean, rstd;
    for (int64_t r = r0; r < r1; ++r) {
      float* orow = o.get() + r * Hv;
      ln_row(row.get(), &mean, &rstd, orow, w.ln_out_w, w.ln_out_b, Hv, w.eps_out);
      const float* u = c.u + r * c.su;
      for (int64_t j = 0; j < Hv; ++j) orow[j] = row[j] * u[j];
      const float* xr = x + r * D;
      float* yr = out + r * D;
      for (int64_t d = 0; d < D; ++d) yr[d] = xr[d] + (w.out_b ? w.out_b[d] : 0.f);
    }
  });
  gemm(out, o.get(), w.out_w, 1, T, D, Hv, false, true, 0, 0, 0, 1.f, 1.f);
}

}  // namespace cpu
}  // namespace qgs
