// HFG grouped attention (DESIGN.md §4.2): many small, independent multi-head softmax attentions at
// once. For every row n < N and head h < H:
//   s_ij = scale · <q_i, k_j>                  (j masked out where key_mask[n, j] == 0)
//   p_ij = softmax_j(s_ij) over present keys
//   out_i = Σ_j p_ij v_j
// A row whose keys are all masked has out_i = 0 and zero gradients (never NaN).
//
// Layouts (contiguous, row-major): q, out, dout, dq [N, H, Tq, d]; k, v, dk, dv [N, H, Tk, d];
// key_mask [N, Tk] as float (nonzero = present) or nullptr (all present).
// Limits: N >= 0, H >= 1, 1 <= Tq, 1 <= Tk <= kMaxKeys, 1 <= d <= kMaxHeadDim; violations throw
// qgs::KernelError naming the argument.
//
// Backward recomputes the softmax from q, k and the mask (nothing is saved between the passes):
//   dp_ij = <dout_i, v_j>, D_i = Σ_j p_ij dp_ij, ds_ij = p_ij (dp_ij − D_i)
//   dq_i = scale Σ_j ds_ij k_j,  dk_j = scale Σ_i ds_ij q_i,  dv_j = Σ_i p_ij dout_i
// dq, dk and dv are fully written (overwritten, not accumulated).
#pragma once
#include <cstdint>
#include <memory>

#include "qgs/common.h"

namespace qgs {

// Tokens per attention set: HFG runs over G + 2 tokens with G ≈ 4..16, so 64 is ample and lets the
// kernels keep a row's scores in registers / a small fixed buffer.
constexpr int64_t kHfgMaxKeys = 64;
// Per-head width: lets the CUDA kernel hold a query row in at most 4 registers per lane.
constexpr int64_t kHfgMaxHeadDim = 128;

// Throws KernelError when the sizes are outside the limits above.
void hfg_check_sizes(int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d);

// Fused inference of one HFG-Attention layer read out at token 0 (nn.HFGAttention with 'context'
// pooling, last layer; DESIGN.md §4.2, §6 serving). For every candidate n with tokens x[n] [T, D]:
//   y_t = LN1(x_t);  q = Wq y_0 + bq;  k_t, v_t = Wk y_t + bk, Wv y_t + bv       (H heads of D/H)
//   a   = concat_h Σ_t softmax_t(<q_h, k_t,h>/√(D/H) | key_mask[n, t] ≠ 0) v_t,h  (all masked → 0)
//   x1  = x_0 + Wo a + bo;  x2 = x1 + W2 act(W1 LN2(x1) + b1) + b2;  out[n] = LNout(x2)
// Weights in PyTorch layout (W [out, in]); Wqkv [3D, D] stacks Q, K, V. Biases and LayerNorm affine
// parameters may be null (0 / identity). Forward only, no autograd state: the serving fast path.
enum class HfgActivation : int { Relu = 0, Gelu = 1, Silu = 2, Tanh = 3 };

struct HfgContextLayerWeights {
  const float* ln1_w = nullptr;
  const float* ln1_b = nullptr;
  const float* wqkv = nullptr;  // [3D, D]
  const float* bqkv = nullptr;  // [3D]
  const float* wo = nullptr;    // [D, D]
  const float* bo = nullptr;    // [D]
  const float* ln2_w = nullptr;
  const float* ln2_b = nullptr;
  const float* w1 = nullptr;  // [F, D]
  const float* b1 = nullptr;  // [F]
  const float* w2 = nullptr;  // [D, F]
  const float* b2 = nullptr;  // [D]
  const float* lno_w = nullptr;
  const float* lno_b = nullptr;
  float eps1 = 1e-5f, eps2 = 1e-5f, eps_out = 1e-5f;
  HfgActivation activation = HfgActivation::Gelu;
};

// Fused inference of the whole QGS ranking head, one call per batch of candidates:
//   tokens   x_0 = ctx[req[n]] + type_0,  x_1 = item[n] + type_1   (item[item_ids[n]] when item_ids is
//            given: item is then a [V, D] table, e.g. serving's precomputed catalogue, and no gathered
//            [N, D] copy is made),
//            x_{2+g} = (Wg f_n + bg)[g·D : (g+1)·D] + type_{2+g}          (g < G; f_n = feats[n], F wide)
//   pooled = the HFG context layer above over x_0 .. x_{G+1}
//   match  = relu(Wm2 relu(Wm1 [ctx; item; ctx ⊙ item] + bm1) + bm2)      (Wm1 [M, 3D], Wm2 [D, M])
//   logit  = <wl, [pooled; match; f_n]> + bl                               (wl [2D + F])
struct RankHeadWeights {
  HfgContextLayerWeights layer;
  const float* type_emb = nullptr;  // [G + 2, D]
  const float* group_w = nullptr;   // [G·D, F]
  const float* group_b = nullptr;   // [G·D] or null
  const float* match_w1 = nullptr;  // [M, 3D]
  const float* match_b1 = nullptr;  // [M] or null
  const float* match_w2 = nullptr;  // [D, M]
  const float* match_b2 = nullptr;  // [D] or null
  const float* logit_w = nullptr;   // [2D + F]
  float logit_b = 0.f;
};

struct RankHeadSizes {
  int64_t N = 0;   // candidates
  int64_t R = 0;   // requests (rows of ctx)
  int64_t D = 0;   // token width
  int64_t G = 0;   // feature groups (tokens T = G + 2)
  int64_t H = 0;   // attention heads
  int64_t FF = 0;  // the layer's FFN width
  int64_t F = 0;   // feature columns
  int64_t M = 0;   // match MLP hidden width
  int64_t V = 0;   // rows of the item table when item_ids is given (ignored otherwise)
};

// Throws KernelError naming the argument when a size is out of range or a required pointer is null.
void hfg_rank_head_check(const RankHeadWeights& w, const RankHeadSizes& s);

// Throws KernelError unless N >= 0, 1 <= T <= kHfgMaxKeys, D >= 1, H >= 1 divides D with
// D / H <= kHfgMaxHeadDim, F >= 1 and the epsilons are positive.
void hfg_context_layer_check(int64_t N, int64_t T, int64_t D, int64_t H, int64_t F, const HfgContextLayerWeights& w);

namespace cpu {

void grouped_attention_forward(float* out, const float* q, const float* k, const float* v, const float* key_mask,
                               int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale);

void grouped_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, const float* key_mask, int64_t N, int64_t H, int64_t Tq, int64_t Tk,
                                int64_t d, float scale);

// out [N, D], x [N, T, D], key_mask [N, T] or null. CPU only (on a GPU the composed ops serve).
void hfg_context_layer_forward(float* out, const float* x, const float* key_mask, const HfgContextLayerWeights& w,
                               int64_t N, int64_t T, int64_t D, int64_t H, int64_t F);

// logits [N] of the QGS ranking head (src/qgs/heads.ts, HFG fusion with one layer and context
// pooling, every group present) for candidates n < N of requests req[n] < R — see RankHeadWeights.
// item_ids [N] (or null: item is [N, D], row n for candidate n) must lie in [0, V).
void hfg_rank_head_forward(float* logits, const float* ctx, const int32_t* req, const float* item,
                           const int32_t* item_ids, const float* feats, const RankHeadWeights& w, const RankHeadSizes& s);

// The head's model side prepared once (weights copied, transposed, padded and folded), for callers
// whose weights stay fixed across calls (serving): a call then does only the per-request and
// per-candidate work (~0.1 ms of a 1,000-candidate call was this preparation). Sizes N, R and V of
// `s` are ignored; the rest is checked as hfg_rank_head_check does.
struct RankHeadPlan;
struct RankHeadPlanDeleter {
  void operator()(RankHeadPlan* p) const;
};
using RankHeadPlanPtr = std::unique_ptr<RankHeadPlan, RankHeadPlanDeleter>;
RankHeadPlanPtr make_rank_head_plan(const RankHeadWeights& w, const RankHeadSizes& s);
RankHeadSizes rank_head_plan_sizes(const RankHeadPlan& plan);
void hfg_rank_head_forward(float* logits, const float* ctx, const int32_t* req, const float* item,
                           const int32_t* item_ids, const float* feats, const RankHeadPlan& plan, int64_t N, int64_t R,
                           int64_t V);

}  // namespace cpu

namespace cuda {

// Same contracts on device pointers; `stream` is a cudaStream_t (nullptr = default stream). Launch
// errors throw KernelError (qgs::cuda::check_last); the call does not synchronise.
void grouped_attention_forward(float* out, const float* q, const float* k, const float* v, const float* key_mask,
                               int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale,
                               void* stream = nullptr);

void grouped_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, const float* key_mask, int64_t N, int64_t H, int64_t Tq, int64_t Tk,
                                int64_t d, float scale, void* stream = nullptr);

}  // namespace cuda
}  // namespace qgs
