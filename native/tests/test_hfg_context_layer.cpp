// The fused HFG context layer (CPU inference) against a naive double-precision reference written
// from the contract in qgs/hfg.h: fresh random weights and inputs every run, odd sizes (T, D, H, F,
// and N around the 32-candidate tile), masks with fully masked rows, null biases / LayerNorm affine
// parameters, all four activations, poisoned outputs, large logits and bad arguments.
#include <cmath>
#include <cstring>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "qgs/hfg.h"
#include "test_util.h"

using namespace qgs_test;
using qgs::HfgActivation;

namespace {

struct Params {
  std::vector<float> ln1w, ln1b, wqkv, bqkv, wo, bo, ln2w, ln2b, w1, b1, w2, b2, lnow, lnob;
};

// y = W x + b, W [out, in].
std::vector<double> affine(const float* W, const float* b, const std::vector<double>& x, int64_t out, int64_t in) {
  std::vector<double> y(out);
  for (int64_t o = 0; o < out; ++o) {
    double s = b ? b[o] : 0.0;
    for (int64_t i = 0; i < in; ++i) s += double(W[o * in + i]) * x[i];
    y[o] = s;
  }
  return y;
}

double act(double v, HfgActivation a) {
  switch (a) {
    case HfgActivation::Relu: return v > 0 ? v : 0;
    case HfgActivation::Gelu: return 0.5 * v * std::erfc(-v / std::sqrt(2.0));
    case HfgActivation::Silu: return v / (1 + std::exp(-v));
    case HfgActivation::Tanh: return std::tanh(v);
  }
  return 0;
}

const float* ptr(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

std::vector<double> reference(const std::vector<double>& x, const std::vector<float>* mask, const Params& p,
                              const qgs::HfgContextLayerWeights& w, int64_t N, int64_t T, int64_t D, int64_t H,
                              int64_t F) {
  const int64_t dh = D / H;
  std::vector<double> out(static_cast<size_t>(N * D));
  for (int64_t n = 0; n < N; ++n) {
    std::vector<std::vector<double>> k(T), v(T);
    std::vector<double> q;
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> xt(x.begin() + (n * T + t) * D, x.begin() + (n * T + t + 1) * D);
      auto y = layer_norm(xt, ptr(p.ln1w), ptr(p.ln1b), w.eps1);
      auto qkv = affine(p.wqkv.data(), ptr(p.bqkv), y, 3 * D, D);
      if (t == 0) q.assign(qkv.begin(), qkv.begin() + D);
      k[t].assign(qkv.begin() + D, qkv.begin() + 2 * D);
      v[t].assign(qkv.begin() + 2 * D, qkv.end());
    }
    std::vector<double> a(D, 0.0);
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> s(T);
      double mx = -INFINITY;
      for (int64_t t = 0; t < T; ++t) {
        if (mask && (*mask)[n * T + t] == 0.f) continue;
        double acc = 0;
        for (int64_t c = 0; c < dh; ++c) acc += q[h * dh + c] * k[t][h * dh + c];
        s[t] = acc / std::sqrt(double(dh));
        mx = std::max(mx, s[t]);
      }
      if (mx == -INFINITY) continue;  // every key masked: a = 0
      double z = 0;
      for (int64_t t = 0; t < T; ++t)
        if (!(mask && (*mask)[n * T + t] == 0.f)) z += std::exp(s[t] - mx);
      for (int64_t t = 0; t < T; ++t) {
        if (mask && (*mask)[n * T + t] == 0.f) continue;
        const double pt = std::exp(s[t] - mx) / z;
        for (int64_t c = 0; c < dh; ++c) a[h * dh + c] += pt * v[t][h * dh + c];
      }
    }
    auto o = affine(p.wo.data(), ptr(p.bo), a, D, D);
    std::vector<double> x1(D);
    for (int64_t c = 0; c < D; ++c) x1[c] = x[n * T * D + c] + o[c];
    auto hdn = affine(p.w1.data(), ptr(p.b1), layer_norm(x1, ptr(p.ln2w), ptr(p.ln2b), w.eps2), F, D);
    for (auto& e : hdn) e = act(e, w.activation);
    auto f = affine(p.w2.data(), ptr(p.b2), hdn, D, F);
    for (int64_t c = 0; c < D; ++c) x1[c] += f[c];
    auto y = layer_norm(x1, ptr(p.lnow), ptr(p.lnob), w.eps_out);
    for (int64_t c = 0; c < D; ++c) out[n * D + c] = y[c];
  }
  return out;
}

std::vector<float> vec(Rng& rng, int64_t n, float sd, float mean = 0.f) {
  auto v = rng.normals(static_cast<size_t>(n), sd);
  for (auto& e : v) e += mean;
  return v;
}

// Random layer parameters (null biases / LayerNorm parameters when `nulls`) and the weights view.
qgs::HfgContextLayerWeights random_layer(Rng& rng, Params& p, int64_t D, int64_t F, HfgActivation a, bool nulls) {
  auto vec = [&](int64_t n, float sd, float mean = 0.f) { return ::vec(rng, n, sd, mean); };
  const float ws = 1.f / std::sqrt(float(D));
  p.wqkv = vec(3 * D * D, ws);
  p.wo = vec(D * D, ws);
  p.w1 = vec(F * D, ws);
  p.w2 = vec(D * F, 1.f / std::sqrt(float(F)));
  if (!nulls) {
    p.ln1w = vec(D, 0.2f, 1.f);
    p.ln1b = vec(D, 0.1f);
    p.bqkv = vec(3 * D, 0.1f);
    p.bo = vec(D, 0.1f);
    p.ln2w = vec(D, 0.2f, 1.f);
    p.ln2b = vec(D, 0.1f);
    p.b1 = vec(F, 0.1f);
    p.b2 = vec(D, 0.1f);
    p.lnow = vec(D, 0.2f, 1.f);
    p.lnob = vec(D, 0.1f);
  }
  qgs::HfgContextLayerWeights w;
  w.ln1_w = ptr(p.ln1w), w.ln1_b = ptr(p.ln1b), w.wqkv = p.wqkv.data(), w.bqkv = ptr(p.bqkv);
  w.wo = p.wo.data(), w.bo = ptr(p.bo), w.ln2_w = ptr(p.ln2w), w.ln2_b = ptr(p.ln2b);
  w.w1 = p.w1.data(), w.b1 = ptr(p.b1), w.w2 = p.w2.data(), w.b2 = ptr(p.b2), w.lno_w = ptr(p.lnow), w.lno_b = ptr(p.lnob);
  w.eps1 = 1e-5f, w.eps2 = 1e-3f, w.eps_out = 1e-5f;
  w.activation = a;
  return w;
}

void run_case(Rng& rng, int64_t N, int64_t T, int64_t D, int64_t H, int64_t F, HfgActivation a, bool masked,
              bool nulls, float x_scale) {
  Params p;
  const qgs::HfgContextLayerWeights w = random_layer(rng, p, D, F, a, nulls);
  auto x = vec(rng, N * T * D, x_scale);
  std::vector<float> mask;
  if (masked) {
    mask.resize(static_cast<size_t>(N * T));
    for (auto& m : mask) m = rng.uniform(0.f, 1.f) < 0.3f ? 0.f : 1.f;
    if (N > 2) std::fill(mask.begin() + T, mask.begin() + 2 * T, 0.f);  // candidate 1: every key masked
  }
  auto out = poisoned(static_cast<size_t>(N * D));
  qgs::cpu::hfg_context_layer_forward(out.data(), x.data(), masked ? mask.data() : nullptr, w, N, T, D, H, F);
  auto ref = reference(std::vector<double>(x.begin(), x.end()), masked ? &mask : nullptr, p, w, N, T, D, H, F);
  const std::string what = "hfg_context_layer N=" + std::to_string(N) + " T=" + std::to_string(T) + " D=" +
                           std::to_string(D) + " H=" + std::to_string(H) + " F=" + std::to_string(F) + " act=" +
                           std::to_string(int(a)) + (masked ? " masked" : "") + (nulls ? " null-params" : "") +
                           " xscale=" + std::to_string(x_scale);
  // Per candidate: a LayerNorm output has unit scale, so each row is judged relative to its own norm.
  for (int64_t n = 0; n < N; ++n) {
    if (!check_close(what + " row " + std::to_string(n), out.data() + n * D, ref.data() + n * D, size_t(D), 2e-5)) break;
  }
  if (N == 0) check(true, what);
}


// The whole ranking head: tokens from context rows (shared by a request's candidates), items and a
// feature projection, the layer, the ReLU match MLP and the logit — against float64.
// With table_rows > 0 the item rows come from a [table_rows, D] table through random item_ids.
// block: every feature column feeds one group (column j → group j mod (G + 1); G + 1 means none), as
// RankingPlan's block-diagonal projection does — the kernel's folded path when the groups are narrow.
void run_head_case(Rng& rng, int64_t N, int64_t R, int64_t D, int64_t G, int64_t H, int64_t FF, int64_t F, int64_t M,
                   bool nulls, int64_t table_rows = 0, bool block = false, float feat_scale = 1.f) {
  Params p;
  qgs::RankHeadWeights w;
  w.layer = random_layer(rng, p, D, FF, HfgActivation::Gelu, nulls);
  const int64_t T = G + 2;
  auto type = vec(rng, T * D, 0.3f), gw = vec(rng, G * D * F, 0.5f), gb = vec(rng, G * D, 0.1f);
  if (block)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t o = 0; o < D; ++o)
        for (int64_t f = 0; f < F; ++f)
          if (f % (G + 1) != g) gw[(g * D + o) * F + f] = 0.f;
  auto m1 = vec(rng, M * 3 * D, 1.f / std::sqrt(float(3 * D))), mb1 = vec(rng, M, 0.1f);
  auto m2 = vec(rng, D * M, 1.f / std::sqrt(float(M))), mb2 = vec(rng, D, 0.1f);
  auto lw = vec(rng, 2 * D + F, 0.3f);
  w.type_emb = type.data(), w.group_w = gw.data(), w.group_b = nulls ? nullptr : gb.data();
  w.match_w1 = m1.data(), w.match_b1 = nulls ? nullptr : mb1.data(), w.match_w2 = m2.data();
  w.match_b2 = nulls ? nullptr : mb2.data(), w.logit_w = lw.data(), w.logit_b = 0.25f;
  auto ctx = vec(rng, R * D, 1.f), feats = vec(rng, N * F, feat_scale);
  std::vector<int32_t> req(static_cast<size_t>(N)), ids(static_cast<size_t>(N));
  for (auto& r : req) r = static_cast<int32_t>(rng.integer(0, R - 1));
  for (auto& i : ids) i = static_cast<int32_t>(rng.integer(0, std::max<int64_t>(table_rows, 1) - 1));
  const auto table = vec(rng, std::max<int64_t>(table_rows, 1) * D, 1.f);
  // The [N, D] rows the kernel should see: gathered from the table, or fresh ones passed as they are.
  std::vector<float> item = vec(rng, N * D, 1.f);
  if (table_rows > 0)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < D; ++c) item[n * D + c] = table[ids[n] * D + c];
  qgs::RankHeadSizes s;
  s.N = N, s.R = R, s.D = D, s.G = G, s.H = H, s.FF = FF, s.F = F, s.M = M, s.V = table_rows;
  auto out = poisoned(static_cast<size_t>(N));
  if (table_rows > 0) qgs::cpu::hfg_rank_head_forward(out.data(), ctx.data(), req.data(), table.data(), ids.data(), feats.data(), w, s);
  else qgs::cpu::hfg_rank_head_forward(out.data(), ctx.data(), req.data(), item.data(), nullptr, feats.data(), w, s);
  // A plan made once gives the same logits bit for bit, also after the caller's weight buffers are
  // overwritten (it keeps copies), and twice in a row.
  {
    const qgs::cpu::RankHeadPlanPtr plan = qgs::cpu::make_rank_head_plan(w, s);
    const std::vector<float> saved_gw = gw, saved_m1 = m1, saved_type = type;
    std::fill(gw.begin(), gw.end(), std::nanf(""));
    std::fill(m1.begin(), m1.end(), std::nanf(""));
    std::fill(type.begin(), type.end(), std::nanf(""));
    for (int rep = 0; rep < 2; ++rep) {
      auto planned = poisoned(static_cast<size_t>(N));
      const float* it = table_rows > 0 ? table.data() : item.data();
      qgs::cpu::hfg_rank_head_forward(planned.data(), ctx.data(), req.data(), it, table_rows > 0 ? ids.data() : nullptr,
                                      feats.data(), *plan, N, R, table_rows);
      check(N == 0 || std::memcmp(planned.data(), out.data(), sizeof(float) * size_t(N)) == 0,
            "rank head plan = stateless call (bit for bit), call " + std::to_string(rep));
    }
    gw = saved_gw, m1 = saved_m1, type = saved_type;
  }
  // Reference tokens in float64, then the layer reference, the match MLP and the logit.
  std::vector<double> x(static_cast<size_t>(N * T * D));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < D; ++c) {
      x[(n * T) * D + c] = double(ctx[req[n] * D + c]) + type[c];
      x[(n * T + 1) * D + c] = double(item[n * D + c]) + type[D + c];
      for (int64_t g = 0; g < G; ++g) {
        double acc = (nulls ? 0.0 : gb[g * D + c]) + type[(2 + g) * D + c];
        for (int64_t f = 0; f < F; ++f) acc += double(gw[(g * D + c) * F + f]) * feats[n * F + f];
        x[(n * T + 2 + g) * D + c] = acc;
      }
    }
  auto pooled = reference(x, nullptr, p, w.layer, N, T, D, H, FF);
  std::vector<double> ref(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> in(static_cast<size_t>(3 * D));
    for (int64_t c = 0; c < D; ++c) {
      in[c] = ctx[req[n] * D + c];
      in[D + c] = item[n * D + c];
      in[2 * D + c] = double(ctx[req[n] * D + c]) * item[n * D + c];
    }
    auto h1 = affine(m1.data(), w.match_b1, in, M, 3 * D);
    for (auto& v : h1) v = v > 0 ? v : 0;
    auto h2 = affine(m2.data(), w.match_b2, h1, D, M);
    double logit = w.logit_b;
    for (int64_t c = 0; c < D; ++c) logit += pooled[n * D + c] * lw[c] + (h2[c] > 0 ? h2[c] : 0) * lw[D + c];
    for (int64_t f = 0; f < F; ++f) logit += double(feats[n * F + f]) * lw[2 * D + f];
    ref[n] = logit;
  }
  check_close("rank_head N=" + std::to_string(N) + " R=" + std::to_string(R) + " D=" + std::to_string(D) + " G=" +
                  std::to_string(G) + " H=" + std::to_string(H) + " FF=" + std::to_string(FF) + " F=" + std::to_string(F) +
                  " M=" + std::to_string(M) + (nulls ? " null-params" : "") +
                  (table_rows > 0 ? " table=" + std::to_string(table_rows) : "") + (block ? " block" : ""),
              out, ref, 2e-5);
}

}  // namespace

int main() {
  uint64_t seed = fresh_seed();
  Rng rng(seed);
  const HfgActivation acts[] = {HfgActivation::Relu, HfgActivation::Gelu, HfgActivation::Silu, HfgActivation::Tanh};
  // N around the 32-candidate tile; T up to the 64-key limit and past the 16-key softmax blocks; D
  // with padding columns (D not a multiple of 16) and head widths 1..40; F odd and wide.
  for (int64_t T : {1, 2, 7, 17, 64})
    for (auto [D, H] : {std::pair<int64_t, int64_t>{1, 1}, {6, 3}, {32, 2}, {40, 1}, {48, 4}})
      for (int64_t F : {1, 37, 64}) {
        const HfgActivation a = acts[rng.integer(0, 3)];
        run_case(rng, rng.integer(1, 5), T, D, H, F, a, false, false, 1.f);
        run_case(rng, rng.integer(3, 40), T, D, H, F, a, true, rng.integer(0, 1) == 1, 1.f);
      }
  for (HfgActivation a : acts) {
    run_case(rng, 97, 7, 32, 2, 64, a, true, false, 1.f);   // 4 tiles, the last one partial
    run_case(rng, 64, 7, 32, 2, 64, a, false, false, 6.f);  // large inputs: GELU/SiLU tails, saturated tanh
  }
  run_case(rng, 1000, 7, 32, 2, 64, HfgActivation::Gelu, false, false, 1.f);  // the serving shape
  run_case(rng, 0, 7, 32, 2, 64, HfgActivation::Gelu, true, false, 1.f);

  // The whole ranking head: the QGS shape (G = 5, F = 7, M = 64), odd sizes, no groups, no features.
  run_head_case(rng, 1000, 1, 32, 5, 2, 64, 7, 64, false);
  run_head_case(rng, 1000, 1, 32, 5, 2, 64, 7, 64, false, 2001);  // serving: rows from the item table
  run_head_case(rng, 97, 3, 32, 5, 2, 64, 7, 64, true);
  run_head_case(rng, 97, 3, 32, 5, 2, 64, 7, 64, true, 5);  // few rows: repeated ids
  run_head_case(rng, 33, 2, 6, 3, 3, 5, 4, 9, false);
  run_head_case(rng, 5, 1, 12, 0, 2, 8, 3, 7, false);
  run_head_case(rng, 40, 4, 16, 4, 4, 20, 0, 17, false);
  // Block-diagonal group projections (the serving models'): folded into feature space when narrow —
  // the QGS shape, interleaved requests, null parameters, odd widths, an ungrouped column, one- and
  // no-feature groups, large features — and the generic path when the quadratic forms would cost more
  // (D = 6, ~13 features a group).
  run_head_case(rng, 1000, 1, 32, 5, 2, 64, 7, 64, false, 2001, true);
  run_head_case(rng, 97, 3, 32, 5, 2, 64, 7, 64, true, 0, true);
  run_head_case(rng, 65, 5, 6, 3, 3, 5, 5, 9, false, 0, true);
  run_head_case(rng, 33, 2, 20, 6, 4, 12, 3, 8, true, 7, true);
  run_head_case(rng, 40, 4, 16, 4, 4, 20, 0, 17, false, 0, true);
  run_head_case(rng, 31, 2, 6, 3, 2, 8, 40, 5, false, 0, true);
  run_head_case(rng, 97, 2, 32, 5, 2, 64, 7, 64, false, 0, true, 30.f);  // features far outside standardised

  // Bad arguments throw KernelError (never abort).
  std::vector<float> buf(4096, 0.f);
  float* b = buf.data();
  qgs::HfgContextLayerWeights w;
  w.wqkv = w.wo = w.w1 = w.w2 = b;
  auto call = [&](int64_t N, int64_t T, int64_t D, int64_t H, int64_t F, const qgs::HfgContextLayerWeights& ww) {
    qgs::cpu::hfg_context_layer_forward(b, b, nullptr, ww, N, T, D, H, F);
  };
  check_throws("T = 0", [&] { call(1, 0, 4, 1, 4, w); });
  check_throws("T = 65", [&] { call(1, 65, 4, 1, 4, w); });
  check_throws("H does not divide D", [&] { call(1, 3, 6, 4, 4, w); });
  check_throws("D / H > 128", [&] { call(1, 3, 258, 2, 4, w); });
  check_throws("F = 0", [&] { call(1, 3, 4, 1, 0, w); });
  check_throws("N < 0", [&] { call(-1, 3, 4, 1, 4, w); });
  auto bad = w;
  bad.eps2 = 0.f;
  check_throws("eps2 = 0", [&] { call(1, 3, 4, 1, 4, bad); });
  bad = w;
  bad.eps_out = std::numeric_limits<float>::quiet_NaN();
  check_throws("NaN epsOut", [&] { call(1, 3, 4, 1, 4, bad); });
  bad = w;
  bad.w1 = nullptr;
  check_throws("null w1", [&] { call(1, 3, 4, 1, 4, bad); });
  bad = w;
  bad.activation = static_cast<HfgActivation>(7);
  check_throws("activation 7", [&] { call(1, 3, 4, 1, 4, bad); });
  check_throws("null out", [&] { qgs::cpu::hfg_context_layer_forward(nullptr, b, nullptr, w, 1, 3, 4, 1, 4); });
  qgs::RankHeadWeights hw;
  hw.layer = w;
  hw.type_emb = hw.group_w = hw.match_w1 = hw.match_w2 = hw.logit_w = b;
  qgs::RankHeadSizes hs;
  hs.N = 2, hs.R = 1, hs.D = 4, hs.G = 1, hs.H = 1, hs.FF = 4, hs.F = 2, hs.M = 4;
  std::vector<int32_t> req = {0, 1};
  check_throws("rank head: req out of range", [&] { qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, nullptr, b, hw, hs); });
  req[1] = 0;
  auto hs2 = hs;
  hs2.G = 63;
  check_throws("rank head: G = 63", [&] { qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, nullptr, b, hw, hs2); });
  hs2 = hs;
  hs2.M = 0;
  check_throws("rank head: M = 0", [&] { qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, nullptr, b, hw, hs2); });
  auto hw2 = hw;
  hw2.match_w2 = nullptr;
  check_throws("rank head: null match_w2", [&] { qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, nullptr, b, hw2, hs); });
  std::vector<int32_t> ids = {0, 3};
  auto hs3 = hs;
  hs3.V = 3;
  check_throws("rank head: item id out of the table", [&] { qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, ids.data(), b, hw, hs3); });
  ids[1] = -1;
  check_throws("rank head: negative item id", [&] { qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, ids.data(), b, hw, hs3); });
  ids[1] = 2;
  qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, ids.data(), b, hw, hs3);  // valid: no throw
  qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, nullptr, b, hw, hs);  // valid: no throw
  {
    const auto plan = qgs::cpu::make_rank_head_plan(hw, hs);
    req[1] = 1;
    check_throws("plan: req out of range", [&] { qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, nullptr, b, *plan, 2, 1, 0); });
    req[1] = 0;
    std::vector<int32_t> bad_ids = {0, 3};
    check_throws("plan: item id out of the table", [&] { qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, bad_ids.data(), b, *plan, 2, 1, 3); });
    check_throws("plan: R = 0", [&] { qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, nullptr, b, *plan, 2, 0, 0); });
    qgs::cpu::hfg_rank_head_forward(b, b, req.data(), b, nullptr, b, *plan, 0, 0, 0);  // N = 0: nothing to do
    auto hs4 = hs;
    hs4.M = 0;
    check_throws("plan: M = 0", [&] { qgs::cpu::make_rank_head_plan(hw, hs4); });
  }
  check(true, "rank head: valid call");
  return finish("test_hfg_context_layer", seed);
}
