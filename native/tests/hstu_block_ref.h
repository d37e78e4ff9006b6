// Shared by the fused Linear HSTU block tests (step and sequence forms): random block parameters and
// the float64 reference of the parts around the recurrence, written from qgs/linear_hstu_step.h.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "qgs/linear_hstu_step.h"
#include "test_util.h"

namespace qgs_test {

struct BlockParams {
  int64_t D = 0, H = 0, dk = 0, dv = 0;
  std::vector<float> lniw, lnib, pw, pb, lnow, lnob, ow, ob, decay;

  static const float* ptr(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

  qgs::LinearHstuStepWeights weights() const {
    qgs::LinearHstuStepWeights w;
    w.ln_in_w = ptr(lniw), w.ln_in_b = ptr(lnib), w.eps_in = 1e-5f;
    w.proj_w = pw.data(), w.proj_b = ptr(pb);
    w.ln_out_w = ptr(lnow), w.ln_out_b = ptr(lnob), w.eps_out = 1e-5f;
    w.out_w = ow.data(), w.out_b = ptr(ob);
    w.decay = decay.data();
    return w;
  }

  // The SiLU projection of one token x [D] in float64: u [H·dv] | v [H·dv] | q [H·dk] | k [H·dk].
  std::vector<double> project(const std::vector<double>& x) const {
    const int64_t P = H * (2 * dv + 2 * dk);
    auto y = layer_norm(x, ptr(lniw), ptr(lnib), 1e-5);
    std::vector<double> p(static_cast<size_t>(P));
    for (int64_t o = 0; o < P; ++o) {
      double z = pb.empty() ? 0.0 : pb[o];
      for (int64_t i = 0; i < D; ++i) z += double(pw[o * D + i]) * y[i];
      p[o] = z / (1 + std::exp(-z));
    }
    return p;
  }

  // The block's output for token x given its recurrence output o [H·dv] and projection p:
  // x + Wo (LNout(o) ⊙ u) + bo, written to out [D].
  void finish(double* out, const std::vector<double>& x, const std::vector<double>& o, const std::vector<double>& p) const {
    auto mixed = layer_norm(o, ptr(lnow), ptr(lnob), 1e-5);
    for (int64_t c = 0; c < H * dv; ++c) mixed[c] *= p[c];
    for (int64_t d = 0; d < D; ++d) {
      double a = x[d] + (ob.empty() ? 0.0 : ob[d]);
      for (int64_t c = 0; c < H * dv; ++c) a += double(ow[d * H * dv + c]) * mixed[c];
      out[d] = a;
    }
  }
};

// Fresh weights; with `nulls` no biases or LayerNorm affine parameters. decay_kind 0: γ uniform in
// [decay_lo, 1); 1: γ = 0; 2: γ = 1.
inline BlockParams random_block_params(Rng& rng, int64_t D, int64_t H, int64_t dk, int64_t dv, bool nulls, int decay_kind,
                                       float decay_lo) {
  BlockParams p;
  p.D = D, p.H = H, p.dk = dk, p.dv = dv;
  const int64_t P = H * (2 * dv + 2 * dk);
  p.pw = rng.normals(size_t(P * D), 1.f / std::sqrt(float(D)));
  p.ow = rng.normals(size_t(D * H * dv), 1.f / std::sqrt(float(H * dv)));
  if (!nulls) {
    p.lniw = rng.normals(size_t(D), 0.3f);
    for (auto& v : p.lniw) v += 1.f;
    p.lnib = rng.normals(size_t(D), 0.1f);
    p.pb = rng.normals(size_t(P), 0.1f);
    p.lnow = rng.normals(size_t(H * dv), 0.3f);
    for (auto& v : p.lnow) v += 1.f;
    p.lnob = rng.normals(size_t(H * dv), 0.1f);
    p.ob = rng.normals(size_t(D), 0.1f);
  }
  p.decay.resize(size_t(H));
  for (int64_t h = 0; h < H; ++h) p.decay[h] = decay_kind == 0 ? rng.uniform(decay_lo, 1.f) : decay_kind == 1 ? 0.f : 1.f;
  return p;
}

}  // namespace qgs_test
