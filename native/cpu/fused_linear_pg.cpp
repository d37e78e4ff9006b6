// CPU kernel for the fused output projection + clipped policy loss (DESIGN.md §4.3, second entry
// point). For a ranker the "vocabulary" is the item catalogue (10^4..10^6 items), so the [M, V]
// logits are never materialised: rows and vocabulary are processed in chunks whose logits live in
// one reusable buffer.
//   pass 1: logits chunk = hidden_c · W_cᵀ / τ (BLAS), online log-sum-exp per row (running max,
//           Σ e^{u−max}, Σ e^{u−max}(u−max) for the entropy), gather of the target logit;
//           then the clipped loss on the per-token log-probs (the same row sweep as pg_loss), the
//           SFT term and the entropy term give G_m = dL/dlogp_m and E_m = dL/dH_m per row.
//   pass 2 (only when a gradient is wanted): the logits chunk is recomputed, turned in place into
//           dL/dz = (G(1[v=y] − p) − E p (u − ū)) / τ, and two GEMMs accumulate dhidden += dZ·W_c
//           and dW_c += dZᵀ·hidden_c.
// BLAS is called only from this top-level thread (never inside parallel_for), so OpenBLAS's own
// threads and our pool never run at the same time; the elementwise chunk work between GEMMs is
// spread over the pool.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "pgloss_impl.h"
#include "qgs/parallel.h"
#include "qgs/pgloss.h"

namespace qgs {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct ChunkLse {
  float max, sum, zsum;
};

// max, Σ e^{u−max} and Σ e^{u−max}(u−max) of one row of a logits chunk (8 lanes; the tail lanes
// are masked out).
QGS_SIMD_CLONES ChunkLse chunk_lse(const float* QGS_RESTRICT u, int64_t n) {
  using namespace pg_detail;
  const int64_t nb = n & ~int64_t(7);
  alignas(32) float tail[8];
  const int64_t nt = n - nb;
  for (int k = 0; k < 8; ++k) tail[k] = k < nt ? u[nb + k] : kNegInf;
  f8 mv = splat(kNegInf);
  for (int64_t v = 0; v < nb; v += 8) mv = vmax(mv, load8(u + v));
  mv = vmax(mv, load8(tail));
  const float m = hmax(mv);
  const f8 mm = splat(m), zero = splat(0.f);
  f8 s = zero, z = zero;
  for (int64_t v = 0; v < nb; v += 8) {
    const f8 x = load8(u + v) - mm;
    const f8 e = fast_exp8(x);
    s += e;
    z += e * x;
  }
  if (nt > 0) {
    const f8 tv = load8(tail);
    const i8 on = tv > splat(kNegInf);
    const f8 x = vsel(on, tv - mm, zero);
    const f8 e = vsel(on, fast_exp8(x), zero);
    s += e;
    z += e * x;
  }
  return ChunkLse{m, hsum(s), hsum(z)};
}

// In place: u → (−G p − E p (u − ū)) / τ with p = exp(u − logZ).
QGS_SIMD_CLONES void chunk_grad(float* QGS_RESTRICT u, int64_t n, float logz, float ubar, float G, float E, float inv_tau) {
  using namespace pg_detail;
  const f8 lz = splat(logz), ub = splat(ubar);
  auto body = [&](f8 x) { const f8 p = fast_exp8(x - lz); return (-G * p - E * p * (x - ub)) * inv_tau; };
  int64_t v = 0;
  for (; v + 8 <= n; v += 8) store8(u + v, body(load8(u + v)));
  if (v < n) {
    alignas(32) float tail[8] = {0};
    for (int64_t k = 0; k < n - v; ++k) tail[k] = u[v + k];
    store8(tail, body(load8(tail)));
    for (int64_t k = 0; k < n - v; ++k) u[v + k] = tail[k];
  }
}

bool row_active(const PgLossInputs& pg, const float* sft_mask, int64_t m) {
  bool on = pg.mask ? pg.mask[m] != 0.f : pg.mask_i32 ? pg.mask_i32[m] != 0 : true;
  return on || (sft_mask != nullptr && sft_mask[m] != 0.f);
}

}  // namespace

namespace cpu {

int64_t fused_linear_pg(float* loss, float* logp_out, float* dhidden, float* dweight, double* stats, const FusedLinearPgInputs& in) {
  const int64_t M = in.m, D = in.d, V = in.v;
  QGS_REQUIRE(M >= 0, "hidden: expected M >= 0 rows, got " + std::to_string(M));
  QGS_REQUIRE(D >= 1, "hidden: expected D >= 1 columns, got " + std::to_string(D));
  QGS_REQUIRE(V >= 1, "weight: expected V >= 1 rows (vocabulary), got " + std::to_string(V));
  QGS_REQUIRE(in.pg.n * in.pg.t == M, "targets: expected N·T = M = " + std::to_string(M) + ", got N=" + std::to_string(in.pg.n) + ", T=" + std::to_string(in.pg.t));
  QGS_REQUIRE(std::isfinite(in.temperature) && in.temperature > 0.f, "temperature: expected a finite number > 0, got " + std::to_string(in.temperature));
  QGS_REQUIRE(std::isfinite(in.sft_weight) && in.sft_weight >= 0.f, "sftWeight: expected a finite number >= 0, got " + std::to_string(in.sft_weight));
  QGS_REQUIRE(in.sft_weight == 0.f || in.sft_mask != nullptr || M == 0, "sftMask: expected a [M] mask when sftWeight > 0, got none");
  QGS_REQUIRE(in.sft_normalizer == 0.0 || (std::isfinite(in.sft_normalizer) && in.sft_normalizer > 0.0),
              "sftNormalizer: expected a finite number > 0, got " + std::to_string(in.sft_normalizer));
  QGS_REQUIRE(std::isfinite(in.entropy_coef), "entropyCoef: expected a finite number, got " + std::to_string(in.entropy_coef));
  QGS_REQUIRE(loss != nullptr && stats != nullptr, "fused_linear_pg: expected loss and stats outputs");
  check_pg_inputs(in.pg, false);
  QGS_REQUIRE(M == 0 || (in.hidden != nullptr && in.weight != nullptr && in.targets != nullptr), "fused_linear_pg: expected hidden, weight and targets");
  QGS_REQUIRE(M <= (int64_t(1) << 40) && V <= (int64_t(1) << 31) - 1 && D <= (int64_t(1) << 31) - 1, "fused_linear_pg: sizes exceed the BLAS index range");

  // Targets must index the vocabulary on every row that contributes (RL mask or SFT mask).
  for (int64_t m = 0; m < M; ++m) {
    const int32_t y = in.targets[m];
    if ((y < 0 || y >= V) && row_active(in.pg, in.sft_mask, m))
      throw KernelError("targets: expected values in [0, " + std::to_string(V) + ") at masked-in rows, got " + std::to_string(y) + " at row " + std::to_string(m));
  }

  const int64_t Mc = std::max<int64_t>(1, std::min<int64_t>(M, in.row_chunk > 0 ? in.row_chunk : 512));
  const int64_t Vc = std::max<int64_t>(1, std::min<int64_t>(V, in.vocab_chunk > 0 ? in.vocab_chunk : 2048));
  const float inv_tau = 1.f / in.temperature;
  const bool want_grad = dhidden != nullptr || dweight != nullptr;

  std::vector<float> buf(static_cast<size_t>(M > 0 ? Mc * Vc : 0));
  std::vector<double> rmax(static_cast<size_t>(M), -std::numeric_limits<double>::infinity()), rsum(static_cast<size_t>(M), 0.0),
      rz(static_cast<size_t>(M), 0.0);
  std::vector<float> tgt(static_cast<size_t>(M), 0.f), logp(static_cast<size_t>(M), 0.f), ent(static_cast<size_t>(M), 0.f),
      logz(static_cast<size_t>(M), 0.f), ubar(static_cast<size_t>(M), 0.f), G(want_grad ? static_cast<size_t>(M) : 0),
      E(want_grad ? static_cast<size_t>(M) : 0);
  const int64_t workspace = static_cast<int64_t>(buf.size() * 4 + 3 * static_cast<size_t>(M) * 8 + 5 * static_cast<size_t>(M) * 4 + (G.size() + E.size()) * 4);

  // ---- pass 1: online log-sum-exp over vocabulary chunks ----
  for (int64_t r0 = 0; r0 < M; r0 += Mc) {
    const int64_t mc = std::min(Mc, M - r0);
    for (int64_t v0 = 0; v0 < V; v0 += Vc) {
      const int64_t vc = std::min(Vc, V - v0);
      blas_threads_for_gemm(mc * vc * D);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(mc), static_cast<int>(vc), static_cast<int>(D), inv_tau,
                  in.hidden + r0 * D, static_cast<int>(D), in.weight + v0 * D, static_cast<int>(D), 0.f, buf.data(), static_cast<int>(vc));
      parallel_for(mc, std::max<int64_t>(1, 16384 / vc), [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          const int64_t m = r0 + j;
          const size_t mu = static_cast<size_t>(m);
          const float* row = buf.data() + j * vc;
          ChunkLse c = chunk_lse(row, vc);
          const double cm = c.max;
          if (v0 == 0) {
            rmax[mu] = cm;
            rsum[mu] = c.sum;
            rz[mu] = c.zsum;
          } else {
            // Merge two (max, Σe, Σe·(u−max)) triples around the larger max.
            const double nm = std::max(rmax[mu], cm);
            const double a = std::exp(rmax[mu] - nm), bb = std::exp(cm - nm);
            rz[mu] = (rz[mu] + rsum[mu] * (rmax[mu] - nm)) * a + (c.zsum + c.sum * (cm - nm)) * bb;
            rsum[mu] = rsum[mu] * a + c.sum * bb;
            rmax[mu] = nm;
          }
          const int32_t y = in.targets[m];
          if (y >= v0 && y < v0 + vc) tgt[mu] = row[y - v0];
        }
      });
    }
  }
  for (int64_t m = 0; m < M; ++m) {
    const size_t mu = static_cast<size_t>(m);
    const double lse = rmax[mu] + std::log(rsum[mu]);
    logz[mu] = static_cast<float>(lse);
    ubar[mu] = static_cast<float>(rmax[mu] + rz[mu] / rsum[mu]);
    ent[mu] = static_cast<float>(std::log(rsum[mu]) - rz[mu] / rsum[mu]);
    const int32_t y = in.targets[m];
    logp[mu] = (y >= 0 && y < V) ? static_cast<float>(static_cast<double>(tgt[mu]) - lse) : 0.f;
    if (!(std::isfinite(logp[mu]) && std::isfinite(ent[mu])) && row_active(in.pg, in.sft_mask, m))
      throw KernelError("hidden, weight: expected finite values, got a non-finite log-probability at row " + std::to_string(m) +
                        " (NaN or Inf in hidden or weight, or logits overflowing float)");
  }
  if (logp_out != nullptr && M > 0) std::memcpy(logp_out, logp.data(), static_cast<size_t>(M) * 4);

  // ---- the clipped loss on the per-token log-probs ----
  PgLossInputs pg = in.pg;
  pg.logp = logp.data();
  float pg_loss_val = 0.f;
  std::vector<float> dlogp(want_grad ? static_cast<size_t>(M) : 0);
  pg_detail::RowWeights rw;
  if (M > 0) {
    rw = pg_detail::row_weights(pg);
    pg_detail::run_rows(&pg_loss_val, want_grad ? dlogp.data() : nullptr, stats, pg, rw);
  } else {
    for (int k = 0; k < kPgStatCount; ++k) stats[k] = 0;
    stats[kStatRatioMin] = std::numeric_limits<double>::infinity();
    stats[kStatRatioMax] = -std::numeric_limits<double>::infinity();
  }

  // SFT cross-entropy on expert targets (AFRL mode-balanced term): −λ Σ s_m logp_m / Σ s_m.
  double sft_tokens = 0, sft_sum = 0;
  if (in.sft_mask != nullptr)
    for (int64_t m = 0; m < M; ++m)
      if (in.sft_mask[m] != 0.f) {
        sft_tokens += 1;
        sft_sum += logp[static_cast<size_t>(m)];
      }
  const double sft_norm = in.sft_normalizer > 0 ? in.sft_normalizer : sft_tokens;
  const double sft_loss = (in.sft_weight > 0 && sft_norm > 0) ? -in.sft_weight * sft_sum / sft_norm : 0.0;

  // Entropy statistic (Σ m H over RL tokens) and bonus −κ Σ_i w_i Σ_t m H.
  double ent_sum = 0, ent_loss = 0;
  const int64_t T = pg.t;
  for (int64_t m = 0; m < M; ++m) {
    bool on = pg.mask ? pg.mask[m] != 0.f : pg.mask_i32 ? pg.mask_i32[m] != 0 : true;
    if (!on) continue;
    ent_sum += ent[static_cast<size_t>(m)];
    ent_loss += -static_cast<double>(in.entropy_coef) * rw.w[static_cast<size_t>(m / T)] * ent[static_cast<size_t>(m)];
  }
  stats[kStatEntropy] = ent_sum;
  stats[kStatSftLoss] = sft_loss;
  stats[kStatSftTokens] = sft_tokens;
  loss[0] = static_cast<float>(static_cast<double>(pg_loss_val) + sft_loss + ent_loss);

  if (!want_grad || M == 0) {
    if (dhidden && M > 0) std::memset(dhidden, 0, static_cast<size_t>(M * D) * 4);
    if (dweight) std::memset(dweight, 0, static_cast<size_t>(V * D) * 4);
    return workspace;
  }

  for (int64_t m = 0; m < M; ++m) {
    const size_t mu = static_cast<size_t>(m);
    float g = dlogp[mu];
    if (in.sft_mask != nullptr && in.sft_mask[m] != 0.f && sft_norm > 0) g += static_cast<float>(-in.sft_weight / sft_norm);
    G[mu] = g;
    bool on = pg.mask ? pg.mask[m] != 0.f : pg.mask_i32 ? pg.mask_i32[m] != 0 : true;
    E[mu] = on ? -in.entropy_coef * rw.w[static_cast<size_t>(m / T)] : 0.f;
  }

  // ---- pass 2: recompute each logits chunk, turn it into dL/dz, two GEMMs ----
  if (dhidden) std::memset(dhidden, 0, static_cast<size_t>(M * D) * 4);
  if (dweight) parallel_for(V, 4096, [&](int64_t b, int64_t e) { std::memset(dweight + b * D, 0, static_cast<size_t>((e - b) * D) * 4); });
  for (int64_t r0 = 0; r0 < M; r0 += Mc) {
    const int64_t mc = std::min(Mc, M - r0);
    bool any = false;
    for (int64_t j = 0; j < mc && !any; ++j) any = G[static_cast<size_t>(r0 + j)] != 0.f || E[static_cast<size_t>(r0 + j)] != 0.f;
    if (!any) continue;  // a chunk of rows with no gradient (all masked out) adds nothing
    for (int64_t v0 = 0; v0 < V; v0 += Vc) {
      const int64_t vc = std::min(Vc, V - v0);
      blas_threads_for_gemm(mc * vc * D);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(mc), static_cast<int>(vc), static_cast<int>(D), inv_tau,
                  in.hidden + r0 * D, static_cast<int>(D), in.weight + v0 * D, static_cast<int>(D), 0.f, buf.data(), static_cast<int>(vc));
      parallel_for(mc, std::max<int64_t>(1, 16384 / vc), [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          const size_t mu = static_cast<size_t>(r0 + j);
          float* row = buf.data() + j * vc;
          if (G[mu] == 0.f && E[mu] == 0.f) {
            std::memset(row, 0, static_cast<size_t>(vc) * 4);
            continue;
          }
          chunk_grad(row, vc, logz[mu], ubar[mu], G[mu], E[mu], inv_tau);
          const int32_t y = in.targets[r0 + j];
          if (y >= v0 && y < v0 + vc) row[y - v0] += G[mu] * inv_tau;
        }
      });
      // Both gradient products have the chunk's mc·vc·D multiply-adds: the BLAS thread count set
      // before its logits product still applies.
      if (dhidden)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(mc), static_cast<int>(D), static_cast<int>(vc), 1.f, buf.data(),
                    static_cast<int>(vc), in.weight + v0 * D, static_cast<int>(D), 1.f, dhidden + r0 * D, static_cast<int>(D));
      if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(vc), static_cast<int>(D), static_cast<int>(mc), 1.f, buf.data(),
                    static_cast<int>(vc), in.hidden + r0 * D, static_cast<int>(D), 1.f, dweight + v0 * D, static_cast<int>(D));
    }
  }
  return workspace;
}

}  // namespace cpu
}  // namespace qgs
