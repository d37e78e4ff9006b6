// CPU kernel for the fused clipped policy-gradient loss (DESIGN.md §4.3). The op is memory-bound
// (a few loads, 1–2 exps and one store per token), so the whole loss, its gradient and the statistics
// come out of one vectorised sweep over the tokens; rows are split across the thread pool and the
// per-row partial sums are reduced serially in double (deterministic, independent of thread count).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "pgloss_impl.h"
#include "qgs/parallel.h"
#include "qgs/pgloss.h"

namespace qgs {

void check_pg_inputs(const PgLossInputs& in, bool need_logp) {
  QGS_REQUIRE(in.n >= 0 && in.t >= 0, "shape: expected non-negative N and T, got N=" + std::to_string(in.n) + ", T=" + std::to_string(in.t));
  const bool empty = in.n == 0 || in.t == 0;
  if (!empty) {
    QGS_REQUIRE(!need_logp || in.logp != nullptr, "logp: expected a [N, T] tensor, got none");
    QGS_REQUIRE(in.old_logp != nullptr, "oldLogp: expected a [N, T] tensor, got none");
    QGS_REQUIRE(in.adv != nullptr, "advantages: expected a [N] or [N, T] tensor, got none");
  }
  QGS_REQUIRE(!(in.mask != nullptr && in.mask_i32 != nullptr), "mask: expected one mask, got both an f32 and an i32 mask");
  QGS_REQUIRE(in.agg == kAggTokenMean || in.agg == kAggSeqMeanTokenMean || in.agg == kAggSeqMeanTokenSum,
              "agg: expected 0 (token-mean), 1 (seq-mean-token-mean) or 2 (seq-mean-token-sum), got " + std::to_string(in.agg));
  QGS_REQUIRE(std::isfinite(in.eps_low) && in.eps_low >= 0.f && in.eps_low <= 1.f,
              "epsLow: expected a number in [0, 1], got " + std::to_string(in.eps_low));
  QGS_REQUIRE(std::isfinite(in.eps_high) && in.eps_high >= 0.f, "epsHigh: expected a finite number >= 0, got " + std::to_string(in.eps_high));
  QGS_REQUIRE(in.dual_clip == 0.f || (std::isfinite(in.dual_clip) && in.dual_clip > 1.f),
              "dualClip: expected a number > 1 (or 0 for off), got " + std::to_string(in.dual_clip));
  QGS_REQUIRE(std::isfinite(in.kl_beta) && in.kl_beta >= 0.f, "klBeta: expected a finite number >= 0, got " + std::to_string(in.kl_beta));
  QGS_REQUIRE(in.kl_beta == 0.f || in.ref_logp != nullptr || empty, "refLogp: expected a [N, T] tensor when klBeta > 0, got none");
  QGS_REQUIRE(in.normalizer == 0.0 || (std::isfinite(in.normalizer) && in.normalizer > 0.0),
              "normalizer: expected a finite number > 0, got " + std::to_string(in.normalizer));
}

namespace pg_detail {

double default_normalizer(const PgLossInputs& in, const std::vector<double>& counts, bool have_counts) {
  const double nt = static_cast<double>(in.n) * static_cast<double>(in.t);
  switch (in.agg) {
    case kAggTokenMean: {
      if (!have_counts) return nt;
      double s = 0;
      for (double c : counts) s += c;
      return s;
    }
    case kAggSeqMeanTokenMean: {
      if (!have_counts) return in.t > 0 ? static_cast<double>(in.n) : 0.0;
      double s = 0;
      for (double c : counts) s += c > 0 ? 1.0 : 0.0;
      return s;
    }
    default:
      return nt;
  }
}

RowWeights row_weights(const PgLossInputs& in) {
  RowWeights rw;
  const bool has_mask = in.mask != nullptr || in.mask_i32 != nullptr;
  const bool need_counts = has_mask && (in.normalizer == 0.0 || in.agg == kAggSeqMeanTokenMean);
  if (need_counts) {
    rw.counts.assign(static_cast<size_t>(in.n), 0.0);
    const int64_t T = in.t;
    parallel_for(in.n, std::max<int64_t>(1, 65536 / std::max<int64_t>(T, 1)), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        int64_t c = 0;
        if (in.mask != nullptr) {
          const float* m = in.mask + i * T;
          for (int64_t t = 0; t < T; ++t) c += m[t] != 0.f;
        } else {
          const int32_t* m = in.mask_i32 + i * T;
          for (int64_t t = 0; t < T; ++t) c += m[t] != 0;
        }
        rw.counts[static_cast<size_t>(i)] = static_cast<double>(c);
      }
    });
  }
  rw.normalizer = in.normalizer > 0.0 ? in.normalizer : default_normalizer(in, rw.counts, need_counts);
  rw.w.assign(static_cast<size_t>(in.n), 0.f);
  // A zero default normalizer means "no tokens": every weight is 0 (loss 0, gradient 0, no NaN).
  if (rw.normalizer > 0.0) {
    for (int64_t i = 0; i < in.n; ++i) {
      double wi = 1.0 / rw.normalizer;
      if (in.agg == kAggSeqMeanTokenMean) {
        double li = has_mask ? rw.counts[static_cast<size_t>(i)] : static_cast<double>(in.t);
        wi = li > 0 ? wi / li : 0.0;
      }
      rw.w[static_cast<size_t>(i)] = static_cast<float>(wi);
    }
  }
  return rw;
}

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Per-row partial sums (see PgStat); float inside the row (8 lanes), double across rows.
struct RowAcc {
  float cnt, low, high, dual, rsum, rmin, rmax, akl, rkl, lpg, lkl, bad;
};

struct VecAcc {
  f8 cnt = splat(0), low = splat(0), high = splat(0), dual = splat(0), rsum = splat(0), akl = splat(0), rkl = splat(0), lpg = splat(0),
     bad = splat(0), rmin = splat(kInf), rmax = splat(0);
};

// Eight tokens of the fused loss: accumulates the statistics and returns the gradient lanes.
template <bool HasKl>
__attribute__((always_inline)) inline f8 step8(VecAcc& a, f8 lp, f8 ol, f8 rf, f8 mk, f8 A, f8 lo, f8 hi, float c, float bs, float w) {
  const f8 one = splat(1.f), zero = splat(0.f);
  const i8 on = mk != zero;
  const f8 draw = lp - ol;
  const f8 d = vmin(vmax(draw, splat(-20.f)), splat(20.f));
  // The clamp has zero derivative outside (−20, 20); NaN compares false and is caught by `bad`.
  const i8 inr = (draw > -20.f) & (draw < 20.f);
  const f8 r = fast_exp8(d);
  const f8 rc = vmin(vmax(r, lo), hi);
  const f8 l1 = -A * r, l2 = -A * rc;
  const i8 unclipped = l1 >= l2;
  f8 l = vsel(unclipped, l1, l2);
  const f8 capv = -c * A;
  const i8 dual_on = c > 0.f ? ~i8{} : i8{};  // all lanes on / off
  const i8 dhit = dual_on & (A < zero) & (l > capv);
  l = vsel(dhit, capv, l);
  f8 g = vsel(unclipped & ~dhit & inr, -A * r, zero);
  const f8 big = splat(FLT_MAX);
  i8 fin = (vmax(lp, -lp) <= big) & (vmax(ol, -ol) <= big) & (vmax(A, -A) <= big);
  f8 kl = zero;
  if (HasKl) {
    const f8 xr = rf - lp;
    const f8 x = vmin(vmax(xr, splat(-20.f)), splat(20.f));
    const i8 inx = (xr > -20.f) & (xr < 20.f);
    const f8 ex = fast_exp8(x);
    kl = ex - x - one;
    g += vsel(inx, bs * (one - ex), zero);
    fin &= vmax(rf, -rf) <= big;
  }
  a.cnt += vand(on, one);
  a.low += vand(on & (r < lo) & (A < zero), one);
  a.high += vand(on & (r > hi) & (A > zero), one);
  a.dual += vand(on & dhit, one);
  a.rsum += vand(on, r);
  a.rmin = vmin(a.rmin, vsel(on, r, splat(kInf)));
  a.rmax = vmax(a.rmax, vand(on, r));  // r > 0, so masked lanes contribute 0 to the max
  a.akl += vand(on, one / r + d - one);
  a.rkl += vand(on, kl);
  a.lpg += vand(on, l);
  a.bad += vand(on & ~fin, one);
  return vand(on, w * g);
}

// One row of tokens. Masks arrive as f32 (i32 masks and "no mask" are converted per row by the
// caller); the tail is padded to 8 lanes with mask 0.
template <bool AdvTok, bool HasKl, bool WriteGrad>
QGS_SIMD_CLONES RowAcc row_kernel(float* QGS_RESTRICT dl, const float* QGS_RESTRICT lp_, const float* QGS_RESTRICT ol_,
                                  const float* QGS_RESTRICT rf_, const float* QGS_RESTRICT mk_, const float* QGS_RESTRICT adv_,
                                  float arow, float lo, float hi, float c, float bs, float w, int64_t T) {
  VecAcc a;
  const f8 lov = splat(lo), hiv = splat(hi), arv = splat(arow);
  int64_t t = 0;
  for (; t + 8 <= T; t += 8) {
    const f8 g = step8<HasKl>(a, load8(lp_ + t), load8(ol_ + t), HasKl ? load8(rf_ + t) : splat(0.f), load8(mk_ + t),
                              AdvTok ? load8(adv_ + t) : arv, lov, hiv, c, bs, w);
    if (WriteGrad) store8(dl + t, g);
  }
  if (t < T) {
    const int64_t n = T - t;
    alignas(32) float lp[8] = {0}, ol[8] = {0}, rf[8] = {0}, mk[8] = {0}, av[8] = {0}, out[8];
    for (int64_t k = 0; k < n; ++k) {
      lp[k] = lp_[t + k];
      ol[k] = ol_[t + k];
      if (HasKl) rf[k] = rf_[t + k];
      mk[k] = mk_[t + k];
      av[k] = AdvTok ? adv_[t + k] : arow;
    }
    const f8 g = step8<HasKl>(a, load8(lp), load8(ol), load8(rf), load8(mk), load8(av), lov, hiv, c, bs, w);
    if (WriteGrad) {
      store8(out, g);
      for (int64_t k = 0; k < n; ++k) dl[t + k] = out[k];
    }
  }
  return RowAcc{hsum(a.cnt), hsum(a.low), hsum(a.high), hsum(a.dual), hsum(a.rsum), hmin(a.rmin), hmax(a.rmax),
                hsum(a.akl), hsum(a.rkl), hsum(a.lpg), hsum(a.rkl), hsum(a.bad)};
}

using RowFn = RowAcc (*)(float*, const float*, const float*, const float*, const float*, const float*, float, float, float, float,
                         float, float, int64_t);

template <bool A, bool K>
RowFn pick_g(bool g) {
  return g ? &row_kernel<A, K, true> : &row_kernel<A, K, false>;
}
RowFn pick(bool adv_tok, bool kl, bool grad) {
  if (adv_tok) return kl ? pick_g<true, true>(grad) : pick_g<true, false>(grad);
  return kl ? pick_g<false, true>(grad) : pick_g<false, false>(grad);
}

std::string where(int64_t i, int64_t t) { return "[" + std::to_string(i) + ", " + std::to_string(t) + "]"; }

[[noreturn]] void report_nonfinite(const PgLossInputs& in) {
  const int64_t T = in.t;
  for (int64_t i = 0; i < in.n; ++i) {
    for (int64_t t = 0; t < T; ++t) {
      const int64_t k = i * T + t;
      bool on = in.mask ? in.mask[k] != 0.f : in.mask_i32 ? in.mask_i32[k] != 0 : true;
      if (!on) continue;
      auto bad = [](float x) { return !std::isfinite(x); };
      if (bad(in.logp[k])) throw KernelError("logp: expected finite values at masked-in tokens, got " + std::to_string(in.logp[k]) + " at " + where(i, t));
      if (bad(in.old_logp[k])) throw KernelError("oldLogp: expected finite values at masked-in tokens, got " + std::to_string(in.old_logp[k]) + " at " + where(i, t));
      if (in.kl_beta > 0.f && in.ref_logp && bad(in.ref_logp[k]))
        throw KernelError("refLogp: expected finite values at masked-in tokens, got " + std::to_string(in.ref_logp[k]) + " at " + where(i, t));
      const float a = in.adv_per_token ? in.adv[k] : in.adv[i];
      if (bad(a)) throw KernelError("advantages: expected finite values, got " + std::to_string(a) + " at " + (in.adv_per_token ? where(i, t) : "[" + std::to_string(i) + "]"));
    }
  }
  throw KernelError("non-finite input at a masked-in token");
}

}  // namespace

void run_rows(float* loss, float* dlogp, double* stats, const PgLossInputs& in, const RowWeights& rw) {
  const int64_t N = in.n, T = in.t;
  const bool has_kl = in.kl_beta > 0.f && in.ref_logp != nullptr;
  RowFn fn = pick(in.adv_per_token, has_kl, dlogp != nullptr);
  std::vector<RowAcc> acc(static_cast<size_t>(N));
  std::vector<float> ones;
  if (in.mask == nullptr && in.mask_i32 == nullptr) ones.assign(static_cast<size_t>(T), 1.f);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(T, 1));
  parallel_for(N, grain, [&](int64_t b, int64_t e) {
    std::vector<float> mrow;
    if (in.mask_i32 != nullptr) mrow.resize(static_cast<size_t>(T));
    for (int64_t i = b; i < e; ++i) {
      const size_t iu = static_cast<size_t>(i);
      const float* mk;
      if (in.mask != nullptr) {
        mk = in.mask + i * T;
      } else if (in.mask_i32 != nullptr) {
        const int32_t* src = in.mask_i32 + i * T;
        for (int64_t t = 0; t < T; ++t) mrow[static_cast<size_t>(t)] = src[t] != 0 ? 1.f : 0.f;
        mk = mrow.data();
      } else {
        mk = ones.data();
      }
      const float el = in.eps_low_seq ? in.eps_low_seq[i] : in.eps_low;
      const float eh = in.eps_high_seq ? in.eps_high_seq[i] : in.eps_high;
      const float s = in.kl_scale ? in.kl_scale[i] : 1.f;
      const float bs = in.kl_beta * s;
      const float arow = in.adv_per_token ? 0.f : in.adv[i];
      const float w = rw.w[iu];
      RowAcc a = fn(dlogp ? dlogp + i * T : nullptr, in.logp + i * T, in.old_logp + i * T, has_kl ? in.ref_logp + i * T : nullptr, mk,
                    in.adv_per_token ? in.adv + i * T : nullptr, arow, 1.f - el, 1.f + eh, in.dual_clip, bs, w, T);
      // The k3 sum above is unweighted; the loss part needs β s.
      a.lkl *= bs;
      acc[iu] = a;
    }
  });
  double st[kPgStatCount] = {0};
  st[kStatRatioMin] = std::numeric_limits<double>::infinity();
  st[kStatRatioMax] = -std::numeric_limits<double>::infinity();
  double bad = 0;
  for (int64_t i = 0; i < N; ++i) {
    const RowAcc& a = acc[static_cast<size_t>(i)];
    const double w = rw.w[static_cast<size_t>(i)];
    st[kStatTokens] += a.cnt;
    st[kStatClipLow] += a.low;
    st[kStatClipHigh] += a.high;
    st[kStatDualClip] += a.dual;
    st[kStatRatioSum] += a.rsum;
    st[kStatRatioMin] = std::min<double>(st[kStatRatioMin], a.rmin);
    st[kStatRatioMax] = std::max<double>(st[kStatRatioMax], a.rmax);
    st[kStatApproxKl] += a.akl;
    st[kStatRefKl] += a.rkl;
    st[kStatPgLoss] += w * a.lpg;
    st[kStatKlLoss] += w * a.lkl;
    bad += a.bad;
  }
  if (bad > 0) report_nonfinite(in);
  st[kStatNormalizer] = rw.normalizer;
  for (int k = 0; k < kPgStatCount; ++k) stats[k] = st[k];
  if (loss) loss[0] = static_cast<float>(st[kStatPgLoss] + st[kStatKlLoss]);
}

}  // namespace pg_detail

namespace cpu {

void pg_loss(float* loss, float* dlogp, double* stats, const PgLossInputs& in) {
  check_pg_inputs(in, true);
  QGS_REQUIRE(loss != nullptr && stats != nullptr, "pg_loss: expected loss and stats outputs");
  if (in.n == 0 || in.t == 0) {
    for (int k = 0; k < kPgStatCount; ++k) stats[k] = 0;
    stats[kStatRatioMin] = std::numeric_limits<double>::infinity();
    stats[kStatRatioMax] = -std::numeric_limits<double>::infinity();
    stats[kStatNormalizer] = in.normalizer;
    loss[0] = 0.f;
    return;
  }
  pg_detail::RowWeights rw = pg_detail::row_weights(in);
  pg_detail::run_rows(loss, dlogp, stats, in, rw);
}

QGS_SIMD_CLONES static void scale_loop(float* QGS_RESTRICT dst, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] *= s;
}

void scale_inplace(float* dst, const float* scale, int64_t n) {
  QGS_REQUIRE(n >= 0, "scale_inplace: expected n >= 0");
  const float s = *scale;
  if (s == 1.f || n == 0) return;  // the common case: loss.backward() with the default seed
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) { scale_loop(dst + b, s, e - b); });
}

}  // namespace cpu
}  // namespace qgs
