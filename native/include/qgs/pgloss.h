// Kernel family 3: fused clipped policy-gradient losses (DESIGN.md §4.3, research/papers.md §7.3).
//
// pg_loss: one pass over [N, T] tokens computes the aggregated loss, its gradient with respect to
// logp (for an upstream gradient of 1; the autograd layer scales it) and the statistics.
//   d   = clamp(logp − oldLogp, −20, 20);  r = exp(d)
//   ℓ   = max(−A r, −A clip(r, 1−εl, 1+εh));  dual clip: ℓ = min(ℓ, −c A) when A < 0
//   ℓ  += β s_i (exp(x) − x − 1),  x = clamp(refLogp − logp, −20, 20)     (k3 KL, optional)
//   loss = Σ_i w_i Σ_t m_it ℓ_it  with per-row weights from the aggregation:
//     token-mean:            w_i = 1 / normalizer            (default normalizer: Σ m)
//     seq-mean-token-mean:   w_i = 1 / (L_i · normalizer)    (default: number of non-empty rows)
//     seq-mean-token-sum:    w_i = 1 / normalizer            (default: N · T, Dr.GRPO's constant)
// The normalizer is an explicit input so micro-batches and data-parallel shards that pass the
// global value reproduce the full-batch gradient exactly (sum of the parts).
//
// fused_linear_pg: the same loss on logp_m = log_softmax(h_m Wᵀ / τ)[y_m], computed in row ×
// vocabulary chunks with an online log-sum-exp (never materialising [M, V]), plus an optional
// SFT cross-entropy term (λ, mode-balanced AFRL) and an optional entropy bonus; the gradients for
// hidden and weight are produced in the same call.
#pragma once
#include <cstdint>

#include "qgs/common.h"

namespace qgs {

enum PgAgg : int32_t { kAggTokenMean = 0, kAggSeqMeanTokenMean = 1, kAggSeqMeanTokenSum = 2 };

// Indices into the statistics array (double[kPgStatCount]); sums over masked-in tokens.
enum PgStat : int32_t {
  kStatTokens = 0,      // Σ m (masked-in tokens)
  kStatClipLow = 1,     // tokens with r < 1−εl and A < 0 (TRL's low-clip definition)
  kStatClipHigh = 2,    // tokens with r > 1+εh and A > 0
  kStatDualClip = 3,    // tokens where the dual clip −cA is the active branch
  kStatRatioSum = 4,    // Σ r
  kStatRatioMin = 5,    // min r (+inf when no tokens)
  kStatRatioMax = 6,    // max r (−inf when no tokens)
  kStatApproxKl = 7,    // Σ k3(old → current) = Σ (1/r + d − 1)
  kStatRefKl = 8,       // Σ k3(ref → current) (without β, s), 0 without refLogp
  kStatPgLoss = 9,      // Σ_i w_i Σ_t m ℓ_pg (the policy-gradient part of the loss)
  kStatKlLoss = 10,     // Σ_i w_i Σ_t m β s ℓ_kl (the KL part of the loss)
  kStatNormalizer = 11, // the normalizer actually used
  kStatEntropy = 12,    // fused-linear only: Σ m H_t (0 for pg_loss)
  kStatSftLoss = 13,    // fused-linear only: λ · SFT CE term (0 for pg_loss)
  kStatSftTokens = 14,  // fused-linear only: Σ sftMask
  kPgStatCount = 15
};

// Inputs of the clipped loss over [N, T] tokens. Optional pointers may be null.
struct PgLossInputs {
  const float* logp = nullptr;      // [N, T]
  const float* old_logp = nullptr;  // [N, T]
  const float* ref_logp = nullptr;  // [N, T] or null: no KL term
  const float* mask = nullptr;      // [N, T] f32, nonzero = response token; null: all tokens
  const int32_t* mask_i32 = nullptr;  // same as an i32 tensor (at most one of the two masks)
  const float* adv = nullptr;       // [N] (adv_per_token false) or [N, T]
  bool adv_per_token = false;
  const float* eps_low_seq = nullptr;   // [N] or null: eps_low for every row
  const float* eps_high_seq = nullptr;  // [N] or null: eps_high for every row
  float eps_low = 0.2f, eps_high = 0.2f;
  float dual_clip = 0.f;            // c > 1 enables the dual clip; 0 disables it
  float kl_beta = 0.f;              // β (needs ref_logp when > 0)
  const float* kl_scale = nullptr;  // [N] per-sequence KL scale s_i (CLPO) or null (s = 1)
  int32_t agg = kAggTokenMean;
  double normalizer = 0.0;          // > 0: explicit; 0: the aggregation's local default
  int64_t n = 0, t = 0;
};

// Inputs of the fused output projection + clipped loss. Rows m = i·T + t of hidden are tokens; the
// per-token arrays of `pg` are [N, T] with N·T = M (`pg.logp` is ignored: it is computed here).
struct FusedLinearPgInputs {
  PgLossInputs pg;
  const float* hidden = nullptr;    // [M, D]
  const float* weight = nullptr;    // [V, D]
  const int32_t* targets = nullptr; // [M], in [0, V) for every row that is masked in (RL or SFT)
  float temperature = 1.f;          // logits are (h · W_v) / temperature
  const float* sft_mask = nullptr;  // [M] or null: rows of the SFT (expert target) term
  float sft_weight = 0.f;           // λ
  double sft_normalizer = 0.0;      // > 0 explicit, else Σ sft_mask
  float entropy_coef = 0.f;         // κ: loss −= κ · Agg(H) (same aggregation weights as the RL term)
  int64_t m = 0, d = 0, v = 0;
  // Chunk sizes (0 = automatic); exposed for tests that force many chunks.
  int64_t row_chunk = 0, vocab_chunk = 0;
};

namespace cpu {

// loss: [1]; dlogp: [N, T] or null (forward only); stats: double[kPgStatCount] (host).
// Throws KernelError for bad sizes, missing inputs or non-finite values in masked-in tokens.
void pg_loss(float* loss, float* dlogp, double* stats, const PgLossInputs& in);

// dst[i] *= *scale for i < n (the backward pass: saved gradient × upstream gradient).
void scale_inplace(float* dst, const float* scale, int64_t n);

// loss: [1]; logp_out: [M] per-token target log-probs (may be null); dhidden: [M, D] or null;
// dweight: [V, D] or null; stats: double[kPgStatCount]. Returns the bytes of temporary workspace
// the call allocated (so tests can check that [M, V] was never materialised).
int64_t fused_linear_pg(float* loss, float* logp_out, float* dhidden, float* dweight, double* stats,
                        const FusedLinearPgInputs& in);

}  // namespace cpu

namespace cuda {

// Same contracts; pointers are device memory except `stats` (host). Compiled, not yet run on a GPU.
void pg_loss(float* loss, float* dlogp, double* stats, const PgLossInputs& in);
void scale_inplace(float* dst, const float* scale, int64_t n);
int64_t fused_linear_pg(float* loss, float* logp_out, float* dhidden, float* dweight, double* stats,
                        const FusedLinearPgInputs& in);

}  // namespace cuda

// Shared argument checks (sizes, required pointers, ranges); the CPU and CUDA entry points call it.
void check_pg_inputs(const PgLossInputs& in, bool need_logp);

}  // namespace qgs
