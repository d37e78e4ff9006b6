// Optimiser update kernels (memory bound: one fused pass per parameter, no temporaries).
// Same signatures in qgs::cpu and qgs::cuda. bc1 = 1 - beta1^t and bc2 = 1 - beta2^t are computed
// by the caller in float64 (step counts reach 10^6, where float32 powers lose precision).
#pragma once
#include <cstdint>

#define QGS_OPTIM_KERNELS                                                                                             \
  /* AdamW (decoupled weight decay, as PyTorch): p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;       \
     p -= lr (m / bc1) / (sqrt(v / bc2) + eps). */                                                                  \
  void adamw_step(float* p, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2,        \
                  float eps, float weight_decay, float bc1, float bc2);                                              \
  /* Lazy sparse Adam over rows[r] (unique, in [0, vocab)) of a [vocab, dim] table: only those rows of p, m, v        \
     change (g is [nrows, dim]). Throws on a duplicate or out-of-range row. */                                       \
  void sparse_adam_step(float* p, float* m, float* v, const int32_t* rows, const float* g, int64_t nrows,             \
                        int64_t vocab, int64_t dim, float lr, float beta1, float beta2, float eps, float weight_decay, \
                        float bc1, float bc2);                                                                       \
  /* Sparse Adagrad: acc[row] += g^2; p[row] -= lr g / (sqrt(acc[row]) + eps), after p[row] *= 1 - lr wd. */           \
  void sparse_adagrad_step(float* p, float* acc, const int32_t* rows, const float* g, int64_t nrows, int64_t vocab,    \
                           int64_t dim, float lr, float eps, float weight_decay);                                     \
  /* Sum of x[i]^2 in float64 (global gradient norm). */                                                              \
  double sum_squares(const float* x, int64_t n);                                                                      \
  /* x *= s in place (gradient clipping). */                                                                          \
  void scale_inplace(float* x, int64_t n, float s);

namespace qgs::cpu {
QGS_OPTIM_KERNELS
}  // namespace qgs::cpu

namespace qgs::cuda {
QGS_OPTIM_KERNELS
}  // namespace qgs::cuda
