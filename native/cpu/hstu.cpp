// CPU kernel of HSTU's quadratic pointwise attention (qgs/hstu.h): per (sequence, head) work item,
// 64×64 tiles of S = α Q Kᵀ + bias over the causal lower triangle only, P = SiLU(S)·inv_n, O += P V;
// backward recomputes S per tile (nothing saved by the forward):
//   dP = dO Vᵀ,  dS = dP · inv_n · SiLU'(S),  dQ = α dS K,  dK = α dSᵀ Q,  dV = Pᵀ dO,  dbias = Σ dS.
// The exponentials use a vectorisable polynomial exp (relative error ~1e-7), so the SiLU of L²/2 scores
// runs at SIMD speed rather than one libm call each.
#include "qgs/hstu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "balanced.h"
#include "exp_poly.h"
#include "qgs/common.h"
#include "tile_gemm.h"

namespace qgs {

int64_t hstu_rows(const HstuConfig& c) {
  QGS_REQUIRE(c.batch >= 0, "batch: expected >= 0, got " + std::to_string(c.batch));
  QGS_REQUIRE(c.heads >= 1, "heads: expected >= 1, got " + std::to_string(c.heads));
  QGS_REQUIRE(c.dqk >= 1 && c.dv >= 1, "head dims: expected dqk, dv >= 1, got dqk=" + std::to_string(c.dqk) + " dv=" + std::to_string(c.dv));
  QGS_REQUIRE(c.num_pos >= 0 && c.num_time >= 0, "bias tables: expected sizes >= 0");
  QGS_REQUIRE(std::isfinite(c.alpha) && std::isfinite(c.inv_n), "alpha, inv_n: expected finite numbers");
  QGS_REQUIRE(c.num_time == 0 || (std::isfinite(c.time_div) && c.time_div > 0), "time_div: expected a positive number");
  if (c.offsets) {
    QGS_REQUIRE(c.offsets[0] == 0, "offsets[0]: expected 0, got " + std::to_string(c.offsets[0]));
    for (int64_t b = 0; b < c.batch; ++b)
      QGS_REQUIRE(c.offsets[b + 1] >= c.offsets[b], "offsets: expected non-decreasing, got offsets[" + std::to_string(b + 1) +
                                                        "]=" + std::to_string(c.offsets[b + 1]) + " < offsets[" +
                                                        std::to_string(b) + "]=" + std::to_string(c.offsets[b]));
    return c.offsets[c.batch];
  }
  QGS_REQUIRE(c.max_len >= 0, "max_len: expected >= 0");
  if (c.lengths)
    for (int64_t b = 0; b < c.batch; ++b)
      QGS_REQUIRE(c.lengths[b] >= 0 && c.lengths[b] <= c.max_len, "lengths[" + std::to_string(b) + "]: expected 0.." +
                                                                        std::to_string(c.max_len) + ", got " + std::to_string(c.lengths[b]));
  return c.batch * c.max_len;
}

namespace cpu {
namespace {

using tile::mm;
using tile::r16;
using tile::Tri;

constexpr int64_t kBlk = 64;

struct Seq {
  int64_t start, len, cap;
};
Seq seq_of(const HstuConfig& c, int64_t b) {
  if (c.offsets) return {c.offsets[b], c.offsets[b + 1] - c.offsets[b], c.offsets[b + 1] - c.offsets[b]};
  return {b * c.max_len, c.lengths ? c.lengths[b] : c.max_len, c.max_len};
}

// e^x clamped to [-87, 88] (exp_poly.h): SiLU's sigmoid of large-magnitude scores saturates to 0 / 1.
static inline float exp_clamped(float x) { return exp_poly(std::min(88.f, std::max(-87.f, x))); }

struct Tables {
  const float* pos;
  const float* tw;
  const int32_t* ts;
  std::vector<double> thr;  // thr[b−1] = e^{b·div}: bucket(x) = #{thr ≤ |x|}
};

inline int64_t time_bucket(const Tables& t, int64_t dt) {
  double x = static_cast<double>(dt < 0 ? -dt : dt);
  return std::upper_bound(t.thr.begin(), t.thr.end(), x) - t.thr.begin();
}

struct Scratch {
  int64_t dqkp, dvp, np;
  std::vector<float> Q, K, Kt, V, Vt, S, X, P, T, O, dO, dQ, dK, dV, bias;
  Scratch(const HstuConfig& c, int64_t max_len, bool backward) {
    dqkp = r16(c.dqk);
    dvp = r16(c.dv);
    np = r16(std::max<int64_t>(max_len, 1));
    Q.assign(kBlk * dqkp, 0.f);
    Kt.assign(c.dqk * np, 0.f);
    V.assign(np * dvp, 0.f);
    S.assign(kBlk * kBlk, 0.f);
    X.assign(kBlk * kBlk, 0.f);
    P.assign(kBlk * kBlk, 0.f);
    O.assign(kBlk * dvp, 0.f);
    bias.assign(kBlk * kBlk, 0.f);
    if (backward) {
      K.assign(np * dqkp, 0.f);
      Vt.assign(c.dv * np, 0.f);
      T.assign(kBlk * kBlk, 0.f);
      dO.assign(kBlk * dvp, 0.f);
      dQ.assign(kBlk * dqkp, 0.f);
      dK.assign(np * dqkp, 0.f);
      dV.assign(np * dvp, 0.f);
    }
  }
};

void gather(float* dst, int64_t ld, const float* src, int64_t row_stride, int64_t off, int64_t n, int64_t d) {
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + i * ld, src + i * row_stride + off, sizeof(float) * d);
    for (int64_t j = d; j < ld; ++j) dst[i * ld + j] = 0.f;
  }
}

// bias tile [nq, kBlk] for query rows qb.. and key rows kb.. of one sequence (positions within it).
void bias_tile(Scratch& s, const Tables& t, const HstuConfig& c, int64_t row0, int64_t qb, int64_t nq, int64_t kb, int64_t nk) {
  for (int64_t i = 0; i < nq; ++i) {
    float* br = s.bias.data() + i * kBlk;
    for (int64_t j = 0; j < nk; ++j) {
      const int64_t qi = qb + i, kj = kb + j;
      float b = 0.f;
      if (kj <= qi) {
        if (t.pos) b += t.pos[std::min(qi - kj, c.num_pos - 1)];
        if (t.tw) b += t.tw[time_bucket(t, static_cast<int64_t>(t.ts[row0 + qi]) - t.ts[row0 + kj])];
      }
      br[j] = b;
    }
  }
}

// Scores of one tile: X = α·(Q Kᵀ) + bias (masked entries set to 0 and flagged by P = 0 later).
QGS_SIMD_CLONES void scores(Scratch& s, const HstuConfig& c, bool has_bias, int64_t qb, int64_t nq, int64_t kb, int64_t nk) {
  const bool diag = kb == qb;
  mm(s.S.data(), kBlk, s.Q.data(), s.dqkp, s.Kt.data() + kb, s.np, nq, c.dqk, r16(nk), false, diag ? Tri::LowerCols : Tri::Full);
  for (int64_t i = 0; i < nq; ++i) {
    float* x = s.X.data() + i * kBlk;
    const float* sr = s.S.data() + i * kBlk;
    const float* br = s.bias.data() + i * kBlk;
    const int64_t lim = diag ? std::min(nk, i + 1) : nk;  // keys past the diagonal are masked
#pragma omp simd
    for (int64_t j = 0; j < kBlk; ++j) x[j] = j < lim ? c.alpha * sr[j] + (has_bias ? br[j] : 0.f) : 0.f;
  }
}

QGS_SIMD_CLONES void forward_item(int64_t item, Scratch& s, float* out, const float* q, const float* k, const float* v,
                                  const Tables& t, const HstuConfig& c) {
  const int64_t b = item / c.heads, h = item % c.heads;
  const Seq sq = seq_of(c, b);
  const int64_t rsq = c.heads * c.dqk, rsv = c.heads * c.dv, n = sq.len;
  const bool has_bias = t.pos != nullptr || t.tw != nullptr;
  // K transposed [dqk, np] and V [np, dvp] of the whole sequence, padded with zeros.
  for (int64_t p = 0; p < c.dqk; ++p) {
    float* kt = s.Kt.data() + p * s.np;
    for (int64_t j = 0; j < n; ++j) kt[j] = k[(sq.start + j) * rsq + h * c.dqk + p];
    for (int64_t j = n; j < r16(n); ++j) kt[j] = 0.f;
  }
  gather(s.V.data(), s.dvp, v + sq.start * rsv, rsv, h * c.dv, n, c.dv);
  for (int64_t qb = 0; qb < n; qb += kBlk) {
    const int64_t nq = std::min(kBlk, n - qb);
    gather(s.Q.data(), s.dqkp, q + (sq.start + qb) * rsq, rsq, h * c.dqk, nq, c.dqk);
    for (int64_t kb = 0; kb <= qb; kb += kBlk) {
      const int64_t nk = std::min(kBlk, n - kb);
      const bool diag = kb == qb;
      if (has_bias) bias_tile(s, t, c, sq.start, qb, nq, kb, nk);
      scores(s, c, has_bias, qb, nq, kb, nk);
      for (int64_t i = 0; i < nq; ++i) {
        const float* x = s.X.data() + i * kBlk;
        float* pr = s.P.data() + i * kBlk;
        const int64_t lim = diag ? std::min(nk, i + 1) : nk;
#pragma omp simd
        for (int64_t j = 0; j < kBlk; ++j) {
          const float sg = 1.f / (1.f + exp_clamped(-x[j]));
          pr[j] = j < lim ? x[j] * sg * c.inv_n : 0.f;
        }
      }
      mm(s.O.data(), s.dvp, s.P.data(), kBlk, s.V.data() + kb * s.dvp, s.dvp, nq, nk, s.dvp, kb != 0,
         diag ? Tri::LowerK : Tri::Full);
    }
    for (int64_t i = 0; i < nq; ++i) std::memcpy(out + (sq.start + qb + i) * rsv + h * c.dv, s.O.data() + i * s.dvp, sizeof(float) * c.dv);
  }
  for (int64_t r = sq.start + sq.len; r < sq.start + sq.cap; ++r) std::memset(out + r * rsv + h * c.dv, 0, sizeof(float) * c.dv);
}

QGS_SIMD_CLONES void backward_item(int64_t item, Scratch& s, float* dq, float* dk, float* dv, double* dpos, double* dtime,
                                   const float* q, const float* k, const float* v, const float* dout, const Tables& t,
                                   const HstuConfig& c) {
  const int64_t b = item / c.heads, h = item % c.heads;
  const Seq sq = seq_of(c, b);
  const int64_t rsq = c.heads * c.dqk, rsv = c.heads * c.dv, n = sq.len;
  const bool has_bias = t.pos != nullptr || t.tw != nullptr;
  gather(s.K.data(), s.dqkp, k + sq.start * rsq, rsq, h * c.dqk, n, c.dqk);
  tile::transpose(s.Kt.data(), s.np, s.K.data(), s.dqkp, n, c.dqk);
  gather(s.V.data(), s.dvp, v + sq.start * rsv, rsv, h * c.dv, n, c.dv);
  tile::transpose(s.Vt.data(), s.np, s.V.data(), s.dvp, n, c.dv);
  std::fill(s.dK.begin(), s.dK.begin() + n * s.dqkp, 0.f);
  std::fill(s.dV.begin(), s.dV.begin() + n * s.dvp, 0.f);
  for (int64_t qb = 0; qb < n; qb += kBlk) {
    const int64_t nq = std::min(kBlk, n - qb);
    gather(s.Q.data(), s.dqkp, q + (sq.start + qb) * rsq, rsq, h * c.dqk, nq, c.dqk);
    gather(s.dO.data(), s.dvp, dout + (sq.start + qb) * rsv, rsv, h * c.dv, nq, c.dv);
    for (int64_t kb = 0; kb <= qb; kb += kBlk) {
      const int64_t nk = std::min(kBlk, n - kb);
      const bool diag = kb == qb;
      if (has_bias) bias_tile(s, t, c, sq.start, qb, nq, kb, nk);
      scores(s, c, has_bias, qb, nq, kb, nk);
      // dP = dO Vᵀ  (into S, no longer needed)
      mm(s.S.data(), kBlk, s.dO.data(), s.dvp, s.Vt.data() + kb, s.np, nq, c.dv, r16(nk), false, diag ? Tri::LowerCols : Tri::Full);
      for (int64_t i = 0; i < nq; ++i) {
        const float* x = s.X.data() + i * kBlk;
        const float* dp = s.S.data() + i * kBlk;
        float* pr = s.P.data() + i * kBlk;
        float* ds = s.T.data() + i * kBlk;  // dS (before α)
        const int64_t lim = diag ? std::min(nk, i + 1) : nk;
#pragma omp simd
        for (int64_t j = 0; j < kBlk; ++j) {
          const float sg = 1.f / (1.f + exp_clamped(-x[j]));
          const bool in = j < lim;
          pr[j] = in ? x[j] * sg * c.inv_n : 0.f;
          ds[j] = in ? dp[j] * c.inv_n * sg * (1.f + x[j] * (1.f - sg)) : 0.f;
        }
      }
      if (has_bias) {
        for (int64_t i = 0; i < nq; ++i) {
          const float* ds = s.T.data() + i * kBlk;
          const int64_t lim = diag ? std::min(nk, i + 1) : nk;
          for (int64_t j = 0; j < lim; ++j) {
            const int64_t qi = qb + i, kj = kb + j;
            if (dpos) dpos[std::min(qi - kj, c.num_pos - 1)] += ds[j];
            if (dtime) dtime[time_bucket(t, static_cast<int64_t>(t.ts[sq.start + qi]) - t.ts[sq.start + kj])] += ds[j];
          }
        }
      }
      // dV[kb..] += Pᵀ dO ; dQ += α dS K ; dK[kb..] += α dSᵀ Q
      tile::transpose(s.S.data(), kBlk, s.P.data(), kBlk, nq, nk);  // Pᵀ [nk, kBlk]
      mm(s.dV.data() + kb * s.dvp, s.dvp, s.S.data(), kBlk, s.dO.data(), s.dvp, nk, nq, s.dvp, true, diag ? Tri::UpperK : Tri::Full);
      if (c.alpha != 1.f)
        for (int64_t i = 0; i < nq * kBlk; ++i) s.T[i] *= c.alpha;
      mm(s.dQ.data(), s.dqkp, s.T.data(), kBlk, s.K.data() + kb * s.dqkp, s.dqkp, nq, nk, s.dqkp, kb != 0,
         diag ? Tri::LowerK : Tri::Full);
      tile::transpose(s.S.data(), kBlk, s.T.data(), kBlk, nq, nk);  // dSᵀ [nk, kBlk]
      mm(s.dK.data() + kb * s.dqkp, s.dqkp, s.S.data(), kBlk, s.Q.data(), s.dqkp, nk, nq, s.dqkp, true, diag ? Tri::UpperK : Tri::Full);
    }
    if (dq)
      for (int64_t i = 0; i < nq; ++i) std::memcpy(dq + (sq.start + qb + i) * rsq + h * c.dqk, s.dQ.data() + i * s.dqkp, sizeof(float) * c.dqk);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (dk) std::memcpy(dk + (sq.start + i) * rsq + h * c.dqk, s.dK.data() + i * s.dqkp, sizeof(float) * c.dqk);
    if (dv) std::memcpy(dv + (sq.start + i) * rsv + h * c.dv, s.dV.data() + i * s.dvp, sizeof(float) * c.dv);
  }
  for (int64_t r = sq.start + sq.len; r < sq.start + sq.cap; ++r) {
    if (dq) std::memset(dq + r * rsq + h * c.dqk, 0, sizeof(float) * c.dqk);
    if (dk) std::memset(dk + r * rsq + h * c.dqk, 0, sizeof(float) * c.dqk);
    if (dv) std::memset(dv + r * rsv + h * c.dv, 0, sizeof(float) * c.dv);
  }
}

Tables make_tables(const float* pos, const float* tw, const int32_t* ts, const HstuConfig& c, int64_t rows) {
  Tables t{c.num_pos > 0 ? pos : nullptr, c.num_time > 0 ? tw : nullptr, ts, {}};
  QGS_REQUIRE(c.num_pos == 0 || pos != nullptr, "pos_bias: missing (num_pos > 0)");
  QGS_REQUIRE(c.num_time == 0 || (tw != nullptr && (ts != nullptr || rows == 0)), "time_bias / timestamps: missing (num_time > 0)");
  for (int64_t b = 1; b < c.num_time; ++b) t.thr.push_back(std::exp(static_cast<double>(b) * c.time_div));
  return t;
}

std::vector<int64_t> costs(const HstuConfig& c, int64_t* max_len) {
  std::vector<int64_t> cost(static_cast<size_t>(c.batch * c.heads));
  *max_len = 0;
  for (int64_t b = 0; b < c.batch; ++b) {
    Seq sq = seq_of(c, b);
    *max_len = std::max(*max_len, sq.len);
    for (int64_t h = 0; h < c.heads; ++h) cost[b * c.heads + h] = sq.len * sq.len + 1;
  }
  return cost;
}

}  // namespace

void hstu_forward(float* out, const float* q, const float* k, const float* v, const float* pos_bias, const float* time_bias,
                  const int32_t* ts, const HstuConfig& cfg) {
  const int64_t rows = hstu_rows(cfg);
  Tables t = make_tables(pos_bias, time_bias, ts, cfg, rows);
  int64_t max_len = 0;
  std::vector<int64_t> cost = costs(cfg, &max_len);
  run_balanced(
      cost, [&] { return Scratch(cfg, max_len, false); },
      [&](int64_t item, Scratch& s) { forward_item(item, s, out, q, k, v, t, cfg); });
}

void hstu_backward(float* dq, float* dk, float* dv, float* dpos, float* dtime, const float* q, const float* k,
                   const float* v, const float* pos_bias, const float* time_bias, const int32_t* ts, const float* dout,
                   const HstuConfig& cfg) {
  const int64_t rows = hstu_rows(cfg);
  QGS_REQUIRE(dout != nullptr || rows == 0, "dout: missing");
  Tables t = make_tables(pos_bias, time_bias, ts, cfg, rows);
  int64_t max_len = 0;
  std::vector<int64_t> cost = costs(cfg, &max_len);
  const int64_t items = cfg.batch * cfg.heads;
  const bool want_pos = dpos != nullptr && t.pos != nullptr, want_time = dtime != nullptr && t.tw != nullptr;
  // Per-item partial bias gradients (no shared accumulators between threads), summed afterwards.
  std::vector<double> ppos(want_pos ? static_cast<size_t>(items * cfg.num_pos) : 0, 0.0);
  std::vector<double> ptime(want_time ? static_cast<size_t>(items * cfg.num_time) : 0, 0.0);
  run_balanced(
      cost, [&] { return Scratch(cfg, max_len, true); },
      [&](int64_t item, Scratch& s) {
        backward_item(item, s, dq, dk, dv, want_pos ? ppos.data() + item * cfg.num_pos : nullptr,
                      want_time ? ptime.data() + item * cfg.num_time : nullptr, q, k, v, dout, t, cfg);
      });
  if (dpos && cfg.num_pos > 0)
    for (int64_t p = 0; p < cfg.num_pos; ++p) {
      double acc = 0;
      if (want_pos)
        for (int64_t i = 0; i < items; ++i) acc += ppos[i * cfg.num_pos + p];
      dpos[p] = static_cast<float>(acc);
    }
  if (dtime && cfg.num_time > 0)
    for (int64_t p = 0; p < cfg.num_time; ++p) {
      double acc = 0;
      if (want_time)
        for (int64_t i = 0; i < items; ++i) acc += ptime[i * cfg.num_time + p];
      dtime[p] = static_cast<float>(acc);
    }
}

}  // namespace cpu
}  // namespace qgs
