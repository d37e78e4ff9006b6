// Bindings for the hfg kernel family (grouped attention, DESIGN.md §4.2). Sizes are checked before
// any byte count is derived from them, storages are size-checked, and the call dispatches on the
// device the tensors share.
#include "napi_util.h"
#include "qgs/hfg.h"

namespace qgs::napi {

namespace {

struct Sizes {
  int64_t N, H, Tq, Tk, d;
  float scale;
  int64_t nq() const { return N * H * Tq * d; }
  int64_t nk() const { return N * H * Tk * d; }
};

// Reads N, H, Tq, Tk, d, scale starting at argument `first`.
Sizes sizes_arg(const Napi::CallbackInfo& info, size_t first) {
  Sizes s{};
  s.N = int_arg(info, first, "N", 0, int64_t(1) << 40);
  s.H = int_arg(info, first + 1, "H", 1, int64_t(1) << 20);
  s.Tq = int_arg(info, first + 2, "Tq", 1, int64_t(1) << 20);
  s.Tk = int_arg(info, first + 3, "Tk", 1, kHfgMaxKeys);
  s.d = int_arg(info, first + 4, "d", 1, kHfgMaxHeadDim);
  s.scale = static_cast<float>(num_arg(info, first + 5, "scale"));
  hfg_check_sizes(s.N, s.H, s.Tq, s.Tk, s.d);
  return s;
}

}  // namespace

// groupedAttentionForward(out, q, k, v, keyMask | null, N, H, Tq, Tk, d, scale)
QGS_BINDING(groupedAttentionForward) {
  Sizes s = sizes_arg(info, 5);
  View out = storage_arg(info, 0, "out", size_t(s.nq()) * 4);
  View q = storage_arg(info, 1, "q", size_t(s.nq()) * 4);
  View k = storage_arg(info, 2, "k", size_t(s.nk()) * 4);
  View v = storage_arg(info, 3, "v", size_t(s.nk()) * 4);
  View m = optional_storage_arg(info, 4, "keyMask", size_t(s.N * s.Tk) * 4);
  Device dev = common_device("groupedAttention", {&out, &q, &k, &v, &m});
  if (dev == Device::CPU) {
    cpu::grouped_attention_forward(out.as<float>(), q.as<float>(), k.as<float>(), v.as<float>(), m.as<float>(), s.N,
                                   s.H, s.Tq, s.Tk, s.d, s.scale);
  } else {
#ifdef QGS_WITH_CUDA
    cuda::grouped_attention_forward(out.as<float>(), q.as<float>(), k.as<float>(), v.as<float>(), m.as<float>(), s.N,
                                    s.H, s.Tq, s.Tk, s.d, s.scale);
#endif
  }
  return info.Env().Undefined();
}

// groupedAttentionBackward(dq, dk, dv, dout, q, k, v, keyMask | null, N, H, Tq, Tk, d, scale)
QGS_BINDING(groupedAttentionBackward) {
  Sizes s = sizes_arg(info, 8);
  View dq = storage_arg(info, 0, "dq", size_t(s.nq()) * 4);
  View dk = storage_arg(info, 1, "dk", size_t(s.nk()) * 4);
  View dv = storage_arg(info, 2, "dv", size_t(s.nk()) * 4);
  View dout = storage_arg(info, 3, "dout", size_t(s.nq()) * 4);
  View q = storage_arg(info, 4, "q", size_t(s.nq()) * 4);
  View k = storage_arg(info, 5, "k", size_t(s.nk()) * 4);
  View v = storage_arg(info, 6, "v", size_t(s.nk()) * 4);
  View m = optional_storage_arg(info, 7, "keyMask", size_t(s.N * s.Tk) * 4);
  Device dev = common_device("groupedAttention backward", {&dq, &dk, &dv, &dout, &q, &k, &v, &m});
  if (dev == Device::CPU) {
    cpu::grouped_attention_backward(dq.as<float>(), dk.as<float>(), dv.as<float>(), dout.as<float>(), q.as<float>(),
                                    k.as<float>(), v.as<float>(), m.as<float>(), s.N, s.H, s.Tq, s.Tk, s.d, s.scale);
  } else {
#ifdef QGS_WITH_CUDA
    cuda::grouped_attention_backward(dq.as<float>(), dk.as<float>(), dv.as<float>(), dout.as<float>(), q.as<float>(),
                                     k.as<float>(), v.as<float>(), m.as<float>(), s.N, s.H, s.Tq, s.Tk, s.d, s.scale);
#endif
  }
  return info.Env().Undefined();
}

// The 14 weight storages of one HFG context layer at arguments first .. first + 13, in the order
// ln1W, ln1B, wqkv, bqkv, wo, bo, ln2W, ln2B, w1, b1, w2, b2, lnOutW, lnOutB (biases and LayerNorm
// parameters may be null); size-checked for width D and FFN width F. Views are appended to `all`.
static void layer_weights(const Napi::CallbackInfo& info, size_t first, int64_t D, int64_t F, HfgContextLayerWeights& w,
                   std::vector<View>& all) {
  const size_t fD = size_t(D) * 4, fF = size_t(F) * 4;
  const size_t at = all.size();
  all.push_back(optional_storage_arg(info, first, "ln1Weight", fD));
  all.push_back(optional_storage_arg(info, first + 1, "ln1Bias", fD));
  all.push_back(storage_arg(info, first + 2, "wqkv", 3 * size_t(D) * fD));
  all.push_back(optional_storage_arg(info, first + 3, "bqkv", 3 * fD));
  all.push_back(storage_arg(info, first + 4, "wo", size_t(D) * fD));
  all.push_back(optional_storage_arg(info, first + 5, "bo", fD));
  all.push_back(optional_storage_arg(info, first + 6, "ln2Weight", fD));
  all.push_back(optional_storage_arg(info, first + 7, "ln2Bias", fD));
  all.push_back(storage_arg(info, first + 8, "w1", size_t(F) * fD));
  all.push_back(optional_storage_arg(info, first + 9, "b1", fF));
  all.push_back(storage_arg(info, first + 10, "w2", size_t(D) * fF));
  all.push_back(optional_storage_arg(info, first + 11, "b2", fD));
  all.push_back(optional_storage_arg(info, first + 12, "lnOutWeight", fD));
  all.push_back(optional_storage_arg(info, first + 13, "lnOutBias", fD));
  const View* v = all.data() + at;
  w.ln1_w = v[0].as<float>(), w.ln1_b = v[1].as<float>(), w.wqkv = v[2].as<float>(), w.bqkv = v[3].as<float>();
  w.wo = v[4].as<float>(), w.bo = v[5].as<float>(), w.ln2_w = v[6].as<float>(), w.ln2_b = v[7].as<float>();
  w.w1 = v[8].as<float>(), w.b1 = v[9].as<float>(), w.w2 = v[10].as<float>(), w.b2 = v[11].as<float>();
  w.lno_w = v[12].as<float>(), w.lno_b = v[13].as<float>();
}

// hfgContextLayerForward(out, x, keyMask | null, <14 layer weights>, N, T, D, H, F, eps1, eps2, epsOut, activation)
QGS_BINDING(hfgContextLayerForward) {
  const int64_t N = int_arg(info, 17, "N", 0, int64_t(1) << 40);
  const int64_t T = int_arg(info, 18, "T", 1, kHfgMaxKeys);
  const int64_t D = int_arg(info, 19, "D", 1, 4096);
  const int64_t H = int_arg(info, 20, "H", 1, 4096);
  const int64_t F = int_arg(info, 21, "F", 1, 65536);
  HfgContextLayerWeights w;
  w.eps1 = static_cast<float>(num_arg(info, 22, "eps1"));
  w.eps2 = static_cast<float>(num_arg(info, 23, "eps2"));
  w.eps_out = static_cast<float>(num_arg(info, 24, "epsOut"));
  w.activation = static_cast<HfgActivation>(int_arg(info, 25, "activation", 0, 3));
  std::vector<View> all;
  all.push_back(storage_arg(info, 0, "out", size_t(N * D) * 4));
  all.push_back(storage_arg(info, 1, "x", size_t(N * T * D) * 4));
  all.push_back(optional_storage_arg(info, 2, "keyMask", size_t(N * T) * 4));
  layer_weights(info, 3, D, F, w, all);
  require_cpu(info, "hfgContextLayer", all);
  cpu::hfg_context_layer_forward(all[0].as<float>(), all[1].as<float>(), all[2].as<float>(), w, N, T, D, H, F);
  return info.Env().Undefined();
}

// ---- the head's model side prepared once (cpu::RankHeadPlan), held by JS as a tagged External ----

namespace {
const PlanKind kRankHeadPlan{{0x51a5f0c2e3b94d17ULL, 0x8e6d2b4f1c0a7395ULL}, "rankHeadPlan", "a rank head plan"};

// [N, R, V] of one head call at argument i, each in [0, 2^bits].
void head_call_sizes(const Napi::CallbackInfo& info, size_t i, const char* op, int bits, int64_t& N, int64_t& R, int64_t& V) {
  const std::vector<int64_t> z = ints_arg(info, i, "sizes");
  if (z.size() != 3) throw_error(info.Env(), std::string(op) + ": sizes: expected [N, R, V]");
  N = z[0], R = z[1], V = z[2];
  const int64_t big = int64_t(1) << bits;
  if (N < 0 || N > big || R < 0 || R > big || V < 0 || V > big)
    throw_error(info.Env(), std::string(op) + ": sizes [N, R, V] out of range (each in [0, 2^" + std::to_string(bits) + "])");
}
}  // namespace

// rankHeadPlanCreate(typeEmb, groupW | null, groupB | null, matchW1, matchB1 | null, matchW2, matchB2 | null,
//                    logitW, <14 layer weights>, [D, G, H, FF, F, M], eps1, eps2, epsOut, logitB, activation)
// → a handle holding copies of the weights, prepared (transposed, padded, folded).
QGS_BINDING(rankHeadPlanCreate) {
  const std::vector<int64_t> z = ints_arg(info, 22, "sizes");
  if (z.size() != 6) throw_error(info.Env(), "rankHeadPlan: sizes: expected [D, G, H, FF, F, M]");
  RankHeadSizes s;
  s.D = z[0], s.G = z[1], s.H = z[2], s.FF = z[3], s.F = z[4], s.M = z[5];
  const auto in = [](int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; };
  if (!in(s.D, 1, 4096) || !in(s.G, 0, kHfgMaxKeys - 2) || !in(s.H, 1, 4096) || !in(s.FF, 1, 65536) || !in(s.F, 0, 65536) ||
      !in(s.M, 1, 65536))
    throw_error(info.Env(), "rankHeadPlan: sizes [D, G, H, FF, F, M] out of range (D, H <= 4096; G <= " +
                                std::to_string(kHfgMaxKeys - 2) + "; FF, M in [1, 65536]; F <= 65536)");
  RankHeadWeights w;
  w.layer.eps1 = static_cast<float>(num_arg(info, 23, "eps1"));
  w.layer.eps2 = static_cast<float>(num_arg(info, 24, "eps2"));
  w.layer.eps_out = static_cast<float>(num_arg(info, 25, "epsOut"));
  w.logit_b = static_cast<float>(num_arg(info, 26, "logitB"));
  w.layer.activation = static_cast<HfgActivation>(int_arg(info, 27, "activation", 0, 3));
  const size_t fD = size_t(s.D) * 4, GD = size_t(s.G * s.D);
  std::vector<View> all;
  all.push_back(storage_arg(info, 0, "typeEmb", size_t(s.G + 2) * fD));
  all.push_back(optional_storage_arg(info, 1, "groupW", GD * size_t(s.F) * 4));
  all.push_back(optional_storage_arg(info, 2, "groupB", GD * 4));
  all.push_back(storage_arg(info, 3, "matchW1", size_t(s.M) * 3 * fD));
  all.push_back(optional_storage_arg(info, 4, "matchB1", size_t(s.M) * 4));
  all.push_back(storage_arg(info, 5, "matchW2", size_t(s.M) * fD));
  all.push_back(optional_storage_arg(info, 6, "matchB2", fD));
  all.push_back(storage_arg(info, 7, "logitW", size_t(2 * s.D + s.F) * 4));
  layer_weights(info, 8, s.D, s.FF, w.layer, all);
  require_cpu(info, "rankHeadPlan", all);
  w.type_emb = all[0].as<float>(), w.group_w = all[1].as<float>(), w.group_b = all[2].as<float>();
  w.match_w1 = all[3].as<float>(), w.match_b1 = all[4].as<float>(), w.match_w2 = all[5].as<float>();
  w.match_b2 = all[6].as<float>(), w.logit_w = all[7].as<float>();
  return wrap_plan(info.Env(), cpu::make_rank_head_plan(w, s), kRankHeadPlan);
}

// rankHeadPlanForward(plan, logits, ctx, req (i32), item, feats | null, [N, R, V], itemIds (i32) | null)
QGS_BINDING(rankHeadPlanForward) {
  const cpu::RankHeadPlan& plan = live_plan_arg<cpu::RankHeadPlanPtr>(info, 0, kRankHeadPlan);
  const RankHeadSizes ps = cpu::rank_head_plan_sizes(plan);
  int64_t N, R, V;
  head_call_sizes(info, 6, "rankHeadPlan", 40, N, R, V);
  const size_t fD = size_t(ps.D) * 4;
  const bool by_id = !(info[7].IsNull() || info[7].IsUndefined());
  std::vector<View> all;
  all.push_back(storage_arg(info, 1, "logits", size_t(N) * 4));
  all.push_back(storage_arg(info, 2, "ctx", size_t(R) * fD));
  all.push_back(storage_arg(info, 3, "req", size_t(N) * 4));
  all.push_back(storage_arg(info, 4, "item", size_t(by_id ? V : N) * fD));
  all.push_back(optional_storage_arg(info, 5, "feats", size_t(N * ps.F) * 4));
  const View ids = by_id ? storage_arg(info, 7, "itemIds", size_t(N) * 4) : View{nullptr, 0, Device::CPU};
  all.push_back(ids);
  require_cpu(info, "rankHeadPlan", all);
  cpu::hfg_rank_head_forward(all[0].as<float>(), all[1].as<float>(), all[2].as<int32_t>(), all[3].as<float>(),
                             ids.as<int32_t>(), all[4].as<float>(), plan, N, R, V);
  return info.Env().Undefined();
}

// rankHeadPlanScore(plan, logits: Float32Array, ctx: Float32Array, req: Int32Array, itemTable, itemIds: Int32Array,
//                   feats: Float32Array | null, [N, R, V]): the serving form — the per-request inputs and the logits
// are plain host arrays (no tensors to make and free per request), the items read from the catalogue table.
QGS_BINDING(rankHeadPlanScore) {
  const cpu::RankHeadPlan& plan = live_plan_arg<cpu::RankHeadPlanPtr>(info, 0, kRankHeadPlan);
  const RankHeadSizes ps = cpu::rank_head_plan_sizes(plan);
  const char* op = "rankHeadPlanScore";
  int64_t N, R, V;
  head_call_sizes(info, 7, op, 31, N, R, V);
  const size_t n = size_t(N), D = size_t(ps.D);
  float* logits = typed_array_arg<float, napi_float32_array>(info, 1, op, "logits", "Float32Array", n, false);
  const float* ctx = typed_array_arg<float, napi_float32_array>(info, 2, op, "ctx", "Float32Array", size_t(R) * D, false);
  const int32_t* req = typed_array_arg<int32_t, napi_int32_array>(info, 3, op, "req", "Int32Array", n, false);
  const int32_t* ids = typed_array_arg<int32_t, napi_int32_array>(info, 5, op, "itemIds", "Int32Array", n, false);
  const float* feats = typed_array_arg<float, napi_float32_array>(info, 6, op, "feats", "Float32Array", n * size_t(ps.F), ps.F == 0);
  std::vector<View> all;
  all.push_back(storage_arg(info, 4, "itemTable", size_t(V) * D * 4));
  require_cpu(info, op, all);
  cpu::hfg_rank_head_forward(logits, ctx, req, all[0].as<float>(), ids, feats, plan, N, R, V);
  return info.Env().Undefined();
}

// rankHeadPlanRelease(plan): frees the prepared weights now (a later forward throws); idempotent.
QGS_BINDING(rankHeadPlanRelease) {
  plan_holder_arg<cpu::RankHeadPlanPtr>(info, 0, kRankHeadPlan).plan.reset();
  return info.Env().Undefined();
}

void register_hfg(Napi::Env env, Napi::Object exports) {
  QGS_EXPORT(exports, env, rankHeadPlanCreate);
  QGS_EXPORT(exports, env, rankHeadPlanForward);
  QGS_EXPORT(exports, env, rankHeadPlanScore);
  QGS_EXPORT(exports, env, rankHeadPlanRelease);
  QGS_EXPORT(exports, env, groupedAttentionForward);
  QGS_EXPORT(exports, env, groupedAttentionBackward);
  QGS_EXPORT(exports, env, hfgContextLayerForward);
}

}  // namespace qgs::napi
