// Fused serving step of one Linear HSTU block (contract in qgs/linear_hstu_step.h). The composed
// EncoderBlock.step is ~17 tensor ops per layer on [R, ·] rows of a few dozen floats: at R = 1 each
// op costs more in dispatch and allocation than in arithmetic (a two-layer read-out took ~0.28 ms of
// a 1,000-candidate cached score). Here a row goes LayerNorm → projection → SiLU → state step →
// LayerNorm → gate → output projection in registers and small scratch; read-outs skip the V and K
// rows of the projection, which only feed the state update.
#include "qgs/linear_hstu_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "layer_norm_row.h"
#include "plan_copy.h"
#include "qgs/elementwise.h"
#include "qgs/parallel.h"
#include "scratch.h"

namespace qgs {

void linear_hstu_weights_check(const std::string& op, const LinearHstuStepWeights& w, int64_t D, int64_t H, int64_t dk,
                               int64_t dv, bool need_decay) {
  QGS_REQUIRE(D >= 1 && D <= 65536, op + "D (width) must be in [1, 65536], got " + std::to_string(D));
  QGS_REQUIRE(H >= 1 && H <= 4096, op + "H (heads) must be in [1, 4096], got " + std::to_string(H));
  QGS_REQUIRE(dk >= 1 && dk <= 4096 && dv >= 1 && dv <= 4096,
              op + "dk and dv must be in [1, 4096], got dk = " + std::to_string(dk) + ", dv = " + std::to_string(dv));
  QGS_REQUIRE(w.proj_w && w.out_w, op + "the weights proj_w and out_w must be non-null");
  QGS_REQUIRE(w.eps_in > 0 && w.eps_out > 0 && std::isfinite(w.eps_in) && std::isfinite(w.eps_out),
              op + "LayerNorm eps must be positive and finite");
  if (need_decay) {
    QGS_REQUIRE(w.decay, op + "decay must be non-null when writing");
    for (int64_t h = 0; h < H; ++h)
      QGS_REQUIRE(w.decay[h] >= 0.f && w.decay[h] <= 1.f,
                  op + "decay[" + std::to_string(h) + "] must be in [0, 1], got " + std::to_string(w.decay[h]));
  }
}

void linear_hstu_step_check(const LinearHstuStepWeights& w, const LinearHstuStepSizes& s, bool write) {
  const std::string op = "linearHstuStep: ";
  QGS_REQUIRE(s.R >= 0, op + "R (rows) must be >= 0, got " + std::to_string(s.R));
  linear_hstu_weights_check(op, w, s.D, s.H, s.dk, s.dv, write);
}

// The plan's own copies of the weights (cpu::keep), as the step takes them: one view per layer.
struct LinearHstuEncoderPlan {
  LinearHstuEncoderSizes s;
  std::vector<std::vector<float>> owned;
  std::vector<LinearHstuStepWeights> views;
  const float* final_w = nullptr;
  const float* final_b = nullptr;
  float final_eps = 1e-5f;
};

void LinearHstuEncoderPlanDeleter::operator()(LinearHstuEncoderPlan* p) const { delete p; }

LinearHstuEncoderPlanPtr make_linear_hstu_encoder_plan(const LinearHstuStepWeights* layers, const LinearHstuEncoderSizes& s,
                                                       const float* final_w, const float* final_b, float final_eps) {
  const std::string op = "linearHstuEncoderPlan: ";
  QGS_REQUIRE(s.L >= 1 && s.L <= 1024, op + "L (layers) must be in [1, 1024], got " + std::to_string(s.L));
  QGS_REQUIRE(layers, op + "layers must be non-null");
  QGS_REQUIRE(final_eps > 0 && std::isfinite(final_eps), op + "the final LayerNorm eps must be positive and finite");
  for (int64_t l = 0; l < s.L; ++l) linear_hstu_weights_check(op + "layer " + std::to_string(l) + ": ", layers[l], s.D, s.H, s.dk, s.dv, true);
  LinearHstuEncoderPlanPtr plan(new LinearHstuEncoderPlan);
  plan->s = s;
  const int64_t D = s.D, Hv = s.H * s.dv, P = s.H * (2 * s.dv + 2 * s.dk);
  auto& o = plan->owned;
  using cpu::keep;
  for (int64_t l = 0; l < s.L; ++l) {
    LinearHstuStepWeights v = layers[l];  // eps as given; every pointer replaced by the plan's copy
    v.ln_in_w = keep(o, v.ln_in_w, D), v.ln_in_b = keep(o, v.ln_in_b, D);
    v.proj_w = keep(o, v.proj_w, P * D), v.proj_b = keep(o, v.proj_b, P);
    v.ln_out_w = keep(o, v.ln_out_w, Hv), v.ln_out_b = keep(o, v.ln_out_b, Hv);
    v.out_w = keep(o, v.out_w, D * Hv), v.out_b = keep(o, v.out_b, D);
    v.decay = keep(o, v.decay, s.H);
    plan->views.push_back(v);
  }
  plan->final_w = keep(o, final_w, D), plan->final_b = keep(o, final_b, D);
  plan->final_eps = final_eps;
  return plan;
}

LinearHstuEncoderSizes linear_hstu_encoder_plan_sizes(const LinearHstuEncoderPlan& plan) { return plan.s; }

namespace cpu {
namespace {

struct RowScratch {
  std::vector<float> y, p, o, m;
  explicit RowScratch(const LinearHstuStepSizes& s)
      : y(static_cast<size_t>(s.D)),
        p(static_cast<size_t>(s.H * (2 * s.dv + 2 * s.dk))),
        o(static_cast<size_t>(s.H * s.dv)),
        m(static_cast<size_t>(s.H * s.dv)) {}
};

// p[o] = SiLU(Wp[o] · y + bp[o]) for the projection rows [o0, o1).
QGS_SIMD_CLONES void project_rows(float* QGS_RESTRICT p, const float* QGS_RESTRICT y, const float* QGS_RESTRICT W,
                                  const float* b, int64_t o0, int64_t o1, int64_t D) {
  for (int64_t o = o0; o < o1; ++o) {
    const float* QGS_RESTRICT wo = W + o * D;
    float acc = 0.f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < D; ++i) acc += wo[i] * y[i];
    const float z = acc + (b ? b[o] : 0.f);
    p[o] = z / (1.f + std::exp(-z));
  }
}

QGS_SIMD_CLONES void step_row(float* QGS_RESTRICT out, float* state_out, const float* QGS_RESTRICT x, const float* state,
                              const LinearHstuStepWeights& w, const LinearHstuStepSizes& s, bool write, RowScratch& sc) {
  const int64_t D = s.D, H = s.H, dk = s.dk, dv = s.dv, Hv = H * dv, Hk = H * dk;
  const int64_t vOff = Hv, qOff = 2 * Hv, kOff = 2 * Hv + Hk;
  float mean, rstd;
  ln_row(sc.y.data(), &mean, &rstd, x, w.ln_in_w, w.ln_in_b, D, w.eps_in);
  float* p = sc.p.data();
  if (write) {
    project_rows(p, sc.y.data(), w.proj_w, w.proj_b, 0, kOff + Hk, D);
  } else {
    project_rows(p, sc.y.data(), w.proj_w, w.proj_b, 0, Hv, D);           // u
    project_rows(p, sc.y.data(), w.proj_w, w.proj_b, qOff, kOff, D);      // q
  }
  float* QGS_RESTRICT o = sc.o.data();
  for (int64_t h = 0; h < H; ++h) {
    const float* q = p + qOff + h * dk;
    const float* S = state + h * dk * dv;
    float* QGS_RESTRICT oh = o + h * dv;
    for (int64_t c = 0; c < dv; ++c) oh[c] = 0.f;
    if (write) {
      const float g = w.decay[h];
      const float* k = p + kOff + h * dk;
      const float* v = p + vOff + h * dv;
      float* Sn = state_out + h * dk * dv;
      for (int64_t i = 0; i < dk; ++i) {
        const float ki = k[i], qi = q[i];
        // Read the old row into the new one first: state_out may alias state.
#pragma omp simd
        for (int64_t c = 0; c < dv; ++c) {
          const float nv = g * S[i * dv + c] + ki * v[c];
          Sn[i * dv + c] = nv;
          oh[c] += qi * nv;
        }
      }
    } else {
      for (int64_t i = 0; i < dk; ++i) {
        const float qi = q[i];
        const float* QGS_RESTRICT Si = S + i * dv;
#pragma omp simd
        for (int64_t c = 0; c < dv; ++c) oh[c] += qi * Si[c];
      }
    }
  }
  // m = LNout(o) ⊙ u;  out = x + Wo m + bo.
  float* QGS_RESTRICT m = sc.m.data();
  ln_row(m, &mean, &rstd, o, w.ln_out_w, w.ln_out_b, Hv, w.eps_out);
#pragma omp simd
  for (int64_t c = 0; c < Hv; ++c) m[c] *= p[c];
  for (int64_t d = 0; d < D; ++d) {
    const float* QGS_RESTRICT wd = w.out_w + d * Hv;
    float acc = 0.f;
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < Hv; ++c) acc += wd[c] * m[c];
    out[d] = x[d] + acc + (w.out_b ? w.out_b[d] : 0.f);
  }
}

}  // namespace

void linear_hstu_step_forward(float* out, float* state_out, const float* x, const float* state,
                              const LinearHstuStepWeights& w, const LinearHstuStepSizes& s, bool write) {
  linear_hstu_step_check(w, s, write);
  if (s.R == 0) return;
  QGS_REQUIRE(out && x && state, "linearHstuStep: out, x and state must be non-null");
  QGS_REQUIRE(!write || state_out, "linearHstuStep: state_out must be non-null when writing");
  const int64_t per_state = s.H * s.dk * s.dv;
  // ~2·(P·D + H·dk·dv + D·H·dv) flops a row: rows are split across the pool only in batches of 16,
  // so a single read-out never pays a thread hand-off.
  parallel_for(s.R, 16, [&](int64_t r0, int64_t r1) {
    RowScratch sc(s);
    for (int64_t r = r0; r < r1; ++r)
      step_row(out + r * s.D, write ? state_out + r * per_state : nullptr, x + r * s.D, state + r * per_state, w, s, write, sc);
  });
}

namespace {
// x [n, D] = the n pair tokens' embeddings (PairTokenInputs): every id is checked before anything is
// written (embedding_bag_f32 checks the terms), then the term bags get their item rows added.
void embed_pair_tokens(float* x, const PairTokenInputs& in, int64_t n, int64_t D, const std::string& op) {
  QGS_REQUIRE(in.terms && in.items && in.term_table && in.item_table, op + "terms, items and both tables must be non-null");
  for (int64_t t = 0; t < n; ++t)
    QGS_REQUIRE(in.items[t] >= 0 && in.items[t] < in.item_rows, op + "items[" + std::to_string(t) + "] = " + std::to_string(in.items[t]) +
                                                                   " is out of range for an item table of " + std::to_string(in.item_rows) + " rows");
  embedding_bag_f32(x, in.term_table, in.term_rows, D, in.terms, nullptr, n, in.m, true, in.pad_term);
  parallel_for(n, 256, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* item = in.item_table + int64_t(in.items[t]) * D;
      float* xt = x + t * D;
      for (int64_t d = 0; d < D; ++d) xt[d] += item[d];
    }
  });
}
}  // namespace

void linear_hstu_encoder_plan_step(float* h_out, float* states_out, const float* states_in, const PairTokenInputs& in,
                                   const LinearHstuEncoderPlan& plan, int64_t R, bool write) {
  const std::string op = "linearHstuEncoderPlan: ";
  const LinearHstuEncoderSizes& z = plan.s;
  QGS_REQUIRE(R >= 0, op + "R (rows) must be >= 0, got " + std::to_string(R));
  if (R == 0) return;
  QGS_REQUIRE(states_in, op + "states_in must be non-null");
  QGS_REQUIRE(!write || states_out, op + "states_out must be non-null when writing");
  QGS_REQUIRE(write || h_out, op + "h_out must be non-null for a read-out (it is the only result)");
  QGS_REQUIRE(in.m >= 1, op + "m (terms per token) must be >= 1, got " + std::to_string(in.m));
  const int64_t D = z.D, per = z.H * z.dk * z.dv, S = z.L * per;
  std::vector<float> x0(static_cast<size_t>(R * D));
  embed_pair_tokens(x0.data(), in, R, D, op);
  LinearHstuStepSizes ls;
  ls.R = 1, ls.D = D, ls.H = z.H, ls.dk = z.dk, ls.dv = z.dv;
  // Rows are independent users: split across the pool only in batches of 16 (as the step).
  parallel_for(R, 16, [&](int64_t r0, int64_t r1) {
    RowScratch sc(ls);
    std::vector<float> a(static_cast<size_t>(D)), b(static_cast<size_t>(D));
    float mean, rstd;
    for (int64_t r = r0; r < r1; ++r) {
      std::copy(x0.begin() + r * D, x0.begin() + (r + 1) * D, a.begin());
      for (int64_t l = 0; l < z.L; ++l) {
        const float* st = states_in + r * S + l * per;
        step_row(b.data(), write ? states_out + r * S + l * per : nullptr, a.data(), st, plan.views[l], ls, write, sc);
        a.swap(b);
      }
      if (h_out) ln_row(h_out + r * D, &mean, &rstd, a.data(), plan.final_w, plan.final_b, D, plan.final_eps);
    }
  });
}

void linear_hstu_encoder_plan_encode(float* states_out, const float* states_in, const PairTokenInputs& in,
                                     const int32_t* offsets, int64_t B, const float* write, const LinearHstuEncoderPlan& plan,
                                     int64_t T) {
  const std::string op = "linearHstuEncoderPlan.encode: ";
  const LinearHstuEncoderSizes& z = plan.s;
  QGS_REQUIRE(T >= 0 && B >= 1, op + "T must be >= 0 and B >= 1, got T = " + std::to_string(T) + ", B = " + std::to_string(B));
  QGS_REQUIRE(states_out, op + "states_out must be non-null");
  QGS_REQUIRE(offsets, op + "offsets must be non-null");
  QGS_REQUIRE(in.m >= 1, op + "m (terms per token) must be >= 1, got " + std::to_string(in.m));
  const int64_t D = z.D, per = z.H * z.dk * z.dv, S = z.L * per;
  // Every row of x is written by the embedding, and of y by each layer's output (not zero-filled).
  std::unique_ptr<float[]> x = scratch(std::max<int64_t>(T, 1) * D), y = z.L > 1 ? scratch(std::max<int64_t>(T, 1) * D) : nullptr;
  if (T > 0) embed_pair_tokens(x.get(), in, T, D, op);
  // One layer's states [B, per]: the caller's rows directly when B = 1, else gathered / scattered.
  std::vector<float> lin(B > 1 && states_in ? static_cast<size_t>(B * per) : 0), lout(B > 1 ? static_cast<size_t>(B * per) : 0);
  LinearHstuSeqSizes ss;
  ss.T = T, ss.B = B, ss.D = D, ss.H = z.H, ss.dk = z.dk, ss.dv = z.dv, ss.offsets = offsets;
  for (int64_t l = 0; l < z.L; ++l) {
    const float* si = nullptr;
    if (states_in && B == 1) si = states_in + l * per;
    if (states_in && B > 1) {
      for (int64_t b = 0; b < B; ++b) std::memcpy(lin.data() + b * per, states_in + b * S + l * per, sizeof(float) * per);
      si = lin.data();
    }
    float* so = B == 1 ? states_out + l * per : lout.data();
    const bool last = l + 1 == z.L;
    linear_hstu_seq_forward(last ? nullptr : y.get(), so, x.get(), si, write, plan.views[l], ss);
    if (B > 1)
      for (int64_t b = 0; b < B; ++b) std::memcpy(states_out + b * S + l * per, lout.data() + b * per, sizeof(float) * per);
    if (!last) x.swap(y);
  }
}

}  // namespace cpu
}  // namespace qgs
