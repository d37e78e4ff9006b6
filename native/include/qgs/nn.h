// Neural-network kernels: softmax / log-softmax, LayerNorm, embedding gather + row scatter-add, and
// the fused losses (L2 normalise, BCE-with-logits, cross-entropy, InfoNCE helpers). Outputs first,
// then inputs, then sizes. Same signatures in qgs::cpu and qgs::cuda (device pointers there).
// Axis-wise kernels view a tensor as [outer, dim, inner] and work along `dim` (inner == 1 is the
// contiguous last-axis case and takes the fast path).
#pragma once
#include <cstdint>

#define QGS_NN_KERNELS                                                                                                  \
  /* y = softmax(x) (or log_softmax when log) along dim. */                                                            \
  void softmax_forward(float* y, const float* x, int64_t outer, int64_t dim, int64_t inner, bool log);                 \
  /* softmax: dx = y (dy - <dy, y>);  log_softmax: dx = dy - exp(y) sum(dy). */                                      \
  void softmax_backward(float* dx, const float* y, const float* dy, int64_t outer, int64_t dim, int64_t inner,          \
                        bool log);                                                                                     \
  /* LayerNorm over the last axis of [rows, cols]; w, b may be null; mean, rstd [rows] are saved. */                  \
  void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,           \
                          int64_t rows, int64_t cols, float eps);                                                      \
  /* dx always; dw, db only when non-null (w may be null: treated as ones). */                                         \
  void layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* mean,        \
                           const float* rstd, const float* w, int64_t rows, int64_t cols);                             \
  /* out[i, :] = weight[idx[i], :]; throws KernelError naming the position when idx[i] is outside [0, vocab). */       \
  void embedding_forward(float* out, const float* weight, const int32_t* idx, int64_t n, int64_t vocab, int64_t dim);  \
  /* out [rows, dim] = 0, then out[idx[i], :] += src[i, :] (dense embedding gradient; row-sparse merge). */           \
  void index_add_rows(float* out, const float* src, const int32_t* idx, int64_t n, int64_t rows, int64_t dim);         \
  /* y = x / max(||x||_2, eps) along dim; norm [outer*inner] = ||x|| is saved. */                                     \
  void l2_normalize_forward(float* y, float* norm, const float* x, int64_t outer, int64_t dim, int64_t inner,          \
                            float eps);                                                                                \
  void l2_normalize_backward(float* dx, const float* dy, const float* y, const float* norm, int64_t outer,             \
                             int64_t dim, int64_t inner, float eps);                                                   \
  /* Elementwise w * (max(x,0) - x t + log1p(exp(-|x|))) into loss (when non-null), its gradient                     \
     w (sigmoid(x) - t) into dx; w (null = 1) is read as w[i % wn]. Returns the sum of the losses. */                 \
  double bce_with_logits(float* loss, float* dx, const float* x, const float* t, const float* w, int64_t wn,           \
                         int64_t n);                                                                                   \
  /* Rows of logits [n, c]: loss[i] = logsumexp(x_i) - x_i[t_i], dx[i] = softmax(x_i) - onehot(t_i). targets null =  \
     class 0 for every row (InfoNCE). Rows whose target equals ignore_index (when has_ignore) get loss 0 and dx 0.    \
     Throws on a target outside [0, c). Returns the number of rows not ignored; *sum gets the sum of losses. */       \
  int64_t cross_entropy_forward(float* loss, float* dx, double* sum, const float* logits, const int32_t* targets,      \
                                int64_t n, int64_t c, int64_t ignore_index, bool has_ignore);                          \
  /* out[i] = scale <a_i, b_i> for rows of [n, d]. */                                                                  \
  void row_dot(float* out, const float* a, const float* b, int64_t n, int64_t d, float scale);                         \
  /* out[i, j] = scale <q_i, neg[i, j]> for q [n, d], neg [n, k, d]. */                                               \
  void row_dots_many(float* out, const float* q, const float* neg, int64_t n, int64_t k, int64_t d, float scale);       \
  /* logits [n, 1+k] = [pos | neg]. */                                                                                 \
  void concat_pos_neg(float* logits, const float* pos, const float* neg, int64_t n, int64_t k);                       \
  /* g0 [n] = G[:, 0], gneg [n, k] = G[:, 1:]. */                                                                      \
  void split_pos_neg(float* g0, float* gneg, const float* g, int64_t n, int64_t k);                                    \
  /* dq = g0 ⊙ p + Σ_j gneg[:, j] neg[:, j]; dp = g0 ⊙ q (when non-null); dneg[i, j] = gneg[i, j] q_i (non-null). */ \
  void infonce_rows_backward(float* dq, float* dp, float* dneg, const float* g0, const float* gneg, const float* q,     \
                             const float* p, const float* neg, int64_t n, int64_t k, int64_t d);                       \
  /* out[i] = alpha * src[i] * (g_scalar ? g[0] : g[i]) (backward of reduced / elementwise losses). */                 \
  void scale_by(float* out, const float* src, const float* g, bool g_scalar, int64_t n, float alpha);                  \
  /* out[r, :] = alpha * g[r] * src[r, :] (g may be null: 1). */                                                      \
  void scale_rows(float* out, const float* src, const float* g, int64_t rows, int64_t cols, float alpha);

namespace qgs::cpu {
QGS_NN_KERNELS
}  // namespace qgs::cpu

namespace qgs::cuda {
QGS_NN_KERNELS
}  // namespace qgs::cuda
