// Quadratic HSTU pointwise attention (DESIGN.md §4.1, research/papers.md §2): per sequence and head,
//   A_ij = SiLU(α q_i·k_j + bias_ij) · inv_n   for j ≤ i (causal, no softmax),   o_i = Σ_j A_ij v_j,
//   bias_ij = pos[min(i − j, P − 1)] (relative position, P = num_pos, optional)
//           + tw[min(bucket(ts_i − ts_j), NB − 1)] (log-bucketed time, NB = num_time, optional),
//   bucket(x) = floor(log(max(|x|, 1)) / time_div)   (HSTU: time_div = 0.301).
// The biases are shared by all heads (as in HSTU's relative attention bias). Layout and batching as
// in qgs/linrec.h: q,k [rows, H, dqk], v, out [rows, H, dv], padded (B·L rows with optional lengths;
// padding rows get 0 outputs and gradients) or packed (offsets[B+1]). Timestamps are int32 [rows]
// (differences are exact, unlike float32 epoch seconds).
#pragma once
#include <cstdint>

namespace qgs {

struct HstuConfig {
  int64_t batch = 0;
  int64_t max_len = 0;               // padded form L (ignored for packed)
  int64_t heads = 0;
  int64_t dqk = 0, dv = 0;
  const int32_t* offsets = nullptr;  // packed form (B+1)
  const int32_t* lengths = nullptr;  // padded form (B), null = all L
  float alpha = 1.f;                 // scale on q·k
  float inv_n = 1.f;                 // the constant 1/n normaliser
  int64_t num_pos = 0;               // size of the relative position table (0 = no position bias)
  int64_t num_time = 0;              // size of the time bucket table (0 = no time bias)
  float time_div = 0.301f;
};

// Rows implied by the config; validates it (KernelError naming the bad argument).
int64_t hstu_rows(const HstuConfig& cfg);

namespace cpu {
// out [rows, H, dv]; pos_bias [num_pos] or null; time_bias [num_time] or null; ts [rows] (int32) when
// num_time > 0.
void hstu_forward(float* out, const float* q, const float* k, const float* v, const float* pos_bias,
                  const float* time_bias, const int32_t* ts, const HstuConfig& cfg);
// Gradients of <out, dout>; any output may be null (not wanted).
void hstu_backward(float* dq, float* dk, float* dv, float* dpos, float* dtime, const float* q, const float* k,
                   const float* v, const float* pos_bias, const float* time_bias, const int32_t* ts, const float* dout,
                   const HstuConfig& cfg);
}  // namespace cpu

#ifdef QGS_WITH_CUDA
namespace cuda {
// Same contracts on device pointers; cfg.offsets / cfg.lengths are host arrays.
void hstu_forward(float* out, const float* q, const float* k, const float* v, const float* pos_bias,
                  const float* time_bias, const int32_t* ts, const HstuConfig& cfg);
void hstu_backward(float* dq, float* dk, float* dv, float* dpos, float* dtime, const float* q, const float* k,
                   const float* v, const float* pos_bias, const float* time_bias, const int32_t* ts, const float* dout,
                   const HstuConfig& cfg);
}  // namespace cuda
#endif

}  // namespace qgs
