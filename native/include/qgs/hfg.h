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

#include "qgs/common.h"

namespace qgs {

// Tokens per attention set: HFG runs over G + 2 tokens with G ≈ 4..16, so 64 is ample and lets the
// kernels keep a row's scores in registers / a small fixed buffer.
constexpr int64_t kHfgMaxKeys = 64;
// Per-head width: lets the CUDA kernel hold a query row in at most 4 registers per lane.
constexpr int64_t kHfgMaxHeadDim = 128;

// Throws KernelError when the sizes are outside the limits above.
void hfg_check_sizes(int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d);

namespace cpu {

void grouped_attention_forward(float* out, const float* q, const float* k, const float* v, const float* key_mask,
                               int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale);

void grouped_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, const float* key_mask, int64_t N, int64_t H, int64_t Tq, int64_t Tk,
                                int64_t d, float scale);

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
