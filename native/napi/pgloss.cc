// Bindings for the pgloss kernel family: pgLoss (fused clipped policy loss + gradient + stats),
// pgScaleInPlace (backward: saved gradient × upstream gradient) and fusedLinearPg (output
// projection + log-softmax + clipped loss + SFT + entropy in vocabulary chunks).
#include <string>

#include "napi_util.h"
#include "qgs/pgloss.h"

namespace qgs::napi {
namespace {

// Runs a kernel and prefixes its KernelError messages with the op name, so the JS error reads
// "clippedPolicyLoss: logp: expected ..." like the TS-side checks.
template <typename F>
auto with_op(const char* op, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const KernelError& e) {
    throw KernelError(std::string(op) + ": " + e.what());
  }
}

// The 17 clipped-loss arguments starting at `base`:
//   oldLogp, refLogp|null, mask|null, maskIsI32, advantages, advPerToken, epsLowSeq|null,
//   epsHighSeq|null, epsLow, epsHigh, dualClip, klBeta, klScale|null, agg, normalizer, N, T
struct PgArgs {
  PgLossInputs in;
  View old_logp, ref, mask, adv, el, eh, ks;
};

PgArgs parse_pg(const Napi::CallbackInfo& info, size_t base) {
  PgArgs a;
  PgLossInputs& in = a.in;
  in.n = int_arg(info, base + 15, "N", 0, int64_t(1) << 40);
  in.t = int_arg(info, base + 16, "T", 0, int64_t(1) << 40);
  const int64_t nt = in.n * in.t;
  const size_t nt4 = static_cast<size_t>(nt) * 4, n4 = static_cast<size_t>(in.n) * 4;
  a.old_logp = storage_arg(info, base + 0, "oldLogp", nt4);
  a.ref = optional_storage_arg(info, base + 1, "refLogp", nt4);
  a.mask = optional_storage_arg(info, base + 2, "mask", nt4);
  const bool mask_i32 = bool_arg(info, base + 3, "maskIsI32");
  in.adv_per_token = bool_arg(info, base + 5, "advPerToken");
  a.adv = storage_arg(info, base + 4, "advantages", in.adv_per_token ? nt4 : n4);
  a.el = optional_storage_arg(info, base + 6, "epsLow", n4);
  a.eh = optional_storage_arg(info, base + 7, "epsHigh", n4);
  in.eps_low = static_cast<float>(num_arg(info, base + 8, "epsLow"));
  in.eps_high = static_cast<float>(num_arg(info, base + 9, "epsHigh"));
  in.dual_clip = static_cast<float>(num_arg(info, base + 10, "dualClip"));
  in.kl_beta = static_cast<float>(num_arg(info, base + 11, "klBeta"));
  a.ks = optional_storage_arg(info, base + 12, "klScale", n4);
  in.agg = static_cast<int32_t>(int_arg(info, base + 13, "agg", 0, 2));
  in.normalizer = num_arg(info, base + 14, "normalizer");
  in.old_logp = a.old_logp.as<float>();
  in.ref_logp = a.ref.as<float>();
  if (mask_i32) in.mask_i32 = a.mask.as<int32_t>();
  else in.mask = a.mask.as<float>();
  in.adv = a.adv.as<float>();
  in.eps_low_seq = a.el.as<float>();
  in.eps_high_seq = a.eh.as<float>();
  in.kl_scale = a.ks.as<float>();
  return a;
}

Napi::Float64Array stats_array(Napi::Env env, const double* s, size_t n) {
  Napi::Float64Array out = Napi::Float64Array::New(env, n);
  for (size_t k = 0; k < n; ++k) out[k] = s[k];
  return out;
}

}  // namespace

// pgLoss(loss, dlogp|null, logp, ...17 clipped-loss args) -> Float64Array(stats)
QGS_BINDING(pgLoss) {
  PgArgs a = parse_pg(info, 3);
  const int64_t nt = a.in.n * a.in.t;
  View loss = storage_arg(info, 0, "loss", 4);
  View dlogp = optional_storage_arg(info, 1, "dlogp", static_cast<size_t>(nt) * 4);
  View logp = storage_arg(info, 2, "logp", static_cast<size_t>(nt) * 4);
  a.in.logp = logp.as<float>();
  Device dev = common_device("clippedPolicyLoss", {&loss, &dlogp, &logp, &a.old_logp, &a.ref, &a.mask, &a.adv, &a.el, &a.eh, &a.ks});
  double stats[kPgStatCount];
  if (dev == Device::CPU) {
    with_op("clippedPolicyLoss", [&] { cpu::pg_loss(loss.as<float>(), dlogp.as<float>(), stats, a.in); });
  } else {
#ifdef QGS_WITH_CUDA
    with_op("clippedPolicyLoss", [&] { cuda::pg_loss(loss.as<float>(), dlogp.as<float>(), stats, a.in); });
#endif
  }
  return stats_array(info.Env(), stats, kPgStatCount);
}

// pgScaleInPlace(dst, scale[1], n): dst *= scale (reads the scalar on the tensors' device).
QGS_BINDING(pgScaleInPlace) {
  int64_t n = int_arg(info, 2, "n", 0);
  View dst = storage_arg(info, 0, "dst", static_cast<size_t>(n) * 4);
  View scale = storage_arg(info, 1, "scale", 4);
  Device dev = common_device("clippedPolicyLoss backward", {&dst, &scale});
  if (dev == Device::CPU) {
    cpu::scale_inplace(dst.as<float>(), scale.as<float>(), n);
  } else {
#ifdef QGS_WITH_CUDA
    cuda::scale_inplace(dst.as<float>(), scale.as<float>(), n);
#endif
  }
  return info.Env().Undefined();
}

// fusedLinearPg(loss, logpOut|null, dhidden|null, dweight|null, hidden, weight, targets,
//               ...17 clipped-loss args, temperature, sftMask|null, sftWeight, sftNormalizer,
//               entropyCoef, M, D, V, rowChunk, vocabChunk) -> Float64Array(stats..., workspaceBytes)
QGS_BINDING(fusedLinearPg) {
  FusedLinearPgInputs in;
  PgArgs a = parse_pg(info, 7);
  in.pg = a.in;
  in.temperature = static_cast<float>(num_arg(info, 24, "temperature"));
  in.sft_weight = static_cast<float>(num_arg(info, 26, "sftWeight"));
  in.sft_normalizer = num_arg(info, 27, "sftNormalizer");
  in.entropy_coef = static_cast<float>(num_arg(info, 28, "entropyCoef"));
  in.m = int_arg(info, 29, "M", 0, int64_t(1) << 40);
  in.d = int_arg(info, 30, "D", 0, int64_t(1) << 31);
  in.v = int_arg(info, 31, "V", 0, int64_t(1) << 31);
  in.row_chunk = int_arg(info, 32, "rowChunk", 0, int64_t(1) << 31);
  in.vocab_chunk = int_arg(info, 33, "vocabChunk", 0, int64_t(1) << 31);
  const size_t m4 = static_cast<size_t>(in.m) * 4;
  View loss = storage_arg(info, 0, "loss", 4);
  View logp_out = optional_storage_arg(info, 1, "logpOut", m4);
  View dh = optional_storage_arg(info, 2, "dhidden", m4 * static_cast<size_t>(in.d));
  View dw = optional_storage_arg(info, 3, "dweight", static_cast<size_t>(in.v) * static_cast<size_t>(in.d) * 4);
  View hidden = storage_arg(info, 4, "hidden", m4 * static_cast<size_t>(in.d));
  View weight = storage_arg(info, 5, "weight", static_cast<size_t>(in.v) * static_cast<size_t>(in.d) * 4);
  View targets = storage_arg(info, 6, "targets", m4);
  View sft = optional_storage_arg(info, 25, "sftMask", m4);
  in.hidden = hidden.as<float>();
  in.weight = weight.as<float>();
  in.targets = targets.as<int32_t>();
  in.sft_mask = sft.as<float>();
  Device dev = common_device("fusedLinearPolicyLoss", {&loss, &logp_out, &dh, &dw, &hidden, &weight, &targets, &sft, &a.old_logp, &a.ref,
                                                       &a.mask, &a.adv, &a.el, &a.eh, &a.ks});
  double stats[kPgStatCount + 1];
  int64_t ws = 0;
  if (dev == Device::CPU) {
    ws = with_op("fusedLinearPolicyLoss", [&] {
      return cpu::fused_linear_pg(loss.as<float>(), logp_out.as<float>(), dh.as<float>(), dw.as<float>(), stats, in);
    });
  } else {
#ifdef QGS_WITH_CUDA
    ws = with_op("fusedLinearPolicyLoss", [&] {
      return cuda::fused_linear_pg(loss.as<float>(), logp_out.as<float>(), dh.as<float>(), dw.as<float>(), stats, in);
    });
#endif
  }
  stats[kPgStatCount] = static_cast<double>(ws);
  return stats_array(info.Env(), stats, kPgStatCount + 1);
}

void register_pgloss(Napi::Env env, Napi::Object exports) {
  QGS_EXPORT(exports, env, pgLoss);
  QGS_EXPORT(exports, env, pgScaleInPlace);
  QGS_EXPORT(exports, env, fusedLinearPg);
}

}  // namespace qgs::napi
