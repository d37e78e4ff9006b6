// CPU kernel of the causal linear recurrence (DESIGN.md §4.1), chunked form.
//
// Per (sequence, head) work item, chunks of n ≤ C steps with A_i = Σ_{m≤i} log γ_m (inclusive, relative
// to the chunk start, in double) and M[i][j] = exp(A_i − A_j) for j ≤ i (≤ 1, so never overflows):
//   O   = diag(e^A) Q S_prev + (M ⊙ Q Kᵀ) V                  (inter + intra chunk)
//   S'  = e^{A_last} S_prev + (diag(e^{A_last − A}) K)ᵀ V
// Backward (reverse over chunks; chunk-start states recomputed by a state-only forward pass into a
// per-thread scratch, nothing saved by the forward), with G = c ⊙ dO and Rc = γ_next R_next:
//   dQ  = diag(e^A) G Sᵀ + (M ⊙ G Vᵀ) K
//   dK  = diag(e^{A_last − A}) V Rcᵀ + (M ⊙ G Vᵀ)ᵀ Q
//   dV  = diag(e^{A_last − A}) K Rc + (M ⊙ Q Kᵀ)ᵀ G
//   dγ_t = ⟨R_t, S_{t−1}⟩ expanded over the chunk (four terms, below) — computed directly rather than
//          as (q·dq − k·dk) cumsums divided by γ, which loses all precision when γ_t is tiny.
//   Rc' = e^{A_last} Rc + (diag(e^A) Q)ᵀ G ;  dS_init = Rc' after the first chunk.
#include "qgs/linrec.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "balanced.h"
#include "qgs/common.h"
#include "tile_gemm.h"

namespace qgs {

namespace {

struct Seq {
  int64_t start, len, cap;  // rows [start, start+cap) belong to the sequence; the first len are real
};

Seq seq_of(const LinrecConfig& c, int64_t b) {
  if (c.offsets) return {c.offsets[b], c.offsets[b + 1] - c.offsets[b], c.offsets[b + 1] - c.offsets[b]};
  int64_t len = c.lengths ? c.lengths[b] : c.max_len;
  return {b * c.max_len, len, c.max_len};
}

}  // namespace

int64_t linrec_rows(const LinrecConfig& c) {
  QGS_REQUIRE(c.batch >= 0, "batch: expected >= 0, got " + std::to_string(c.batch));
  QGS_REQUIRE(c.heads >= 1, "heads: expected >= 1, got " + std::to_string(c.heads));
  QGS_REQUIRE(c.dk >= 1 && c.dv >= 1, "head dims: expected dk, dv >= 1, got dk=" + std::to_string(c.dk) + " dv=" + std::to_string(c.dv));
  QGS_REQUIRE(c.chunk >= 1 && c.chunk <= 1024, "chunk: expected 1..1024, got " + std::to_string(c.chunk));
  QGS_REQUIRE(std::isfinite(c.scale), "scale: expected a finite number");
  if (c.offsets) {
    QGS_REQUIRE(c.offsets[0] == 0, "offsets[0]: expected 0, got " + std::to_string(c.offsets[0]));
    for (int64_t b = 0; b < c.batch; ++b) {
      QGS_REQUIRE(c.offsets[b + 1] >= c.offsets[b], "offsets: expected non-decreasing, got offsets[" + std::to_string(b + 1) +
                                                        "]=" + std::to_string(c.offsets[b + 1]) + " < offsets[" +
                                                        std::to_string(b) + "]=" + std::to_string(c.offsets[b]));
    }
    return c.offsets[c.batch];
  }
  QGS_REQUIRE(c.max_len >= 0, "max_len: expected >= 0, got " + std::to_string(c.max_len));
  if (c.lengths) {
    for (int64_t b = 0; b < c.batch; ++b) {
      QGS_REQUIRE(c.lengths[b] >= 0 && c.lengths[b] <= c.max_len, "lengths[" + std::to_string(b) + "]: expected 0.." +
                                                                        std::to_string(c.max_len) + ", got " +
                                                                        std::to_string(c.lengths[b]));
    }
  }
  return c.batch * c.max_len;
}

namespace cpu {
namespace {

using tile::mm;
using tile::r16;

void check_decay(const float* decay, const LinrecConfig& c, int64_t rows) {
  if (c.decay == LinrecDecay::None) return;
  int64_t n = c.decay == LinrecDecay::PerHead ? c.heads : rows * c.heads;
  QGS_REQUIRE(decay != nullptr || n == 0, "decay: missing decay values");
  for (int64_t i = 0; i < n; ++i) {
    float g = decay[i];
    QGS_REQUIRE(g >= 0.f && g <= 1.f, "decay: expected values in [0, 1], got " + std::to_string(g) + " at flat index " +
                                          std::to_string(i));
  }
}

// Per-thread buffers, sized once per call.
struct Scratch {
  int64_t C, Cp, dkp, dvp;
  std::vector<float> rev, S, Qc, Kc, Vc, Gc, KcT, VcT, Qs, KdT, P, Pg, X, T1, T2, O, O2, M, E, F, ST, RcT, Rc, y, z;
  std::vector<double> A, A2, ell, pw;  // A2: e^{-A} (per-step M)
  std::vector<float> states;  // backward: chunk-start states
  Scratch(const LinrecConfig& c, bool backward) {
    C = c.chunk;
    Cp = r16(C);
    dkp = r16(c.dk);
    dvp = r16(c.dv);
    S.assign(c.dk * dvp, 0.f);
    Qc.assign(C * dkp, 0.f);
    Kc.assign(C * dkp, 0.f);
    Vc.assign(C * dvp, 0.f);
    KcT.assign(c.dk * Cp, 0.f);
    Qs.assign(C * dkp, 0.f);
    KdT.assign(C * dkp, 0.f);
    P.assign(C * Cp, 0.f);
    O.assign(C * dvp, 0.f);
    M.assign(C * Cp, 0.f);
    E.assign(C, 0.f);
    F.assign(C, 0.f);
    A.assign(C, 0.0);
    A2.assign(Cp, 0.0);
    ell.assign(C, 0.0);
    pw.assign(C + 1, 0.0);
    rev.assign(2 * Cp, 0.f);
    if (backward) {
      Gc.assign(C * dvp, 0.f);
      VcT.assign(c.dv * Cp, 0.f);
      Pg.assign(C * Cp, 0.f);
      X.assign(C * Cp, 0.f);
      T1.assign(C * Cp, 0.f);
      T2.assign(C * std::max(dkp, dvp), 0.f);
      O2.assign(C * std::max(dkp, dvp), 0.f);
      ST.assign(c.dv * dkp, 0.f);
      RcT.assign(c.dv * dkp, 0.f);
      Rc.assign(c.dk * dvp, 0.f);
      y.assign(C, 0.f);
      z.assign(C, 0.f);
    }
  }
};

// log γ per step of the chunk, A (inclusive cumsum), E = e^A, F = e^{A_last − A}, M (lower, zero upper).
QGS_SIMD_CLONES void chunk_decays(Scratch& s, const float* decay, const LinrecConfig& c, int64_t row0, int64_t h, int64_t n,
                                  bool need_M) {
  const int64_t np = r16(n);
  if (c.decay == LinrecDecay::None) {
    for (int64_t i = 0; i < n; ++i) s.E[i] = s.F[i] = 1.f;
    if (need_M)
      for (int64_t i = 0; i < n; ++i) {
        float* m = s.M.data() + i * s.Cp;
#pragma omp simd
        for (int64_t j = 0; j < np; ++j) m[j] = j <= i ? 1.f : 0.f;
      }
    return;
  }
  const double lmin = std::log(static_cast<double>(FLT_MIN));
  if (c.decay == LinrecDecay::PerHead) {
    // Constant γ: E_i = γ^{i+1}, F_i = γ^{n−1−i}, M[i][j] = γ^{i−j} all come from one table of n+1
    // powers instead of O(n) + O(n²) exponentials.
    const double g = decay[h];
    const double ell = g >= 1.0 ? 0.0 : std::max(std::log(g), lmin);
    s.ell[0] = ell;
    std::vector<double>& pw = s.pw;
    for (int64_t d = 0; d <= n; ++d) pw[d] = std::exp(static_cast<double>(d) * ell);
    for (int64_t i = 0; i < n; ++i) {
      s.E[i] = static_cast<float>(pw[i + 1]);
      s.F[i] = static_cast<float>(pw[n - 1 - i]);
    }
    if (need_M) {
      // rev[k] = γ^{n−1−k}: row i of M reads rev[n−1−i+j], contiguous in j (vectorises).
      float* rev = s.rev.data();
      for (int64_t k = 0; k < n + np; ++k) rev[k] = k <= n - 1 ? static_cast<float>(pw[n - 1 - k]) : 0.f;
      for (int64_t i = 0; i < n; ++i) {
        float* m = s.M.data() + i * s.Cp;
        const float* r = rev + (n - 1 - i);
#pragma omp simd
        for (int64_t j = 0; j < np; ++j) m[j] = j <= i ? r[j] : 0.f;
      }
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double g = decay[(row0 + i) * c.heads + h];
    s.ell[i] = g >= 1.0 ? 0.0 : std::max(std::log(g), lmin);
  }
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc += s.ell[i];
    s.A[i] = acc;
  }
  for (int64_t i = 0; i < n; ++i) {
    s.E[i] = static_cast<float>(std::exp(s.A[i]));
    s.F[i] = static_cast<float>(std::exp(s.A[n - 1] - s.A[i]));
  }
  if (!need_M) return;
  if (s.A[n - 1] >= -600.0) {
    // M[i][j] = e^{A_i} · e^{−A_j}: 2n exponentials instead of n²/2 (a 64-step chunk spent ~80 µs
    // in double exp per head, most of the QGS encoder's time). A is non-increasing, so every factor
    // lies in [e^{−600}, e^{600}], well inside double range, and the product is as accurate as
    // exp(A_i − A_j) before the cast to float. Steeper chunks (possible only with decays far below
    // FLT_MIN^{1/10}) keep the pairwise form.
    double* ep = s.pw.data();  // n + 1 >= n entries
    double* em = s.A2.data();
    for (int64_t i = 0; i < n; ++i) ep[i] = std::exp(s.A[i]), em[i] = std::exp(-s.A[i]);
    for (int64_t i = 0; i < n; ++i) {
      float* m = s.M.data() + i * s.Cp;
      const double ei = ep[i];
#pragma omp simd
      for (int64_t j = 0; j < np; ++j) m[j] = j <= i ? static_cast<float>(ei * em[j]) : 0.f;
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    float* m = s.M.data() + i * s.Cp;
    for (int64_t j = 0; j < np; ++j) m[j] = j <= i ? static_cast<float>(std::exp(s.A[i] - s.A[j])) : 0.f;
  }
}

// Gathers n rows of head h into a dense [n, ld] tile (zero padded).
QGS_SIMD_CLONES void gather(float* QGS_RESTRICT dst, int64_t ld, const float* QGS_RESTRICT src, int64_t row_stride, int64_t off,
                            int64_t n, int64_t d) {
  for (int64_t i = 0; i < n; ++i) {
    const float* r = src + i * row_stride + off;
    float* o = dst + i * ld;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) o[j] = r[j];  // inline copy: rows are short, memcpy calls cost more
    for (int64_t j = d; j < ld; ++j) o[j] = 0.f;
  }
}

float scale_at(const LinrecConfig& c, int64_t t) { return c.inv_t ? c.scale / static_cast<float>(t + 1) : c.scale; }

// S ← e^{A_last} S + (diag(F) K)ᵀ V for the chunk in s (KcT, Vc, F, E filled).
QGS_SIMD_CLONES void advance_state(Scratch& s, float* S, int64_t dk, int64_t n) {
  float* kd = s.KdT.data();  // [n, dkp]: rows k_j · F_j, used transposed
  for (int64_t j = 0; j < n; ++j) {
    const float f = s.F[j];
    const float* kr = s.Kc.data() + j * s.dkp;
#pragma omp simd
    for (int64_t p = 0; p < s.dkp; ++p) kd[j * s.dkp + p] = kr[p] * f;
  }
  const float el = s.E[n - 1];
  if (el != 1.f)
    for (int64_t i = 0; i < dk * s.dvp; ++i) S[i] *= el;
  mm(S, s.dvp, kd, s.dkp, s.Vc.data(), s.dvp, dk, n, s.dvp, true, tile::Tri::Full, true);
}

void load_chunk_kv(Scratch& s, const float* k, const float* v, const LinrecConfig& c, int64_t row0, int64_t h, int64_t n) {
  const int64_t rsk = c.heads * c.dk, rsv = c.heads * c.dv;
  gather(s.Vc.data(), s.dvp, v + row0 * rsv, rsv, h * c.dv, n, c.dv);
  gather(s.Kc.data(), s.dkp, k + row0 * rsk, rsk, h * c.dk, n, c.dk);
  tile::transpose(s.KcT.data(), s.Cp, s.Kc.data(), s.dkp, n, c.dk);
}

QGS_SIMD_CLONES void forward_item(int64_t item, Scratch& s, float* out, float* state_out, const float* q, const float* k, const float* v,
                  const float* decay, const float* init, const LinrecConfig& c) {
  const int64_t b = item / c.heads, h = item % c.heads;
  const Seq sq = seq_of(c, b);
  const int64_t dk = c.dk, dv = c.dv, rsq = c.heads * dk, rsv = c.heads * dv;
  float* S = s.S.data();
  for (int64_t p = 0; p < dk; ++p) {
    float* r = S + p * s.dvp;
    if (init) std::memcpy(r, init + ((b * c.heads + h) * dk + p) * dv, sizeof(float) * dv);
    else std::memset(r, 0, sizeof(float) * dv);
    for (int64_t j = dv; j < s.dvp; ++j) r[j] = 0.f;
  }
  for (int64_t c0 = 0; c0 < sq.len; c0 += s.C) {
    const int64_t n = std::min(s.C, sq.len - c0), np = r16(n), row0 = sq.start + c0;
    gather(s.Qc.data(), s.dkp, q + row0 * rsq, rsq, h * dk, n, dk);
    load_chunk_kv(s, k, v, c, row0, h, n);
    chunk_decays(s, decay, c, row0, h, n, true);
    // P = M ⊙ (Q Kᵀ)
    mm(s.P.data(), s.Cp, s.Qc.data(), s.dkp, s.KcT.data(), s.Cp, n, dk, np, false, tile::Tri::LowerCols);
    for (int64_t i = 0; i < n; ++i) {
      float* pr = s.P.data() + i * s.Cp;
      const float* mr = s.M.data() + i * s.Cp;
#pragma omp simd
      for (int64_t j = 0; j < np; ++j) pr[j] = j <= i ? pr[j] * mr[j] : 0.f;  // past the diagonal: unwritten
    }
    // O = diag(e^A) Q S + P V
    for (int64_t i = 0; i < n; ++i)
      for (int64_t p = 0; p < s.dkp; ++p) s.Qs[i * s.dkp + p] = s.Qc[i * s.dkp + p] * s.E[i];
    mm(s.O.data(), s.dvp, s.Qs.data(), s.dkp, S, s.dvp, n, dk, s.dvp, false);
    mm(s.O.data(), s.dvp, s.P.data(), s.Cp, s.Vc.data(), s.dvp, n, n, s.dvp, true, tile::Tri::LowerK);
    for (int64_t i = 0; i < n; ++i) {
      const float ci = scale_at(c, c0 + i);
      float* o = out + (row0 + i) * rsv + h * dv;
      const float* src = s.O.data() + i * s.dvp;
      for (int64_t j = 0; j < dv; ++j) o[j] = ci * src[j];
    }
    advance_state(s, S, dk, n);
  }
  for (int64_t r = sq.start + sq.len; r < sq.start + sq.cap; ++r) std::memset(out + r * rsv + h * dv, 0, sizeof(float) * dv);
  if (state_out) {
    for (int64_t p = 0; p < dk; ++p)
      std::memcpy(state_out + ((b * c.heads + h) * dk + p) * dv, S + p * s.dvp, sizeof(float) * dv);
  }
}

QGS_SIMD_CLONES void backward_item(int64_t item, Scratch& s, float* dq, float* dk_out, float* dv_out, float* ddecay, double* dhead,
                   float* dinit, const float* q, const float* k, const float* v, const float* decay, const float* init,
                   const float* dout, const float* dstate_out, const LinrecConfig& c) {
  const int64_t b = item / c.heads, h = item % c.heads;
  const Seq sq = seq_of(c, b);
  const int64_t dk = c.dk, dv = c.dv, rsq = c.heads * dk, rsv = c.heads * dv;
  const int64_t sdim = dk * s.dvp;
  const int64_t nch = (sq.len + s.C - 1) / s.C;
  const bool want_decay = c.decay != LinrecDecay::None && (ddecay != nullptr || dhead != nullptr);
  // Pass 1: chunk-start states (fp32), recomputed instead of saved by the forward.
  s.states.resize(static_cast<size_t>(std::max<int64_t>(nch, 1) * sdim));
  float* S = s.states.data();
  for (int64_t p = 0; p < dk; ++p) {
    float* r = S + p * s.dvp;
    if (init) std::memcpy(r, init + ((b * c.heads + h) * dk + p) * dv, sizeof(float) * dv);
    else std::memset(r, 0, sizeof(float) * dv);
    for (int64_t j = dv; j < s.dvp; ++j) r[j] = 0.f;
  }
  for (int64_t ci = 0; ci + 1 < nch; ++ci) {
    const int64_t c0 = ci * s.C, n = std::min(s.C, sq.len - c0), row0 = sq.start + c0;
    load_chunk_kv(s, k, v, c, row0, h, n);
    chunk_decays(s, decay, c, row0, h, n, false);
    float* next = s.states.data() + (ci + 1) * sdim;
    std::memcpy(next, s.states.data() + ci * sdim, sizeof(float) * sdim);
    advance_state(s, next, dk, n);
  }
  // Rc = dS_final (zero padded)
  float* Rc = s.Rc.data();
  for (int64_t p = 0; p < dk; ++p) {
    float* r = Rc + p * s.dvp;
    if (dstate_out) std::memcpy(r, dstate_out + ((b * c.heads + h) * dk + p) * dv, sizeof(float) * dv);
    else std::memset(r, 0, sizeof(float) * dv);
    for (int64_t j = dv; j < s.dvp; ++j) r[j] = 0.f;
  }
  double dsum = 0;  // per-head decay gradient of this item
  for (int64_t ci = nch - 1; ci >= 0; --ci) {
    const int64_t c0 = ci * s.C, n = std::min(s.C, sq.len - c0), np = r16(n), row0 = sq.start + c0;
    const float* Sp = s.states.data() + ci * sdim;
    gather(s.Qc.data(), s.dkp, q + row0 * rsq, rsq, h * dk, n, dk);
    load_chunk_kv(s, k, v, c, row0, h, n);
    if (dout) gather(s.Gc.data(), s.dvp, dout + row0 * rsv, rsv, h * dv, n, dv);
    else std::fill(s.Gc.begin(), s.Gc.end(), 0.f);
    for (int64_t i = 0; i < n; ++i) {
      const float sc = scale_at(c, c0 + i);
      for (int64_t j = 0; j < dv; ++j) s.Gc[i * s.dvp + j] *= sc;
    }
    tile::transpose(s.VcT.data(), s.Cp, s.Vc.data(), s.dvp, n, dv);
    chunk_decays(s, decay, c, row0, h, n, true);
    tile::transpose(s.ST.data(), s.dkp, Sp, s.dvp, dk, dv);   // ST [dv, dkp]
    tile::transpose(s.RcT.data(), s.dkp, Rc, s.dvp, dk, dv);  // RcT [dv, dkp]
    // P_raw = Q Kᵀ, Pg_raw = G Vᵀ; X = P_raw ⊙ Pg_raw (for dγ); P, Pg masked and decayed.
    mm(s.P.data(), s.Cp, s.Qc.data(), s.dkp, s.KcT.data(), s.Cp, n, dk, np, false, tile::Tri::LowerCols);
    mm(s.Pg.data(), s.Cp, s.Gc.data(), s.dvp, s.VcT.data(), s.Cp, n, dv, np, false, tile::Tri::LowerCols);
    for (int64_t i = 0; i < n; ++i) {
      float* pr = s.P.data() + i * s.Cp;
      float* gr = s.Pg.data() + i * s.Cp;
      float* xr = s.X.data() + i * s.Cp;
      const float* mr = s.M.data() + i * s.Cp;
      if (want_decay)
#pragma omp simd
        for (int64_t j = 0; j < np; ++j) xr[j] = j <= i ? pr[j] * gr[j] : 0.f;
#pragma omp simd
      for (int64_t j = 0; j < np; ++j) {
        pr[j] = j <= i ? pr[j] * mr[j] : 0.f;
        gr[j] = j <= i ? gr[j] * mr[j] : 0.f;
      }
    }
    // GS = G Sᵀ  [n, dkp];  dQ = diag(E) GS + Pg K
    float* GS = s.T2.data();
    mm(GS, s.dkp, s.Gc.data(), s.dvp, s.ST.data(), s.dkp, n, dv, s.dkp, false);
    float* D = s.O2.data();
    mm(D, s.dkp, s.Pg.data(), s.Cp, s.Kc.data(), s.dkp, n, n, s.dkp, false, tile::Tri::LowerK);
    if (want_decay)
      for (int64_t i = 0; i < n; ++i) s.z[i] = tile::dot(s.Qc.data() + i * s.dkp, GS + i * s.dkp, dk);
    if (dq) {
      for (int64_t i = 0; i < n; ++i) {
        float* o = dq + (row0 + i) * rsq + h * dk;
        for (int64_t p = 0; p < dk; ++p) o[p] = D[i * s.dkp + p] + s.E[i] * GS[i * s.dkp + p];
      }
    }
    // VR = V Rcᵀ [n, dkp];  dK = diag(F) VR + Pgᵀ Q
    float* VR = s.T2.data();
    mm(VR, s.dkp, s.Vc.data(), s.dvp, s.RcT.data(), s.dkp, n, dv, s.dkp, false);
    if (want_decay)
      for (int64_t j = 0; j < n; ++j) s.y[j] = tile::dot(s.Kc.data() + j * s.dkp, VR + j * s.dkp, dk);
    mm(D, s.dkp, s.Pg.data(), s.Cp, s.Qc.data(), s.dkp, n, n, s.dkp, false, tile::Tri::UpperK, true);  // Pgᵀ Q
    if (dk_out) {
      for (int64_t i = 0; i < n; ++i) {
        float* o = dk_out + (row0 + i) * rsq + h * dk;
        for (int64_t p = 0; p < dk; ++p) o[p] = D[i * s.dkp + p] + s.F[i] * VR[i * s.dkp + p];
      }
    }
    // KR = K Rc [n, dvp];  dV = diag(F) KR + Pᵀ G
    if (dv_out) {
      float* KR = s.T2.data();
      mm(KR, s.dvp, s.Kc.data(), s.dkp, Rc, s.dvp, n, dk, s.dvp, false);
      mm(D, s.dvp, s.P.data(), s.Cp, s.Gc.data(), s.dvp, n, n, s.dvp, false, tile::Tri::UpperK, true);  // Pᵀ G
      for (int64_t i = 0; i < n; ++i) {
        float* o = dv_out + (row0 + i) * rsv + h * dv;
        for (int64_t j = 0; j < dv; ++j) o[j] = D[i * s.dvp + j] + s.F[i] * KR[i * s.dvp + j];
      }
    }
    if (want_decay && c.decay == LinrecDecay::PerHead) {
      // Only Σ_t dγ_t is needed, and with M[i][j] = γ^{i−j} every term of dγ_t below is a power γ^p
      // summed over the p steps it spans (= d γ^p / dγ = p γ^{p−1}): O(n²) per chunk instead of O(n³).
      const std::vector<double>& pw = s.pw;
      double rs = 0;
      for (int64_t p = 0; p < dk; ++p) rs += tile::dot(Rc + p * s.dvp, Sp + p * s.dvp, dv);
      double sum = static_cast<double>(n) * pw[n - 1] * rs;
      for (int64_t j = 0; j + 1 < n; ++j) sum += static_cast<double>(s.y[j]) * static_cast<double>(n - 1 - j) * pw[n - 2 - j];
      for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(s.z[i]) * static_cast<double>(i + 1) * pw[i];
      for (int64_t i = 1; i < n; ++i) {
        const float* xr = s.X.data() + i * s.Cp;
        double r = 0;
        for (int64_t j = 0; j < i; ++j) r += static_cast<double>(xr[j]) * static_cast<double>(i - j) * pw[i - j - 1];
        sum += r;
      }
      dsum += sum;
    } else if (want_decay) {
      // dγ_t = ⟨R_t, S_{t−1}⟩ with R_t = F_t Rc + Σ_{i≥t} M[i][t] q_iᵀ g_i and
      // S_{t−1} = E_{t−1} S_prev + Σ_{j<t} M[t−1][j] k_jᵀ v_j (E_{−1} = 1):
      //   F_t E_{t−1} ⟨Rc, S_prev⟩ + F_t Σ_{j<t} M[t−1][j] y_j + E_{t−1} Σ_{i≥t} M[i][t] z_i
      //   + Σ_{i≥t} M[i][t] Σ_{j<t} M[t−1][j] X[i][j],  y_j = k_j·(Rc v_j), z_i = q_i·(S_prev g_i).
      double rs = 0;
      for (int64_t p = 0; p < dk; ++p) rs += tile::dot(Rc + p * s.dvp, Sp + p * s.dvp, dv);
      for (int64_t t = 0; t < n; ++t) {
        const double Eprev = t == 0 ? 1.0 : s.E[t - 1];
        double term = s.F[t] * Eprev * rs;
        const float* mprev = t > 0 ? s.M.data() + (t - 1) * s.Cp : nullptr;
        if (t > 0) term += s.F[t] * static_cast<double>(tile::dot(mprev, s.y.data(), t));
        double sc = 0;
        for (int64_t i = t; i < n; ++i) {
          const double mit = s.M[i * s.Cp + t];
          sc += mit * s.z[i];
          if (t > 0) term += mit * static_cast<double>(tile::dot(mprev, s.X.data() + i * s.Cp, t));
        }
        term += Eprev * sc;
        if (ddecay && c.decay == LinrecDecay::PerStep) ddecay[(row0 + t) * c.heads + h] = static_cast<float>(term);
        dsum += term;
      }
    }
    // Rc ← e^{A_last} Rc + (diag(E) Q)ᵀ G
    for (int64_t i = 0; i < n; ++i)
      for (int64_t p = 0; p < s.dkp; ++p) s.Qs[i * s.dkp + p] = s.Qc[i * s.dkp + p] * s.E[i];
    const float el = s.E[n - 1];
    if (el != 1.f)
      for (int64_t i = 0; i < sdim; ++i) Rc[i] *= el;
    mm(Rc, s.dvp, s.Qs.data(), s.dkp, s.Gc.data(), s.dvp, dk, n, s.dvp, true, tile::Tri::Full, true);  // (diag(E) Q)ᵀ G
  }
  // Padding rows: zero gradients.
  for (int64_t r = sq.start + sq.len; r < sq.start + sq.cap; ++r) {
    if (dq) std::memset(dq + r * rsq + h * dk, 0, sizeof(float) * dk);
    if (dk_out) std::memset(dk_out + r * rsq + h * dk, 0, sizeof(float) * dk);
    if (dv_out) std::memset(dv_out + r * rsv + h * dv, 0, sizeof(float) * dv);
    if (ddecay && c.decay == LinrecDecay::PerStep) ddecay[r * c.heads + h] = 0.f;
  }
  if (dhead) dhead[item] = dsum;
  if (dinit) {
    for (int64_t p = 0; p < dk; ++p)
      std::memcpy(dinit + ((b * c.heads + h) * dk + p) * dv, Rc + p * s.dvp, sizeof(float) * dv);
  }
}

std::vector<int64_t> item_costs(const LinrecConfig& c) {
  std::vector<int64_t> cost(static_cast<size_t>(c.batch * c.heads));
  for (int64_t b = 0; b < c.batch; ++b) {
    Seq sq = seq_of(c, b);
    for (int64_t h = 0; h < c.heads; ++h) cost[b * c.heads + h] = sq.len + 1;
  }
  return cost;
}

}  // namespace

void linrec_forward(float* out, float* state_out, const float* q, const float* k, const float* v, const float* decay,
                    const float* init_state, const LinrecConfig& cfg) {
  const int64_t rows = linrec_rows(cfg);
  QGS_REQUIRE(out != nullptr || rows == 0, "out: missing");
  check_decay(decay, cfg, rows);
  run_balanced(
      item_costs(cfg), [&] { return Scratch(cfg, false); },
      [&](int64_t item, Scratch& s) { forward_item(item, s, out, state_out, q, k, v, decay, init_state, cfg); });
}

void linrec_backward(float* dq, float* dk, float* dv, float* ddecay, float* dinit, const float* q, const float* k,
                     const float* v, const float* decay, const float* init_state, const float* dout,
                     const float* dstate_out, const LinrecConfig& cfg) {
  const int64_t rows = linrec_rows(cfg);
  check_decay(decay, cfg, rows);
  const bool per_head = cfg.decay == LinrecDecay::PerHead && ddecay != nullptr;
  std::vector<double> dhead(per_head ? static_cast<size_t>(cfg.batch * cfg.heads) : 0, 0.0);
  run_balanced(
      item_costs(cfg), [&] { return Scratch(cfg, true); },
      [&](int64_t item, Scratch& s) {
        backward_item(item, s, dq, dk, dv, cfg.decay == LinrecDecay::PerStep ? ddecay : nullptr,
                      per_head ? dhead.data() : nullptr, dinit, q, k, v, decay, init_state, dout, dstate_out, cfg);
      });
  if (per_head) {
    for (int64_t h = 0; h < cfg.heads; ++h) {
      double s = 0;
      for (int64_t b = 0; b < cfg.batch; ++b) s += dhead[b * cfg.heads + h];
      ddecay[h] = static_cast<float>(s);
    }
  }
}

}  // namespace cpu
}  // namespace qgs
