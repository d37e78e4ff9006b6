// The fused Linear HSTU block step (CPU inference) against a naive double-precision reference
// written from the contract in qgs/linear_hstu_step.h: fresh random weights, inputs and states every
// run, odd sizes, null biases / LayerNorm affine parameters, decays at 0 and 1, read-only and
// writing steps, in-place state updates, poisoned outputs, R around the pool's 16-row grain, and bad
// arguments.
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

// out [R, D] and the new states [R, H, dk, dv] in double.
void reference(std::vector<double>& out, std::vector<double>& st_out, const std::vector<float>& x,
               const std::vector<float>& state, const BlockParams& p, int64_t R, bool write) {
  const int64_t D = p.D, H = p.H, dk = p.dk, dv = p.dv, per = H * dk * dv;
  out.assign(size_t(R * D), 0.0);
  st_out.assign(size_t(R * per), 0.0);
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> xr(x.begin() + r * D, x.begin() + (r + 1) * D);
    const auto pr = p.project(xr);
    const double* v = pr.data() + H * dv;
    const double* q = pr.data() + 2 * H * dv;
    const double* k = pr.data() + 2 * H * dv + H * dk;
    std::vector<double> o(H * dv, 0.0);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < dk; ++i)
        for (int64_t c = 0; c < dv; ++c) {
          const size_t at = size_t(r * per + (h * dk + i) * dv + c);
          double sn = state[at];
          if (write) sn = double(p.decay[h]) * sn + k[h * dk + i] * v[h * dv + c];
          st_out[at] = sn;
          o[h * dv + c] += q[h * dk + i] * sn;
        }
    p.finish(out.data() + r * D, xr, o, pr);
  }
}

void run_case(Rng& rng, int64_t R, int64_t D, int64_t H, int64_t dk, int64_t dv, bool write, bool nulls,
              bool in_place, int decay_kind) {
  qgs::LinearHstuStepSizes s;
  s.R = R, s.D = D, s.H = H, s.dk = dk, s.dv = dv;
  const int64_t per = H * dk * dv;
  const BlockParams p = random_block_params(rng, D, H, dk, dv, nulls, decay_kind, 0.5f);
  const qgs::LinearHstuStepWeights w = p.weights();
  auto x = rng.normals(size_t(R * D));
  auto state = rng.normals(size_t(R * per), 0.3f);
  const auto state_copy = state;
  std::vector<double> ref_out, ref_state;
  reference(ref_out, ref_state, x, state, p, R, write);
  auto out = poisoned(size_t(R * D));
  std::vector<float> st_out = in_place ? state : poisoned(size_t(R * per));
  float* so = in_place ? state.data() : st_out.data();
  qgs::cpu::linear_hstu_step_forward(out.data(), write ? so : nullptr, x.data(), state.data(), w, s, write);
  const std::string tag = "R=" + std::to_string(R) + " D=" + std::to_string(D) + " H=" + std::to_string(H) + " dk=" +
                          std::to_string(dk) + " dv=" + std::to_string(dv) + (write ? " write" : " read") +
                          (nulls ? " nulls" : "") + (in_place ? " in-place" : "") + " decay" + std::to_string(decay_kind);
  check_close("out " + tag, out, ref_out, 2e-5);
  if (write) {
    check_close("state " + tag, in_place ? state : st_out, ref_state, 2e-5);
  } else {
    check(state == state_copy, "read-only step leaves the state untouched " + tag);
  }
  if (write && !in_place) check(state == state_copy, "writing step leaves its input state untouched " + tag);
}

}  // namespace

int main() {
  const uint64_t seed = fresh_seed();
  Rng rng(seed);
  // The QGS serving shape (D = 32, H = 2, dk = 64, dv = 16), read-out and write, R = 1 and batches.
  for (bool write : {false, true}) {
    run_case(rng, 1, 32, 2, 64, 16, write, false, false, 0);
    run_case(rng, 64, 32, 2, 64, 16, write, false, false, 0);
  }
  // Odd sizes, null optional parameters, R around the 16-row parallel grain, in-place updates, and
  // decays at the ends of [0, 1].
  run_case(rng, 17, 5, 3, 7, 3, true, true, false, 0);
  run_case(rng, 15, 9, 1, 1, 1, false, true, false, 0);
  run_case(rng, 33, 13, 4, 5, 9, true, false, true, 0);
  run_case(rng, 3, 7, 2, 3, 5, true, false, false, 1);
  run_case(rng, 3, 7, 2, 3, 5, true, false, true, 2);
  run_case(rng, 0, 8, 2, 4, 4, true, false, false, 0);

  // Bad arguments throw KernelError (never abort).
  std::vector<float> buf(4096, 0.5f);
  float* b = buf.data();
  qgs::LinearHstuStepWeights w;
  w.proj_w = w.out_w = b;
  w.decay = b;
  qgs::LinearHstuStepSizes s;
  s.R = 1, s.D = 4, s.H = 1, s.dk = 2, s.dv = 2;
  auto call = [&](const qgs::LinearHstuStepSizes& ss, const qgs::LinearHstuStepWeights& ww, bool write) {
    qgs::cpu::linear_hstu_step_forward(b, b + 2048, b, b + 1024, ww, ss, write);
  };
  auto bs = s;
  bs.R = -1;
  check_throws("R < 0", [&] { call(bs, w, true); });
  bs = s;
  bs.D = 0;
  check_throws("D = 0", [&] { call(bs, w, true); });
  bs = s;
  bs.dk = 0;
  check_throws("dk = 0", [&] { call(bs, w, false); });
  auto bw = w;
  bw.out_w = nullptr;
  check_throws("null out_w", [&] { call(s, bw, false); });
  bw = w;
  bw.decay = nullptr;
  check_throws("null decay when writing", [&] { call(s, bw, true); });
  call(s, bw, false);  // a read-out needs no decay
  check(true, "read-out without a decay");
  std::vector<float> bad_decay = {1.5f};
  bw = w;
  bw.decay = bad_decay.data();
  check_throws("decay 1.5", [&] { call(s, bw, true); });
  bad_decay[0] = std::numeric_limits<float>::quiet_NaN();
  check_throws("decay NaN", [&] { call(s, bw, true); });
  bw = w;
  bw.eps_out = 0.f;
  check_throws("eps_out = 0", [&] { call(s, bw, false); });
  check_throws("null state_out when writing", [&] { qgs::cpu::linear_hstu_step_forward(b, nullptr, b, b, w, s, true); });
  return finish("test_linear_hstu_step", seed);
}
