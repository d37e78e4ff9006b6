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

void linear_hstu_step_check(const LinearHstuStepWeights& w, const LinearHstuStepSizes& s, bool write);

namespace cpu {
// out [R, D]; state_out [R, H, dk, dv] (required when write, ignored otherwise); x [R, D];
// state [R, H, dk, dv].
void linear_hstu_step_forward(float* out, float* state_out, const float* x, const float* state,
                              const LinearHstuStepWeights& w, const LinearHstuStepSizes& s, bool write);
}  // namespace cpu

}  // namespace qgs
