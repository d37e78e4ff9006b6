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

void register_hfg(Napi::Env env, Napi::Object exports) {
  QGS_EXPORT(exports, env, groupedAttentionForward);
  QGS_EXPORT(exports, env, groupedAttentionBackward);
}

}  // namespace qgs::napi
