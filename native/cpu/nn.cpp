// CPU neural-network kernels (see qgs/nn.h). Rows are independent, so each kernel is a parallel_for
// over rows (or over [outer, inner] lines) with a SIMD-cloned per-row body; reductions across rows
// (LayerNorm dw/db, loss sums) use fixed blocks with float64 partials so results do not depend on
// the thread count.
#include "qgs/nn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "qgs/common.h"
#include "qgs/parallel.h"
#include "layer_norm_row.h"

namespace qgs::cpu {

namespace {

int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_item)); }

void check_dims(const char* op, int64_t a, int64_t b, int64_t c) {
  QGS_REQUIRE(a >= 0 && b >= 0 && c >= 0, std::string(op) + ": sizes must be non-negative, got " + std::to_string(a) + ", " +
                                              std::to_string(b) + ", " + std::to_string(c));
}

// ---- softmax along a contiguous row ----
QGS_SIMD_CLONES void softmax_row(float* QGS_RESTRICT y, const float* QGS_RESTRICT x, int64_t n, bool log) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  // A row that is entirely -inf has no distribution: it yields NaN, as in PyTorch.
  float s = 0.f;
  if (log) {
    for (int64_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
    float lse = m + std::log(s);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - lse;
  } else {
    for (int64_t i = 0; i < n; ++i) {
      float e = std::exp(x[i] - m);
      y[i] = e;
      s += e;
    }
    float inv = 1.f / s;
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

QGS_SIMD_CLONES void softmax_row_backward(float* QGS_RESTRICT dx, const float* QGS_RESTRICT y,
                                          const float* QGS_RESTRICT dy, int64_t n, bool log) {
  float s = 0.f;
  if (log) {
    for (int64_t i = 0; i < n; ++i) s += dy[i];
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] - std::exp(y[i]) * s;
  } else {
    for (int64_t i = 0; i < n; ++i) s += dy[i] * y[i];
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (dy[i] - s);
  }
}

// Strided line [dim] with stride `inner`, gathered into a contiguous scratch row.
template <typename F>
void for_each_line(int64_t outer, int64_t dim, int64_t inner, F&& fn) {
  if (outer * inner == 0 || dim == 0) return;
  parallel_for(outer * inner, grain_for(dim), [&](int64_t l0, int64_t l1) {
    std::vector<float> scratch(static_cast<size_t>(inner == 1 ? 0 : dim * 3));
    for (int64_t l = l0; l < l1; ++l) {
      int64_t o = l / inner, in = l % inner;
      fn(o * dim * inner + in, scratch.data());
    }
  });
}

void gather_line(float* dst, const float* src, int64_t dim, int64_t stride) {
  for (int64_t i = 0; i < dim; ++i) dst[i] = src[i * stride];
}
void scatter_line(float* dst, const float* src, int64_t dim, int64_t stride) {
  for (int64_t i = 0; i < dim; ++i) dst[i * stride] = src[i];
}

}  // namespace

void softmax_forward(float* y, const float* x, int64_t outer, int64_t dim, int64_t inner, bool log) {
  check_dims("softmax", outer, dim, inner);
  for_each_line(outer, dim, inner, [&](int64_t base, float* s) {
    if (inner == 1) {
      softmax_row(y + base, x + base, dim, log);
    } else {
      gather_line(s, x + base, dim, inner);
      softmax_row(s + dim, s, dim, log);
      scatter_line(y + base, s + dim, dim, inner);
    }
  });
}

void softmax_backward(float* dx, const float* y, const float* dy, int64_t outer, int64_t dim, int64_t inner, bool log) {
  check_dims("softmax backward", outer, dim, inner);
  for_each_line(outer, dim, inner, [&](int64_t base, float* s) {
    if (inner == 1) {
      softmax_row_backward(dx + base, y + base, dy + base, dim, log);
    } else {
      gather_line(s, y + base, dim, inner);
      gather_line(s + dim, dy + base, dim, inner);
      softmax_row_backward(s + 2 * dim, s, s + dim, dim, log);
      scatter_line(dx + base, s + 2 * dim, dim, inner);
    }
  });
}

// ---- LayerNorm ----
// Not in the anonymous namespace: the fused Linear HSTU step (linear_hstu_step.cpp) normalises its
// rows with it too (declared in layer_norm_row.h).
QGS_SIMD_CLONES void ln_row(float* QGS_RESTRICT y, float* mean_out, float* rstd_out, const float* QGS_RESTRICT x,
                            const float* QGS_RESTRICT w, const float* QGS_RESTRICT b, int64_t n, float eps) {
  // Two passes in float64: the variance of large-mean rows stays accurate. The sums are vector
  // reductions (omp simd): as plain loops each was one chain of dependent double adds, ~4 cycles per
  // element (a [1000, 32] LayerNorm took 107 µs).
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  double mu = s / static_cast<double>(n);
  double v = 0;
#pragma omp simd reduction(+ : v)
  for (int64_t i = 0; i < n; ++i) {
    double d = x[i] - mu;
    v += d * d;
  }
  v /= static_cast<double>(n);
  float rs = static_cast<float>(1.0 / std::sqrt(v + eps));
  float m = static_cast<float>(mu);
  *mean_out = m;
  *rstd_out = rs;
  // One loop per affine case, so none tests a pointer per element.
  if (w && b) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * rs * w[i] + b[i];
  } else if (w) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * rs * w[i];
  } else if (b) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * rs + b[i];
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * rs;
  }
}

namespace {

QGS_SIMD_CLONES void ln_row_backward(float* QGS_RESTRICT dx, double* QGS_RESTRICT dw, double* QGS_RESTRICT db,
                                     const float* QGS_RESTRICT dy, const float* QGS_RESTRICT x, float m, float rs,
                                     const float* QGS_RESTRICT w, int64_t n) {
  // g = dy * w is formed in float64, where the product of two floats is exact: both passes then see
  // the same g (float products may be FMA-contracted in one pass and rounded in the other, which
  // leaves noise where the exact gradient cancels to 0, e.g. a single-column row).
  // Vector reductions and one loop per optional output, as in ln_row.
  double a = 0, c = 0;  // sums of dxhat and dxhat * xhat
  if (w) {
#pragma omp simd reduction(+ : a, c)
    for (int64_t i = 0; i < n; ++i) {
      double h = static_cast<double>(x[i] - m) * rs;
      double g = static_cast<double>(dy[i]) * w[i];
      a += g;
      c += g * h;
    }
  } else {
#pragma omp simd reduction(+ : a, c)
    for (int64_t i = 0; i < n; ++i) {
      double h = static_cast<double>(x[i] - m) * rs;
      double g = static_cast<double>(dy[i]);
      a += g;
      c += g * h;
    }
  }
  if (dw) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dw[i] += static_cast<double>(dy[i]) * (static_cast<double>(x[i] - m) * rs);
  }
  if (db) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) db[i] += dy[i];
  }
  a /= static_cast<double>(n);
  c /= static_cast<double>(n);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    double h = static_cast<double>(x[i] - m) * rs;
    double g = static_cast<double>(dy[i]) * (w ? w[i] : 1.f);
    dx[i] = static_cast<float>(rs * (g - a - h * c));
  }
}
}  // namespace

void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t rows,
                        int64_t cols, float eps) {
  check_dims("layerNorm", rows, cols, 0);
  QGS_REQUIRE(cols > 0 || rows == 0, "layerNorm: normalised axis must not be empty");
  QGS_REQUIRE(eps > 0.f, "layerNorm: eps: expected > 0, got " + std::to_string(eps));
  parallel_for(rows, grain_for(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) ln_row(y + r * cols, mean + r, rstd + r, x + r * cols, w, b, cols, eps);
  });
}

void layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* w, int64_t rows, int64_t cols) {
  check_dims("layerNorm backward", rows, cols, 0);
  if (cols == 0) return;
  // Fixed row blocks with float64 partials for dw/db: deterministic regardless of thread count.
  const int64_t block = std::max<int64_t>(8, 65536 / cols);
  int64_t nblocks = std::max<int64_t>(1, (rows + block - 1) / block);
  bool need_params = dw != nullptr || db != nullptr;
  std::vector<double> pw(need_params && dw ? static_cast<size_t>(nblocks * cols) : 0, 0.0);
  std::vector<double> pb(need_params && db ? static_cast<size_t>(nblocks * cols) : 0, 0.0);
  parallel_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi) {
      double* w_part = dw ? pw.data() + bi * cols : nullptr;
      double* b_part = db ? pb.data() + bi * cols : nullptr;
      int64_t r1 = std::min(rows, (bi + 1) * block);
      for (int64_t r = bi * block; r < r1; ++r)
        ln_row_backward(dx + r * cols, w_part, b_part, dy + r * cols, x + r * cols, mean[r], rstd[r], w, cols);
    }
  });
  for (int64_t j = 0; j < cols; ++j) {
    double sw = 0, sb = 0;
    for (int64_t bi = 0; bi < nblocks; ++bi) {
      if (dw) sw += pw[static_cast<size_t>(bi * cols + j)];
      if (db) sb += pb[static_cast<size_t>(bi * cols + j)];
    }
    if (dw) dw[j] = static_cast<float>(sw);
    if (db) db[j] = static_cast<float>(sb);
  }
}

// ---- embedding ----
void embedding_forward(float* out, const float* weight, const int32_t* idx, int64_t n, int64_t vocab, int64_t dim) {
  check_dims("embedding", n, vocab, dim);
  // Validate every index before writing anything, so a bad batch leaves no half-written output.
  for (int64_t i = 0; i < n; ++i) {
    if (idx[i] < 0 || idx[i] >= vocab) {
      throw KernelError("embedding: indices: expected values in [0, " + std::to_string(vocab) + "), got " +
                        std::to_string(idx[i]) + " at flat position " + std::to_string(i));
    }
  }
  parallel_for(n, grain_for(dim), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(out + i * dim, weight + static_cast<int64_t>(idx[i]) * dim, static_cast<size_t>(dim) * sizeof(float));
  });
}

void index_add_rows(float* out, const float* src, const int32_t* idx, int64_t n, int64_t rows, int64_t dim) {
  check_dims("index_add_rows", n, rows, dim);
  for (int64_t i = 0; i < n; ++i) {
    if (idx[i] < 0 || idx[i] >= rows) {
      throw KernelError("embedding backward: indices: expected values in [0, " + std::to_string(rows) + "), got " +
                        std::to_string(idx[i]) + " at flat position " + std::to_string(i));
    }
  }
  std::memset(out, 0, static_cast<size_t>(rows * dim) * sizeof(float));
  if (n == 0 || dim == 0) return;
  // Duplicate indices would race if we split over i, so split over column blocks instead: each task
  // owns a column range of every row. The adds for one element happen in index order: deterministic.
  const int64_t cb = 16;
  int64_t nblk = (dim + cb - 1) / cb;
  parallel_for(nblk, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, n)), [&](int64_t b0, int64_t b1) {
    int64_t c0 = b0 * cb, c1 = std::min(dim, b1 * cb);
    for (int64_t i = 0; i < n; ++i) {
      float* o = out + static_cast<int64_t>(idx[i]) * dim;
      const float* s = src + i * dim;
      for (int64_t c = c0; c < c1; ++c) o[c] += s[c];
    }
  });
}

// ---- L2 normalise ----
void l2_normalize_forward(float* y, float* norm, const float* x, int64_t outer, int64_t dim, int64_t inner, float eps) {
  check_dims("l2Normalize", outer, dim, inner);
  QGS_REQUIRE(eps > 0.f, "l2Normalize: eps: expected > 0, got " + std::to_string(eps));
  if (outer * inner == 0) return;
  parallel_for(outer * inner, grain_for(dim), [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l) {
      int64_t base = (l / inner) * dim * inner + (l % inner);
      double s = 0;
      for (int64_t i = 0; i < dim; ++i) {
        double v = x[base + i * inner];
        s += v * v;
      }
      float nr = static_cast<float>(std::sqrt(s));
      norm[l] = nr;
      float inv = 1.f / std::max(nr, eps);
      for (int64_t i = 0; i < dim; ++i) y[base + i * inner] = x[base + i * inner] * inv;
    }
  });
}

void l2_normalize_backward(float* dx, const float* dy, const float* y, const float* norm, int64_t outer, int64_t dim,
                           int64_t inner, float eps) {
  check_dims("l2Normalize backward", outer, dim, inner);
  if (outer * inner == 0) return;
  parallel_for(outer * inner, grain_for(dim), [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l) {
      int64_t base = (l / inner) * dim * inner + (l % inner);
      float nr = norm[l];
      if (nr > eps) {
        // y = x/|x|: dx = (dy - y <dy, y>) / |x|
        double s = 0;
        for (int64_t i = 0; i < dim; ++i) s += static_cast<double>(dy[base + i * inner]) * y[base + i * inner];
        float fs = static_cast<float>(s), inv = 1.f / nr;
        for (int64_t i = 0; i < dim; ++i) dx[base + i * inner] = (dy[base + i * inner] - y[base + i * inner] * fs) * inv;
      } else {
        // Clamped branch: y = x / eps is linear in x.
        float inv = 1.f / eps;
        for (int64_t i = 0; i < dim; ++i) dx[base + i * inner] = dy[base + i * inner] * inv;
      }
    }
  });
}

// ---- losses ----
namespace {
// Sum of f(i) over [0, n) with fixed blocks and float64 partials (thread-count independent).
template <typename F>
double blocked_sum(int64_t n, int64_t block, F&& f) {
  if (n <= 0) return 0.0;
  int64_t nb = (n + block - 1) / block;
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
  parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi) part[static_cast<size_t>(bi)] = f(bi * block, std::min(n, (bi + 1) * block));
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

QGS_SIMD_CLONES double bce_range(float* QGS_RESTRICT loss, float* QGS_RESTRICT dx, const float* QGS_RESTRICT x,
                                 const float* QGS_RESTRICT t, const float* QGS_RESTRICT w, int64_t wn, int64_t i0,
                                 int64_t i1) {
  double s = 0;
  for (int64_t i = i0; i < i1; ++i) {
    float xi = x[i], ti = t[i];
    float wi = w ? w[i % wn] : 1.f;
    float e = std::exp(-std::fabs(xi));
    float l = wi * (std::max(xi, 0.f) - xi * ti + std::log1p(e));
    // sigmoid from the same exp: stable for both signs.
    float sig = xi >= 0.f ? 1.f / (1.f + e) : e / (1.f + e);
    if (loss) loss[i] = l;
    dx[i] = wi * (sig - ti);
    s += l;
  }
  return s;
}
}  // namespace

double bce_with_logits(float* loss, float* dx, const float* x, const float* t, const float* w, int64_t wn, int64_t n) {
  QGS_REQUIRE(n >= 0, "bceWithLogits: size must be non-negative");
  QGS_REQUIRE(w == nullptr || wn >= 1, "bceWithLogits: weight must not be empty");
  return blocked_sum(n, 4096, [&](int64_t i0, int64_t i1) { return bce_range(loss, dx, x, t, w, wn, i0, i1); });
}

int64_t cross_entropy_forward(float* loss, float* dx, double* sum, const float* logits, const int32_t* targets, int64_t n,
                              int64_t c, int64_t ignore_index, bool has_ignore) {
  check_dims("crossEntropy", n, c, 0);
  QGS_REQUIRE(c >= 1 || n == 0, "crossEntropy: logits: expected at least one class");
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    int32_t t = targets ? targets[i] : 0;
    if (has_ignore && t == ignore_index) continue;
    if (t < 0 || t >= c) {
      throw KernelError("crossEntropy: targets: expected class ids in [0, " + std::to_string(c) + ")" +
                        (has_ignore ? " or ignoreIndex " + std::to_string(ignore_index) : std::string()) + ", got " +
                        std::to_string(t) + " at row " + std::to_string(i));
    }
    ++count;
  }
  *sum = blocked_sum(n, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, c)), [&](int64_t r0, int64_t r1) {
    double s = 0;
    for (int64_t r = r0; r < r1; ++r) {
      int32_t t = targets ? targets[r] : 0;
      float* d = dx + r * c;
      if (has_ignore && t == ignore_index) {
        loss[r] = 0.f;
        std::memset(d, 0, static_cast<size_t>(c) * sizeof(float));
        continue;
      }
      const float* x = logits + r * c;
      softmax_row(d, x, c, false);  // probabilities
      // loss = lse - x_t computed from the max-shifted sum (not log(p_t), which underflows).
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < c; ++j) m = std::max(m, x[j]);
      double se = 0;
      for (int64_t j = 0; j < c; ++j) se += std::exp(static_cast<double>(x[j]) - m);
      float l = static_cast<float>(m + std::log(se) - x[t]);
      loss[r] = l;
      // p_t - 1 = -sum_{j != t} p_j: the sum keeps full relative precision when p_t is close to 1
      // (a confident, sharp-temperature row), where 1 - p_t in float would cancel.
      double rest = 0;
      for (int64_t j = 0; j < c; ++j)
        if (j != t) rest += d[j];
      d[t] = static_cast<float>(-rest);
      s += l;
    }
    return s;
  });
  return count;
}

void row_dot(float* out, const float* a, const float* b, int64_t n, int64_t d, float scale) {
  check_dims("row_dot", n, d, 0);
  parallel_for(n, grain_for(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float s = 0.f;
      const float *x = a + r * d, *y = b + r * d;
      for (int64_t j = 0; j < d; ++j) s += x[j] * y[j];
      out[r] = s * scale;
    }
  });
}

void row_dots_many(float* out, const float* q, const float* neg, int64_t n, int64_t k, int64_t d, float scale) {
  check_dims("row_dots_many", n, k, d);
  parallel_for(n, grain_for(k * d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = q + r * d;
      for (int64_t j = 0; j < k; ++j) {
        const float* y = neg + (r * k + j) * d;
        float s = 0.f;
        for (int64_t e = 0; e < d; ++e) s += x[e] * y[e];
        out[r * k + j] = s * scale;
      }
    }
  });
}

void concat_pos_neg(float* logits, const float* pos, const float* neg, int64_t n, int64_t k) {
  parallel_for(n, grain_for(k + 1), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      logits[r * (k + 1)] = pos[r];
      std::memcpy(logits + r * (k + 1) + 1, neg + r * k, static_cast<size_t>(k) * sizeof(float));
    }
  });
}

void split_pos_neg(float* g0, float* gneg, const float* g, int64_t n, int64_t k) {
  parallel_for(n, grain_for(k + 1), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      g0[r] = g[r * (k + 1)];
      std::memcpy(gneg + r * k, g + r * (k + 1) + 1, static_cast<size_t>(k) * sizeof(float));
    }
  });
}

void infonce_rows_backward(float* dq, float* dp, float* dneg, const float* g0, const float* gneg, const float* q,
                           const float* p, const float* neg, int64_t n, int64_t k, int64_t d) {
  check_dims("infoNCE backward", n, k, d);
  parallel_for(n, grain_for(k * d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* qr = q + r * d;
      if (dq) {
        float* o = dq + r * d;
        for (int64_t e = 0; e < d; ++e) o[e] = g0[r] * p[r * d + e];
        for (int64_t j = 0; j < k; ++j) {
          float gj = gneg[r * k + j];
          const float* nj = neg + (r * k + j) * d;
          for (int64_t e = 0; e < d; ++e) o[e] += gj * nj[e];
        }
      }
      if (dp)
        for (int64_t e = 0; e < d; ++e) dp[r * d + e] = g0[r] * qr[e];
      if (dneg)
        for (int64_t j = 0; j < k; ++j) {
          float gj = gneg[r * k + j];
          float* o = dneg + (r * k + j) * d;
          for (int64_t e = 0; e < d; ++e) o[e] = gj * qr[e];
        }
    }
  });
}

void scale_by(float* out, const float* src, const float* g, bool g_scalar, int64_t n, float alpha) {
  QGS_REQUIRE(n >= 0, "scale_by: size must be non-negative");
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    if (g_scalar) {
      float s = alpha * g[0];
      for (int64_t i = i0; i < i1; ++i) out[i] = src[i] * s;
    } else {
      for (int64_t i = i0; i < i1; ++i) out[i] = alpha * src[i] * g[i];
    }
  });
}

void scale_rows(float* out, const float* src, const float* g, int64_t rows, int64_t cols, float alpha) {
  check_dims("scale_rows", rows, cols, 0);
  parallel_for(rows, grain_for(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float s = alpha * (g ? g[r] : 1.f);
      for (int64_t j = 0; j < cols; ++j) out[r * cols + j] = s * src[r * cols + j];
    }
  });
}

}  // namespace qgs::cpu
