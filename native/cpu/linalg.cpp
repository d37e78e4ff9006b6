// CPU GEMM via OpenBLAS cblas_sgemm. BLAS runs its own threads (sized by parallel.cpp: one for small
// products, up to the pool size for large ones),
// so it is called only here at the top level, never from inside a parallel_for body.
#include "qgs/linalg.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "qgs/common.h"
#include "qgs/parallel.h"

namespace qgs::cpu {

namespace {
void check_sizes(const char* op, int64_t batch, int64_t m, int64_t n, int64_t k) {
  QGS_REQUIRE(batch >= 0 && m >= 0 && n >= 0 && k >= 0,
              std::string(op) + ": sizes must be non-negative, got batch=" + std::to_string(batch) + " m=" + std::to_string(m) +
                  " n=" + std::to_string(n) + " k=" + std::to_string(k));
  // cblas takes int dimensions.
  const int64_t lim = 0x7fffffff;
  QGS_REQUIRE(m <= lim && n <= lim && k <= lim, std::string(op) + ": matrix dimensions must fit in int32 for BLAS");
}

void sgemm1(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k, bool ta, bool tb, float alpha,
            float beta) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    // BLAS leaves C scaled by beta; with k = 0 the product is empty, so do it explicitly.
    for (int64_t i = 0; i < m * n; ++i) c[i] = beta == 0.f ? 0.f : beta * c[i];
    return;
  }
  blas_threads_for_gemm(m * n * k);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(ta ? m : k), b,
              static_cast<int>(tb ? k : n), beta, c, static_cast<int>(n));
}
}  // namespace

void gemm(float* c, const float* a, const float* b, int64_t batch, int64_t m, int64_t n, int64_t k, bool trans_a,
          bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float alpha, float beta) {
  check_sizes("gemm", batch, m, n, k);
  QGS_REQUIRE(!in_parallel_region(), "gemm: must not be called inside parallel_for (BLAS has its own threads)");
  if (batch == 0) return;
  // A batched A times one shared B (no transpose of A, contiguous items) is a single tall GEMM:
  // [batch*m, k] x [k, n]. This is the common Linear-on-[B, T, D] case and keeps BLAS efficient.
  if (batch > 1 && stride_b == 0 && !trans_a && stride_a == m * k && stride_c == m * n) {
    sgemm1(c, a, b, batch * m, n, k, false, trans_b, alpha, beta);
    return;
  }
  // Sum over the batch of a_iᵀ b_i with contiguous items equals a_catᵀ b_cat over the stacked
  // [batch*k, .] matrices: one GEMM for the weight gradient of a matrix broadcast over a batch.
  if (batch > 1 && stride_c == 0 && trans_a && !trans_b && stride_a == k * m && stride_b == k * n) {
    sgemm1(c, a, b, m, n, batch * k, true, false, alpha, beta);
    return;
  }
  for (int64_t i = 0; i < batch; ++i) {
    float be = (stride_c == 0 && i > 0) ? 1.f : beta;
    sgemm1(c + i * stride_c, a + i * stride_a, b + i * stride_b, m, n, k, trans_a, trans_b, alpha, be);
  }
}

void broadcast_rows(float* y, const float* bias, int64_t rows, int64_t n) {
  if (rows <= 0 || n <= 0) return;
  parallel_for(rows, std::max<int64_t>(1, 16384 / n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::memcpy(y + r * n, bias, static_cast<size_t>(n) * sizeof(float));
  });
}

void sum_rows(float* dbias, const float* dy, int64_t rows, int64_t n) {
  if (n <= 0) return;
  // Fixed blocking (independent of the thread count) so results are bit-identical run to run.
  const int64_t block = 256;
  int64_t nblocks = std::max<int64_t>(1, (rows + block - 1) / block);
  std::vector<double> part(static_cast<size_t>(nblocks * n), 0.0);
  parallel_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi) {
      double* p = part.data() + bi * n;
      int64_t r1 = std::min(rows, (bi + 1) * block);
      for (int64_t r = bi * block; r < r1; ++r) {
        const float* row = dy + r * n;
        for (int64_t j = 0; j < n; ++j) p[j] += row[j];
      }
    }
  });
  for (int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (int64_t bi = 0; bi < nblocks; ++bi) s += part[static_cast<size_t>(bi * n + j)];
    dbias[j] = static_cast<float>(s);
  }
}

double blas_sgemm_rate(int64_t n, int reps) {
  QGS_REQUIRE(n >= 1 && n <= 16384, "blasSgemmRate: n: expected 1..16384, got " + std::to_string(n));
  QGS_REQUIRE(reps >= 1 && reps <= 1000, "blasSgemmRate: reps: expected 1..1000, got " + std::to_string(reps));
  QGS_REQUIRE(!in_parallel_region(), "blasSgemmRate: must not be called inside parallel_for");
  size_t nn = static_cast<size_t>(n * n);
  std::vector<float> a(nn), b(nn), c(nn);
  for (size_t i = 0; i < nn; ++i) {
    a[i] = static_cast<float>((i * 7919) % 1000) / 1000.f - 0.5f;
    b[i] = static_cast<float>((i * 104729) % 1000) / 1000.f - 0.5f;
  }
  blas_threads_for_gemm(n * n * n);  // as gemm() would run it
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(n), static_cast<int>(n),
                1.f, a.data(), static_cast<int>(n), b.data(), static_cast<int>(n), 0.f, c.data(), static_cast<int>(n));
  };
  run();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto s = std::chrono::steady_clock::now();
    run();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
  }
  std::sort(t.begin(), t.end());
  double med = t[t.size() / 2];
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / med / 1e9;
}

}  // namespace qgs::cpu
