// CPU optimiser kernels (see qgs/optim.h): one fused, SIMD-cloned pass per parameter block.
#include "qgs/optim.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "qgs/common.h"
#include "qgs/parallel.h"

namespace qgs::cpu {

namespace {
QGS_SIMD_CLONES void adamw_range(float* QGS_RESTRICT p, float* QGS_RESTRICT m, float* QGS_RESTRICT v,
                                 const float* QGS_RESTRICT g, int64_t n, float lr, float b1, float b2, float eps,
                                 float decay, float inv_bc1, float inv_sqrt_bc2) {
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    // sqrt(v / bc2) = sqrt(v) / sqrt(bc2): one sqrt per element, no division by a tiny bc2.
    p[i] = p[i] * decay - lr * (mi * inv_bc1) / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

void check_rows(const char* op, const int32_t* rows, int64_t nrows, int64_t vocab) {
  std::vector<int32_t> s(rows, rows + nrows);
  std::sort(s.begin(), s.end());
  for (int64_t i = 0; i < nrows; ++i) {
    if (s[static_cast<size_t>(i)] < 0 || s[static_cast<size_t>(i)] >= vocab)
      throw KernelError(std::string(op) + ": rows: expected ids in [0, " + std::to_string(vocab) + "), got " +
                        std::to_string(s[static_cast<size_t>(i)]));
    if (i > 0 && s[static_cast<size_t>(i)] == s[static_cast<size_t>(i - 1)])
      throw KernelError(std::string(op) + ": rows: expected unique ids, got " + std::to_string(s[static_cast<size_t>(i)]) +
                        " twice");
  }
}

void check_hyper(const char* op, float lr, float eps) {
  QGS_REQUIRE(std::isfinite(lr) && lr >= 0.f, std::string(op) + ": lr: expected a finite number >= 0, got " + std::to_string(lr));
  QGS_REQUIRE(eps > 0.f, std::string(op) + ": eps: expected > 0, got " + std::to_string(eps));
}
}  // namespace

void adamw_step(float* p, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2, float eps,
                float weight_decay, float bc1, float bc2) {
  check_hyper("adamw", lr, eps);
  QGS_REQUIRE(bc1 > 0.f && bc2 > 0.f, "adamw: bias corrections must be > 0 (step >= 1)");
  float decay = 1.f - lr * weight_decay, ib1 = 1.f / bc1, isb2 = 1.f / std::sqrt(bc2);
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    adamw_range(p + i0, m + i0, v + i0, g + i0, i1 - i0, lr, beta1, beta2, eps, decay, ib1, isb2);
  });
}

void sparse_adam_step(float* p, float* m, float* v, const int32_t* rows, const float* g, int64_t nrows, int64_t vocab,
                      int64_t dim, float lr, float beta1, float beta2, float eps, float weight_decay, float bc1,
                      float bc2) {
  check_hyper("sparseAdam", lr, eps);
  QGS_REQUIRE(bc1 > 0.f && bc2 > 0.f, "sparseAdam: bias corrections must be > 0 (step >= 1)");
  check_rows("sparseAdam", rows, nrows, vocab);
  float decay = 1.f - lr * weight_decay, ib1 = 1.f / bc1, isb2 = 1.f / std::sqrt(bc2);
  parallel_for(nrows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, dim)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off = static_cast<int64_t>(rows[r]) * dim;
      adamw_range(p + off, m + off, v + off, g + r * dim, dim, lr, beta1, beta2, eps, decay, ib1, isb2);
    }
  });
}

void sparse_adagrad_step(float* p, float* acc, const int32_t* rows, const float* g, int64_t nrows, int64_t vocab,
                         int64_t dim, float lr, float eps, float weight_decay) {
  check_hyper("sparseAdagrad", lr, eps);
  check_rows("sparseAdagrad", rows, nrows, vocab);
  float decay = 1.f - lr * weight_decay;
  parallel_for(nrows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, dim)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off = static_cast<int64_t>(rows[r]) * dim;
      for (int64_t j = 0; j < dim; ++j) {
        float gi = g[r * dim + j];
        float a = acc[off + j] + gi * gi;
        acc[off + j] = a;
        p[off + j] = p[off + j] * decay - lr * gi / (std::sqrt(a) + eps);
      }
    }
  });
}

double sum_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t block = 16384;
  int64_t nb = (n + block - 1) / block;
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
  parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi) {
      double s = 0;
      for (int64_t i = bi * block; i < std::min(n, (bi + 1) * block); ++i) s += static_cast<double>(x[i]) * x[i];
      part[static_cast<size_t>(bi)] = s;
    }
  });
  double s = 0;
  for (double q : part) s += q;
  return s;
}

void scale_inplace(float* x, int64_t n, float s) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] *= s;
  });
}

}  // namespace qgs::cpu
