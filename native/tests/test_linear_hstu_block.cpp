// The fused Linear HSTU block over a packed sequence (CPU inference, qgs/linear_hstu_step.h "sequence
// form") against a naive double-precision reference written from the contract: fresh random weights
// and inputs every run, jagged batches with empty sequences, write weights 0 / 1 / fractional, null
// initial states, null optional parameters, odd sizes, the state-only path (no output), poisoned
// outputs, row counts around the pool's grain, and bad arguments.
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "hstu_block_ref.h"
#include "qgs/linear_hstu_step.h"
#include "test_util.h"

using namespace qgs_test;

namespace {

// out [T, D] and the final states [B, H, dk, dv] in double, token by token.
void reference(std::vector<double>& out, std::vector<double>& st_out, const std::vector<float>& x,
               const std::vector<float>& state_in, const std::vector<float>& write, const std::vector<int32_t>& offsets,
               const BlockParams& p) {
  const int64_t D = p.D, H = p.H, dk = p.dk, dv = p.dv;
  const int64_t T = offsets.back(), B = int64_t(offsets.size()) - 1, per = H * dk * dv;
  out.assign(size_t(T * D), 0.0);
  st_out.assign(size_t(B * per), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> S(size_t(per), 0.0);
    if (!state_in.empty())
      for (int64_t i = 0; i < per; ++i) S[i] = state_in[b * per + i];
    for (int64_t t = offsets[b]; t < offsets[b + 1]; ++t) {
      std::vector<double> xr(x.begin() + t * D, x.begin() + (t + 1) * D);
      const auto pr = p.project(xr);
      const double* v = pr.data() + H * dv;
      const double* q = pr.data() + 2 * H * dv;
      const double* k = pr.data() + 2 * H * dv + H * dk;
      const double wt = write.empty() ? 1.0 : write[t];
      std::vector<double> o(size_t(H * dv), 0.0);
      for (int64_t h = 0; h < H; ++h) {
        const double a = wt * p.decay[h] + (1 - wt);
        for (int64_t i = 0; i < dk; ++i)
          for (int64_t c = 0; c < dv; ++c) {
            double& s = S[size_t((h * dk + i) * dv + c)];
            s = a * s + k[h * dk + i] * wt * v[h * dv + c];
            o[h * dv + c] += q[h * dk + i] * s;
          }
      }
      p.finish(out.data() + t * D, xr, o, pr);
    }
    for (int64_t i = 0; i < per; ++i) st_out[b * per + i] = S[i];
  }
}

enum class Writes { All, Mask, Fractional, None };
enum class Outputs { Both, OutOnly, StateOnly };

void run_case(Rng& rng, const std::vector<int32_t>& lengths, int64_t D, int64_t H, int64_t dk, int64_t dv, Writes writes,
              bool nulls, bool with_init, Outputs outs, int decay_kind = 0) {
  std::vector<int32_t> offsets(1, 0);
  for (int32_t l : lengths) offsets.push_back(offsets.back() + l);
  const int64_t T = offsets.back(), B = int64_t(lengths.size()), per = H * dk * dv;
  const BlockParams p = random_block_params(rng, D, H, dk, dv, nulls, decay_kind, 0.8f);
  const qgs::LinearHstuStepWeights w = p.weights();
  std::vector<float> write;
  if (writes != Writes::All) {
    write.resize(size_t(T));
    for (auto& v : write) {
      v = writes == Writes::None ? 0.f : writes == Writes::Mask ? (rng.uniform(0.f, 1.f) < 0.7f ? 1.f : 0.f) : rng.uniform(0.f, 1.f);
    }
  }
  const auto x = rng.normals(size_t(T * D));
  std::vector<float> state_in;
  if (with_init) state_in = rng.normals(size_t(B * per), 0.3f);
  std::vector<double> ref_out, ref_state;
  reference(ref_out, ref_state, x, state_in, write, offsets, p);
  auto out = poisoned(size_t(T * D));
  auto st = poisoned(size_t(B * per));
  qgs::LinearHstuSeqSizes s;
  s.T = T, s.B = B, s.D = D, s.H = H, s.dk = dk, s.dv = dv, s.offsets = offsets.data();
  const bool want_out = outs != Outputs::StateOnly, want_state = outs != Outputs::OutOnly;
  const auto x_copy = x;
  const auto init_copy = state_in;
  qgs::cpu::linear_hstu_seq_forward(want_out ? out.data() : nullptr, want_state ? st.data() : nullptr, x.data(), BlockParams::ptr(state_in),
                                    BlockParams::ptr(write), w, s);
  std::string tag = "T=" + std::to_string(T) + " B=" + std::to_string(B) + " D=" + std::to_string(D) + " H=" + std::to_string(H) +
                    " dk=" + std::to_string(dk) + " dv=" + std::to_string(dv) + " writes" + std::to_string(int(writes)) +
                    (nulls ? " nulls" : "") + (with_init ? " init" : "") + " outs" + std::to_string(int(outs)) + " decay" +
                    std::to_string(decay_kind);
  // The recurrence sums up to ~T terms per state element: the tolerance grows with the longest run.
  if (want_out) check_close("out " + tag, out, ref_out, 5e-5);
  if (want_state) check_close("state " + tag, st, ref_state, 5e-5);
  if (!want_out) check(T == 0 || std::isnan(out[0]), "no output written when out is null " + tag);
  check(x == x_copy && state_in == init_copy, "inputs untouched " + tag);
}

}  // namespace

int main() {
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  // The QGS serving shape: one 1,000-token history (D = 32, H = 2, dk = 64, dv = 16).
  run_case(rng, {1000}, 32, 2, 64, 16, Writes::All, false, false, Outputs::Both);
  run_case(rng, {1000}, 32, 2, 64, 16, Writes::All, false, false, Outputs::StateOnly);
  // Training-shaped packed batches: read-out tokens (write 0) between writes, empty sequences.
  run_case(rng, {5, 0, 37, 1, 64, 0, 3}, 32, 2, 64, 16, Writes::Mask, false, false, Outputs::Both);
  run_case(rng, {5, 0, 37, 1, 64, 0, 3}, 32, 2, 64, 16, Writes::Mask, false, true, Outputs::StateOnly);
  // Odd sizes, null optional parameters, fractional writes, initial states, rows across the grain.
  run_case(rng, {17, 9, 70}, 5, 3, 7, 3, Writes::Fractional, true, true, Outputs::Both);
  run_case(rng, {65, 1}, 9, 1, 1, 1, Writes::Mask, true, false, Outputs::OutOnly);
  run_case(rng, {129}, 13, 4, 5, 9, Writes::All, false, true, Outputs::Both);
  run_case(rng, {4, 6}, 7, 2, 3, 5, Writes::None, false, true, Outputs::Both);
  run_case(rng, {4, 6}, 7, 2, 3, 5, Writes::All, false, true, Outputs::Both, 1);
  run_case(rng, {4, 6}, 7, 2, 3, 5, Writes::Mask, false, true, Outputs::Both, 2);
  // The vector paths (dv = 8, 16, 32) with odd dk (the unpaired last row), every write kind.
  run_case(rng, {33, 4}, 6, 3, 7, 8, Writes::Mask, false, true, Outputs::Both);
  run_case(rng, {21, 0, 2}, 5, 2, 3, 16, Writes::Fractional, true, true, Outputs::Both);
  run_case(rng, {50}, 9, 1, 5, 32, Writes::Fractional, false, false, Outputs::Both);
  run_case(rng, {50, 7}, 9, 2, 1, 32, Writes::Mask, false, true, Outputs::StateOnly);
  run_case(rng, {0, 0}, 8, 2, 4, 4, Writes::All, false, true, Outputs::Both);
  run_case(rng, {0}, 8, 2, 4, 4, Writes::All, false, false, Outputs::StateOnly);

  // Bad arguments throw KernelError (never abort).
  std::vector<float> buf(4096, 0.5f);
  float* b = buf.data();
  qgs::LinearHstuStepWeights w;
  w.proj_w = w.out_w = w.decay = b;
  std::vector<int32_t> offs = {0, 2, 3};
  qgs::LinearHstuSeqSizes s;
  s.T = 3, s.B = 2, s.D = 4, s.H = 1, s.dk = 2, s.dv = 2, s.offsets = offs.data();
  std::vector<float> wr = {1.f, 0.f, 1.f};
  auto call = [&](const qgs::LinearHstuSeqSizes& ss, const qgs::LinearHstuStepWeights& ww, const float* write) {
    qgs::cpu::linear_hstu_seq_forward(b, b + 2048, b, nullptr, write, ww, ss);
  };
  call(s, w, wr.data());
  check(true, "valid arguments run");
  auto bs = s;
  bs.D = 0;
  check_throws("D = 0", [&] { call(bs, w, nullptr); });
  bs = s;
  bs.B = 0;
  check_throws("B = 0", [&] { call(bs, w, nullptr); });
  bs = s;
  bs.T = 4;
  check_throws("offsets[B] != T", [&] { call(bs, w, nullptr); });
  std::vector<int32_t> bad = {0, 3, 2};
  bs = s;
  bs.offsets = bad.data();
  check_throws("decreasing offsets", [&] { call(bs, w, nullptr); });
  bad = {1, 2, 3};
  check_throws("offsets[0] != 0", [&] { call(bs, w, nullptr); });
  bs.offsets = nullptr;
  check_throws("null offsets", [&] { call(bs, w, nullptr); });
  auto bw = w;
  bw.decay = nullptr;
  check_throws("null decay", [&] { call(s, bw, nullptr); });
  std::vector<float> bad_decay = {std::numeric_limits<float>::quiet_NaN()};
  bw = w;
  bw.decay = bad_decay.data();
  check_throws("decay NaN", [&] { call(s, bw, nullptr); });
  bw = w;
  bw.out_w = nullptr;
  check_throws("null out_w", [&] { call(s, bw, nullptr); });
  std::vector<float> bad_write = {1.f, 1.5f, 0.f};
  check_throws("write 1.5", [&] { call(s, w, bad_write.data()); });
  bad_write[1] = std::numeric_limits<float>::quiet_NaN();
  check_throws("write NaN", [&] { call(s, w, bad_write.data()); });
  check_throws("no output wanted", [&] { qgs::cpu::linear_hstu_seq_forward(nullptr, nullptr, b, nullptr, nullptr, w, s); });
  return finish("test_linear_hstu_block", seed);
}
