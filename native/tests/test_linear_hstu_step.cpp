// The fused Linear HSTU block step (CPU inference) against a naive double-precision reference
// written from the contract in qgs/linear_hstu_step.h: fresh random weights, inputs and states every
// run, odd sizes, null biases / LayerNorm affine parameters, decays at 0 and 1, read-only and
// writing steps, in-place state updates, poisoned outputs, R around the pool's 16-row grain, and bad
// arguments.
#include <algorithm>
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

// One token through one block in double: x [D] and the row's state [H, dk, dv] → out [D] and, when
// writing, the new state (a read-out copies it).
template <typename State>
void reference_row(std::vector<double>& out, double* st_out, const std::vector<double>& x, const State* state, const BlockParams& p,
                   bool write) {
  const int64_t D = p.D, H = p.H, dk = p.dk, dv = p.dv;
  out.assign(size_t(D), 0.0);
  const auto pr = p.project(x);
  const double* v = pr.data() + H * dv;
  const double* q = pr.data() + 2 * H * dv;
  const double* k = pr.data() + 2 * H * dv + H * dk;
  std::vector<double> o(H * dv, 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < dk; ++i)
      for (int64_t c = 0; c < dv; ++c) {
        const size_t at = size_t((h * dk + i) * dv + c);
        double sn = double(state[at]);
        if (write) sn = double(p.decay[h]) * sn + k[h * dk + i] * v[h * dv + c];
        st_out[at] = sn;
        o[h * dv + c] += q[h * dk + i] * sn;
      }
  p.finish(out.data(), x, o, pr);
}

// out [R, D] and the new states [R, H, dk, dv] in double.
void reference(std::vector<double>& out, std::vector<double>& st_out, const std::vector<float>& x,
               const std::vector<float>& state, const BlockParams& p, int64_t R, bool write) {
  const int64_t D = p.D, per = p.H * p.dk * p.dv;
  out.assign(size_t(R * D), 0.0);
  st_out.assign(size_t(R * per), 0.0);
  std::vector<double> row;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> xr(x.begin() + r * D, x.begin() + (r + 1) * D);
    reference_row(row, st_out.data() + r * per, xr, state.data() + r * per, p, write);
    std::copy(row.begin(), row.end(), out.begin() + r * D);
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

// The encoder plan: pair-token embedding (term mean without padding + item row), L blocks against
// each row's layer-major state, final LayerNorm; against the float64 chain of the same parts.
void run_plan_case(Rng& rng, int64_t R, int64_t L, int64_t D, int64_t H, int64_t dk, int64_t dv, int64_t m, bool write,
                   bool nulls, bool in_place, bool want_h) {
  const int64_t per = H * dk * dv, S = L * per, VT = 11, VI = 7;
  const int32_t pad = 0;
  std::vector<BlockParams> ps;
  std::vector<qgs::LinearHstuStepWeights> ws;
  for (int64_t l = 0; l < L; ++l) ps.push_back(random_block_params(rng, D, H, dk, dv, nulls, 0, 0.5f));
  auto given = ps;  // what the plan is made from, poisoned afterwards: the plan must hold copies
  for (const auto& p : given) ws.push_back(p.weights());
  std::vector<float> fw, fb;
  if (!nulls) fw = rng.normals(size_t(D), 0.3f), fb = rng.normals(size_t(D), 0.1f);
  qgs::LinearHstuEncoderSizes z;
  z.L = L, z.D = D, z.H = H, z.dk = dk, z.dv = dv;
  auto plan = qgs::make_linear_hstu_encoder_plan(ws.data(), z, fw.empty() ? nullptr : fw.data(), fb.empty() ? nullptr : fb.data(), 1e-5f);
  for (auto& p : given)
    for (auto* v : {&p.lniw, &p.lnib, &p.pw, &p.pb, &p.lnow, &p.lnob, &p.ow, &p.ob, &p.decay}) std::fill(v->begin(), v->end(), std::nanf(""));
  const auto tt = rng.normals(size_t(VT * D)), it = rng.normals(size_t(VI * D));
  std::vector<int32_t> terms(static_cast<size_t>(R * m)), items(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    items[r] = int32_t(rng.integer(0, VI - 1));
    // Row 0 is all padding (its bag is the zero vector); others mix real ids and padding.
    for (int64_t j = 0; j < m; ++j) terms[r * m + j] = r == 0 || rng.integer(0, 2) == 0 ? pad : int32_t(rng.integer(1, VT - 1));
  }
  auto states = rng.normals(size_t(R * S), 0.3f);
  const auto states0 = states;
  // float64 reference
  std::vector<double> ref_h(size_t(R * D)), ref_st(size_t(R * S));
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> x(size_t(D), 0.0);
    int used = 0;
    for (int64_t j = 0; j < m; ++j) {
      const int32_t t = terms[r * m + j];
      if (t == pad) continue;
      ++used;
      for (int64_t d = 0; d < D; ++d) x[d] += tt[t * D + d];
    }
    for (int64_t d = 0; d < D; ++d) x[d] = (used ? x[d] / used : 0.0) + it[items[r] * D + d];
    std::vector<double> y;
    for (int64_t l = 0; l < L; ++l) {
      reference_row(y, ref_st.data() + r * S + l * per, x, states0.data() + r * S + l * per, ps[l], write);
      x = y;
    }
    const auto h = layer_norm(x, fw.empty() ? nullptr : fw.data(), fb.empty() ? nullptr : fb.data(), 1e-5);
    std::copy(h.begin(), h.end(), ref_h.begin() + r * D);
  }
  qgs::PairTokenInputs in;
  in.terms = terms.data(), in.m = m, in.items = items.data(), in.term_table = tt.data(), in.term_rows = VT;
  in.item_table = it.data(), in.item_rows = VI, in.pad_term = pad;
  auto h = poisoned(size_t(R * D));
  std::vector<float> st_out = in_place ? std::vector<float>() : poisoned(size_t(R * S));
  float* so = write ? (in_place ? states.data() : st_out.data()) : nullptr;
  qgs::cpu::linear_hstu_encoder_plan_step(want_h ? h.data() : nullptr, so, states.data(), in, *plan, R, write);
  const std::string tag = "plan R=" + std::to_string(R) + " L=" + std::to_string(L) + " D=" + std::to_string(D) + " H=" +
                          std::to_string(H) + " dk=" + std::to_string(dk) + " dv=" + std::to_string(dv) + " m=" + std::to_string(m) +
                          (write ? " write" : " read") + (nulls ? " nulls" : "") + (in_place ? " in-place" : "");
  if (want_h) check_close("h " + tag, h, ref_h, 5e-5);
  else check(std::all_of(h.begin(), h.end(), [](float v) { return std::isnan(v); }), "no h written when not wanted " + tag);
  if (write) check_close("states " + tag, in_place ? states : st_out, ref_st, 5e-5);
  if (!write || !in_place) check(states == states0, "input states untouched " + tag);
  const auto zs = qgs::linear_hstu_encoder_plan_sizes(*plan);
  check(zs.L == L && zs.D == D && zs.H == H && zs.dk == dk && zs.dv == dv, "plan sizes " + tag);
}

// The plan's sequence form: B jagged sequences (one empty) of pair tokens with write weights 0 / 1
// (read-out tokens) from given or zero states → each sequence's final states, against the float64
// token-by-token chain of the same blocks.
void run_plan_encode_case(Rng& rng, const std::vector<int32_t>& lens, int64_t L, int64_t D, int64_t H, int64_t dk, int64_t dv,
                          int64_t m, bool with_states, bool with_write) {
  const int64_t B = int64_t(lens.size()), per = H * dk * dv, S = L * per, VT = 9, VI = 6;
  std::vector<int32_t> offsets(size_t(B + 1), 0);
  for (int64_t b = 0; b < B; ++b) offsets[b + 1] = offsets[b] + lens[b];
  const int64_t T = offsets[B];
  std::vector<BlockParams> ps;
  std::vector<qgs::LinearHstuStepWeights> ws;
  for (int64_t l = 0; l < L; ++l) ps.push_back(random_block_params(rng, D, H, dk, dv, false, 0, 0.5f));
  for (const auto& p : ps) ws.push_back(p.weights());
  qgs::LinearHstuEncoderSizes z;
  z.L = L, z.D = D, z.H = H, z.dk = dk, z.dv = dv;
  auto plan = qgs::make_linear_hstu_encoder_plan(ws.data(), z, nullptr, nullptr, 1e-5f);
  const auto tt = rng.normals(size_t(VT * D)), it = rng.normals(size_t(VI * D));
  std::vector<int32_t> terms(static_cast<size_t>(std::max<int64_t>(T, 1) * m)), items(static_cast<size_t>(std::max<int64_t>(T, 1)));
  std::vector<float> write(static_cast<size_t>(std::max<int64_t>(T, 1)), 1.f);
  for (int64_t t = 0; t < T; ++t) {
    items[t] = int32_t(rng.integer(0, VI - 1));
    for (int64_t j = 0; j < m; ++j) terms[t * m + j] = rng.integer(0, 3) == 0 ? 0 : int32_t(rng.integer(1, VT - 1));
    if (with_write && rng.integer(0, 3) == 0) write[t] = 0.f;
  }
  const auto states0 = with_states ? rng.normals(size_t(B * S), 0.3f) : std::vector<float>(size_t(B * S), 0.f);
  // float64 reference: per sequence, layer by layer, token by token.
  std::vector<double> ref(size_t(B * S));
  for (int64_t b = 0; b < B; ++b) {
    std::vector<std::vector<double>> xs;
    for (int64_t t = offsets[b]; t < offsets[b + 1]; ++t) {
      std::vector<double> x(size_t(D), 0.0);
      int used = 0;
      for (int64_t j = 0; j < m; ++j) {
        const int32_t id = terms[t * m + j];
        if (id == 0) continue;
        ++used;
        for (int64_t d = 0; d < D; ++d) x[d] += tt[id * D + d];
      }
      for (int64_t d = 0; d < D; ++d) x[d] = (used ? x[d] / used : 0.0) + it[items[t] * D + d];
      xs.push_back(x);
    }
    for (int64_t l = 0; l < L; ++l) {
      std::vector<double> st(states0.begin() + b * S + l * per, states0.begin() + b * S + (l + 1) * per);
      std::vector<double> nst(static_cast<size_t>(per));
      for (size_t i = 0; i < xs.size(); ++i) {
        std::vector<double> y;
        reference_row(y, nst.data(), xs[i], st.data(), ps[l], write[offsets[b] + int64_t(i)] == 1.f);
        st = nst;
        xs[i] = y;
      }
      std::copy(st.begin(), st.end(), ref.begin() + b * S + l * per);
    }
  }
  qgs::PairTokenInputs in;
  in.terms = terms.data(), in.m = m, in.items = items.data(), in.term_table = tt.data(), in.term_rows = VT;
  in.item_table = it.data(), in.item_rows = VI, in.pad_term = 0;
  auto out = poisoned(size_t(B * S));
  qgs::cpu::linear_hstu_encoder_plan_encode(out.data(), with_states ? states0.data() : nullptr, in, offsets.data(), B,
                                            with_write ? write.data() : nullptr, *plan, T);
  std::string tag = "plan encode B=" + std::to_string(B) + " T=" + std::to_string(T) + " L=" + std::to_string(L) + " D=" +
                    std::to_string(D) + " H=" + std::to_string(H) + " dk=" + std::to_string(dk) + " dv=" + std::to_string(dv) +
                    (with_states ? " states" : "") + (with_write ? " read-outs" : "");
  check_close(tag, out, ref, 1e-4);
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
  // The encoder plan: the serving shape, odd sizes, R around the 16-row grain, in place, null affine
  // parameters, read-outs.
  run_plan_case(rng, 1, 2, 32, 2, 64, 16, 4, true, false, false, false);
  run_plan_case(rng, 1, 2, 32, 2, 64, 16, 4, false, false, false, true);
  run_plan_case(rng, 17, 3, 5, 3, 7, 3, 3, true, true, true, true);
  run_plan_case(rng, 33, 1, 9, 1, 1, 1, 1, true, false, false, true);
  run_plan_case(rng, 16, 2, 13, 4, 5, 9, 2, false, true, false, true);
  // The sequence form: the serving shape (one 300-token history, from zero states), jagged batches
  // with an empty sequence, given states, read-out tokens, odd sizes.
  run_plan_encode_case(rng, {300}, 2, 32, 2, 64, 16, 4, false, false);
  run_plan_encode_case(rng, {5, 0, 17, 1}, 3, 7, 3, 5, 3, 2, true, true);
  run_plan_encode_case(rng, {40, 33}, 1, 9, 1, 4, 2, 3, true, false);
  run_plan_encode_case(rng, {0}, 2, 5, 2, 3, 2, 1, true, false);
  {
    // Bad plan arguments and bad ids throw (nothing written for a bad id).
    Rng r2(seed + 1);
    const auto p = random_block_params(r2, 4, 1, 2, 2, false, 0, 0.5f);
    auto w1 = p.weights();
    qgs::LinearHstuEncoderSizes z;
    z.L = 1, z.D = 4, z.H = 1, z.dk = 2, z.dv = 2;
    auto zl = z;
    zl.L = 0;
    check_throws("plan L = 0", [&] { qgs::make_linear_hstu_encoder_plan(&w1, zl, nullptr, nullptr, 1e-5f); });
    check_throws("plan eps 0", [&] { qgs::make_linear_hstu_encoder_plan(&w1, z, nullptr, nullptr, 0.f); });
    auto wd = w1;
    wd.decay = nullptr;
    check_throws("plan without decays", [&] { qgs::make_linear_hstu_encoder_plan(&wd, z, nullptr, nullptr, 1e-5f); });
    auto plan = qgs::make_linear_hstu_encoder_plan(&w1, z, nullptr, nullptr, 1e-5f);
    std::vector<float> tab(5 * 4, 0.25f), st(8, 0.1f), hh(4, 7.f);
    std::vector<int32_t> terms = {1, 0}, items = {2};
    qgs::PairTokenInputs in;
    in.terms = terms.data(), in.m = 2, in.items = items.data(), in.term_table = tab.data(), in.term_rows = 5;
    in.item_table = tab.data(), in.item_rows = 5;
    auto bad = in;
    std::vector<int32_t> bad_terms = {5, 0}, bad_items = {-1};
    bad.terms = bad_terms.data();
    check_throws("term id = rows", [&] { qgs::cpu::linear_hstu_encoder_plan_step(hh.data(), nullptr, st.data(), bad, *plan, 1, false); });
    bad = in;
    bad.items = bad_items.data();
    check_throws("item id -1", [&] { qgs::cpu::linear_hstu_encoder_plan_step(hh.data(), nullptr, st.data(), bad, *plan, 1, false); });
    check(hh == std::vector<float>(4, 7.f), "a refused step writes nothing");
    check_throws("read-out without h_out", [&] { qgs::cpu::linear_hstu_encoder_plan_step(nullptr, nullptr, st.data(), in, *plan, 1, false); });
    check_throws("write without states_out", [&] { qgs::cpu::linear_hstu_encoder_plan_step(hh.data(), nullptr, st.data(), in, *plan, 1, true); });
    check_throws("R < 0", [&] { qgs::cpu::linear_hstu_encoder_plan_step(hh.data(), nullptr, st.data(), in, *plan, -1, false); });
  }
  return finish("test_linear_hstu_step", seed);
}
