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

// hfgContextLayerForward(out, x, keyMask | null, ln1W, ln1B, wqkv, bqkv, wo, bo, ln2W, ln2B, w1, b1, w2, b2,
//                        lnoW, lnoB, N, T, D, H, F, eps1, eps2, epsOut, activation)
// Weights and biases: f32 storages (biases and LayerNorm affine parameters may be null). CPU only.
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
  const size_t fD = size_t(D) * 4, fF = size_t(F) * 4;
  View out = storage_arg(info, 0, "out", size_t(N) * fD);
  View x = storage_arg(info, 1, "x", size_t(N * T) * fD);
  View m = optional_storage_arg(info, 2, "keyMask", size_t(N * T) * 4);
  View ln1w = optional_storage_arg(info, 3, "ln1Weight", fD), ln1b = optional_storage_arg(info, 4, "ln1Bias", fD);
  View wqkv = storage_arg(info, 5, "wqkv", 3 * size_t(D) * fD), bqkv = optional_storage_arg(info, 6, "bqkv", 3 * fD);
  View wo = storage_arg(info, 7, "wo", size_t(D) * fD), bo = optional_storage_arg(info, 8, "bo", fD);
  View ln2w = optional_storage_arg(info, 9, "ln2Weight", fD), ln2b = optional_storage_arg(info, 10, "ln2Bias", fD);
  View w1 = storage_arg(info, 11, "w1", size_t(F) * fD), b1 = optional_storage_arg(info, 12, "b1", fF);
  View w2 = storage_arg(info, 13, "w2", size_t(D) * fF), b2 = optional_storage_arg(info, 14, "b2", fD);
  View lnow = optional_storage_arg(info, 15, "lnOutWeight", fD), lnob = optional_storage_arg(info, 16, "lnOutBias", fD);
  Device dev = common_device("hfgContextLayer", {&out, &x, &m, &ln1w, &ln1b, &wqkv, &bqkv, &wo, &bo, &ln2w, &ln2b, &w1,
                                                  &b1, &w2, &b2, &lnow, &lnob});
  if (dev != Device::CPU) throw_error(info.Env(), "hfgContextLayer: CPU tensors only (on a GPU, use the composed HFGAttention ops)");
  w.ln1_w = ln1w.as<float>();
  w.ln1_b = ln1b.as<float>();
  w.wqkv = wqkv.as<float>();
  w.bqkv = bqkv.as<float>();
  w.wo = wo.as<float>();
  w.bo = bo.as<float>();
  w.ln2_w = ln2w.as<float>();
  w.ln2_b = ln2b.as<float>();
  w.w1 = w1.as<float>();
  w.b1 = b1.as<float>();
  w.w2 = w2.as<float>();
  w.b2 = b2.as<float>();
  w.lno_w = lnow.as<float>();
  w.lno_b = lnob.as<float>();
  cpu::hfg_context_layer_forward(out.as<float>(), x.as<float>(), m.as<float>(), w, N, T, D, H, F);
  return info.Env().Undefined();
}

void register_hfg(Napi::Env env, Napi::Object exports) {
  QGS_EXPORT(exports, env, groupedAttentionForward);
  QGS_EXPORT(exports, env, groupedAttentionBackward);
  QGS_EXPORT(exports, env, hfgContextLayerForward);
}

}  // namespace qgs::napi
