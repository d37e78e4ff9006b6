// One token per sequence through one Linear HSTU block against its cached recurrent state: the
// serving step of the QGS encoder (DESIGN.md §4.1, §6), fused into one call. For every row r < R
// (x [R, D], state [R, H, dk, dv]):
//   y  = LNin(x_r);  p = SiLU(Wp y + bp) split into u [H·dv] | v [H, dv] | q [H, dk] | k [H, dk]
//   write:     S'_h = γ_h S_h + k_hᵀ v_h   (state_out written)
//   read-only: S'_h = S_h                  (a read-out token: v is not used, decay is 1; state_out may be null)
//   o_h = q_h S'_h  [dv];  out_r = x_r + Wo (LNout(o) ⊙ u) + bo
// which is exactly nn's EncoderBlock.step (LayerNorm → SiLU projection → recurrence step with scale 1
// → LayerNorm → gate → output projection → residual; dropout is the identity at inference).
// Weights in PyTorch layout (W [out, in]): Wp [H·(2dv + 2dk), D], Wo [D, H·dv]. Biases and LayerNorm
// affine parameters may be null (0 / identity). γ [H] in [0, 1] (only read when writing).
// state_out may alias state (each element is read once before it is written). Forward only, no
// autograd state: inference. Bad sizes or arguments throw qgs::KernelError naming them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "qgs/common.h"

namespace qgs {

struct LinearHstuStepWeights {
  const float* ln_in_w = nullptr;
  const float* ln_in_b = nullptr;
  float eps_in = 1e-5f;
  const float* proj_w = nullptr;  // [H·(2dv + 2dk), D]
  const float* proj_b = nullptr;  // [H·(2dv + 2dk)]
  const float* ln_out_w = nullptr;
  const float* ln_out_b = nullptr;
  float eps_out = 1e-5f;
  const float* out_w = nullptr;  // [D, H·dv]
  const float* out_b = nullptr;  // [D]
  const float* decay = nullptr;  // [H], γ in [0, 1]; required when writing
};

struct LinearHstuStepSizes {
  int64_t R = 0;  // rows (sequences), one token each
  int64_t D = 0;  // model width
  int64_t H = 0;  // heads
  int64_t dk = 0, dv = 0;
};

// The block's sizes and weights (both forms): D, H, dk, dv in range, the projections present, eps
// positive and finite, and with need_decay the decays present and in [0, 1]. Messages start with op.
void linear_hstu_weights_check(const std::string& op, const LinearHstuStepWeights& w, int64_t D, int64_t H, int64_t dk,
                               int64_t dv, bool need_decay);
void linear_hstu_step_check(const LinearHstuStepWeights& w, const LinearHstuStepSizes& s, bool write);

// Sequence form (inference): a packed jagged batch of T tokens, sequence b in rows
// [offsets[b], offsets[b+1]), through one block with the recurrence run token by token. For each
// sequence b and head h, S starts at state_in[b, h] (null = zeros) and for each of its tokens t:
//   a_t = w_t γ_h + (1 − w_t);   S ← a_t S + w_t k_tᵀ v_t;   o_t = q_t S
// with the write weight w_t = write[t] ∈ [0, 1] (null = every token writes) — exactly the composed
// block's per-step decay (write·γ + readOnly) and masked values (v·write), so a w = 0 token is a pure
// read-out. out_t = x_t + Wo (LNout(o_t) ⊙ u_t) + bo as in the step. out may be null: then only the
// final states are computed (the last layer of a cold encode), from the V and K rows of the
// projection alone. state_out [B, H, dk, dv] may be null (not wanted).
// Why token by token: at serving sizes (H·dk·dv = 2·64·16) one token's update and read are ~4k
// multiply-adds on a state that stays in L1, cheaper than the chunked algorithm's Q Kᵀ blocks.
struct LinearHstuSeqSizes {
  int64_t T = 0;  // tokens (rows of x)
  int64_t B = 0;  // sequences
  int64_t D = 0, H = 0, dk = 0, dv = 0;
  const int32_t* offsets = nullptr;  // [B + 1], offsets[0] = 0, non-decreasing, offsets[B] = T
};

void linear_hstu_seq_check(const LinearHstuStepWeights& w, const LinearHstuSeqSizes& s, const float* write);

// A whole Linear HSTU encoder for serving steps, its weights copied once (serving makes one per
// model, like the rank head's plan): one call embeds R pair tokens, runs them through every layer
// against their cached states and applies the final LayerNorm. Why: composed per layer from JS, a
// one-token step spent ~75% of its time in op dispatch, validation and temporaries (perf of
// QgsBackend.step), and the worker's garbage came mostly from there.
struct LinearHstuEncoderSizes {
  int64_t L = 0;  // layers
  int64_t D = 0, H = 0, dk = 0, dv = 0;
};

struct LinearHstuEncoderPlan;
struct LinearHstuEncoderPlanDeleter {
  void operator()(LinearHstuEncoderPlan* p) const;
};
using LinearHstuEncoderPlanPtr = std::unique_ptr<LinearHstuEncoderPlan, LinearHstuEncoderPlanDeleter>;

// layers[l] (l < L) as the step takes them, decays required (a plan both writes and reads); the final
// LayerNorm's affine parameters may be null (identity), final_eps positive. Everything is copied.
LinearHstuEncoderPlanPtr make_linear_hstu_encoder_plan(const LinearHstuStepWeights* layers, const LinearHstuEncoderSizes& s,
                                                       const float* final_w, const float* final_b, float final_eps);
LinearHstuEncoderSizes linear_hstu_encoder_plan_sizes(const LinearHstuEncoderPlan& plan);

// The token embedding a plan step reads: x_r = mean of term_table[terms[r·m + j]] over the j < m whose
// id is not pad_term (the zero vector when all are) + item_table[items[r]]. Tables are [rows, D].
struct PairTokenInputs {
  const int32_t* terms = nullptr;  // [R, m]
  int64_t m = 0;                   // terms per token, >= 1
  const int32_t* items = nullptr;  // [R]
  const float* term_table = nullptr;
  int64_t term_rows = 0;
  const float* item_table = nullptr;
  int64_t item_rows = 0;
  int32_t pad_term = 0;
};

namespace cpu {
// R rows, one token each; row r's state is states_in + r·L·H·dk·dv, layer-major ([L, H, dk, dv]).
// write: states_out [R, L·H·dk·dv] gets the updated states (may alias states_in); h_out [R, D] or null.
// read-only: the states are only read (states_out unused); h_out [R, D] required.
// h_out = final LayerNorm of the last layer's output. Ids out of range throw KernelError naming them.
void linear_hstu_encoder_plan_step(float* h_out, float* states_out, const float* states_in, const PairTokenInputs& in,
                                   const LinearHstuEncoderPlan& plan, int64_t R, bool write);

// The sequence form (a cold encode): T pair tokens (in.terms [T, m], in.items [T]) of B packed
// sequences (offsets [B + 1], as LinearHstuSeqSizes) with write weights write [T] (null = every token
// writes), each sequence starting from its state in states_in [B, L·H·dk·dv] (null = zeros) →
// the final states states_out [B, L·H·dk·dv] (layer-major per sequence): every layer but the last
// through linear_hstu_seq_forward with outputs, the last for its state only.
void linear_hstu_encoder_plan_encode(float* states_out, const float* states_in, const PairTokenInputs& in,
                                     const int32_t* offsets, int64_t B, const float* write, const LinearHstuEncoderPlan& plan,
                                     int64_t T);

// out [R, D]; state_out [R, H, dk, dv] (required when write, ignored otherwise); x [R, D];
// state [R, H, dk, dv].
void linear_hstu_step_forward(float* out, float* state_out, const float* x, const float* state,
                              const LinearHstuStepWeights& w, const LinearHstuStepSizes& s, bool write);

// out [T, D] or null; state_out [B, H, dk, dv] or null (not both null); x [T, D]; state_in
// [B, H, dk, dv] or null; write [T] or null.
void linear_hstu_seq_forward(float* out, float* state_out, const float* x, const float* state_in, const float* write,
                             const LinearHstuStepWeights& w, const LinearHstuSeqSizes& s);
}  // namespace cpu

}  // namespace qgs
