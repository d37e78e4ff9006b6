// GEMM (all transposes, batch strides, broadcast, accumulate-over-batch), bias helpers: against
// naive double-precision references on fresh random inputs with poisoned outputs.
#include <vector>

#include "qgs/linalg.h"
#include "qgs/parallel.h"
#include "test_util.h"

using namespace qgs_test;

static double at(const std::vector<float>& x, int64_t off, int64_t cols, bool t, int64_t i, int64_t j, int64_t rows_stored) {
  (void)rows_stored;
  return t ? x[static_cast<size_t>(off + j * cols + i)] : x[static_cast<size_t>(off + i * cols + j)];
}

int main() {
  uint64_t seed = fresh_seed();
  Rng rng(seed);
  const int64_t sizes[] = {1, 3, 7, 65};
  for (int rep = 0; rep < 24; ++rep) {
    int64_t m = sizes[rng.integer(0, 3)], n = sizes[rng.integer(0, 3)], k = sizes[rng.integer(0, 3)];
    int64_t batch = rng.integer(1, 4);
    bool ta = rng.integer(0, 1), tb = rng.integer(0, 1);
    int mode = static_cast<int>(rng.integer(0, 3));  // 0 both batched, 1 a broadcast, 2 b broadcast, 3 accumulate C
    int64_t sa = mode == 1 ? 0 : m * k, sb = mode == 2 ? 0 : k * n, sc = mode == 3 ? 0 : m * n;
    auto a = rng.normals(static_cast<size_t>((mode == 1 ? 1 : batch) * m * k));
    auto b = rng.normals(static_cast<size_t>((mode == 2 ? 1 : batch) * k * n));
    auto c = poisoned(static_cast<size_t>((mode == 3 ? 1 : batch) * m * n));
    std::vector<double> ref(c.size(), 0.0);
    for (int64_t p = 0; p < batch; ++p)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t q = 0; q < k; ++q)
            s += at(a, p * sa, ta ? m : k, ta, i, q, 0) * at(b, p * sb, tb ? k : n, tb, q, j, 0);
          ref[static_cast<size_t>(p * sc + i * n + j)] += s;
        }
    qgs::cpu::gemm(c.data(), a.data(), b.data(), batch, m, n, k, ta, tb, sa, sb, sc, 1.f, 0.f);
    check_close("gemm m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " batch=" +
                    std::to_string(batch) + " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " mode=" + std::to_string(mode),
                c, ref, 1e-5);
  }
  // alpha/beta: C = 0.5 AB + 2 C
  {
    int64_t m = 7, n = 5, k = 3;
    auto a = rng.normals(m * k), b = rng.normals(k * n), c = rng.normals(m * n);
    std::vector<double> ref(c.size());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q) s += double(a[i * k + q]) * b[q * n + j];
        ref[i * n + j] = 0.5 * s + 2.0 * c[i * n + j];
      }
    qgs::cpu::gemm(c.data(), a.data(), b.data(), 1, m, n, k, false, false, 0, 0, 0, 0.5f, 2.f);
    check_close("gemm alpha/beta", c, ref, 1e-5);
  }
  // k = 0: C = beta C (0 with beta 0, even over poison)
  {
    auto c = poisoned(6);
    float dummy = 0;
    qgs::cpu::gemm(c.data(), &dummy, &dummy, 1, 2, 3, 0, false, false, 0, 0, 0, 1.f, 0.f);
    check_close("gemm k=0", c, std::vector<double>(6, 0.0), 1e-7);
  }
  // broadcast_rows + sum_rows
  for (int64_t rows : {1, 7, 257, 1000}) {
    int64_t n = rng.integer(1, 70);
    auto bias = rng.normals(n);
    auto y = poisoned(rows * n);
    qgs::cpu::broadcast_rows(y.data(), bias.data(), rows, n);
    std::vector<double> ref(y.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) ref[r * n + j] = bias[j];
    check_close("broadcast_rows", y, ref, 1e-7);
    auto dy = rng.normals(rows * n);
    auto db = poisoned(n);
    std::vector<double> dref(n, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) dref[j] += dy[r * n + j];
    qgs::cpu::sum_rows(db.data(), dy.data(), rows, n);
    check_close("sum_rows rows=" + std::to_string(rows), db, dref, 1e-6);
  }
  check_throws("negative size", [] {
    float x = 0;
    qgs::cpu::gemm(&x, &x, &x, 1, -1, 1, 1, false, false, 0, 0, 0, 1.f, 0.f);
  });
  check_throws("gemm inside parallel_for is refused", [] {
    qgs::parallel_for(4, 1, [](int64_t, int64_t) {
      float x = 0;
      qgs::cpu::gemm(&x, &x, &x, 1, 1, 1, 1, false, false, 0, 0, 0, 1.f, 0.f);
    });
  });
  check_throws("blas rate bad n", [] { qgs::cpu::blas_sgemm_rate(0, 1); });
  check(qgs::cpu::blas_sgemm_rate(32, 2) > 0, "blas rate positive");
  return finish("test_linalg", seed);
}
