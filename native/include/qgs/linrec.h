// Causal linear recurrence (Linear HSTU core, DESIGN.md §4.1). Per sequence b and head h, with a state
// S ∈ R^{dk×dv}:   S_t = γ_t S_{t−1} + k_tᵀ v_t,   o_t = c_t · q_t S_t.
//
// Layout: rows of q,k [rows, H, dk] and v, out [rows, H, dv] (row-major). A batch is either
//  - padded: rows = B·L, sequence b occupies rows [b·L, b·L + len_b) with len_b = lengths[b] (or L
//    when lengths is null); rows past len_b are padding: their outputs and gradients are written as 0
//    and they do not touch the state (identity steps);
//  - packed (jagged): offsets[B+1] non-decreasing, offsets[0] = 0, rows = offsets[B]; empty sequences
//    are allowed.
// Decay γ: none (γ = 1), per head [H], or per step [rows, H]; values must lie in [0, 1]. Internally the
// decays are used in log space (log γ clamped at log(FLT_MIN)), so γ = 0 and long runs of tiny decays
// never produce NaN/Inf.
// Scale c_t = scale (constant) or, with inv_t, scale / t where t = 1, 2, ... is the position inside its
// sequence.
// Initial state [B, H, dk, dv] (null = zeros); final state out [B, H, dk, dv] (null = not wanted).
#pragma once
#include <cstdint>

namespace qgs {

enum class LinrecDecay : int { None = 0, PerHead = 1, PerStep = 2 };

struct LinrecConfig {
  int64_t batch = 0;                // B
  int64_t max_len = 0;              // L for the padded form (ignored for packed)
  int64_t heads = 0;                // H
  int64_t dk = 0, dv = 0;           // head dims
  const int32_t* offsets = nullptr; // packed form: B+1 row offsets (null = padded form)
  const int32_t* lengths = nullptr; // padded form: B lengths in [0, L] (null = all L)
  LinrecDecay decay = LinrecDecay::None;
  float scale = 1.f;
  bool inv_t = false;               // c_t = scale / t
  int64_t chunk = 64;               // chunk length of the chunked algorithm (1..1024)
};

// Total rows of q/k/v implied by the config (B·L padded, offsets[B] packed). Validates the config and
// throws KernelError naming the bad argument.
int64_t linrec_rows(const LinrecConfig& cfg);

namespace cpu {

// out [rows, H, dv]; state_out [B, H, dk, dv] or null; decay per cfg.decay (null when None);
// init_state [B, H, dk, dv] or null.
void linrec_forward(float* out, float* state_out, const float* q, const float* k, const float* v,
                    const float* decay, const float* init_state, const LinrecConfig& cfg);

// Gradients of <out, dout> + <state_out, dstate_out>. Any of dq, dk, dv, ddecay, dinit may be null
// (not wanted). ddecay has the decay's shape ([H] per head, [rows, H] per step). dout and dstate_out
// may be null (= 0). Backward recomputes chunk states (nothing is saved by the forward).
void linrec_backward(float* dq, float* dk, float* dv, float* ddecay, float* dinit, const float* q, const float* k,
                     const float* v, const float* decay, const float* init_state, const float* dout,
                     const float* dstate_out, const LinrecConfig& cfg);

}  // namespace cpu

#ifdef QGS_WITH_CUDA
namespace cuda {
// Same contracts; all pointers are device pointers except cfg.offsets / cfg.lengths, which are host
// arrays (copied to the device by the kernel wrapper).
void linrec_forward(float* out, float* state_out, const float* q, const float* k, const float* v,
                    const float* decay, const float* init_state, const LinrecConfig& cfg);
void linrec_backward(float* dq, float* dk, float* dv, float* ddecay, float* dinit, const float* q, const float* k,
                     const float* v, const float* decay, const float* init_state, const float* dout,
                     const float* dstate_out, const LinrecConfig& cfg);
}  // namespace cuda
#endif

}  // namespace qgs
