// Bindings for the linrec kernel family: the causal linear recurrence (qgs/linrec.h) and the quadratic
// HSTU pointwise attention (qgs/hstu.h). Sizes are re-checked here against the storages (a wrong size
// from JS becomes a JS Error, never an out-of-bounds access); dispatch on the tensors' device.
#include <string>
#include <vector>

#include "napi_util.h"
#include "qgs/hstu.h"
#include "qgs/linear_hstu_step.h"
#include "qgs/linrec.h"

namespace qgs::napi {

namespace {

// Optional host Int32Array / integer array argument (null/undefined → empty, has = false).
struct HostInts {
  bool has = false;
  std::vector<int32_t> v;
};
HostInts host_ints(const Napi::CallbackInfo& info, size_t i, const char* name) {
  HostInts r;
  if (info[i].IsNull() || info[i].IsUndefined()) return r;
  std::vector<int64_t> raw = ints_arg(info, i, name);
  r.has = true;
  r.v.reserve(raw.size());
  for (size_t k = 0; k < raw.size(); ++k) {
    if (raw[k] < INT32_MIN || raw[k] > INT32_MAX) throw KernelError(std::string(name) + "[" + std::to_string(k) + "]: out of int32 range");
    r.v.push_back(static_cast<int32_t>(raw[k]));
  }
  return r;
}

// The jagged-batch layout both sequence kernels take: offsets|null and lengths|null at `at`, `at + 1`,
// then batch and maxLen at `at + 2`, `at + 3`; the host copies live in offsets / lengths and the
// config (LinrecConfig or HstuConfig) points at them.
template <class Config>
void jagged_layout_args(const Napi::CallbackInfo& info, size_t at, HostInts& offsets, HostInts& lengths, Config& c) {
  offsets = host_ints(info, at, "offsets");
  lengths = host_ints(info, at + 1, "lengths");
  c.batch = int_arg(info, at + 2, "batch", 0, INT32_MAX);
  c.max_len = int_arg(info, at + 3, "maxLen", 0, INT32_MAX);
  if (offsets.has) {
    QGS_REQUIRE(static_cast<int64_t>(offsets.v.size()) == c.batch + 1,
                "offsets: expected " + std::to_string(c.batch + 1) + " entries, got " + std::to_string(offsets.v.size()));
    c.offsets = offsets.v.data();
  }
  if (lengths.has) {
    QGS_REQUIRE(static_cast<int64_t>(lengths.v.size()) == c.batch,
                "lengths: expected " + std::to_string(c.batch) + " entries, got " + std::to_string(lengths.v.size()));
    c.lengths = lengths.v.data();
  }
}

struct LinrecArgs {
  LinrecConfig cfg;
  HostInts offsets, lengths;
  int64_t rows = 0;
};

// Reads offsets, lengths, B, L, H, dk, dv, decayMode, scale, invT, chunk starting at argument `at`.
void linrec_args(const Napi::CallbackInfo& info, size_t at, LinrecArgs& a) {
  LinrecConfig& c = a.cfg;
  jagged_layout_args(info, at, a.offsets, a.lengths, c);
  c.heads = int_arg(info, at + 4, "heads", 1, 1 << 16);
  c.dk = int_arg(info, at + 5, "dk", 1, 1 << 16);
  c.dv = int_arg(info, at + 6, "dv", 1, 1 << 16);
  c.decay = static_cast<LinrecDecay>(int_arg(info, at + 7, "decayMode", 0, 2));
  c.scale = static_cast<float>(num_arg(info, at + 8, "scale"));
  c.inv_t = bool_arg(info, at + 9, "invT");
  c.chunk = int_arg(info, at + 10, "chunk", 1, 1024);
  a.rows = linrec_rows(c);
}

int64_t decay_elems(const LinrecConfig& c, int64_t rows) {
  return c.decay == LinrecDecay::PerHead ? c.heads : c.decay == LinrecDecay::PerStep ? rows * c.heads : 0;
}

float* opt_f32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t n, View* view = nullptr) {
  View v = optional_storage_arg(info, i, name, static_cast<size_t>(n) * 4);
  if (view) *view = v;
  return v.as<float>();
}

}  // namespace

// linrecForward(out, stateOut|null, q, k, v, decay|null, init|null, offsets, lengths, B, L, H, dk, dv,
//               decayMode, scale, invT, chunk)
QGS_BINDING(linrecForward) {
  LinrecArgs a;
  linrec_args(info, 7, a);
  const LinrecConfig& c = a.cfg;
  const int64_t st = c.batch * c.heads * c.dk * c.dv;
  View vo = storage_arg(info, 0, "out", a.rows * c.heads * c.dv * 4);
  View vs, vd, vi;
  float* state_out = opt_f32(info, 1, "stateOut", st, &vs);
  View vq = storage_arg(info, 2, "q", a.rows * c.heads * c.dk * 4);
  View vk = storage_arg(info, 3, "k", a.rows * c.heads * c.dk * 4);
  View vv = storage_arg(info, 4, "v", a.rows * c.heads * c.dv * 4);
  const float* decay = opt_f32(info, 5, "decay", decay_elems(c, a.rows), &vd);
  QGS_REQUIRE(c.decay == LinrecDecay::None || decay != nullptr || decay_elems(c, a.rows) == 0, "decay: missing for decayMode != 0");
  const float* init = opt_f32(info, 6, "initialState", st, &vi);
  Device dev = common_device("linrecForward", {&vo, &vs, &vq, &vk, &vv, &vd, &vi});
  if (dev == Device::CUDA) {
    require_cuda_build(info.Env(), "linrecForward");
#ifdef QGS_WITH_CUDA
    qgs::cuda::linrec_forward(vo.as<float>(), state_out, vq.as<float>(), vk.as<float>(), vv.as<float>(), decay, init, c);
#endif
  } else {
    qgs::cpu::linrec_forward(vo.as<float>(), state_out, vq.as<float>(), vk.as<float>(), vv.as<float>(), decay, init, c);
  }
  return info.Env().Undefined();
}

// linrecBackward(dq|null, dk|null, dv|null, ddecay|null, dinit|null, q, k, v, decay|null, init|null,
//                dout|null, dstateOut|null, offsets, lengths, B, L, H, dk, dv, decayMode, scale, invT, chunk)
QGS_BINDING(linrecBackward) {
  LinrecArgs a;
  linrec_args(info, 12, a);
  const LinrecConfig& c = a.cfg;
  const int64_t st = c.batch * c.heads * c.dk * c.dv, nqk = a.rows * c.heads * c.dk, nv = a.rows * c.heads * c.dv;
  View vdq, vdk, vdv, vdd, vdi, vd, vi, vdo, vds;
  float* dq = opt_f32(info, 0, "dq", nqk, &vdq);
  float* dk = opt_f32(info, 1, "dk", nqk, &vdk);
  float* dv = opt_f32(info, 2, "dv", nv, &vdv);
  float* ddecay = opt_f32(info, 3, "ddecay", decay_elems(c, a.rows), &vdd);
  float* dinit = opt_f32(info, 4, "dinit", st, &vdi);
  View vq = storage_arg(info, 5, "q", nqk * 4);
  View vk = storage_arg(info, 6, "k", nqk * 4);
  View vv = storage_arg(info, 7, "v", nv * 4);
  const float* decay = opt_f32(info, 8, "decay", decay_elems(c, a.rows), &vd);
  QGS_REQUIRE(c.decay == LinrecDecay::None || decay != nullptr || decay_elems(c, a.rows) == 0, "decay: missing for decayMode != 0");
  const float* init = opt_f32(info, 9, "initialState", st, &vi);
  const float* dout = opt_f32(info, 10, "dout", nv, &vdo);
  const float* dstate = opt_f32(info, 11, "dstateOut", st, &vds);
  Device dev = common_device("linrecBackward", {&vdq, &vdk, &vdv, &vdd, &vdi, &vq, &vk, &vv, &vd, &vi, &vdo, &vds});
  if (dev == Device::CUDA) {
    require_cuda_build(info.Env(), "linrecBackward");
#ifdef QGS_WITH_CUDA
    qgs::cuda::linrec_backward(dq, dk, dv, ddecay, dinit, vq.as<float>(), vk.as<float>(), vv.as<float>(), decay, init, dout,
                               dstate, c);
#endif
  } else {
    qgs::cpu::linrec_backward(dq, dk, dv, ddecay, dinit, vq.as<float>(), vk.as<float>(), vv.as<float>(), decay, init, dout,
                              dstate, c);
  }
  return info.Env().Undefined();
}

namespace {

struct HstuArgs {
  HstuConfig cfg;
  HostInts offsets, lengths;
  int64_t rows = 0;
};

// Reads offsets, lengths, B, L, H, dqk, dv, alpha, invN, numPos, numTime, timeDiv starting at `at`.
void hstu_args(const Napi::CallbackInfo& info, size_t at, HstuArgs& a) {
  HstuConfig& c = a.cfg;
  jagged_layout_args(info, at, a.offsets, a.lengths, c);
  c.heads = int_arg(info, at + 4, "heads", 1, 1 << 16);
  c.dqk = int_arg(info, at + 5, "dqk", 1, 1 << 16);
  c.dv = int_arg(info, at + 6, "dv", 1, 1 << 16);
  c.alpha = static_cast<float>(num_arg(info, at + 7, "alpha"));
  c.inv_n = static_cast<float>(num_arg(info, at + 8, "invN"));
  c.num_pos = int_arg(info, at + 9, "numPos", 0, INT32_MAX);
  c.num_time = int_arg(info, at + 10, "numTime", 0, INT32_MAX);
  c.time_div = static_cast<float>(num_arg(info, at + 11, "timeDiv"));
  a.rows = hstu_rows(c);
}

}  // namespace

// hstuForward(out, q, k, v, posBias|null, timeBias|null, timestamps|null, offsets, lengths, B, L, H, dqk, dv,
//             alpha, invN, numPos, numTime, timeDiv)
QGS_BINDING(hstuForward) {
  HstuArgs a;
  hstu_args(info, 7, a);
  const HstuConfig& c = a.cfg;
  View vo = storage_arg(info, 0, "out", a.rows * c.heads * c.dv * 4);
  View vq = storage_arg(info, 1, "q", a.rows * c.heads * c.dqk * 4);
  View vk = storage_arg(info, 2, "k", a.rows * c.heads * c.dqk * 4);
  View vv = storage_arg(info, 3, "v", a.rows * c.heads * c.dv * 4);
  View vp = optional_storage_arg(info, 4, "positionBias", c.num_pos * 4);
  View vt = optional_storage_arg(info, 5, "timeBias", c.num_time * 4);
  View vts = optional_storage_arg(info, 6, "timestamps", c.num_time > 0 ? a.rows * 4 : 0);
  Device dev = common_device("hstuForward", {&vo, &vq, &vk, &vv, &vp, &vt, &vts});
  if (dev == Device::CUDA) {
    require_cuda_build(info.Env(), "hstuForward");
#ifdef QGS_WITH_CUDA
    qgs::cuda::hstu_forward(vo.as<float>(), vq.as<float>(), vk.as<float>(), vv.as<float>(), vp.as<float>(), vt.as<float>(),
                            vts.as<int32_t>(), c);
#endif
  } else {
    qgs::cpu::hstu_forward(vo.as<float>(), vq.as<float>(), vk.as<float>(), vv.as<float>(), vp.as<float>(), vt.as<float>(),
                           vts.as<int32_t>(), c);
  }
  return info.Env().Undefined();
}

// hstuBackward(dq|null, dk|null, dv|null, dpos|null, dtime|null, q, k, v, posBias|null, timeBias|null,
//              timestamps|null, dout, offsets, lengths, B, L, H, dqk, dv, alpha, invN, numPos, numTime, timeDiv)
QGS_BINDING(hstuBackward) {
  HstuArgs a;
  hstu_args(info, 12, a);
  const HstuConfig& c = a.cfg;
  const int64_t nqk = a.rows * c.heads * c.dqk, nv = a.rows * c.heads * c.dv;
  View vdq = optional_storage_arg(info, 0, "dq", nqk * 4);
  View vdk = optional_storage_arg(info, 1, "dk", nqk * 4);
  View vdv = optional_storage_arg(info, 2, "dv", nv * 4);
  View vdp = optional_storage_arg(info, 3, "dpos", c.num_pos * 4);
  View vdt = optional_storage_arg(info, 4, "dtime", c.num_time * 4);
  View vq = storage_arg(info, 5, "q", nqk * 4);
  View vk = storage_arg(info, 6, "k", nqk * 4);
  View vv = storage_arg(info, 7, "v", nv * 4);
  View vp = optional_storage_arg(info, 8, "positionBias", c.num_pos * 4);
  View vt = optional_storage_arg(info, 9, "timeBias", c.num_time * 4);
  View vts = optional_storage_arg(info, 10, "timestamps", c.num_time > 0 ? a.rows * 4 : 0);
  View vdo = storage_arg(info, 11, "dout", nv * 4);
  Device dev = common_device("hstuBackward", {&vdq, &vdk, &vdv, &vdp, &vdt, &vq, &vk, &vv, &vp, &vt, &vts, &vdo});
  if (dev == Device::CUDA) {
    require_cuda_build(info.Env(), "hstuBackward");
#ifdef QGS_WITH_CUDA
    qgs::cuda::hstu_backward(vdq.as<float>(), vdk.as<float>(), vdv.as<float>(), vdp.as<float>(), vdt.as<float>(), vq.as<float>(),
                             vk.as<float>(), vv.as<float>(), vp.as<float>(), vt.as<float>(), vts.as<int32_t>(), vdo.as<float>(), c);
#endif
  } else {
    qgs::cpu::hstu_backward(vdq.as<float>(), vdk.as<float>(), vdv.as<float>(), vdp.as<float>(), vdt.as<float>(), vq.as<float>(),
                            vk.as<float>(), vv.as<float>(), vp.as<float>(), vt.as<float>(), vts.as<int32_t>(), vdo.as<float>(), c);
  }
  return info.Env().Undefined();
}

namespace {

// The nine weight arguments of the fused Linear HSTU block ops, from `at` on: lnInW | null,
// lnInB | null, projW, projB | null, lnOutW | null, lnOutB | null, outW, outB | null, decay (| null
// unless decay_required). Views are appended to `all` (for the device check) and pointed at by w.
void hstu_block_weight_args(const Napi::CallbackInfo& info, size_t at, int64_t D, int64_t H, int64_t dk, int64_t dv,
                            bool decay_required, std::vector<View>& all, LinearHstuStepWeights& w) {
  const size_t f = 4, d = size_t(D), Hv = size_t(H * dv), P = size_t(H * (2 * dv + 2 * dk));
  const size_t first = all.size();
  all.push_back(optional_storage_arg(info, at + 0, "lnInWeight", d * f));
  all.push_back(optional_storage_arg(info, at + 1, "lnInBias", d * f));
  all.push_back(storage_arg(info, at + 2, "projWeight", P * d * f));
  all.push_back(optional_storage_arg(info, at + 3, "projBias", P * f));
  all.push_back(optional_storage_arg(info, at + 4, "lnOutWeight", Hv * f));
  all.push_back(optional_storage_arg(info, at + 5, "lnOutBias", Hv * f));
  all.push_back(storage_arg(info, at + 6, "outWeight", d * Hv * f));
  all.push_back(optional_storage_arg(info, at + 7, "outBias", d * f));
  all.push_back(decay_required ? storage_arg(info, at + 8, "decay", size_t(H) * f)
                               : optional_storage_arg(info, at + 8, "decay", size_t(H) * f));
  const View* v = all.data() + first;
  w.ln_in_w = v[0].as<float>(), w.ln_in_b = v[1].as<float>(), w.proj_w = v[2].as<float>(), w.proj_b = v[3].as<float>();
  w.ln_out_w = v[4].as<float>(), w.ln_out_b = v[5].as<float>(), w.out_w = v[6].as<float>(), w.out_b = v[7].as<float>();
  w.decay = v[8].as<float>();
}

bool block_dims_ok(int64_t D, int64_t H, int64_t dk, int64_t dv) {
  const auto in = [](int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; };
  return in(D, 1, 65536) && in(H, 1, 4096) && in(dk, 1, 4096) && in(dv, 1, 4096);
}

}  // namespace

// linearHstuStep(out, stateOut | null, x, state, <9 weight args>, [R, D, H, dk, dv], epsIn, epsOut, write)
// CPU only (the serving fast path; on a GPU the composed block runs).
QGS_BINDING(linearHstuStep) {
  const std::vector<int64_t> z = ints_arg(info, 13, "sizes");
  if (z.size() != 5) throw_error(info.Env(), "linearHstuStep: sizes: expected [R, D, H, dk, dv]");
  LinearHstuStepSizes s;
  s.R = z[0], s.D = z[1], s.H = z[2], s.dk = z[3], s.dv = z[4];
  if (s.R < 0 || s.R > (int64_t(1) << 31) || !block_dims_ok(s.D, s.H, s.dk, s.dv))
    throw_error(info.Env(), "linearHstuStep: sizes [R, D, H, dk, dv] = [" + std::to_string(s.R) + ", " + std::to_string(s.D) +
                                ", " + std::to_string(s.H) + ", " + std::to_string(s.dk) + ", " + std::to_string(s.dv) +
                                "] out of range (R <= 2^31, D <= 65536, H, dk, dv <= 4096, all but R >= 1)");
  LinearHstuStepWeights w;
  w.eps_in = static_cast<float>(num_arg(info, 14, "epsIn"));
  w.eps_out = static_cast<float>(num_arg(info, 15, "epsOut"));
  const bool write = bool_arg(info, 16, "write");
  const size_t f = 4, D = size_t(s.D), per = size_t(s.H * s.dk * s.dv), R = size_t(s.R);
  std::vector<View> all;
  all.push_back(storage_arg(info, 0, "out", R * D * f));
  all.push_back(write ? storage_arg(info, 1, "stateOut", R * per * f) : optional_storage_arg(info, 1, "stateOut", R * per * f));
  all.push_back(storage_arg(info, 2, "x", R * D * f));
  all.push_back(storage_arg(info, 3, "state", R * per * f));
  hstu_block_weight_args(info, 4, s.D, s.H, s.dk, s.dv, write, all, w);
  require_cpu(info, "linearHstuStep", all);
  cpu::linear_hstu_step_forward(all[0].as<float>(), all[1].as<float>(), all[2].as<float>(), all[3].as<float>(), w, s, write);
  return info.Env().Undefined();
}

// linearHstuBlock(out | null, stateOut | null, x, stateIn | null, write | null, offsets, <9 weight args>,
//                 [T, B, D, H, dk, dv], epsIn, epsOut)
// The sequence form (inference over a packed batch); CPU only, like the step.
QGS_BINDING(linearHstuBlock) {
  const std::vector<int64_t> z = ints_arg(info, 15, "sizes");
  if (z.size() != 6) throw_error(info.Env(), "linearHstuBlock: sizes: expected [T, B, D, H, dk, dv]");
  LinearHstuSeqSizes s;
  s.T = z[0], s.B = z[1], s.D = z[2], s.H = z[3], s.dk = z[4], s.dv = z[5];
  if (s.T < 0 || s.T > INT32_MAX || s.B < 1 || s.B > INT32_MAX || !block_dims_ok(s.D, s.H, s.dk, s.dv))
    throw_error(info.Env(), "linearHstuBlock: sizes [T, B, D, H, dk, dv] = [" + std::to_string(s.T) + ", " + std::to_string(s.B) +
                                ", " + std::to_string(s.D) + ", " + std::to_string(s.H) + ", " + std::to_string(s.dk) + ", " +
                                std::to_string(s.dv) + "] out of range (T < 2^31, 1 <= B < 2^31, D <= 65536, H, dk, dv <= 4096)");
  const HostInts offsets = host_ints(info, 5, "offsets");
  if (!offsets.has || static_cast<int64_t>(offsets.v.size()) != s.B + 1)
    throw_error(info.Env(), "linearHstuBlock: offsets: expected " + std::to_string(s.B + 1) + " entries, got " +
                                (offsets.has ? std::to_string(offsets.v.size()) : std::string("none")));
  s.offsets = offsets.v.data();
  LinearHstuStepWeights w;
  w.eps_in = static_cast<float>(num_arg(info, 16, "epsIn"));
  w.eps_out = static_cast<float>(num_arg(info, 17, "epsOut"));
  const size_t f = 4, T = size_t(s.T), D = size_t(s.D), states = size_t(s.B * s.H * s.dk * s.dv);
  std::vector<View> all;
  all.push_back(optional_storage_arg(info, 0, "out", T * D * f));
  all.push_back(optional_storage_arg(info, 1, "stateOut", states * f));
  all.push_back(storage_arg(info, 2, "x", T * D * f));
  all.push_back(optional_storage_arg(info, 3, "stateIn", states * f));
  all.push_back(optional_storage_arg(info, 4, "write", T * f));
  hstu_block_weight_args(info, 6, s.D, s.H, s.dk, s.dv, true, all, w);
  require_cpu(info, "linearHstuBlock", all);
  cpu::linear_hstu_seq_forward(all[0].as<float>(), all[1].as<float>(), all[2].as<float>(), all[3].as<float>(), all[4].as<float>(), w,
                               s);
  return info.Env().Undefined();
}

// ---- a whole encoder's serving steps, weights prepared once (LinearHstuEncoderPlan), as a tagged External ----

namespace {
const PlanKind kEncoderPlan{{0x7c3e9a1d52b84f60ULL, 0xa41f6d0e2b9c8357ULL}, "encoderPlan", "an encoder plan"};

// The pair-token part of a plan call's sizes in range: m terms per token, termRows, itemRows, pad.
bool token_sizes_ok(int64_t m, int64_t VT, int64_t VI, int64_t pad) {
  const int64_t big = int64_t(1) << 31;
  return m >= 1 && m <= 65536 && VT >= 0 && VT <= big && VI >= 0 && VI <= big && pad >= INT32_MIN && pad <= INT32_MAX;
}

// The token inputs both plan calls take as four consecutive arguments from `at`: terms (Int32Array
// [rows·m]), items (Int32Array [rows]), then the term and item tables (CPU storages of termRows /
// itemRows rows of width D).
PairTokenInputs pair_tokens_arg(const Napi::CallbackInfo& info, size_t at, const char* op, int64_t rows, int64_t m, int64_t VT,
                                int64_t VI, int64_t pad, int64_t D) {
  PairTokenInputs in;
  in.terms = typed_array_arg<int32_t, napi_int32_array>(info, at, op, "terms", "Int32Array", size_t(rows) * size_t(m), false);
  in.items = typed_array_arg<int32_t, napi_int32_array>(info, at + 1, op, "items", "Int32Array", size_t(rows), false);
  std::vector<View> all;
  all.push_back(storage_arg(info, at + 2, "termTable", size_t(VT) * size_t(D) * 4));
  all.push_back(storage_arg(info, at + 3, "itemTable", size_t(VI) * size_t(D) * 4));
  require_cpu(info, op, all);
  in.m = m, in.term_table = all[0].as<float>(), in.term_rows = VT, in.item_table = all[1].as<float>(), in.item_rows = VI;
  in.pad_term = static_cast<int32_t>(pad);
  return in;
}
}  // namespace

// encoderPlanCreate([L, D, H, dk, dv], epsIn[L], epsOut[L], finalW | null, finalB | null, finalEps, <9 weight args> × L)
// → a handle holding copies of every layer's weights (decays required).
QGS_BINDING(encoderPlanCreate) {
  const std::vector<int64_t> z = ints_arg(info, 0, "sizes");
  if (z.size() != 5) throw_error(info.Env(), "encoderPlan: sizes: expected [L, D, H, dk, dv]");
  LinearHstuEncoderSizes s;
  s.L = z[0], s.D = z[1], s.H = z[2], s.dk = z[3], s.dv = z[4];
  if (s.L < 1 || s.L > 1024 || !block_dims_ok(s.D, s.H, s.dk, s.dv))
    throw_error(info.Env(), "encoderPlan: sizes [L, D, H, dk, dv] out of range (L <= 1024, D <= 65536, H, dk, dv <= 4096, all >= 1)");
  if (info.Length() != size_t(6 + 9 * s.L))
    throw_error(info.Env(), "encoderPlan: expected " + std::to_string(6 + 9 * s.L) + " arguments for " + std::to_string(s.L) +
                                " layers, got " + std::to_string(info.Length()));
  if (!info[1].IsArray() || !info[2].IsArray() || info[1].As<Napi::Array>().Length() != size_t(s.L) ||
      info[2].As<Napi::Array>().Length() != size_t(s.L))
    throw_type_error(info.Env(), "encoderPlan: epsIn, epsOut: expected arrays of " + std::to_string(s.L) + " numbers");
  std::vector<View> all;
  all.push_back(optional_storage_arg(info, 3, "finalW", size_t(s.D) * 4));
  all.push_back(optional_storage_arg(info, 4, "finalB", size_t(s.D) * 4));
  const float final_eps = static_cast<float>(num_arg(info, 5, "finalEps"));
  std::vector<LinearHstuStepWeights> ws(static_cast<size_t>(s.L));
  for (int64_t l = 0; l < s.L; ++l) {
    const Napi::Value ei = info[1].As<Napi::Array>().Get(uint32_t(l)), eo = info[2].As<Napi::Array>().Get(uint32_t(l));
    if (!ei.IsNumber() || !eo.IsNumber()) throw_type_error(info.Env(), "encoderPlan: epsIn, epsOut: expected numbers");
    ws[l].eps_in = ei.As<Napi::Number>().FloatValue();
    ws[l].eps_out = eo.As<Napi::Number>().FloatValue();
    hstu_block_weight_args(info, 6 + 9 * size_t(l), s.D, s.H, s.dk, s.dv, true, all, ws[l]);
  }
  require_cpu(info, "encoderPlan", all);
  return wrap_plan(info.Env(), make_linear_hstu_encoder_plan(ws.data(), s, all[0].as<float>(), all[1].as<float>(), final_eps), kEncoderPlan);
}

// encoderPlanStep(plan, hOut: Float32Array | null, statesOut: Float32Array | null, statesIn: Float32Array,
//                 terms: Int32Array, items: Int32Array, termTable, itemTable, [R, m, termRows, itemRows, pad], write)
QGS_BINDING(encoderPlanStep) {
  const LinearHstuEncoderPlan& plan = live_plan_arg<LinearHstuEncoderPlanPtr>(info, 0, kEncoderPlan);
  const LinearHstuEncoderSizes ps = linear_hstu_encoder_plan_sizes(plan);
  const std::vector<int64_t> z = ints_arg(info, 8, "sizes");
  if (z.size() != 5) throw_error(info.Env(), "encoderPlanStep: sizes: expected [R, m, termRows, itemRows, pad]");
  const int64_t R = z[0], m = z[1], VT = z[2], VI = z[3], pad = z[4];
  if (R < 0 || R > (int64_t(1) << 31) || !token_sizes_ok(m, VT, VI, pad))
    throw_error(info.Env(), "encoderPlanStep: sizes [R, m, termRows, itemRows, pad] out of range");
  const bool write = bool_arg(info, 9, "write");
  const size_t S = size_t(ps.L * ps.H * ps.dk * ps.dv), D = size_t(ps.D), r = size_t(R);
  float* h_out = typed_array_arg<float, napi_float32_array>(info, 1, "encoderPlanStep", "hOut", "Float32Array", r * D, write);
  float* st_out = typed_array_arg<float, napi_float32_array>(info, 2, "encoderPlanStep", "statesOut", "Float32Array", r * S, !write);
  const float* st_in = typed_array_arg<float, napi_float32_array>(info, 3, "encoderPlanStep", "statesIn", "Float32Array", r * S, false);
  const PairTokenInputs in = pair_tokens_arg(info, 4, "encoderPlanStep", R, m, VT, VI, pad, ps.D);
  cpu::linear_hstu_encoder_plan_step(h_out, write ? st_out : nullptr, st_in, in, plan, R, write);
  return info.Env().Undefined();
}

// encoderPlanEncode(plan, statesOut: Float32Array, statesIn: Float32Array | null, terms: Int32Array, items: Int32Array,
//                   termTable, itemTable, offsets: Int32Array, write: Float32Array | null, [T, B, m, termRows, itemRows, pad])
QGS_BINDING(encoderPlanEncode) {
  const LinearHstuEncoderPlan& plan = live_plan_arg<LinearHstuEncoderPlanPtr>(info, 0, kEncoderPlan);
  const LinearHstuEncoderSizes ps = linear_hstu_encoder_plan_sizes(plan);
  const std::vector<int64_t> z = ints_arg(info, 9, "sizes");
  if (z.size() != 6) throw_error(info.Env(), "encoderPlanEncode: sizes: expected [T, B, m, termRows, itemRows, pad]");
  const int64_t T = z[0], B = z[1], m = z[2], VT = z[3], VI = z[4], pad = z[5];
  const int64_t big = int64_t(1) << 31;
  if (T < 0 || T > big || B < 1 || B > big || !token_sizes_ok(m, VT, VI, pad))
    throw_error(info.Env(), "encoderPlanEncode: sizes [T, B, m, termRows, itemRows, pad] out of range");
  const size_t S = size_t(ps.L * ps.H * ps.dk * ps.dv), b = size_t(B), t = size_t(T);
  float* st_out = typed_array_arg<float, napi_float32_array>(info, 1, "encoderPlanEncode", "statesOut", "Float32Array", b * S, false);
  const float* st_in = typed_array_arg<float, napi_float32_array>(info, 2, "encoderPlanEncode", "statesIn", "Float32Array", b * S, true);
  const PairTokenInputs in = pair_tokens_arg(info, 3, "encoderPlanEncode", T, m, VT, VI, pad, ps.D);
  const int32_t* offsets = typed_array_arg<int32_t, napi_int32_array>(info, 7, "encoderPlanEncode", "offsets", "Int32Array", b + 1, false);
  const float* write = typed_array_arg<float, napi_float32_array>(info, 8, "encoderPlanEncode", "write", "Float32Array", t, true);
  cpu::linear_hstu_encoder_plan_encode(st_out, st_in, in, offsets, B, write, plan, T);
  return info.Env().Undefined();
}

// encoderPlanRelease(plan): frees the prepared weights now (a later step throws); idempotent.
QGS_BINDING(encoderPlanRelease) {
  plan_holder_arg<LinearHstuEncoderPlanPtr>(info, 0, kEncoderPlan).plan.reset();
  return info.Env().Undefined();
}

void register_linrec(Napi::Env env, Napi::Object exports) {
  QGS_EXPORT(exports, env, encoderPlanCreate);
  QGS_EXPORT(exports, env, encoderPlanStep);
  QGS_EXPORT(exports, env, encoderPlanEncode);
  QGS_EXPORT(exports, env, encoderPlanRelease);
  QGS_EXPORT(exports, env, linrecForward);
  QGS_EXPORT(exports, env, linrecBackward);
  QGS_EXPORT(exports, env, hstuForward);
  QGS_EXPORT(exports, env, hstuBackward);
  QGS_EXPORT(exports, env, linearHstuStep);
  QGS_EXPORT(exports, env, linearHstuBlock);
}

}  // namespace qgs::napi
